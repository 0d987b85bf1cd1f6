//! Stores from vectors made elsewhere (GenePT's pickle, scGPT or Gene2vec tables,
//! `.npy`), and vectors out of a store. Imported names are resolved through HGNC, so a
//! store always holds approved symbols; its manifest names the file and its sha256 in
//! place of a model, and it has no text encoder.

use super::build::{build_store, StoreModel};
use super::index::IndexParams;
use super::open::GeneStore;
use crate::embed::Embeddings;
use crate::error::{Error, Result};
use crate::genes::GeneCatalog;
use crate::io::vectors::NamedVectors;
use crate::profile::ProfileRecord;
use std::collections::HashMap;
use std::path::Path;

/// The prefix of an imported store's `model_id`.
pub const IMPORTED_PREFIX: &str = "imported:";

/// The `source` of every row of an imported store.
pub const SOURCE_IMPORTED: &str = "imported";

/// A name in the imported file that did not become a row, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportSkip {
    /// The name as the file gives it.
    pub name: String,
    /// Why it was left out.
    pub reason: String,
}

/// What an import kept and left out.
pub struct ImportReport {
    /// The store written.
    pub store: GeneStore,
    /// Names left out (unknown, ambiguous, a second vector for a gene, a zero vector).
    pub skipped: Vec<ImportSkip>,
    /// Names that were a previous symbol or alias, with the approved symbol they became.
    pub renamed: Vec<(String, String)>,
}

/// Builds a store at `dir` from named vectors read from `source` (a file whose sha256
/// the manifest records): names resolved through HGNC, vectors L2-normalised.
pub fn import_store(
    vectors: &NamedVectors,
    source: &Path,
    catalog: &GeneCatalog,
    dir: &Path,
    params: IndexParams,
) -> Result<ImportReport> {
    let mut records = Vec::new();
    let mut values = Vec::new();
    let mut skipped = Vec::new();
    let mut renamed = Vec::new();
    let mut first_of: HashMap<String, String> = HashMap::new();
    for (i, name) in vectors.names.iter().enumerate() {
        let skip = |reason: String| ImportSkip {
            name: name.clone(),
            reason,
        };
        let gene = match catalog.resolve(name) {
            Ok(resolved) => resolved.gene,
            Err(e) => {
                skipped.push(skip(e.to_string()));
                continue;
            }
        };
        if let Some(first) = first_of.get(&gene.symbol) {
            skipped.push(skip(format!(
                "a second vector for {} (the first came as {first}); the first is kept",
                gene.symbol
            )));
            continue;
        }
        let row = vectors.row(i);
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm == 0.0 {
            skipped.push(skip("its vector is all zeros".into()));
            continue;
        }
        if gene.symbol != *name {
            renamed.push((name.clone(), gene.symbol.clone()));
        }
        first_of.insert(gene.symbol.clone(), name.clone());
        // A vector already of unit length keeps its bits, so a store exported and
        // imported again scores exactly as before.
        if (norm - 1.0).abs() < 1e-6 {
            values.extend_from_slice(row);
        } else {
            values.extend(row.iter().map(|v| v / norm));
        }
        records.push(ProfileRecord {
            symbol: gene.symbol.clone(),
            entrez_id: gene.entrez_id,
            source: SOURCE_IMPORTED.into(),
            text: String::new(),
        });
    }
    if records.is_empty() {
        return Err(Error::bad_file(
            source,
            format!(
                "none of its {} names is a known human gene",
                vectors.names.len()
            ),
        ));
    }
    let model = StoreModel {
        id: format!("{IMPORTED_PREFIX}{}", source.display()),
        sha256: crate::fsutil::sha256_file(source)?,
        encoder: None,
        remote: None,
    };
    let embeddings = Embeddings::new(vectors.dim, values);
    let store = build_store(dir, &records, &embeddings, &model, params)?;
    Ok(ImportReport {
        store,
        skipped,
        renamed,
    })
}

/// A store's vectors with their symbols, in row order.
pub fn store_vectors(store: &GeneStore) -> NamedVectors {
    NamedVectors {
        names: store.symbols().to_vec(),
        dim: store.dim(),
        values: store.vectors().as_slice().to_vec(),
    }
}
