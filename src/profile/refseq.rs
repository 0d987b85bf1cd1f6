//! Gene profiles from NCBI RefSeq summaries (release 220, shipped in
//! `data/refseq_gene_summaries/` and compiled into the binary): the GenePT recipe.

use super::table::ProfileRecord;
use crate::error::{Error, Result};
use crate::genes::{GeneCatalog, GeneList};
use std::collections::HashMap;
use std::path::Path;

/// The `source` value of RefSeq-summary profiles.
pub const SOURCE_REFSEQ: &str = "refseq";

static EMBEDDED_SUMMARIES: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/refseq_gene_summaries/refseq_gene_summaries_human.tsv.gz"
));

/// One RefSeq summary row.
#[derive(Debug, Clone)]
struct SummaryRow {
    entrez_id: u32,
    symbol: String,
    gene_name: String,
    summary: String,
}

/// How a profile text is made from a RefSeq row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RefseqTextStyle {
    /// "SYMBOL (full name). summary", like the NCBI Gene page GenePT embedded.
    #[default]
    NamedSummary,
    /// The summary alone: no symbol for the encoder to match on by spelling.
    SummaryOnly,
}

/// RefSeq gene summaries indexed by Entrez id and symbol.
#[derive(Debug, Clone)]
pub struct RefseqSummaries {
    style: RefseqTextStyle,
    rows: Vec<SummaryRow>,
    by_entrez: HashMap<u32, usize>,
    by_symbol: HashMap<String, usize>,
}

/// A gene that got no profile, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct SkippedGene {
    /// Line in the gene list (0 when the gene came from elsewhere).
    pub line: usize,
    /// The symbol as given.
    pub symbol: String,
    /// Why it was skipped.
    pub reason: String,
}

/// Profiles built for a gene list, and the genes that got none.
#[derive(Debug, Clone)]
pub struct ProfileBuild {
    /// One profile per gene that has a summary.
    pub records: Vec<ProfileRecord>,
    /// Genes with no profile (unknown symbol, or no RefSeq summary).
    pub skipped: Vec<SkippedGene>,
}

impl RefseqSummaries {
    /// The summaries shipped with bftembed.
    pub fn embedded() -> Result<Self> {
        let name = "data/refseq_gene_summaries/refseq_gene_summaries_human.tsv.gz";
        let text = crate::io::tsv::gunzip_embedded(EMBEDDED_SUMMARIES, name)?;
        Self::parse(&text, Path::new(name))
    }

    /// Reads a summaries TSV (columns `entrez_id`, `symbol`, `gene_name`, `summary`).
    pub fn from_tsv(path: &Path) -> Result<Self> {
        let lines = crate::fsutil::read_utf8_lines(path)?;
        Self::parse(&lines.join("\n"), path)
    }

