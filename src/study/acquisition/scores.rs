//! Scoring the acquisition arm's profiles: recall of the cards (per gene, both sets),
//! the probe tasks on the taught genes' stores, the uncertainty diagnostic on the taught
//! cards, and the paired tests (seeds of one objective pooled per gene).

use super::measures::{gap_closed, go_recall, holm, mean_outcomes, pooled};
use super::report::{PrimaryTest, ProbeRow, RecallRow};
use super::teach::TeachingSet;
use super::{ArmModel, BASE_MODEL, CARDS_STORE};
use crate::embed::SentenceEmbedder;
use crate::error::Result;
use crate::genes::GeneCatalog;
use crate::llm::{CausalLm, GgufPrecision};
use crate::study::accuracy::profile_accuracy;
use crate::study::cache::{fingerprint, is_current, mark};
use crate::study::facts::GoKnowledge;
use crate::study::genes::StudyGenes;
use crate::study::report::PairedRow;
use crate::study::run::{symbol_texts, Setup, SymbolTexts};
use crate::study::scoring::{embed_cached, masked, vectors_by_symbol};
use crate::study::stages::store;
use crate::tasks::{evaluate_each, EvalReport, GeneVectors, ItemOutcomes};
use crate::train::diagnose::{summarize, token_probabilities, CorpusSummary, DiagnoseSettings};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Where the diagnostic reads a card: its first tokens, as a training example does.
const DIAGNOSED_TOKENS: usize = 256;

/// Everything the report needs from scoring.
pub(super) struct Scored {
    /// Recall of the cards per model and gene set.
    pub(super) recall: Vec<RecallRow>,
    /// Each task's score per store, with the share of the base-to-cards gap closed.
    pub(super) probes: Vec<ProbeRow>,
    /// The diagnostic of every model on the taught cards.
    pub(super) diagnosis: Vec<CorpusSummary>,
    /// The focus objective against the others (and seeds against each other).
    pub(super) paired: Vec<PairedRow>,
    /// The pre-registered tests with Holm's correction.
    pub(super) primary: Vec<PrimaryTest>,
    /// What could not be scored.
    pub(super) problems: Vec<String>,
}

/// Scores every model of the arm.
pub(super) fn score(
    setup: &Setup,
    embedder: &SentenceEmbedder,
    tasks: &[crate::tasks::TaskSpec],
    set: &TeachingSet,
    models: &[ArmModel],
    dir: &Path,
) -> Result<Scored> {
    eprintln!("study: acquisition arm: scoring");
    let facts = &setup.config.facts;
    let go = GoKnowledge::read(
        &setup.config.path(&facts.annotations),
        &setup.config.path(&facts.go_terms),
        facts.min_term_words,
    )?;
    let cache = dir.join("cache");
    let mut recall = Vec::new();
    for (label, genes) in [("taught", &set.taught), ("never taught", &set.untaught)] {
        let cards = symbol_texts(&set.cards_of(genes));
        let context = RecallContext {
            embedder,
            catalog: &setup.catalog,
            go: &go,
            cache: &cache,
            set: label,
            genes,
        };
        recall.extend(context.rows(&cards, models)?);
    }
    let (eval, mut problems) = probe_tasks(setup, embedder, tasks, set, models, dir)?;
    let probes = probe_rows(&eval);
    let diagnosis = diagnose(setup, set, models, dir)?;
    let tests = Tests { setup, models };
    let mut paired = tests.acquired(&recall);
    paired.extend(tests.recall_pairs(&recall));
    paired.extend(tests.seed_pairs(&recall));
    paired.extend(tests.task_pairs(&eval));
    let primary = tests.primary(&recall);
    if primary.is_empty() {
        problems.push("no pre-registered comparison could be made".into());
    }
    Ok(Scored {
        recall,
        probes,
        diagnosis,
        paired,
        primary,
        problems,
    })
}

/// What scoring one gene set's recall reads.
struct RecallContext<'a> {
    embedder: &'a SentenceEmbedder,
    catalog: &'a GeneCatalog,
    go: &'a GoKnowledge,
    cache: &'a Path,
    /// `taught` or `never taught`.
    set: &'a str,
    genes: &'a StudyGenes,
}

