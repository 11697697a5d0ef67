"""A local FAQ classifier in front of an LLM (docs/llm.md#a-local-model-first): calibrate, serve.

Trains the classifier of tests/serving/test_llm_mixed_cascade.py, starts an upstream double for
the LLM (tests/llm_double.py, $2.50 / $10 per 1M tokens), runs `frugal calibrate` on 480 graded
prompts (--write), then serves the cascade and asks three questions with the OpenAI SDK, and
prints the ledger rows. Usage: python bench/llm_mixed_cascade.py [--out DIR]
"""

import argparse
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import httpx
import openai
import yaml

from frugal.optimize import free_port
from tests.llm_double import LLMDouble
from tests.optimize.test_llm_calibrate import OTHER_TOPICS
from tests.serving.test_llm_mixed_cascade import FAQ, faq_model, train_faq

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", type=Path, default=None, help="working folder (default: a temp one)")
d = parser.parse_args().out or Path(tempfile.mkdtemp(prefix="mixed-"))
d.mkdir(parents=True, exist_ok=True)
faq = d / "faq.joblib"
sha = train_faq(faq)
with LLMDouble() as big:
    config = {
        "instance": {"type": "c7i.large"},
        "models": [
            faq_model((faq, sha)),
            {
                "name": "big",
                "runtime": "openai",
                "upstream": {
                    "base_url": big.url,
                    "model": "big",
                    "input_usd_per_1m": 2.5,
                    "output_usd_per_1m": 10.0,
                    "timeout_s": 10.0,
                    "max_concurrency": 16,
                },
            },
        ],
        "endpoints": [
            {
                "name": "chat",
                "route": {
                    "cascade": [
                        {"model": "faq", "accept": {"confidence": ">= 0.5"}},
                        {"model": "big"},
                    ]
                },
            }
        ],
        "ledger": {"path": str(d / "ledger.db")},
    }
    (d / "frugal.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    rows = [(q, f"^({re.escape(a)}|echo {q})$") for a, qs in FAQ.items() for q in qs] * 24
    rows += [(f"{t} {i}", f"^echo {t} {i}$") for i in range(15) for t in OTHER_TOPICS]
    with (d / "prompts.jsonl").open("w") as f:
        for p, r in rows:
            f.write(json.dumps({"prompt": p, "reference": r}) + "\n")
    env = dict(os.environ, COLUMNS="150")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "frugal",
            "calibrate",
            str(d / "frugal.yaml"),
            "--endpoint",
            "chat",
            "--data",
            str(d / "prompts.jsonl"),
            "--grader",
            "regex",
            "--max-drop",
            "0.02",
            "--write",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=d,
    )
    print(out.stdout, out.stderr)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "frugal", "serve", str(d / "frugal.yaml"), "--port", str(port)],
        cwd=d,
    )
    try:
        for _ in range(100):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health/ready").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none")
        for q in ["what are your opening hours", "tell me a joke", "how do I reset my password"]:
            r = client.chat.completions.with_raw_response.create(
                model="chat", messages=[{"role": "user", "content": q}]
            )
            print(
                q,
                "|",
                r.parse().choices[0].message.content,
                "|",
                r.headers["x-frugal-model"],
                r.headers["x-frugal-cost-usd"],
            )
    finally:
        server.terminate()
        server.wait()
    with sqlite3.connect(d / "ledger.db") as db:
        for row in db.execute(
            "SELECT endpoint, model, status, tokens, cost_usd, model_usd, route, tier_costs"
            " FROM requests ORDER BY ts"
        ):
            print(row)
