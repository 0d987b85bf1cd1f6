"""scikit-learn peer of benches/probe_fit.rs: the same matrices (target/probe-bench/*.npy,
written by the Rust bench), StandardScaler, then LogisticRegression with the same L2
penalty (C = 1 / alpha = 1: linfa minimises the summed log-loss + alpha/2 |w|^2, as
scikit-learn does C * summed log-loss + 1/2 |w|^2), L-BFGS, at most 100 iterations.

Run after the Rust bench: python benches/peers/sklearn_probe.py [THREADS]
"""
import os
import sys
import time

threads = sys.argv[1] if len(sys.argv) > 1 else "2"
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = threads

import numpy as np  # noqa: E402
import sklearn  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

root = os.path.join(os.path.dirname(__file__), "..", "..", "target", "probe-bench")
load = lambda name: np.load(os.path.join(root, name + ".npy"))  # noqa: E731
train_x, train_y, test_x, test_y = (load(n) for n in ("train_x", "train_y", "test_x", "test_y"))
print(f"scikit-learn {sklearn.__version__}, numpy {np.__version__}, threads {threads}, "
      f"pairs: {len(train_y)} train, {len(test_y)} test, {train_x.shape[1]} features")
for round in range(3):
    start = time.perf_counter()
    scaler = StandardScaler().fit(train_x)
    model = LogisticRegression(C=1.0, max_iter=100, solver="lbfgs")
    model.fit(scaler.transform(train_x), train_y)
    scores = model.predict_proba(scaler.transform(test_x))[:, 1]
    secs = time.perf_counter() - start
    print(f"round {round}: fit + predict {secs:.2f} s, ROC AUC {roc_auc_score(test_y, scores):.4f}")
