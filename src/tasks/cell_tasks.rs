//! Cell typing on GenePT-style cell embeddings: the expression-weighted mean of gene
//! vectors (GenePT-w), or the store's text encoder on a sentence of the cell's top
//! genes (GenePT-s); then multinomial logistic regression or kNN.

use super::expression::ExpressionMatrix;
use super::gene_tasks::{stratified_folds_by, task_error, TaskScore};
use super::outcomes::{ItemOutcomes, OutcomeKind};
use super::probe::Standardizer;
use super::resample::class_scores;
use super::spec::{CellClassifier, CellEmbedding, CellTypeSpec, ExpressionValues, TaskSpec};
use super::vectors::{GeneVectors, SymbolMapper};
use crate::error::{Error, Result};
use linfa::prelude::*;
use linfa_logistic::MultiLogisticRegression;
use ndarray::{Array1, Array2};
use std::collections::HashMap;

/// Cell embeddings already computed in this run, by matrix, cells, method and store.
pub type CellEmbeddingCache = HashMap<String, Vec<Option<Vec<f32>>>>;

/// A labelled cell ready for embedding.
struct LabelledCell {
    row: usize,
    label: usize,
    train: Option<bool>,
}

/// Runs a cell-typing task for every set of vectors (sentence embeddings only for
/// stores that carry a text encoder).
pub fn run_cell_types(
    spec: &TaskSpec,
    cell_spec: &CellTypeSpec,
    stores: &[&GeneVectors],
    mapper: &mut SymbolMapper,
    cache: &mut CellEmbeddingCache,
) -> Result<Vec<TaskScore>> {
    let matrix = read_cell_matrix(spec, cell_spec)?;
    let approved = approved_genes(&matrix, mapper);
    let (cells, class_names) = read_labels(spec, cell_spec, &matrix)?;
    let mut out = Vec::new();
    // GenePT-s needs a text encoder. A store without one (the random floor) is scored on
    // the same sentences with every gene name swapped for another by a fixed
    // permutation, read by the first store's encoder: the text analogue of random gene
    // vectors, which keeps which genes a cell expresses and drops what the names mean.
    let sentence_encoder = stores.iter().find_map(|v| v.encoder());
    let permuted = permuted_names(&approved, cell_spec.seed);
    for vectors in stores {
        let sentences = cell_spec.embedding == CellEmbedding::Sentence;
        let encoder = vectors.encoder().or(sentence_encoder);
        if sentences && encoder.is_none() {
            continue;
        }
        let words = if sentences && vectors.encoder().is_none() {
            &permuted
        } else {
            &approved
        };
        let known = approved
            .iter()
            .filter(|g| g.as_ref().and_then(|g| vectors.get(g)).is_some())
            .count();
        if known == 0 {
            return Err(task_error(
                spec,
                vectors,
                Error::InvalidArgument(format!(
                    "none of the matrix's {} genes is in the store (are the gene names symbols? for an .h5ad whose var index holds Ensembl ids, name its symbol column with h5ad_gene_column)",
                    matrix.genes.len()
                )),
            ));
        }
        // Tasks that differ only in the classifier (and its k, or the folds) share the
        // (costly) cell embeddings: every other setting, with the folder its paths are
        // relative to, is in the key. The key lives for one run only.
        let mut shared = cell_spec.clone();
        (shared.classifier, shared.k, shared.folds) = (CellClassifier::Logistic, 0, 0);
        let key = format!("{}|{:?}|{}", spec.base.display(), shared, vectors.name);
        if !cache.contains_key(&key) {
            let embedded = embed_cells(
                cell_spec, &matrix, &approved, words, &cells, vectors, encoder,
            )
            .map_err(|e| task_error(spec, vectors, e))?;
            cache.insert(key.clone(), embedded);
        }
        let embedded = &cache[&key];
        let covered: Vec<(usize, &LabelledCell)> = cells
            .iter()
            .enumerate()
            .filter(|(i, _)| embedded[*i].is_some())
            .collect();
        let labels: Vec<usize> = covered.iter().map(|(_, c)| c.label).collect();
        let assignments: Vec<usize> = match cell_spec.split_column {
            // 0 = test, 1 = train for a fixed split; fold numbers otherwise.
            Some(_) => covered
                .iter()
                .map(|(_, c)| c.train.unwrap_or(false) as usize)
                .collect(),
            None => stratified_folds_by(&labels, cell_spec.folds, cell_spec.seed)
                .map_err(|e| task_error(spec, vectors, e))?,
        };
        let rounds: Vec<(Vec<usize>, Vec<usize>)> = match cell_spec.split_column {
            Some(_) => vec![split_indices(&assignments, |a| a == 1)],
            None => (0..cell_spec.folds)
                .map(|f| split_indices(&assignments, |a| a != f))
                .collect(),
        };
        let mut ids = Vec::new();
        let mut truth = Vec::new();
        let mut predicted = Vec::new();
        let mut train_items = 0;
        for (train, test) in &rounds {
            if train.is_empty() || test.is_empty() {
                return Err(task_error(
                    spec,
                    vectors,
                    Error::InvalidArgument("the split leaves no training or no test cells".into()),
                ));
            }
            let rows = |idx: &[usize]| -> Array2<f64> {
                let d = vectors.dim();
                let mut x = Array2::zeros((idx.len(), d));
                for (r, &i) in idx.iter().enumerate() {
                    if let Some(v) = &embedded[covered[i].0] {
                        for j in 0..d {
                            x[(r, j)] = v[j] as f64;
                        }
                    }
                }
                x
            };
            let train_y: Vec<usize> = train.iter().map(|&i| labels[i]).collect();
            let guesses = classify(cell_spec, spec, &rows(train), &train_y, &rows(test))
                .map_err(|e| task_error(spec, vectors, e))?;
            train_items = train_items.max(train.len());
            ids.extend(test.iter().map(|&i| format!("row {}", covered[i].1.row)));
            truth.extend(test.iter().map(|&i| labels[i]));
            predicted.extend(guesses);
        }
        let scores = class_scores(
            &truth,
            &predicted,
            class_names.len(),
            cell_spec.seed ^ 0xce11,
        )?;
        out.push(TaskScore {
            store: vectors.name.clone(),
            items_total: cells.len(),
            items_covered: covered.len(),
            own_items_covered: match cell_spec.embedding {
                // A cell sentence names genes whether or not the store has them.
                CellEmbedding::Sentence => covered.len(),
                CellEmbedding::Weighted => cells
                    .iter()
                    .filter(|c| {
                        matrix.values[c.row].iter().any(|&(g, x)| {
                            x > 0.0
                                && approved[g as usize]
                                    .as_deref()
                                    .is_some_and(|s| vectors.covers(s))
                        })
                    })
                    .count(),
            },
            train_items,
            test_items: truth.len(),
            metric: "macro-F1".into(),
            value: scores.macro_f1,
            interval: scores.interval,
            interval_method: "bootstrap of test cells, 200 resamples".into(),
            other_metrics: vec![
                ("accuracy".into(), scores.accuracy),
                ("genes known".into(), known as f64),
            ],
            roc: Vec::new(),
            confusion: Some((class_names.clone(), scores.confusion)),
            map: out.is_empty().then(|| {
                let rows: Vec<&[f32]> = covered
                    .iter()
                    .filter_map(|(i, _)| embedded[*i].as_deref())
                    .collect();
                super::pca::ItemMap::project(&rows, labels.clone(), class_names.clone(), "cells")
            }),
            outcomes: Some(ItemOutcomes {
                ids,
                kind: OutcomeKind::Classes { truth, predicted },
            }),
        });
    }
    Ok(out)
}

