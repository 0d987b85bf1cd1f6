//! The study end to end: genes, profiles from every model, a store each beside the NCBI
//! reference, every task on every store, paired tests, profile accuracy and gene-set
//! naming, then one report. Every expensive stage is cached (see [`super::cache`]).

use super::accuracy::{mask_gene, profile_accuracy, ProfileAccuracy, VectorsBySymbol};
use super::config::{StudyConfig, NCBI_STORE, RANDOM_STORE};
use super::facts::GoKnowledge;
use super::gene_sets::{clean_answer, draw_gene_sets, score_naming, NamedGeneSet, NamingScores};
use super::genes::{select_study_genes, StudyGenes};
use super::report::{ModelRecord, PairedRow, StoreCoverage, StudyReport};
use super::stages::{answers, store, AskSettings};
use crate::device::parse_device;
use crate::embed::{embed_resumable, work_dir_for, SentenceEmbedder};
use crate::error::{Error, Result};
use crate::fsutil::atomic_write_bytes;
use crate::genes::{read_gene_list, GeneCatalog};
use crate::models::{ModelCache, ModelDir};
use crate::profile::{
    gene_subjects, write_profiles, GenerationSettings, PromptTemplate, RefseqSummaries,
    RefseqTextStyle, SubjectKind,
};
use crate::store::GeneStore;
use crate::tasks::{evaluate_each, paired_bootstrap, GeneVectors, SymbolMapper, TaskSpec};
use crate::train::split::DataSplit;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// How a study run is made.
#[derive(Debug, Clone, Default)]
pub struct StudyOptions {
    /// Use the config's `[quick]` settings, with outputs in `OUT/quick`.
    pub quick: bool,
    /// The source revision the run came from (recorded in the report).
    pub commit: Option<String>,
}

/// Where a study run writes: `OUT` or, for `--quick`, `OUT/quick`.
pub fn study_dir(config: &StudyConfig, quick: bool) -> PathBuf {
    let out = config.out_dir();
    if quick {
        out.join("quick")
    } else {
        out
    }
}

