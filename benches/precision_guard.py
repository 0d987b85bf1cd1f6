"""The quality guard for a reduced-precision encoder path, on real data.

Compares two stores built from the same profiles, one at f32 and one at the reduced
precision (`bftembed embed --precision f32|bf16`), and their `bftembed eval` reports:
per-gene cosine between the two vectors, top-10 neighbour overlap, and for every task
whether the reduced path's score lies inside the f32 score's interval. Exits non-zero
when a guard fails (cosine < 0.999, or a score outside its interval).

    python benches/precision_guard.py STORE_F32 STORE_BF16 REPORT_F32 REPORT_BF16

Needs numpy and pyarrow.
"""
import json
import sys

import numpy as np
import pyarrow.parquet as pq


def vectors(store):
    table = pq.read_table(f"{store}/vectors.parquet", columns=["symbol", "vector"]).to_pydict()
    return table["symbol"], np.array(table["vector"], dtype=np.float32)


def top10(v, rows):
    sims = v[rows] @ v.T
    sims[np.arange(len(rows)), rows] = -np.inf
    return np.argsort(-sims, axis=1)[:, :10]


def main():
    store_a, store_b, report_a, report_b = sys.argv[1:5]
    sym_a, a = vectors(store_a)
    sym_b, b = vectors(store_b)
    assert sym_a == sym_b, "the two stores hold different genes"
    cos = (a * b).sum(axis=1)
    rows = np.arange(0, len(a), max(1, len(a) // 2000))
    overlap = np.mean([len(set(x) & set(y)) / 10 for x, y in zip(top10(a, rows), top10(b, rows))])
    print(f"genes {len(a)}: cosine min {cos.min():.6f}, 1st percentile "
          f"{np.percentile(cos, 1):.6f}, mean {cos.mean():.7f}; top-10 neighbour overlap "
          f"{overlap:.4f} over {len(rows)} genes")
    ok = cos.min() >= 0.999
    tasks_a = {t["id"]: t for t in json.load(open(f"{report_a}/report.json"))["tasks"]}
    tasks_b = {t["id"]: t for t in json.load(open(f"{report_b}/report.json"))["tasks"]}
    print("| task | metric | f32 [interval] | reduced | inside |")
    print("|---|---|---|---|---|")
    for task_id, task in tasks_a.items():
        # The first score is the store's own; the random floor does not depend on it.
        fa, fb = task["scores"][0], tasks_b[task_id]["scores"][0]
        lo, hi = fa["interval"]
        inside = lo <= fb["value"] <= hi
        ok &= inside
        print(f"| {task_id} | {fa['metric']} | {fa['value']:.4f} [{lo:.4f}, {hi:.4f}] | "
              f"{fb['value']:.4f} | {'yes' if inside else 'NO'} |")
    print("guard holds" if ok else "GUARD FAILS")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
