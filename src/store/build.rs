//! Writing a store folder atomically: everything is written into a staging folder
//! beside the target, which then replaces the target in one rename.

use super::index::{index_files, HnswIndex, IndexParams};
use super::manifest::{IndexManifest, StoreManifest, MANIFEST_FILE, STORE_FORMAT, TABLE_FILE};
use super::open::GeneStore;
use super::table::{read_table, write_table};
use crate::embed::{embed_resumable, work_dir_for, Embeddings, RemoteRecord, TextEncoder};
use crate::error::{Error, Result};
use crate::fsutil::{parent_dir, sha256_f32, sha256_file, unix_now};
use crate::profile::ProfileRecord;
use std::collections::BTreeMap;
use std::path::Path;

/// The embedding model a store's vectors came from.
#[derive(Debug, Clone)]
pub struct StoreModel {
    /// Registry name or folder path.
    pub id: String,
    /// sha256 of its weights file.
    pub sha256: String,
    /// How it pooled and prompted (a local encoder).
    pub encoder: Option<crate::embed::EncoderRecord>,
    /// The server and model that embedded the texts (an OpenAI-compatible server).
    pub remote: Option<RemoteRecord>,
}

impl StoreModel {
    /// What a store built with `encoder` records about it.
    pub fn of(encoder: &dyn TextEncoder) -> Self {
        StoreModel {
            id: encoder.model_id().to_string(),
            sha256: encoder.weights_sha256().to_string(),
            encoder: encoder.record(),
            remote: encoder.remote(),
        }
    }
}

/// Builds a store at `dir` from profiles and their (unit) vectors, replacing any store
/// there only once the new one is complete.
pub fn build_store(
    dir: &Path,
    records: &[ProfileRecord],
    vectors: &Embeddings,
    model: &StoreModel,
    params: IndexParams,
) -> Result<GeneStore> {
    params.check()?;
    if records.len() != vectors.len() {
        return Err(Error::InvalidArgument(format!(
            "{} profiles but {} vectors",
            records.len(),
            vectors.len()
        )));
    }
    if records.is_empty() {
        return Err(Error::InvalidArgument("no profiles to store".into()));
    }
    let mut seen = std::collections::HashSet::new();
    for r in records {
        if !seen.insert(r.symbol.to_uppercase()) {
            return Err(Error::InvalidArgument(format!(
                "symbol {} appears twice in the profiles; a store holds one vector per gene",
                r.symbol
            )));
        }
    }
    let parent = parent_dir(dir);
    std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
    let staging = tempfile::Builder::new()
        .prefix(".bftembed-store-")
        .tempdir_in(&parent)
        .map_err(|e| Error::io(&parent, e))?;
    let stage = staging.path();
    write_table(&stage.join(TABLE_FILE), records, vectors, &model.id)?;
    let index = HnswIndex::build(vectors, params);
    index.save(stage)?;
    let manifest = StoreManifest {
        format: STORE_FORMAT.to_string(),
        bftembed_version: env!("CARGO_PKG_VERSION").to_string(),
        model_id: model.id.clone(),
        model_sha256: model.sha256.clone(),
        dim: vectors.dim(),
        count: vectors.len(),
        created_unix: unix_now(),
        vectors_sha256: sha256_f32(vectors.as_slice()),
        table_sha256: sha256_file(&stage.join(TABLE_FILE))?,
        index: index_manifest(stage, params)?,
        encoder: model.encoder.clone(),
        remote: model.remote.clone(),
    };
    manifest.write(&stage.join(MANIFEST_FILE))?;
    replace_dir(staging, dir)?;
    GeneStore::open(dir)
}

/// Embeds the profiles' texts and builds a store from them at `dir`. The embedding
/// resumes from the chunks an interrupted run left beside `dir`, which are removed once
/// the store is complete.
pub fn embed_into_store(
    embedder: &dyn TextEncoder,
    records: &[ProfileRecord],
    dir: &Path,
    params: IndexParams,
) -> Result<GeneStore> {
    params.check()?;
    let texts: Vec<&str> = records.iter().map(|r| r.text.as_str()).collect();
    let work = work_dir_for(dir, embedder, &texts);
    if work.exists() {
        eprintln!("resuming from {}", work.display());
    }
    let vectors = embed_resumable(embedder, &texts, &work)?;
    let store = build_store(dir, records, &vectors, &StoreModel::of(embedder), params)?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(store)
}

/// Rebuilds a store's HNSW index from its own vectors (after the index was lost or
/// damaged, or to change its settings). The table must still match the manifest.
pub fn reindex_store(dir: &Path, params: IndexParams) -> Result<GeneStore> {
    params.check()?;
    let mut manifest = StoreManifest::read(&dir.join(MANIFEST_FILE))?;
    let table_path = dir.join(TABLE_FILE);
    if sha256_file(&table_path)? != manifest.table_sha256 {
        return Err(Error::store(
            &table_path,
            "the vector table does not match the manifest; the store cannot be repaired, build it again",
        ));
    }
    let rows = read_table(&table_path)?;
    let index = HnswIndex::build(&rows.vectors, params);
    let staging = tempfile::Builder::new()
        .prefix(".bftembed-index-")
        .tempdir_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    index.save(staging.path())?;
    manifest.index = index_manifest(staging.path(), params)?;
    for name in index_files() {
        let to = dir.join(&name);
        std::fs::rename(staging.path().join(&name), &to).map_err(|e| Error::io(&to, e))?;
    }
    manifest.write(&dir.join(MANIFEST_FILE))?;
    GeneStore::open(dir)
}

fn index_manifest(dir: &Path, params: IndexParams) -> Result<IndexManifest> {
    let mut files = BTreeMap::new();
    for name in index_files() {
        files.insert(name.clone(), sha256_file(&dir.join(&name))?);
    }
    Ok(IndexManifest {
        kind: "hnsw".into(),
        distance: "1 - dot (unit vectors: cosine distance)".into(),
        max_nb_connection: params.max_nb_connection,
        ef_construction: params.ef_construction,
        files,
    })
}

/// Moves a finished staging folder to `dir`, replacing an older store there.
fn replace_dir(staging: tempfile::TempDir, dir: &Path) -> Result<()> {
    let staged = staging.keep();
    if dir.exists() {
        let parent = parent_dir(dir);
        let old = tempfile::Builder::new()
            .prefix(".bftembed-old-")
            .tempdir_in(&parent)
            .map_err(|e| Error::io(&parent, e))?
            .keep();
        let old_store = old.join("store");
        std::fs::rename(dir, &old_store).map_err(|e| Error::io(dir, e))?;
        std::fs::rename(&staged, dir).map_err(|e| Error::io(dir, e))?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&staged, dir).map_err(|e| Error::io(dir, e))?;
    }
    Ok(())
}
