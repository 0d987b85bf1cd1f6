//! Store benchmarks on the full RefSeq gene store (build it first with
//! `bftembed quickstart`): HNSW build time, and single-thread queries per second with
//! recall@10 against brute force, for several search breadths.
//!
//! Run: `cargo bench --bench store_query`. `-- --dump-vectors FILE` writes the vectors
//! (f32 little-endian, row-major) for the hnswlib peer, benches/peers/hnswlib_query.py.

use bftembed::store::{GeneStore, IndexParams, SearchMode};
use std::collections::HashSet;
use std::time::Instant;

fn main() {
    let dir = std::env::var_os("BENCH_STORE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            bftembed::models::bftembed_home()
                .expect("home")
                .join("stores/refseq-all-minilm-l6-v2")
        });
    let start = Instant::now();
    let store = GeneStore::open(&dir).expect("open the store (run `bftembed quickstart` first)");
    println!(
        "store: {} genes x {} dims, opened (checksums verified, index loaded) in {:.2} s",
        store.len(),
        store.dim(),
        start.elapsed().as_secs_f64()
    );
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--dump-vectors") {
        let path = &args[i + 1];
        let bytes: Vec<u8> = store
            .vectors()
            .as_slice()
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        std::fs::write(path, bytes).expect("write vectors");
        println!("wrote {path}");
        return;
    }

    // Index build, with every thread rayon has.
    let tmp = tempfile::tempdir().expect("tmp");
    let copy = tmp.path().join("store");
    std::fs::create_dir_all(&copy).expect("mkdir");
    for entry in std::fs::read_dir(&dir).expect("read store") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), copy.join(entry.file_name())).expect("copy");
    }
    let start = Instant::now();
    bftembed::store::reindex_store(&copy, IndexParams::default()).expect("reindex");
    println!(
        "HNSW build (M {}, ef_construction {}, {} threads): {:.1} s",
        IndexParams::default().max_nb_connection,
        IndexParams::default().ef_construction,
        rayon::current_num_threads(),
        start.elapsed().as_secs_f64()
    );

    // Queries: every 5th gene's own vector (itself excluded from the answer), one thread.
    let queries: Vec<usize> = (0..store.len()).step_by(5).collect();
    let k = 10;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    pool.install(|| {
        let start = Instant::now();
        let exact: Vec<HashSet<usize>> = queries
            .iter()
            .map(|&q| {
                store
                    .neighbors_of_row(q, k, SearchMode::Exact)
                    .expect("exact")
                    .iter()
                    .map(|n| n.row)
                    .collect()
            })
            .collect();
        let secs = start.elapsed().as_secs_f64();
        println!(
            "exact (brute force): {:.0} queries/s, recall 1.000 ({} queries)",
            queries.len() as f64 / secs,
            queries.len()
        );
        for ef in [16, 32, 64, 128] {
            let start = Instant::now();
            let mut hit = 0;
            for (q, truth) in queries.iter().zip(&exact) {
                let got = store
                    .neighbors_of_row(*q, k, SearchMode::Hnsw { ef })
                    .expect("hnsw");
                hit += got.iter().filter(|n| truth.contains(&n.row)).count();
            }
            let secs = start.elapsed().as_secs_f64();
            println!(
                "hnsw ef {ef:>3}: {:.0} queries/s, recall@10 {:.4}",
                queries.len() as f64 / secs,
                hit as f64 / (queries.len() * k) as f64
            );
        }
    });
}
