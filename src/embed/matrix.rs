//! A dense row-major matrix of embeddings, one row per text.

/// Row-major `len x dim` embeddings.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    dim: usize,
    data: Vec<f32>,
}

impl Embeddings {
    /// Wraps row-major data; `data.len()` must be a multiple of `dim`.
    pub fn new(dim: usize, data: Vec<f32>) -> Self {
        assert!(
            dim > 0 && data.len().is_multiple_of(dim),
            "data is not a whole number of rows"
        );
        Embeddings { dim, data }
    }

    /// An empty matrix with `dim` columns.
    pub fn empty(dim: usize) -> Self {
        Embeddings::new(dim, Vec::new())
    }

    /// Number of columns.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.data.len() / self.dim
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// All values, row after row.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// Consumes the matrix, returning its row-major values.
    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }

    /// Appends the rows of `other` (same `dim`).
    pub fn extend(&mut self, other: &Embeddings) {
        assert_eq!(self.dim, other.dim, "dimension mismatch");
        self.data.extend_from_slice(&other.data);
    }
}
