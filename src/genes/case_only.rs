//! Names that found a human gene only by writing in lower case letters the human symbol
//! capitalises (`Cd4` for CD4, `Gapdh` for GAPDH): mouse and rat symbols look like
//! that, so every command that resolves genes counts them and shows examples, and a
//! mouse dataset is never read as human unseen.

use super::catalog::GeneCatalog;
use super::list::GeneList;

/// How many examples a report shows.
const EXAMPLES: usize = 5;

/// The case-only matches of one command's input, counted once per name.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CaseOnlyMatches {
    /// Distinct names matched by case only.
    pub count: usize,
    /// The first few, as (name as given, approved symbol).
    pub examples: Vec<(String, String)>,
}

impl CaseOnlyMatches {
    /// Records that `query` matched `symbol` only when case was ignored.
    pub fn add(&mut self, query: &str, symbol: &str) {
        self.count += 1;
        if self.examples.len() < EXAMPLES {
            self.examples.push((query.to_string(), symbol.to_string()));
        }
    }

    /// The case-only matches among a gene list's entries.
    pub fn in_list(list: &GeneList, catalog: &GeneCatalog) -> Self {
        let mut found = CaseOnlyMatches::default();
        for entry in &list.entries {
            if let Some(hit) = catalog.resolve_quietly(&entry.symbol) {
                if hit.case_only {
                    found.add(&entry.symbol, &hit.gene.symbol);
                }
            }
        }
        found
    }

    /// One line for the user, or `None` when every name matched with its own case.
    pub fn warning(&self, what: &str) -> Option<String> {
        if self.count == 0 {
            return None;
        }
        let examples: Vec<String> = self
            .examples
            .iter()
            .map(|(q, s)| format!("{q} -> {s}"))
            .collect();
        Some(format!(
            "{} {what} matched a human HGNC gene only when case is ignored ({}{}); mouse and rat symbols look like this, and bftembed's genes are human",
            self.count,
            examples.join(", "),
            if self.count > examples.len() { ", ..." } else { "" }
        ))
    }
}