impl RecallContext<'_> {
    /// Every model's profiles of the set against the set's cards, both with the gene's
    /// symbol and name masked (the prompt gives the symbol away), and the GO process
    /// names of each card the profile states.
    fn rows(&self, cards: &SymbolTexts, models: &[ArmModel]) -> Result<Vec<RecallRow>> {
        let slug = self.set.replace(' ', "-");
        let masked_cards = masked(self.catalog, cards);
        let card_vectors = embed_cached(
            self.embedder,
            &masked_cards,
            &self.cache.join(format!("masked-cards-{slug}")),
        )?;
        let reference = vectors_by_symbol(&masked_cards, &card_vectors);
        let card_text: HashMap<&str, &str> = cards
            .iter()
            .map(|(s, t)| (s.as_str(), t.as_str()))
            .collect();
        let mut rows = Vec::new();
        for model in models {
            let texts = model.texts_of(self.genes);
            let masked_texts = masked(self.catalog, &texts);
            let cache = self.cache.join(format!("masked-{}-{slug}", model.name));
            let vectors = embed_cached(self.embedder, &masked_texts, &cache)?;
            let accuracy = profile_accuracy(
                &model.name,
                &vectors_by_symbol(&masked_texts, &vectors),
                &reference,
                &self.genes.genes,
                &texts,
                self.go,
                self.catalog,
            );
            let recalled: Vec<(String, f64)> = texts
                .iter()
                .filter_map(|(symbol, text)| {
                    let card = card_text.get(symbol.as_str())?;
                    Some((symbol.clone(), go_recall(self.go, card, text)?))
                })
                .collect();
            let go_recall_items = mean_outcomes(&recalled);
            rows.push(RecallRow {
                model: model.name.clone(),
                objective: model.objective.clone(),
                set: self.set.to_string(),
                go_recall: mean(recalled.iter().map(|(_, v)| *v)),
                accuracy,
                go_recall_items,
            });
        }
        Ok(rows)
    }
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        f64::NAN
    } else {
        sum / n as f64
    }
}

/// The tasks on one store per model of its taught genes' profiles, beside the taught
/// cards' store (the ceiling); writes the evaluation into `dir/eval`.
fn probe_tasks(
    setup: &Setup,
    embedder: &SentenceEmbedder,
    tasks: &[crate::tasks::TaskSpec],
    set: &TeachingSet,
    models: &[ArmModel],
    dir: &Path,
) -> Result<(EvalReport, Vec<String>)> {
    let stores_dir = dir.join("stores");
    let taught: std::collections::HashSet<&str> =
        set.taught.genes.iter().map(String::as_str).collect();
    let mut stores = Vec::new();
    for model in models {
        let records: Vec<_> = model
            .records
            .iter()
            .filter(|r| taught.contains(r.symbol.as_str()))
            .cloned()
            .collect();
        stores.push((model.name.clone(), records));
    }
    stores.push((CARDS_STORE.to_string(), set.cards_of(&set.taught)));
    let mut vectors = Vec::new();
    for (name, records) in &stores {
        let built = store(embedder, records, None, &stores_dir.join(name))?;
        let description = format!(
            "{} (model {})",
            built.path().display(),
            built.manifest().model_id
        );
        vectors.push((GeneVectors::from_store(&built, name), description));
    }
    let (eval, failed) = evaluate_each(tasks, vectors, &setup.catalog)?;
    eval.write(&dir.join("eval"))?;
    let problems = failed
        .into_iter()
        .map(|(id, e)| format!("task {id} could not be scored on the taught genes: {e}"))
        .collect();
    Ok((eval, problems))
}

/// Each task's score per store with the share of the gap between the base model's
/// profiles and the cards that the store closes.
fn probe_rows(eval: &EvalReport) -> Vec<ProbeRow> {
    let mut rows = Vec::new();
    for task in &eval.tasks {
        let value = |name: &str| {
            task.scores
                .iter()
                .find(|s| s.store == name)
                .map(|s| s.value)
        };
        let (base, cards) = (value(BASE_MODEL), value(CARDS_STORE));
        for s in &task.scores {
            rows.push(ProbeRow {
                task: task.id.clone(),
                store: s.store.clone(),
                metric: s.metric.clone(),
                value: s.value,
                interval: s.interval,
                items: s.items_covered,
                gap_closed: match (base, cards) {
                    (Some(b), Some(c)) => gap_closed(s.value, b, c),
                    _ => None,
                },
            });
        }
    }
    rows
}

