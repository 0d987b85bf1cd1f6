#!/usr/bin/env python3
"""Writes the bad-input corpus in this folder: one small file per case.

Text cases are written directly; binary cases are cut from real files: the SmolLM2
GGUF and the MiniLM safetensors in $BFTEMBED_HOME (default ~/.cache/bftembed), the
AnnData fixture in tests/fixtures, and two Parquet tables written by the bftembed
binary (`target/release/bftembed`, run `cargo build --release` first).
Run from the repository root: python3 tests/bad_inputs/make_corpus.py
"""
import gzip
import os
import pathlib
import subprocess
import tempfile

here = pathlib.Path(__file__).parent
home = pathlib.Path(os.environ.get("BFTEMBED_HOME", pathlib.Path.home() / ".cache/bftembed"))


def write(name, data):
    (here / name).write_bytes(data if isinstance(data, bytes) else data.encode())


# Gene lists.
write("genes_two_fields.txt", "TP53\nMDM2 CDKN1A\nATM\n")
write("genes_bad_character.txt", "TP53\nMDM2\nCD4;;\nBRCA1*\n")
write("genes_empty.txt", "")
write("genes_only_comments.txt", "# nothing here\n\n")
write("genes_non_utf8.txt", b"TP53\nMDM\xff2\n")
genes = "".join(f"GENE{i}\n" for i in range(3000)).encode()
write("genes_truncated.txt.gz", gzip.compress(genes, mtime=0)[:2000])

# Gene-class label CSVs (dosage task layout).
header = "ensembl_id,gene_name,dosage_insensitive,dosage_sensitive\n"
write("labels_missing_column.csv", "ensembl_id,symbol,dosage_sensitive\nENSG00000010539,ZNF200,\n")
write("labels_ragged.csv", header + "ENSG00000010539,ZNF200,Yes,\nENSG00000011590,ZBTB32\n")
write("labels_empty.csv", "")
write("labels_non_utf8.csv", header.encode() + b"ENSG00000010539,ZNF\xfe200,Yes,\n")
write("labels_truncated.csv.gz", gzip.compress((header + "ENSG00000010539,ZNF200,Yes,\n" * 200).encode(), mtime=0)[:80])

# Gene-family label TSV.
write("families_ragged.tsv", "symbol\tfamily\nTP53\tp53 family\nMDM2\n")
write("families_non_utf8.tsv", b"symbol\tfamily\nTP\xff53\tx\n")

# Gene pairs and their labels.
write("pairs_three_genes.txt", "TP53 MDM2\nATM CHEK2 BRCA1\n")
write("pairs_labels_not_binary.txt", "1\n2\n")
write("pairs_labels_short.txt", "1\n")
write("pairs_non_utf8.txt", b"TP53 MDM2\nATM CH\xffEK2\n")
write("pairs_good.txt", "TP53 MDM2\nATM CHEK2\n")
write("pairs_labels_good.txt", "1\n0\n")

# GMT (perturbation signatures).
write("signatures_one_field.gmt", "TP53\tdesc\tMDM2\tCDKN1A\nMDM2\n")
write("signatures_non_utf8.gmt", b"TP53\tdesc\tMD\xffM2\n")
write("signatures_empty.gmt", "")

# Pseudo-bulk response table and group sizes.
write("response_bad_number.tsv", "gene\tB|CTRL\tB|STIM\nISG15\t1.0\t2.0\nMX1\t0.5\tmany\n")
write("response_ragged.tsv", "gene\tB|CTRL\tB|STIM\nISG15\t1.0\n")
write("response_good.tsv", "gene\tB|CTRL\tB|STIM\nISG15\t1.0\t2.0\nMX1\t0.5\t1.5\n")
write("response_nan.tsv", "gene\tB|CTRL\tB|STIM\nISG15\t1.0\t2.0\nMX1\tnan\t1.5\n")
write("sizes_header_only.tsv", "group\tcells\n")
write("sizes_bad_count.tsv", "group\tcells\nB|CTRL\tforty\n")

# MatrixMarket (genes x cells) with good gene and cell files.
write("mtx_genes.txt", "TP53\nMDM2\nCD4\n")
write("mtx_cells.txt", "c1\nc2\n")
write("mtx_cells.csv", "cell_id,cell_type\nc1,T\nc2,B\n")
write("mtx_good.mtx", "%%MatrixMarket matrix coordinate integer general\n3 2 2\n1 1 5\n2 2 1\n")
write("mtx_bad_header.mtx", "%%MatrixMarket matrix array real general\n3 2\n1\n2\n3\n4\n5\n6\n")
write("mtx_out_of_range.mtx", "%%MatrixMarket matrix coordinate integer general\n3 2 2\n1 1 5\n4 2 1\n")
write("mtx_size_mismatch.mtx", "%%MatrixMarket matrix coordinate integer general\n4 2 1\n1 1 5\n")
write("mtx_truncated.mtx", "%%MatrixMarket matrix coordinate integer general\n3 2 4\n1 1 5\n2 1 3\n")
write("mtx_bad_value.mtx", "%%MatrixMarket matrix coordinate integer general\n3 2 1\n1 1 five\n")

