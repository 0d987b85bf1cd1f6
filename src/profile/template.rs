//! Prompt templates (`profiles/*.toml`): an id, a system line and a user message with
//! `{placeholder}` fields. Unknown placeholders are refused when the template is read.

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::Path;

use super::subjects::SubjectKind;

/// The gene template shipped in `profiles/gene.toml`.
pub const DEFAULT_GENE_TEMPLATE: &str = include_str!("../../profiles/gene.toml");
/// The cell-type template shipped in `profiles/cell_type.toml`.
pub const DEFAULT_CELL_TYPE_TEMPLATE: &str = include_str!("../../profiles/cell_type.toml");
/// The perturbation template shipped in `profiles/perturbation.toml`.
pub const DEFAULT_PERTURBATION_TEMPLATE: &str = include_str!("../../profiles/perturbation.toml");
/// The shipped gene-set naming template.
pub const DEFAULT_GENE_SET_TEMPLATE: &str = include_str!("../../profiles/gene_set.toml");

/// Placeholders a gene template may use.
pub const GENE_FIELDS: &[&str] = &["symbol", "name"];

/// A prompt template.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptTemplate {
    /// Recorded with every profile it produced.
    pub id: String,
    /// The system line (may be empty).
    #[serde(default)]
    pub system: String,
    /// The user message.
    pub user: String,
}

impl PromptTemplate {
    /// Parses a template; `origin` labels errors; `fields` are the allowed placeholders.
    pub fn parse(text: &str, origin: &Path, fields: &[&str]) -> Result<Self> {
        let template: PromptTemplate =
            toml::from_str(text).map_err(|e| Error::bad_file(origin, e.to_string()))?;
        for part in [&template.system, &template.user] {
            for name in placeholders(part) {
                if !fields.contains(&name.as_str()) {
                    return Err(Error::bad_file(
                        origin,
                        format!(
                            "unknown placeholder {{{name}}} (allowed: {})",
                            fields
                                .iter()
                                .map(|f| format!("{{{f}}}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(template)
    }

    /// Reads a template file.
    pub fn read(path: &Path, fields: &[&str]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, path, fields)
    }

    /// The shipped gene template.
    pub fn default_gene() -> Result<Self> {
        Self::default_for(SubjectKind::Gene)
    }

    /// The shipped template for a kind of subject.
    pub fn default_for(kind: SubjectKind) -> Result<Self> {
        let (text, name) = match kind {
            SubjectKind::Gene => (DEFAULT_GENE_TEMPLATE, "profiles/gene.toml"),
            SubjectKind::CellType => (DEFAULT_CELL_TYPE_TEMPLATE, "profiles/cell_type.toml"),
            SubjectKind::Perturbation => {
                (DEFAULT_PERTURBATION_TEMPLATE, "profiles/perturbation.toml")
            }
            SubjectKind::GeneSet => (DEFAULT_GENE_SET_TEMPLATE, "profiles/gene_set.toml"),
        };
        Self::parse(text, Path::new(name), kind.fields())
    }

    /// (system, user) with the placeholders filled in.
    pub fn fill(&self, values: &BTreeMap<&str, String>) -> (String, String) {
        let fill = |s: &str| {
            let mut out = s.to_string();
            for (k, v) in values {
                out = out.replace(&format!("{{{k}}}"), v);
            }
            out
        };
        (fill(&self.system), fill(&self.user))
    }
}

pub(super) fn placeholders(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end) => {
                out.push(after[..end].to_string());
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_template_fills_and_typos_are_refused() {
        let t = PromptTemplate::default_gene().unwrap();
        let values = BTreeMap::from([("symbol", "TP53".to_string()), ("name", String::new())]);
        assert_eq!(t.fill(&values).1, "tell me about gene TP53.");
        let err = PromptTemplate::parse(
            "id = \"x\"\nuser = \"about {sybmol}\"",
            Path::new("mine.toml"),
            GENE_FIELDS,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("mine.toml") && err.contains("{sybmol}"),
            "{err}"
        );
        let err = PromptTemplate::parse(
            "id = \"x\"\nuser = \"u\"\nsytem = \"s\"",
            Path::new("t.toml"),
            GENE_FIELDS,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("sytem"), "{err}");
    }

    #[test]
    fn shipped_templates_use_only_their_fields() {
        for kind in [
            SubjectKind::Gene,
            SubjectKind::CellType,
            SubjectKind::Perturbation,
            SubjectKind::GeneSet,
        ] {
            PromptTemplate::default_for(kind).unwrap();
        }
        let err = PromptTemplate::parse(
            "id = \"x\"\nuser = \"about {symbol}\"",
            Path::new("cells.toml"),
            SubjectKind::CellType.fields(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("{cell_type}"), "{err}");
    }
}
