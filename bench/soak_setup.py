"""The soak's setup and readings: the server's frugal.yaml, this process's limits, and what it
reads from the server's /proc and ledger. bench/soak.py's command is the way in.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import resource
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


class SoakError(Exception):
    """Bad input: the message says what to change (exit 2)."""


def set_nice(value: int) -> int | None:
    """Sets this thread's nice value, and its session's autogroup's where Linux groups sessions
    (sched_autogroup: nice acts only within a session, and `frugal serve`, started with a session
    of its own, keeps its share); threads and processes started later inherit it. Returns it, or
    None when the system refuses (no privilege)."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, value)
    except OSError:
        return None
    try:
        Path("/proc/self/autogroup").write_text(str(value))
    except OSError:
        pass  # no autogroups (or not allowed): the thread's nice is all there is
    return value


def raise_open_files(wanted: int) -> int:
    """Raises this process's open-file limit toward ``wanted`` (the server, started from here,
    inherits it, as a service's LimitNOFILE would give it); returns the limit now in force.

    Open loop means one connection per request in flight: at 10x an overloaded server holds
    thousands, and the usual 1,024 would turn the generator's own limit into connection errors.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


# --------------------------------------------------------------------------- the server's config


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """``models.0.batching.max_queue=64``: set that field of the config mapping (YAML value)."""
    import yaml

    path, sep, raw = assignment.partition("=")
    if not sep or not path:
        raise SoakError(f"--set {assignment!r}: write PATH=VALUE, e.g. server.max_concurrency=64")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise SoakError(f"--set {path}: the value is not YAML: {exc}") from None
    node: Any = data
    parts = path.split(".")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise SoakError(
                    f"--set {path}: {'.'.join(parts[:i]) or 'the root'} is a list "
                    f"of {len(node)}; {part!r} is not an index in it"
                )
            key: Any = int(part)
        elif isinstance(node, dict):
            key = part
        else:
            raise SoakError(f"--set {path}: {'.'.join(parts[:i])} is a value, not a mapping")
        if last:
            node[key] = value
        else:
            if isinstance(node, dict) and key not in node:
                node[key] = {}
            node = node[key]


def write_config(args: argparse.Namespace, workdir: Path, redis_url: str) -> Path:
    """frugal.yaml for the server under test, checked by frugal's own loader (bad --set: exit 2)."""
    import yaml

    from frugal.config import load_config
    from frugal.errors import FrugalError
    from frugal.runtimes import sha256_of

    model_file = BENCH / "soak_model.py"
    data: dict[str, Any] = {
        "instance": {"type": "c7i.large"},
        "models": [
            {
                "name": "digits",
                "version": "1",
                "runtime": "python",
                "factory": "soak_model:make",
                "path": str(model_file),
                "sha256": sha256_of(model_file),
                "options": {"item_ms": args.item_ms, "batch_ms": args.batch_ms},
                "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}],
                "batching": {"max_batch_size": args.max_batch_size, "timeout_ms": args.timeout_ms},
            }
        ],
        "endpoints": [
            {
                "name": "digits",
                "model": "digits",
                "cache": {"store": "redis", "redis_url": redis_url, "ttl_s": 600},
            }
        ],
        "ledger": {"path": "ledger.db"},
    }
    for assignment in args.overrides:
        apply_override(data, assignment)
    path = workdir / "frugal.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    try:
        config = load_config(path)
    except FrugalError as exc:
        raise SoakError(f"the server's config (after --set) is invalid: {exc}") from None
    args.timeout_ms = config.models[0].batching.timeout_ms
    args.max_batch_size = config.models[0].batching.max_batch_size
    return path


# --------------------------------------------------------------------------- measuring


def rss_mib(pid: int) -> float:
    """VmRSS of the server's process tree, from /proc/<pid>/status (and its children's)."""
    import loadgen

    return float(loadgen.memory_mib(pid)["rss_mib"])


def ledger_rows(path: Path) -> list[tuple[str, int]]:
    """(request_id, status) of every request row in the stopped server's ledger; shadow copies
    are no answers."""
    if not path.exists():
        return []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        try:
            return db.execute("SELECT request_id, status FROM requests WHERE shadow = 0").fetchall()
        except sqlite3.OperationalError:  # no requests table: the server never opened it
            return []


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()}-core {cpu}, {platform.system()} {platform.release()}, no GPU"


def commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def finite(value: Any) -> Any:
    """The report with nan/inf as null, so that --json writes standard JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value
