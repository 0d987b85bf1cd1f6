//! Vectors with their HNSW graph, searched the same way whatever the rows are (genes or
//! cells): by the graph, or exactly as the reference the graph's recall is measured by.
//! Stores hold one; the scale benchmark builds one alone.

use super::exact::exact_top_k;
use super::index::{HnswIndex, IndexParams};
use super::open::SearchMode;
use crate::embed::Embeddings;
use crate::error::{Error, Result};

/// Unit vectors and the HNSW graph over them (one graph point per row).
pub struct VectorIndex {
    pub(crate) vectors: Embeddings,
    pub(crate) index: HnswIndex,
}

impl VectorIndex {
    /// Builds the graph over `vectors` (unit length: the distance is 1 - dot) with every
    /// rayon thread.
    pub fn build(vectors: Embeddings, params: IndexParams) -> Result<Self> {
        params.check()?;
        let index = HnswIndex::build(&vectors, params);
        Ok(VectorIndex { vectors, index })
    }

    /// The vectors.
    pub fn vectors(&self) -> &Embeddings {
        &self.vectors
    }

    /// The `k` rows nearest to a unit `query`, best first, as (row, cosine) pairs,
    /// leaving out `exclude` (the query's own row).
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        mode: SearchMode,
        exclude: Option<usize>,
    ) -> Result<Vec<(usize, f32)>> {
        if k == 0 {
            return Err(Error::InvalidArgument("k must be at least 1".into()));
        }
        if query.len() != self.vectors.dim() {
            return Err(Error::InvalidArgument(format!(
                "query has dimension {}, the store {}",
                query.len(),
                self.vectors.dim()
            )));
        }
        Ok(match mode {
            SearchMode::Exact => exact_top_k(&self.vectors, query, k, exclude),
            SearchMode::Hnsw { ef } => {
                let want = k + usize::from(exclude.is_some());
                self.index
                    .search(query, want, ef.max(want))
                    .into_iter()
                    .filter(|(row, _)| Some(*row) != exclude)
                    .take(k)
                    .map(|(row, dist)| (row, 1.0 - dist))
                    .collect()
            }
        })
    }

    /// The `k` rows nearest to row `row`, itself left out.
    pub(crate) fn neighbors_of_row(
        &self,
        row: usize,
        k: usize,
        mode: SearchMode,
    ) -> Result<Vec<(usize, f32)>> {
        if row >= self.vectors.len() {
            return Err(Error::InvalidArgument(format!(
                "row {row} is outside the store"
            )));
        }
        self.search(self.vectors.row(row), k, mode, Some(row))
    }
}
