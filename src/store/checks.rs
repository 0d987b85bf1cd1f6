//! The checks a store's files pass before they are used.
//!
//! A store up to [`FULL_CHECK_BYTES`] is checked in full on every open (every file's
//! sha256 and the decoded vectors' checksum: well under a second for a gene store). A
//! larger one (a million-cell store is gigabytes) gets the cheap check on open: each
//! file's size and the sha256 of its two ends, where Parquet keeps its footer and
//! hnsw_rs its header; `bftembed verify` runs the full check on demand.

use super::index::HnswIndex;
use super::manifest::{StoreItems, StoreManifest, TABLE_FILE};
use crate::embed::Embeddings;
use crate::error::{Error, Result};
use crate::fsutil::{sha256_f32, sha256_file, sha256_file_ends};
use std::path::Path;

/// Stores whose files together exceed this get the cheap check on open (the
/// environment variable `BFTEMBED_FULL_CHECK_BYTES` sets another limit: a huge one makes
/// every open a full check, 0 makes every open cheap).
pub const FULL_CHECK_BYTES: u64 = 256 << 20;

/// How much of a store to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckDepth {
    /// Sizes and both ends of every file.
    Quick,
    /// Every byte of every file, and the decoded vectors.
    Full,
}

/// The depth an open uses: full for small stores and for stores whose manifest predates
/// the end checksums, quick otherwise.
pub(crate) fn depth_on_open(dir: &Path, manifest: &StoreManifest) -> CheckDepth {
    let total: u64 = store_files(manifest)
        .filter_map(|name| std::fs::metadata(dir.join(name)).ok())
        .map(|m| m.len())
        .sum();
    let limit = std::env::var("BFTEMBED_FULL_CHECK_BYTES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(FULL_CHECK_BYTES);
    if total > limit && !manifest.file_ends_sha256.is_empty() {
        CheckDepth::Quick
    } else {
        CheckDepth::Full
    }
}

/// The table and the index files, by name.
fn store_files(manifest: &StoreManifest) -> impl Iterator<Item = &str> {
    std::iter::once(TABLE_FILE).chain(manifest.index.files.keys().map(String::as_str))
}

/// Checks every file the manifest lists (the table, then the index files) at `depth`,
/// before any is parsed: a damaged file is reported as such, with the way to repair it,
/// rather than as whatever the parser trips over.
pub(crate) fn check_files(dir: &Path, manifest: &StoreManifest, depth: CheckDepth) -> Result<()> {
    for name in store_files(manifest) {
        let path = dir.join(name);
        let repair = if name == TABLE_FILE {
            "build the store again".to_string()
        } else {
            format!(
                "rebuild it with `bftembed reindex --store {}`",
                dir.display()
            )
        };
        if !path.is_file() {
            return Err(Error::store(
                &path,
                format!("the file is missing; {repair}"),
            ));
        }
        let matches = match depth {
            CheckDepth::Full => {
                let expected = if name == TABLE_FILE {
                    &manifest.table_sha256
                } else {
                    &manifest.index.files[name]
                };
                &sha256_file(&path)? == expected
            }
            CheckDepth::Quick => {
                manifest.file_ends_sha256.get(name) == Some(&sha256_file_ends(&path)?)
            }
        };
        if !matches {
            return Err(Error::store(
                &path,
                format!("the file does not match the manifest (truncated or changed); {repair}"),
            ));
        }
    }
    Ok(())
}

/// Checks the decoded table against the manifest: its shape always, its vectors'
/// checksum at full depth (a table that parses can still hold other vectors).
pub(crate) fn check_vectors(
    table_path: &Path,
    vectors: &Embeddings,
    manifest: &StoreManifest,
    depth: CheckDepth,
) -> Result<()> {
    if vectors.len() != manifest.count || vectors.dim() != manifest.dim {
        return Err(Error::store(
            table_path,
            format!(
                "holds {} vectors of dimension {}, the manifest says {} of {}",
                vectors.len(),
                vectors.dim(),
                manifest.count,
                manifest.dim
            ),
        ));
    }
    if depth == CheckDepth::Full && sha256_f32(vectors.as_slice()) != manifest.vectors_sha256 {
        return Err(Error::store(
            table_path,
            "the vectors' checksum does not match the manifest; build the store again",
        ));
    }
    Ok(())
}

/// The HNSW index, which must hold one point per table row (search results are rows).
/// hnsw_rs panics on some malformed files; after a quick check such a file can reach
/// it, so a panic while loading is caught and reported as a damaged index.
pub(crate) fn load_checked_index(dir: &Path, manifest: &StoreManifest) -> Result<HnswIndex> {
    let repair = format!(
        "run `bftembed verify --store {0}`, or rebuild the index with `bftembed reindex --store {0}`",
        dir.display()
    );
    let index = std::panic::catch_unwind(|| HnswIndex::load(dir))
        .map_err(|_| Error::store(dir, format!("the HNSW index is damaged; {repair}")))??;
    if index.len() != manifest.count {
        return Err(Error::store(
            dir,
            format!(
                "the index holds {} points but the table {}; {repair}",
                index.len(),
                manifest.count
            ),
        ));
    }
    Ok(index)
}

/// The two-ends checksum of every file, for the manifest.
pub(crate) fn file_ends(
    dir: &Path,
    manifest: &StoreManifest,
) -> Result<std::collections::BTreeMap<String, String>> {
    store_files(manifest)
        .map(|name| Ok((name.to_string(), sha256_file_ends(&dir.join(name))?)))
        .collect()
}

/// The first steps of opening a store of `items`: the folder and its manifest, a store
/// of the other kind refused, and every file checked at the depth the open uses.
pub(crate) fn open_manifest(dir: &Path, items: StoreItems) -> Result<(StoreManifest, CheckDepth)> {
    if !dir.is_dir() {
        let build = match items {
            StoreItems::Genes => "bftembed embed --profiles P.parquet --out STORE",
            StoreItems::Cells => "bftembed cells --matrix M --store-out STORE",
        };
        return Err(Error::store(
            dir,
            format!("no such store folder (build one with `{build}`)"),
        ));
    }
    let manifest = StoreManifest::read(&dir.join(super::manifest::MANIFEST_FILE))?;
    if manifest.items != items {
        let (is, wanted) = match manifest.items {
            StoreItems::Genes => (
                "a gene store",
                "a cell store (`bftembed cells --store-out`)",
            ),
            StoreItems::Cells => ("a cell store", "a gene store"),
        };
        return Err(Error::store(
            dir,
            format!("this is {is}; the command needs {wanted}"),
        ));
    }
    let depth = depth_on_open(dir, &manifest);
    check_files(dir, &manifest, depth)?;
    Ok((manifest, depth))
}

/// Checks every byte of a store, gene or cell alike: each file's sha256, the decoded
/// vectors' checksum and the index's point count. Returns the manifest it checked
/// against; the error names the first file that fails and how to repair it.
pub fn verify_store(dir: &Path) -> Result<StoreManifest> {
    let manifest = StoreManifest::read(&dir.join(super::manifest::MANIFEST_FILE))?;
    check_files(dir, &manifest, CheckDepth::Full)?;
    let table = dir.join(TABLE_FILE);
    let vectors = super::table::read_vector_column(&table)?;
    check_vectors(&table, &vectors, &manifest, CheckDepth::Full)?;
    load_checked_index(dir, &manifest)?;
    Ok(manifest)
}
