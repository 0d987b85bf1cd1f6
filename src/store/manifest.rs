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
