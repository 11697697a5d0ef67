"""The soak's figures and its report: from what the clients saw to numbers, targets and Markdown.

Everything here is arithmetic over records bench/soak.py collected; nothing talks to the server.
Latencies count from a request's *scheduled* send time (open loop: a generator that falls behind
or waits for a connection makes the figures worse, never better), and the send lag says how much
of that was the generator's own.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from soak_client import Answer, SlowOutcome

STATUS_COLUMNS = (200, 429, 503, 504)
QUICK_REFUSAL_S = 0.100  # issue 14: a refusal is a 503 with Retry-After within 100 ms
LAG_WARN_MS = 20.0  # a generator later than this at p99 offers less than the nominal rate


def pct(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile, taken as the smallest value with at least q% at or below it
    (no interpolation, so a failed probe counted as infinite stays infinite); nan when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def ms(seconds: Iterable[float]) -> list[float]:
    return [s * 1000 for s in seconds]


def phase_figures(
    answers: Sequence[Answer], multiplier: float, rate: float, seconds: float
) -> dict[str, Any]:
    """What one load phase sent and got back."""
    by_status = Counter(a.status for a in answers if a.status)
    errors = Counter(a.error or "closed" for a in answers if not a.status)
    admitted = [a for a in answers if a.status == 200]
    refusals = [a for a in answers if a.status != 200]
    r503 = [a for a in answers if a.status == 503]
    quick = [a for a in r503 if a.retry_after and a.done - a.scheduled <= QUICK_REFUSAL_S]
    lag = ms(a.started - a.scheduled for a in answers if a.started)
    wait = ms(a.slot - a.started for a in answers if a.slot)
    connect = ms(a.sent - a.slot for a in answers if a.sent)
    lat_200 = ms(a.done - a.scheduled for a in admitted)
    lat_503 = ms(a.done - a.scheduled for a in r503)
    lat_504 = ms(a.done - a.scheduled for a in answers if a.status == 504)
    return {
        "multiplier": multiplier,
        "rate_per_s": rate,
        "seconds": seconds,
        "sent": len(answers),
        "sent_per_s": len(answers) / seconds if seconds else math.nan,
        "status": {str(k): v for k, v in sorted(by_status.items())},
        "other_status": sum(v for k, v in by_status.items() if k not in STATUS_COLUMNS),
        "errors": dict(sorted(errors.items())),
        "admitted": len(admitted),
        "admitted_p50_ms": pct(lat_200, 50),
        "admitted_p99_ms": pct(lat_200, 99),
        "cache_hits": sum(a.cache_hit for a in admitted),
        "refusals": len(refusals),
        "r503": len(r503),
        "r503_retry_after_share": sum(a.retry_after for a in r503) / len(r503) if r503 else None,
        "r503_p50_ms": pct(lat_503, 50),
        "r503_p99_ms": pct(lat_503, 99),
        "r504_p50_ms": pct(lat_504, 50),
        "quick_503_share_of_refusals": len(quick) / len(refusals) if refusals else None,
        "send_lag_p50_ms": pct(lag, 50),
        "send_lag_p99_ms": pct(lag, 99),
        "send_lag_max_ms": max(lag) if lag else math.nan,
        "connection_wait_p99_ms": pct(wait, 99),  # the generator's --max-connections
        "connect_p99_ms": pct(connect, 99),  # includes the server's accept backlog
    }


def probe_figures(
    probes: Sequence[Sequence[float]], routes: Sequence[str], start: float, end: float
) -> dict[str, Any]:
    """Health probes started in [start, end]: per route and all together. A failed probe (no
    answer, or not 200) counts as infinitely slow in the percentiles."""
    out: dict[str, Any] = {}
    chosen = [p for p in probes if start <= p[0] <= end]
    for index, route in [*enumerate(routes), (-1, "all")]:
        mine = [p for p in chosen if index in (-1, p[1])]
        latencies = [p[3] if p[2] == 200 else math.inf for p in mine]
        answered = [p[3] for p in mine]
        out[route] = {
            "probes": len(mine),
            "failed": sum(p[2] != 200 for p in mine),
            "p50_ms": pct(latencies, 50),
            "p99_ms": pct(latencies, 99),
            "max_ms": max(answered) if answered else math.nan,
        }
    return out


def slow_figures(outcomes: Sequence[SlowOutcome]) -> dict[str, Any]:
    ended = [o for o in outcomes if o.outcome != "open"]
    return {
        "requests": len(outcomes),
        "outcomes": dict(sorted(Counter(o.outcome for o in outcomes).items())),
        "status": {
            str(k): v for k, v in sorted(Counter(o.status for o in ended if o.status).items())
        },
        "ended_after_p50_s": pct([o.ended - o.opened for o in ended], 50),
        "open_at_end": sum(o.outcome == "open" for o in outcomes),
    }


def ledger_figures(
    answers: Iterable[Answer], slow: Iterable[SlowOutcome], rows: Iterable[tuple[str, int]]
) -> dict[str, Any]:
    """The stopped server's ledger against every request of ours (load, warm-up, capacity, slow
    clients), matched by x-request-id: each answer should have exactly one row with its status.
    Requests the client gave up on (timeout, broken connection) may have rows too: the server
    may have answered them after the client left; those are counted apart."""
    sent: dict[str, int] = {a.request_id: a.status for a in answers}
    sent.update((o.request_id, o.status) for o in slow)
    booked: dict[str, list[int]] = {}
    for request_id, status in rows:
        booked.setdefault(request_id, []).append(status)
    answered = {rid: status for rid, status in sent.items() if status}
    counts = Counter(len(booked.get(rid, ())) for rid in answered)
    mismatched = sum(
        1
        for rid, status in answered.items()
        if len(booked.get(rid, ())) == 1 and booked[rid][0] != status
    )
    all_rows = [status for statuses in booked.values() for status in statuses]
    return {
        "rows": len(all_rows),
        "answers": len(answered),
        "rows_by_status": {str(k): v for k, v in sorted(Counter(all_rows).items())},
        "answers_by_status": {str(k): v for k, v in sorted(Counter(answered.values()).items())},
        "answers_with_one_row": counts.get(1, 0) - mismatched,
        "answers_without_row": counts.get(0, 0),
        "answers_with_several_rows": sum(v for k, v in counts.items() if k > 1),
        "answers_with_other_status_row": mismatched,
        "rows_for_abandoned": sum(
            len(statuses) for rid, statuses in booked.items() if rid in sent and not sent[rid]
        ),
        "rows_not_ours": sum(len(statuses) for rid, statuses in booked.items() if rid not in sent),
    }


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 14's five targets, each with its measured figure and PASS/FAIL."""
    phases = report["phases"]
    top = max(phases, key=lambda p: p["multiplier"])
    share = top["quick_503_share_of_refusals"]
    timeout_ms = report["server"]["timeout_ms"]
    worst_p99 = max(
        (p["admitted_p99_ms"] for p in phases), key=lambda v: -1 if math.isnan(v) else v
    )
    health_p99 = report["health"]["all"]["p99_ms"]
    ledger = report["ledger"]
    rss = report["rss_mib"]
    return [
        _target(
            f"at {top['multiplier']:g}x: refusals that are 503 + Retry-After within 100 ms",
            ">= 80%",
            "no refusals" if share is None else f"{share:.1%} of {top['refusals']}",
            share is not None and share >= 0.80,
        ),
        _target(
            "admitted (200) p99, worst phase",
            f"<= {2 * timeout_ms:g} ms (2x timeout_ms)",
            f"{worst_p99:.0f} ms",
            worst_p99 <= 2 * timeout_ms,
        ),
        _target(
            "health probe p99 (live + ready)",
            "<= 100 ms",
            f"{health_p99:.1f} ms",
            health_p99 <= 100,
        ),
        _target(
            "ledger: one row per answer, with its status",
            f"{ledger['answers']} answers",
            f"{ledger['answers_with_one_row']} with one row, {ledger['answers_without_row']} "
            f"without, {ledger['answers_with_several_rows']} with several, "
            f"{ledger['answers_with_other_status_row']} with another status; "
            f"{ledger['rows_not_ours']} rows not ours",
            ledger["answers_with_one_row"] == ledger["answers"] and not ledger["rows_not_ours"],
        ),
        _target(
            "server RSS growth",
            "<= 20%",
            f"{rss['growth']:+.1%} ({rss['before']:.0f} -> {rss['after']:.0f} MiB)",
            rss["growth"] <= 0.20,
        ),
    ]


