"""``frugal report --html``: a self-contained page whose numbers are the ledger's.

The ledger is written by a real server (in a thread, on a socket) with cached, cascaded,
batched and quantized-named traffic; the page is read back with the standard library's HTML
parser and compared with ``frugal report --format json`` and the ledger's own rows.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from frugal.accounting.ledger_schema import connect, ensure_schema
from frugal.accounting.report_html import render_html_report
from frugal.cli import main
from frugal.config import parse_config
from frugal.runtimes import sha256_of
from tests.conftest import digits_config, write_config

VOID = {"meta", "img", "br", "hr", "link", "input", "col", "wbr", "source"}


class Page(HTMLParser):
    """Every data-field's value, every src/href, and whether the tags nest properly."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.fields: dict[str, Any] = {}  # a number, or None for a cell shown as -
        self.links: list[str] = []
        self.open: list[str] = []
        self.errors: list[str] = []
        self.images = 0
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if "data-field" in found:
            value = found["data-value"]
            assert found["data-field"] not in self.fields, found["data-field"]
            self.fields[str(found["data-field"])] = None if value == "None" else float(str(value))
        for name in ("src", "href"):
            if name in found:
                self.links.append(str(found[name]))
        self.images += tag == "img"
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open.pop() != tag:
            self.errors.append(f"</{tag}> closes nothing open")


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_the_pages_numbers_are_the_ledgers(
    serve: Any, digit_versions: dict[str, Path], digits: Any, tmp_path: Path
) -> None:
    """Bill, rows, cache, batching, cascade and variant figures equal the JSON report's and
    the ledger's; nothing is fetched from elsewhere; the page parses with balanced tags."""
    quantized = tmp_path / "digits.fp16.joblib"  # named as `frugal quantize` names its output
    shutil.copy(digit_versions["2"], quantized)
    data = digits_config(digit_versions["1"], tmp_path)
    first = data["models"][0]
    data["models"] += [dict(first, version="2", path=str(digit_versions["2"])),
                       dict(first, version="3", path=str(quantized))]  # fmt: skip
    for model in data["models"]:
        model["sha256"] = sha256_of(Path(model["path"]))
    data["endpoints"] = [
        {"name": "digits", "model": "digits:1", "cache": {"store": "memory", "ttl_s": 600}},
        {"name": "both", "route": {"cascade": [
            {"model": "digits:1", "accept": {"confidence": ">= 0.9"}}, {"model": "digits:2"}]}},
        {"name": "q", "model": "digits:3"},
    ]  # fmt: skip
    config_path = write_config(tmp_path, data)
    server = serve(parse_config(data))
    x = digits[0]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for i in range(12):
            for endpoint, rows in (("digits", x[i % 4 : i % 4 + 1]), ("both", x[20 + 3 * i :
                                   23 + 3 * i]), ("q", x[60 + i : 62 + i])):  # fmt: skip
                body = {"instances": rows.tolist()}
                answer = client.post(f"/v1/endpoints/{endpoint}/predict", json=body)
                assert answer.status_code == 200, answer.text
    server.__exit__()  # stopped: its run's bill is final, so both reports read the same
    ledger = str(tmp_path / "ledger.db")
    report = json.loads(run("report", "--ledger", ledger, "--format", "json").output)
    out = tmp_path / "report.html"
    result = run("report", "--ledger", ledger, "--config", str(config_path), "--html", str(out))
    assert result.exit_code == 0 and f"wrote {out}" in result.output
    text = out.read_text()
    page = Page(text)
    assert page.errors == [] and page.open == []
    assert page.links and all(link.startswith(("data:", "#")) for link in page.links)
    assert "http://" not in text and "https://" not in text
    assert page.images == 2
    f = page.fields
    for name in ("billed_usd", "startup_usd", "model_usd", "overhead_usd", "unmatched_usd",
                 "idle_usd", "allocated_usd", "utilization"):  # fmt: skip
        assert f[f"bill.{name}"] == report[name], name
    assert f["rows.idle.cost_usd"] == report["idle_usd"]
    for row in report["rows"]:
        for name in ("requests", "errors", "model_usd", "overhead_usd", "cost_usd"):
            assert f[f"rows.{row['key']}.{name}"] == row[name], (row["key"], name)
        if row["key"] != "total":
            assert f[f"cache.{row['key']}.saved_usd"] == row["saved_usd"]
    assert f["cache.digits.cache_hit_ratio"] == 8 / 12  # 4 distinct rows, each sent 3 times
    assert f["cache.digits.saved_usd"] > 0
    with sqlite3.connect(ledger) as db:
        batches = dict(db.execute("SELECT model || ':' || version, SUM(cost_usd) FROM batches "
                                  "GROUP BY model, version").fetchall())  # fmt: skip
        cascade_items, cascade_usd = db.execute(
            "SELECT SUM(items), SUM(model_usd) FROM requests WHERE endpoint = 'both'"
        ).fetchone()
    for model, usd in batches.items():
        assert f[f"batching.{model}.actual_usd"] == pytest.approx(usd, rel=1e-12)
        assert f[f"batching.{model}.batch1_usd"] > 0
    assert f["cascade.both.items"] == cascade_items == 36
    assert f["cascade.both.actual_usd"] == pytest.approx(cascade_usd, rel=1e-12)
    assert f["variant.digits:3.items"] == 24
    assert f["variant.digits:3.original_usd_per_1k_items"] is not None
    assert f["week.this.requests"] == report["rows"][-1]["requests"] == 36
    assert f["week.last.requests"] == 0


def test_an_empty_ledger_gives_a_page_that_says_so(tmp_path: Path) -> None:
    """A ledger with no runs and no requests: zeros, "nothing in this window", no figures."""
    ledger = tmp_path / "ledger.db"
    db = connect(ledger)
    ensure_schema(db)
    db.close()
    page = Page(render_html_report(ledger))
    assert page.errors == [] and page.images == 0 and page.links == []
    assert page.fields["bill.billed_usd"] == 0.0 and page.fields["rows.total.requests"] == 0
    assert "nothing in this window" in render_html_report(ledger, by="version")


def test_a_missing_ledger_or_unwritable_page_is_a_clear_error(tmp_path: Path) -> None:
    """No ledger file: exit 2 naming it; a page path in a missing folder: exit 2 naming it."""
    missing = run("report", "--ledger", str(tmp_path / "none.db"), "--html", "x.html")
    assert missing.exit_code == 2 and "no ledger here yet" in missing.output
    ledger = tmp_path / "ledger.db"
    db = connect(ledger)
    ensure_schema(db)
    db.close()
    out = tmp_path / "no" / "such" / "page.html"
    unwritable = run("report", "--ledger", str(ledger), "--html", str(out))
    assert unwritable.exit_code == 2 and "cannot write the report" in unwritable.output


def test_without_matplotlib_the_page_is_refused_naming_the_extra(tmp_path: Path) -> None:
    """matplotlib not importable: exit 2, `--html needs matplotlib`, the pip command, no file."""
    ledger = tmp_path / "ledger.db"
    db = connect(ledger)
    ensure_schema(db)
    db.close()
    out = tmp_path / "page.html"
    # sys.modules[name] = None makes `import matplotlib` raise ImportError, as if not installed
    code = "import sys; sys.modules['matplotlib'] = None; from frugal.cli import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", code, "report", "--ledger", str(ledger), "--html", str(out)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "--html needs matplotlib" in done.stderr + done.stdout
    assert "pip install 'frugal[plot]'" in done.stderr + done.stdout
    assert not out.exists()
