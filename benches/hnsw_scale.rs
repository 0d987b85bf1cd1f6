//! HNSW at atlas scale, the numbers docs/BENCHMARKS.md compares with hnswlib and faiss
//! (benches/peers/hnsw_scale.py reads the same files): N random unit vectors of 384
//! dimensions (seeded normal draws, normalised: no cluster structure, the hard case for
//! a graph index), 1,000 random unit queries, exact top-10 by brute force as the truth.
//!
//! Run: `cargo bench --bench hnsw_scale -- --n 100000 --dir /tmp/hnsw-scale [--store]
//! [--m 24] [--ef-construction 200]` (the store's defaults).
//! The first run writes `base-N.f32`, `queries.f32` and `truth-N.u32` into DIR (f32 / u32
//! little-endian, row-major); later runs and the peers reuse them. Prints one JSON line
//! per figure. `--store` also times a cell store of the vectors: build (Parquet, graph,
//! checksums), open (the cheap check above 256 MiB) and `verify`.

mod common;
use bftembed::embed::Embeddings;
use bftembed::rng::SplitMix64;
use bftembed::store::{IndexParams, SearchMode, VectorIndex};
use common::peak_rss_mib;
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::time::Instant;

const DIM: usize = 384;
const QUERIES: usize = 1000;
const K: usize = 10;
const EFS: [usize; 5] = [16, 32, 64, 128, 256];

fn unit_vectors(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    let mut out = Vec::with_capacity(n * DIM);
    for _ in 0..n {
        let v: Vec<f32> = (0..DIM).map(|_| rng.normal() as f32).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        out.extend(v.iter().map(|x| x / norm));
    }
    out
}

fn write_f32(path: &Path, values: &[f32]) {
    let bytes: Vec<u8> = values.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(path, bytes).expect("write");
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .expect("read")
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// The data set's files, made on first use.
fn data(dir: &Path, n: usize) -> (Embeddings, Vec<f32>, Vec<Vec<u32>>) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let (base, queries, truth) = (
        dir.join(format!("base-{n}.f32")),
        dir.join("queries.f32"),
        dir.join(format!("truth-{n}.u32")),
    );
    if !queries.exists() {
        write_f32(&queries, &unit_vectors(QUERIES, 2));
    }
    if !base.exists() {
        write_f32(&base, &unit_vectors(n, 1));
    }
    let vectors = Embeddings::new(DIM, read_f32(&base));
    let queries = read_f32(&queries);
    if !truth.exists() {
        let exact: Vec<u32> = queries
            .par_chunks(DIM)
            .flat_map_iter(|q| {
                let mut scored: Vec<(u32, f32)> = (0..vectors.len())
                    .map(|i| (i as u32, bftembed::store::dot(vectors.row(i), q)))
                    .collect();
                scored.select_nth_unstable_by(K, |a, b| b.1.total_cmp(&a.1));
                scored.truncate(K);
                scored.sort_by(|a, b| b.1.total_cmp(&a.1));
                scored.into_iter().map(|(i, _)| i)
            })
            .collect();
        let bytes: Vec<u8> = exact.iter().flat_map(|x| x.to_le_bytes()).collect();
        std::fs::write(&truth, bytes).expect("write truth");
    }
    let truth: Vec<Vec<u32>> = std::fs::read(&truth)
        .expect("read truth")
        .chunks_exact(4 * K)
        .map(|row| {
            row.chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        })
        .collect();
    (vectors, queries, truth)
}

fn report(n: usize, what: &str, fields: serde_json::Value) {
    let mut line = serde_json::json!({"tool": "bftembed (hnsw_rs 0.3.5)", "n": n, "what": what});
    if let (Some(line), Some(fields)) = (line.as_object_mut(), fields.as_object()) {
        line.extend(fields.clone());
    }
    println!("{line}");
}

fn queries_per_second(
    index: &VectorIndex,
    queries: &[f32],
    truth: &[Vec<u32>],
    ef: usize,
    threads: usize,
) -> (f64, f64) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool");
    pool.install(|| {
        let start = Instant::now();
        let hits: usize = queries
            .par_chunks(DIM)
            .zip(truth)
            .map(|(q, t)| {
                index
                    .search(q, K, SearchMode::Hnsw { ef }, None)
                    .expect("search")
                    .iter()
                    .filter(|(row, _)| t.contains(&(*row as u32)))
                    .count()
            })
            .sum();
        let secs = start.elapsed().as_secs_f64();
        (
            truth.len() as f64 / secs,
            hits as f64 / (truth.len() * K) as f64,
        )
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let n: usize = value("--n").and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let dir = PathBuf::from(value("--dir").unwrap_or_else(|| "/tmp/hnsw-scale".into()));
    let (vectors, queries, truth) = data(&dir, n);
    let defaults = IndexParams::default();
    let params = IndexParams {
        max_nb_connection: value("--m")
            .and_then(|v| v.parse().ok())
            .unwrap_or(defaults.max_nb_connection),
        ef_construction: value("--ef-construction")
            .and_then(|v| v.parse().ok())
            .unwrap_or(defaults.ef_construction),
    };
    let threads = rayon::current_num_threads();
    let start = Instant::now();
    let index = VectorIndex::build(vectors.clone(), params).expect("build");
    report(
        n,
        "build",
        serde_json::json!({"seconds": start.elapsed().as_secs_f64(), "threads": threads,
            "m": params.max_nb_connection, "ef_construction": params.ef_construction}),
    );
    for ef in EFS {
        for t in [1, threads] {
            let (qps, recall) = queries_per_second(&index, &queries, &truth, ef, t);
            report(
                n,
                "query",
                serde_json::json!({"ef": ef, "threads": t, "qps": qps, "recall_at_10": recall}),
            );
        }
    }
    report(n, "peak_rss", serde_json::json!({"mib": peak_rss_mib()}));
    if args.iter().any(|a| a == "--store") {
        drop(index);
        time_store(n, &dir, vectors, params);
    }
}

/// A cell store of the vectors: build, open and verify times.
fn time_store(n: usize, dir: &Path, vectors: Embeddings, params: IndexParams) {
    use bftembed::store::{
        build_cell_store, verify_store, CellOrigin, CellRows, CellStore, StoreModel,
    };
    let path = dir.join(format!("store-{n}"));
    let rows = CellRows {
        cells: (0..n).map(|i| format!("cell{i}")).collect(),
        metadata: Vec::new(),
        vectors,
    };
    let origin = CellOrigin {
        method: "genept_w".into(),
        gene_store: "(random benchmark vectors)".into(),
        gene_store_vectors_sha256: String::new(),
        top_genes: 0,
        center_gene_vectors: false,
        metadata: Vec::new(),
        cells_without_vector: 0,
    };
    let model = StoreModel {
        id: "random:benchmark".into(),
        sha256: String::new(),
        encoder: None,
        remote: None,
    };
    let start = Instant::now();
    build_cell_store(&path, &rows, origin, &model, params).expect("build the store");
    let build = start.elapsed().as_secs_f64();
    drop(rows);
    let start = Instant::now();
    let store = CellStore::open(&path).expect("open");
    let open = start.elapsed().as_secs_f64();
    drop(store);
    let start = Instant::now();
    verify_store(&path).expect("verify");
    let verify = start.elapsed().as_secs_f64();
    let bytes: u64 = std::fs::read_dir(&path)
        .expect("store")
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    report(
        n,
        "cell_store",
        serde_json::json!({"build_seconds": build, "open_seconds": open,
            "verify_seconds": verify, "bytes": bytes}),
    );
    let _ = std::fs::remove_dir_all(&path);
}
