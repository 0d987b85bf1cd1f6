//! The study's expensive stages, each cached: a model's answers (profiles or gene-set
//! names) through the profile stage's resumable job, and a store per profile table.

use super::cache::{fingerprint, is_current, mark};
use crate::embed::SentenceEmbedder;
use crate::error::Result;
use crate::fsutil::sha256_file;
use crate::models::ModelDir;
use crate::profile::{
    read_profiles, write_profiles_with_metadata, GenerationSettings, Generator, LocalBackend,
    ProfileJob, ProfileRecord, PromptTemplate, Subject, SubjectKind,
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
/// `out` was made by the same model (by checksum), template, settings and subjects;
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
    let keys: Vec<&str> = subjects.iter().map(|s| s.key.as_str()).collect();
    let fields = format!(
        "{:?}",
        subjects.iter().map(|s| &s.fields).collect::<Vec<_>>()
    );
    let print = fingerprint(&[
        &model.weights_sha256,
        &format!("{:?}", ask.template),
        &format!("{:?}", ask.generation),
        kind.label(),
        &keys.join("\n"),
        &fields,
    ]);
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

/// A store of `records` embedded at `dir`, reused when it was built from the same
/// profile table (by checksum) with the same encoder.
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
    let print = fingerprint(&[&table, embedder.model_id(), embedder.weights_sha256()]);
    if is_current(dir, &print) {
        if let Ok(store) = GeneStore::open(dir) {
            return Ok(store);
        }
    }
    let store = embed_into_store(embedder, records, dir, IndexParams::default())?;
    mark(dir, &print)?;
    Ok(store)
}
