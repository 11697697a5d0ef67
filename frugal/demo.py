"""``frugal demo``: train the quickstart models, serve them for real, and show what each lever buys
against a naive baseline, in the machine's dollars and in accuracy.

Six runs, each a real ``frugal serve`` process (``frugal.optimize.running_server``) driven over
HTTP by the same load generator as ``frugal profile --http`` (``frugal.optimize.drive``), with the
same traffic: the naive baseline (the large model only, batch 1, no cache), then batching, a
response cache, the small model alone, a cascade and all of them together. Every figure but
latency and accuracy is read from the run's own ledger over its measured window, so the demo
shows what ``frugal report`` would. The first 1,200 digits train both models; the other 597,
shuffled, give 300 to calibrate the cascade's threshold (in-process, ``frugal.optimize.tier_runs``)
and 297 for the traffic, whose answers are compared with their labels.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from frugal.accounting import Report, build_report
from frugal.demo_output import lever_lines, print_results
from frugal.optimize import LoadResult, drive, run_async, running_server

INSTANCE = {"type": "c7i.large"}
TRAIN = slice(0, 1200)
# The other 597 images, shuffled (seeded) into calibration and traffic: the file is ordered by
# writer, so a threshold calibrated on some writers and used on others would not hold.
_UNSEEN = 1200 + np.random.default_rng(0).permutation(597)
CALIBRATE, TRAFFIC = _UNSEEN[:300], _UNSEEN[300:]
# Each server is warmed up (connections opened, first calls made) before its window opens, with
# the calibration images: never the traffic's, so a cache starts its window cold.
WARMUP_S = 0.5


@dataclass(frozen=True, slots=True)
class DemoRun:
    """One run: the server's config and the endpoint the traffic goes to."""

    name: str  # its files: frugal-<name>.yaml, ledger-<name>.db, serve-<name>.log
    label: str  # its row in the table
    lever: str  # its line in the ending (the baseline has none)
    endpoint: str
    max_batch_size: int
    cache: bool = False


# fmt: off
BASELINE = DemoRun("baseline", "naive baseline", "", "digits-large", 1)
RUNS = (
    BASELINE,
    DemoRun("batching", "+ batching", "batching (large model, batch ≤ 64)", "digits-large", 64),
    DemoRun("cache", "+ cache", "batching + response cache (large model)", "digits-large", 64,
            cache=True),
    DemoRun("small", "small only", "right-size (the small model alone, batch ≤ 64)", "digits", 64),
    DemoRun("cascade", "cascade", "cascade (small first, large when unsure, batch ≤ 64)",
            "digits-cascade", 64),
    DemoRun("all", "all levers", "all together (cascade + batching + cache)", "digits-cascade", 64,
            cache=True),
)
# fmt: on


@dataclass(frozen=True, slots=True)
class RunResult:
    """A run's ledger over its measured window, what the client saw in it, and its accuracy."""

    run: DemoRun
    report: Report
    load: LoadResult
    accuracy: float  # share of the distinct traffic images answered right

    @property
    def requests(self) -> int:
        return self.report.total.requests

    def per_1k(self, usd: float) -> float:
        """Dollars per 1,000 of the run's requests."""
        return 1000 * usd / self.requests if self.requests else float("nan")


def train_quickstart_models(dest: Path) -> dict[str, str]:
    """Train the digits models (deterministic) into ``dest``; returns file name -> sha256."""
    import joblib
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    dest.mkdir(parents=True, exist_ok=True)
    x, y = load_digits(return_X_y=True)
    models = {
        "digits-lr.joblib": LogisticRegression(max_iter=2000),
        "digits-svc.joblib": CalibratedClassifierCV(SVC(), ensemble=False),
    }
    shas = {}
    for name, estimator in models.items():
        estimator.fit(x[TRAIN], y[TRAIN])
        joblib.dump(estimator, dest / name)
        shas[name] = hashlib.sha256((dest / name).read_bytes()).hexdigest()
    return shas


