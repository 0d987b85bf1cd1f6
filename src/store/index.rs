//! The HNSW graph over a store's vectors (hnsw_rs), built, saved and reloaded.

use super::distance::UnitDot;
use crate::embed::Embeddings;
use crate::error::{Error, Result};
use hnsw_rs::prelude::{AnnT, Hnsw, HnswIo};
use std::path::Path;

/// Base name of the index files (`index.hnsw.graph`, `index.hnsw.data`).
pub const INDEX_BASENAME: &str = "index";

/// File names hnsw_rs writes for [`INDEX_BASENAME`].
pub fn index_files() -> [String; 2] {
    [
        format!("{INDEX_BASENAME}.hnsw.graph"),
        format!("{INDEX_BASENAME}.hnsw.data"),
    ]
}

/// HNSW build settings.
#[derive(Debug, Clone, Copy)]
pub struct IndexParams {
    /// Links per node (M); more links, better recall, bigger graph.
    pub max_nb_connection: usize,
    /// Candidate list size while building.
    pub ef_construction: usize,
}

/// Links per node hnsw_rs handles: it stores the count in a byte (so 256 reads back as
/// 0) and exits the process above 256; one link makes its level scale 1/ln(1) infinite.
const HNSW_M_RANGE: std::ops::RangeInclusive<usize> = 2..=255;

/// The largest build candidate list accepted (the smallest is M: a shorter list cannot
/// fill a node's links); beyond this the build is only slower.
const HNSW_EF_CONSTRUCTION_MAX: usize = 100_000;

impl IndexParams {
    /// Refuses settings hnsw_rs cannot build with, before any work is done.
    pub fn check(&self) -> Result<()> {
        if !HNSW_M_RANGE.contains(&self.max_nb_connection) {
            return Err(Error::InvalidArgument(format!(
                "HNSW links per node (--hnsw-m) is {}; it must be between {} and {}",
                self.max_nb_connection,
                HNSW_M_RANGE.start(),
                HNSW_M_RANGE.end()
            )));
        }
        if self.ef_construction < self.max_nb_connection
            || self.ef_construction > HNSW_EF_CONSTRUCTION_MAX
        {
            return Err(Error::InvalidArgument(format!(
                "HNSW build candidate list (--hnsw-ef-construction) is {}; it must be between the links per node ({}) and {HNSW_EF_CONSTRUCTION_MAX}",
                self.ef_construction, self.max_nb_connection
            )));
        }
        Ok(())
    }
}

impl Default for IndexParams {
    fn default() -> Self {
        IndexParams {
            max_nb_connection: 24,
            ef_construction: 200,
        }
    }
}

type Graph<'a> = Hnsw<'a, f32, UnitDot>;

self_cell::self_cell!(
    /// A graph reloaded from disk; hnsw_rs ties its lifetime to the loader.
    pub(crate) struct LoadedGraph {
        owner: HnswIo,
        #[not_covariant]
        dependent: Graph,
    }
);

/// An HNSW graph, either just built or reloaded from a store.
pub(crate) enum HnswIndex {
    /// Built in this process.
    Built(Box<Graph<'static>>),
    /// Reloaded from files.
    Loaded(LoadedGraph),
}

impl HnswIndex {
    /// Builds a graph over all rows (ids are row numbers), using every rayon thread.
    pub fn build(vectors: &Embeddings, params: IndexParams) -> Self {
        let n = vectors.len();
        let max_layer = 16;
        let graph: Graph<'static> = Hnsw::new(
            params.max_nb_connection,
            n.max(1),
            max_layer,
            params.ef_construction,
            UnitDot,
        );
        let items: Vec<(&[f32], usize)> = (0..n).map(|i| (vectors.row(i), i)).collect();
        let bar = crate::progress::items_bar(n as u64, "indexing", "vectors");
        for chunk in items.chunks(2048) {
            graph.parallel_insert_slice(&chunk.to_vec());
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        let mut graph = graph;
        graph.set_searching_mode(true);
        HnswIndex::Built(Box::new(graph))
    }

    /// Writes the graph files into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let written = match self {
            HnswIndex::Built(g) => g.file_dump(dir, INDEX_BASENAME),
            HnswIndex::Loaded(l) => l.with_dependent(|_, g| g.file_dump(dir, INDEX_BASENAME)),
        }
        .map_err(|e| Error::store(dir, format!("could not write the HNSW index: {e}")))?;
        if written != INDEX_BASENAME {
            return Err(Error::store(
                dir,
                format!("hnsw_rs wrote the index as '{written}', expected '{INDEX_BASENAME}'"),
            ));
        }
        Ok(())
    }

    /// Reloads a graph from `dir`. The caller checks the files' checksums first:
    /// hnsw_rs panics on some malformed inputs instead of returning an error.
    pub fn load(dir: &Path) -> Result<Self> {
        let io = HnswIo::new(dir, INDEX_BASENAME);
        let loaded = LoadedGraph::try_new(io, |io| io.load_hnsw_with_dist(UnitDot))
            .map_err(|e| Error::store(dir, format!("could not read the HNSW index: {e}")))?;
        Ok(HnswIndex::Loaded(loaded))
    }

    /// The `k` nearest rows to `query` with search breadth `ef`: (row, distance) pairs.
    pub fn search(&self, query: &[f32], k: usize, ef: usize) -> Vec<(usize, f32)> {
        let run = |g: &Graph<'_>| {
            g.search(query, k, ef.max(k))
                .into_iter()
                .map(|n| (n.d_id, n.distance))
                .collect()
        };
        match self {
            HnswIndex::Built(g) => run(g),
            HnswIndex::Loaded(l) => l.with_dependent(|_, g| run(g)),
        }
    }

    /// Number of points in the graph.
    pub fn len(&self) -> usize {
        match self {
            HnswIndex::Built(g) => g.get_nb_point(),
            HnswIndex::Loaded(l) => l.with_dependent(|_, g| g.get_nb_point()),
        }
    }
}
