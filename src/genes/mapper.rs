//! Many names resolved once each: the names of a matrix's genes or a task file's, with
//! the case-only matches among them kept for the report.

use super::{CaseOnlyMatches, GeneCatalog};
use std::collections::HashMap;

/// Maps the gene names that task files and matrices use (often years old) to approved
/// HGNC symbols, each name once, counting the names that matched only by case.
pub struct SymbolMapper<'a> {
    catalog: &'a GeneCatalog,
    cache: HashMap<String, Option<String>>,
    case_only: CaseOnlyMatches,
}

impl<'a> SymbolMapper<'a> {
    /// A mapper over the HGNC catalogue.
    pub fn new(catalog: &'a GeneCatalog) -> Self {
        SymbolMapper {
            catalog,
            cache: HashMap::new(),
            case_only: Default::default(),
        }
    }

    /// The approved symbol, or `None` when the symbol is unknown or ambiguous.
    pub fn approved(&mut self, symbol: &str) -> Option<String> {
        if let Some(hit) = self.cache.get(symbol) {
            return hit.clone();
        }
        let resolved = self.catalog.resolve_quietly(symbol);
        if let Some(r) = resolved.filter(|r| r.case_only) {
            self.case_only.add(symbol, &r.gene.symbol);
        }
        let hit = resolved.map(|r| r.gene.symbol.clone());
        self.cache.insert(symbol.to_string(), hit.clone());
        hit
    }

    /// The names mapped so far that matched only when case was ignored.
    pub fn case_only(&self) -> &CaseOnlyMatches {
        &self.case_only
    }
}
