//! Gene-set naming, GeneAgent style: a model is given a set's genes and names its main
//! process; the name is scored by its embedding similarity to the reference name and by
//! where the reference ranks among every GO process name as seen from the answer.

use super::config::GeneSetConfig;
use crate::embed::Embeddings;
use crate::error::{Error, Result};
use crate::io::csv_table::CsvTable;
use crate::profile::{gene_set_subject, Subject};
use crate::rng::SplitMix64;
use crate::tasks::{ItemOutcomes, OutcomeKind};
use std::collections::HashMap;
use std::path::Path;

/// One gene set with its reference name.
#[derive(Debug, Clone)]
pub struct NamedGeneSet {
    /// `source:id`.
    pub key: String,
    /// The source's short name.
    pub source: String,
    /// The genes shown to the model.
    pub genes: Vec<String>,
    /// Genes in the set before any were left out of the prompt.
    pub size: usize,
    /// The reference name.
    pub reference: String,
}

impl NamedGeneSet {
    /// The subject the profile stage asks about.
    pub fn subject(&self) -> Subject {
        gene_set_subject(&self.key, &self.genes)
    }
}

/// Draws `config.per_source` sets from each source (seeded), with at most
/// `config.max_genes` genes each.
pub fn draw_gene_sets(config: &GeneSetConfig, base: &Path) -> Result<Vec<NamedGeneSet>> {
    let mut out = Vec::new();
    for source in &config.sources {
        let path = if source.file.is_absolute() {
            source.file.clone()
        } else {
            base.join(&source.file)
        };
        let mut table = CsvTable::open(&path)?;
        let (id, genes, name) = (
            table.column(&source.id_column)?,
            table.column(&source.genes_column)?,
            table.column(&source.name_column)?,
        );
        let mut sets = Vec::new();
        for (row, record) in table.records().enumerate() {
            let record = record?;
            let set_genes: Vec<String> = record
                .get(genes)
                .unwrap_or("")
                .split([' ', ',', ';'])
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(String::from)
                .collect();
            let reference = record.get(name).unwrap_or("").trim().to_string();
            if set_genes.is_empty() || reference.is_empty() {
                return Err(Error::Parse {
                    path: path.clone(),
                    line: row + 2,
                    message: "a gene set needs genes and a reference name".into(),
                });
            }
            sets.push(NamedGeneSet {
                key: format!("{}:{}", source.name, record.get(id).unwrap_or("").trim()),
                source: source.name.clone(),
                size: set_genes.len(),
                genes: set_genes,
                reference,
            });
        }
        let mut rng = SplitMix64::new(config.seed ^ crate::fsutil::fnv1a(source.name.as_bytes()));
        for i in rng
            .permutation(sets.len())
            .into_iter()
            .take(config.per_source)
        {
            let mut set = sets[i].clone();
            if set.genes.len() > config.max_genes {
                let keep = rng.permutation(set.genes.len());
                let mut kept: Vec<usize> = keep.into_iter().take(config.max_genes).collect();
                kept.sort_unstable();
                set.genes = kept.iter().map(|&k| set.genes[k].clone()).collect();
            }
            out.push(set);
        }
    }
    Ok(out)
}

/// The first line of an answer without list marks, quotes or a closing full stop,
/// so that "1. **DNA repair**." is scored as "DNA repair".
pub fn clean_answer(answer: &str) -> String {
    let line = answer
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let line = line.trim_start_matches(|c: char| c.is_ascii_digit() || "-*#.) ".contains(c));
    let line = line.trim_matches(|c: char| "*\"'`“”. ".contains(c));
    line.chars().take(200).collect()
}

/// One model's naming scores.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NamingScores {
    /// The model.
    pub model: String,
    /// Per source (and `all`): sets, mean cosine to the reference, median rank of the
    /// reference among the candidate names, share ranked in the top 10.
    pub by_source: Vec<SourceScores>,
    /// Per-set cosine, for paired tests.
    #[serde(skip)]
    pub cosine_items: ItemOutcomes,
}

/// Naming scores on one source.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SourceScores {
    /// Source name, or `all`.
    pub source: String,
    /// Sets scored.
    pub sets: usize,
    /// Mean cosine of answer and reference name.
    pub cosine: f64,
    /// Median rank of the reference among all candidate names (1 = nearest the answer).
    pub median_rank: f64,
    /// Share of sets whose reference ranks in the top 10.
    pub top10: f64,
}

/// Scores a model's answers (`answer_vectors`, rows in `sets` order) against the
/// references (`reference_vectors`) and the candidate names (`candidates`: every GO
/// process name; a reference is added to the candidates if it is not among them).
pub fn score_naming(
    model: &str,
    sets: &[NamedGeneSet],
    answer_vectors: &Embeddings,
    reference_vectors: &Embeddings,
    candidates: &Embeddings,
    candidate_names: &HashMap<String, usize>,
) -> NamingScores {
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x * y) as f64).sum::<f64>();
    let mut cosines = Vec::new();
    let mut ranks = Vec::new();
    for (i, set) in sets.iter().enumerate() {
        let answer = answer_vectors.row(i);
        let own = dot(answer, reference_vectors.row(i));
        let listed = candidate_names.get(&set.reference.to_lowercase()).copied();
        let better = (0..candidates.len())
            .filter(|&c| Some(c) != listed && dot(answer, candidates.row(c)) > own)
            .count();
        cosines.push(own);
        ranks.push(1 + better);
    }
    let summarise = |source: &str, idx: Vec<usize>| {
        let mut r: Vec<usize> = idx.iter().map(|&i| ranks[i]).collect();
        r.sort_unstable();
        let n = idx.len();
        SourceScores {
            source: source.to_string(),
            sets: n,
            cosine: idx.iter().map(|&i| cosines[i]).sum::<f64>() / n.max(1) as f64,
            median_rank: match n {
                0 => f64::NAN,
                n if n % 2 == 1 => r[n / 2] as f64,
                n => (r[n / 2 - 1] + r[n / 2]) as f64 / 2.0,
            },
            top10: r.iter().filter(|&&x| x <= 10).count() as f64 / n.max(1) as f64,
        }
    };
    let mut sources: Vec<&str> = sets.iter().map(|s| s.source.as_str()).collect();
    sources.dedup();
    let mut by_source: Vec<SourceScores> = sources
        .iter()
        .map(|src| {
            let idx = (0..sets.len())
                .filter(|&i| sets[i].source == *src)
                .collect();
            summarise(src, idx)
        })
        .collect();
    by_source.push(summarise("all", (0..sets.len()).collect()));
    NamingScores {
        model: model.to_string(),
        by_source,
        cosine_items: ItemOutcomes {
            ids: sets.iter().map(|s| s.key.clone()).collect(),
            kind: OutcomeKind::Mean { values: cosines },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_cleaned_to_a_name() {
        assert_eq!(clean_answer("1. **DNA repair**.\nMore text"), "DNA repair");
        assert_eq!(clean_answer("\n  \"Apoptosis\"  "), "Apoptosis");
        assert_eq!(clean_answer("- cell cycle"), "cell cycle");
    }
}
