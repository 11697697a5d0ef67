"""`frugal calibrate` on a cascade of upstream LLMs, against two local OpenAI-compatible doubles:
a cheap one that says "i do not know" (and is unsure: low logprobs) on hard prompts, and a dear
one that always answers. Answers are graded against references (exact, regex, a callable), the
gate is chosen on mean token logprob with the confidence bound, and each tier is priced from the
tokens it reported."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.llm_double import EASY_LOGPROB, HARD_LOGPROB, Knobs, LLMDouble
from tests.optimize.cascades import invoke

CHEAP_IN, DEAR_IN = 0.5, 10.0  # $ per million tokens, input and output alike


@pytest.fixture(scope="module")
def doubles() -> Iterator[tuple[LLMDouble, LLMDouble]]:
    with LLMDouble(Knobs(wrong_when_hard=True)) as cheap, LLMDouble() as dear:
        yield cheap, dear


def write_setup(folder: Path, doubles: tuple[LLMDouble, LLMDouble], n: int = 800) -> Path:
    cheap, dear = doubles

    def model(name: str, url: str, usd: float) -> dict[str, Any]:
        return {"name": name, "runtime": "openai", "upstream": {
            "base_url": url, "model": name, "input_usd_per_1m": usd, "output_usd_per_1m": usd,
            "timeout_s": 10.0, "max_concurrency": 16}}  # fmt: skip

    config = {
        "instance": {"price_usd_per_hour": 0.1},
        "models": [model("cheap", cheap.url, CHEAP_IN), model("dear", dear.url, DEAR_IN)],
        "endpoints": [{"name": "ask", "route": {"cascade": [
            {"model": "cheap", "accept": {"mean_logprob": ">= -3"}}, {"model": "dear"}]}}],
    }  # fmt: skip
    (folder / "frugal.yaml").write_text(yaml.safe_dump(config))
    with (folder / "prompts.jsonl").open("w") as f:
        for i in range(n):
            hard = i % 4 == 0  # a quarter of the prompts are hard
            prompt = f"{'hard' if hard else 'easy'} question {i}"
            f.write(json.dumps({"prompt": prompt, "reference": f"echo {prompt}"}) + "\n")
    return folder / "frugal.yaml"


def test_a_logprob_gate_is_calibrated_with_confidence(
    doubles: tuple[LLMDouble, LLMDouble], tmp_path: Path
) -> None:
    config = write_setup(tmp_path, doubles)
    out = tmp_path / "c.json"
    result = invoke("calibrate", config, "--endpoint", "ask", "--data", tmp_path / "prompts.jsonl",
                    "--max-drop", "0.01", "--out", out, "--write")  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    cheap, dear = (
        report["tiers"][0]["alone"]["calibration"],
        report["tiers"][1]["alone"]["calibration"],
    )
    assert cheap["accuracy"] == pytest.approx(0.75, abs=0.05) and dear["accuracy"] == 1.0
    assert dear["usd_per_1k"] > 10 * cheap["usd_per_1k"]  # priced from tokens at each price
    (threshold,) = report["chosen"]["calibration"]["thresholds"]
    # Between the hard prompts' logprob and the easy ones': hard ones escalate, easy ones stay.
    assert HARD_LOGPROB < threshold <= EASY_LOGPROB
    chosen = report["chosen"]["holdout"]
    assert chosen["accuracy"] == 1.0 and chosen["escalation_rate"] == pytest.approx(0.25, abs=0.05)
    assert chosen["usd_per_1k"] < 0.5 * dear["usd_per_1k"]
    assert report["chosen"]["bound"] <= 0.01 and report["target"]["confidence"] == 0.95
    assert "from the tokens each upstream reported" in " ".join(result.output.split())
    written = yaml.safe_load(config.read_text())["endpoints"][0]["route"]["cascade"][0]
    assert written["accept"] == {"mean_logprob": f">= {threshold!r}"}
    # The cheap tier was asked for logprobs (its gate reads them); the last tier was not.
    cheap_double, dear_double = doubles
    assert all(c.get("logprobs") is True for c in cheap_double.calls)
    assert not any(c.get("logprobs") for c in dear_double.calls)


def grade_by_number(answer: str, reference: Any, row: dict[str, Any]) -> bool:
    """A user grader: right when the answer ends with the question's number."""
    return bool(answer.split()[-1] == str(row["n"]))


