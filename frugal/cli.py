"""The ``frugal`` command: one thin sub-command per verb.

Errors are mapped to a message and an exit code in one place (``FrugalGroup.invoke``): a
FrugalError prints ``error: ...`` (and its hint) and exits 2, never a traceback. Exit 1 is kept
for verdicts: a command that ran and found something wrong (``check`` over budget, ``audit verify``
on a broken chain) says so and exits 1, so CI can tell "the gate said no" from "the gate is
broken".
"""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from frugal.commands import audit, keys, ledger
from frugal.commands.durations import parse_since
from frugal.errors import FrugalError

EXIT_VERDICT = 1  # the command ran and its answer is "no"
EXIT_BAD_INPUT = 2  # bad config, file, option or address: the code of click's usage errors


class FrugalGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FrugalError as error:
            click.secho(f"error: {error.message}", fg="red", err=True)
            if error.hint:
                click.echo(f"hint: {error.hint}", err=True)
            ctx.exit(EXIT_BAD_INPUT)


@click.group(cls=FrugalGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="frugal")
def main() -> None:
    """frugal: serve models at the lowest cost per request, and show where the money goes.

    Start with `frugal demo`, then write a frugal.yaml (see docs/config.md) and
    `frugal validate` / `frugal serve` it. `frugal report` reads the cost ledger.
    """


@main.command()
@click.argument("config", type=click.Path(path_type=Path), default="frugal.yaml")
@click.option("--host", help="Address to bind (default: server.host, 127.0.0.1).")
@click.option("--port", type=int, help="Port (default: server.port, 8000; 0 picks a free one).")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Server processes; each has its own batchers (see docs/serving.md).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
@click.option(
    "--insecure",
    is_flag=True,
    help="Allow a non-loopback --host without an `auth` section (warns; see docs/security.md).",
)
@click.option("--ssl-certfile", type=click.Path(path_type=Path), help="TLS certificate (PEM).")
@click.option("--ssl-keyfile", type=click.Path(path_type=Path), help="TLS private key (PEM).")
def serve(
    config: Path,
    host: str | None,
    port: int | None,
    workers: int,
    log_level: str,
    insecure: bool,
    ssl_certfile: Path | None,
    ssl_keyfile: Path | None,
) -> None:
    """Serve the models and endpoints of CONFIG (default ./frugal.yaml).

    Every model file is checked against its sha256 before the port opens. Without an `auth`
    section the server binds to loopback only. SIGTERM or Ctrl-C turns readiness off, answers
    every queued request, flushes the ledger and exits 0.
    """
    from frugal.serving import serve as run

    run(
        config, host=host, port=port, workers=workers, log_level=log_level, insecure=insecure,
        ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile,
    )  # fmt: skip


@main.command()
@click.argument("config", type=click.Path(path_type=Path), default="frugal.yaml")
@click.option(
    "--load/--no-load",
    default=True,
    show_default=True,
    help="Also verify each model's sha256 and load it.",
)
def validate(config: Path, load: bool) -> None:
    """Check CONFIG: its schema, prices, model files and their sha256. Exit 1 naming the field."""
    from frugal.accounting import resolve_pricer
    from frugal.config import load_config
    from frugal.runtimes import load_model

    cfg = load_config(config)
    pricer = resolve_pricer(cfg.instance, file=str(config))
    for model in cfg.models:
        if load:
            load_model(model)
        click.echo(f"  model {model.key} ({model.runtime})" + (" loaded" if load else ""))
    click.echo(
        f"{config}: ok: {len(cfg.models)} model version(s), {len(cfg.endpoints)} endpoint(s), "
        f"{pricer.instance} at ${pricer.price_usd_per_hour:.4f}/h over {pricer.slots} slot(s)"
    )


