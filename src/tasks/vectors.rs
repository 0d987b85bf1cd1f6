//! Gene vectors as the tasks see them: a symbol-to-vector map built from a store
//! through its public interface, or random vectors as the floor every report shows.

use crate::embed::TextEncoder;
pub use crate::genes::SymbolMapper;
use crate::store::GeneStore;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

/// Name of the random floor in reports; no store may take it.
pub const RANDOM_FLOOR_NAME: &str = "random";

/// Named gene vectors.
pub struct GeneVectors {
    /// Shown in reports.
    pub name: String,
    dim: usize,
    rows: HashMap<String, usize>,
    data: Vec<f32>,
    encoder: Option<Arc<dyn TextEncoder>>,
    /// The store's own genes when `rows` holds only those every compared store has.
    own_genes: Option<HashSet<String>>,
    /// The gene-card fields any of the store's profile texts carry (`go_process`, ...).
    text_parts: BTreeSet<String>,
}

impl GeneVectors {
    /// Every gene of a store.
    pub fn from_store(store: &GeneStore, name: &str) -> Self {
        let mut rows = HashMap::new();
        let mut data = Vec::with_capacity(store.len() * store.dim());
        let mut text_parts = BTreeSet::new();
        for (i, symbol) in store.symbols().iter().enumerate() {
            rows.insert(symbol.clone(), i);
            data.extend_from_slice(store.vector(i));
            let parts = crate::profile::card_fields_of(store.source(i));
            text_parts.extend(parts.into_iter().map(str::to_string));
        }
        GeneVectors {
            name: name.to_string(),
            dim: store.dim(),
            rows,
            data,
            encoder: None,
            own_genes: None,
            text_parts,
        }
    }

    /// Adds the text encoder the store was built with, for tasks that embed text
    /// (GenePT-s cell sentences).
    pub fn with_encoder(mut self, encoder: Arc<dyn TextEncoder>) -> Self {
        self.encoder = Some(encoder);
        self
    }

    /// The gene-card fields (`go_process`, `groups`, ...) that any of the store's
    /// profile texts carry; empty for RefSeq, model-written or imported vectors.
    pub fn text_parts(&self) -> &BTreeSet<String> {
        &self.text_parts
    }

    /// The text encoder, if any.
    pub fn encoder(&self) -> Option<&dyn TextEncoder> {
        self.encoder.as_deref()
    }

    /// Random unit vectors for the same genes: the floor a real embedding must beat.
    /// Each gene's vector depends only on its symbol and `seed`.
    pub fn random_like(other: &GeneVectors, seed: u64) -> Self {
        let mut symbols: Vec<&String> = other.rows.keys().collect();
        symbols.sort();
        let mut rows = HashMap::new();
        let mut data = Vec::with_capacity(symbols.len() * other.dim);
        for (i, symbol) in symbols.iter().enumerate() {
            rows.insert((*symbol).clone(), i);
            data.extend(crate::rng::keyed_unit_vector(symbol, seed, other.dim));
        }
        GeneVectors {
            name: RANDOM_FLOOR_NAME.into(),
            dim: other.dim,
            rows,
            data,
            encoder: None,
            own_genes: None,
            text_parts: BTreeSet::new(),
        }
    }

    /// The same vectors for only the genes in `keep`, so that stores compared side by
    /// side are scored on the same items; [`covers`](Self::covers) still answers for
    /// every gene of the store.
    pub fn restricted_to(&self, keep: &HashSet<String>) -> Self {
        let mut symbols: Vec<&String> = self.rows.keys().filter(|s| keep.contains(*s)).collect();
        symbols.sort();
        let mut rows = HashMap::with_capacity(symbols.len());
        let mut data = Vec::with_capacity(symbols.len() * self.dim);
        for (i, symbol) in symbols.iter().enumerate() {
            rows.insert((*symbol).clone(), i);
            data.extend_from_slice(self.get(symbol).unwrap_or(&[]));
        }
        GeneVectors {
            name: self.name.clone(),
            dim: self.dim,
            rows,
            data,
            encoder: self.encoder.clone(),
            own_genes: Some(
                self.own_genes
                    .clone()
                    .unwrap_or_else(|| self.symbols().cloned().collect()),
            ),
            text_parts: self.text_parts.clone(),
        }
    }

    /// Whether the store itself has a vector for `symbol`, also for genes left out by
    /// [`restricted_to`](Self::restricted_to): what a report gives as its own coverage.
    pub fn covers(&self, symbol: &str) -> bool {
        match &self.own_genes {
            Some(own) => own.contains(symbol),
            None => self.rows.contains_key(symbol),
        }
    }

    /// Genes the store itself has (see [`covers`](Self::covers)).
    pub fn own_len(&self) -> usize {
        self.own_genes
            .as_ref()
            .map_or(self.rows.len(), HashSet::len)
    }

    /// The symbols the vectors are scored on, in no particular order.
    pub fn symbols(&self) -> impl Iterator<Item = &String> {
        self.rows.keys()
    }

    /// Vector width.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of genes.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no genes.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The vector of an approved symbol.
    pub fn get(&self, symbol: &str) -> Option<&[f32]> {
        self.rows
            .get(symbol)
            .map(|&i| &self.data[i * self.dim..(i + 1) * self.dim])
    }
}
