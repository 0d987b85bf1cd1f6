//! The store manifest (`manifest.json`).

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// File name of the manifest inside a store folder.
pub const MANIFEST_FILE: &str = "manifest.json";
/// File name of the vector table inside a store folder.
pub const TABLE_FILE: &str = "vectors.parquet";
/// The manifest format this version writes and reads.
pub const STORE_FORMAT: &str = "bftembed-store/1";

/// What a store holds and the checksums that prove its files belong together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreManifest {
    /// Format tag (`bftembed-store/1`).
    pub format: String,
    /// The bftembed version that wrote it.
    pub bftembed_version: String,
    /// The embedding model's id (registry name or folder path).
    pub model_id: String,
    /// sha256 of the embedding model's weights file.
    pub model_sha256: String,
    /// Vector dimension.
    pub dim: usize,
    /// Number of vectors (rows).
    pub count: usize,
    /// Creation time, seconds since the Unix epoch.
    pub created_unix: u64,
    /// sha256 of all vector values (f32 little-endian, row order).
    pub vectors_sha256: String,
    /// sha256 of `vectors.parquet`.
    pub table_sha256: String,
    /// The nearest-neighbour index.
    pub index: IndexManifest,
    /// How the encoder pooled and prompted (absent in stores written before this was
    /// recorded, and in imported stores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<crate::embed::EncoderRecord>,
    /// The OpenAI-compatible server and model that embedded the texts (absent for
    /// local encoders and imported vectors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<crate::embed::RemoteRecord>,
    /// What the rows are (stores written before cell stores existed hold genes).
    #[serde(default)]
    pub items: StoreItems,
    /// A cell store's recipe: how its vectors were made from which gene store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cells: Option<CellOrigin>,
    /// sha256 of each file's size and two ends, by file name: the cheap check a large
    /// store gets on open (absent in stores written before it was recorded).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub file_ends_sha256: BTreeMap<String, String>,
}

/// What a store's rows are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreItems {
    /// One row per gene, keyed by symbol, with its profile text.
    #[default]
    Genes,
    /// One row per cell, keyed by cell id, with metadata columns.
    Cells,
}

/// How a cell store's vectors were made, so that new cells (a query to annotate) are
/// made the same way or refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellOrigin {
    /// The recipe's column name (`genept_w` or `genept_s`).
    pub method: String,
    /// The gene store the cell vectors were made from, as given.
    pub gene_store: String,
    /// That gene store's vectors checksum: a query must use the very same gene vectors.
    pub gene_store_vectors_sha256: String,
    /// GenePT-s: genes per cell sentence.
    pub top_genes: usize,
    /// GenePT-w: whether the mean gene vector was subtracted first.
    pub center_gene_vectors: bool,
    /// The metadata columns stored beside each cell (for example its obs labels).
    pub metadata: Vec<String>,
    /// Cells of the matrix left out because they express no gene the gene store has.
    pub cells_without_vector: usize,
}

/// The HNSW index's settings and file checksums.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexManifest {
    /// Always `hnsw`.
    pub kind: String,
    /// Distance: `1 - dot` on unit vectors (cosine distance).
    pub distance: String,
    /// Links per node (HNSW M).
    pub max_nb_connection: usize,
    /// Candidate list size while building.
    pub ef_construction: usize,
    /// sha256 of each index file, by file name.
    pub files: BTreeMap<String, String>,
}

impl StoreManifest {
    /// Reads and checks the format of a manifest.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let manifest: StoreManifest = serde_json::from_str(&text).map_err(|e| {
            Error::store(
                path,
                format!("manifest is not valid ({e}); rebuild the store"),
            )
        })?;
        if manifest.format != STORE_FORMAT {
            return Err(Error::store(
                path,
                format!(
                    "store format '{}' is not supported (this bftembed reads {STORE_FORMAT})",
                    manifest.format
                ),
            ));
        }
        Ok(manifest)
    }

    /// Writes the manifest atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::InvalidArgument(format!("manifest encoding: {e}")))?;
        crate::fsutil::atomic_write_bytes(path, &json)
    }
}
