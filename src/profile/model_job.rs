//! Writing gene profiles with a language model, resumably: each finished profile is
//! appended (and synced) to a journal beside the output, a re-run skips what the
//! journal holds, and a kill loses at most the gene in flight.

use super::generator::{GenerationSettings, GgufGenerator};
use super::refseq::SkippedGene;
use super::table::ProfileRecord;
use super::template::PromptTemplate;
use crate::error::{Error, Result};
use crate::fsutil::job_sibling;
use crate::genes::{GeneCatalog, GeneList};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A gene to profile.
#[derive(Debug, Clone)]
pub struct GeneToProfile {
    /// Approved symbol.
    pub symbol: String,
    /// HGNC approved name (may be empty).
    pub name: String,
    /// Entrez id.
    pub entrez_id: Option<u32>,
}

/// Resolves a gene list through the HGNC catalogue into the genes a model should
/// profile, once each; unknown, ambiguous and repeated entries come back as skipped.
pub fn genes_to_profile(
    list: &GeneList,
    catalog: &GeneCatalog,
) -> (Vec<GeneToProfile>, Vec<SkippedGene>) {
    let mut genes: Vec<GeneToProfile> = Vec::new();
    let mut skipped = Vec::new();
    let mut seen = HashSet::new();
    for entry in &list.entries {
        let reason = match catalog.resolve(&entry.symbol) {
            Ok(r) if seen.insert(r.gene.symbol.clone()) => {
                genes.push(GeneToProfile {
                    symbol: r.gene.symbol.clone(),
                    name: r.gene.name.clone(),
                    entrez_id: r.gene.entrez_id,
                });
                continue;
            }
            Ok(r) => format!("same gene as an earlier line ({})", r.gene.symbol),
            Err(e) => e.to_string(),
        };
        skipped.push(SkippedGene {
            line: entry.line,
            symbol: entry.symbol.clone(),
            reason,
        });
    }
    (genes, skipped)
}

#[derive(serde::Serialize, serde::Deserialize)]
struct JournalLine {
    symbol: String,
    entrez_id: Option<u32>,
    text: String,
}

/// The journal a job for `output` uses: its name hashes the model, template and
/// settings, so a changed job never reuses another's answers.
pub fn journal_path(
    output: &Path,
    model_sha256: &str,
    template: &PromptTemplate,
    settings: &GenerationSettings,
) -> PathBuf {
    let mut h = Sha256::new();
    h.update(model_sha256.as_bytes());
    h.update(format!("{template:?}{settings:?}").as_bytes());
    job_sibling(output, "journal", h, ".jsonl")
}

/// Profiles every gene, reusing the answers already in `journal`; returns the profiles
/// in the order of `genes`. `source` is recorded in each profile's `source` column.
pub fn profile_with_model(
    generator: &mut GgufGenerator,
    template: &PromptTemplate,
    settings: GenerationSettings,
    genes: &[GeneToProfile],
    journal: &Path,
    source: &str,
) -> Result<Vec<ProfileRecord>> {
    let mut done = read_journal(journal)?;
    let todo = genes
        .iter()
        .filter(|g| !done.contains_key(&g.symbol))
        .count();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(journal)
        .map_err(|e| Error::io(journal, e))?;
    let bar = crate::progress::items_bar(todo as u64, "profiling", "genes");
    for gene in genes {
        if done.contains_key(&gene.symbol) {
            continue;
        }
        let values = BTreeMap::from([("symbol", gene.symbol.clone()), ("name", gene.name.clone())]);
        let (system, user) = template.fill(&values);
        let text = generator.answer(&system, &user, settings)?;
        let line = JournalLine {
            symbol: gene.symbol.clone(),
            entrez_id: gene.entrez_id,
            text: text.clone(),
        };
        let mut json = serde_json::to_string(&line)
            .map_err(|e| Error::InvalidArgument(format!("journal encoding: {e}")))?;
        json.push('\n');
        file.write_all(json.as_bytes())
            .and_then(|_| file.sync_data())
            .map_err(|e| Error::io(journal, e))?;
        done.insert(gene.symbol.clone(), line);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(genes
        .iter()
        .filter_map(|g| done.get(&g.symbol))
        .map(|l| ProfileRecord {
            symbol: l.symbol.clone(),
            entrez_id: l.entrez_id,
            source: source.to_string(),
            text: l.text.clone(),
        })
        .collect())
}

/// Reads a journal; a last line cut short by a kill is ignored (it is redone).
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
        std::fs::write(path, format!("{complete}\n").trim_start())
            .map_err(|e| Error::io(path, e))?;
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
        done.insert(entry.symbol.clone(), entry);
    }
    Ok(done)
}
