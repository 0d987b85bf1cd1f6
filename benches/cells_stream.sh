#!/usr/bin/env bash
# `bftembed cells` on atlas-sized matrices: peak memory and time against the cell count,
# reading by window (the default) and, where it fits, whole (--window 0). The matrices
# are synthetic stand-ins for the shape (benches/make_synthetic_csr.py: N cells x 20,000
# genes, 700 non-zero counts per cell, CSR), the gene store 384-d seeded vectors for
# their genes. One JSON line per run goes to OUT (default $DIR/results.jsonl).
#   PYTHON=/path/to/venv/bin/python [WHOLE_UP_TO=100000] bash benches/cells_stream.sh 100000 300000 1000000
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${DIR:-/tmp/cells-stream}
OUT=${OUT:-$DIR/results.jsonl}
PYTHON=${PYTHON:-python3}
WHOLE_UP_TO=${WHOLE_UP_TO:-100000}
mkdir -p "$DIR"
cargo build --release --bin bftembed
BIN=target/release/bftembed
for n in "$@"; do
    matrix="$DIR/cells-$n.h5ad"
    [ -f "$matrix" ] || "$PYTHON" benches/make_synthetic_csr.py --cells "$n" --out "$matrix" --vectors "$DIR/vectors.tsv"
done
[ -d "$DIR/store" ] || "$BIN" import --vectors "$DIR/vectors.tsv" --out "$DIR/store"
run() {  # n window
    local n=$1 window=$2 out="$DIR/cells-$1-w$2.parquet"
    rm -f "$out"
    /usr/bin/time -f '%M %e' -o "$DIR/time.txt" "$BIN" cells --matrix "$DIR/cells-$n.h5ad" \
        --store "$DIR/store" --window "$window" --out "$out" 2> "$DIR/log-$n-$window.txt"
    read -r kib seconds < "$DIR/time.txt"
    printf '{"cells": %s, "genes": 20000, "nnz_per_cell": 700, "window": %s, "peak_rss_mib": %.0f, "wall_s": %s, "file_mib": %.0f, "out_mib": %.0f}\n' \
        "$n" "$window" "$(echo "$kib / 1024" | bc -l)" "$seconds" \
        "$(echo "$(stat -c %s "$DIR/cells-$n.h5ad") / 1048576" | bc -l)" \
        "$(echo "$(stat -c %s "$out") / 1048576" | bc -l)" | tee -a "$OUT"
    rm -f "$out"
}
for n in "$@"; do
    run "$n" 4096
    if [ "$n" -le "$WHOLE_UP_TO" ]; then run "$n" 0; fi
done
