//! bftembed turns what a biomedical language model knows into gene vectors that
//! biologists can search and test.
//!
//! The pipeline runs one way, text to vectors to index and probes:
//! - [`profile`]: one descriptive text per gene (NCBI RefSeq summaries, or a model's own);
//! - [`embed`]: a sentence encoder turns texts into unit vectors;
//! - [`store`]: vectors and texts in Parquet, with an HNSW index for neighbour search;
//! - [`cells`]: cell vectors from gene vectors (GenePT-w, GenePT-s), out to Parquet and
//!   AnnData, and into cell stores;
//! - [`annotate`]: new cells labelled by their nearest cells in a labelled cell store;
//! - [`tasks`]: linfa probes on labelled biology, compared across stores in a report;
//! - [`train`]: the fine-tuning objectives (SFT, DFT, BFT, BFT-v3).
//!
//! Shared pieces: [`io`] (the file formats the stages read: `.h5ad`, expression
//! matrices, GMT, CSV/TSV, Parquet), [`llm`] (llama-family causal LMs for generation and
//! training), [`models`] (fetching and caching pretrained weights), [`genes`] (HGNC
//! symbol resolution and gene lists), [`rng`] (the one seeded generator), [`device`],
//! and the [`Error`] type. docs/ARCHITECTURE.md maps the code.
//!
//! Resolving what a user typed, and making the GenePT-style profile of a gene:
//!
//! ```
//! use bftembed::genes::GeneCatalog;
//! use bftembed::profile::RefseqSummaries;
//!
//! let catalog = GeneCatalog::embedded()?;
//! let gene = catalog.resolve("p53")?.gene;
//! assert_eq!(gene.symbol, "TP53");
//! let profiles = RefseqSummaries::embedded()?.all_profiles(&catalog);
//! let tp53 = profiles.records.iter().find(|r| r.symbol == "TP53").unwrap();
//! assert!(tp53.text.contains("tumor suppressor"));
//! # Ok::<(), bftembed::Error>(())
//! ```

#![warn(missing_docs)]

pub mod alloc_tuning;
pub(crate) mod amx;
pub mod annotate;
pub mod cells;
pub mod device;
pub mod embed;
pub mod error;
pub mod fsutil;
pub mod genes;
pub(crate) mod http;
pub mod io;
pub mod llm;
pub(crate) mod matmul;
pub mod models;
pub mod openai;
pub(crate) mod plot;
pub mod profile;
pub mod progress;
pub mod rng;
pub(crate) mod row_math;
pub mod serve;
pub(crate) mod simd;
pub mod store;
pub mod study;
pub mod tasks;
#[cfg(test)]
mod test_tensors;
pub mod train;

pub use error::{Error, Result};
