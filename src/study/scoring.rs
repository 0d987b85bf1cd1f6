//! The study's scoring stages, run by [`super::run::run_study`] once every store is
//! built: the probe tasks, profile accuracy and gene-set naming, each with its paired
//! rows (the focus model against each other store), and the check for incompleteness.

use super::accuracy::{mask_gene, profile_accuracy, ProfileAccuracy, VectorsBySymbol};
use super::config::{NCBI_STORE, RANDOM_STORE};
use super::facts::GoKnowledge;
use super::gene_sets::{clean_answer, draw_gene_sets, score_naming, NamedGeneSet, NamingScores};
use super::genes::StudyGenes;
use super::report::{PairedRow, StoreCoverage};
use super::run::{symbol_texts, Setup, SymbolTexts};
use super::stages::{answers, AskSettings};
use crate::embed::{embed_resumable, work_dir_for, Embeddings, SentenceEmbedder};
use crate::error::{Error, Result};
use crate::genes::{GeneCatalog, GeneList};
use crate::models::ModelDir;
use crate::profile::{
    GenerationSettings, PromptTemplate, RefseqSummaries, RefseqTextStyle, SubjectKind,
};
use crate::store::GeneStore;
use crate::tasks::{evaluate_each, EvalReport, GeneVectors};
use std::collections::HashMap;
use std::path::Path;

/// The probe tasks' results.
pub(super) struct Probes {
    /// Every task on every store.
    pub(super) eval: EvalReport,
    /// Study genes each store lacks.
    pub(super) coverage: Vec<StoreCoverage>,
    /// Incompleteness found so far (tasks that could not be scored).
    pub(super) problems: Vec<String>,
    /// The focus model against each other store, per task.
    pub(super) paired: Vec<PairedRow>,
}

/// Scores every task on every store, writes the evaluation into `eval/`, and pairs the
/// focus model with each other store on every task.
pub(super) fn probe_tasks(
    setup: &Setup,
    genes: &StudyGenes,
    stores: &[(String, GeneStore)],
) -> Result<Probes> {
    eprintln!("study: probe tasks on {} stores", stores.len() + 1);
    let vectors = gene_vectors(stores);
    let coverage = coverage(genes, &vectors);
    // A task the drawn genes cannot support (too few items of a class, say) is reported
    // as a problem rather than losing the hours of profiles.
    let (eval, failed) = evaluate_each(&setup.tasks, vectors, &setup.catalog)?;
    let problems = failed
        .into_iter()
        .map(|(id, e)| format!("task {id} could not be scored: {e}"))
        .collect();
    eval.write(&setup.out.join("eval"))?;
    let paired = task_pairs(setup, &eval);
    Ok(Probes {
        eval,
        coverage,
        problems,
        paired,
    })
}

/// Each store's vectors with its description (path and encoder) for the task report.
fn gene_vectors(stores: &[(String, GeneStore)]) -> Vec<(GeneVectors, String)> {
    stores
        .iter()
        .map(|(name, s)| {
            (
                GeneVectors::from_store(s, name),
                format!("{} (model {})", s.path().display(), s.manifest().model_id),
            )
        })
        .collect()
}

/// Study genes each store lacks, then the random baseline (which lacks none).
fn coverage(genes: &StudyGenes, vectors: &[(GeneVectors, String)]) -> Vec<StoreCoverage> {
    vectors
        .iter()
        .map(|(v, _)| StoreCoverage {
            store: v.name.clone(),
            genes: v.len(),
            missing: genes
                .genes
                .iter()
                .filter(|g| v.get(g).is_none())
                .cloned()
                .collect(),
        })
        .chain(std::iter::once(StoreCoverage {
            store: RANDOM_STORE.into(),
            genes: vectors.first().map_or(0, |(v, _)| v.len()),
            missing: Vec::new(),
        }))
        .collect()
}

