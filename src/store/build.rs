//! Writing a store folder atomically: everything is written into a staging folder
//! beside the target, which then replaces the target in one rename.

use super::checks::{check_vectors, file_ends, CheckDepth};
use super::index::{index_files, HnswIndex, IndexParams};
use super::manifest::{
    CellOrigin, IndexManifest, StoreItems, StoreManifest, MANIFEST_FILE, STORE_FORMAT, TABLE_FILE,
};
use super::open::GeneStore;
use super::table::{read_vector_column, write_table};
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

    /// The model a gene store's vectors came from, for a store derived from it (a cell
    /// store of its GenePT vectors).
    pub fn of_store(store: &GeneStore) -> Self {
        let manifest = store.manifest();
        StoreModel {
            id: manifest.model_id.clone(),
            sha256: manifest.model_sha256.clone(),
            encoder: manifest.encoder.clone(),
            remote: manifest.remote.clone(),
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
    let contents = StoreContents {
        vectors,
        model,
        items: StoreItems::Genes,
        cells: None,
    };
    write_store(dir, params, &contents, |table| {
        write_table(table, records, vectors, &model.id)
    })?;
    GeneStore::open(dir)
}

/// What a new store's manifest records besides the checksums of its files.
pub(crate) struct StoreContents<'a> {
    /// The vectors, in table row order.
    pub(crate) vectors: &'a Embeddings,
    /// The model behind them.
    pub(crate) model: &'a StoreModel,
    /// Genes or cells.
    pub(crate) items: StoreItems,
    /// A cell store's recipe.
    pub(crate) cells: Option<CellOrigin>,
}

/// Writes a store folder at `dir`: the table (by `write_table`, given the path to write),
/// the HNSW index and the manifest, all in a staging folder beside `dir` that replaces
/// it in one rename once complete.
pub(crate) fn write_store(
    dir: &Path,
    params: IndexParams,
    contents: &StoreContents,
    write_table: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let parent = parent_dir(dir);
    std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
    let staging = tempfile::Builder::new()
        .prefix(".bftembed-store-")
        .tempdir_in(&parent)
        .map_err(|e| Error::io(&parent, e))?;
    let stage = staging.path();
    write_table(&stage.join(TABLE_FILE))?;
    let index = HnswIndex::build(contents.vectors, params);
    index.save(stage)?;
    let (vectors, model) = (contents.vectors, contents.model);
    let mut manifest = StoreManifest {
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
        items: contents.items,
        cells: contents.cells.clone(),
        file_ends_sha256: Default::default(),
    };
    manifest.file_ends_sha256 = file_ends(stage, &manifest)?;
    manifest.write(&stage.join(MANIFEST_FILE))?;
    replace_dir(staging, dir)
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
/// damaged, or to change its settings), for a gene or a cell store alike. The table
/// must still match the manifest. Returns the new manifest.
pub fn reindex_store(dir: &Path, params: IndexParams) -> Result<StoreManifest> {
    params.check()?;
    let mut manifest = StoreManifest::read(&dir.join(MANIFEST_FILE))?;
    let table_path = dir.join(TABLE_FILE);
    if !table_path.is_file() || sha256_file(&table_path)? != manifest.table_sha256 {
        return Err(Error::store(
            &table_path,
            "the vector table is missing or does not match the manifest; the store cannot \
             be repaired, build it again",
        ));
    }
    let vectors = read_vector_column(&table_path)?;
    check_vectors(&table_path, &vectors, &manifest, CheckDepth::Full)?;
    let index = HnswIndex::build(&vectors, params);
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
    manifest.file_ends_sha256 = file_ends(dir, &manifest)?;
    manifest.write(&dir.join(MANIFEST_FILE))?;
    Ok(manifest)
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