@main.command()
@click.option(
    "--ledger",
    "ledger_path",
    type=click.Path(path_type=Path),
    help="Ledger file (default: the one CONFIG names).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default="frugal.yaml",
    show_default=True,
    help="Config whose `ledger.path` to read.",
)
@click.option("--since", help="Window start: a duration back from now (30m, 2h, 7d) or a date.")
@click.option(
    "--by",
    type=click.Choice(["endpoint", "model", "version"]),
    default="endpoint",
    show_default=True,
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
)
def report(
    ledger_path: Path | None, config_path: Path, since: str | None, by: str, fmt: str
) -> None:
    """Requests, errors, latency, batch sizes, utilization and dollars, from the ledger."""
    from frugal.accounting import build_report
    from frugal.config import load_config

    if ledger_path is None:
        ledger_path = load_config(config_path).ledger.path
    result = build_report(ledger_path, since=parse_since(since), by=by)  # type: ignore[arg-type]
    rows = [asdict(r) for r in [*result.rows, result.total]]
    if fmt == "json":
        summary = {
            k: getattr(result, k)
            for k in ("since", "until", "billed_usd", "allocated_usd", "idle_usd", "busy_usd")
        }
        click.echo(json.dumps({"rows": rows, **summary}, indent=2))
    elif fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        click.echo(out.getvalue(), nl=False)
    else:
        print_report(result, by)


@main.command()
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


def _batch_sizes(ctx: click.Context, param: click.Parameter, value: str) -> list[int]:
    try:
        sizes = sorted({int(v) for v in value.split(",") if v.strip()})
    except ValueError:
        raise click.BadParameter("a comma list of whole numbers, e.g. 1,8,32") from None
    if not sizes or sizes[0] < 1:
        raise click.BadParameter("batch sizes are whole numbers >= 1")
    return sizes


_DEVICE = click.option(
    "--device",
    type=click.Choice(["cpu", "cuda"]),
    help="Where the model runs (default: cuda when torch sees a GPU, else cpu).",
)


@main.command()
@click.argument("target", metavar="MODEL_OR_CONFIG", type=click.Path(path_type=Path))
@click.option("--model", "model_name", help="Which model of a frugal.yaml (default: the first).")
@click.option(
    "--batch-sizes",
    default="1,2,4,8,16,32,64",
    show_default=True,
    callback=_batch_sizes,
    help="Comma list of batch sizes to measure.",
)
@click.option(
    "--runtime",
    type=click.Choice(["sklearn", "onnx", "torch", "python"]),
    help="Runtime of a bare model file (default: from its suffix).",
)
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    help="Sample items: .csv, .jsonl or .npz (default: made up from the inputs).",
)
@click.option(
    "--slo-ms",
    type=click.FloatRange(min=0, min_open=True),
    help="Latency objective (ms): caps the suggested batch by its p99.",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 256),
    help="Intra-op threads of the one worker measured (bare file: 1).",
)
@_DEVICE
@click.option("--warmup", type=click.IntRange(0), default=3, show_default=True)
@click.option("--min-repeats", type=click.IntRange(1), default=20, show_default=True)
@click.option(
    "--min-seconds",
    type=click.FloatRange(0),
    default=0.5,
    show_default=True,
    help="Each batch size repeats until both --min-repeats and this are reached.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default="profile.json",
    show_default=True,
    help="The profile JSON (read by frugal plan and check).",
)
@click.option("--plot", type=click.Path(path_type=Path), help="Also draw items/s and p99 (PNG).")
def profile(
    target: Path,
    model_name: str | None,
    batch_sizes: list[int],
    runtime: str | None,
    data: Path | None,
    slo_ms: float | None,
    threads: int | None,
    device: str | None,
    warmup: int,
    min_repeats: int,
    min_seconds: float,
    out: Path,
    plot: Path | None,
) -> None:
    """Measure p50/p99 and items/s of one worker per batch size; suggest max_batch_size.

    MODEL_OR_CONFIG is a frugal.yaml (--model picks the model) or a model file (.onnx,
    .joblib/.pkl, .pt/.pt2). The model loads through frugal's runtimes, as the server loads it.
    """
    from frugal.optimize import limit_threads, load_target, profile_model, resolve_target
    from frugal.optimize.profile_output import plot_profile, print_profile
    from frugal.optimize.target import sample_items

    resolved = resolve_target(
        target, model=model_name, runtime=runtime, threads=threads, device=device
    )
    model = load_target(resolved)
    items, _ = sample_items(resolved, model, data)
    with limit_threads(resolved.threads):
        result = profile_model(
            model,
            items,
            batch_sizes,
            warmup=warmup,
            min_repeats=min_repeats,
            min_seconds=min_seconds,
            device=resolved.device,
            threads=resolved.threads,
            slo_ms=slo_ms,
            record=resolved.record(),
        )
    print_profile(result)
    try:
        result.save(out)
    except OSError as exc:
        raise FrugalError(f"{out}: cannot write the profile: {exc}") from None
    click.echo(f"wrote {out}")
    if plot is not None:
        plot_profile(result, plot)
        click.echo(f"wrote {plot}")