def quickstart_config(
    shas: dict[str, str],
    *,
    max_batch_size: int,
    ledger: str,
    cache: bool = False,
    cascade_threshold: float | None = None,
) -> dict[str, Any]:
    """The demo's frugal.yaml: both models, endpoints ``digits`` (small), ``digits-large`` and,
    with a threshold, ``digits-cascade``; ``cache`` gives every endpoint a response cache."""
    inputs = [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}]
    batching = {"max_batch_size": max_batch_size, "max_wait_ms": 2, "max_queue": 4096}
    cached = {"cache": {"ttl_s": 600}} if cache else {}
    endpoints: list[dict[str, Any]] = [
        {"name": "digits", "model": "digits-small", **cached},
        {"name": "digits-large", "model": "digits-large", **cached},
    ]
    if cascade_threshold is not None:
        tiers = [
            {"model": "digits-small", "accept": {"confidence": f">= {cascade_threshold!r}"}},
            {"model": "digits-large"},
        ]
        endpoints.append({"name": "digits-cascade", "route": {"cascade": tiers}, **cached})
    models = [
        {"name": name, "version": "1", "runtime": "sklearn", "path": path, "sha256": shas[path],
         "inputs": inputs, "batching": batching}
        for name, path in (("digits-small", "digits-lr.joblib"),
                           ("digits-large", "digits-svc.joblib"))
    ]  # fmt: skip
    return {"instance": INSTANCE, "models": models, "endpoints": endpoints,
            "ledger": {"path": ledger}}  # fmt: skip


def calibrate_threshold(workdir: Path, shas: dict[str, str], console: Console) -> float:
    """The cascade's confidence threshold, calibrated on 300 images neither model trained on."""
    from sklearn.datasets import load_digits

    from frugal.optimize.tier_runs import calibrate
    from frugal.routing.calibrate import resolve_cascade

    x, y = load_digits(return_X_y=True)
    data = workdir / "digits-calibrate.npz"
    np.savez(data, X=x[CALIBRATE].astype(np.float32), y=y[CALIBRATE])
    config = workdir / "frugal-calibrate.yaml"
    settings = quickstart_config(
        shas, max_batch_size=64, ledger="ledger-calibrate.db", cascade_threshold=0.9
    )
    config.write_text(yaml.safe_dump(settings))
    # 210 calibration items cannot vouch for half a point at 90% (that takes about 600 with
    # no loss seen: docs/routing.md#confidence), so the demo asks for 2 points.
    result = calibrate(
        resolve_cascade(config, "digits-cascade"), data, max_drop=0.02, holdout=0.3,
        progress=False, confidence=0.9,
    )  # fmt: skip
    if result.chosen is None:  # no threshold keeps the large model's accuracy: escalate all
        console.print("calibration: no threshold within 2 points of large-only; using >= 1")
        return 1.0
    threshold = result.chosen.thresholds[0]
    console.print(
        f"calibrated on 300 unseen images: accept the small model at confidence >= "
        f"{threshold:g} ({100 * result.chosen.escalation_rate:.0f}% escalated; "
        f"within 2 points of large-only at 90% confidence)"
    )
    return threshold


@dataclass(frozen=True, slots=True)
class Traffic:
    """The same requests for every run: traffic images drawn by Zipf(1.1) rank, as real traffic
    repeats popular inputs; ``picks[k]`` is the image of request ``k``."""

    bodies: list[bytes]
    picks: list[int]
    labels: list[int]  # the label of each image, by image
    warmup: list[bytes]  # the calibration images: never part of the traffic

    @classmethod
    def draw(cls, n_requests: int) -> Traffic:
        from sklearn.datasets import load_digits

        x, y = load_digits(return_X_y=True)
        rows = [_body(row) for row in x[TRAFFIC]]
        ranks = np.arange(1, len(rows) + 1, dtype=np.float64) ** -1.1
        picks = np.random.default_rng(0).choice(len(rows), size=n_requests, p=ranks / ranks.sum())
        return cls(
            bodies=[rows[i] for i in picks],
            picks=[int(i) for i in picks],
            labels=[int(label) for label in y[TRAFFIC]],
            warmup=[_body(row) for row in x[CALIBRATE]],
        )

    @property
    def distinct_images(self) -> int:
        return len(set(self.picks))

    def accuracy(self, answers: Sequence[tuple[int, bytes]]) -> float:
        """The share of the distinct images sent whose every answer was right: accuracy on the
        images, not on the Zipf draw, which a few popular images would decide."""
        right: dict[int, bool] = {}
        for k, body in answers:
            image = self.picks[k]
            right[image] = right.get(image, True) and _prediction(body) == self.labels[image]
        return sum(right.values()) / len(right) if right else 0.0


