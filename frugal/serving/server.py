"""Running the app under uvicorn, with readiness that turns false the moment SIGTERM arrives."""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import socket
import types
from pathlib import Path
from typing import Any

import uvicorn

from frugal.accounting import load_catalog
from frugal.config import FrugalConfig, load_config
from frugal.errors import ConfigError, InvalidInput
from frugal.observability import LogFormat, configure_logging
from frugal.serving.app import FrugalApp
from frugal.serving.assembly import assemble, start_engine
from frugal.serving.protocol import FrugalHttpProtocol
from frugal.serving.workers import AUTO, resolve_workers

CONFIG_ENV = "FRUGAL_CONFIG"
PROCESSES_ENV = "FRUGAL_PROCESSES"
GRPC_PORT_ENV = "FRUGAL_GRPC_PORT"  # --grpc-port and --host, for each --workers process
GRPC_HOST_ENV = "FRUGAL_GRPC_HOST"
# uvicorn cancels what is still open this long after the drain bound, as a last resort: by then
# the app has answered every queued item and body read 503 (FrugalApp._cut).
DRAIN_GRACE_S = 5.0
log = logging.getLogger("frugal.serving")


class _Server(uvicorn.Server):
    """uvicorn's server with frugal's signals: the first drains (readiness off at once, bounded
    by ``server.drain_timeout_s``); the second answers what is queued 503 now, recorded, instead
    of uvicorn's abort; only a third quits at once."""

    def __init__(self, config: uvicorn.Config, app: FrugalApp) -> None:
        super().__init__(config)
        self.frugal = app
        self.signals = 0

    def handle_exit(self, sig: int, frame: types.FrameType | None) -> None:
        self.signals += 1
        self.should_exit = True
        if self.signals == 1:
            self.frugal.begin_drain()
        elif self.signals == 2:
            log.warning("second signal: answering queued requests 503 now; a third quits at once")
            self.frugal.cut_now()
        else:
            log.error("third signal: quitting without waiting for open requests")
            self.force_exit = True
        # Not uvicorn's: it re-raises the signal once shut down (exit -15); a drained shutdown
        # exits 0.


def uvicorn_options(config: FrugalConfig, host: str | None, port: int | None) -> dict[str, Any]:
    options: dict[str, Any] = {
        "host": host or config.server.host,
        "port": config.server.port if port is None else port,
        "lifespan": "on",
        "access_log": False,
        "proxy_headers": False,  # clients are not behind a trusted proxy by default
        "server_header": False,
        "backlog": config.server.backlog,
        # The app bounds the drain itself (FrugalApp.begin_drain); this is the backstop.
        "timeout_graceful_shutdown": math.ceil(config.server.drain_timeout_s + DRAIN_GRACE_S),
        "h11_max_incomplete_event_size": config.server.max_header_bytes,
    }
    try:
        import uvloop  # noqa: F401

        options["loop"] = "uvloop"
    except ImportError:
        options["loop"] = "asyncio"
    try:
        import httptools  # noqa: F401

        options["http"] = FrugalHttpProtocol  # header deadline and byte cap (protocol.py)
    except ImportError:
        options["http"] = "h11"
    return options


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


def check_exposure(config: FrugalConfig, host: str, *, insecure: bool, file: str = "") -> None:
    """Without auth, only loopback: anyone who can reach the port could spend the money."""
    if config.auth is not None or is_loopback(host):
        return
    if not insecure:
        raise ConfigError(
            f"refusing to serve on {host} without API keys: anyone who can reach it could "
            "call the models and the admin routes",
            field="auth",
            file=file,
            hint="add `auth: {keys: frugal-keys.db}` and create keys with `frugal keys create`, "
            "or pass --insecure if a trusted network or proxy guards this port",
        )
    log.warning("serving on %s WITHOUT authentication (--insecure): any client may call "
                "the models", host)  # fmt: skip


def tls_options(certfile: Path | None, keyfile: Path | None) -> dict[str, Any]:
    if certfile is None and keyfile is None:
        return {}
    if certfile is None or keyfile is None:
        field = "--ssl-certfile" if certfile is None else "--ssl-keyfile"
        raise InvalidInput("TLS needs both --ssl-certfile and --ssl-keyfile", field=field)
    for field, path in (("--ssl-certfile", certfile), ("--ssl-keyfile", keyfile)):
        if not Path(path).is_file():
            raise InvalidInput(f"{path}: file not found", field=field)
    return {"ssl_certfile": str(certfile), "ssl_keyfile": str(keyfile)}