def _precisions(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> list[str]:
    names = [v.strip().lower() for item in value for v in item.split(",") if v.strip()]
    unknown = [n for n in names if n not in ("int8", "fp16", "bf16")]
    if unknown:
        raise click.BadParameter(f"{unknown[0]!r}: choose int8, fp16 or bf16")
    return list(dict.fromkeys(names)) or ["int8"]


@main.command()
@click.argument("target", metavar="MODEL", type=click.Path(path_type=Path))
@click.option(
    "--to",
    "precisions",
    multiple=True,
    callback=_precisions,
    help="int8, fp16 or bf16 (TorchScript only); repeat or comma-separate. Default: int8.",
)
@click.option(
    "--method",
    type=click.Choice(["dynamic", "static"]),
    default="dynamic",
    show_default=True,
    help="int8: weights only, activations per batch (dynamic); or calibrated on --data (static).",
)
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    help="Validation items (.csv, .jsonl, .npz); labels give accuracy, else cosine/agreement.",
)
@click.option(
    "--max-drop",
    type=click.FloatRange(0),
    help="Exit 1 and keep nothing if a variant loses more (accuracy fraction, or 1 - cosine).",
)
@click.option("--out-dir", type=click.Path(path_type=Path), help="Default: beside MODEL.")
@_DEVICE
@click.option("--model", "model_name", help="Which model of a frugal.yaml (default: the first).")
@click.option("--threads", type=click.IntRange(1, 256), help="Intra-op threads (bare file: 1).")
@click.option(
    "--batch-size",
    type=click.IntRange(2),
    default=32,
    show_default=True,
    help="The larger batch timed besides batch 1.",
)
@click.option("--min-repeats", type=click.IntRange(1), default=20, show_default=True)
@click.option("--min-seconds", type=click.FloatRange(0), default=0.3, show_default=True)
@click.option(
    "--report",
    "report_path",
    type=click.Path(path_type=Path),
    help="Also write the measurements as JSON (only when every variant passes).",
)
@click.pass_context
def quantize(
    ctx: click.Context,
    target: Path,
    precisions: list[str],
    method: str,
    data: Path | None,
    max_drop: float | None,
    out_dir: Path | None,
    device: str | None,
    model_name: str | None,
    threads: int | None,
    batch_size: int,
    min_repeats: int,
    min_seconds: float,
    report_path: Path | None,
) -> None:
    """Write int8/fp16/bf16 variants of an ONNX or TorchScript MODEL and measure each vs fp32.

    Size, p50 and items/s at batch 1 and --batch-size, and quality on --data. With --max-drop,
    a variant that loses more makes the command exit 1 and write nothing.
    """
    from frugal.optimize import resolve_target
    from frugal.optimize.quantize import Timing, quantize_model
    from frugal.optimize.quantize_output import print_quantize

    resolved = resolve_target(target, model=model_name, threads=threads, device=device)
    timing = Timing(batch_size=batch_size, min_repeats=min_repeats, min_seconds=min_seconds)
    result = quantize_model(
        resolved,
        precisions,
        method=method,
        data=data,
        max_drop=max_drop,
        out_dir=out_dir,
        timing=timing,
    )
    print_quantize(result)
    failed = result.over_max_drop
    if failed:
        names = ", ".join(f"{v.name} ({v.quality.drop:.4f})" for v in failed if v.quality)
        click.secho(f"over --max-drop {max_drop:g}: {names}; nothing written", fg="red", err=True)
        ctx.exit(EXIT_VERDICT)
    for variant in result.variants:
        if variant.path is not None:
            click.echo(f"wrote {variant.path}  sha256 {variant.sha256}")
            if variant.options:
                click.echo(f"  runtime options it needs: {json.dumps(variant.options)}")
    if report_path is not None:
        try:
            report_path.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        except OSError as exc:
            raise FrugalError(f"{report_path}: cannot write the report: {exc}") from None
        click.echo(f"wrote {report_path}")


@main.group()
def cache() -> None:
    """Look at or clear the response caches of a running server (admin routes)."""