def _body(row: np.ndarray) -> bytes:
    return b'{"instances": [[' + ",".join(f"{v:g}" for v in row).encode() + b"]]}"


def _prediction(body: bytes) -> Any:
    with contextlib.suppress(ValueError, KeyError, IndexError, TypeError):
        return json.loads(body)["predictions"][0]
    return None


def run_demo(*, n_requests: int, connections: int, workdir: Path | None) -> list[RunResult]:
    """Train, calibrate, then measure every run of ``RUNS`` in turn and print what each costs."""
    console = Console(width=None if sys.stdout.isatty() else 150)  # a piped table stays whole
    workdir = Path(tempfile.mkdtemp(prefix="frugal-demo-")) if workdir is None else workdir
    workdir.mkdir(parents=True, exist_ok=True)
    with console.status("training the quickstart models (scikit-learn digits)"):
        shas = train_quickstart_models(workdir)
    console.print(f"models, configs and ledgers in [bold]{workdir}[/]")
    with console.status("calibrating the cascade's threshold"):
        threshold = calibrate_threshold(workdir, shas, console)
    traffic = Traffic.draw(n_requests)
    results = []
    for run in RUNS:
        settings = quickstart_config(
            shas, max_batch_size=run.max_batch_size, ledger=f"ledger-{run.name}.db",
            cache=run.cache, cascade_threshold=threshold,
        )  # fmt: skip
        results.append(measure(run, settings, traffic, connections, workdir, console))
    _write_windows(results, workdir)
    print_results(console, results, connections=connections, workdir=workdir)
    for line in lever_lines(results, distinct_images=traffic.distinct_images):
        console.print(line, markup=False, highlight=False, soft_wrap=True)  # one line each
    return results


def measure(
    run: DemoRun,
    settings: dict[str, Any],
    traffic: Traffic,
    connections: int,
    workdir: Path,
    console: Console,
) -> RunResult:
    """Serve ``settings`` in a fresh process, send it the traffic, stop it (its ledger flushed),
    and read the ledger over the measured window."""
    ledger = workdir / f"ledger-{run.name}.db"
    ledger.unlink(missing_ok=True)  # a rerun in the same folder starts a fresh ledger
    config = workdir / f"frugal-{run.name}.yaml"
    config.write_text(yaml.safe_dump(settings, sort_keys=False))
    log = workdir / f"serve-{run.name}.log"
    with running_server(config, log_path=log) as (base, _pid), _progress(console) as progress:
        task = progress.add_task(run.label, total=len(traffic.bodies))
        load = run_async(
            drive(
                f"{base}/v1/endpoints/{run.endpoint}/predict", traffic.bodies, connections,
                requests=len(traffic.bodies), warmup_s=WARMUP_S, warmup_bodies=traffic.warmup,
                keep_answers=True, on_request=lambda: progress.advance(task),
            )
        )  # fmt: skip
    report = build_report(ledger, since=load.since, until=load.until)
    return RunResult(run, report, load, traffic.accuracy(load.answers))


def _write_windows(results: Sequence[RunResult], workdir: Path) -> None:
    """``runs.json``: each run's files and measured window, to rebuild any figure with
    ``frugal report`` (or ``build_report``) over the same window."""
    runs = [
        {"name": r.run.name, "label": r.run.label, "endpoint": r.run.endpoint,
         "config": f"frugal-{r.run.name}.yaml", "ledger": f"ledger-{r.run.name}.db",
         "since": r.load.since, "until": r.load.until, "accuracy": r.accuracy,
         "client_errors": r.load.errors}
        for r in results
    ]  # fmt: skip
    (workdir / "runs.json").write_text(json.dumps({"runs": runs}, indent=2) + "\n")


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,  # piped, a live bar would leave only blank lines
    )


__all__ = ["RUNS", "DemoRun", "RunResult", "quickstart_config", "run_demo",
           "train_quickstart_models"]  # fmt: skip