/// The diagnostic of every model on the taught cards (raw text, as `bftembed diagnose`
/// reads a corpus), cached per model by its weights and the cards.
fn diagnose(
    setup: &Setup,
    set: &TeachingSet,
    models: &[ArmModel],
    dir: &Path,
) -> Result<Vec<CorpusSummary>> {
    let settings = DiagnoseSettings::default();
    let cards = set.cards_of(&set.taught);
    let card_parts: Vec<&str> = cards.iter().map(|c| c.text.as_str()).collect();
    let cards_print = fingerprint(&card_parts);
    let out = dir.join("diagnose");
    std::fs::create_dir_all(&out).map_err(|e| crate::error::Error::io(&out, e))?;
    let mut summaries = Vec::new();
    for model in models {
        let file = out.join(format!("{}.json", model.name));
        let print = fingerprint(&[
            env!("CARGO_PKG_VERSION"),
            model.dir.weights_sha256.as_str(),
            cards_print.as_str(),
            &format!("{settings:?} tokens={DIAGNOSED_TOKENS}"),
        ]);
        if is_current(&file, &print) {
            if let Some(s) = std::fs::read_to_string(&file)
                .ok()
                .and_then(|t| serde_json::from_str::<CorpusSummary>(&t).ok())
            {
                summaries.push(s);
                continue;
            }
        }
        eprintln!(
            "study: acquisition arm: diagnosing {} on the taught cards",
            model.name
        );
        let lm = CausalLm::load(&model.dir, &setup.device, GgufPrecision::F32)?;
        let mut probabilities = Vec::new();
        for card in &cards {
            let mut tokens = lm.encode(&card.text)?;
            tokens.truncate(DIAGNOSED_TOKENS);
            if tokens.len() >= 2 {
                probabilities.push(token_probabilities(&lm.model, &tokens)?);
            }
        }
        let summary = summarize(&model.name, &probabilities, &settings);
        let json = serde_json::to_string_pretty(&summary).unwrap_or_default();
        crate::fsutil::atomic_write_bytes(&file, json.as_bytes())?;
        mark(&file, &print)?;
        summaries.push(summary);
    }
    Ok(summaries)
}

/// The paired tests: the focus objective's runs, pooled per gene over seeds, against
/// every other objective's (and the base model), on the same genes.
struct Tests<'a> {
    setup: &'a Setup,
    models: &'a [ArmModel],
}

/// Where a recall row keeps one measure's per-gene outcomes.
type Outcomes = fn(&RecallRow) -> &ItemOutcomes;

/// The recall measures paired, by set: (set, metric, outcomes of a row).
const RECALL_MEASURES: &[(&str, &str, Outcomes)] = &[
    ("taught", SPECIFICITY, |r| &r.accuracy.specificity_items),
    ("taught", "own card in top 10", |r| &r.accuracy.top10_items),
    ("taught", "GO recall of the card", |r| &r.go_recall_items),
    ("never taught", SPECIFICITY, |r| {
        &r.accuracy.specificity_items
    }),
];

/// The primary measure (docs/STUDY.md, pre-registered).
const SPECIFICITY: &str = "card specificity";

