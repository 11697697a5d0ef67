"""The text example of docs/distill.md: a TF-IDF teacher and made-up reviews.

Writes into the current folder: reviews-tfidf.joblib (TF-IDF + logistic regression trained on
200 labeled reviews), reviews.jsonl (300 unlabeled reviews), reviews-labels.jsonl (200 labeled
ones) and text-student.yaml (kind: text). scikit-learn bundles no text data set, so the reviews
are short sentences drawn from word lists, seeded; the sentiment is the first clause's.
"""

from __future__ import annotations

import json
import random

import joblib
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

GOOD = "great excellent lovely friendly fast delicious wonderful superb".split()
BAD = "awful terrible rude slow cold bland horrible dirty".split()
THINGS = ["the food", "the service", "our waiter", "the room", "the coffee", "the staff"]


def reviews(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        good = rng.random() < 0.5
        text = f"{rng.choice(THINGS)} was {rng.choice(GOOD if good else BAD)}"
        if rng.random() < 0.4:
            text += f" and {rng.choice(THINGS)} was {rng.choice(GOOD + BAD)}"
        out.append((text, "pos" if good else "neg"))
    return out


train = reviews(200, 0)
teacher = make_pipeline(TfidfVectorizer(), LogisticRegression(C=10))
teacher.fit([t for t, _ in train], [y for _, y in train])
joblib.dump(teacher, "reviews-tfidf.joblib")
with open("reviews.jsonl", "w") as f:
    f.writelines(json.dumps({"input": t}) + "\n" for t, _ in reviews(300, 1))
with open("reviews-labels.jsonl", "w") as f:
    f.writelines(json.dumps({"input": t, "label": y}) + "\n" for t, y in reviews(200, 2))
with open("text-student.yaml", "w") as f:
    f.write("kind: text\nparams: {hidden: 0, epochs: 200, learning_rate: 0.01}\nseed: 0\n")
print(
    "wrote reviews-tfidf.joblib, reviews.jsonl (300), reviews-labels.jsonl (200), text-student.yaml"
)
