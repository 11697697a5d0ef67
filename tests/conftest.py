"""Shared fixtures: real models trained here from scikit-learn's bundled data, real servers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest
import uvicorn
import yaml
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from frugal.accounting import SqliteLedger
from frugal.config import FrugalConfig, load_config
from frugal.optimize import free_port
from frugal.runtimes import sha256_of
from frugal.serving import Engine, FrugalApp, build_engine
from frugal.serving.protocol import FrugalHttpProtocol
from tests.waiting import eventually

DIGITS_INPUTS = [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}]
TEST_INSTANCE = {"price_usd_per_hour": 0.36, "slots": 2}
START_TIMEOUT_S = 60.0  # a server's start-up on the shared CI machine (imports, model loads)


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    return x.astype(np.float32), y


@pytest.fixture(scope="session")
def digits_model_file(tmp_path_factory: pytest.TempPathFactory, digits: Any) -> Path:
    """A LogisticRegression trained on the first 1200 digits, saved with joblib."""
    x, y = digits
    path = tmp_path_factory.mktemp("models") / "digits-lr.joblib"
    joblib.dump(LogisticRegression(max_iter=2000).fit(x[:1200], y[:1200]), path)
    return path


@pytest.fixture(scope="session")
def digit_versions(tmp_path_factory: pytest.TempPathFactory, digits: Any) -> dict[str, Path]:
    """Two versions of one classifier for splits and shadows: "1" is weak (300 rows, strongly
    regularized), "2" strong (1200 rows); they disagree on some items."""
    x, y = digits
    folder = tmp_path_factory.mktemp("versions")
    paths = {"1": folder / "v1.joblib", "2": folder / "v2.joblib"}
    joblib.dump(LogisticRegression(C=0.01, max_iter=3000).fit(x[:300], y[:300]), paths["1"])
    joblib.dump(LogisticRegression(max_iter=3000).fit(x[:1200], y[:1200]), paths["2"])
    return paths


# An answer's x-frugal-cost-usd is its model share plus the server's own work per request in the
# interval before (docs/cost-model.md); on the test instance that share is under a second's price.
MAX_OVERHEAD_SHARE_USD = TEST_INSTANCE["price_usd_per_hour"] / 3600


def assert_charged(header: str, model_usd: float) -> None:
    """The header's dollars are the model's (to its 7 digits) plus at most one overhead share."""
    charged = float(header)
    assert model_usd * (1 - 1e-5) <= charged <= model_usd * (1 + 1e-5) + MAX_OVERHEAD_SHARE_USD


def digits_config(model_file: Path, tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    """A frugal.yaml mapping serving the digits model as endpoint ``digits``."""
    batching = {"max_batch_size": 32, "max_wait_ms": 2, "max_queue": 1024, "timeout_ms": 5000}
    batching.update(overrides.pop("batching", {}))
    config: dict[str, Any] = {
        "instance": TEST_INSTANCE,
        "models": [
            {
                "name": "digits",
                "version": "1",
                "runtime": "sklearn",
                "path": str(model_file),
                "sha256": sha256_of(model_file),
                "inputs": DIGITS_INPUTS,
                "batching": batching,
            }
        ],
        "endpoints": [{"name": "digits", "model": "digits"}],
        "ledger": {
            "path": str(tmp_path / "ledger.db"),
            "flush_interval_ms": 20,
            "cost_interval_ms": 20,
        },
    }
    config.update(overrides)
    return config


def write_config(tmp_path: Path, data: dict[str, Any], name: str = "frugal.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


class ServerInThread:
    """The real app under uvicorn on 127.0.0.1, in a thread (as httpx's tests serve)."""

    def __init__(self, config: FrugalConfig, **options: Any) -> None:
        if "max_loop_lag_ms" not in config.server.model_fields_set:
            # The test's client shares this process, and its GIL, with an in-thread server: the
            # loop's lag would measure the test harness and shed its bursts at random. Shedding
            # by lag is tested against real server processes (tests/hostile/test_overload.py).
            server = config.server.model_copy(update={"max_loop_lag_ms": None})
            config = config.model_copy(update={"server": server})
        self.app = FrugalApp(config, engine=build_engine(config))
        self.port = free_port()
        scheme = "https" if "ssl_certfile" in options else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        uv_config = uvicorn.Config(
            self.app.asgi,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=None,
            **({"http": FrugalHttpProtocol} | options),
        )
        self.server = uvicorn.Server(uv_config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerInThread:
        self.thread.start()
        # uvicorn exposes no start event: watch its flag, or the thread ending without it.
        eventually(lambda: self.server.started or not self.thread.is_alive(),
                   f"uvicorn to start on port {self.port}", timeout_s=START_TIMEOUT_S)  # fmt: skip
        if not self.server.started:
            raise RuntimeError("test server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    @property
    def engine(self) -> Any:
        return self.app.engine


class ServerProcess:
    """``python -m frugal serve CONFIG ARGS`` as a real process on a free port, until exit.

    For what an in-process server cannot show: start-up refusals, signals, and a server whose
    warnings are not turned into errors by pytest's filters."""

    def __init__(self, config: Path, *args: str, host: str = "127.0.0.1") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = config.parent / f"serve-{self.port}.log"
        self.command = [sys.executable, "-m", "frugal", "serve", str(config), "--host", host,
                        "--port", str(self.port), *args]  # fmt: skip
        self.env = os.environ | {"PYTHONPATH": str(Path(__file__).parents[1])}
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServerProcess:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                            env=self.env)  # fmt: skip
        try:
            eventually(self._ready, f"frugal serve to be ready on port {self.port}",
                       timeout_s=START_TIMEOUT_S, interval_s=0.05,
                       ignoring=(httpx.HTTPError,))  # fmt: skip
        except (AssertionError, RuntimeError) as exc:
            self.__exit__()
            raise RuntimeError(f"{exc}; its log:\n{self.log_text()}") from None
        return self

    def _ready(self) -> bool:
        """The process answers ready, or has exited (which ends the wait at once)."""
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"frugal serve exited with {self.process.returncode}")
        return httpx.get(f"{self.url}/v2/health/ready", timeout=2).status_code == 200

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def sqlite_ledger(engine: Engine) -> SqliteLedger:
    """The engine's ledger as the SQLite store every test config builds (to close it)."""
    ledger = engine.recorder.ledger
    assert isinstance(ledger, SqliteLedger), ledger
    return ledger


@pytest.fixture
def serve() -> Iterator[Any]:
    """``serve(config, **uvicorn_options)`` starts a real server; all stop after the test."""
    servers: list[ServerInThread] = []

    def start(config: FrugalConfig | Path, **options: Any) -> ServerInThread:
        cfg = load_config(config) if isinstance(config, Path) else config
        server = ServerInThread(cfg, **options).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__()