impl Tests<'_> {
    fn focus(&self) -> &str {
        self.setup
            .config
            .acquisition
            .as_ref()
            .map_or("bft", |a| a.focus.as_str())
    }

    /// Objectives in the order their runs come, base first.
    fn objectives(&self) -> Vec<&str> {
        let mut seen = Vec::new();
        for m in self.models {
            if !seen.contains(&m.objective.as_str()) {
                seen.push(m.objective.as_str());
            }
        }
        seen
    }

    fn row(
        &self,
        section: &str,
        item: &str,
        metric: &str,
        other: &str,
        a: &ItemOutcomes,
        b: &ItemOutcomes,
    ) -> PairedRow {
        let mut row = self.setup.paired_row(section, item, metric, other, a, b);
        row.focus = self.focus().to_string();
        row
    }

    /// One objective's outcomes on a measure, pooled per gene over its seeds.
    fn group(
        &self,
        recall: &[RecallRow],
        objective: &str,
        set: &str,
        get: Outcomes,
    ) -> Option<ItemOutcomes> {
        let runs: Vec<&ItemOutcomes> = recall
            .iter()
            .filter(|r| r.objective == objective && r.set == set)
            .map(get)
            .collect();
        pooled(&runs)
    }

    /// Every trained objective against the base model on the primary measure: whether
    /// training taught anything at all (the arm says nothing if it did not).
    fn acquired(&self, recall: &[RecallRow]) -> Vec<PairedRow> {
        let get: Outcomes = |r| &r.accuracy.specificity_items;
        let Some(base) = self.group(recall, BASE_MODEL, "taught", get) else {
            return Vec::new();
        };
        let mut rows = Vec::new();
        for objective in self.objectives().into_iter().filter(|o| *o != BASE_MODEL) {
            if let Some(o) = self.group(recall, objective, "taught", get) {
                let mut row = self.row("acquired", "taught", SPECIFICITY, BASE_MODEL, &o, &base);
                row.focus = objective.to_string();
                rows.push(row);
            }
        }
        rows
    }

    /// The focus objective against each other objective and the base, per measure.
    fn recall_pairs(&self, recall: &[RecallRow]) -> Vec<PairedRow> {
        let focus = self.focus();
        let mut rows = Vec::new();
        for (set, metric, get) in RECALL_MEASURES {
            let Some(f) = self.group(recall, focus, set, *get) else {
                continue;
            };
            for other in self.objectives().into_iter().filter(|o| *o != focus) {
                if let Some(o) = self.group(recall, other, set, *get) {
                    rows.push(self.row("recall", set, metric, other, &f, &o));
                }
            }
        }
        rows
    }

    /// Seed against seed within an objective on the primary measure: how far two runs
    /// of the same objective differ by chance alone.
    fn seed_pairs(&self, recall: &[RecallRow]) -> Vec<PairedRow> {
        let mut rows = Vec::new();
        for objective in self.objectives() {
            let runs: Vec<&RecallRow> = recall
                .iter()
                .filter(|r| r.objective == objective && r.set == "taught")
                .collect();
            for pair in runs.windows(2) {
                let (a, b) = (pair[0], pair[1]);
                let mut row = self.row(
                    "seeds",
                    "taught",
                    SPECIFICITY,
                    &b.model,
                    &a.accuracy.specificity_items,
                    &b.accuracy.specificity_items,
                );
                row.focus = a.model.clone();
                rows.push(row);
            }
        }
        rows
    }

    /// The focus objective's first run against every other model's first run (and the
    /// cards) on each probe task.
    fn task_pairs(&self, eval: &EvalReport) -> Vec<PairedRow> {
        let focus = self.focus();
        let first: BTreeMap<&str, &str> = self
            .models
            .iter()
            .rev()
            .map(|m| (m.objective.as_str(), m.name.as_str()))
            .collect();
        let Some(focus_run) = first.get(focus) else {
            return Vec::new();
        };
        let mut rows = Vec::new();
        for task in &eval.tasks {
            let outcomes = |name: &str| {
                task.scores
                    .iter()
                    .find(|s| s.store == name)
                    .and_then(|s| s.outcomes.as_ref())
            };
            let Some(f) = outcomes(focus_run) else {
                continue;
            };
            let others = first
                .iter()
                .filter(|(o, _)| *o != &focus)
                .map(|(_, name)| *name)
                .chain([CARDS_STORE]);
            for other in others {
                if let Some(o) = outcomes(other) {
                    let mut row = self.row("task", &task.id, &task.scores[0].metric, other, f, o);
                    row.focus = focus_run.to_string();
                    rows.push(row);
                }
            }
        }
        rows
    }

    /// The pre-registered tests: the focus objective against each other trained
    /// objective on card specificity of the taught genes, Holm-corrected together.
    fn primary(&self, recall: &[RecallRow]) -> Vec<PrimaryTest> {
        let focus = self.focus();
        let get: Outcomes = |r| &r.accuracy.specificity_items;
        let Some(f) = self.group(recall, focus, "taught", get) else {
            return Vec::new();
        };
        let mut tests: Vec<(String, crate::tasks::PairedDifference)> = Vec::new();
        for other in self.objectives() {
            if other == focus || other == BASE_MODEL {
                continue;
            }
            let Some(o) = self.group(recall, other, "taught", get) else {
                continue;
            };
            if let Some(row) = self
                .row("primary", "taught", SPECIFICITY, other, &f, &o)
                .result
            {
                tests.push((other.to_string(), row));
            }
        }
        let adjusted = holm(&tests.iter().map(|(_, r)| r.p_value).collect::<Vec<_>>());
        tests
            .into_iter()
            .zip(adjusted)
            .map(|((other, r), p_holm)| PrimaryTest::new(focus, &other, r, p_holm))
            .collect()
    }
}