/// The focus model against each other store on every task both were scored on.
fn task_pairs(setup: &Setup, eval: &EvalReport) -> Vec<PairedRow> {
    let focus = setup.focus();
    let mut paired = Vec::new();
    for task in &eval.tasks {
        let Some(f) = task.scores.iter().find(|s| s.store == focus) else {
            continue;
        };
        for other in task.scores.iter().filter(|s| s.store != focus) {
            if let (Some(a), Some(b)) = (&f.outcomes, &other.outcomes) {
                paired.push(setup.paired_row("task", &task.id, &f.metric, &other.store, a, b));
            }
        }
    }
    paired
}

/// Incompleteness the report shows: a task scored on fewer than `expected` stores, a
/// store lacking study genes.
pub(super) fn incompleteness(
    eval: &EvalReport,
    coverage: &[StoreCoverage],
    expected: usize,
) -> Vec<String> {
    let mut problems = Vec::new();
    for task in &eval.tasks {
        if task.scores.len() != expected {
            problems.push(format!(
                "task {} scored {} of {} stores",
                task.id,
                task.scores.len(),
                expected
            ));
        }
    }
    for c in coverage {
        if !c.missing.is_empty() {
            problems.push(format!(
                "store {} lacks {} study genes",
                c.store,
                c.missing.len()
            ));
        }
    }
    problems
}

/// Profile accuracy's results.
pub(super) struct Accuracy {
    /// Profile accuracy per store.
    pub(super) rows: Vec<ProfileAccuracy>,
    /// The focus model against each other model.
    pub(super) paired: Vec<PairedRow>,
}

/// Checks every model's profiles (and the summaries themselves) against the NCBI
/// summaries and GO annotations, and pairs the focus model with each other model.
pub(super) fn check_profiles(
    setup: &Setup,
    embedder: &SentenceEmbedder,
    list: &GeneList,
    genes: &StudyGenes,
    texts: &[(String, SymbolTexts)],
    reference_texts: &[(String, String)],
) -> Result<Accuracy> {
    eprintln!("study: profile accuracy");
    let (config, facts) = (&setup.config, &setup.config.facts);
    let go = GoKnowledge::read(
        &config.path(&facts.annotations),
        &config.path(&facts.go_terms),
        facts.min_term_words,
    )?;
    let rows = accuracy_of_profiles(setup, embedder, list, genes, texts, reference_texts, &go)?;
    let paired = accuracy_pairs(setup, &rows);
    Ok(Accuracy { rows, paired })
}

/// Profile accuracy of every model and of the summaries themselves, on masked texts
/// (embedded once and cached by text).
fn accuracy_of_profiles(
    setup: &Setup,
    embedder: &SentenceEmbedder,
    list: &GeneList,
    genes: &StudyGenes,
    texts: &[(String, SymbolTexts)],
    reference_texts: &[(String, String)],
    go: &GoKnowledge,
) -> Result<Vec<ProfileAccuracy>> {
    let catalog = &setup.catalog;
    let summaries = RefseqSummaries::embedded()?
        .with_style(RefseqTextStyle::SummaryOnly)
        .profiles_for(list, catalog);
    let summary_texts = symbol_texts(&summaries.records);
    // (name, masked texts for embedding, original texts for the factual check)
    let mut sources: Vec<(String, SymbolTexts, SymbolTexts)> = texts
        .iter()
        .map(|(name, t)| (name.clone(), masked(catalog, t), t.clone()))
        .collect();
    sources.push((
        NCBI_STORE.to_string(),
        masked(catalog, &summary_texts),
        reference_texts.to_vec(),
    ));
    let mut embedded = Vec::new();
    for (name, masked_texts, _) in &sources {
        let cache = setup.out.join("cache").join(format!("masked-{name}"));
        embedded.push(embed_cached(embedder, masked_texts, &cache)?);
    }
    let by_symbol = |i: usize| vectors_by_symbol(&sources[i].1, &embedded[i]);
    let reference = by_symbol(sources.len() - 1);
    Ok((0..sources.len())
        .map(|i| {
            profile_accuracy(
                &sources[i].0,
                &by_symbol(i),
                &reference,
                &genes.genes,
                &sources[i].2,
                go,
                catalog,
            )
        })
        .collect())
}

