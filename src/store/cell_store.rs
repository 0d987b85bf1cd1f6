//! Cell stores: the store design (Parquet table, HNSW graph, manifest) keyed by cell id,
//! with metadata columns (a cell's obs labels) instead of a gene's profile text, and the
//! recipe its vectors were made with, so new cells can be made comparable or refused.
//!
//! Table columns: `cell`, one nullable text column per metadata name, `vector`.

use super::build::{write_store, StoreContents, StoreModel};
use super::checks::{check_vectors, load_checked_index, open_manifest};
use super::index::IndexParams;
use super::manifest::{CellOrigin, StoreItems, StoreManifest, TABLE_FILE};
use super::open::SearchMode;
use super::search::VectorIndex;
use super::table::vectors_of;
use crate::embed::Embeddings;
use crate::error::{Error, Result};
use crate::io::parquet::{
    optional_strings, read_parquet, record_batch, strings, vector_column, vector_field,
    write_parquet,
};
use arrow::array::{ArrayRef, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The id column of a cell table.
pub const CELL_COLUMN: &str = "cell";

/// Named metadata columns, one value per cell (`None` where a cell has none).
pub type MetadataColumns = Vec<(String, Vec<Option<String>>)>;

/// The rows of a cell store, column by column.
#[derive(Debug, Clone)]
pub struct CellRows {
    /// Cell ids, unique.
    pub cells: Vec<String>,
    /// Metadata columns.
    pub metadata: MetadataColumns,
    /// One unit vector per cell.
    pub vectors: Embeddings,
}

impl CellRows {
    /// Refuses rows that cannot make a store: none, mismatched lengths, a repeated cell
    /// id, a metadata name used twice or taken by the table's own columns.
    fn check(&self) -> Result<()> {
        let n = self.cells.len();
        if n == 0 {
            return Err(Error::InvalidArgument("no cells to store".into()));
        }
        if self.vectors.len() != n || self.metadata.iter().any(|(_, v)| v.len() != n) {
            return Err(Error::InvalidArgument(format!(
                "{n} cells but {} vectors or a metadata column of another length",
                self.vectors.len()
            )));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(twice) = self.cells.iter().find(|c| !seen.insert(c.as_str())) {
            return Err(Error::InvalidArgument(format!(
                "cell id '{twice}' appears twice; a cell store holds one vector per cell"
            )));
        }
        let mut names = std::collections::HashSet::from([CELL_COLUMN, "vector"]);
        if let Some((name, _)) = self
            .metadata
            .iter()
            .find(|(m, _)| !names.insert(m.as_str()))
        {
            return Err(Error::InvalidArgument(format!(
                "metadata column '{name}' is repeated or clashes with the table's own \
                 columns ({CELL_COLUMN}, vector)"
            )));
        }
        Ok(())
    }
}

/// Builds a cell store at `dir` from cell rows and the recipe that made their vectors,
/// replacing any store there only once the new one is complete.
pub fn build_cell_store(
    dir: &Path,
    rows: &CellRows,
    origin: CellOrigin,
    model: &StoreModel,
    params: IndexParams,
) -> Result<CellStore> {
    params.check()?;
    rows.check()?;
    let origin = CellOrigin {
        metadata: rows.metadata.iter().map(|(m, _)| m.clone()).collect(),
        ..origin
    };
    let contents = StoreContents {
        vectors: &rows.vectors,
        model,
        items: StoreItems::Cells,
        cells: Some(origin),
    };
    write_store(dir, params, &contents, |table| {
        write_cell_table(table, rows)
    })?;
    CellStore::open(dir)
}

fn write_cell_table(path: &Path, rows: &CellRows) -> Result<()> {
    let mut fields = vec![Field::new(CELL_COLUMN, DataType::Utf8, false)];
    let mut columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from_iter_values(&rows.cells))];
    for (name, values) in &rows.metadata {
        fields.push(Field::new(name, DataType::Utf8, true));
        columns.push(Arc::new(StringArray::from(values.clone())));
    }
    let dim = rows.vectors.dim();
    fields.push(vector_field("vector", dim));
    columns.push(vector_column(dim, rows.vectors.as_slice(), path)?);
    let schema = Arc::new(Schema::new(fields));
    let batch = record_batch(schema.clone(), columns, path)?;
    write_parquet(path, schema, &[batch], &[])
}

fn read_cell_table(path: &Path, metadata_names: &[String]) -> Result<CellRows> {
    let contents = read_parquet(path)?;
    let mut cells = Vec::new();
    let mut metadata: MetadataColumns = metadata_names
        .iter()
        .map(|m| (m.clone(), Vec::new()))
        .collect();
    for batch in &contents.batches {
        cells.extend(strings(batch, CELL_COLUMN, path)?);
        for (name, values) in &mut metadata {
            values.extend(optional_strings(batch, name, path)?);
        }
    }
    let vectors = vectors_of(&contents, path)?;
    Ok(CellRows {
        cells,
        metadata,
        vectors,
    })
}

