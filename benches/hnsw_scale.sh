#!/usr/bin/env bash
# HNSW at scale, bftembed beside hnswlib and faiss, alternating on the same machine and
# the same files: for each N, bftembed, then hnswlib, then faiss, each in its own
# process (so peak RSS is its own). JSON lines go to OUT (default
# /tmp/hnsw-scale/results.jsonl); benches/hnsw_scale_table.py turns them into the table.
#   PYTHON=/path/to/venv/bin/python [M=24 EF_CONSTRUCTION=200 STORE=1] bash benches/hnsw_scale.sh 100000 1000000
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${DIR:-/tmp/hnsw-scale}
OUT=${OUT:-$DIR/results.jsonl}
PYTHON=${PYTHON:-python3}
mkdir -p "$DIR"
cargo bench --bench hnsw_scale --no-run
BIN=$(ls -t target/release/deps/hnsw_scale-* | grep -v '\.d$' | head -1)
GRAPH=(--m "${M:-24}" --ef-construction "${EF_CONSTRUCTION:-200}")
for n in "$@"; do
    "$BIN" --n "$n" --dir "$DIR" "${GRAPH[@]}" ${STORE:+--store} | tee -a "$OUT"
    "$PYTHON" benches/peers/hnsw_scale.py --tool hnswlib --n "$n" --dir "$DIR" "${GRAPH[@]}" | tee -a "$OUT"
    "$PYTHON" benches/peers/hnsw_scale.py --tool faiss --n "$n" --dir "$DIR" "${GRAPH[@]}" | tee -a "$OUT"
done