def test_regex_and_callable_graders(
    doubles: tuple[LLMDouble, LLMDouble], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_setup(tmp_path, doubles, n=40)
    regex_rows = tmp_path / "regex.jsonl"
    lines = [json.dumps({"prompt": f"{'hard' if i % 4 == 0 else 'easy'} q {i}",
                         "reference": rf"(?i)\bq {i}$", "n": i}) for i in range(40)]  # fmt: skip
    regex_rows.write_text("\n".join(lines) + "\n")
    out = tmp_path / "r.json"
    args = ["calibrate", config, "--endpoint", "ask", "--data", regex_rows, "--confidence", "0",
            "--out", out]  # fmt: skip
    assert invoke(*args, "--grader", "regex").exit_code == 0
    by_regex = json.loads(out.read_text())["tiers"][0]["alone"]["calibration"]["accuracy"]
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    sys.modules.pop("test_llm_calibrate", None)
    assert invoke(*args, "--grader", "test_llm_calibrate:grade_by_number").exit_code == 0
    by_callable = json.loads(out.read_text())["tiers"][0]["alone"]["calibration"]["accuracy"]
    assert 0.6 <= by_regex == by_callable < 0.9  # the hard quarter is wrong both ways


@pytest.mark.parametrize(
    ("lines", "args", "message"),
    [
        (['{"prompt": "x"}'], [], "no reference answer"),
        (['{"reference": "x"}'], [], 'give "prompt"'),
        (["not json"], [], "not valid JSON"),
        (['{"prompt": "x", "reference": "x"}'], ["--grader", "nope"], "--grader 'nope'"),
        (['{"prompt": "x", "reference": "x"}'], ["--grader", "no_such_mod:f"], "cannot import"),
        (['{"prompt": "x", "reference": "x"}'], ["--arrival-batch", "8"], "priced per token"),
    ],
)
def test_bad_prompts_and_graders_exit_2(
    doubles: tuple[LLMDouble, LLMDouble], tmp_path: Path, lines: list[str], args: list[str],
    message: str,
) -> None:  # fmt: skip
    config = write_setup(tmp_path, doubles, n=4)
    data = tmp_path / "bad.jsonl"
    data.write_text("\n".join(lines) + "\n")
    result = invoke("calibrate", config, "--endpoint", "ask", "--data", data, *args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())


OTHER_TOPICS = ["tell me a joke", "how do I cook pasta", "what is the capital of france",
                "translate hello to german", "summarise this article", "write a haiku about rain",
                "who won the match yesterday", "explain quantum computing"]  # fmt: skip


def test_a_local_classifier_in_front_of_an_llm_is_calibrated_on_graded_prompts(
    doubles: tuple[LLMDouble, LLMDouble], tmp_path: Path
) -> None:
    """A mixed cascade: the FAQ classifier (trained here) reads each prompt as the server feeds
    it, its label is graded against the reference like an LLM's answer (a regex here: an FAQ is
    answered right by its canned answer or by the LLM's echo), and priced from its measured busy
    time; the gate lands where the classifier's wrong answers escalate."""
    from tests.serving.test_llm_mixed_cascade import FAQ, faq_model, train_faq

    _, dear = doubles
    faq = tmp_path / "faq.joblib"
    sha = train_faq(faq)
    config = {
        "instance": {"price_usd_per_hour": 0.1},
        "models": [faq_model((faq, sha)), {"name": "dear", "runtime": "openai", "upstream": {
            "base_url": dear.url, "model": "dear", "input_usd_per_1m": DEAR_IN,
            "output_usd_per_1m": DEAR_IN, "timeout_s": 10.0, "max_concurrency": 16}}],
        "endpoints": [{"name": "ask", "route": {"cascade": [
            {"model": "faq", "accept": {"confidence": ">= 0.5"}}, {"model": "dear"}]}}],
    }  # fmt: skip
    (tmp_path / "frugal.yaml").write_text(yaml.safe_dump(config))
    rows = [(q, f"^({re.escape(answer)}|echo {q})$")
            for answer, questions in FAQ.items() for q in questions] * 24  # fmt: skip
    rows += [(f"{t} {i}", f"^echo {t} {i}$") for i in range(15) for t in OTHER_TOPICS]
    rows.append(("", r"^echo\s*$"))  # no text for the classifier: it fails there, the LLM answers
    with (tmp_path / "prompts.jsonl").open("w") as f:
        for prompt, reference in rows:
            f.write(json.dumps({"prompt": prompt, "reference": reference}) + "\n")
    out = tmp_path / "c.json"
    result = invoke("calibrate", tmp_path / "frugal.yaml", "--endpoint", "ask", "--data",
                    tmp_path / "prompts.jsonl", "--grader", "regex", "--max-drop", "0.02",
                    "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    alone = [t["alone"]["calibration"] for t in report["tiers"]]
    unknown_share = (len(OTHER_TOPICS) * 15 + 1) / len(rows)
    assert alone[0]["accuracy"] == pytest.approx(1 - unknown_share, abs=0.05)
    assert alone[1]["accuracy"] == 1.0
    assert 0 < alone[0]["usd_per_1k"] < alone[1]["usd_per_1k"]
    chosen = report["chosen"]["holdout"]
    assert chosen["accuracy"] >= 0.98
    assert chosen["escalation_rate"] == pytest.approx(unknown_share, abs=0.06)
    assert chosen["usd_per_1k"] < 0.7 * alone[1]["usd_per_1k"]