/// One cell found by a search.
#[derive(Debug, Clone, PartialEq)]
pub struct CellNeighbor {
    /// Row in the store.
    pub row: usize,
    /// Cell id.
    pub cell: String,
    /// Cosine similarity to the query.
    pub score: f32,
}

/// An opened, checked cell store.
pub struct CellStore {
    path: PathBuf,
    manifest: StoreManifest,
    origin: CellOrigin,
    cells: Vec<String>,
    metadata: MetadataColumns,
    by_id: HashMap<String, usize>,
    indexed: VectorIndex,
}

impl CellStore {
    /// Opens a cell store folder, checking its files against the manifest (see
    /// [`super::CheckDepth`] for how much); a gene store is refused.
    pub fn open(dir: &Path) -> Result<Self> {
        let (manifest, depth) = open_manifest(dir, StoreItems::Cells)?;
        let origin = manifest.cells.clone().ok_or_else(|| {
            Error::store(
                dir,
                "the manifest of this cell store lacks its recipe (cells)",
            )
        })?;
        let table = dir.join(TABLE_FILE);
        let rows = read_cell_table(&table, &origin.metadata)?;
        check_vectors(&table, &rows.vectors, &manifest, depth)?;
        let index = load_checked_index(dir, &manifest)?;
        let by_id = rows
            .cells
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), i))
            .collect();
        Ok(CellStore {
            path: dir.to_path_buf(),
            manifest,
            origin,
            cells: rows.cells,
            metadata: rows.metadata,
            by_id,
            indexed: VectorIndex {
                vectors: rows.vectors,
                index,
            },
        })
    }

    /// The store folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The manifest.
    pub fn manifest(&self) -> &StoreManifest {
        &self.manifest
    }

    /// How the cell vectors were made.
    pub fn origin(&self) -> &CellOrigin {
        &self.origin
    }

    /// Number of cells.
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// True when the store holds no cell.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.indexed.vectors.dim()
    }

    /// Cell ids in row order.
    pub fn cells(&self) -> &[String] {
        &self.cells
    }

    /// The row of a cell id (exact match).
    pub fn row_of(&self, cell: &str) -> Option<usize> {
        self.by_id.get(cell).copied()
    }

    /// The row of a cell id, or an error naming it (with the store's first ids as
    /// examples of what ids look like).
    pub fn require_row(&self, cell: &str) -> Result<usize> {
        self.row_of(cell).ok_or_else(|| {
            let examples: Vec<&str> = self.cells.iter().take(3).map(String::as_str).collect();
            Error::store(
                &self.path,
                format!(
                    "no cell '{cell}' in this store of {} cells (ids look like: {})",
                    self.len(),
                    examples.join(", ")
                ),
            )
        })
    }

    /// The vector of a row.
    pub fn vector(&self, row: usize) -> &[f32] {
        self.indexed.vectors.row(row)
    }

    /// All vectors.
    pub fn vectors(&self) -> &Embeddings {
        &self.indexed.vectors
    }

    /// The metadata columns, in table order.
    pub fn metadata(&self) -> &MetadataColumns {
        &self.metadata
    }

    /// One metadata column by name, or an error listing the columns there are.
    pub fn metadata_column(&self, name: &str) -> Result<&[Option<String>]> {
        self.metadata
            .iter()
            .find(|(m, _)| m == name)
            .map(|(_, v)| v.as_slice())
            .ok_or_else(|| {
                let names: Vec<&str> = self.metadata.iter().map(|(m, _)| m.as_str()).collect();
                Error::store(
                    &self.path,
                    format!(
                        "the cell store has no metadata column '{name}' (it has: {})",
                        if names.is_empty() {
                            "none".to_string()
                        } else {
                            names.join(", ")
                        }
                    ),
                )
            })
    }

    /// The `k` cells nearest to a unit query vector, best first.
    pub fn search_vector(
        &self,
        query: &[f32],
        k: usize,
        mode: SearchMode,
    ) -> Result<Vec<CellNeighbor>> {
        let hits = self.indexed.search(query, k, mode, None)?;
        Ok(self.named(hits))
    }

    /// The `k` cells nearest to the cell in `row`, itself left out, best first.
    pub fn neighbors_of_row(
        &self,
        row: usize,
        k: usize,
        mode: SearchMode,
    ) -> Result<Vec<CellNeighbor>> {
        let hits = self.indexed.neighbors_of_row(row, k, mode)?;
        Ok(self.named(hits))
    }

    fn named(&self, hits: Vec<(usize, f32)>) -> Vec<CellNeighbor> {
        hits.into_iter()
            .map(|(row, score)| CellNeighbor {
                row,
                cell: self.cells[row].clone(),
                score,
            })
            .collect()
    }
}
