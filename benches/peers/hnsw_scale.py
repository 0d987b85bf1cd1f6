"""Peers for benches/hnsw_scale.rs: hnswlib and faiss (IndexHNSWFlat) on the same files
(base-N.f32, queries.f32, truth-N.u32 that the Rust bench writes first), with the same
M and ef_construction (default 24 and 200, the store's), inner product on unit vectors (= cosine), recall@10
against the same exact top-10, at the same ef values, one query thread and all threads.
Prints one JSON line per figure, like the Rust bench.

    cargo bench --bench hnsw_scale -- --n 100000 --dir /tmp/hnsw-scale
    python benches/peers/hnsw_scale.py --tool hnswlib --n 100000 --dir /tmp/hnsw-scale
    python benches/peers/hnsw_scale.py --tool faiss --n 100000 --dir /tmp/hnsw-scale

Each tool runs in its own process, so its peak RSS (ru_maxrss) is its own.
"""
import argparse
import importlib.metadata
import json
import os
import resource
import time

import numpy as np

DIM, K = 384, 10
EFS = [16, 32, 64, 128, 256]


def report(tool, n, what, **fields):
    print(json.dumps({"tool": tool, "n": n, "what": what, **fields}), flush=True)


def recall(found, truth):
    return sum(len(set(f[:K]) & set(t)) for f, t in zip(found, truth)) / (len(truth) * K)


def run_hnswlib(base, queries, truth, n, threads, M, EF_CONSTRUCTION):
    import hnswlib
    tool = f"hnswlib {importlib.metadata.version('hnswlib')}"
    index = hnswlib.Index(space="ip", dim=DIM)
    index.init_index(max_elements=n, M=M, ef_construction=EF_CONSTRUCTION, random_seed=1)
    index.set_num_threads(threads)
    start = time.perf_counter()
    index.add_items(base, np.arange(n))
    report(tool, n, "build", seconds=time.perf_counter() - start, threads=threads,
           m=M, ef_construction=EF_CONSTRUCTION)
    for ef in EFS:
        index.set_ef(ef)
        for t in sorted({1, threads}):
            index.set_num_threads(t)
            start = time.perf_counter()
            if t == 1:
                found = [index.knn_query(q[None, :], k=K)[0][0] for q in queries]
            else:
                found = index.knn_query(queries, k=K, num_threads=t)[0]
            secs = time.perf_counter() - start
            report(tool, n, "query", ef=ef, threads=t, qps=len(queries) / secs,
                   recall_at_10=recall(found, truth))
    return tool


def run_faiss(base, queries, truth, n, threads, M, EF_CONSTRUCTION):
    import faiss
    tool = f"faiss {faiss.__version__}"
    faiss.omp_set_num_threads(threads)
    index = faiss.IndexHNSWFlat(DIM, M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = EF_CONSTRUCTION
    start = time.perf_counter()
    index.add(base)
    report(tool, n, "build", seconds=time.perf_counter() - start, threads=threads,
           m=M, ef_construction=EF_CONSTRUCTION)
    for ef in EFS:
        index.hnsw.efSearch = ef
        for t in sorted({1, threads}):
            faiss.omp_set_num_threads(t)
            start = time.perf_counter()
            if t == 1:
                found = [index.search(q[None, :], K)[1][0] for q in queries]
            else:
                found = index.search(queries, K)[1]
            secs = time.perf_counter() - start
            report(tool, n, "query", ef=ef, threads=t, qps=len(queries) / secs,
                   recall_at_10=recall(found, truth))
    return tool


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tool", choices=["hnswlib", "faiss"], required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--dir", default="/tmp/hnsw-scale")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--m", type=int, default=24)
    parser.add_argument("--ef-construction", type=int, default=200)
    args = parser.parse_args()
    base = np.fromfile(os.path.join(args.dir, f"base-{args.n}.f32"), dtype="<f4").reshape(-1, DIM)
    queries = np.fromfile(os.path.join(args.dir, "queries.f32"), dtype="<f4").reshape(-1, DIM)
    truth = np.fromfile(os.path.join(args.dir, f"truth-{args.n}.u32"), dtype="<u4").reshape(-1, K)
    run = run_hnswlib if args.tool == "hnswlib" else run_faiss
    tool = run(base, queries, truth, args.n, args.threads, args.m, args.ef_construction)
    report(tool, args.n, "peak_rss", mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


if __name__ == "__main__":
    main()
