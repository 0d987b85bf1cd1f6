//! Human gene names: the HGNC catalogue that resolves current, previous and alias
//! symbols (and Entrez ids) to one approved symbol, and gene-list files.

mod case_only;
mod catalog;
mod list;
mod mapper;

pub use case_only::CaseOnlyMatches;
pub use catalog::{suggest_from as suggest_symbols, Gene, GeneCatalog, MatchKind, Resolved};
pub use list::{read_gene_list, GeneList, GeneListEntry};
pub use mapper::SymbolMapper;
