"""``frugal serve`` and ``frugal validate``: run a config, or check it without serving."""

from __future__ import annotations

from pathlib import Path

import click

from frugal.errors import InvalidInput


class Workers(click.ParamType[int | str, object]):
    """``--workers``: 1..64 or ``auto``; anything else is click's usage error (exit 2)."""

    name = "N|auto"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> int | str:
        from frugal.serving import parse_workers

        try:
            return parse_workers(value if isinstance(value, int) else str(value))
        except InvalidInput as exc:
            self.fail(f"{exc.message}; {exc.hint}" if exc.hint else exc.message, param, ctx)


@click.command()
@click.argument("config", type=click.Path(path_type=Path), default="frugal.yaml")
@click.option("--host", help="Address to bind (default: server.host, 127.0.0.1).")
@click.option("--port", type=int, help="Port (default: server.port, 8000; 0 picks a free one).")
@click.option(
    "--grpc-port",
    type=click.IntRange(0, 65535),
    help="Also serve the Open Inference Protocol over gRPC on this port (default: "
    "server.grpc_port, off; 0 picks a free one). Needs frugal[grpc]; see docs/protocols.md.",
)
@click.option(
    "--workers",
    type=Workers(),
    default="1",
    show_default=True,
    help="Server processes, 1..64, each with its own batchers; `auto`: one per vCPU this "
    "process may use (affinity, cgroup CPU quota), 1 on a GPU instance. `auto` is the "
    "choice for CPU-bound models (see docs/serving.md).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    help="Log lines as text, or one JSON object a line (default: server.log_format, text). "
    "One line per request at debug; server.log_sample of them at info.",
)
@click.option(
    "--insecure",
    is_flag=True,
    help="Allow a non-loopback --host without an `auth` section (warns; see docs/security.md).",
)
@click.option("--ssl-certfile", type=click.Path(path_type=Path), help="TLS certificate (PEM).")
@click.option("--ssl-keyfile", type=click.Path(path_type=Path), help="TLS private key (PEM).")
@click.option(
    "--ray",
    "on_ray",
    is_flag=True,
    help="Deploy onto Ray Serve: a deployment per model version, autoscaled by its "
    "`autoscaling` policy; caches must be Redis (see docs/ray.md). Needs frugal[ray].",
)
@click.option(
    "--address",
    default="auto",
    show_default=True,
    help="With --ray: `auto` joins the running cluster (`ray start --head`), `local` starts "
    "one in this process, or a ray:// address.",
)
@click.option(
    "--ingress-replicas",
    type=click.IntRange(1, 256),
    default=1,
    show_default=True,
    help="With --ray: replicas of the HTTP ingress (frugal's app; no model runs there).",
)
@click.option(
    "--ingress-cpus",
    type=click.FloatRange(0.01, 64),
    default=0.5,
    show_default=True,
    help="With --ray: CPUs each ingress replica reserves; its share of the instance price.",
)
def serve(
    config: Path,
    host: str | None,
    port: int | None,
    grpc_port: int | None,
    workers: int | str,
    log_level: str,
    log_format: str | None,
    insecure: bool,
    ssl_certfile: Path | None,
    ssl_keyfile: Path | None,
    on_ray: bool,
    address: str,
    ingress_replicas: int,
    ingress_cpus: float,
) -> None:
    """Serve the models and endpoints of CONFIG (default ./frugal.yaml).

    Every model file is checked against its sha256 before the port opens. Without an `auth`
    section the server binds to loopback only. SIGTERM or Ctrl-C turns readiness off, answers
    every queued request (for up to server.drain_timeout_s, then 503), flushes the ledger and
    exits 0; a second signal answers what is still queued 503 at once, a third quits.
    """
    if on_ray:
        if workers != 1 or ssl_certfile or ssl_keyfile or grpc_port is not None:
            raise click.UsageError(
                "--workers, --grpc-port and --ssl-* are for one host; with --ray, replicas come "
                "from models[].autoscaling and TLS ends at Ray's proxy or your load balancer"
            )
        from frugal.config import load_config
        from frugal.scale import RayOptions, serve_on_ray

        server = load_config(config).server  # --host/--port default to server.host/port
        options = RayOptions(
            address=address, host=host or server.host,
            port=server.port if port is None else port,
            ingress_replicas=ingress_replicas, ingress_cpus=ingress_cpus,
        )  # fmt: skip
        serve_on_ray(config, options, insecure=insecure)
        return
    from frugal.serving import serve as run

    run(
        config, host=host, port=port, workers=workers, log_level=log_level, insecure=insecure,
        ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile, grpc_port=grpc_port,
        log_format=log_format,  # type: ignore[arg-type]  # click.Choice: "text" or "json"
    )  # fmt: skip


@click.command()
@click.argument("config", type=click.Path(path_type=Path), default="frugal.yaml")
@click.option(
    "--load/--no-load",
    default=True,
    show_default=True,
    help="Also verify each model's sha256 and load it.",
)
def validate(config: Path, load: bool) -> None:
    """Check CONFIG: its schema, prices, model files and their sha256.

    Also checks that ledger.path and auth.keys name SQLite files the server could open, creating
    nothing.

    Exit 0 when it would serve; exit 2 with `error:` naming the file and the field otherwise.
    """
    from frugal.config import load_config
    from frugal.serving import assemble

    cfg = load_config(config)
    assembly = assemble(cfg, file=str(config), load=load)
    pricer = assembly.pricer
    for model in cfg.models:
        if model.upstream is not None:  # runtime openai: nothing to load, the key is read at start
            click.echo(f"  model {model.key} (openai upstream {model.upstream.base_url})")
            continue
        click.echo(f"  model {model.key} ({model.runtime})" + (" loaded" if load else ""))
    click.echo(
        f"{config}: ok: {len(cfg.models)} model version(s), {len(cfg.endpoints)} endpoint(s), "
        f"{pricer.instance} at ${pricer.price_usd_per_hour:.4f}/h over {pricer.slots} slot(s)"
    )


__all__ = ["serve", "validate"]
