//! What a model is asked to profile: genes, cell types (a name and marker genes) and
//! perturbations (a target and what is done to it), each with the template fields it
//! fills in.

use super::refseq::SkippedGene;
use crate::error::{Error, Result};
use crate::genes::{GeneCatalog, GeneList};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

/// The kind of thing profiled; each has its own template fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectKind {
    /// A gene: `{symbol}`, `{name}`.
    Gene,
    /// A cell type: `{cell_type}`, `{markers}`.
    CellType,
    /// A perturbation: `{target}`, `{name}`, `{perturbation}`.
    Perturbation,
    /// A gene set to name: `{genes}` (comma-separated symbols), `{size}`.
    GeneSet,
}

impl SubjectKind {
    /// The placeholders a template for this kind may use.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            SubjectKind::Gene => &["symbol", "name"],
            SubjectKind::CellType => &["cell_type", "markers"],
            SubjectKind::Perturbation => &["target", "name", "perturbation"],
            SubjectKind::GeneSet => &["genes", "size"],
        }
    }

    /// The name used in files and messages.
    pub fn label(self) -> &'static str {
        match self {
            SubjectKind::Gene => "gene",
            SubjectKind::CellType => "cell-type",
            SubjectKind::Perturbation => "perturbation",
            SubjectKind::GeneSet => "gene-set",
        }
    }
}

/// One thing to profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Subject {
    /// The row key in the profile table: a gene symbol, a cell-type name, or
    /// "TARGET perturbation".
    pub key: String,
    /// Entrez id of the gene involved, where there is one.
    pub entrez_id: Option<u32>,
    /// Template field values.
    pub fields: BTreeMap<String, String>,
}

/// Resolves a gene list through the HGNC catalogue into gene subjects, once each;
/// unknown, ambiguous and repeated entries come back as skipped.
pub fn gene_subjects(list: &GeneList, catalog: &GeneCatalog) -> (Vec<Subject>, Vec<SkippedGene>) {
    let mut subjects = Vec::new();
    let mut skipped = Vec::new();
    let mut seen = HashSet::new();
    for entry in &list.entries {
        let reason = match catalog.resolve(&entry.symbol) {
            Ok(r) if seen.insert(r.gene.symbol.clone()) => {
                subjects.push(Subject {
                    key: r.gene.symbol.clone(),
                    entrez_id: r.gene.entrez_id,
                    fields: BTreeMap::from([
                        ("symbol".to_string(), r.gene.symbol.clone()),
                        ("name".to_string(), r.gene.name.clone()),
                    ]),
                });
                continue;
            }
            Ok(r) => format!("same gene as an earlier line ({})", r.gene.symbol),
            Err(e) => e.to_string(),
        };
        skipped.push(SkippedGene {
            line: entry.line,
            symbol: entry.symbol.clone(),
            reason,
        });
    }
    (subjects, skipped)
}

/// Reads a cell-type file: per line a name, a tab, then marker genes separated by
/// commas or spaces (`#` comments allowed). Markers are resolved to approved symbols;
/// a marker no catalogue knows is an error naming its line, as is a line without
/// markers or a repeated name.
pub fn read_cell_types(path: &Path, catalog: &GeneCatalog) -> Result<Vec<Subject>> {
    let mut out: Vec<Subject> = Vec::new();
    for (line, content) in content_lines(path)? {
        let parse = |message: String| line_error(path, line, message);
        let (name, markers) = content
            .split_once('\t')
            .ok_or_else(|| parse("expected 'cell type<TAB>marker genes'".into()))?;
        let name = name.trim();
        let mut symbols = Vec::new();
        for m in markers
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|m| !m.is_empty())
        {
            let gene = catalog
                .resolve(m)
                .map_err(|e| parse(format!("marker {m}: {e}")))?;
            symbols.push(gene.gene.symbol.clone());
        }
        if name.is_empty() || symbols.is_empty() {
            return Err(parse(
                "a cell type needs a name and at least one marker gene".into(),
            ));
        }
        if out.iter().any(|s| s.key == name) {
            return Err(parse(format!("cell type '{name}' is listed twice")));
        }
        out.push(Subject {
            key: name.to_string(),
            entrez_id: None,
            fields: BTreeMap::from([
                ("cell_type".to_string(), name.to_string()),
                ("markers".to_string(), symbols.join(", ")),
            ]),
        });
    }
    if out.is_empty() {
        return Err(Error::bad_file(path, "no cell types in the file"));
    }
    Ok(out)
}