/// The approved symbol of each matrix gene: by its name (symbol or Ensembl id), else by
/// the 10x features file's symbol column.
pub(super) fn approved_genes(
    matrix: &super::ExpressionMatrix,
    mapper: &mut SymbolMapper,
) -> Vec<Option<String>> {
    (0..matrix.genes.len())
        .map(|i| {
            mapper.approved(&matrix.genes[i]).or_else(|| {
                let symbols = matrix.gene_symbols.as_ref()?;
                mapper.approved(&symbols[i])
            })
        })
        .collect()
}

fn split_indices(
    assignments: &[usize],
    is_train: impl Fn(usize) -> bool,
) -> (Vec<usize>, Vec<usize>) {
    let mut train = Vec::new();
    let mut test = Vec::new();
    for (i, &a) in assignments.iter().enumerate() {
        if is_train(a) {
            train.push(i);
        } else {
            test.push(i);
        }
    }
    (train, test)
}

/// Cells of the matrix with a label (and split side), and the sorted class names.
fn read_labels(
    spec: &TaskSpec,
    cell_spec: &CellTypeSpec,
    matrix: &ExpressionMatrix,
) -> Result<(Vec<LabelledCell>, Vec<String>)> {
    let row_of: HashMap<&str, usize> = matrix
        .cells
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    let (path, records) = cell_records(spec, cell_spec)?;
    let mut raw = Vec::new();
    let mut in_matrix = 0;
    for (id, label, split) in records {
        let Some(&row) = row_of.get(id.as_str()) else {
            continue;
        };
        in_matrix += 1;
        let Some(label) = label else {
            continue;
        };
        let train = match (
            split.as_deref(),
            &cell_spec.train_value,
            &cell_spec.test_value,
        ) {
            (Some(v), Some(tr), _) if v == tr => Some(true),
            (Some(v), _, Some(te)) if v == te => Some(false),
            (Some(_), _, _) => continue,
            (None, _, _) if cell_spec.split_column.is_some() => continue,
            (None, _, _) => None,
        };
        raw.push((row, label, train));
    }
    if raw.is_empty() {
        return Err(Error::bad_file(
            &path,
            no_labelled_cell(cell_spec, in_matrix),
        ));
    }
    let mut names: Vec<String> = raw.iter().map(|(_, l, _)| l.clone()).collect();
    names.sort();
    names.dedup();
    let index: HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let cells = raw
        .iter()
        .map(|(row, label, train)| LabelledCell {
            row: *row,
            label: index[label.as_str()],
            train: *train,
        })
        .collect();
    Ok((cells, names))
}

