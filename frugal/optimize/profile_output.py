"""How ``frugal profile`` shows a profile: a rich table, a frugal.yaml snippet, a PNG curve."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from frugal.optimize.endtoend import HttpProfile
from frugal.optimize.profile import Profile
from frugal.plots import pyplot, save_figure


def print_profile(profile: Profile, console: Any = None) -> None:
    """The points as a table, then the knee, the SLO batch and the suggested batching."""
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal:  # piped or captured: wide enough for the table on one line
            console = Console(width=120)
    model, hw = profile.model, profile.hardware
    where = hw["gpu_name"] or f"{hw['cpu_model']}, {hw['cpu_cores']} core(s)"
    table = Table(
        title=f"profile of {model['name']}:{model['version']} ({model.get('runtime') or '?'}) "
        f"on {hw['device']} ({where}), {profile.threads} thread(s)"
    )
    columns = ["batch", "repeats", "p50 ms", "p99 ms", "items/s", "speedup", "peak RSS MB"]
    if any(p.peak_gpu_mb is not None for p in profile.points):
        columns.append("peak GPU MB")
    for name in columns:
        table.add_column(name, justify="right")
    base = profile.points[0]
    knee = profile.knee_batch_size
    for p in profile.points:
        row = [
            f"{p.batch_size}" + (" *" if p.batch_size == knee else ""),
            f"{p.repeats}",
            f"{p.p50_ms:.3f}",
            f"{p.p99_ms:.3f}",
            f"{p.items_per_s:,.0f}",
            f"{p.items_per_s / base.items_per_s:.2f}x",
            f"{p.peak_rss_mb:.0f}",
        ]
        if len(columns) > 7:
            row.append("-" if p.peak_gpu_mb is None else f"{p.peak_gpu_mb:.0f}")
        table.add_row(*row)
    console.print(table)
    console.print(
        f"speedup: items/s over batch {base.batch_size}'s. peak RSS is the process's peak so far "
        "(it includes loading), not the batch's own."
    )
    console.print(f"knee (*): batch {knee}, the smallest reaching 90% of the peak items/s")
    if profile.slo_ms is not None:
        within = profile.max_batch_within_slo
        if within is None:
            console.print(f"[red]no measured batch has p99 <= {profile.slo_ms:g} ms[/red]")
        else:
            console.print(f"largest batch with p99 <= {profile.slo_ms:g} ms: {within}")
    console.print("suggested for frugal.yaml (max_wait_ms applies with workers > 1):")
    console.print(batching_yaml(profile), markup=False, highlight=False)
    if profile.model_load_s is not None:
        console.print(f"model load: {profile.model_load_s:.3f} s (a serverless cold start's init)")
    if profile.http is not None:
        print_http(profile.http, console)


def print_http(http: HttpProfile, console: Any) -> None:
    """The end-to-end levels as a table, and what the server's CPU per request means."""
    from rich.table import Table

    table = Table(
        title=f"end to end: frugal serve ({http.server_workers} worker(s), max_batch_size "
        f"{http.max_batch_size}) on {http.cpu_model}, {http.cpu_cores} core(s), POST {http.path}"
    )
    columns = ["concurrency", "req/s", "p50 ms", "p99 ms", "server CPU ms/req", "server cores",
               "client CPU ms/req", "errors"]  # fmt: skip
    for name in columns:
        table.add_column(name, justify="right")
    for lv in http.levels:
        table.add_row(
            str(lv.concurrency),
            f"{lv.req_per_s:,.0f}",
            f"{lv.p50_ms:.3f}",
            f"{lv.p99_ms:.3f}",
            f"{1000 * lv.server_cpu_s_per_request:.3f}",
            f"{lv.server_cores_busy:.2f}",
            f"{1000 * lv.client_cpu_s_per_request:.3f}",
            str(lv.errors),
        )
    console.print(table)
    console.print(
        "server CPU: the server process tree's CPU seconds over the requests it answered (HTTP, "
        "JSON, batching, model, ledger), read from /proc; the load generator's own CPU is apart. "
        "frugal plan bounds a replica by vCPUs / server CPU per request."
    )
    if http.open_levels:
        print_open_loop(http, console)


