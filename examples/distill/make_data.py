"""The worked example of docs/distill.md: a large teacher and unlabeled data from digits.

Writes into the current folder: digits-rf.joblib (a 300-tree random forest trained on the first
500 digits), unlabeled.npz (600 more digits, array X only) and labels.npz (the other 697, X and y),
the labeled holdout that accuracy and the cascade gate are measured on.
"""

from __future__ import annotations

import joblib
import numpy as np
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier

x, y = load_digits(return_X_y=True)
x = (x / 16.0).astype(np.float32)
teacher = RandomForestClassifier(n_estimators=300, random_state=0).fit(x[:500], y[:500])
joblib.dump(teacher, "digits-rf.joblib")
np.savez("unlabeled.npz", X=x[500:1100])
np.savez("labels.npz", X=x[1100:], y=y[1100:])
print("wrote digits-rf.joblib, unlabeled.npz (600 items), labels.npz (697 labeled items)")