/// Reads a perturbation file: per line a target gene and, after a tab, what is done to
/// it (default `knockdown`; for example `knockout`, `overexpression`, `activation`).
/// Targets must be known genes; an unknown one is an error naming its line.
pub fn read_perturbations(path: &Path, catalog: &GeneCatalog) -> Result<Vec<Subject>> {
    let mut out: Vec<Subject> = Vec::new();
    for (line, content) in content_lines(path)? {
        let parse = |message: String| line_error(path, line, message);
        let (target, how) = match content.split_once('\t') {
            Some((t, h)) => (t.trim(), h.trim()),
            None => (content.trim(), "knockdown"),
        };
        let how = if how.is_empty() { "knockdown" } else { how };
        let gene = catalog
            .resolve(target)
            .map_err(|e| parse(e.to_string()))?
            .gene;
        let key = format!("{} {how}", gene.symbol);
        if out.iter().any(|s| s.key == key) {
            return Err(parse(format!("'{key}' is listed twice")));
        }
        out.push(Subject {
            key,
            entrez_id: gene.entrez_id,
            fields: BTreeMap::from([
                ("target".to_string(), gene.symbol.clone()),
                ("name".to_string(), gene.name.clone()),
                ("perturbation".to_string(), how.to_string()),
            ]),
        });
    }
    if out.is_empty() {
        return Err(Error::bad_file(path, "no perturbations in the file"));
    }
    Ok(out)
}

/// A gene set to be named, keyed by `key`; `genes` are written comma-separated in
/// the order given.
pub fn gene_set_subject(key: &str, genes: &[String]) -> Subject {
    Subject {
        key: key.to_string(),
        entrez_id: None,
        fields: BTreeMap::from([
            ("genes".to_string(), genes.join(", ")),
            ("size".to_string(), genes.len().to_string()),
        ]),
    }
}

/// Reads gene sets from a GMT file (per line: name, description, then genes, tab
/// separated). Set names must be unique; a set without genes is an error naming its line.
pub fn read_gene_sets(path: &Path) -> Result<Vec<Subject>> {
    let mut out: Vec<Subject> = Vec::new();
    for set in crate::io::read_gmt(path)? {
        if out.iter().any(|s| s.key == set.name) {
            return Err(line_error(
                path,
                set.line,
                format!("set '{}' is listed twice", set.name),
            ));
        }
        out.push(gene_set_subject(&set.name, &set.genes));
    }
    Ok(out)
}

fn line_error(path: &Path, line: usize, message: String) -> Error {
    Error::Parse {
        path: path.to_path_buf(),
        line,
        message,
    }
}

/// Non-empty lines with comments removed, with their 1-based numbers.
fn content_lines(path: &Path) -> Result<Vec<(usize, String)>> {
    Ok(crate::fsutil::read_utf8_lines(path)?
        .into_iter()
        .enumerate()
        .filter_map(|(i, raw)| {
            let content = raw.split('#').next().unwrap_or("").trim_end().to_string();
            (!content.trim().is_empty()).then_some((i + 1, content))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(content: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.tsv");
        std::fs::write(&path, content).unwrap();
        (dir, path)
    }

    #[test]
    fn cell_types_resolve_markers_and_name_bad_lines() {
        let catalog = GeneCatalog::embedded().unwrap();
        let (_d, p) = write("# PBMC\nCD14+ monocyte\tCD14, LYZ,S100A8\nB cell\tMS4A1 CD79A\n");
        let cells = read_cell_types(&p, &catalog).unwrap();
        assert_eq!(cells.len(), 2);
        assert_eq!(cells[0].fields["markers"], "CD14, LYZ, S100A8");
        assert_eq!(cells[1].key, "B cell");
        let (_d, p) = write("B cell\tMS4A1 NOTAGENE1\n");
        let e = read_cell_types(&p, &catalog).unwrap_err().to_string();
        assert!(e.contains("in.tsv:1") && e.contains("NOTAGENE1"), "{e}");
        let (_d, p) = write("B cell MS4A1\n");
        let e = read_cell_types(&p, &catalog).unwrap_err().to_string();
        assert!(e.contains("in.tsv:1"), "{e}");
    }

    #[test]
    fn gene_sets_read_from_gmt_and_name_bad_lines() {
        let (_d, p) = write("GO:1\tDNA repair\tBRCA1\tRAD51\nGO:2\tx\tTP53\n");
        let sets = read_gene_sets(&p).unwrap();
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[0].fields["genes"], "BRCA1, RAD51");
        assert_eq!(sets[0].fields["size"], "2");
        let (_d, p) = write("GO:1\tDNA repair\tBRCA1\nGO:2\tonly a name\n");
        let e = read_gene_sets(&p).unwrap_err().to_string();
        assert!(e.contains("in.tsv:2"), "{e}");
    }

    #[test]
    fn perturbations_default_to_knockdown() {
        let catalog = GeneCatalog::embedded().unwrap();
        let (_d, p) = write("TP53\nMYC\toverexpression\n");
        let perts = read_perturbations(&p, &catalog).unwrap();
        assert_eq!(perts[0].key, "TP53 knockdown");
        assert_eq!(perts[1].fields["perturbation"], "overexpression");
        let (_d, p) = write("TP53\nTPP53\n");
        let e = read_perturbations(&p, &catalog).unwrap_err().to_string();
        assert!(e.contains("in.tsv:2"), "{e}");
    }
}
