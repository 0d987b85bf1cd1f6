//! Long embedding runs that survive a kill: vectors are saved chunk by chunk in a
//! work folder beside the output, and a re-run of the same job reuses every finished
//! chunk. The folder's name carries a hash of bftembed's version, the model and the
//! texts, so a changed input or an upgrade never reuses stale vectors.

use super::matrix::Embeddings;
use super::text_encoder::TextEncoder;
use crate::error::{Error, Result};
use crate::fsutil::{atomic_write_bytes, job_sibling};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Texts per saved chunk.
pub const CHUNK_TEXTS: usize = 512;

/// The work folder a job for `output` with these texts uses. Its name also hashes
/// bftembed's version: the study keeps such folders as caches, and an encoder fix must
/// not reuse the old vectors.
pub fn work_dir_for(output: &Path, encoder: &dyn TextEncoder, texts: &[&str]) -> PathBuf {
    job_sibling(output, "partial", job_hasher(encoder, texts), "")
}

/// A folder under `root` for the vectors of `texts` by `encoder`, named by the same
/// hash as [`work_dir_for`]'s, for caches kept between runs (`eval`'s cell sentences):
/// [`embed_resumable`] into it reuses every chunk an earlier run saved.
pub fn cache_dir_for(root: &Path, encoder: &dyn TextEncoder, texts: &[&str]) -> PathBuf {
    let key = crate::fsutil::hex(&job_hasher(encoder, texts).finalize());
    root.join(&key[..32])
}

/// bftembed's version, everything that decides the encoder's vectors, and the texts.
fn job_hasher(encoder: &dyn TextEncoder, texts: &[&str]) -> Sha256 {
    let mut h = Sha256::new();
    let version = env!("CARGO_PKG_VERSION");
    h.update((version.len() as u64).to_le_bytes());
    h.update(version.as_bytes());
    // Weights, pooling, prompts and truncation (or the server and its model) change
    // the vectors as much as the texts do.
    for part in encoder.fingerprint_parts() {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    for t in texts {
        h.update((t.len() as u64).to_le_bytes());
        h.update(t.as_bytes());
    }
    h
}

/// Embeds `texts`, saving each finished chunk under `work_dir` and reusing chunks a
/// previous, interrupted run left there. The caller removes `work_dir` once the
/// final output is safely written.
pub fn embed_resumable(
    embedder: &dyn TextEncoder,
    texts: &[&str],
    work_dir: &Path,
) -> Result<Embeddings> {
    std::fs::create_dir_all(work_dir).map_err(|e| Error::io(work_dir, e))?;
    let dim = embedder.dim();
    let bar = crate::progress::items_bar(texts.len() as u64, "embedding", "texts");
    let mut all = Embeddings::empty(dim);
    for (c, chunk) in texts.chunks(CHUNK_TEXTS).enumerate() {
        let path = work_dir.join(format!("chunk-{c:05}.f32"));
        let expected_bytes = chunk.len() * dim * 4;
        let reused = match std::fs::read(&path) {
            Ok(bytes) if bytes.len() == expected_bytes => Some(Embeddings::new(
                dim,
                bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            )),
            _ => None,
        };
        let vectors = match reused {
            Some(v) => {
                bar.inc(chunk.len() as u64);
                v
            }
            None => {
                let v = embedder.embed_documents(chunk, Some(&bar))?;
                let bytes: Vec<u8> = v.as_slice().iter().flat_map(|x| x.to_le_bytes()).collect();
                atomic_write_bytes(&path, &bytes)?;
                v
            }
        };
        all.extend(&vectors);
    }
    bar.finish_and_clear();
    Ok(all)
}
