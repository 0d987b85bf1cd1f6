"""Turns the JSON lines of benches/hnsw_scale.sh into the markdown tables of
docs/BENCHMARKS.md: per N, each tool's build time and peak RSS, then queries/s (one
thread and all threads) with recall@10 at each ef.

    python benches/hnsw_scale_table.py /tmp/hnsw-scale/results.jsonl
"""
import json
import sys
from collections import defaultdict


def main(path):
    rows = [json.loads(line) for line in open(path) if line.startswith("{")]
    by_n = defaultdict(list)
    for r in rows:
        by_n[r["n"]].append(r)
    for n, rs in sorted(by_n.items()):
        tools = list(dict.fromkeys(r["tool"] for r in rs))
        print(f"\n#### {n:,} vectors\n")
        print("| tool | build (s) | threads | peak RSS (MiB) |")
        print("|---|---|---|---|")
        for t in tools:
            build = [r for r in rs if r["tool"] == t and r["what"] == "build"]
            rss = [r for r in rs if r["tool"] == t and r["what"] == "peak_rss"]
            for b in build:
                print(f"| {t} | {b['seconds']:.1f} | {b['threads']} | {rss[-1]['mib']:.0f} |" if rss
                      else f"| {t} | {b['seconds']:.1f} | {b['threads']} | |")
        efs = sorted({r["ef"] for r in rs if r["what"] == "query"})
        print("\n| ef | " + " | ".join(f"{t}: q/s 1 thread, all threads, recall@10" for t in tools) + " |")
        print("|---|" + "---|" * len(tools))
        for ef in efs:
            cells = []
            for t in tools:
                q = {r["threads"]: r for r in rs if r["tool"] == t and r["what"] == "query" and r["ef"] == ef}
                if not q:
                    cells.append("")
                    continue
                one = q.get(1)
                many = q[max(q)]
                cells.append(f"{one['qps']:.0f}, {many['qps']:.0f}, {many['recall_at_10']:.3f}")
            print(f"| {ef} | " + " | ".join(cells) + " |")
        stores = [r for r in rs if r["what"] == "cell_store"]
        for s in stores:
            print(f"\nCell store of {n:,} vectors: build {s['build_seconds']:.1f} s (table, graph, "
                  f"checksums), open {s['open_seconds']:.2f} s, verify {s['verify_seconds']:.2f} s, "
                  f"{s['bytes'] / 2**20:.0f} MiB on disk.")


if __name__ == "__main__":
    main(sys.argv[1])
