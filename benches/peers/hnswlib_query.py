"""Peer figure for benches/store_query.rs: hnswlib on the same vectors, same M and
ef_construction, same queries (every 5th gene, itself excluded), one query thread.

    cargo bench --bench store_query -- --dump-vectors /tmp/vectors.f32
    python benches/peers/hnswlib_query.py /tmp/vectors.f32 384
"""
import sys
import time

import hnswlib
import numpy as np


def main():
    path, dim = sys.argv[1], int(sys.argv[2])
    data = np.fromfile(path, dtype="<f4").reshape(-1, dim)
    n = data.shape[0]
    index = hnswlib.Index(space="ip", dim=dim)
    index.init_index(max_elements=n, M=24, ef_construction=200, random_seed=1)
    index.set_num_threads(2)
    start = time.perf_counter()
    index.add_items(data, np.arange(n))
    print(f"hnswlib {getattr(hnswlib, '__version__', '?')}: build {time.perf_counter() - start:.1f} s "
          f"({n} x {dim}, M 24, ef_construction 200, 2 threads)")
    index.set_num_threads(1)
    queries = np.arange(0, n, 5)
    k = 10
    scores = data[queries] @ data.T
    scores[np.arange(len(queries)), queries] = -np.inf
    truth = np.argsort(-scores, axis=1)[:, :k]
    for ef in [16, 32, 64, 128]:
        index.set_ef(ef)
        start = time.perf_counter()
        hit = 0
        for qi, q in enumerate(queries):
            labels, _ = index.knn_query(data[q:q + 1], k=k + 1)
            got = [x for x in labels[0] if x != q][:k]
            hit += len(set(got) & set(truth[qi]))
        secs = time.perf_counter() - start
        print(f"hnswlib ef {ef:>3}: {len(queries) / secs:.0f} queries/s, recall@10 {hit / (len(queries) * k):.4f}")


if __name__ == "__main__":
    main()
