//! Opening a store (with every checksum checked) and searching it.

use super::checks::{check_vectors, load_checked_index, open_manifest};
use super::manifest::{StoreItems, StoreManifest, TABLE_FILE};
use super::search::VectorIndex;
use super::table::read_table;
use crate::embed::{
    Embeddings, EncoderRecord, RemoteEncoder, RemoteSettings, SentenceEmbedder, TextEncoder,
};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// How to search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchMode {
    /// HNSW graph search with candidate list size `ef` (at least k).
    Hnsw {
        /// Search breadth; higher is slower and more exact.
        ef: usize,
    },
    /// Brute force over every vector (recall 1).
    Exact,
}

/// Default HNSW search breadth: recall@10 0.999 on the 15k-gene store.
pub const DEFAULT_EF: usize = 32;

impl Default for SearchMode {
    fn default() -> Self {
        SearchMode::Hnsw { ef: DEFAULT_EF }
    }
}

/// One search hit.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbor {
    /// Row in the store.
    pub row: usize,
    /// Gene symbol.
    pub symbol: String,
    /// Entrez id.
    pub entrez_id: Option<u32>,
    /// Cosine similarity to the query.
    pub score: f32,
}

/// An opened, verified store.
pub struct GeneStore {
    path: PathBuf,
    manifest: StoreManifest,
    symbols: Vec<String>,
    entrez_ids: Vec<Option<u32>>,
    sources: Vec<String>,
    texts: Vec<String>,
    by_symbol: HashMap<String, usize>,
    indexed: VectorIndex,
}

impl GeneStore {
    /// The text encoder the store was built with: the local model (from `cache`),
    /// refused when its weights, pooling or prompts differ from those recorded, or the
    /// OpenAI-compatible server it was built through (key from `OPENAI_API_KEY`),
    /// refused when that server now embeds the recorded probe text differently. Either
    /// way, vectors that would not be comparable with the store's are never made.
    pub fn encoder(
        &self,
        cache: &crate::models::ModelCache,
        device: &candle_core::Device,
    ) -> Result<Box<dyn TextEncoder>> {
        let manifest = self.manifest();
        if let Some(file) = manifest.model_id.strip_prefix(super::IMPORTED_PREFIX) {
            return Err(Error::store(
                self.path(),
                format!(
                    "the store holds vectors imported from {file}, made by a model bftembed \
                     does not have, so it cannot embed text (free-text search, GenePT-s cell \
                     sentences) the way its vectors were made"
                ),
            ));
        }
        if manifest.model_id.starts_with(super::RANDOM_PREFIX) {
            return Err(Error::store(
                self.path(),
                "the store holds random vectors (the floor), made by no model, so it cannot \
                 embed text (free-text search, GenePT-s cell sentences)",
            ));
        }
        if let Some(remote) = &manifest.remote {
            let settings = RemoteSettings::new(&remote.endpoint, &remote.model);
            let encoder = RemoteEncoder::reconnect(remote, settings).map_err(|e| {
                Error::store(
                    self.path(),
                    format!(
                        "the store was embedded by model '{}' at {}, and queries must go \
                         through the same server: {e}",
                        remote.model, remote.endpoint
                    ),
                )
            })?;
            return Ok(Box::new(encoder));
        }
        Ok(Box::new(self.local_encoder(cache, device)?))
    }

