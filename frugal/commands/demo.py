"""``frugal demo``: the quickstart, end to end, on a real server."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option(
    "--requests",
    "n_requests",
    type=click.IntRange(10),
    default=3000,
    show_default=True,
    help="Requests per run.",
)
@click.option("--connections", type=click.IntRange(1, 512), default=32, show_default=True)
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    help="Where models, configs, server logs and ledgers go (default: a new temp folder).",
)
def demo(n_requests: int, connections: int, workdir: Path | None) -> None:
    """Train two digit models, serve and load them over HTTP: what batching, caches, cascades cost.

    Runs the same workload five times, each against a real `frugal serve` process: batching with
    a response cache, batching alone, max_batch_size 1, the large model alone, and a cascade
    (small model first) whose threshold it calibrates on digits neither model trained on. Prints
    requests, p50/p99, throughput, batch size, cache hits, accuracy and $ per 1k (allocated and
    billed).
    """
    from frugal.demo import run_demo

    run_demo(n_requests=n_requests, connections=connections, workdir=workdir)


__all__ = ["demo"]
