"""``frugal calibrate``'s measuring for cascades of upstream LLMs (``runtime: openai``).

Every tier answers every prompt of a labeled JSONL file, through the same upstream client the
server uses (its retries, concurrency bound and prices), asked for logprobs where its gate reads
``mean_logprob``. Each answer is graded against the row's reference (graders.py), scored by the
tier's gate (mean token logprob, or the gate's scorer on the request and completion, as the
server scores it: routing/llm_cascade.py) and priced from the tokens the upstream reported. What
comes out is the same ``TierRecording`` a local cascade gives, so the thresholds are chosen by
the same sweep and the same confidence bound (routing/calibrate.py, routing/confidence.py).

A local tier before the LLM ones (a classifier answering the simple chats) reads each prompt's
last user message, as the server feeds it (``chat_text``); its answer, the prediction as text
(``answer_text``), is graded the same way and priced at its share of its batches' busy time.

A row: ``{"messages": [...]}`` or ``{"prompt": "..."}``, a ``reference``, and optionally
``params`` (request fields such as ``max_tokens``, sent to every tier).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from frugal.errors import FrugalError, InvalidInput
from frugal.optimize.graders import Grader
from frugal.routing.calibrate import Cascade, TierRecording
from frugal.routing.gates import Gate
from frugal.routing.llm_cascade import answer_text, chat_text, mean_logprob
from frugal.routing.sweep import TierRun
from frugal.runtimes.openai import Completion, UpstreamClient
from frugal.types import Item

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from frugal.config import ModelConfig


@dataclass(frozen=True, slots=True)
class PromptRow:
    body: dict[str, Any]  # the chat request, without `model`
    reference: Any
    row: dict[str, Any]  # the whole line, for a user grader


def read_prompts(path: Path) -> list[PromptRow]:
    """The labeled prompts; errors name the line and the field."""
    if path.suffix.lower() != ".jsonl":
        raise InvalidInput(f"{path}: an LLM cascade calibrates on a .jsonl of prompts",
                           hint='one {"prompt": ..., "reference": ...} or {"messages": [...], '
                           '"reference": ...} per line')  # fmt: skip
    rows: list[PromptRow] = []
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise InvalidInput(f"{where}: not valid JSON", field="line") from None
        if not isinstance(row, dict):
            raise InvalidInput(f"{where}: give a JSON object", field="line")
        if "reference" not in row:
            raise InvalidInput(f"{where}: no reference answer", field="reference")
        messages = row.get("messages")
        if messages is None and isinstance(row.get("prompt"), str):
            messages = [{"role": "user", "content": row["prompt"]}]
        if not isinstance(messages, list) or not messages:
            raise InvalidInput(f'{where}: give "prompt" (a string) or "messages" (a list)',
                               field="messages")  # fmt: skip
        params = row.get("params", {})
        if not isinstance(params, dict):
            raise InvalidInput(f"{where}: params must be an object", field="params")
        rows.append(PromptRow({**params, "messages": messages}, row["reference"], row))
    if not rows:
        raise InvalidInput(f"{path}: no prompts in the file")
    return rows


def record_llm_tiers(
    cascade: Cascade, data: Path, grader: Grader, *, progress: bool = True
) -> TierRecording:
    """Every tier on every prompt: gate scores, graded answers and $ per prompt."""
    rows = read_prompts(data)
    runs, seconds = asyncio.run(_record(cascade, rows, grader, progress))
    return TierRecording(runs, seconds, [r.reference for r in rows], [None] * len(runs))


async def _record(
    cascade: Cascade, rows: list[PromptRow], grader: Grader, progress: bool
) -> tuple[list[TierRun], list[float]]:
    from frugal.optimize.tier_runs import progress_bar

    runs: list[TierRun] = []
    seconds: list[float] = []
    with progress_bar(progress) as bar:
        for config, gate in zip(cascade.models, cascade.gates, strict=True):
            task = bar.add_task(config.key, total=len(rows))
            if config.upstream is None:  # a local tier: in batches here, nothing to await
                run, busy = _local_tier(cascade, config, gate, rows, grader, bar, task)
                runs.append(run)
                seconds.append(busy)
                continue
            client = UpstreamClient(config)
            started = time.perf_counter()
            try:
                answers = await asyncio.gather(
                    *(_ask(client, gate, row, partial(bar.advance, task)) for row in rows)
                )
            finally:
                await client.aclose()
            seconds.append((time.perf_counter() - started) / len(rows))
            runs.append(await _tier_run(config.key, gate, rows, answers, grader))
    return runs, seconds


def _local_tier(
    cascade: Cascade, config: ModelConfig, gate: Gate | None, rows: list[PromptRow],
    grader: Grader, bar: Progress, task: TaskID,
) -> tuple[TierRun, float]:  # fmt: skip
    """A local tier on the prompts it can read; one it cannot (no user text) counts as failed
    there, as the server escalates it."""
    from frugal.accounting import resolve_pricer
    from frugal.optimize.tier_runs import run_tier
    from frugal.runtimes import InputSchema, load_model

    schema = InputSchema(config.inputs)
    read: list[int] = []
    items: list[Item] = []
    for i, row in enumerate(rows):
        try:
            items.append(schema.item_from_instance(chat_text(row.body), "messages"))
        except InvalidInput:
            continue
        read.append(i)
    if not items:
        raise InvalidInput(f"tier {config.key} reads each prompt's last user message as text, "
                           "and no prompt has one", field="messages")  # fmt: skip
    bar.advance(task, len(rows) - len(items))
    pricer = resolve_pricer(cascade.config.instance, file=str(cascade.path))

    def grade(value: object, row: object) -> bool:
        assert isinstance(row, PromptRow)
        return bool(grader(answer_text(value), row.reference, row.row))

    kept = [rows[i] for i in read]
    run, busy = run_tier(load_model(config), config, gate, items, kept, pricer, bar, task,
                         grade=grade)  # fmt: skip
    n = len(rows)
    scores, correct = np.full(n, np.nan), np.zeros(n, dtype=bool)
    failed, cost = np.ones(n, dtype=bool), np.zeros(n)
    scores[read], correct[read], failed[read], cost[read] = (
        run.scores, run.correct, run.failed, run.cost_usd)  # fmt: skip
    return TierRun(run.model, run.op, scores, correct, failed, cost), busy * len(read) / n


async def _ask(
    client: UpstreamClient, gate: Gate | None, row: PromptRow, done: Callable[[], None]
) -> Completion | FrugalError:
    """One prompt to one tier (the client bounds how many are open at once)."""
    body = row.body | {"logprobs": True} if _logprobs(gate) else row.body
    try:
        return await client.chat(body)
    except FrugalError as error:
        return error
    finally:
        done()


def _logprobs(gate: Gate | None) -> bool:
    return gate is not None and gate.signal == "mean_logprob"


async def _tier_run(
    model: str, gate: Gate | None, rows: list[PromptRow],
    answers: list[Completion | FrugalError], grader: Grader,
) -> TierRun:  # fmt: skip
    n = len(rows)
    scores = np.full(n, np.nan)
    correct = np.zeros(n, dtype=bool)
    failed = np.zeros(n, dtype=bool)
    cost = np.zeros(n)
    first_error: FrugalError | None = None
    for i, (row, answer) in enumerate(zip(rows, answers, strict=True)):
        if isinstance(answer, FrugalError):
            failed[i] = True
            first_error = first_error or answer
            continue
        cost[i] = answer.cost_usd
        correct[i] = bool(grader(_content(answer.body), row.reference, row.row))
        if gate is not None:
            score = await _score(gate, row, answer)
            scores[i] = math.nan if score is None else score
    if failed.all():
        raise InvalidInput(f"tier {model} failed on every prompt: {first_error}",
                           hint="check the upstream's base_url, key and model name")  # fmt: skip
    return TierRun(model, gate.op if gate is not None else "", scores, correct, failed, cost)


async def _score(gate: Gate, row: PromptRow, answer: Completion) -> float | None:
    """The gate's signal, as the server computes it (routing/llm_cascade.py)."""
    if gate.signal == "mean_logprob":
        return mean_logprob(answer.body)
    scores = await asyncio.to_thread(gate.call_scorer, [row.body], [answer.body])
    return scores[0]


def _content(body: dict[str, Any]) -> str:
    """The first choice's message text ("" when there is none)."""
    choices = body.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        message = choices[0].get("message")
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            return str(message["content"])
    return ""


__all__ = ["PromptRow", "read_prompts", "record_llm_tiers"]
