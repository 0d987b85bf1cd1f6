//! How close each model's profiles come to the NCBI summaries of the same genes, and
//! whether they know more or only write in the same register: the cosine to the gene's
//! own summary is compared with the cosine to other genes' summaries (specificity), the
//! own summary's rank among all of them (retrieval), and the GO facts the text names.
//!
//! Both texts are compared with the gene's symbol and name masked ([`mask_gene`]): the
//! prompt hands the model the symbol, so repeating it shows no knowledge, yet it would
//! pull a profile towards its own summary.

use super::facts::{FactCheck, GoKnowledge};
use crate::genes::GeneCatalog;
use crate::tasks::{ItemOutcomes, OutcomeKind};
use std::collections::HashMap;

/// One model's profile accuracy over the study genes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProfileAccuracy {
    /// The model (store) name.
    pub model: String,
    /// Genes scored (in both this store and the reference).
    pub genes: usize,
    /// Mean cosine of a profile to its own gene's NCBI summary.
    pub cosine_own: f64,
    /// Mean cosine of a profile to the other genes' summaries.
    pub cosine_others: f64,
    /// `cosine_own - cosine_others`: what the profile says about this gene in particular.
    pub specificity: f64,
    /// Share of genes whose own summary is the nearest of all summaries.
    pub top1: f64,
    /// Share of genes whose own summary is among the 10 nearest.
    pub top10: f64,
    /// Median rank of the own summary (1 = nearest).
    pub median_rank: f64,
    /// GO process names per profile.
    pub terms_per_profile: f64,
    /// Share of named processes the gene is annotated to.
    pub terms_supported: f64,
    /// Other genes named per profile.
    pub genes_per_profile: f64,
    /// Share of named genes that share an annotated process with the gene.
    pub genes_supported: f64,
    /// Per-gene specificity, for paired tests.
    #[serde(skip)]
    pub specificity_items: ItemOutcomes,
    /// Per-gene top-10 hit (0 or 1), for paired tests.
    #[serde(skip)]
    pub top10_items: ItemOutcomes,
}

/// `text` with whole-word mentions of the gene's symbol and name (any case) replaced
/// by "this gene".
pub fn mask_gene(text: &str, symbol: &str, name: &str) -> String {
    let mut out = text.to_string();
    for word in [name, symbol] {
        if word.trim().is_empty() {
            continue;
        }
        let lower = out.to_lowercase();
        let needle = word.to_lowercase();
        let bytes = lower.as_bytes();
        let is_word = |i: usize| bytes.get(i).is_some_and(|b| b.is_ascii_alphanumeric());
        let mut result = String::with_capacity(out.len());
        let mut last = 0;
        for (start, _) in lower.match_indices(&needle) {
            let end = start + needle.len();
            // Lower-casing can change byte lengths outside ASCII; mask only where the
            // positions still line up with the original text.
            if start < last
                || (start > 0 && is_word(start - 1))
                || is_word(end)
                || !out.is_char_boundary(start)
                || !out.is_char_boundary(end)
                || lower.len() != out.len()
            {
                continue;
            }
            result.push_str(&out[last..start]);
            result.push_str("this gene");
            last = end;
        }
        result.push_str(&out[last..]);
        out = result;
    }
    out
}

/// Unit vectors by gene symbol.
pub type VectorsBySymbol<'a> = HashMap<&'a str, &'a [f32]>;

/// Scores one model's profiles (`texts`: symbol and text, for the factual check;
/// `vectors`: the masked profiles' vectors) against the masked reference summaries.
pub fn profile_accuracy(
    model: &str,
    vectors: &VectorsBySymbol,
    reference: &VectorsBySymbol,
    genes: &[String],
    texts: &[(String, String)],
    go: &GoKnowledge,
    catalog: &GeneCatalog,
) -> ProfileAccuracy {
    let pairs: Vec<(&String, &[f32], &[f32])> = genes
        .iter()
        .filter_map(|g| Some((g, *vectors.get(g.as_str())?, *reference.get(g.as_str())?)))
        .collect();
    let n = pairs.len();
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x * y) as f64).sum::<f64>();
    let mut own = Vec::with_capacity(n);
    let mut others = Vec::with_capacity(n);
    let mut ranks = Vec::with_capacity(n);
    for (_, v, r) in &pairs {
        let own_cos = dot(v, r);
        let sims: Vec<f64> = pairs.iter().map(|(_, _, other)| dot(v, other)).collect();
        let total: f64 = sims.iter().sum();
        own.push(own_cos);
        others.push(if n > 1 {
            (total - own_cos) / (n - 1) as f64
        } else {
            0.0
        });
        ranks.push(1 + sims.iter().filter(|&&s| s > own_cos).count());
    }
    let mean = |v: &[f64]| {
        if v.is_empty() {
            f64::NAN
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let specificity: Vec<f64> = own.iter().zip(&others).map(|(a, b)| a - b).collect();
    let top10: Vec<f64> = ranks.iter().map(|&r| (r <= 10) as u8 as f64).collect();
    let mut sorted = ranks.clone();
    sorted.sort_unstable();
    let median_rank = match sorted.len() {
        0 => f64::NAN,
        len if len % 2 == 1 => sorted[len / 2] as f64,
        len => (sorted[len / 2 - 1] + sorted[len / 2]) as f64 / 2.0,
    };
    let ids: Vec<String> = pairs.iter().map(|(g, _, _)| g.to_string()).collect();
    let wanted: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
    let checks: Vec<FactCheck> = texts
        .iter()
        .filter(|(s, _)| wanted.contains(s.as_str()))
        .map(|(s, t)| go.check(s, t, catalog))
        .collect();
    let sum = |f: fn(&FactCheck) -> usize| checks.iter().map(f).sum::<usize>() as f64;
    let per = |x: f64| x / checks.len().max(1) as f64;
    let share = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    ProfileAccuracy {
        model: model.to_string(),
        genes: n,
        cosine_own: mean(&own),
        cosine_others: mean(&others),
        specificity: mean(&specificity),
        top1: mean(
            &ranks
                .iter()
                .map(|&r| (r == 1) as u8 as f64)
                .collect::<Vec<_>>(),
        ),
        top10: mean(&top10),
        median_rank,
        terms_per_profile: per(sum(|c| c.terms_named)),
        terms_supported: share(sum(|c| c.terms_supported), sum(|c| c.terms_named)),
        genes_per_profile: per(sum(|c| c.genes_named)),
        genes_supported: share(sum(|c| c.genes_supported), sum(|c| c.genes_named)),
        specificity_items: ItemOutcomes {
            ids: ids.clone(),
            kind: OutcomeKind::Mean {
                values: specificity,
            },
        },
        top10_items: ItemOutcomes {
            ids,
            kind: OutcomeKind::Mean { values: top10 },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gene_is_masked_as_a_whole_word_only() {
        let text =
            "TP53 (tumor protein p53) is a tumor suppressor; tp53 mutants and TP53BP1 differ.";
        assert_eq!(
            mask_gene(text, "TP53", "tumor protein p53"),
            "this gene (this gene) is a tumor suppressor; this gene mutants and TP53BP1 differ."
        );
    }
}