    fn parse(text: &str, path: &Path) -> Result<Self> {
        let (header, lines) = crate::io::tsv::split_header(text, path)?;
        let col = |name: &str| header.column(name);
        let (c_id, c_sym, c_name, c_sum) = (
            col("entrez_id")?,
            col("symbol")?,
            col("gene_name")?,
            col("summary")?,
        );
        let mut rows = Vec::new();
        for (i, line) in lines.enumerate() {
            let f: Vec<&str> = line.split('\t').collect();
            let get = |c: usize| f.get(c).copied().unwrap_or("").trim();
            let entrez_id = get(c_id).parse::<u32>().map_err(|_| Error::Parse {
                path: path.to_path_buf(),
                line: i + 2,
                message: format!("entrez_id '{}' is not a number", get(c_id)),
            })?;
            if get(c_sum).is_empty() {
                continue;
            }
            rows.push(SummaryRow {
                entrez_id,
                symbol: get(c_sym).to_string(),
                gene_name: get(c_name).to_string(),
                summary: get(c_sum).to_string(),
            });
        }
        let by_entrez = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (r.entrez_id, i))
            .collect();
        let by_symbol = rows
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.symbol.is_empty())
            .map(|(i, r)| (r.symbol.to_uppercase(), i))
            .collect();
        Ok(RefseqSummaries {
            style: RefseqTextStyle::default(),
            rows,
            by_entrez,
            by_symbol,
        })
    }

    /// Uses `style` for the profile texts made from now on.
    pub fn with_style(mut self, style: RefseqTextStyle) -> Self {
        self.style = style;
        self
    }

    /// Number of genes with a summary.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when no summaries are loaded.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The summary of an HGNC gene: matched by Entrez id, else by approved symbol.
    pub fn summary_for(&self, gene: &crate::genes::Gene) -> Option<&str> {
        gene.entrez_id
            .and_then(|id| self.by_entrez.get(&id))
            .or_else(|| self.by_symbol.get(&gene.symbol.to_uppercase()))
            .map(|&i| self.rows[i].summary.as_str())
    }

    /// Profiles for every gene that has a summary, named by its current HGNC symbol.
    pub fn all_profiles(&self, catalog: &GeneCatalog) -> ProfileBuild {
        let mut seen = std::collections::HashSet::new();
        let mut records = Vec::new();
        let mut skipped = Vec::new();
        for row in &self.rows {
            let gene = catalog.by_entrez(row.entrez_id);
            let symbol = gene.map(|g| g.symbol.clone()).unwrap_or(row.symbol.clone());
            if symbol.is_empty() {
                skipped.push(SkippedGene {
                    line: 0,
                    symbol: format!("Entrez {}", row.entrez_id),
                    reason: "has no symbol in HGNC or org.Hs.eg.db".into(),
                });
                continue;
            }
            if !seen.insert(symbol.to_uppercase()) {
                skipped.push(SkippedGene {
                    line: 0,
                    symbol,
                    reason: format!(
                        "a second summary (Entrez {}) for the same symbol",
                        row.entrez_id
                    ),
                });
                continue;
            }
            let name = gene.map(|g| g.name.as_str()).unwrap_or(&row.gene_name);
            records.push(self.record(row, symbol, name));
        }
        ProfileBuild { records, skipped }
    }

    /// Profiles for the genes of a list; each symbol is resolved through the HGNC
    /// catalogue (aliases and previous symbols too) and then matched by Entrez id.
    pub fn profiles_for(&self, list: &GeneList, catalog: &GeneCatalog) -> ProfileBuild {
        let mut records = Vec::new();
        let mut skipped = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for entry in &list.entries {
            let skip = |reason: String| SkippedGene {
                line: entry.line,
                symbol: entry.symbol.clone(),
                reason,
            };
            let (row, symbol, name) = match catalog.resolve(&entry.symbol) {
                Ok(resolved) => {
                    let gene = resolved.gene;
                    let row = gene
                        .entrez_id
                        .and_then(|id| self.by_entrez.get(&id))
                        .or_else(|| self.by_symbol.get(&gene.symbol.to_uppercase()));
                    match row {
                        Some(&i) => (&self.rows[i], gene.symbol.clone(), gene.name.clone()),
                        None => {
                            skipped.push(skip(format!("{} has no RefSeq summary", gene.symbol)));
                            continue;
                        }
                    }
                }
                Err(e) => {
                    // Genes too new or too odd for HGNC may still have a summary.
                    match self.by_symbol.get(&entry.symbol.to_uppercase()) {
                        Some(&i) => {
                            let row = &self.rows[i];
                            (row, row.symbol.clone(), row.gene_name.clone())
                        }
                        None => {
                            skipped.push(skip(e.to_string()));
                            continue;
                        }
                    }
                }
            };
            if !seen.insert(symbol.to_uppercase()) {
                skipped.push(skip(format!("same gene as an earlier line ({symbol})")));
                continue;
            }
            records.push(self.record(row, symbol, &name));
        }
        ProfileBuild { records, skipped }
    }

    fn record(&self, row: &SummaryRow, symbol: String, name: &str) -> ProfileRecord {
        // Symbol and full name lead the text, as on the NCBI Gene page GenePT embedded.
        let text = match self.style {
            RefseqTextStyle::SummaryOnly => row.summary.clone(),
            RefseqTextStyle::NamedSummary if name.is_empty() => {
                format!("{symbol}. {}", row.summary)
            }
            RefseqTextStyle::NamedSummary => format!("{symbol} ({name}). {}", row.summary),
        };
        ProfileRecord {
            symbol,
            entrez_id: Some(row.entrez_id),
            source: SOURCE_REFSEQ.to_string(),
            text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::genes::read_gene_list;

    #[test]
    fn all_profiles_cover_the_shipped_summaries() {
        let s = RefseqSummaries::embedded().unwrap();
        let c = GeneCatalog::embedded().unwrap();
        let build = s.all_profiles(&c);
        assert!(build.records.len() >= 15_000, "{}", build.records.len());
        let tp53 = build.records.iter().find(|r| r.symbol == "TP53").unwrap();
        assert_eq!(tp53.entrez_id, Some(7157));
        assert!(tp53
            .text
            .starts_with("TP53 (tumor protein p53). This gene encodes a tumor suppressor"));
        let plain = s.with_style(RefseqTextStyle::SummaryOnly).all_profiles(&c);
        let tp53 = plain.records.iter().find(|r| r.symbol == "TP53").unwrap();
        assert!(tp53
            .text
            .starts_with("This gene encodes a tumor suppressor"));
    }

    #[test]
    fn list_resolves_aliases_and_reports_misses() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.txt");
        std::fs::write(&p, "p53\nHIST1H3C\nNOTAGENE1\nTP53\n").unwrap();
        let list = read_gene_list(&p).unwrap();
        let s = RefseqSummaries::embedded().unwrap();
        let c = GeneCatalog::embedded().unwrap();
        let build = s.profiles_for(&list, &c);
        let symbols: Vec<_> = build.records.iter().map(|r| r.symbol.as_str()).collect();
        assert_eq!(symbols, ["TP53", "H3C3"]);
        assert_eq!(build.skipped.len(), 2);
        assert_eq!(build.skipped[0].line, 3);
        assert!(build.skipped[1].reason.contains("same gene"));
    }
}
