"""Running the app under uvicorn, with readiness that turns false the moment SIGTERM arrives."""

from __future__ import annotations

import logging
import os
import types
from pathlib import Path
from typing import Any

import uvicorn

from frugal.accounting import resolve_pricer
from frugal.config import FrugalConfig, load_config
from frugal.runtimes import load_model
from frugal.serving.app import FrugalApp, build_engine

CONFIG_ENV = "FRUGAL_CONFIG"
PROCESSES_ENV = "FRUGAL_PROCESSES"


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FrugalApp) -> None:
        super().__init__(config)
        self.frugal = app

    def handle_exit(self, sig: int, frame: types.FrameType | None) -> None:
        # Load balancers stop sending as soon as readiness fails; queued work is still answered.
        if self.frugal._engine is not None:
            self.frugal.engine.ready = False
        super().handle_exit(sig, frame)
        # uvicorn re-raises the signal once shut down (exit -15); a drained shutdown exits 0.
        self._captured_signals.clear()


def uvicorn_options(config: FrugalConfig, host: str | None, port: int | None) -> dict[str, Any]:
    options: dict[str, Any] = {
        "host": host or config.server.host,
        "port": config.server.port if port is None else port,
        "lifespan": "on",
        "access_log": False,
        "proxy_headers": False,  # clients are not behind a trusted proxy by default
        "server_header": False,
        "timeout_graceful_shutdown": None,  # wait for every queued request: nothing is dropped
    }
    try:
        import uvloop  # noqa: F401

        options["loop"] = "uvloop"
    except ImportError:
        options["loop"] = "asyncio"
    try:
        import httptools  # noqa: F401

        options["http"] = "httptools"
    except ImportError:
        options["http"] = "h11"
    return options


def serve(
    config_path: Path,
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int = 1,
    log_level: str = "info",
) -> None:
    """Load and verify the models first (a bad artifact stops here, clearly), then serve."""
    config = load_config(config_path)
    options = uvicorn_options(config, host, port) | {"log_level": log_level}
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s: %(name)s: %(message)s")
    if workers > 1:
        resolve_pricer(
            config.instance, file=str(config_path)
        )  # fail fast on a bad instance or artifact, before forking
        for model in config.models:
            load_model(model)
        os.environ[CONFIG_ENV] = str(Path(config_path).resolve())
        os.environ[PROCESSES_ENV] = str(workers)
        os.environ["FRUGAL_LOG_LEVEL"] = log_level
        uvicorn.run("frugal.serving.server:app_from_env", factory=True, workers=workers, **options)
        return
    resolve_pricer(config.instance, file=str(config_path))  # an unknown type names the file
    app = FrugalApp(config, engine=build_engine(config))
    _Server(uvicorn.Config(app.asgi, **options), app).run()


def app_from_env() -> Any:
    """The ASGI app of one worker process when ``--workers`` > 1."""
    level = os.environ.get("FRUGAL_LOG_LEVEL", "info").upper()
    logging.basicConfig(level=level, format="%(levelname)s: %(name)s: %(message)s")
    processes = int(os.environ.get(PROCESSES_ENV, "1"))
    return FrugalApp(load_config(os.environ[CONFIG_ENV]), processes=processes).asgi


__all__ = ["CONFIG_ENV", "app_from_env", "serve", "uvicorn_options"]
