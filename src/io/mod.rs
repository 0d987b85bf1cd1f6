//! Readers and writers for the file formats the stages share, each with errors that
//! name the file (and the line, where the fault is on one).
//!
//! - [`anndata`]: AnnData `.h5ad` files (matrix, `obs`, `var`);
//! - [`anndata_edit`]: vectors (`obsm`) and per-cell columns (`obs`) into a copy of an `.h5ad`;
//! - [`expression`]: expression matrices from 10x MatrixMarket folders and dense tables;
//! - [`matrix_source`]: which of those readers a matrix file needs, and its values;
//! - [`matrix_stream`]: a matrix read a window of cells at a time (every reader is one);
//! - [`gmt`]: gene-set files (GMT);
//! - [`csv_table`]: CSV/TSV label and metadata tables, columns found by name;
//! - [`tsv`]: the shipped tab-separated data files;
//! - [`parquet`]: Arrow record batches as Parquet files;
//! - [`vectors`]: named vectors from and for other tools (CSV/TSV, Parquet, .npy, pickle).

pub mod anndata;
pub mod anndata_edit;
mod anndata_rows;
pub mod csv_table;
pub mod expression;
pub mod gmt;
mod matrix_market;
pub mod matrix_source;
pub mod matrix_stream;
pub mod parquet;
pub mod tsv;
pub mod vectors;

pub use anndata::H5ad;
pub use expression::ExpressionMatrix;
pub use gmt::{read_gmt, GeneSet};
pub use matrix_market::stream_matrix_market;
pub use matrix_source::{MatrixSource, MatrixValues};
pub use matrix_stream::{CellRow, CellWindow, MatrixStream};