def serve(
    config_path: Path,
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int | str = 1,
    log_level: str = "info",
    log_format: LogFormat | None = None,
    insecure: bool = False,
    ssl_certfile: Path | None = None,
    ssl_keyfile: Path | None = None,
    grpc_port: int | None = None,
) -> None:
    """Load and verify the models first (a bad artifact stops here, clearly), then serve.

    ``log_format``: None takes ``server.log_format`` from the config. ``workers``: a number of
    processes or ``auto`` (serving/workers.py)."""
    config = with_grpc_port(load_config(config_path), grpc_port)
    log_format = log_format or config.server.log_format
    asked = workers
    workers = resolve_workers(workers, gpus=instance_gpus(config))
    options = uvicorn_options(config, host, port) | {"log_level": log_level}
    if log_format == "json":  # uvicorn's own dictConfig would put its text handlers back
        options["log_config"] = None
    options |= tls_options(ssl_certfile, ssl_keyfile)
    configure_logging(log_level, log_format)
    check_exposure(config, options["host"], insecure=insecure, file=str(config_path))
    if asked == AUTO:
        log.info("--workers auto: %d server process(es)", workers)
    if config.server.health_port is not None and workers > 1:
        raise ConfigError(
            "server.health_port serves one process; with --workers > 1 probe /v2/health/* "
            "on the main port", field="server.health_port", file=str(config_path),
        )  # fmt: skip
    # A bad instance, scorer or artifact stops here, naming the file, before any port opens.
    assembly = assemble(config, processes=workers, file=str(config_path))
    if workers > 1:  # each worker process assembles its own; this one only checked
        os.environ[CONFIG_ENV] = str(Path(config_path).resolve())
        os.environ[PROCESSES_ENV] = str(workers)
        os.environ["FRUGAL_LOG_LEVEL"] = log_level
        if config.server.grpc_port is not None:
            check_grpc_port(options["host"], config.server.grpc_port)
            os.environ[GRPC_PORT_ENV] = str(config.server.grpc_port)
            os.environ[GRPC_HOST_ENV] = options["host"]
        os.environ["FRUGAL_LOG_FORMAT"] = log_format
        uvicorn.run("frugal.serving.server:app_from_env", factory=True, workers=workers, **options)
        return
    # The port first: a server that cannot listen stops here, before it opens a ledger run or
    # writes an audit row for models it never served.
    sock = bind(options["host"], options["port"])
    if config.server.grpc_port is not None:
        try:
            check_grpc_port(options["host"], config.server.grpc_port)
        except BaseException:
            sock.close()
            raise
        config = with_grpc_port(config, config.server.grpc_port, host=options["host"])
    try:
        app = FrugalApp(config, engine=start_engine(assembly), freeze_heap=True)
    except BaseException:
        sock.close()
        raise
    _Server(uvicorn.Config(app.asgi, **options), app).run(sockets=[sock])


def instance_gpus(config: FrugalConfig) -> int:
    """The GPUs of the configured instance type (0 for a custom price or a CPU type)."""
    if config.instance.type is None:
        return 0
    spec = load_catalog().get(config.instance.type)
    return spec.gpus if spec is not None else 0


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket on host:port, or an error naming ``--port`` (not a traceback)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InvalidInput(f"cannot listen on {host}:{port}: {exc.strerror}", field="--port",
                           hint="another process holds the port: stop it, or pick another "
                           "with --port") from None  # fmt: skip
    sock.set_inheritable(True)
    return sock


def with_grpc_port(config: FrugalConfig, port: int | None, host: str | None = None) -> FrugalConfig:
    """``config`` with ``--grpc-port`` (and the gRPC server on ``--host``) where given."""
    update: dict[str, Any] = {}
    if port is not None:
        update["grpc_port"] = port
    if host is not None:
        update["host"] = host
    if not update:
        return config
    server = config.server.model_copy(update=update)
    return config.model_copy(update={"server": server})


def check_grpc_port(host: str, port: int) -> None:
    """The gRPC extra is installed and the port is free, or an error naming ``--grpc-port``
    before anything starts."""
    try:
        import grpc  # noqa: F401
        import tritonclient.grpc  # noqa: F401
    except ImportError as exc:
        raise InvalidInput(
            f"serving gRPC needs the `grpc` extra ({exc.name} is not installed)",
            field="--grpc-port", hint="pip install 'frugal[grpc]', or leave --grpc-port out",
        ) from None  # fmt: skip
    if port == 0:
        return
    try:
        bind(host, port).close()
    except InvalidInput as error:
        raise InvalidInput(
            error.message, field="--grpc-port",
            hint="another process holds the port: stop it, or pick another with --grpc-port",
        ) from None  # fmt: skip


def app_from_env() -> Any:
    """The ASGI app of one worker process when ``--workers`` > 1."""
    log_format = os.environ.get("FRUGAL_LOG_FORMAT", "text")
    configure_logging(os.environ.get("FRUGAL_LOG_LEVEL", "info"),
                      "json" if log_format == "json" else "text")  # fmt: skip
    processes = int(os.environ.get(PROCESSES_ENV, "1"))
    grpc_port = os.environ.get(GRPC_PORT_ENV)
    config = with_grpc_port(
        load_config(os.environ[CONFIG_ENV]),
        int(grpc_port) if grpc_port else None,
        host=os.environ.get(GRPC_HOST_ENV) if grpc_port else None,
    )
    return FrugalApp(config, processes=processes, freeze_heap=True).asgi


__all__ = [
    "CONFIG_ENV",
    "app_from_env",
    "check_exposure",
    "is_loopback",
    "serve",
    "tls_options",
    "uvicorn_options",
]
