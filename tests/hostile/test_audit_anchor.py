"""Issue 14, finding 7: the audit chain is anchored outside its database.

A real ``frugal serve`` with ``ledger.audit_key_file`` and ``ledger.audit_head_file`` appends to
the chain (model loads, keys created through the admin API by a key the CLI made); then someone
who can write the ledger, but holds neither the key nor the head file, attacks it, and
``python -m frugal audit verify`` (a real process) must say no.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from frugal.access.audit import GENESIS, row_hash
from tests.conftest import ServerProcess, digits_config

REPO = Path(__file__).parents[2]
HEAD_LINE = re.compile(r"audit head (\d+:[0-9a-f]{64}) after")


def frugal(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m frugal ARGS`` in ``cwd``, as an operator runs it."""
    env = os.environ | {"PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "frugal", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60, env=env)  # fmt: skip


def write_config(folder: Path, model_file: Path) -> Path:
    """frugal.yaml with relative paths, so a copy of the folder is a setup of its own."""
    data = digits_config(model_file, folder)
    data["ledger"] |= {"path": "ledger.db", "audit_key_file": "audit.key",
                       "audit_head_file": "heads/audit.head"}  # fmt: skip
    data["auth"] = {"keys": "keys.db", "reload_interval_s": 0.05}
    path = folder / "frugal.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def admin_creates_keys(server: ServerProcess, admin: str, *names_roles: tuple[str, str]) -> None:
    for name, role in names_roles:
        response = httpx.post(f"{server.url}/admin/keys", json={"name": name, "role": role},
                              headers={"authorization": f"Bearer {admin}"}, timeout=10)  # fmt: skip
        assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, digits_model_file: Path) -> Path:
    """A folder whose chain a real server and the CLI wrote: 4 keyed rows, heads exported."""
    folder = tmp_path_factory.mktemp("anchored")
    write_config(folder, digits_model_file)
    made = frugal("audit", "new-key", "audit.key", cwd=folder)
    assert made.returncode == 0, made.stderr
    created = frugal("keys", "create", "--name", "ops", "--role", "admin", cwd=folder)  # row 1
    assert created.returncode == 0, created.stderr
    assert re.search(r"^audit head 1:[0-9a-f]{64}$", created.stderr, re.M), created.stderr
    with ServerProcess(folder / "frugal.yaml") as server:  # row 2: model.load
        admin_creates_keys(server, created.stdout.strip(), ("reader", "viewer"), ("team", "user"))
    log = server.log_text()
    assert [m.split(":")[0] for m in HEAD_LINE.findall(log)] == ["2", "3", "4"], log
    (folder / "last-logged-head").write_text(HEAD_LINE.findall(log)[-1])
    return folder


@pytest.fixture
def setup(served: Path, tmp_path: Path) -> Path:
    """A private copy of the served folder for one attack."""
    return Path(shutil.copytree(served, tmp_path / "copy"))


