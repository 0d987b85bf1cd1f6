//! The store stage: vectors and their texts in a Parquet table, an HNSW graph for fast
//! nearest-neighbour search, and a manifest that ties the two together.
//!
//! A store is a folder:
//! - `vectors.parquet`: symbol, entrez_id, source, model_id, text, vector (`FixedSizeList<f32>`);
//! - `index.hnsw.graph`, `index.hnsw.data`: the HNSW graph (hnsw_rs format);
//! - `manifest.json`: model id and sha256, dimension, count, creation time and the
//!   checksums of the vectors and of every file. A store whose files disagree with its
//!   manifest is refused with a message saying how to repair it.

mod build;
mod cell_store;
mod checks;
mod distance;
mod exact;
mod import;
mod index;
mod lookup;
mod manifest;
mod open;
mod random;
mod search;
mod table;

pub use build::{build_store, embed_into_store, reindex_store, StoreModel};
pub use cell_store::{
    build_cell_store, CellNeighbor, CellRows, CellStore, MetadataColumns, CELL_COLUMN,
};
pub use checks::{verify_store, CheckDepth, FULL_CHECK_BYTES};
pub use distance::{dot, UnitDot};
pub use import::{
    import_store, store_vectors, ImportReport, ImportSkip, IMPORTED_PREFIX, SOURCE_IMPORTED,
};
pub use index::IndexParams;
pub use lookup::resolve_row;
pub use manifest::{
    CellOrigin, IndexManifest, StoreItems, StoreManifest, MANIFEST_FILE, TABLE_FILE,
};
pub use open::{GeneStore, Neighbor, SearchMode, DEFAULT_EF};
pub use random::{random_store, RANDOM_PREFIX, SOURCE_RANDOM};
pub use search::VectorIndex;
