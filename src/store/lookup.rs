//! Finding a gene's row in a store from whatever name the user typed.

use super::open::GeneStore;
use crate::error::{Error, Result};
use crate::genes::GeneCatalog;

/// The store row of `query`: its exact symbol, or the approved symbol the HGNC
/// catalogue resolves it to (aliases, previous symbols, Entrez ids). Unknown names get
/// close matches from the store and the catalogue.
pub fn resolve_row(store: &GeneStore, catalog: &GeneCatalog, query: &str) -> Result<usize> {
    if let Some(row) = store.row_of(query) {
        return Ok(row);
    }
    match catalog.resolve(query) {
        Ok(resolved) => store.row_of(&resolved.gene.symbol).ok_or_else(|| {
            Error::store(
                store.path(),
                format!(
                    "gene {} ('{}' resolves to it) has no vector in this store of {} genes",
                    resolved.gene.symbol,
                    query.trim(),
                    store.len()
                ),
            )
        }),
        Err(Error::UnknownGene { symbol, .. }) => {
            let mut suggestions = crate::genes::suggest_symbols(
                store.symbols().iter().map(String::as_str),
                &symbol,
                5,
            );
            if suggestions.is_empty() {
                suggestions = catalog.suggest(&symbol, 5);
            }
            Err(Error::UnknownGene {
                symbol,
                suggestions,
            })
        }
        Err(other) => Err(other),
    }
}
