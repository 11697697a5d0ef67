"""Issue 14, finding 1 and two of 9: slow clients cannot hold the server, its slots or its
shutdown; headers are bounded while they arrive; a failed start leaves no trace.

Each test runs a real `frugal serve` process and talks to it over raw sockets (tests/hostile/
raw_http.py), because no polite client sends a body one byte at a time.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from frugal.optimize import free_port
from tests.conftest import ServerProcess, digits_config, write_config
from tests.hostile.raw_http import closed_by_server, connect, read_reply, request_head
from tests.hostile.readings import gauge, ledger_statuses
from tests.llm_double import LLMDouble
from tests.serving.test_openai_api import llm_config, llm_model
from tests.serving.test_shutdown import SLOW_MODEL, queue_depth
from tests.waiting import eventually

PREDICT = "/v1/endpoints/digits/predict"
BODY = b'{"instances": [' + b",".join([b"[0.0" + b",0.0" * 63 + b"]"]) + b"]}"


def start_slow_body(url: str, declared: int = 100_000) -> socket.socket:
    """A request whose headers arrive at once and whose body never finishes (one byte sent)."""
    sock = connect(url)
    sock.sendall(request_head(PREDICT, declared) + b"{")
    return sock


def test_a_body_that_does_not_arrive_in_time_is_answered_408_and_recorded(
    tmp_path: Path, digits_model_file: Path
) -> None:
    server = {"body_timeout_s": 1.5}
    config = write_config(tmp_path, digits_config(digits_model_file, tmp_path, server=server))
    with ServerProcess(config) as process:
        sock = start_slow_body(process.url)
        reply = read_reply(sock)  # before the fix: no answer until the client gave up
        sock.close()
        assert reply.status == 408, reply
        assert reply.json()["field"] == "body"
        assert "server.body_timeout_s" in reply.json()["error"]
    assert ledger_statuses(tmp_path / "ledger.db") == [408]


def test_headers_that_do_not_arrive_in_time_close_the_connection(
    tmp_path: Path, digits_model_file: Path
) -> None:
    server = {"header_timeout_s": 1.0}
    config = write_config(tmp_path, digits_config(digits_model_file, tmp_path, server=server))
    with ServerProcess(config) as process:
        half = connect(process.url)
        half.sendall(b"POST " + PREDICT.encode() + b" HTTP/1.1\r\nhost: x\r\n")  # never ends
        silent = connect(process.url)  # connects and sends nothing at all
        reply = read_reply(half)
        assert reply.status == 408
        assert reply.json()["field"] == "headers"
        assert closed_by_server(half)
        assert closed_by_server(silent)
        half.close()
        silent.close()
        # The server goes on answering everyone else.
        ok = httpx.post(process.url + PREDICT, content=BODY, timeout=10)
        assert ok.status_code == 200


def test_headers_over_the_limit_are_refused_while_they_arrive(
    tmp_path: Path, digits_model_file: Path
) -> None:
    """431 once the cap is passed, before the headers end: 64 KiB sent of a header that never
    ends gets its answer (uvicorn alone waits for the end of the headers, 8 MB or not)."""
    config = write_config(tmp_path, digits_config(digits_model_file, tmp_path))
    with ServerProcess(config) as process:
        sock = connect(process.url)
        sock.sendall(b"POST " + PREDICT.encode() + b" HTTP/1.1\r\nx-big: " + b"a" * 65_536)
        reply = read_reply(sock)
        assert reply.status == 431
        assert reply.json()["field"] == "headers"
        assert closed_by_server(sock)
        sock.close()
        metrics = httpx.get(process.url + "/metrics", timeout=10).text
        assert 'frugal_refused_total{reason="headers_too_large"} 1.0' in metrics


def test_slow_bodies_count_against_their_address_not_everyone(
    tmp_path: Path, digits_model_file: Path
) -> None:
    """64 slow uploads with max_concurrency 64 made every request a 503. Now an address holds
    at most max_slow_bodies_per_client of them; the rest get 429 and normal requests go on."""
    server = {"max_concurrency": 64, "max_slow_bodies_per_client": 4, "body_timeout_s": 60}
    config = write_config(tmp_path, digits_config(digits_model_file, tmp_path, server=server))
    with ServerProcess(config) as process:
        slow = [start_slow_body(process.url) for _ in range(64)]
        refused: list[socket.socket] = []
        for sock in slow:
            sock.settimeout(0.05)
        # Past SLOW_AFTER_S (1 s), every slow body beyond the fourth is refused with 429.
        deadline = time.monotonic() + 30
        while len(refused) < 60 and time.monotonic() < deadline:
            for sock in slow:
                if sock in refused:
                    continue
                try:
                    reply = read_reply(sock)
                except TimeoutError:
                    continue
                assert reply.status == 429, reply
                assert "max_slow_bodies_per_client" in reply.json()["error"]
                assert int(reply.headers["retry-after"]) >= 1
                refused.append(sock)
        assert len(refused) == 60
        answers = [httpx.post(process.url + PREDICT, content=BODY, timeout=10) for _ in range(20)]
        assert [r.status_code for r in answers] == [200] * 20
        for sock in slow:
            sock.close()


def test_shutdown_is_bounded_by_drain_timeout_and_the_cut_requests_are_recorded(
    tmp_path: Path, digits_model_file: Path
) -> None:
    """A client sending one byte at a time kept the process alive 25 s past SIGTERM; now the
    drain ends after drain_timeout_s: the slow request is answered 503 and recorded, exit 0."""
    server = {"drain_timeout_s": 1.0, "body_timeout_s": 120}
    config = write_config(tmp_path, digits_config(digits_model_file, tmp_path, server=server))
    with ServerProcess(config) as process:
        assert process.process is not None
        socks = [start_slow_body(process.url) for _ in range(3)]
        eventually(lambda: gauge(process.url, "frugal_bodies_reading") >= 3, "3 bodies reading")
        process.process.send_signal(signal.SIGTERM)
        replies = [read_reply(sock) for sock in socks]
        for sock in socks:
            sock.close()
        assert process.process.wait(timeout=60) == 0
    assert [r.status for r in replies] == [503] * 3
    assert all("drain_timeout_s" in r.json()["error"] for r in replies)
    assert ledger_statuses(tmp_path / "ledger.db") == [503] * 3


def test_a_second_signal_answers_queued_work_503_and_records_it(
    tmp_path: Path, digits_model_file: Path, digits: Any
) -> None:
    """Ctrl-C twice aborted 711 of 1,000 in-flight requests with 500 and no ledger row. Now the
    second signal answers what is still queued 503 at once: every request gets an answer (200
    or 503), every answer has its row, and the process exits 0."""
    (tmp_path / "slow_digits.py").write_text(SLOW_MODEL)
    config = digits_config(digits_model_file, tmp_path)
    config["models"][0] |= {"runtime": "python", "factory": "slow_digits:make",
                            "path": str(tmp_path), "sha256": None,
                            "options": {"model_path": str(digits_model_file)}}  # fmt: skip
    config["models"][0]["batching"] = {"max_batch_size": 4, "max_queue": 1000,
                                       "timeout_ms": 60_000}  # fmt: skip
    path = write_config(tmp_path, config)
    x, _ = digits
    n = 300
    with ServerProcess(path) as process:
        assert process.process is not None
        proc = process.process

        async def send_all() -> list[int]:
            limits = httpx.Limits(max_connections=n)
            async with httpx.AsyncClient(base_url=process.url, limits=limits, timeout=60) as c:
                tasks = [asyncio.create_task(c.post(PREDICT, json={"instances": [x[i].tolist()]}))
                         for i in range(n)]  # fmt: skip
                await asyncio.to_thread(
                    eventually, lambda: queue_depth(process.url) >= 200, "200 requests queued"
                )
                proc.send_signal(signal.SIGINT)
                # Two signals sent at once arrive as one: the second waits for the first's mark.
                await asyncio.to_thread(
                    eventually, lambda: "draining:" in process.log_text(), "the drain to begin"
                )
                proc.send_signal(signal.SIGINT)
                answers = await asyncio.gather(*tasks, return_exceptions=True)
            return [a.status_code if isinstance(a, httpx.Response) else -1 for a in answers]

        statuses = asyncio.run(send_all())
        assert proc.wait(timeout=60) == 0
    assert set(statuses) <= {200, 503}, sorted(set(statuses))
    assert statuses.count(503) > 0  # the second signal cut the queue
    assert sorted(ledger_statuses(tmp_path / "ledger.db")) == sorted(statuses)


def test_a_port_in_use_stops_serve_before_any_ledger_or_audit_row(
    tmp_path: Path, digits_model_file: Path
) -> None:
    config = write_config(tmp_path, digits_config(digits_model_file, tmp_path))
    port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        done = subprocess.run(
            [sys.executable, "-m", "frugal", "serve", str(config), "--port", str(port)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "--port" in done.stderr and "Traceback" not in done.stderr
    ledger = tmp_path / "ledger.db"
    if ledger.exists():  # nothing was served: no run, no model.load in the audit
        with sqlite3.connect(ledger) as db:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
            for table in ("runs", "audit", "requests"):
                if table in tables:
                    assert db.execute(f"SELECT COUNT(*) FROM {table}").fetchone() == (0,)


def test_an_llm_body_that_does_not_arrive_in_time_is_answered_408_and_recorded(
    tmp_path: Path,
) -> None:
    """The LLM routes read bodies under the same deadline, and an admitted request's error
    (here the 408, and a body that is not JSON) has its ledger row like an inference one."""
    with LLMDouble() as upstream:
        server = {"body_timeout_s": 1.5}
        data = llm_config(tmp_path, [llm_model("gpt", upstream.url)], server=server)
        _ask_slowly_then_badly(write_config(tmp_path, data))
    assert ledger_statuses(tmp_path / "ledger.db") == [408, 400]


def _ask_slowly_then_badly(config: Path) -> None:
    with ServerProcess(config) as process:
        sock = connect(process.url)
        sock.sendall(request_head("/v1/chat/completions", 10_000) + b"{")
        reply = read_reply(sock)
        sock.close()
        assert reply.status == 408 and reply.json()["field"] == "body"
        bad = httpx.post(process.url + "/v1/chat/completions", content=b"{not json", timeout=10)
        assert bad.status_code == 400