/// Why no cell could be used: no id matched the matrix, or the matching cells all lack a
/// label or a split value the task asks for.
fn no_labelled_cell(cell_spec: &CellTypeSpec, in_matrix: usize) -> String {
    if in_matrix == 0 {
        return match &cell_spec.cell_column {
            Some(c) => format!("no cell id in column '{c}' matches the matrix's cells"),
            None => "no cell of obs is in the matrix".into(),
        };
    }
    // The spec reader makes split_column, train_value and test_value go together.
    let split = match (
        &cell_spec.split_column,
        &cell_spec.train_value,
        &cell_spec.test_value,
    ) {
        (Some(c), Some(train), Some(test)) => format!(" and a '{c}' of '{train}' or '{test}'"),
        _ => String::new(),
    };
    format!("{in_matrix} cells are in the matrix, but none has a label{split}")
}

/// A cell's id, label and split value (`None` where the file has none).
type CellRecord = (String, Option<String>, Option<String>);

/// Every cell's record, from the metadata CSV or the `.h5ad`'s own `obs` table, with the
/// file they came from.
fn cell_records(
    spec: &TaskSpec,
    cell_spec: &CellTypeSpec,
) -> Result<(std::path::PathBuf, Vec<CellRecord>)> {
    let (Some(metadata), Some(cell_column)) = (&cell_spec.metadata, &cell_spec.cell_column) else {
        let path = spec.data_path(&cell_spec.matrix);
        let file = super::anndata::H5ad::open(&path)?;
        let ids = file.obs_names()?;
        let labels = file.obs_column(&cell_spec.label_column)?;
        let splits = match &cell_spec.split_column {
            Some(c) => file.obs_column(c)?,
            None => vec![None; ids.len()],
        };
        let records = ids
            .into_iter()
            .zip(labels)
            .zip(splits)
            .map(|((id, label), split)| (id, label, split))
            .collect();
        return Ok((path, records));
    };
    let path = spec.data_path(metadata);
    let mut table = crate::csv_table::CsvTable::open(&path)?;
    let id_col = table.column(cell_column)?;
    let label_col = table.column(&cell_spec.label_column)?;
    let split_col = match &cell_spec.split_column {
        Some(c) => Some(table.column(c)?),
        None => None,
    };
    let mut records = Vec::new();
    for record in table.records() {
        let record = record?;
        let field = |c: usize| record.get(c).unwrap_or("").to_string();
        records.push((field(id_col), Some(field(label_col)), split_col.map(field)));
    }
    Ok((path, records))
}

