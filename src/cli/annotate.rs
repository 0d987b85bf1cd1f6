//! `bftembed annotate`: label query cells by their nearest cells in a labelled cell store
//! (or cross-validate the store on itself), with accuracy, macro-F1 and a confusion
//! matrix where the true labels are known.

use super::cells::CellRun;
use super::lookup::SearchOpts;
use super::matrix_args::MatrixArgs;
use anyhow::{bail, Context, Result};
use arrow::array::{ArrayRef, Float32Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use bftembed::annotate::{
    agreement, annotate, cross_validate, Agreement, Prediction, VoteSettings,
};
use bftembed::cells::{CellMethod, CellSettings};
use bftembed::io::parquet::{record_batch, write_parquet};
use bftembed::store::{CellStore, GeneStore};
use clap::Args;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct AnnotateArgs {
    /// The labelled cell store (`bftembed cells --store-out`).
    #[arg(long)]
    reference: PathBuf,
    /// The reference's metadata column whose labels are transferred.
    #[arg(long)]
    label: String,
    /// The query cells; their vectors are made as the reference's were (same gene
    /// store, same recipe). Leave out with --folds.
    #[command(flatten)]
    query: MatrixArgs,
    /// The query's column of true labels (its .h5ad obs or --metadata): scores the
    /// predictions.
    #[arg(long)]
    truth: Option<String>,
    /// Instead of a query: cross-validate the reference on itself with this many folds.
    #[arg(long, conflicts_with = "truth")]
    folds: Option<usize>,
    /// Seed of the cross-validation folds.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The gene store the reference was made from, when it has moved since (its vectors
    /// must be the very ones the reference records).
    #[arg(long)]
    gene_store: Option<PathBuf>,
    /// Reference cells that vote (-k) and how they are found.
    #[command(flatten)]
    search: SearchOpts,
    /// Parquet of predictions: cell, predicted, vote_share, nearest_similarity (and the
    /// true label).
    #[arg(long)]
    out: Option<PathBuf>,
    /// JSON report: settings, accuracy, macro-F1 and the confusion matrix (with
    /// --truth or --folds, the matrix is also drawn beside it as REPORT.png).
    #[arg(long)]
    report: Option<PathBuf>,
    /// A copy of the query .h5ad with obs columns predicted_LABEL (categorical),
    /// predicted_LABEL_vote_share and predicted_LABEL_similarity.
    #[arg(long)]
    h5ad_out: Option<PathBuf>,
}

/// Cells, their predictions and (where known) their true labels.
struct Annotated {
    cells: Vec<String>,
    predictions: Vec<Option<Prediction>>,
    truth: Option<(String, Vec<Option<String>>)>,
}

pub fn run(args: AnnotateArgs) -> Result<()> {
    if args.search.k == 0 {
        bail!("-k must be at least 1");
    }
    let reference = CellStore::open(&args.reference)
        .with_context(|| format!("opening the reference {}", args.reference.display()))?;
    let settings = VoteSettings {
        k: args.search.k,
        mode: args.search.mode(),
    };
    check_h5ad_out(&args)?;
    let query = args.query.is_given().then_some(&args.query);
    let annotated = match (query, args.folds) {
        (Some(_), Some(_)) => bail!("give query cells (--query) or --folds, not both"),
        (None, None) => bail!("nothing to annotate: give query cells (--query) or --folds"),
        (None, Some(folds)) => Annotated {
            cells: reference.cells().to_vec(),
            predictions: cross_validate(&reference, &args.label, folds, args.seed, settings)?,
            truth: Some((
                args.label.clone(),
                reference.metadata_column(&args.label)?.to_vec(),
            )),
        },
        (Some(query), None) => annotate_query(&args, query, &reference, settings)?,
    };
    let labelled = annotated.predictions.iter().flatten().count();
    eprintln!(
        "labelled {labelled} of {} cells from {} reference cells (k = {})",
        annotated.cells.len(),
        reference.len(),
        args.search.k
    );
    let scored = match &annotated.truth {
        Some((_, truth)) => {
            let classes = reference_classes(&reference, &args.label)?;
            let scored = agreement(truth, &annotated.predictions, &classes)?;
            print_agreement(&scored);
            Some(scored)
        }
        None => None,
    };
    if let Some(out) = &args.out {
        write_predictions(out, &annotated)?;
        eprintln!("wrote {}", out.display());
    }
    if let Some(path) = &args.report {
        write_report(path, &args, &reference, scored.as_ref())?;
        eprintln!("wrote {}", path.display());
        if let Some(scored) = &scored {
            let png = path.with_extension("png");
            let title = format!(
                "{} from the reference {}",
                args.label,
                reference.path().display()
            );
            bftembed::annotate::plot_confusion(scored, &title, &png)?;
            eprintln!("wrote {}", png.display());
        }
    }
    if let Some(copy) = &args.h5ad_out {
        write_h5ad_copy(args.query.path(), copy, &args.label, &annotated)?;
        eprintln!("wrote {}", copy.display());
    }
    Ok(())
}

/// Refuses an --h5ad-out that cannot be written, before any work.
fn check_h5ad_out(args: &AnnotateArgs) -> Result<()> {
    let Some(copy) = &args.h5ad_out else {
        return Ok(());
    };
    if !args.query.is_given() || !args.query.source().is_h5ad() {
        bail!("--h5ad-out needs an .h5ad --query");
    }
    if copy == args.query.path() {
        bail!("--h5ad-out must differ from --query: the input is never edited");
    }
    let existing = bftembed::io::H5ad::open(args.query.path())?.obs_columns()?;
    let ours = prediction_columns(&args.label);
    if let Some(taken) = ours.iter().find(|n| existing.contains(n)) {
        bail!(
            "{}: obs already has a column '{taken}' (from an earlier annotate?); it is never \
             overwritten: annotate the original file",
            args.query.path().display()
        );
    }
    Ok(())
}

/// The obs columns annotate adds for `label`.
fn prediction_columns(label: &str) -> [String; 3] {
    [
        format!("predicted_{label}"),
        format!("predicted_{label}_vote_share"),
        format!("predicted_{label}_similarity"),
    ]
}

/// The query .h5ad copied with the predictions as obs columns; cells left out by
/// --keep, or without a prediction, get missing values.
fn write_h5ad_copy(input: &Path, output: &Path, label: &str, annotated: &Annotated) -> Result<()> {
    use bftembed::io::anndata_edit::{write_obs_copy, ObsColumn};
    let obs_names = bftembed::io::H5ad::open(input)?.obs_names()?;
    let row_of: std::collections::HashMap<&str, usize> = obs_names
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    let mut labels = vec![None; obs_names.len()];
    let mut shares = vec![f32::NAN; obs_names.len()];
    let mut similarity = vec![f32::NAN; obs_names.len()];
    for (cell, p) in annotated.cells.iter().zip(&annotated.predictions) {
        if let (Some(&row), Some(p)) = (row_of.get(cell.as_str()), p) {
            labels[row] = Some(p.label.clone());
            shares[row] = p.vote_share;
            similarity[row] = p.nearest_similarity;
        }
    }
    let names = prediction_columns(label);
    let columns = [
        ObsColumn::Labels(&names[0], &labels),
        ObsColumn::Numbers(&names[1], &shares),
        ObsColumn::Numbers(&names[2], &similarity),
    ];
    write_obs_copy(input, output, &columns).with_context(|| format!("writing {}", output.display()))
}

/// Makes the query cells' vectors the reference's way and labels them.
fn annotate_query(
    args: &AnnotateArgs,
    query: &MatrixArgs,
    reference: &CellStore,
    settings: VoteSettings,
) -> Result<Annotated> {
    query.check()?;
    let origin = reference.origin();
    let method = CellMethod::from_name(&origin.method).with_context(|| {
        format!(
            "the reference was made with unknown recipe '{}'",
            origin.method
        )
    })?;
    let gene_store_path = args
        .gene_store
        .clone()
        .unwrap_or_else(|| PathBuf::from(&origin.gene_store));
    let gene_store = GeneStore::open(&gene_store_path).with_context(|| {
        format!(
            "opening the reference's gene store {} (--gene-store if it has moved)",
            gene_store_path.display()
        )
    })?;
    if gene_store.manifest().vectors_sha256 != origin.gene_store_vectors_sha256 {
        bail!(
            "{} holds other gene vectors than the reference {} was made from; query cells \
             made from them would not be comparable",
            gene_store_path.display(),
            reference.path().display()
        );
    }
    let columns: Vec<String> = args.truth.iter().cloned().collect();
    let (mut stream, metadata) = query.open(&columns)?;
    let run = CellRun {
        matrix: query,
        store: &gene_store,
        methods: &[method],
        settings: CellSettings {
            top_genes: origin.top_genes,
            center_gene_vectors: origin.center_gene_vectors,
        },
        anchor: args.out.as_deref().unwrap_or(Path::new("annotate")),
    };
    let (made, _) = run.make(&mut stream)?;
    let vectors = made.all(method)?;
    let predictions = annotate(reference, &args.label, &vectors.rows, settings)?;
    made.remove();
    Ok(Annotated {
        cells: stream.cells,
        predictions,
        truth: metadata.into_iter().next(),
    })
}

/// The labels the reference can give, sorted.
fn reference_classes(reference: &CellStore, label: &str) -> Result<Vec<String>> {
    let mut classes: Vec<String> = reference
        .metadata_column(label)?
        .iter()
        .flatten()
        .cloned()
        .collect();
    classes.sort();
    classes.dedup();
    Ok(classes)
}

fn print_agreement(a: &Agreement) {
    println!(
        "accuracy {:.3}  macro-F1 {:.3}  ({} cells with a true label, {} labelled)",
        a.accuracy, a.macro_f1, a.cells, a.annotated
    );
    if !a.missing_from_reference.is_empty() {
        println!(
            "true classes the reference lacks (their cells cannot be right): {}",
            a.missing_from_reference.join(", ")
        );
    }
    let width = a
        .true_classes
        .iter()
        .map(String::len)
        .max()
        .unwrap_or(4)
        .max(4);
    println!("confusion (rows: true, columns: predicted):");
    print!("{:width$}", "");
    for (j, _) in a.predicted_classes.iter().enumerate() {
        print!(" {:>5}", format!("c{j}"));
    }
    println!();
    for (i, class) in a.true_classes.iter().enumerate() {
        print!("{class:width$}");
        for n in &a.confusion[i] {
            print!(" {n:>5}");
        }
        println!();
    }
    for (j, class) in a.predicted_classes.iter().enumerate() {
        println!("  c{j} = {class}");
    }
}

/// The predictions table, written atomically.
fn write_predictions(path: &Path, annotated: &Annotated) -> Result<()> {
    let p = &annotated.predictions;
    let mut fields = vec![
        Field::new("cell", DataType::Utf8, false),
        Field::new("predicted", DataType::Utf8, true),
        Field::new("vote_share", DataType::Float32, true),
        Field::new("nearest_similarity", DataType::Float32, true),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(&annotated.cells)),
        Arc::new(StringArray::from_iter(
            p.iter().map(|p| p.as_ref().map(|p| p.label.as_str())),
        )),
        Arc::new(Float32Array::from_iter(
            p.iter().map(|p| p.as_ref().map(|p| p.vote_share)),
        )),
        Arc::new(Float32Array::from_iter(
            p.iter().map(|p| p.as_ref().map(|p| p.nearest_similarity)),
        )),
    ];
    if let Some((name, truth)) = &annotated.truth {
        fields.push(Field::new(format!("true_{name}"), DataType::Utf8, true));
        columns.push(Arc::new(StringArray::from(truth.clone())));
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = record_batch(schema.clone(), columns, path)?;
    write_parquet(path, schema, &[batch], &[])
        .with_context(|| format!("writing {}", path.display()))
}

fn write_report(
    path: &Path,
    args: &AnnotateArgs,
    reference: &CellStore,
    scored: Option<&Agreement>,
) -> Result<()> {
    let report = serde_json::json!({
        "reference": reference.path().display().to_string(),
        "reference_cells": reference.len(),
        "recipe": reference.origin(),
        "label": args.label,
        "query": args.query.is_given().then(|| args.query.path().display().to_string()),
        "folds": args.folds,
        "seed": args.folds.map(|_| args.seed),
        "k": args.search.k,
        "search": args.search.describe(),
        "agreement": scored,
        "bftembed_version": env!("CARGO_PKG_VERSION"),
    });
    let text = serde_json::to_vec_pretty(&report)?;
    bftembed::fsutil::atomic_write_bytes(path, &text)?;
    Ok(())
}
