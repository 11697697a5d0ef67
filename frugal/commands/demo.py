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
    help="Requests per run (six runs).",
)
@click.option(
    "--connections",
    type=click.IntRange(1, 512),
    default=32,
    show_default=True,
    help="Concurrent client connections (a closed loop: each sends its next request when "
    "its answer arrives).",
)
@click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where models, configs, server logs, ledgers and runs.json go (default: a new temp "
    "folder).",
)
def demo(n_requests: int, connections: int, workdir: Path | None) -> None:
    """Train two digit models, serve them over HTTP: what each lever saves, in dollars.

    \b
    Six runs of the same traffic, each against a fresh `frugal serve` process:
      1. naive baseline: the large model only, max_batch_size 1, no cache
      2. + batching: the large model, batches of up to 64
      3. + cache: the same with a response cache
      4. small only: the small model alone (cheaper, less accurate)
      5. cascade: small first, large when unsure (threshold calibrated on
         digits neither model trained on)
      6. all levers: the cascade with batching and a response cache

    Prints per run: requests, errors, p50/p99, req/s, mean batch, cache hits,
    accuracy, and $ per 1k requests as model, overhead (the server's own work)
    and billed (the machine's price over the measured window), read from the
    run's ledger. Ends with one line per lever: how much cheaper (or dearer)
    than the naive baseline in billed $/1k, at what accuracy. About 40 s on
    2 cores at the defaults.
    """
    from frugal.demo import run_demo

    run_demo(n_requests=n_requests, connections=connections, workdir=workdir)


__all__ = ["demo"]
