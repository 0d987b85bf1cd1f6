//! Writing profiles with a language model, resumably: each finished batch is appended
//! (and synced) to a journal beside the output, a re-run skips what the journal holds,
//! and a kill loses at most the batch in flight.

use super::backend::{AnswerBackend, Question};
use super::fingerprint::{hash_parts, journal_parts, CodeIdentity};
use super::generator::GenerationSettings;
use super::subjects::{Subject, SubjectKind};
use super::table::ProfileRecord;
use super::template::PromptTemplate;
use crate::error::{Error, Result};
use crate::fsutil::job_sibling;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Parquet metadata key under which a model-written table records how it was made.
pub const GENERATION_METADATA_KEY: &str = "bftembed.generation";

#[derive(serde::Serialize, serde::Deserialize)]
struct JournalLine {
    key: String,
    entrez_id: Option<u32>,
    text: String,
    /// Hash of the question asked, so that an answer is reused only for the same
    /// question (a subject whose fields changed is asked again). Absent in lines
    /// written before it was recorded and in answers taken over from a finished table;
    /// those are reused by key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prompt: Option<String>,
}

fn prompt_hash(question: &Question) -> String {
    let mut h = Sha256::new();
    h.update(question.system.as_bytes());
    h.update([0u8]);
    h.update(question.user.as_bytes());
    format!("{:x}", h.finalize())
}

/// A profiling job: who answers, with which prompt and settings, about what kind of
/// subject.
pub struct ProfileJob<'a> {
    /// The model (local or remote).
    pub backend: &'a dyn AnswerBackend,
    /// The prompt template.
    pub template: &'a PromptTemplate,
    /// Decoding settings.
    pub settings: GenerationSettings,
    /// What is profiled.
    pub kind: SubjectKind,
}

