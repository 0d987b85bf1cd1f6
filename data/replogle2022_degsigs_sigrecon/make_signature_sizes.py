"""Writes k562_signature_sizes.tsv.gz: per CRISPRi knockdown in K562, how many genes
were significantly up-regulated (the size of its set in k562_top_sig.gmt.gz), a
per-gene number of transcriptional impact for the `gene_values` task kind.

Run from this folder: python3 make_signature_sizes.py (gzip with mtime 0, so reruns
give the same bytes)."""
import gzip

rows = []
with gzip.open("k562_top_sig.gmt.gz", "rt") as f:
    for line in f:
        fields = line.rstrip("\n").split("\t")
        if len(fields) < 3:
            continue
        genes = [g for g in fields[2:] if g.strip()]
        rows.append((fields[0].strip(), len(genes)))

text = "knocked_down_gene\tup_regulated_genes\n" + "".join(f"{g}\t{n}\n" for g, n in rows)
with open("k562_signature_sizes.tsv.gz", "wb") as raw:
    with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as out:
        out.write(text.encode())
print(len(rows), "knockdowns")
