//! The factual check of a profile against the Gene Ontology: which GO process names and
//! which gene symbols it mentions, and which of those the gene's annotations support. A
//! fluent but ignorant profile names processes and genes too; only annotated ones count.

use crate::error::{Error, Result};
use crate::genes::GeneCatalog;
use crate::io::csv_table::CsvTable;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// GO biological-process names and each gene's annotated processes.
pub struct GoKnowledge {
    term_ids: Vec<String>,
    names: AhoCorasick,
    by_gene: HashMap<String, HashSet<u32>>,
    term_index: HashMap<String, u32>,
}

/// What one profile names and how much of it the annotations support.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct FactCheck {
    /// GO process names found in the text.
    pub terms_named: usize,
    /// Of those, processes the gene is annotated to (directly or via a descendant).
    pub terms_supported: usize,
    /// Other genes' approved symbols found in the text.
    pub genes_named: usize,
    /// Of those, genes sharing an annotated process with the profiled gene.
    pub genes_supported: usize,
}

impl GoKnowledge {
    /// Reads the term names (`go_id`, `term` columns; names of fewer than `min_words`
    /// words are not looked for) and the gene annotations (`symbol`, `go_id`).
    pub fn read(annotations: &Path, go_terms: &Path, min_words: usize) -> Result<Self> {
        let mut table = CsvTable::open(go_terms)?;
        let (id_col, name_col) = (table.column("go_id")?, table.column("term")?);
        let mut term_ids = Vec::new();
        let mut names = Vec::new();
        let mut term_index = HashMap::new();
        for record in table.records() {
            let record = record?;
            let id = record.get(id_col).unwrap_or("").trim().to_string();
            let name = record.get(name_col).unwrap_or("").trim().to_lowercase();
            if id.is_empty() || name.split_whitespace().count() < min_words.max(1) {
                continue;
            }
            term_index.insert(id.clone(), term_ids.len() as u32);
            term_ids.push(id);
            names.push(name);
        }
        if names.is_empty() {
            return Err(Error::bad_file(go_terms, "no GO term names"));
        }
        let names = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(&names)
            .map_err(|e| Error::bad_file(go_terms, format!("term names: {e}")))?;
        let mut table = CsvTable::open(annotations)?;
        let (sym_col, go_col) = (table.column("symbol")?, table.column("go_id")?);
        let mut by_gene: HashMap<String, HashSet<u32>> = HashMap::new();
        for record in table.records() {
            let record = record?;
            if let Some(&t) = term_index.get(record.get(go_col).unwrap_or("").trim()) {
                by_gene
                    .entry(record.get(sym_col).unwrap_or("").trim().to_string())
                    .or_default()
                    .insert(t);
            }
        }
        Ok(Self {
            term_ids,
            names,
            by_gene,
            term_index,
        })
    }

    /// GO ids of the process names in `text` (whole words, case-insensitive, longest
    /// match first), each once.
    pub fn terms_in(&self, text: &str) -> Vec<&str> {
        let bytes = text.as_bytes();
        let word = |i: usize| bytes.get(i).is_some_and(|b| b.is_ascii_alphanumeric());
        let mut seen = HashSet::new();
        self.names
            .find_iter(text)
            .filter(|m| !(word(m.end()) || m.start() > 0 && word(m.start() - 1)))
            .filter(|m| seen.insert(m.pattern().as_u32()))
            .map(|m| self.term_ids[m.pattern().as_usize()].as_str())
            .collect()
    }

    /// True when `symbol` is annotated to the term `go_id` (or to a descendant).
    pub fn annotated(&self, symbol: &str, go_id: &str) -> bool {
        match (self.by_gene.get(symbol), self.term_index.get(go_id)) {
            (Some(terms), Some(t)) => terms.contains(t),
            _ => false,
        }
    }

    /// True when two genes share an annotated process.
    pub fn share_process(&self, a: &str, b: &str) -> bool {
        match (self.by_gene.get(a), self.by_gene.get(b)) {
            (Some(x), Some(y)) => !x.is_disjoint(y),
            _ => false,
        }
    }

    /// Checks a profile of `symbol`: the processes and other genes it names, and how
    /// many of each its annotations support. Gene symbols must be written as approved
    /// (case-sensitive), so ordinary words are not taken for genes.
    pub fn check(&self, symbol: &str, text: &str, catalog: &GeneCatalog) -> FactCheck {
        let terms = self.terms_in(text);
        let mut genes = HashSet::new();
        for token in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
            let token = token.trim_matches('-');
            if token.len() < 2
                || token == symbol
                || !token.chars().any(|c| c.is_ascii_uppercase())
                || token.chars().any(|c| c.is_ascii_lowercase())
            {
                continue;
            }
            if catalog.by_symbol(token).is_some_and(|g| g.symbol == token) {
                genes.insert(token.to_string());
            }
        }
        FactCheck {
            terms_named: terms.len(),
            terms_supported: terms.iter().filter(|t| self.annotated(symbol, t)).count(),
            genes_named: genes.len(),
            genes_supported: genes
                .iter()
                .filter(|g| self.share_process(symbol, g))
                .count(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn knowledge() -> (tempfile::TempDir, GoKnowledge) {
        let dir = tempfile::tempdir().unwrap();
        let terms = dir.path().join("terms.tsv");
        std::fs::write(
            &terms,
            "go_id\tontology\tterm\tdefinition\nGO:1\tBP\tDNA repair\tx\nGO:2\tBP\tapoptotic process\tx\n\
             GO:3\tBP\tgrowth\tx\nGO:4\tBP\tdouble-strand break repair\tx\n",
        )
        .unwrap();
        let ann = dir.path().join("ann.tsv");
        std::fs::write(
            &ann,
            "symbol\tgo_id\tannotation\nBRCA1\tGO:1\tdirect\nBRCA1\tGO:4\tdirect\nRAD51\tGO:4\tdirect\n\
             TP53\tGO:2\tdirect\n",
        )
        .unwrap();
        let k = GoKnowledge::read(&ann, &terms, 2).unwrap();
        (dir, k)
    }

    #[test]
    fn names_are_found_as_whole_words_and_checked_against_annotations() {
        let (_d, k) = knowledge();
        let catalog = GeneCatalog::embedded().unwrap();
        let text = "BRCA1 acts in DNA Repair and double-strand break repair with RAD51; \
                    it also regulates apoptotic processes and growth, like TP53. DNA repairs.";
        let found = k.terms_in(text);
        assert_eq!(
            found,
            vec!["GO:1", "GO:4"],
            "plural and one-word names skipped"
        );
        let c = k.check("BRCA1", text, &catalog);
        assert_eq!(c.terms_named, 2);
        assert_eq!(c.terms_supported, 2);
        assert_eq!(c.genes_named, 2, "RAD51 and TP53, not BRCA1 itself");
        assert_eq!(
            c.genes_supported, 1,
            "RAD51 shares double-strand break repair"
        );
    }
}