/// `items` with each gene's symbol and HGNC name masked ([`mask_gene`]).
pub(super) fn masked(catalog: &GeneCatalog, items: &[(String, String)]) -> SymbolTexts {
    items
        .iter()
        .map(|(symbol, text)| {
            let name = catalog.by_symbol(symbol).map_or("", |g| g.name.as_str());
            (symbol.clone(), mask_gene(text, symbol, name))
        })
        .collect()
}

/// The vectors of `items`' texts, embedded through a resumable job whose work folder
/// sits beside `cache` (named by the encoder and the texts, so a rerun reuses it).
pub(super) fn embed_cached(
    embedder: &SentenceEmbedder,
    items: &[(String, String)],
    cache: &Path,
) -> Result<Embeddings> {
    let refs: Vec<&str> = items.iter().map(|(_, t)| t.as_str()).collect();
    let work = work_dir_for(cache, embedder, &refs);
    embed_resumable(embedder, &refs, &work)
}

/// Row `i` of `embedded` under the symbol of `items[i]`.
pub(super) fn vectors_by_symbol<'a>(
    items: &'a [(String, String)],
    embedded: &'a Embeddings,
) -> VectorsBySymbol<'a> {
    items
        .iter()
        .enumerate()
        .map(|(row, (symbol, _))| (symbol.as_str(), embedded.row(row)))
        .collect()
}

/// The focus model against each other model (not the summaries) on specificity and
/// top-10 retrieval.
fn accuracy_pairs(setup: &Setup, accuracy: &[ProfileAccuracy]) -> Vec<PairedRow> {
    let focus = setup.focus();
    let Some(f) = accuracy.iter().find(|a| a.model == focus) else {
        return Vec::new();
    };
    let mut rows = Vec::new();
    for other in accuracy
        .iter()
        .filter(|a| a.model != focus && a.model != NCBI_STORE)
    {
        for (metric, a, b) in [
            (
                "specificity (cosine own - others)",
                &f.specificity_items,
                &other.specificity_items,
            ),
            ("own summary in top 10", &f.top10_items, &other.top10_items),
        ] {
            rows.push(setup.paired_row("profile", "profile accuracy", metric, &other.model, a, b));
        }
    }
    rows
}

/// Gene-set naming's results.
pub(super) struct Naming {
    /// Gene sets named.
    pub(super) sets: usize,
    /// Naming scores per model.
    pub(super) scores: Vec<NamingScores>,
    /// Mean cosine between different sets' reference names.
    pub(super) floor: f64,
    /// The focus model against each other model.
    pub(super) paired: Vec<PairedRow>,
}

/// Draws the gene sets, has every model name them, and pairs the focus model with each
/// other model.
pub(super) fn gene_set_naming(
    setup: &Setup,
    embedder: &SentenceEmbedder,
    models: &[(String, ModelDir)],
) -> Result<Naming> {
    eprintln!("study: gene-set naming");
    let sets = draw_gene_sets(&setup.config.gene_sets, &setup.config.base)?;
    let (scores, floor) = name_gene_sets(setup, &sets, models, embedder)?;
    let paired = naming_pairs(setup, &scores);
    Ok(Naming {
        sets: sets.len(),
        scores,
        floor,
        paired,
    })
}

/// The focus model against each other model on the cosine to the reference names.
fn naming_pairs(setup: &Setup, naming: &[NamingScores]) -> Vec<PairedRow> {
    let focus = setup.focus();
    let Some(f) = naming.iter().find(|n| n.model == focus) else {
        return Vec::new();
    };
    naming
        .iter()
        .filter(|n| n.model != focus)
        .map(|other| {
            setup.paired_row(
                "naming",
                "gene-set names",
                "cosine to reference name",
                &other.model,
                &f.cosine_items,
                &other.cosine_items,
            )
        })
        .collect()
}

