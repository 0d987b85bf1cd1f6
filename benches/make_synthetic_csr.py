"""A synthetic AnnData file at atlas scale, for benches/cells_stream.sh: CELLS cells x
GENES genes in CSR (anndata's current layout, written with h5py in slices so that the
writer itself stays small), NNZ non-zero counts per cell drawn without replacement from
the genes, counts 1..20. No real file of this shape (a million cells) ships with the
project: this is a stand-in for the *shape* only, with HGNC symbols as gene names
(protein-coding first, then other approved genes) so that a gene store knows them.
Also writes a TSV of seeded 384-d vectors for those genes (the gene store `bftembed
import` builds).

    python benches/make_synthetic_csr.py --cells 1000000 --out /tmp/cells-stream/cells-1000000.h5ad
"""
import argparse, gzip, os
import numpy as np
import h5py

ap = argparse.ArgumentParser()
ap.add_argument("--cells", type=int, required=True)
ap.add_argument("--genes", type=int, default=20000)
ap.add_argument("--nnz", type=int, default=700)
ap.add_argument("--out", required=True)
ap.add_argument("--vectors", help="also write the gene vectors TSV here")
ap.add_argument("--seed", type=int, default=0)
a = ap.parse_args()

here = os.path.dirname(os.path.abspath(__file__))
coding, other = [], []
with gzip.open(os.path.join(here, "..", "data", "hgnc", "hgnc_entries.tsv.gz"), "rt") as f:
    next(f)
    for line in f:
        fields = line.rstrip("\n").split("\t")
        if fields[3] == "Approved":
            (coding if fields[11] == "gene with protein product" else other).append(fields[1])
# Protein-coding genes first, then other approved genes (lncRNAs and the like, as a 10x
# features file also lists).
symbols = (coding + other)[: a.genes]
assert len(symbols) == a.genes, f"only {len(symbols)} approved symbols"

rng = np.random.default_rng(a.seed)
tmp = a.out + ".tmp"
str_dt = h5py.string_dtype("utf-8")
with h5py.File(tmp, "w") as f:
    f.attrs["encoding-type"] = "anndata"
    f.attrs["encoding-version"] = "0.1.0"
    for name, index in [("obs", [f"cell{i}" for i in range(a.cells)]), ("var", symbols)]:
        g = f.create_group(name)
        g.attrs["encoding-type"] = "dataframe"
        g.attrs["encoding-version"] = "0.2.0"
        g.attrs["_index"] = "_index"
        g.attrs["column-order"] = np.array([], dtype=str_dt)
        d = g.create_dataset("_index", data=np.array(index, dtype=object), dtype=str_dt)
        d.attrs["encoding-type"] = "string-array"
        d.attrs["encoding-version"] = "0.2.0"
    x = f.create_group("X")
    x.attrs["encoding-type"] = "csr_matrix"
    x.attrs["encoding-version"] = "0.1.0"
    x.attrs["shape"] = np.array([a.cells, a.genes], dtype=np.int64)
    total = a.cells * a.nnz
    data = x.create_dataset("data", shape=(total,), dtype=np.float32)
    indices = x.create_dataset("indices", shape=(total,), dtype=np.int32)
    x.create_dataset("indptr", data=np.arange(a.cells + 1, dtype=np.int64) * a.nnz)
    step = 2000
    for start in range(0, a.cells, step):
        n = min(step, a.cells - start)
        # Per cell, NNZ distinct genes in increasing order.
        keys = rng.random((n, a.genes), dtype=np.float32)
        genes = np.sort(np.argpartition(keys, a.nnz, axis=1)[:, : a.nnz], axis=1)
        lo, hi = start * a.nnz, (start + n) * a.nnz
        indices[lo:hi] = genes.reshape(-1).astype(np.int32)
        data[lo:hi] = rng.integers(1, 21, size=n * a.nnz).astype(np.float32)
    for name in ("uns", "obsm", "varm", "layers", "obsp", "varp"):
        g = f.create_group(name)
        g.attrs["encoding-type"] = "dict"
        g.attrs["encoding-version"] = "0.1.0"
os.replace(tmp, a.out)

if a.vectors:
    v = np.random.default_rng(a.seed + 1).standard_normal((len(symbols), 384)).astype(np.float32)
    with open(a.vectors, "w") as out:
        out.write("symbol\t" + "\t".join(f"d{i}" for i in range(384)) + "\n")
        for s, row in zip(symbols, v):
            out.write(s + "\t" + "\t".join(f"{x:.5f}" for x in row) + "\n")