    fn local_encoder(
        &self,
        cache: &crate::models::ModelCache,
        device: &candle_core::Device,
    ) -> Result<SentenceEmbedder> {
        let manifest = self.manifest();
        let model = cache.resolve(&manifest.model_id)?;
        if model.weights_sha256 != manifest.model_sha256 {
            return Err(Error::store(
                self.path(),
                format!(
                    "the model '{}' found now has weights sha256 {}, but the store was built with {}; its vectors would not be comparable",
                    model.id, model.weights_sha256, manifest.model_sha256
                ),
            ));
        }
        // Queries are embedded at the store's precision where this machine can run it;
        // elsewhere at f32, the exact arithmetic the reduced one approximates.
        let recorded_precision = manifest.encoder.as_ref().map(|r| r.precision);
        let precision = recorded_precision
            .filter(|p| p.check(device).is_ok())
            .unwrap_or_default();
        let encoder = SentenceEmbedder::load_with(&model, device, precision)?;
        if let Some(recorded) = &manifest.encoder {
            let same = EncoderRecord {
                precision: recorded.precision,
                ..encoder.record()
            };
            if *recorded != same {
                return Err(Error::store(
                    self.path(),
                    format!(
                        "the model '{}' now pools or prompts differently ({:?}) than when \
                         the store was built ({recorded:?}); its vectors would not be comparable",
                        model.id,
                        encoder.record()
                    ),
                ));
            }
        }
        Ok(encoder)
    }

    /// Opens a gene store folder, checking the table and index against the manifest
    /// (see [`super::CheckDepth`] for how much). A mismatch is an error that says what
    /// to do; a damaged store is never used.
    pub fn open(dir: &Path) -> Result<Self> {
        let (manifest, depth) = open_manifest(dir, StoreItems::Genes)?;
        let table = dir.join(TABLE_FILE);
        let rows = read_table(&table)?;
        check_vectors(&table, &rows.vectors, &manifest, depth)?;
        let index = load_checked_index(dir, &manifest)?;
        let by_symbol = rows
            .symbols
            .iter()
            .enumerate()
            .map(|(i, s)| (s.to_uppercase(), i))
            .collect();
        Ok(GeneStore {
            path: dir.to_path_buf(),
            manifest,
            symbols: rows.symbols,
            entrez_ids: rows.entrez_ids,
            sources: rows.sources,
            texts: rows.texts,
            by_symbol,
            indexed: VectorIndex {
                vectors: rows.vectors,
                index,
            },
        })
    }

    /// The store folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The manifest.
    pub fn manifest(&self) -> &StoreManifest {
        &self.manifest
    }

    /// Number of genes.
    pub fn len(&self) -> usize {
        self.symbols.len()
    }

    /// True when the store holds nothing.
    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.indexed.vectors.dim()
    }

    /// All symbols, in row order.
    pub fn symbols(&self) -> &[String] {
        &self.symbols
    }

    /// The row of a symbol exactly as stored (any case).
    pub fn row_of(&self, symbol: &str) -> Option<usize> {
        self.by_symbol.get(&symbol.trim().to_uppercase()).copied()
    }

    /// The vector of a row.
    pub fn vector(&self, row: usize) -> &[f32] {
        self.indexed.vectors.row(row)
    }

    /// All vectors.
    pub fn vectors(&self) -> &Embeddings {
        &self.indexed.vectors
    }

    /// The profile text of a row.
    pub fn text(&self, row: usize) -> &str {
        &self.texts[row]
    }

    /// The profile source of a row.
    pub fn source(&self, row: usize) -> &str {
        &self.sources[row]
    }

    /// The Entrez id of a row.
    pub fn entrez_id(&self, row: usize) -> Option<u32> {
        self.entrez_ids[row]
    }

    /// The `k` genes nearest to a (unit) query vector, best first.
    pub fn search_vector(
        &self,
        query: &[f32],
        k: usize,
        mode: SearchMode,
    ) -> Result<Vec<Neighbor>> {
        let hits = self.indexed.search(query, k, mode, None)?;
        Ok(self.named(hits))
    }

    /// The `k` genes nearest to the gene in `row`, itself excluded, best first.
    pub fn neighbors_of_row(
        &self,
        row: usize,
        k: usize,
        mode: SearchMode,
    ) -> Result<Vec<Neighbor>> {
        let hits = self.indexed.neighbors_of_row(row, k, mode)?;
        Ok(self.named(hits))
    }

    fn named(&self, hits: Vec<(usize, f32)>) -> Vec<Neighbor> {
        hits.into_iter()
            .map(|(row, score)| Neighbor {
                row,
                symbol: self.symbols[row].clone(),
                entrez_id: self.entrez_ids[row],
                score,
            })
            .collect()
    }
}
