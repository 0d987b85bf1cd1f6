//! Opening a store (with every checksum checked) and searching it.

use super::exact::exact_top_k;
use super::index::HnswIndex;
use super::manifest::{StoreManifest, MANIFEST_FILE, TABLE_FILE};
use super::table::{read_table, StoreRows};
use crate::embed::{Embeddings, RemoteEncoder, RemoteSettings, SentenceEmbedder, TextEncoder};
use crate::error::{Error, Result};
use crate::fsutil::{sha256_f32, sha256_file};
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
    vectors: Embeddings,
    by_symbol: HashMap<String, usize>,
    index: HnswIndex,
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
        let encoder = SentenceEmbedder::load(&model, device)?;
        if let Some(recorded) = &manifest.encoder {
            if *recorded != encoder.record() {
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

    /// Opens a store folder, checking the table and index against the manifest.
    /// A mismatch is an error that says what to do; a damaged store is never used.
    pub fn open(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::store(
                dir,
                "no such store folder (build one with `bftembed embed --profiles P.parquet --out STORE`)",
            ));
        }
        let manifest = StoreManifest::read(&dir.join(MANIFEST_FILE))?;
        let rows = read_checked_table(&dir.join(TABLE_FILE), &manifest)?;
        check_index_files(dir, &manifest)?;
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
            vectors: rows.vectors,
            by_symbol,
            index,
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
        self.vectors.dim()
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
        self.vectors.row(row)
    }

    /// All vectors.
    pub fn vectors(&self) -> &Embeddings {
        &self.vectors
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
        self.search_excluding(query, k, mode, None)
    }

    /// The `k` genes nearest to the gene in `row`, itself excluded, best first.
    pub fn neighbors_of_row(
        &self,
        row: usize,
        k: usize,
        mode: SearchMode,
    ) -> Result<Vec<Neighbor>> {
        if row >= self.len() {
            return Err(Error::InvalidArgument(format!(
                "row {row} is outside the store"
            )));
        }
        self.search_excluding(self.vectors.row(row), k, mode, Some(row))
    }

    fn search_excluding(
        &self,
        query: &[f32],
        k: usize,
        mode: SearchMode,
        exclude: Option<usize>,
    ) -> Result<Vec<Neighbor>> {
        if k == 0 {
            return Err(Error::InvalidArgument("k must be at least 1".into()));
        }
        if query.len() != self.dim() {
            return Err(Error::InvalidArgument(format!(
                "query has dimension {}, the store {}",
                query.len(),
                self.dim()
            )));
        }
        let hits: Vec<(usize, f32)> = match mode {
            SearchMode::Exact => exact_top_k(&self.vectors, query, k, exclude),
            SearchMode::Hnsw { ef } => {
                let want = k + usize::from(exclude.is_some());
                self.index
                    .search(query, want, ef.max(want))
                    .into_iter()
                    .filter(|(row, _)| Some(*row) != exclude)
                    .take(k)
                    .map(|(row, dist)| (row, 1.0 - dist))
                    .collect()
            }
        };
        Ok(hits
            .into_iter()
            .map(|(row, score)| Neighbor {
                row,
                symbol: self.symbols[row].clone(),
                entrez_id: self.entrez_ids[row],
                score,
            })
            .collect())
    }
}

/// The vector table, read only after its file checksum matches the manifest, then
/// checked again for its shape and the checksum of the vectors it decodes to: a table
/// that parses can still hold other vectors than the store was built with.
fn read_checked_table(table_path: &Path, manifest: &StoreManifest) -> Result<StoreRows> {
    if !table_path.is_file() {
        return Err(Error::store(
            table_path,
            "the vector table is missing; build the store again",
        ));
    }
    if sha256_file(table_path)? != manifest.table_sha256 {
        return Err(Error::store(
            table_path,
            "the vector table does not match the manifest (truncated or changed); build the store again",
        ));
    }
    let rows = read_table(table_path)?;
    if rows.vectors.len() != manifest.count || rows.vectors.dim() != manifest.dim {
        return Err(Error::store(
            table_path,
            format!(
                "holds {} vectors of dimension {}, the manifest says {} of {}",
                rows.vectors.len(),
                rows.vectors.dim(),
                manifest.count,
                manifest.dim
            ),
        ));
    }
    if sha256_f32(rows.vectors.as_slice()) != manifest.vectors_sha256 {
        return Err(Error::store(
            table_path,
            "the vectors' checksum does not match the manifest; build the store again",
        ));
    }
    Ok(rows)
}

/// Checks that every index file the manifest lists is present with its recorded
/// checksum, before the index is loaded, so a damaged index is reported as such (with
/// the command that rebuilds it) rather than as whatever the loader trips over.
fn check_index_files(dir: &Path, manifest: &StoreManifest) -> Result<()> {
    for (name, expected) in &manifest.index.files {
        let path = dir.join(name);
        let repair = format!(
            "rebuild it with `bftembed reindex --store {}`",
            dir.display()
        );
        if !path.is_file() {
            return Err(Error::store(
                &path,
                format!("the index file is missing; {repair}"),
            ));
        }
        if &sha256_file(&path)? != expected {
            return Err(Error::store(
                &path,
                format!(
                    "the index file does not match the manifest (truncated or changed); {repair}"
                ),
            ));
        }
    }
    Ok(())
}

/// The HNSW index, which must hold one point per table row: search results are rows
/// of the table.
fn load_checked_index(dir: &Path, manifest: &StoreManifest) -> Result<HnswIndex> {
    let index = HnswIndex::load(dir)?;
    if index.len() != manifest.count {
        return Err(Error::store(
            dir,
            format!(
                "the index holds {} points but the table {}; rebuild it with `bftembed reindex --store {}`",
                index.len(),
                manifest.count,
                dir.display()
            ),
        ));
    }
    Ok(index)
}
