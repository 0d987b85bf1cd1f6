//! The genes a task scores as items (pair members, classified genes, knocked-down
//! genes), so that training data can leave them out and a probe never tests a gene the
//! model was taught.
//!
//! Cell-typing and expression-response tasks use nearly the whole transcriptome as
//! features or items; they name no genes here, since no training set could avoid them.

use super::cell_tasks::read_cell_matrix;
use super::gene_tasks::read_pairs;
use super::perturbation_tasks::read_gmt;
use super::response_tasks::read_response;
use super::spec::TaskSpec;
use super::vectors::SymbolMapper;
use crate::csv_table::CsvTable;
use crate::error::Result;
use std::collections::BTreeSet;
use std::path::Path;

/// Approved symbols of the genes `spec` scores as items; empty for cell-level and
/// expression-response tasks.
pub fn labelled_genes(spec: &TaskSpec, mapper: &mut SymbolMapper) -> Result<BTreeSet<String>> {
    let mut genes = BTreeSet::new();
    if let Some(p) = &spec.gene_pairs {
        for (pairs, labels) in [
            (&p.train_pairs, &p.train_labels),
            (&p.test_pairs, &p.test_labels),
        ] {
            for pair in read_pairs(spec, pairs, labels, mapper)?.0 {
                genes.insert(pair.a);
                genes.insert(pair.b);
            }
        }
    }
    if let Some(c) = &spec.gene_classes {
        column_genes(
            &spec.data_path(&c.labels),
            &c.symbol_column,
            None,
            mapper,
            &mut genes,
        )?;
    }
    if let Some(f) = &spec.gene_families {
        let classes = Some((f.class_column.as_str(), f.classes.as_slice()));
        column_genes(
            &spec.data_path(&f.labels),
            &f.symbol_column,
            classes,
            mapper,
            &mut genes,
        )?;
    }
    if let Some(p) = &spec.perturbations {
        for file in std::iter::once(&p.train).chain(p.test.as_ref()) {
            for signature in read_gmt(&spec.data_path(file), mapper)?.0 {
                genes.insert(signature.target);
            }
        }
    }
    Ok(genes)
}

/// The class of each gene a gene-class or gene-family task scores, as (approved symbol,
/// class name) sorted by symbol, so that a caller drawing genes can keep every class;
/// `None` for other tasks. A family task's genes in several of its classes are left
/// out, as the task leaves them out.
pub fn labelled_classes(
    spec: &TaskSpec,
    mapper: &mut SymbolMapper,
) -> Result<Option<Vec<(String, String)>>> {
    let (path, symbol_column, class_column) = match (&spec.gene_classes, &spec.gene_families) {
        (Some(c), _) => (&c.labels, &c.symbol_column, &c.label_column),
        (None, Some(f)) => (&f.labels, &f.symbol_column, &f.class_column),
        (None, None) => return Ok(None),
    };
    let mut table = CsvTable::open(&spec.data_path(path))?;
    let symbol = table.column(symbol_column)?;
    let class = table.column(class_column)?;
    let mut classes_of: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    for record in table.records() {
        let record = record?;
        let value = record.get(class).unwrap_or("").trim();
        let name = match (&spec.gene_classes, &spec.gene_families) {
            (Some(c), _) if value == c.positive_value => c.positive_name.clone(),
            (Some(c), _) => c.negative_name.clone(),
            (None, Some(f)) if f.classes.iter().any(|w| w == value) => value.to_string(),
            _ => continue,
        };
        if let Some(approved) = mapper.approved(record.get(symbol).unwrap_or("").trim()) {
            classes_of.entry(approved).or_default().insert(name);
        }
    }
    Ok(Some(
        classes_of
            .into_iter()
            .filter(|(_, c)| c.len() == 1)
            .filter_map(|(g, c)| c.into_iter().next().map(|c| (g, c)))
            .collect(),
    ))
}

/// A task's labelled gene pairs as (gene, gene, interacts), training file first and
/// test file second; `None` for tasks that score no pairs.
pub type LabelledPairs = (Vec<(String, String, bool)>, Vec<(String, String, bool)>);

/// The labelled pairs of a gene-pair task (approved symbols), so that a caller drawing
/// genes can keep whole pairs of both classes.
pub fn labelled_pairs(spec: &TaskSpec, mapper: &mut SymbolMapper) -> Result<Option<LabelledPairs>> {
    let Some(p) = &spec.gene_pairs else {
        return Ok(None);
    };
    let mut read = |pairs, labels| -> Result<Vec<(String, String, bool)>> {
        Ok(read_pairs(spec, pairs, labels, mapper)?
            .0
            .into_iter()
            .map(|pair| (pair.a, pair.b, pair.label))
            .collect())
    };
    let train = read(&p.train_pairs, &p.train_labels)?;
    let test = read(&p.test_pairs, &p.test_labels)?;
    Ok(Some((train, test)))
}

/// Approved symbols of the genes a cell-level or expression-response task reads: the
/// expression matrix's genes (GenePT-w features) or the genes whose response is
/// predicted; empty for other tasks.
pub fn expression_genes(spec: &TaskSpec, mapper: &mut SymbolMapper) -> Result<BTreeSet<String>> {
    let mut genes = BTreeSet::new();
    if let Some(c) = &spec.cell_types {
        let matrix = read_cell_matrix(spec, c)?;
        genes.extend(
            super::cell_tasks::approved_genes(&matrix, mapper)
                .into_iter()
                .flatten(),
        );
    }
    if let Some(r) = &spec.expression_response {
        genes.extend(read_response(spec, r, mapper)?.genes);
    }
    Ok(genes)
}

/// Symbols of a label table's rows, optionally only rows whose class is one of `classes`.
fn column_genes(
    path: &Path,
    symbol_column: &str,
    classes: Option<(&str, &[String])>,
    mapper: &mut SymbolMapper,
    out: &mut BTreeSet<String>,
) -> Result<()> {
    let mut table = CsvTable::open(path)?;
    let symbol = table.column(symbol_column)?;
    let class = match classes {
        Some((column, wanted)) => Some((table.column(column)?, wanted)),
        None => None,
    };
    for record in table.records() {
        let record = record?;
        if let Some((column, wanted)) = class {
            let value = record.get(column).unwrap_or("").trim();
            if !wanted.iter().any(|w| w == value) {
                continue;
            }
        }
        if let Some(approved) = mapper.approved(record.get(symbol).unwrap_or("").trim()) {
            out.insert(approved);
        }
    }
    Ok(())
}