def verify(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``frugal audit verify ARGS`` in ``folder``: with its frugal.yaml, the config's anchors."""
    return frugal("audit", "verify", *args, cwd=folder)


def test_the_untouched_chain_verifies_against_key_and_head(setup: Path) -> None:
    """Keyed rows, the head file and the head the log printed all agree: exit 0."""
    head = (setup / "heads" / "audit.head").read_text().strip()
    assert head == (setup / "last-logged-head").read_text()
    done = verify(setup)
    assert done.returncode == 0, done.stderr
    assert "audit log intact: 4 rows" in done.stdout
    assert "4 rows keyed with key" in done.stdout
    assert f"expected head {head} (" in done.stdout and "found at row 4 (the head)" in done.stdout
    with sqlite3.connect(setup / "ledger.db") as db:
        schemes = {s for (s,) in db.execute("SELECT scheme FROM audit")}
    assert len(schemes) == 1 and schemes.pop().startswith("hmac-sha256:")


@pytest.mark.parametrize(
    ("relabel_from", "reason"),
    [
        (None, "BROKEN at row 3: was edited"),  # rows keep their hmac-sha256 label
        (3, "BROKEN at row 3: is unkeyed after keyed rows"),  # rewritten rows say sha256
        (1, "none of the 4 rows is keyed, yet a key was given"),  # every row says sha256
    ],
)
def test_a_row_edited_and_every_later_row_rehashed_fails(
    setup: Path, relabel_from: int | None, reason: str
) -> None:
    """viewer -> admin in row 3, rows 3.. re-hashed with the public formula: exit 1."""
    with sqlite3.connect(setup / "ledger.db") as db:
        rows = db.execute("SELECT seq, ts, actor, action, target, detail, hash, scheme FROM audit "
                          "ORDER BY seq").fetchall()  # fmt: skip
        assert '"role":"viewer"' in rows[2][5]
        prev = GENESIS
        for seq, ts, actor, action, target, detail, digest, scheme in rows:
            if seq >= 3 or relabel_from == 1:
                detail = detail.replace('"role":"viewer"', '"role":"admin"')
                digest = row_hash(seq, ts, actor, action, target, detail, prev)
                if relabel_from is not None:
                    scheme = "sha256"
                db.execute("UPDATE audit SET detail = ?, prev_hash = ?, hash = ?, scheme = ? "
                           "WHERE seq = ?", (detail, prev, digest, scheme, seq))  # fmt: skip
            prev = digest
    done = verify(setup)
    assert done.returncode == 1, done.stdout + done.stderr
    assert reason in done.stderr and "Traceback" not in done.stderr


def test_a_dropped_table_fails(setup: Path) -> None:
    """DROP TABLE audit is exit 1 naming the missing table, not an empty valid chain."""
    with sqlite3.connect(setup / "ledger.db") as db:
        db.execute("DROP TABLE audit")
    done = verify(setup, "--ledger", "ledger.db")
    assert done.returncode == 1
    assert "audit log BROKEN: the ledger has no audit table" in done.stderr


def test_deleted_newest_rows_fail_the_expected_head(setup: Path, tmp_path: Path) -> None:
    """Rows 3-4 deleted leave a valid keyed chain; the exported head shows the truncation."""
    with sqlite3.connect(setup / "ledger.db") as db:
        db.execute("DELETE FROM audit WHERE seq >= 3")
    logged = (setup / "last-logged-head").read_text()
    ledger, key = str(setup / "ledger.db"), str(setup / "audit.key")
    outside = tmp_path  # no frugal.yaml here: only what the command line names applies
    plain = verify(outside, "--ledger", ledger, "--key-file", key)
    assert plain.returncode == 0 and "audit log intact: 2 rows" in plain.stdout
    for expected in (logged, f"@{setup / 'heads' / 'audit.head'}", logged.split(":")[1]):
        done = verify(outside, "--ledger", ledger, "--key-file", key, "--expect-head", expected)
        assert done.returncode == 1, (expected, done.stdout)
        assert "audit log BROKEN" in done.stderr and "rows were deleted" in done.stderr
    done = verify(setup)  # the config's head file is checked without being asked
    assert done.returncode == 1 and "is not in the chain, which ends at row 2" in done.stderr


def test_a_table_dropped_under_a_running_server_keeps_failing(setup: Path) -> None:
    """After DROP TABLE the server's next append starts a new chain; the head file keeps the
    old head, so verify still fails and the server's log says why."""
    created = frugal("keys", "create", "--name", "mallory", "--role", "admin", cwd=setup)
    assert created.returncode == 0, created.stderr  # row 5, exported
    with sqlite3.connect(setup / "ledger.db") as db:
        db.execute("DROP TABLE audit")
    with ServerProcess(setup / "frugal.yaml") as server:  # a new row 1: model.load
        admin_creates_keys(server, created.stdout.strip(), ("other", "user"))
    assert "the chain changed without the file" in server.log_text()
    assert (setup / "heads" / "audit.head").read_text().startswith("5:")
    done = verify(setup)
    assert done.returncode == 1 and "the expected head 5:" in done.stderr


def test_bad_input_exits_2(setup: Path, tmp_path: Path) -> None:
    """A missing ledger, a keyed chain without its key, a wrong key, a bad head: exit 2."""
    other = tmp_path / "other.key"
    assert frugal("audit", "new-key", str(other), cwd=setup).returncode == 0
    (setup / "loose.key").write_text("k" * 64)
    (setup / "loose.key").chmod(0o644)
    ledger = str(setup / "ledger.db")
    cases: list[tuple[Path, tuple[str, ...], str]] = [
        (setup, ("--ledger", "missing.db"), "no ledger here yet"),
        (tmp_path, ("--ledger", ledger), "rows 1-4 are keyed (HMAC-SHA256, key "),
        (tmp_path, ("--ledger", ledger, "--key-file", str(other)), "but the key given is key"),
        (setup, ("--key-file", "nope.key"), "--key-file: the audit key file does not exist"),
        (setup, ("--key-file", "loose.key"), "open to other users (mode 0644)"),
        (setup, ("--expect-head", "12:abc"), "--expect-head: expected SEQ:HASH"),
        (setup, ("--expect-head", "@nope.head"), "--expect-head: no such head file"),
    ]
    for cwd, args, message in cases:
        done = verify(cwd, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)


def test_a_process_without_the_key_cannot_append_to_a_keyed_chain(
    setup: Path, digits_model_file: Path, tmp_path: Path
) -> None:
    """The CLI with a config that lacks the key refuses before it changes anything."""
    data: dict[str, Any] = yaml.safe_load((setup / "frugal.yaml").read_text())
    del data["ledger"]["audit_key_file"]
    (setup / "nokey.yaml").write_text(yaml.safe_dump(data))
    done = frugal("keys", "create", "--name", "sneaky", "--config", "nokey.yaml", cwd=setup)
    assert done.returncode == 2 and "the audit chain is keyed" in done.stderr
    listed = frugal("keys", "list", "--config", "nokey.yaml", cwd=setup)
    assert "sneaky" not in listed.stdout
    assert verify(setup).returncode == 0


def test_a_missing_audit_key_stops_validate_and_serve_before_any_row(
    tmp_path: Path, digits_model_file: Path
) -> None:
    """`serve` read the key only after the models loaded and the ledger run was opened."""
    write_config(tmp_path, digits_model_file)  # names audit.key, which does not exist
    for command in (("validate", "frugal.yaml"), ("serve", "frugal.yaml", "--port", "0")):
        done = frugal(*command, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert "ledger.audit_key_file" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "ledger.db").exists()
