//! Task files (`tasks/*.toml`): an id, a title, one table naming the task's kind with its
//! settings, and the probe's settings. Adding a task is adding a file; a typo in a key
//! is an error naming the key and its line.

use super::checks::{finite, key_line, Check};
use super::cv::{AnyTask, TaskRef};
use super::kinds::{
    CellTypeSpec, ExpressionResponseSpec, GeneClassSpec, GeneFamilySpec, GenePairSpec,
    GeneValueSpec, PerturbationSpec,
};
use super::probe::ProbeSpec;
use super::task::TaskContext;
use crate::error::{Error, Result};
use crate::profile::CardField;
use std::path::{Path, PathBuf};

/// One evaluation task as written in its file.
#[derive(Debug, Clone)]
pub struct TaskSpec {
    /// Short identifier used in reports.
    pub id: String,
    /// One line a reader understands.
    pub title: String,
    /// What is scored, and how.
    pub kind: TaskKind,
    /// The probe's settings.
    pub probe: ProbeSpec,
    /// The parts of a gene card the labels were taken from (`go_process` for GO
    /// classes, `groups` for HGNC groups): a store whose profile texts carry one of
    /// them is partly read, not known, and its row is marked so.
    pub label_sources: Vec<CardField>,
    /// The folder the task file is in; relative data paths start here.
    pub base: PathBuf,
}

/// The kinds of task, each read from its own table (`[gene_pairs]`, ...). A task file
/// holds exactly one of them.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Gene-pair classification (interaction or not).
    GenePairs(GenePairSpec),
    /// Gene classification into two classes.
    GeneClasses(GeneClassSpec),
    /// Gene classification into several named classes.
    GeneFamilies(GeneFamilySpec),
    /// Cell typing from cell embeddings built from gene vectors.
    CellTypes(CellTypeSpec),
    /// Predicting a genetic perturbation's response signature from its target gene.
    Perturbations(PerturbationSpec),
    /// Predicting each gene's expression response to a stimulus from its vector.
    ExpressionResponse(ExpressionResponseSpec),
    /// Predicting one number per gene (an essentiality or impact score) from its vector.
    GeneValues(GeneValueSpec),
}

impl TaskKind {
    /// The kind's behaviour: what it reads, how it splits, fits and scores.
    pub(crate) fn task(&self) -> &dyn AnyTask {
        match self {
            TaskKind::GenePairs(s) => s,
            TaskKind::GeneClasses(s) => s,
            TaskKind::GeneFamilies(s) => s,
            TaskKind::CellTypes(s) => s,
            TaskKind::Perturbations(s) => s,
            TaskKind::ExpressionResponse(s) => s,
            TaskKind::GeneValues(s) => s,
        }
    }

    /// Whether scoring the task embeds text with each store's encoder (GenePT-s cell
    /// sentences), so stores must be given with theirs.
    pub fn needs_text_encoder(&self) -> bool {
        self.task().needs_text_encoder()
    }

    /// The kind's table name in task files, as `gene_pairs`.
    pub fn table(&self) -> &'static str {
        self.task().table()
    }
}

impl TaskSpec {
    /// Reads and checks a task file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let file: super::spec_file::TaskFile<TaskKind> =
            toml::from_str(&text).map_err(|e| Error::bad_file(path, e.to_string()))?;
        let spec = TaskSpec {
            id: file.id,
            title: file.title,
            kind: file.kind,
            probe: file.probe,
            label_sources: file.label_sources,
            base: crate::fsutil::parent_dir(path),
        };
        check_numbers(&spec, &text, path)?;
        spec.kind
            .task()
            .validate()
            .map_err(|message| Error::bad_file(path, message))?;
        Ok(spec)
    }

    /// Every `*.toml` task in a folder, sorted by file name; a single file is read
    /// alone.
    pub fn read_all(path: &Path) -> Result<Vec<Self>> {
        if path.is_file() {
            return Ok(vec![Self::read(path)?]);
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| Error::io(path, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("toml"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(Error::bad_file(path, "no *.toml task files here"));
        }
        files.iter().map(|f| Self::read(f)).collect()
    }

    /// A data path from the task file, relative to the file's folder.
    pub fn data_path(&self, p: &Path) -> PathBuf {
        self.context().data_path(p)
    }

    /// What the kind needs from the file besides its table.
    pub(crate) fn context(&self) -> TaskContext<'_> {
        TaskContext {
            base: &self.base,
            probe: &self.probe,
        }
    }

    /// Which of the task's label sources a store's profile texts carry (empty: its
    /// score is evidence of knowledge, not of reading).
    pub fn label_text_in(&self, text_parts: &std::collections::BTreeSet<String>) -> Vec<String> {
        self.label_sources
            .iter()
            .map(|f| f.name().to_string())
            .filter(|name| text_parts.contains(name))
            .collect()
    }

    /// The task as the driver sees it.
    pub(crate) fn task_ref(&self) -> TaskRef<'_> {
        TaskRef {
            id: &self.id,
            context: self.context(),
        }
    }
}

/// Every number of `spec` checked against its range; the first out of range is an error
/// at its line of `text` (the file's contents).
fn check_numbers(spec: &TaskSpec, text: &str, path: &Path) -> Result<()> {
    for check in checks(spec) {
        if !check.ok {
            let message = format!(
                "[{}] {} = {}: {}",
                check.table, check.key, check.value, check.rule
            );
            // Inline tables and dotted keys have no `[table]` line to point at.
            return Err(match key_line(text, check.table, check.key) {
                Some(line) => Error::Parse {
                    path: path.to_path_buf(),
                    line,
                    message,
                },
                None => Error::bad_file(path, message),
            });
        }
    }
    Ok(())
}

/// The probe's numbers, then the kind's own.
fn checks(spec: &TaskSpec) -> Vec<Check> {
    let mut all = vec![
        finite(
            "probe",
            "alpha",
            spec.probe.alpha,
            spec.probe.alpha >= 0.0,
            "must be 0 or more",
        ),
        Check {
            table: "probe",
            key: "max_iterations",
            value: spec.probe.max_iterations.to_string(),
            ok: spec.probe.max_iterations >= 1,
            rule: "must be at least 1",
        },
    ];
    all.extend(spec.kind.task().checks());
    all
}