/// Runs the study (or its quick version) and writes the report into its folder.
pub fn run_study(config: &StudyConfig, options: &StudyOptions) -> Result<StudyReport> {
    let config = if options.quick {
        config.clone().quick()
    } else {
        config.clone()
    };
    let out = study_dir(&config, options.quick);
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    let device = parse_device(&config.device)?;
    let catalog = GeneCatalog::embedded()?;
    let tasks = config
        .tasks
        .iter()
        .map(|t| TaskSpec::read(&config.path(t)))
        .collect::<Result<Vec<_>>>()?;

    // Every model is found (and checksummed) before any work, so a missing checkpoint
    // fails at once rather than after the reference store is built.
    let cache = ModelCache::from_env()?;
    let resolved = config
        .models
        .iter()
        .map(|m| Ok((m.name.clone(), resolve_model(&cache, &config, m)?)))
        .collect::<Result<Vec<_>>>()?;

    eprintln!("study: choosing genes");
    let split = DataSplit::read(&config.path(&config.split))?;
    let mut mapper = SymbolMapper::new(&catalog);
    let mut genes = select_study_genes(
        &tasks,
        &split,
        &mut mapper,
        config.genes.per_task,
        config.genes.seed,
    )?;
    let genes_file = out.join("genes.txt");
    let listing = format!(
        "# study genes: evaluation genes of the split, drawn per task (see report.json)\n{}\n",
        genes.genes.join("\n")
    );
    atomic_write_bytes(&genes_file, listing.as_bytes())?;
    let list = read_gene_list(&genes_file)?;

    let encoder_dir = cache.resolve(&config.embedding.model)?;
    let embedder = SentenceEmbedder::load(&encoder_dir, &device)?;
    let profiles_dir = out.join("profiles");
    let stores_dir = out.join("stores");

    eprintln!("study: NCBI reference store");
    let reference = RefseqSummaries::embedded()?.profiles_for(&list, &catalog);
    if !reference.skipped.is_empty() {
        // Study genes come from the split, which lists genes with a summary; a gene
        // dropping out here means the split and the shipped summaries disagree.
        let names: Vec<&str> = reference
            .skipped
            .iter()
            .map(|s| s.symbol.as_str())
            .collect();
        eprintln!(
            "note: {} study genes have no RefSeq summary and are left out: {}",
            names.len(),
            names.join(", ")
        );
        let keep: std::collections::HashSet<&str> = reference
            .records
            .iter()
            .map(|r| r.symbol.as_str())
            .collect();
        genes.genes.retain(|g| keep.contains(g.as_str()));
    }
    let reference_file = profiles_dir.join(format!("{NCBI_STORE}.parquet"));
    std::fs::create_dir_all(&profiles_dir).map_err(|e| Error::io(&profiles_dir, e))?;
    write_profiles(&reference_file, &reference.records)?;
    let mut stores: Vec<(String, GeneStore)> = vec![(
        NCBI_STORE.to_string(),
        store(
            &embedder,
            &reference.records,
            Some(&reference_file),
            &stores_dir.join(NCBI_STORE),
        )?,
    )];
    let reference_texts: Vec<(String, String)> = reference
        .records
        .iter()
        .map(|r| (r.symbol.clone(), r.text.clone()))
        .collect();

    let template = match &config.generation.template {
        Some(t) => PromptTemplate::read(&config.path(t), SubjectKind::Gene.fields())?,
        None => PromptTemplate::default_for(SubjectKind::Gene)?,
    };
    let generation = GenerationSettings {
        max_new_tokens: config.generation.max_new_tokens,
        temperature: config.generation.temperature,
        top_p: config.generation.top_p,
        seed: config.generation.seed,
    };
    let ask = AskSettings {
        template: &template,
        generation,
        batch_size: config.generation.batch_size,
        device: &device,
    };
    let (subjects, skipped) = gene_subjects(&list, &catalog);
    if let Some(s) = skipped.first() {
        return Err(Error::InvalidArgument(format!(
            "study gene {} cannot be profiled: {}",
            s.symbol, s.reason
        )));
    }
    let subjects: Vec<_> = subjects
        .into_iter()
        .filter(|s| genes.genes.contains(&s.key))
        .collect();
    let mut models = Vec::new();
    let mut model_dirs = Vec::new();
    let mut texts: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for (name, dir) in resolved {
        eprintln!("study: profiles from {name} ({})", dir.id);
        let file = profiles_dir.join(format!("{name}.parquet"));
        let records = answers(&dir, &subjects, SubjectKind::Gene, &ask, &file)?;
        texts.push((
            name.clone(),
            records
                .iter()
                .map(|r| (r.symbol.clone(), r.text.clone()))
                .collect(),
        ));
        let built = store(&embedder, &records, Some(&file), &stores_dir.join(&name))?;
        stores.push((name.clone(), built));
        models.push(ModelRecord {
            name: name.clone(),
            id: dir.id.clone(),
            weights_sha256: dir.weights_sha256.clone(),
        });
        model_dirs.push((name, dir));
    }
    // Models first, reference last: the report's tables read base -> fine-tuned -> NCBI.
    stores.rotate_left(1);

    eprintln!("study: probe tasks on {} stores", stores.len() + 1);
    let gene_vectors = || -> Vec<(GeneVectors, String)> {
        stores
            .iter()
            .map(|(name, s)| {
                (
                    GeneVectors::from_store(s, name),
                    format!("{} (model {})", s.path().display(), s.manifest().model_id),
                )
            })
            .collect()
    };
    let vectors = gene_vectors();
    let coverage = coverage(&genes, &vectors);
    // A task the drawn genes cannot support (too few items of a class, say) is reported
    // as a problem rather than losing the hours of profiles.
    let (eval, failed) = evaluate_each(&tasks, gene_vectors(), &catalog)?;
    let mut problems: Vec<String> = failed
        .into_iter()
        .map(|(id, e)| format!("task {id} could not be scored: {e}"))
        .collect();
    eval.write(&out.join("eval"))?;

    let focus = config.comparison.focus.as_str();
    let mut paired = Vec::new();
    for task in &eval.tasks {
        let Some(f) = task.scores.iter().find(|s| s.store == focus) else {
            continue;
        };
        for other in task.scores.iter().filter(|s| s.store != focus) {
            if let (Some(a), Some(b)) = (&f.outcomes, &other.outcomes) {
                paired.push(PairedRow {
                    section: "task".into(),
                    item: task.id.clone(),
                    metric: f.metric.clone(),
                    focus: focus.to_string(),
                    other: other.store.clone(),
                    result: paired_bootstrap(
                        a,
                        b,
                        config.comparison.resamples,
                        config.comparison.seed,
                    ),
                });
            }
        }
    }

    eprintln!("study: profile accuracy");
    let go = GoKnowledge::read(
        &config.path(&config.facts.annotations),
        &config.path(&config.facts.go_terms),
        config.facts.min_term_words,
    )?;
    let accuracy = accuracy_of_profiles(
        &out,
        &embedder,
        &list,
        &catalog,
        &genes,
        &texts,
        &reference_texts,
        &go,
    )?;
    paired.extend(accuracy_pairs(&accuracy, focus, &config));

    eprintln!("study: gene-set naming");
    let sets = draw_gene_sets(&config.gene_sets, &config.base)?;
    let (naming, naming_floor) =
        name_gene_sets(&config, &out, &sets, &model_dirs, &embedder, &device)?;
    for other in naming.iter().filter(|n| n.model != focus) {
        if let Some(f) = naming.iter().find(|n| n.model == focus) {
            paired.push(PairedRow {
                section: "naming".into(),
                item: "gene-set names".into(),
                metric: "cosine to reference name".into(),
                focus: focus.to_string(),
                other: other.model.clone(),
                result: paired_bootstrap(
                    &f.cosine_items,
                    &other.cosine_items,
                    config.comparison.resamples,
                    config.comparison.seed,
                ),
            });
        }
    }

    let expected = stores.len() + 1;
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
    for c in &coverage {
        if !c.missing.is_empty() {
            problems.push(format!(
                "store {} lacks {} study genes",
                c.store,
                c.missing.len()
            ));
        }
    }
    let report = StudyReport {
        bftembed_version: env!("CARGO_PKG_VERSION").to_string(),
        commit: options.commit.clone(),
        created_unix: crate::fsutil::unix_now(),
        quick: options.quick,
        config_text: config.source_text.clone(),
        embedding_model: ModelRecord {
            name: "encoder".into(),
            id: encoder_dir.id.clone(),
            weights_sha256: encoder_dir.weights_sha256.clone(),
        },
        models,
        focus: focus.to_string(),
        genes,
        coverage,
        eval,
        paired,
        accuracy,
        gene_sets: sets.len(),
        naming,
        naming_floor,
        problems,
    };
    report.write(&out)?;
    Ok(report)
}