def _target(name: str, goal: str, measured: str, ok: bool) -> dict[str, Any]:
    return {"target": name, "goal": goal, "measured": measured, "pass": bool(ok)}


def warnings(report: dict[str, Any]) -> list[str]:
    """What makes the figures less than they seem: a generator that fell behind, client
    timeouts (the server may have answered and booked those later)."""
    out = []
    for p in report["phases"]:
        if p["send_lag_p99_ms"] > LAG_WARN_MS:
            out.append(
                f"phase {p['multiplier']:g}x: the generator ran late (p99 "
                f"{p['send_lag_p99_ms']:.0f} ms, max {p['send_lag_max_ms']:.0f} ms behind "
                "schedule): requests left in bunches, and their latencies include the lag"
            )
        if p["connection_wait_p99_ms"] > LAG_WARN_MS:
            out.append(
                f"phase {p['multiplier']:g}x: requests waited for a free connection (p99 "
                f"{p['connection_wait_p99_ms']:.0f} ms; raise --max-connections): latencies "
                "include that wait"
            )
    g = report["generator"]
    if g["loop_stalls"]:
        others = g["loop_stalls_other_threads"]
        idle = g["loop_stalls"] - g["loop_stalls_busy"] - others
        out.append(
            f"the generator's loop stalled {g['loop_stalls']} times over 50 ms (longest "
            f"{g['loop_stall_max_ms']:.0f} ms): {g['loop_stalls_busy']} with the loop busy (the "
            f"generator was the bottleneck), {others} with its other threads running, {idle} "
            "with the process not running (waiting for a CPU: a busy machine; rerun when it is "
            "quieter)"
        )
    gave_up = sum(p["errors"].get("timeout", 0) for p in report["phases"])
    if gave_up:
        out.append(
            f"{gave_up} requests timed out on the client ({report['client_timeout_s']:g} s): the "
            "server may still have answered and booked them (the ledger's rows for abandoned "
            "requests), and their latencies are not in the percentiles"
        )
    return out