/// The task's expression matrix, log-normalised when it holds counts.
pub(super) fn read_cell_matrix(
    spec: &TaskSpec,
    cell_spec: &CellTypeSpec,
) -> Result<ExpressionMatrix> {
    let matrix_path = spec.data_path(&cell_spec.matrix);
    let mut matrix = if matrix_path.to_string_lossy().ends_with(".h5ad") {
        super::anndata::H5ad::open(&matrix_path)?.matrix(
            cell_spec.h5ad_matrix.as_deref().unwrap_or("X"),
            cell_spec.h5ad_gene_column.as_deref(),
        )?
    } else if matrix_path.to_string_lossy().contains(".mtx") {
        let genes = spec.data_path(
            cell_spec
                .genes
                .as_deref()
                .unwrap_or(std::path::Path::new("")),
        );
        let cells = spec.data_path(
            cell_spec
                .cells
                .as_deref()
                .unwrap_or(std::path::Path::new("")),
        );
        ExpressionMatrix::read_matrix_market(&matrix_path, &genes, &cells)?
    } else {
        ExpressionMatrix::read_dense(&matrix_path)?
    };
    if cell_spec.values == ExpressionValues::Counts {
        matrix.log_normalize();
    }
    Ok(matrix)
}

/// Approved symbols moved to other genes by a seeded permutation (each name used once).
fn permuted_names(approved: &[Option<String>], seed: u64) -> Vec<Option<String>> {
    let named: Vec<usize> = (0..approved.len())
        .filter(|&i| approved[i].is_some())
        .collect();
    let mut order = named.clone();
    super::resample::shuffle(&mut order, seed ^ 0x5e17);
    let mut out = vec![None; approved.len()];
    for (&to, &from) in named.iter().zip(&order) {
        out[to] = approved[from].clone();
    }
    out
}

/// One unit vector per cell (GenePT-w from `vectors`, or GenePT-s: the cell's top genes
/// by expression, written as `words`, through `encoder`), `None` for a cell with no
/// known gene.
fn embed_cells(
    cell_spec: &CellTypeSpec,
    matrix: &ExpressionMatrix,
    approved: &[Option<String>],
    words: &[Option<String>],
    cells: &[LabelledCell],
    vectors: &GeneVectors,
    encoder: Option<&crate::embed::SentenceEmbedder>,
) -> Result<Vec<Option<Vec<f32>>>> {
    let d = vectors.dim();
    // With disjoint genes, training cells see only half 0 and test cells only half 1.
    let half: Vec<u64> = approved
        .iter()
        .map(|g| {
            // A high bit: FNV-1a's lowest bit is only the parity of the bytes.
            g.as_ref().map_or(2, |g| {
                crate::fsutil::fnv1a(format!("{}:{g}", cell_spec.seed).as_bytes()) >> 40 & 1
            })
        })
        .collect();
    let uses = |cell: &LabelledCell, gene: u32| -> bool {
        match (cell_spec.disjoint_genes, cell.train) {
            (true, Some(train)) => half[gene as usize] == u64::from(!train),
            _ => true,
        }
    };
    let gene_vector: Vec<Option<&[f32]>> = approved
        .iter()
        .map(|g| g.as_ref().and_then(|g| vectors.get(g)))
        .collect();
    let mut centre = vec![0f32; d];
    if cell_spec.center_gene_vectors {
        let known: Vec<&[f32]> = gene_vector.iter().flatten().copied().collect();
        for v in &known {
            for (c, x) in centre.iter_mut().zip(v.iter()) {
                *c += x / known.len() as f32;
            }
        }
    }
    match cell_spec.embedding {
        CellEmbedding::Weighted => Ok(cells
            .iter()
            .map(|c| {
                let mut v = vec![0f32; d];
                let mut weight = 0f32;
                for &(g, x) in matrix.values[c.row].iter().filter(|(g, _)| uses(c, *g)) {
                    if let Some(gv) = gene_vector[g as usize] {
                        for ((a, b), m) in v.iter_mut().zip(gv).zip(&centre) {
                            *a += x * (b - m);
                        }
                        weight += x;
                    }
                }
                (weight > 0.0).then(|| unit(v))
            })
            .collect()),
        CellEmbedding::Sentence => {
            let encoder = encoder.ok_or_else(|| {
                Error::InvalidArgument("no text encoder for cell sentences".into())
            })?;
            let sentences: Vec<Option<String>> = cells
                .iter()
                .map(|c| {
                    let mut genes: Vec<(u32, f32)> = matrix.values[c.row]
                        .iter()
                        .filter(|(g, _)| approved[*g as usize].is_some() && uses(c, *g))
                        .copied()
                        .collect();
                    genes.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                    let words: Vec<&str> = genes
                        .iter()
                        .take(cell_spec.top_genes)
                        .filter_map(|(g, _)| words[*g as usize].as_deref())
                        .collect();
                    (!words.is_empty()).then(|| words.join(" "))
                })
                .collect();
            let texts: Vec<&str> = sentences.iter().flatten().map(String::as_str).collect();
            let embedded = encoder.embed(&texts)?;
            let mut next = 0;
            Ok(sentences
                .iter()
                .map(|s| {
                    s.as_ref().map(|_| {
                        next += 1;
                        embedded.row(next - 1).to_vec()
                    })
                })
                .collect())
        }
    }
}

fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
    v
}

fn classify(
    cell_spec: &CellTypeSpec,
    spec: &TaskSpec,
    train_x: &Array2<f64>,
    train_y: &[usize],
    test_x: &Array2<f64>,
) -> Result<Vec<usize>> {
    match cell_spec.classifier {
        CellClassifier::Logistic => {
            let scaler = Standardizer::fit(train_x);
            let data = Dataset::new(scaler.transform(train_x), Array1::from(train_y.to_vec()));
            let model = MultiLogisticRegression::default()
                .alpha(spec.probe.alpha)
                .max_iterations(spec.probe.max_iterations)
                .fit(&data)
                .map_err(|e| Error::InvalidArgument(format!("logistic regression failed: {e}")))?;
            Ok(model.predict(&scaler.transform(test_x)).to_vec())
        }
        CellClassifier::Knn => {
            let classes = train_y.iter().max().map(|m| m + 1).unwrap_or(0);
            Ok(test_x
                .rows()
                .into_iter()
                .map(|q| {
                    let mut sims: Vec<(f64, usize)> = train_x
                        .rows()
                        .into_iter()
                        .zip(train_y)
                        .map(|(r, &y)| (r.dot(&q), y))
                        .collect();
                    let k = cell_spec.k.min(sims.len());
                    sims.select_nth_unstable_by(k.saturating_sub(1), |a, b| b.0.total_cmp(&a.0));
                    let mut votes = vec![0f64; classes];
                    for (s, y) in &sims[..k] {
                        votes[*y] += s.max(0.0) + 1e-9;
                    }
                    votes
                        .iter()
                        .enumerate()
                        .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
                        .map(|(i, _)| i)
                        .unwrap_or(0)
                })
                .collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::permuted_names;

    #[test]
    fn permuted_names_use_every_name_once_and_keep_unnamed_genes() {
        let approved: Vec<Option<String>> = ["CD3E", "", "MS4A1", "LYZ", "NKG7", "", "GNLY"]
            .iter()
            .map(|s| (!s.is_empty()).then(|| s.to_string()))
            .collect();
        let permuted = permuted_names(&approved, 7);
        assert_eq!(permuted, permuted_names(&approved, 7), "seeded");
        assert_eq!((permuted[1].clone(), permuted[5].clone()), (None, None));
        let mut before: Vec<_> = approved.iter().flatten().collect();
        let mut after: Vec<_> = permuted.iter().flatten().collect();
        before.sort();
        after.sort();
        assert_eq!(before, after);
        assert_ne!(permuted, approved);
    }
}
