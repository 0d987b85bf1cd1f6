"""Regenerates the gene-card inputs in this folder from ../shared/data/bioc_org_hs_eg_db_go
(org.Hs.eg.db 3.16.0 and GO.db 3.16.0; see PROVENANCE.md here).

    python3 data/gene_cards/make_card_inputs.py ../shared/data/bioc_org_hs_eg_db_go data/gene_cards

Writes (gzip, mtime 0, so the bytes are reproducible):
- go_annotations.tsv.gz: entrez_id, symbol, ontology, go_id, evidence (the distinct
  evidence codes, sorted, comma-joined). ND ("no biological data available") rows are
  dropped: they state that nothing is known, and always point at an ontology root.
- go_term_names.tsv.gz: go_id, ontology, term, for every term an annotation names.
- gene_chromosomes.tsv.gz: entrez_id, chromosome (";"-joined when several).
"""
import gzip
import sys
from collections import defaultdict

src, out = sys.argv[1], sys.argv[2]


def rows(name):
    with open(f"{src}/{name}", encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            yield dict(zip(header, line.rstrip("\n").split("\t")))


def write(name, header, body):
    with gzip.GzipFile(f"{out}/{name}", "wb", mtime=0, compresslevel=9) as f:
        f.write(("\t".join(header) + "\n").encode())
        for r in body:
            f.write(("\t".join(r) + "\n").encode())


evidence = defaultdict(set)
for r in rows("go_annotations_direct.tsv"):
    if r["evidence"] == "ND":
        continue
    evidence[(int(r["entrez_id"]), r["symbol"], r["ontology"], r["go_id"])].add(r["evidence"])
write(
    "go_annotations.tsv.gz",
    ["entrez_id", "symbol", "ontology", "go_id", "evidence"],
    ((str(e), s, o, g, ",".join(sorted(ev))) for (e, s, o, g), ev in sorted(evidence.items())),
)
used = {k[3] for k in evidence}
terms = sorted((r["go_id"], r["ontology"], r["term"]) for r in rows("go_terms.tsv") if r["go_id"] in used)
missing = used - {t[0] for t in terms}
assert not missing, f"annotated terms without a name: {sorted(missing)[:5]}"
write("go_term_names.tsv.gz", ["go_id", "ontology", "term"], terms)
chrom = sorted(
    (int(r["entrez_id"]), r["chromosome"]) for r in rows("gene_info.tsv") if r["chromosome"] not in ("", "NA")
)
write("gene_chromosomes.tsv.gz", ["entrez_id", "chromosome"], ((str(e), c) for e, c in chrom))
print(f"{len(evidence)} annotations of {len({k[0] for k in evidence})} genes, {len(terms)} terms, {len(chrom)} chromosomes")
