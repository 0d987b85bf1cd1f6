//! The random-vector floor as a store: the same genes as a real store, each with a random
//! unit vector that depends only on its symbol and a seed. Whatever a pipeline does with
//! a gene store (cell vectors, a cell store, annotation) it can do with this one, so the
//! floor a result must beat comes from the same code.

use super::build::{build_store, StoreModel};
use super::index::IndexParams;
use super::open::GeneStore;
use crate::embed::Embeddings;
use crate::error::Result;
use crate::profile::ProfileRecord;
use std::path::Path;

/// The prefix of a random floor store's `model_id` (followed by the seed).
pub const RANDOM_PREFIX: &str = "random:seed=";

/// The `source` of every row of a random floor store.
pub const SOURCE_RANDOM: &str = "random";

/// Builds at `dir` a store of random unit vectors for the genes of `like`, of its
/// dimension, from `seed`.
pub fn random_store(
    like: &GeneStore,
    seed: u64,
    dir: &Path,
    params: IndexParams,
) -> Result<GeneStore> {
    let dim = like.dim();
    let mut records = Vec::with_capacity(like.len());
    let mut values = Vec::with_capacity(like.len() * dim);
    for (row, symbol) in like.symbols().iter().enumerate() {
        records.push(ProfileRecord {
            symbol: symbol.clone(),
            entrez_id: like.entrez_id(row),
            source: SOURCE_RANDOM.into(),
            text: String::new(),
        });
        values.extend(crate::rng::keyed_unit_vector(symbol, seed, dim));
    }
    let model = StoreModel {
        id: format!("{RANDOM_PREFIX}{seed}"),
        sha256: String::new(),
        encoder: None,
        remote: None,
    };
    build_store(dir, &records, &Embeddings::new(dim, values), &model, params)
}
