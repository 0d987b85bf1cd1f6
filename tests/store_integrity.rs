//! A store built from real RefSeq profiles: search works, and every kind of damage
//! (truncated index, truncated table, edited manifest) is refused with a clear message,
//! while `reindex` repairs a damaged index.

mod common;

use bftembed::genes::{GeneCatalog, GeneList, GeneListEntry};
use bftembed::profile::RefseqSummaries;
use bftembed::store::{
    build_store, reindex_store, resolve_row, GeneStore, IndexParams, SearchMode, StoreModel,
};
use std::path::Path;

const GENES: &[&str] = &[
    "TP53", "MDM2", "CDKN1A", "TP63", "TP73", "ATM", "CHEK2", "BRCA1", "BRCA2", "RAD51", "CD4",
    "CD8A", "CD3E", "MS4A1", "CD19", "INS", "GCG", "SST", "ALB", "APOA1", "MYOD1", "MYOG", "DES",
    "ACTA1", "HBB", "HBA1", "GATA1", "KLF1", "EPO", "EPOR", "IFNB1", "IFNAR1", "STAT1", "STAT2",
    "IRF9", "ISG15", "MX1", "OAS1", "EGFR", "ERBB2", "KRAS", "BRAF", "MAP2K1", "MAPK1", "PTEN",
    "PIK3CA", "AKT1", "MTOR", "CFTR", "DMD",
];

fn build_small_store(dir: &Path) -> GeneStore {
    let catalog = GeneCatalog::embedded().unwrap();
    let list = GeneList {
        path: "inline".into(),
        entries: GENES
            .iter()
            .enumerate()
            .map(|(i, s)| GeneListEntry {
                line: i + 1,
                symbol: s.to_string(),
            })
            .collect(),
        duplicates: vec![],
    };
    let build = RefseqSummaries::embedded()
        .unwrap()
        .profiles_for(&list, &catalog);
    assert_eq!(build.records.len(), GENES.len(), "{:?}", build.skipped);
    let embedder = common::embedder();
    let texts: Vec<&str> = build.records.iter().map(|r| r.text.as_str()).collect();
    let vectors = embedder.embed(&texts).unwrap();
    let model = StoreModel::of(&embedder);
    build_store(
        dir,
        &build.records,
        &vectors,
        &model,
        IndexParams::default(),
    )
    .unwrap()
}

fn truncate(path: &Path) {
    let len = std::fs::metadata(path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(len / 2).unwrap();
}

#[test]
fn small_store_searches_and_refuses_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let store = build_small_store(&dir);
    assert_eq!(store.len(), GENES.len());
    assert_eq!(store.manifest().count, GENES.len());
    assert_eq!(store.manifest().dim, 384);

    // Re-opened from disk, HNSW and exact search agree on this small store.
    let store = GeneStore::open(&dir).unwrap();
    let catalog = GeneCatalog::embedded().unwrap();
    let row = resolve_row(&store, &catalog, "p53").unwrap();
    assert_eq!(store.symbols()[row], "TP53");
    let exact = store.neighbors_of_row(row, 5, SearchMode::Exact).unwrap();
    let hnsw = store
        .neighbors_of_row(row, 5, SearchMode::Hnsw { ef: 64 })
        .unwrap();
    assert_eq!(exact, hnsw);
    assert!(
        exact.iter().all(|n| n.symbol != "TP53"),
        "a gene is not its own neighbour"
    );
    assert!(exact.windows(2).all(|w| w[0].score >= w[1].score));
    let near: Vec<&str> = exact.iter().map(|n| n.symbol.as_str()).collect();
    assert!(
        near.iter()
            .any(|s| ["MDM2", "TP63", "TP73", "CDKN1A", "CHEK2", "ATM"].contains(s)),
        "{near:?}"
    );

    // A gene the catalogue knows but the store lacks, and a symbol nobody knows.
    let err = resolve_row(&store, &catalog, "GAPDH")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("GAPDH") && err.contains("no vector in this store"),
        "{err}"
    );
    let err = resolve_row(&store, &catalog, "TP35")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown gene symbol 'TP35'") && err.contains("TP53"),
        "{err}"
    );

    // A truncated index is refused, and reindex repairs it.
    truncate(&dir.join("index.hnsw.graph"));
    let err = GeneStore::open(&dir).err().unwrap().to_string();
    assert!(
        err.contains("index.hnsw.graph") && err.contains("bftembed reindex"),
        "{err}"
    );
    reindex_store(&dir, IndexParams::default()).unwrap();
    let repaired = GeneStore::open(&dir).unwrap();
    assert_eq!(
        repaired
            .neighbors_of_row(row, 5, SearchMode::Exact)
            .unwrap(),
        exact
    );

    // An index file that is gone is refused too.
    std::fs::remove_file(dir.join("index.hnsw.data")).unwrap();
    let err = GeneStore::open(&dir).err().unwrap().to_string();
    assert!(
        err.contains("index.hnsw.data") && err.contains("missing"),
        "{err}"
    );
    reindex_store(&dir, IndexParams::default()).unwrap();

    // A truncated table cannot be repaired: the store must be rebuilt.
    truncate(&dir.join("vectors.parquet"));
    let err = GeneStore::open(&dir).err().unwrap().to_string();
    assert!(
        err.contains("vectors.parquet") && err.contains("build the store again"),
        "{err}"
    );
    assert!(reindex_store(&dir, IndexParams::default()).is_err());

    // A manifest that is not JSON.
    let store2 = tmp.path().join("store2");
    build_small_store(&store2);
    std::fs::write(store2.join("manifest.json"), b"{ not json").unwrap();
    let err = GeneStore::open(&store2).err().unwrap().to_string();
    assert!(err.contains("manifest.json"), "{err}");
}

#[test]
fn rebuilding_replaces_a_store_without_leftovers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    build_small_store(&dir);
    build_small_store(&dir);
    let names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(
        names,
        vec!["store".to_string()],
        "staging folders left behind"
    );
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "index.hnsw.data",
            "index.hnsw.graph",
            "manifest.json",
            "vectors.parquet"
        ]
    );
}
