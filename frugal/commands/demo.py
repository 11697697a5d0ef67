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
    help="Where models, config and ledger go (default: a new temp folder).",
)
def demo(n_requests: int, connections: int, workdir: Path | None) -> None:
    """Train the quickstart models, serve them, load them over HTTP, and show what batching saves.

    Runs the same workload three times (batching with a response cache, batching alone, and
    max_batch_size 1) against a real
    `frugal serve` process and prints requests, p50/p99, throughput, batch size and $ per 1k.
    """
    from frugal.demo import run_demo

    run_demo(n_requests=n_requests, connections=connections, workdir=workdir)


__all__ = ["demo"]