def print_open_loop(http: HttpProfile, console: Any) -> None:
    """The open-loop levels (--rates): Poisson arrivals, latency from each scheduled time."""
    from rich.table import Table

    table = Table(title="open loop: Poisson arrivals at each rate")
    columns = ["rate/s", "req/s", "p50 ms", "p99 ms", "p50 ms from send", "p99 ms from send",
               "send lag p99 ms", "server CPU ms/req", "server cores", "errors"]  # fmt: skip
    for name in columns:
        table.add_column(name, justify="right")
    for lv in http.open_levels:
        table.add_row(
            f"{lv.rate_per_s:g}",
            f"{lv.req_per_s:,.0f}",
            f"{lv.p50_ms:.3f}",
            f"{lv.p99_ms:.3f}",
            f"{lv.p50_ms_from_send:.3f}",
            f"{lv.p99_ms_from_send:.3f}",
            f"{lv.send_lag_p99_ms:.3f}",
            f"{1000 * lv.server_cpu_s_per_request:.3f}",
            f"{lv.server_cores_busy:.2f}",
            str(lv.errors),
        )
    console.print(table)
    console.print(
        "from send: from when the load generator really wrote the request (its own delay on "
        "this machine left out); frugal simulate reads these levels for the time an answer "
        "spends outside the model's batch."
    )


def batching_yaml(profile: Profile) -> str:
    """The suggestion as the ``batching`` lines of the model in frugal.yaml."""
    suggested = profile.suggested
    return (
        f"models:\n  - name: {profile.model['name']}\n    batching: "
        f"{{max_batch_size: {suggested['max_batch_size']}, "
        f"max_wait_ms: {suggested['max_wait_ms']:g}}}"
    )


def plot_profile(profile: Profile, path: Path) -> None:
    """items/s and p99 against batch size (log2 axis), the knee marked, as a PNG; with an
    end-to-end section, a second panel: req/s and p99 against concurrency."""
    plt = pyplot()

    sizes = [p.batch_size for p in profile.points]
    if profile.http is None:
        fig, left = plt.subplots(figsize=(7, 4))
    else:
        fig, (left, e2e) = plt.subplots(1, 2, figsize=(13, 4))
        _plot_http(e2e, profile.http, profile.slo_ms)
    left.plot(sizes, [p.items_per_s for p in profile.points], "o-", color="tab:blue")
    left.set_xscale("log", base=2)
    left.set_xlabel("batch size")
    left.set_ylabel("items/s", color="tab:blue")
    right = left.twinx()
    right.plot(sizes, [p.p99_ms for p in profile.points], "s--", color="tab:red")
    right.set_ylabel("p99 ms", color="tab:red")
    knee = profile.knee_batch_size
    left.axvline(knee, color="gray", linestyle=":", label=f"knee: batch {knee}")
    if profile.slo_ms is not None:
        right.axhline(profile.slo_ms, color="tab:red", linestyle=":", label="SLO")
    left.legend(loc="upper left")
    model = profile.model
    left.set_title(
        f"model only: {model['name']}:{model['version']} on {profile.hardware['hardware_class']}"
    )
    save_figure(fig, path)


def _plot_http(axis: Any, http: HttpProfile, slo_ms: float | None) -> None:
    levels = [lv.concurrency for lv in http.levels]
    axis.plot(levels, [lv.req_per_s for lv in http.levels], "o-", color="tab:blue")
    axis.set_xscale("log", base=2)
    axis.set_xlabel("concurrent requests")
    axis.set_ylabel("req/s (end to end)", color="tab:blue")
    right = axis.twinx()
    right.plot(levels, [lv.p99_ms for lv in http.levels], "s--", color="tab:red")
    right.set_ylabel("client p99 ms", color="tab:red")
    for lv in http.levels:
        axis.annotate(
            f"{1000 * lv.server_cpu_s_per_request:.2f} ms CPU",
            (lv.concurrency, lv.req_per_s),
            textcoords="offset points",
            xytext=(0, 6),
            ha="center",
            fontsize=8,
        )
    if slo_ms is not None:
        right.axhline(slo_ms, color="tab:red", linestyle=":", label="SLO")
    axis.set_title(f"end to end: frugal serve, {http.server_workers} worker(s)")


__all__ = ["batching_yaml", "plot_profile", "print_http", "print_profile"]