# Cell metadata CSV with a missing label column.
write("cells_missing_column.csv", "cell_id,kind\nc1,T\nc2,B\n")

# Task files.
write("task_unknown_key.toml", 'id = "x"\ntitle = "x"\n[gene_classes]\nlabels = "labels_ragged.csv"\nsymbol_column = "gene_name"\nlabel_column = "dosage_sensitive"\npositive_value = "Yes"\npositive_name = "s"\nnegative_name = "i"\nfold = 5\n')
write("task_wrong_type.toml", 'id = "x"\ntitle = "x"\n[gene_classes]\nlabels = "labels_ragged.csv"\nsymbol_column = "gene_name"\nlabel_column = "dosage_sensitive"\npositive_value = "Yes"\npositive_name = "s"\nnegative_name = "i"\nfolds = "five"\n')
write("task_folds_zero.toml", 'id = "x"\ntitle = "x"\n[expression_response]\ntable = "response_ragged.tsv"\ncontrol = "CTRL"\ntreated = "STIM"\nfolds = 0\n')
write("task_k_zero.toml", 'id = "x"\ntitle = "x"\n[cell_types]\nmatrix = "mtx_truncated.mtx"\ngenes = "mtx_genes.txt"\ncells = "mtx_cells.txt"\nvalues = "counts"\nmetadata = "mtx_cells.csv"\ncell_column = "cell_id"\nlabel_column = "cell_type"\nembedding = "weighted"\nclassifier = "knn"\nk = 0\n')
write("task_two_kinds.toml", 'id = "x"\ntitle = "x"\n[perturbations]\ntrain = "signatures_empty.gmt"\n[expression_response]\ntable = "response_ragged.tsv"\ncontrol = "CTRL"\ntreated = "STIM"\n')
write("task_non_utf8.toml", b'id = "x\xff"\ntitle = "x"\n')
write("task_not_toml.toml", 'id = "x\ntitle = \n[gene_classes\n')

# Study and training configs.
write("study_unknown_key.toml", 'out = "out"\nsplti = "split.tsv.gz"\n')
smoke = pathlib.Path("train/smoke.toml").read_text()
write("train_unknown_key.toml", smoke.replace("learning_rate", "learning_rat"))
write("train_steps_zero.toml", smoke.replace("steps = 6", "steps = 0"))
write("train_negative_rate.toml", smoke.replace("learning_rate = 1e-4", "learning_rate = -1e-4"))

# AnnData: the real fixture cut short.
h5ad = (here.parent / "fixtures/pbmc68k_subset_anndata.h5ad").read_bytes()
write("anndata_truncated.h5ad", h5ad[: len(h5ad) // 3])
write("anndata_not_hdf5.h5ad", b"this is not an HDF5 file\n" * 10)

# Model files cut from the real ones.
gguf = (home / "models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf").read_bytes()
write("model_truncated.gguf", gguf[:200_000])
write("model_bad_magic.gguf", b"GGUX" + gguf[4:4096])
st = (home / "models/all-minilm-l6-v2/model.safetensors").read_bytes()
write("model_truncated.safetensors", st[:8192])
write("model_bad_header.safetensors", (10**12).to_bytes(8, "little") + b'{"a": 1}' + b" " * 64)

# Profile tables written by bftembed: one cut short, one with another schema.
binary = pathlib.Path("target/release/bftembed")
with tempfile.TemporaryDirectory() as tmp:
    genes = pathlib.Path(tmp) / "g.txt"
    genes.write_text("TP53\nMDM2\nCDKN1A\nATM\nCHEK2\nBRCA1\n")
    table = pathlib.Path(tmp) / "p.parquet"
    subprocess.run([binary, "profile", "--genes", genes, "--out", table], check=True)
    data = table.read_bytes()
    write("profiles_truncated.parquet", data[: len(data) // 2])
    texts = pathlib.Path(tmp) / "t.parquet"
    subprocess.run([binary, "embed", "--texts", genes, "--out", texts], check=True)
    write("profiles_wrong_schema.parquet", texts.read_bytes())
print("corpus written to", here)