def _server_url(url: str | None, config_path: Path) -> str:
    if url:
        return url.rstrip("/")
    from frugal.config import load_config

    server = load_config(config_path).server
    host = "127.0.0.1" if server.host in ("0.0.0.0", "::") else server.host
    return f"http://{host}:{server.port}"


def _admin(
    method: str, url: str, path: str, key: str | None, body: dict[str, str] | None = None
) -> Any:
    import httpx

    headers = {"authorization": f"Bearer {key}"} if key else {}
    try:
        response = httpx.request(method, url + path, json=body, headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        raise FrugalError(f"cannot reach {url}: {exc}", hint="is `frugal serve` running?") from None
    if response.status_code != 200:
        try:
            message = response.json().get("error", response.text)
        except ValueError:
            message = response.text
        raise FrugalError(f"{url}{path} answered {response.status_code}: {message}")
    return response.json()


_URL = click.option("--url", help="Server address (default: from --config's server section).")
_KEY = click.option("--key", envvar="FRUGAL_API_KEY",
                    help="An admin key when the server has auth ($FRUGAL_API_KEY).")  # fmt: skip
_CONFIG = click.option("--config", "config_path", type=click.Path(path_type=Path),
                       default="frugal.yaml", show_default=True)  # fmt: skip


@cache.command("stats")
@_URL
@_CONFIG
@_KEY
def cache_stats(url: str | None, config_path: Path, key: str | None) -> None:
    """Entries, bytes, evictions, hits, misses and dollars saved per cached endpoint."""
    from rich.console import Console
    from rich.table import Table

    stats = _admin("GET", _server_url(url, config_path), "/admin/cache/stats", key)
    table = Table(title="frugal caches")
    columns = ("endpoint", "store", "scope", "entries", "bytes", "evictions", "errors", "hits",
               "misses", "hit ratio", "$ saved")  # fmt: skip
    for name in columns:
        table.add_column(name, justify="left" if name in columns[:3] else "right")
    for endpoint, s in stats.items():
        lookups = s["hits"] + s["misses"]
        ratio = f"{100 * s['hits'] / lookups:.1f}%" if lookups else "-"
        table.add_row(
            endpoint, s["store"], s["scope"], f"{s['entries']:,}", f"{s['bytes']:,}",
            f"{s['evictions']:,}", f"{s['errors']:,}", f"{s['hits']:,}", f"{s['misses']:,}",
            ratio, f"{s['saved_usd']:.4g}",
        )  # fmt: skip
    Console().print(table)


@cache.command("invalidate")
@_URL
@_CONFIG
@_KEY
@click.option("--endpoint", help="Only this endpoint's cache.")
@click.option("--model", help="Only answers computed by this model version (name:version).")
def cache_invalidate(
    url: str | None, config_path: Path, key: str | None, endpoint: str | None, model: str | None
) -> None:
    """Drop cached answers (all of them unless --endpoint / --model narrow it)."""
    body = {k: v for k, v in (("endpoint", endpoint), ("model", model)) if v is not None}
    result = _admin("POST", _server_url(url, config_path), "/admin/cache/invalidate", key, body)
    click.echo(f"invalidated {result['invalidated']} entries")


_POSITIVE = click.FloatRange(min=0, min_open=True)
_HEADROOM = click.FloatRange(0, 1, min_open=True)


@main.command()
@click.option(
    "--profile",
    "profile_paths",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="A `frugal profile` JSON; repeat for more hardware (a cpu and a gpu:T4 profile...).",
)
@click.option("--qps", type=_POSITIVE, required=True, help="Requests per second to serve.")
@click.option("--slo-ms", type=_POSITIVE, required=True, help="p99 latency objective, in ms.")
@click.option("--budget-usd-month", type=_POSITIVE, help="Refuse choices that cost more.")
@click.option(
    "--headroom",
    type=_HEADROOM,
    default=0.7,
    show_default=True,
    help="Most a replica may be busy; replicas = ceil(qps / (capacity x headroom)).",
)
@click.option(
    "--max-wait-ms",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="batching.max_wait_ms the plan assumes (part of the latency bound).",
)
@click.option(
    "--provider",
    type=click.Choice(["aws", "gcp", "azure", "all"]),
    default="all",
    show_default=True,
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="frugal.yaml whose `instance:` price and slots override the catalog.",
)
@click.option(
    "--catalog",
    "catalog_paths",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Price catalog YAML to use instead of the shipped ones (repeatable).",
)
@click.option("--out", type=click.Path(path_type=Path), help="Write the plan as JSON here.")
@click.pass_context
def plan(
    ctx: click.Context,
    profile_paths: tuple[Path, ...],
    qps: float,
    slo_ms: float,
    budget_usd_month: float | None,
    headroom: float,
    max_wait_ms: float,
    provider: str,
    config_path: Path | None,
    catalog_paths: tuple[Path, ...],
    out: Path | None,
) -> None:
    """The cheapest instance type that serves --qps within --slo-ms, from measured profiles.

    Only hardware with a profile is priced; other types are listed with the `frugal profile`
    command that would measure them. Exit 1 when nothing meets the SLO (and the budget).
    """
    from frugal.optimize.plan import PlanInputs
    from frugal.optimize.plan_report import run_plan

    inputs = PlanInputs(qps=qps, slo_ms=slo_ms, headroom=headroom, provider=provider,
                        budget_usd_month=budget_usd_month, max_wait_ms=max_wait_ms)  # fmt: skip
    result = run_plan(profile_paths=profile_paths, inputs=inputs, config_path=config_path,
                      catalog_paths=catalog_paths, out=out)  # fmt: skip
    if result.choice is None:
        ctx.exit(EXIT_VERDICT)


@main.command()
@click.option("--baseline", "baseline_path", type=click.Path(path_type=Path),
              default="cost-baseline.json", show_default=True)  # fmt: skip
@click.option("--config", "config_path", type=click.Path(path_type=Path), default="frugal.yaml",
              show_default=True)  # fmt: skip
@click.option(
    "--profile",
    "profile_paths",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Profile JSON (repeatable). Default: profiles/*.json next to --config.",
)
@click.option("--qps", type=_POSITIVE, help="Requests/s per endpoint (default: the baseline's).")
@click.option("--headroom", type=_HEADROOM, help="Default: the baseline's (0.7 for a new one).")
@click.option(
    "--max-increase",
    default="10%",
    show_default=True,
    help="Largest allowed rise of an endpoint's $ per 1k: 10% or 0.1.",
)
@click.option("--update", is_flag=True, help="Write the baseline from this run and exit 0.")
@click.pass_context
def check(
    ctx: click.Context,
    baseline_path: Path,
    config_path: Path,
    profile_paths: tuple[Path, ...],
    qps: float | None,
    headroom: float | None,
    max_increase: str,
    update: bool,
) -> None:
    """CI cost gate: exit 1 when an endpoint's projected $ per 1k requests rose too much.

    Prices each endpoint from the config, its models' profiles (matched by sha256) and the
    baseline's qps; needs no model runtime. See docs/cost-gate.md.
    """
    from frugal.optimize.check import parse_increase
    from frugal.optimize.check_report import run_check

    passed = run_check(baseline_path=baseline_path, config_path=config_path,
                       profile_paths=profile_paths, qps=qps, headroom=headroom,
                       max_increase=parse_increase(max_increase), update=update)  # fmt: skip
    if not passed:
        ctx.exit(EXIT_VERDICT)


def print_report(result: Any, by: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"frugal report by {by}")
    for name in (by, "requests", "errors", "p50 ms", "p99 ms", "batch", "util", "$ total", "$/1k",
                 "cache hits", "$ saved"):  # fmt: skip
        table.add_column(name, justify="left" if name == by else "right")
    for i, r in enumerate([*result.rows, result.total]):
        table.add_row(
            r.key,
            f"{r.requests:,}",
            f"{r.errors:,}",
            f"{r.p50_ms:.2f}",
            f"{r.p99_ms:.2f}",
            f"{r.mean_batch_size:.1f}",
            f"{100 * r.utilization:.1f}%",
            f"{r.cost_usd:.4g}",
            f"{r.usd_per_1k:.4g}",
            f"{100 * r.cache_hit_ratio:.1f}%",
            f"{r.saved_usd:.4g}",
            end_section=i == len(result.rows) - 1,
        )
    console = Console()
    console.print(table)
    console.print(
        f"billed ${result.billed_usd:.4g} = allocated ${result.allocated_usd:.4g} "
        f"+ idle ${result.idle_usd:.4g} (busy slot time priced: ${result.busy_usd:.4g})"
    )


for group in (keys, audit, ledger):
    main.add_command(group)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