impl ProfileJob<'_> {
    /// The journal this job uses for `output`: its name hashes bftembed's version, the
    /// backend's kernel, the model, template, settings and kind (see
    /// [`journal_parts`]), so a changed job, or the same job run by other code, never
    /// reuses another's answers.
    pub fn journal_path(&self, output: &Path) -> PathBuf {
        let parts = journal_parts(
            &self.code(),
            &self.backend.model_id(),
            &self.backend.model_fingerprint(),
            self.kind,
            self.template,
            &self.settings,
        );
        job_sibling(output, "journal", hash_parts(&parts), ".jsonl")
    }

    /// The code that writes this job's answers: this build and the backend's kernel.
    pub fn code(&self) -> CodeIdentity {
        CodeIdentity::current(&self.backend.kernel())
    }

    /// The question this job asks about `subject`.
    fn question(&self, subject: &Subject) -> Question {
        let values = subject
            .fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        let (system, user) = self.template.fill(&values);
        Question { system, user }
    }

    /// Takes over the answers of a finished table this same job wrote (same model,
    /// template and settings, by the table's metadata) into an empty journal, so that a
    /// later run over a changed list of subjects asks only the new ones. Returns how
    /// many answers were taken over (0 when the table is missing or was made otherwise).
    pub fn seed_journal(&self, table: &Path, journal: &Path) -> Result<usize> {
        if journal.exists() || !table.is_file() {
            return Ok(0);
        }
        let made_by: Vec<(String, String)> = self
            .metadata()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let metadata = super::table::read_profile_metadata(table)?;
        if !made_by.iter().all(|m| metadata.contains(m)) {
            return Ok(0);
        }
        let records = super::table::read_profiles(table)?;
        let mut lines = String::new();
        for r in &records {
            let line = JournalLine {
                key: r.symbol.clone(),
                entrez_id: r.entrez_id,
                text: r.text.clone(),
                prompt: None,
            };
            lines.push_str(
                &serde_json::to_string(&line)
                    .map_err(|e| Error::InvalidArgument(format!("journal encoding: {e}")))?,
            );
            lines.push('\n');
        }
        crate::fsutil::atomic_write_bytes(journal, lines.as_bytes())?;
        Ok(records.len())
    }

    /// The value of `source` in every profile this job writes: `MODEL:TEMPLATE-ID`.
    pub fn source(&self) -> String {
        format!("{}:{}", self.backend.model_id(), self.template.id)
    }

    /// How the profiles were made, as recorded in the table's metadata.
    pub fn metadata(&self) -> Vec<(&'static str, String)> {
        let s = &self.settings;
        let value = serde_json::json!({
            "kind": self.kind.label(),
            "backend": self.backend.backend_name(),
            "model": self.backend.model_id(),
            "model_fingerprint": self.backend.model_fingerprint(),
            "template_id": self.template.id,
            "template_system": self.template.system,
            "template_user": self.template.user,
            "max_new_tokens": s.max_new_tokens,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "seed": s.seed,
            "bftembed_version": env!("CARGO_PKG_VERSION"),
            "kernel": self.backend.kernel(),
        });
        vec![(GENERATION_METADATA_KEY, value.to_string())]
    }

    /// Profiles every subject, reusing the answers already in `journal`; returns the
    /// profiles in the order of `subjects`.
    pub fn run(&self, subjects: &[Subject], journal: &Path) -> Result<Vec<ProfileRecord>> {
        let mut done = read_journal(journal)?;
        let questions: HashMap<&str, Question> = subjects
            .iter()
            .map(|s| (s.key.as_str(), self.question(s)))
            .collect();
        let todo: Vec<&Subject> = subjects
            .iter()
            .filter(|s| match done.get(&s.key) {
                None => true,
                Some(line) => line
                    .prompt
                    .as_ref()
                    .is_some_and(|p| *p != prompt_hash(&questions[s.key.as_str()])),
            })
            .collect();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(journal)
            .map_err(|e| Error::io(journal, e))?;
        let label = format!("{}s", self.kind.label());
        let bar = crate::progress::items_bar(todo.len() as u64, "profiling", &label);
        for batch in todo.chunks(self.backend.batch_size()) {
            let questions: Vec<Question> = batch
                .iter()
                .map(|s| questions[s.key.as_str()].clone())
                .collect();
            let answers = self.backend.answer_batch(&questions, &self.settings)?;
            if answers.len() != batch.len() {
                return Err(Error::InvalidArgument(format!(
                    "the backend gave {} answers to {} questions",
                    answers.len(),
                    batch.len()
                )));
            }
            let mut lines = String::new();
            for ((subject, text), question) in batch.iter().zip(answers).zip(&questions) {
                let line = JournalLine {
                    key: subject.key.clone(),
                    entrez_id: subject.entrez_id,
                    text,
                    prompt: Some(prompt_hash(question)),
                };
                lines.push_str(
                    &serde_json::to_string(&line)
                        .map_err(|e| Error::InvalidArgument(format!("journal encoding: {e}")))?,
                );
                lines.push('\n');
                done.insert(subject.key.clone(), line);
            }
            file.write_all(lines.as_bytes())
                .and_then(|_| file.sync_data())
                .map_err(|e| Error::io(journal, e))?;
            bar.inc(batch.len() as u64);
        }
        bar.finish_and_clear();
        let source = self.source();
        Ok(subjects
            .iter()
            .filter_map(|s| done.get(&s.key))
            .map(|l| ProfileRecord {
                symbol: l.key.clone(),
                entrez_id: l.entrez_id,
                source: source.clone(),
                text: l.text.clone(),
            })
            .collect())
    }
}

/// Reads a journal; a last line cut short by a kill is dropped (it is redone).
fn read_journal(path: &Path) -> Result<HashMap<String, JournalLine>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(Error::io(path, e)),
    };
    let complete = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => "",
    };
    if complete.len() + 1 < text.len() {
        // Drop the torn tail so that appends start on a fresh line.
        let kept = if complete.is_empty() {
            String::new()
        } else {
            format!("{complete}\n")
        };
        crate::fsutil::atomic_write_bytes(path, kept.as_bytes())?;
    }
    let mut done = HashMap::new();
    for (i, line) in complete.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let entry: JournalLine = serde_json::from_str(line).map_err(|e| Error::Parse {
            path: path.to_path_buf(),
            line: i + 1,
            message: format!("not a journal entry ({e}); delete the file to start over"),
        })?;
        done.insert(entry.key.clone(), entry);
    }
    Ok(done)
}