/// (symbol, text) pairs.
type SymbolTexts = Vec<(String, String)>;

/// Profile accuracy of every model and of the summaries themselves, on masked texts
/// (embedded once and cached by text).
#[allow(clippy::too_many_arguments)]
fn accuracy_of_profiles(
    out: &Path,
    embedder: &SentenceEmbedder,
    list: &crate::genes::GeneList,
    catalog: &GeneCatalog,
    genes: &StudyGenes,
    texts: &[(String, Vec<(String, String)>)],
    reference_texts: &[(String, String)],
    go: &GoKnowledge,
) -> Result<Vec<ProfileAccuracy>> {
    let summaries = RefseqSummaries::embedded()?
        .with_style(RefseqTextStyle::SummaryOnly)
        .profiles_for(list, catalog);
    let summary_texts: Vec<(String, String)> = summaries
        .records
        .iter()
        .map(|r| (r.symbol.clone(), r.text.clone()))
        .collect();
    let masked = |items: &[(String, String)]| -> Vec<(String, String)> {
        items
            .iter()
            .map(|(symbol, text)| {
                let name = catalog.by_symbol(symbol).map_or("", |g| g.name.as_str());
                (symbol.clone(), mask_gene(text, symbol, name))
            })
            .collect()
    };
    // (name, masked texts for embedding, original texts for the factual check)
    let mut sources: Vec<(String, SymbolTexts, SymbolTexts)> = texts
        .iter()
        .map(|(name, t)| (name.clone(), masked(t), t.clone()))
        .collect();
    sources.push((
        NCBI_STORE.to_string(),
        masked(&summary_texts),
        reference_texts.to_vec(),
    ));
    let mut embedded = Vec::new();
    for (name, masked_texts, _) in &sources {
        let refs: Vec<&str> = masked_texts.iter().map(|(_, t)| t.as_str()).collect();
        let work = work_dir_for(
            &out.join("cache").join(format!("masked-{name}")),
            embedder,
            &refs,
        );
        embedded.push(embed_resumable(embedder, &refs, &work)?);
    }
    let by_symbol = |i: usize| -> VectorsBySymbol {
        sources[i]
            .1
            .iter()
            .enumerate()
            .map(|(row, (symbol, _))| (symbol.as_str(), embedded[i].row(row)))
            .collect()
    };
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

fn resolve_model(
    cache: &ModelCache,
    config: &StudyConfig,
    m: &super::config::StudyModel,
) -> Result<ModelDir> {
    match (&m.model, &m.folder) {
        (Some(name), _) => cache.resolve(name),
        (None, Some(folder)) => {
            let path = config.path(folder);
            if !path.is_dir() {
                return Err(Error::InvalidArgument(format!(
                    "model '{}': no folder at {} (train it first: see train/compare.sh)",
                    m.name,
                    path.display()
                )));
            }
            ModelDir::from_folder(&path)
        }
        (None, None) => Err(Error::InvalidArgument(format!(
            "model '{}' names neither a model nor a folder",
            m.name
        ))),
    }
}

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

fn accuracy_pairs(
    accuracy: &[ProfileAccuracy],
    focus: &str,
    config: &StudyConfig,
) -> Vec<PairedRow> {
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
            rows.push(PairedRow {
                section: "profile".into(),
                item: "profile accuracy".into(),
                metric: metric.into(),
                focus: focus.to_string(),
                other: other.model.clone(),
                result: paired_bootstrap(a, b, config.comparison.resamples, config.comparison.seed),
            });
        }
    }
    rows
}

/// Each model names every drawn set (cached like profiles); answers, references and
/// every GO process name are embedded (GO names cached) and scored. Also returns the
/// floor: the mean cosine between a set's reference and another set's reference.
fn name_gene_sets(
    config: &StudyConfig,
    out: &Path,
    sets: &[NamedGeneSet],
    models: &[(String, ModelDir)],
    embedder: &SentenceEmbedder,
    device: &candle_core::Device,
) -> Result<(Vec<NamingScores>, f64)> {
    if sets.is_empty() {
        return Ok((Vec::new(), f64::NAN));
    }
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
        device,
    };
    let go_names = go_term_names(&config.path(&config.facts.go_terms))?;
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
    let references: Vec<&str> = sets.iter().map(|s| s.reference.as_str()).collect();
    let reference_vectors = embedder.embed(&references)?;
    let subjects: Vec<_> = sets.iter().map(NamedGeneSet::subject).collect();
    let dir = out.join("gene_sets");
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
    let n = sets.len();
    let floor = if n > 1 {
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
    };
    Ok((scores, floor))
}

fn go_term_names(path: &Path) -> Result<Vec<String>> {
    let mut table = crate::csv_table::CsvTable::open(path)?;
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
