//! What bftembed ships about each gene beyond its RefSeq summary, read for gene cards:
//! GO annotations by term name (org.Hs.eg.db 3.16.0 / GO.db 3.16.0, ND evidence left
//! out), chromosomes (org.Hs.eg.db) and HGNC gene groups. All compiled into the binary.

use crate::error::{Error, Result};
use crate::genes::Gene;
use crate::io::tsv::{gunzip_embedded, split_header};
use std::collections::HashMap;
use std::path::Path;

static GO_ANNOTATIONS: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/gene_cards/go_annotations.tsv.gz"
));
static GO_TERM_NAMES: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/gene_cards/go_term_names.tsv.gz"
));
static CHROMOSOMES: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/gene_cards/gene_chromosomes.tsv.gz"
));
static HGNC_GROUPS: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/hgnc/hgnc_gene_families_by_symbol.tsv.gz"
));

/// A GO ontology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ontology {
    /// Molecular function (MF).
    Function,
    /// Biological process (BP).
    Process,
    /// Cellular component (CC).
    Component,
}

impl Ontology {
    fn parse(code: &str) -> Option<Self> {
        match code {
            "MF" => Some(Ontology::Function),
            "BP" => Some(Ontology::Process),
            "CC" => Some(Ontology::Component),
            _ => None,
        }
    }
}

/// One GO term a gene is annotated to.
#[derive(Debug, Clone)]
struct Annotation {
    ontology: Ontology,
    term: usize,
    /// Some evidence other than IEA (inferred from electronic annotation): curated.
    curated: bool,
}

/// GO annotations, chromosomes and HGNC groups, looked up by Entrez id or HGNC id.
#[derive(Debug, Clone)]
pub struct GeneKnowledge {
    term_names: Vec<String>,
    go: HashMap<u32, Vec<Annotation>>,
    chromosomes: HashMap<u32, String>,
    groups: HashMap<String, Vec<String>>,
}

/// Rows of an embedded table as field vectors, with 2-based line numbers for errors.
fn table_rows<'a>(
    text: &'a str,
    name: &'a str,
    columns: &[&str],
) -> Result<impl Iterator<Item = (usize, Vec<&'a str>)> + 'a> {
    let (header, lines) = split_header(text, Path::new(name))?;
    let idx = columns
        .iter()
        .map(|c| header.column(c))
        .collect::<Result<Vec<_>>>()?;
    Ok(lines.enumerate().map(move |(i, line)| {
        let fields: Vec<&str> = line.split('\t').collect();
        let picked = idx
            .iter()
            .map(|&c| fields.get(c).copied().unwrap_or("").trim())
            .collect();
        (i + 2, picked)
    }))
}

fn entrez(value: &str, name: &str, line: usize) -> Result<u32> {
    value.parse().map_err(|_| Error::Parse {
        path: name.into(),
        line,
        message: format!("entrez_id '{value}' is not a number"),
    })
}

impl GeneKnowledge {
    /// The tables shipped in `data/gene_cards/` and `data/hgnc/`.
    pub fn embedded() -> Result<Self> {
        let names = "data/gene_cards/go_term_names.tsv.gz";
        let names_text = gunzip_embedded(GO_TERM_NAMES, names)?;
        let mut term_index = HashMap::new();
        let mut term_names = Vec::new();
        for (_, f) in table_rows(&names_text, names, &["go_id", "term"])? {
            term_index.insert(f[0].to_string(), term_names.len());
            term_names.push(f[1].to_string());
        }
        let go = Self::read_go(&term_index)?;
        let chrom = "data/gene_cards/gene_chromosomes.tsv.gz";
        let chrom_text = gunzip_embedded(CHROMOSOMES, chrom)?;
        let mut chromosomes = HashMap::new();
        for (line, f) in table_rows(&chrom_text, chrom, &["entrez_id", "chromosome"])? {
            chromosomes.insert(entrez(f[0], chrom, line)?, f[1].replace(';', ", "));
        }
        let groups_name = "data/hgnc/hgnc_gene_families_by_symbol.tsv.gz";
        let groups_text = gunzip_embedded(HGNC_GROUPS, groups_name)?;
        let mut groups: HashMap<String, Vec<String>> = HashMap::new();
        for (_, f) in table_rows(&groups_text, groups_name, &["hgnc_id", "family_name"])? {
            groups
                .entry(format!("HGNC:{}", f[0]))
                .or_default()
                .push(f[1].to_string());
        }
        Ok(GeneKnowledge {
            term_names,
            go,
            chromosomes,
            groups,
        })
    }

    fn read_go(term_index: &HashMap<String, usize>) -> Result<HashMap<u32, Vec<Annotation>>> {
        let name = "data/gene_cards/go_annotations.tsv.gz";
        let text = gunzip_embedded(GO_ANNOTATIONS, name)?;
        let mut go: HashMap<u32, Vec<Annotation>> = HashMap::new();
        let columns = ["entrez_id", "ontology", "go_id", "evidence"];
        for (line, f) in table_rows(&text, name, &columns)? {
            let bad = |message: String| Error::Parse {
                path: name.into(),
                line,
                message,
            };
            let ontology =
                Ontology::parse(f[1]).ok_or_else(|| bad(format!("ontology '{}'", f[1])))?;
            let term = *term_index
                .get(f[2])
                .ok_or_else(|| bad(format!("{} has no name in go_term_names", f[2])))?;
            go.entry(entrez(f[0], name, line)?)
                .or_default()
                .push(Annotation {
                    ontology,
                    term,
                    curated: f[3].split(',').any(|code| code != "IEA"),
                });
        }
        Ok(go)
    }

    /// Names of the GO terms of one ontology the gene is annotated to: curated
    /// annotations first (an encoder reads only the start of a long card), then
    /// electronic ones, each alphabetically.
    pub fn go_terms(&self, gene: &Gene, ontology: Ontology) -> Vec<&str> {
        let Some(list) = gene.entrez_id.and_then(|id| self.go.get(&id)) else {
            return Vec::new();
        };
        let mut terms: Vec<(bool, &str)> = list
            .iter()
            .filter(|a| a.ontology == ontology)
            .map(|a| (!a.curated, self.term_names[a.term].as_str()))
            .collect();
        terms.sort_unstable();
        terms.dedup();
        terms.into_iter().map(|(_, name)| name).collect()
    }

    /// The chromosome(s) the gene lies on, as org.Hs.eg.db gives them ("17", "X, Y").
    pub fn chromosome(&self, gene: &Gene) -> Option<&str> {
        let id = gene.entrez_id?;
        self.chromosomes.get(&id).map(String::as_str)
    }

    /// The HGNC gene groups the gene belongs to.
    pub fn groups(&self, gene: &Gene) -> &[String] {
        self.groups
            .get(&gene.hgnc_id)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}
