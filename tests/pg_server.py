"""A real PostgreSQL server on 127.0.0.1 for the PostgreSQL ledger's tests (Debian's package).

Debian keeps the server's programs off PATH (``pg_config --bindir`` or
``/usr/lib/postgresql/<major>/bin``). ``initdb`` and ``postgres`` refuse to run as root, and
sessions and CI run as root: there the cluster belongs to Debian's ``postgres`` user. The
cluster trusts loopback logins (no password: it listens on 127.0.0.1 only, on a free port, and
lives in a temp folder for the session), and skips fsync: a test cluster need not survive a
power cut. Without PostgreSQL the tests skip; in CI (``CI`` set) they fail instead, so a broken
install step cannot hide behind skips.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from frugal.optimize import free_port
from tests.waiting import eventually

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
SUPERUSER = "postgres"


def find_bindir() -> Path | None:
    """The folder of ``initdb`` and ``postgres``, or None where PostgreSQL is not installed."""
    candidates: list[str] = []
    if shutil.which("pg_config"):
        result = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        candidates.append(result.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)  # newest first
    if shutil.which("initdb"):
        candidates.append(str(Path(shutil.which("initdb") or "").resolve().parent))
    for folder in candidates:
        if folder and (Path(folder) / "initdb").is_file() and (Path(folder) / "postgres").is_file():
            return Path(folder)
    return None


def require_postgres() -> Path:
    """The server's bindir and psycopg, or skip (fail in CI) saying what is missing."""
    bindir = find_bindir()
    missing = None
    if bindir is None:
        missing = "PostgreSQL is not installed (apt-get install postgresql)"
    else:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            missing = "psycopg is not installed (pip install 'frugal[postgres]')"
    if missing is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{missing}: scripts/install sets it up in CI")
        pytest.skip(missing)
    assert bindir is not None
    return bindir


class PostgresServer:
    """One PostgreSQL cluster in its own folder; ``stop`` and ``start`` it on the same port."""

    def __init__(self, bindir: Path, port: int | None = None) -> None:
        self.bindir = bindir
        self.port = port if port is not None else free_port()
        # Not under pytest's tmp folder: that is root's (mode 700), and the server may run as
        # the postgres user, which must reach its data folder.
        self.folder = Path(tempfile.mkdtemp(prefix="frugal-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "postgres.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.as_user = SUPERUSER if os.geteuid() == 0 else None
        if self.as_user is not None:
            entry = pwd.getpwnam(self.as_user)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        self._run([str(bindir / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "-A", "trust",
                   "--no-sync", "-E", "UTF8", "--locale=C"])  # fmt: skip
        self.start()

    @property
    def url(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    def url_of(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _run(self, command: list[str]) -> None:
        result = subprocess.run(command, capture_output=True, text=True, user=self.as_user,
                                cwd=self.folder)  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {result.stderr or result.stdout}")

    def start(self) -> None:
        command = [
            str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port),
            "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
            "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            "-c", "max_connections=50",
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            user=self.as_user, cwd=self.folder)  # fmt: skip
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_until_ready(self) -> None:
        import psycopg

        def answers() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.process.returncode}: "
                                   f"{self.log.read_text(errors='replace')}")  # fmt: skip
            with psycopg.connect(self.url, connect_timeout=2) as db:
                return db.execute("SELECT 1").fetchone() == (1,)

        # The server gives no readiness signal but accepting a login.
        eventually(answers, f"postgres on port {self.port}", timeout_s=START_TIMEOUT_S,
                   interval_s=0.05, ignoring=(psycopg.OperationalError,))  # fmt: skip

    def stop(self) -> None:
        """Fast shutdown (SIGINT: connections are cut, as when a server goes away), and wait."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def create_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url, autocommit=True) as db:
            db.execute(f"CREATE DATABASE {name}")  # a made-up name
        return self.url_of(name)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the session; tests keep apart by database (``pg_url``)."""
    server = PostgresServer(require_postgres())
    yield server
    server.remove()


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    """The URL of a fresh database of the session's cluster."""
    return postgres.create_database()


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A cluster of the test's own, which the test may stop and start."""
    server = PostgresServer(require_postgres())
    yield server
    server.remove()