/// Each model names every drawn set (cached like profiles); answers, references and
/// every GO process name are embedded (GO names cached) and scored. Also returns the
/// floor: the mean cosine between a set's reference and another set's reference.
fn name_gene_sets(
    setup: &Setup,
    sets: &[NamedGeneSet],
    models: &[(String, ModelDir)],
    embedder: &SentenceEmbedder,
) -> Result<(Vec<NamingScores>, f64)> {
    if sets.is_empty() {
        return Ok((Vec::new(), f64::NAN));
    }
    let config = &setup.config;
    let template = PromptTemplate::default_for(SubjectKind::GeneSet)?;
    let ask = AskSettings {
        template: &template,
        generation: GenerationSettings {
            max_new_tokens: config.gene_sets.max_new_tokens,
            temperature: config.generation.temperature,
            top_p: config.generation.top_p,
            seed: config.generation.seed,
        },
        batch_size: config.generation.batch_size,
        device: &setup.device,
    };
    let (candidates, candidate_index) = go_name_candidates(setup, embedder)?;
    let references: Vec<&str> = sets.iter().map(|s| s.reference.as_str()).collect();
    let reference_vectors = embedder.embed(&references)?;
    let subjects: Vec<_> = sets.iter().map(NamedGeneSet::subject).collect();
    let dir = setup.out.join("gene_sets");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let mut scores = Vec::new();
    for (name, model) in models {
        eprintln!("study: {name} names {} gene sets", sets.len());
        let file = dir.join(format!("{name}.parquet"));
        let records = answers(model, &subjects, SubjectKind::GeneSet, &ask, &file)?;
        let by_key: HashMap<&str, &str> = records
            .iter()
            .map(|r| (r.symbol.as_str(), r.text.as_str()))
            .collect();
        let cleaned: Vec<String> = sets
            .iter()
            .map(|s| clean_answer(by_key.get(s.key.as_str()).copied().unwrap_or("")))
            .collect();
        let refs: Vec<&str> = cleaned
            .iter()
            .map(|c| {
                if c.is_empty() {
                    "(no answer)"
                } else {
                    c.as_str()
                }
            })
            .collect();
        let answer_vectors = embedder.embed(&refs)?;
        scores.push(score_naming(
            name,
            sets,
            &answer_vectors,
            &reference_vectors,
            &candidates,
            &candidate_index,
        ));
    }
    Ok((scores, naming_floor(&reference_vectors, sets.len())))
}

/// Every GO process name as a naming candidate: the names' vectors, and each name's row
/// by its lower-case form.
fn go_name_candidates(
    setup: &Setup,
    embedder: &SentenceEmbedder,
) -> Result<(Embeddings, HashMap<String, usize>)> {
    let go_names = go_term_names(&setup.config.path(&setup.config.facts.go_terms))?;
    let candidate_index: HashMap<String, usize> = go_names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.to_lowercase(), i))
        .collect();
    let name_refs: Vec<&str> = go_names.iter().map(String::as_str).collect();
    // The GO names are the same for every study, so their vectors are cached once per
    // encoder in bftembed's home (keyed by the names and the encoder).
    let cache_dir = work_dir_for(
        &crate::models::bftembed_home()?
            .join("cache")
            .join("go_names"),
        embedder,
        &name_refs,
    );
    let candidates = embed_resumable(embedder, &name_refs, &cache_dir)?;
    Ok((candidates, candidate_index))
}

/// The naming floor: the mean cosine between each of the `n` sets' reference name and
/// the next set's (NaN for fewer than two sets, where there is no other set).
fn naming_floor(reference_vectors: &Embeddings, n: usize) -> f64 {
    if n > 1 {
        (0..n)
            .map(|i| {
                let j = (i + 1) % n;
                reference_vectors
                    .row(i)
                    .iter()
                    .zip(reference_vectors.row(j))
                    .map(|(a, b)| (a * b) as f64)
                    .sum::<f64>()
            })
            .sum::<f64>()
            / n as f64
    } else {
        f64::NAN
    }
}

/// The names in the GO terms table's `term` column, blanks left out.
fn go_term_names(path: &Path) -> Result<Vec<String>> {
    let mut table = crate::io::csv_table::CsvTable::open(path)?;
    let col = table.column("term")?;
    let mut names = Vec::new();
    for record in table.records() {
        let name = record?.get(col).unwrap_or("").trim().to_string();
        if !name.is_empty() {
            names.push(name);
        }
    }
    Ok(names)
}