# --------------------------------------------------------------------------- Markdown


def _f(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:,.{digits}f}"


def _nice(value: int | None) -> str:
    return "unchanged (not permitted)" if value is None else f"{value:+d}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: setup, phases, health, slow clients, Redis, ledger, RSS, targets."""
    s, cap = report["server"], report["capacity"]
    lines = [
        f"# frugal soak, {report['started']}",
        "",
        f"Machine: {report['machine']}. Commit {report['commit']}. Command: `{report['command']}`",
        "",
        f"Server: `frugal serve` (pid {s['pid']}), model `{s['model']}`, "
        f"max_batch_size {s['max_batch_size']}, timeout_ms {s['timeout_ms']:g}, cache: Redis "
        f"({report['hot_share']:.0%} of requests drawn from {report['hot_rows']} repeated rows, "
        f"the rest unique), SQLite ledger. Overrides: {', '.join(s['overrides']) or 'none'}.",
        f"Capacity: {_f(cap['req_per_s'], 1)} req/s ({cap['how']}).",
        "",
        "## Load (open loop, latencies from each request's scheduled send)",
        "",
        "| phase | offered req/s | sent | 200 | 429 | 503 | 504 | other | conn. errors | client "
        "timeouts | 503 with Retry-After | 503 p50 / p99 ms | 504 p50 ms | 200 p50 / p99 ms "
        "| cache hits of 200 | send lag p50 / p99 / max ms |",
        "|" + " --- |" * 16,
    ]
    for p in report["phases"]:
        st, err = p["status"], p["errors"]
        conn_errors = sum(v for k, v in err.items() if k != "timeout")
        lines.append(
            f"| {p['multiplier']:g}x, {p['seconds']:g} s | {p['rate_per_s']:.0f} (sent "
            f"{p['sent_per_s']:.0f}) | {p['sent']} | {st.get('200', 0)} | {st.get('429', 0)} | "
            f"{st.get('503', 0)} | {st.get('504', 0)} | {p['other_status']} | {conn_errors} | "
            f"{err.get('timeout', 0)} | {_share(p['r503_retry_after_share'])} | "
            f"{_f(p['r503_p50_ms'])} / {_f(p['r503_p99_ms'])} | {_f(p['r504_p50_ms'])} | "
            f"{_f(p['admitted_p50_ms'])} / "
            f"{_f(p['admitted_p99_ms'])} | {p['cache_hits']} | {_f(p['send_lag_p50_ms'], 1)} / "
            f"{_f(p['send_lag_p99_ms'], 1)} / {_f(p['send_lag_max_ms'], 1)} |"
        )
    g = report["generator"]
    lines += [
        "",
        f"Generator: {g['arrivals']} arrivals, nice {_nice(g['nice'])}, "
        f"CPU {g['cpu_s']:.1f} s ({g['cores']:.2f} cores), "
        f"{g['connections_opened']} connections opened (peak {g['connections_peak']} open, limit "
        f"{g['max_connections']}; waits for a free one p99 "
        f"{', '.join(_f(p['connection_wait_p99_ms'], 1) for p in report['phases'])} ms by phase; "
        f"connect p99 {', '.join(_f(p['connect_p99_ms'], 1) for p in report['phases'])} ms), "
        f"{g['stale_retries']} stale keep-alive retries, {g['loop_stalls']} loop stalls over "
        f"50 ms ({g['loop_stalls_busy']} busy). Server CPU "
        f"{report['server_cpu_s']:.1f} s over the load.",
        "",
        "## Health probes (own process, own connections)",
        "",
        "| route | probes | failed | p50 ms | p99 ms | max ms |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for route, h in report["health"].items():
        lines.append(
            f"| {route} | {h['probes']} | {h['failed']} | {_f(h['p50_ms'], 1)} | "
            f"{_f(h['p99_ms'], 1)} | {_f(h['max_ms'], 1)} |"
        )
    sl, r = report["slow_clients"], report["redis_restart"]
    outcomes = ", ".join(f"{k} {v}" for k, v in sl["outcomes"].items()) or "none"
    statuses = ", ".join(f"{k}: {v}" for k, v in sl["status"].items()) or "none"
    lines += [
        "",
        f"## Slow clients ({report['slow']['count']} at once, a {report['slow']['body_bytes']:,}"
        f"-byte body at one byte every {report['slow']['byte_interval_s']:g} s)",
        "",
        f"{sl['requests']} requests: {outcomes}; answers by status: {statuses}; ended after "
        f"p50 {_f(sl['ended_after_p50_s'], 1)} s.",
        "",
        "## Redis restart",
        "",
    ]
    if r:
        during = ", ".join(f"{k}: {v}" for k, v in r["answers_while_down"].items()) or "none"
        lines.append(
            f"Killed (SIGKILL) {r['killed_at_s']:.1f} s into phase {r['phase']:g}x, answering "
            f"again {r['down_s']:.2f} s later on the same port. Requests scheduled while it was "
            f"down, by status: {during}."
        )
    else:
        lines.append("Not restarted (--redis-restart-phase 0).")
    led, rss = report["ledger"], report["rss_mib"]
    lines += [
        "",
        "## Ledger and memory",
        "",
        "| status | answers received | ledger rows |",
        "| --- | --- | --- |",
    ]
    for status in sorted(set(led["answers_by_status"]) | set(led["rows_by_status"]), key=int):
        lines.append(
            f"| {status} | {led['answers_by_status'].get(status, 0)} | "
            f"{led['rows_by_status'].get(status, 0)} |"
        )
    lines += [
        f"| all | {led['answers']} | {led['rows']} |",
        "",
        f"Matched by x-request-id: {led['answers_with_one_row']} answers with exactly one row of "
        f"their status, {led['answers_without_row']} without a row, "
        f"{led['answers_with_several_rows']} with several, {led['answers_with_other_status_row']} "
        f"with a row of another status; {led['rows_for_abandoned']} rows for requests the client "
        f"gave up on (timeout or broken connection), {led['rows_not_ours']} rows for requests "
        "not ours.",
        "",
        f"Server RSS: {rss['before']:.1f} MiB before the load, "
        + "".join(
            f"{v:.1f} at the end of {p['multiplier']:g}x, "
            for v, p in zip(rss["by_phase"], report["phases"], strict=False)
        )
        + f"{rss['after']:.1f} MiB after the load drained, peak {rss['peak']:.1f} MiB. "
        f"Shutdown (SIGTERM to exit): {_f(report['shutdown_s'], 2)} s.",
        "",
        "## Targets (issue 14)",
        "",
        "| target | goal | measured | result |",
        "| --- | --- | --- | --- |",
    ]
    for t in report["targets"]:
        verdict = "PASS" if t["pass"] else "**FAIL**"
        lines.append(f"| {t['target']} | {t['goal']} | {t['measured']} | {verdict} |")
    if report["warnings"]:
        lines += ["", "Warnings:", *[f"- {w}" for w in report["warnings"]]]
    return "\n".join(lines) + "\n"
