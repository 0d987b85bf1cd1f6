//! The study's expensive stages, each cached: a model's answers (profiles or gene-set
//! names) through the profile stage's resumable job, and a store per profile table.

use super::cache::{fingerprint, is_current, mark};
use crate::embed::SentenceEmbedder;
use crate::error::Result;
use crate::fsutil::sha256_file;
use crate::llm::{generation_kernel, GgufPrecision};
use crate::models::ModelDir;
use crate::profile::{
    generation_parts, read_profiles, write_profiles_with_metadata, CodeIdentity,
    GenerationSettings, Generator, LocalBackend, ProfileJob, ProfileRecord, PromptTemplate,
    Subject, SubjectKind,
};
use crate::store::{embed_into_store, GeneStore, IndexParams};
use candle_core::Device;
use std::path::Path;

/// How a model is asked: template, decoding, batch and device.
pub struct AskSettings<'a> {
    /// The prompt.
    pub template: &'a PromptTemplate,
    /// Decoding.
    pub generation: GenerationSettings,
    /// Prompts generated together.
    pub batch_size: usize,
    /// Where the model runs.
    pub device: &'a Device,
}

/// The model's answers for `subjects`, written to `out` (a profile table). Reused when
/// `out` was made by the same bftembed version and kernel, model (by checksum),
/// template, settings and subjects (see [`answers_fingerprint`]);
/// otherwise generated through the profile stage's journal, so an interrupted run
/// resumes at the batch it stopped in and a changed list of subjects asks only about
/// the subjects not answered before.
pub fn answers(
    model: &ModelDir,
    subjects: &[Subject],
    kind: SubjectKind,
    ask: &AskSettings,
    out: &Path,
) -> Result<Vec<ProfileRecord>> {
    // Generator::load uses the default precision; the kernel is known before loading.
    let code = CodeIdentity::current(generation_kernel(ask.device, GgufPrecision::default()));
    let print = answers_fingerprint(
        &code,
        &model.weights_sha256,
        subjects,
        kind,
        ask.template,
        &ask.generation,
    );
    if is_current(out, &print) {
        return read_profiles(out);
    }
    let generator = Generator::load(model, ask.device)?;
    let backend = LocalBackend {
        generator,
        batch_size: ask.batch_size,
    };
    let job = ProfileJob {
        backend: &backend,
        template: ask.template,
        settings: ask.generation,
        kind,
    };
    // The journal stays after the table is written: a later run whose drawn genes
    // changed asks the model only about the new ones.
    let journal = job.journal_path(out);
    job.seed_journal(out, &journal)?;
    let records = job.run(subjects, &journal)?;
    write_profiles_with_metadata(out, &records, &job.metadata())?;
    mark(out, &print)?;
    Ok(records)
}

/// The stamp of a model's answers: bftembed's version and kernel, the model's weights
/// checksum, how it was asked, and every subject's key and template fields, all as
/// explicit `key=value` parts (see [`crate::profile::hash_parts`]).
pub fn answers_fingerprint(
    code: &CodeIdentity,
    model_sha256: &str,
    subjects: &[Subject],
    kind: SubjectKind,
    template: &PromptTemplate,
    generation: &GenerationSettings,
) -> String {
    let mut parts = vec!["study-answers".to_string()];
    parts.extend(code.parts());
    parts.push(format!("model_sha256={model_sha256}"));
    parts.extend(generation_parts(kind, template, generation));
    parts.push(format!("subjects={}", subjects.len()));
    for s in subjects {
        parts.push(format!("key={}", s.key));
        parts.push(format!("fields={}", s.fields.len()));
        // BTreeMap: the fields come in key order, the same on every run.
        for (k, v) in &s.fields {
            parts.push(format!("{k}={v}"));
        }
    }
    fingerprint(&parts)
}

/// The stamp of a store: bftembed's version, the profile table's checksum, and the
/// encoder (identifier, weights checksum, truncation length).
pub fn store_fingerprint(
    version: &str,
    table_sha256: &str,
    encoder_id: &str,
    encoder_sha256: &str,
    max_tokens: usize,
) -> String {
    fingerprint(&[
        "study-store",
        &format!("bftembed_version={version}"),
        &format!("table_sha256={table_sha256}"),
        &format!("encoder={encoder_id}"),
        &format!("encoder_sha256={encoder_sha256}"),
        &format!("max_tokens={max_tokens}"),
    ])
}

/// A store of `records` embedded at `dir`, reused when it was built by this version
/// of bftembed from the same profile table (by checksum) with the same encoder and
/// truncation.
pub fn store(
    embedder: &SentenceEmbedder,
    records: &[ProfileRecord],
    profiles_file: Option<&Path>,
    dir: &Path,
) -> Result<GeneStore> {
    let table = match profiles_file {
        Some(p) => sha256_file(p)?,
        None => fingerprint(
            &records
                .iter()
                .flat_map(|r| [r.symbol.as_str(), r.text.as_str()])
                .collect::<Vec<_>>(),
        ),
    };
    let print = store_fingerprint(
        env!("CARGO_PKG_VERSION"),
        &table,
        embedder.model_id(),
        embedder.weights_sha256(),
        embedder.settings().max_tokens,
    );
    if is_current(dir, &print) {
        if let Ok(store) = GeneStore::open(dir) {
            return Ok(store);
        }
    }
    let store = embed_into_store(embedder, records, dir, IndexParams::default())?;
    mark(dir, &print)?;
    Ok(store)
}
