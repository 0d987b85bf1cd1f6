//! The genes a task scores as items (pair members, classified genes, knocked-down
//! genes), so that training data can leave them out and a probe never tests a gene the
//! model was taught.
//!
//! Cell-typing and expression-response tasks use nearly the whole transcriptome as
//! features or items; they name no genes here, since no training set could avoid them.

use super::csv_table::CsvTable;
use super::gene_tasks::read_pairs;
use super::perturbation_tasks::read_gmt;
use super::spec::TaskSpec;
use super::vectors::SymbolMapper;
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
