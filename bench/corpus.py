"""Deterministic English-like sentences for the W2 (text embedding) workload.

    python bench/corpus.py --n 2000 --out bench/data/sentences.jsonl   # one JSON string a line

``sentences(n, seed)`` draws word counts uniformly from 4..100 and words from a small built-in
list (with a few commas), so the same seed always gives the same list, on any machine.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

FIXED_SENTENCE = "The quick brown fox jumps over the lazy dog near the quiet river bank."
MIN_WORDS = 4
MAX_WORDS = 100

WORDS = """
the a an this that these those some every each many few several most all no one two three
time year day week morning evening night season moment hour minute history future past
people person man woman child family friend teacher doctor student worker farmer driver
city town village country river mountain forest field garden road bridge station market
house room kitchen window door table chair book letter paper story song picture map
water fire air stone tree flower grass leaf bird fish horse dog cat fox cow sheep
car train boat plane bicycle engine machine computer phone screen network server model
company office team project plan report price cost budget market customer order product
idea question answer problem reason result example method system process change effect
small large old new young long short high low early late quick slow bright dark quiet loud
good bad simple hard easy clear strong weak warm cold green blue red white black brown
important common public private local national final main recent similar different useful
is was are were has had will would can could should must may might does did seems becomes
go goes went make makes made take takes took see sees saw know knows knew think thinks thought
come comes came give gives gave find finds found tell tells told ask asks asked work works worked
run runs ran move moves moved live lives lived believe believes bring brings hold holds
write writes wrote read reads provide provides build builds built serve serves served
grow grows grew open opens opened walk walks walked learn learns learned carry carries carried
in on at by for with from into over under near after before during without about between
through across behind beyond around against toward along
and but or so because while although if when where since until unless
very quite rather almost often always never sometimes usually really only still already
again soon together perhaps nearly finally slowly quickly carefully suddenly
""".split()


def sentence(rng: random.Random, n_words: int | None = None) -> str:
    """One sentence: capitalized, words from WORDS, an occasional comma, a final period."""
    n = rng.randint(MIN_WORDS, MAX_WORDS) if n_words is None else n_words
    words = [rng.choice(WORDS) for _ in range(n)]
    for i in range(3, n - 2):
        if rng.random() < 0.06:
            words[i] += ","
    words[0] = words[0].capitalize()
    return " ".join(words) + "."


def sentences(n: int, seed: int = 0) -> list[str]:
    """``n`` sentences of 4..100 words (uniform word count), the same for the same seed."""
    rng = random.Random(seed)
    return [sentence(rng) for _ in range(n)]


def fixed(n: int) -> list[str]:
    """``n`` copies of the fixed sentence (the W2 best case: every request the same length)."""
    return [FIXED_SENTENCE] * n


def write_jsonl(items: list[str], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        for s in items:
            f.write(json.dumps(s) + "\n")


def read_jsonl(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fixed", action="store_true", help="n copies of the fixed sentence instead")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "data" / "sentences.jsonl")
    args = p.parse_args(argv)
    items = fixed(args.n) if args.fixed else sentences(args.n, args.seed)
    write_jsonl(items, args.out)
    words = [len(s.split()) for s in items]
    print(
        f"wrote {len(items)} sentences to {args.out} (words min {min(words)} "
        f"mean {sum(words) / len(words):.1f} max {max(words)})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
