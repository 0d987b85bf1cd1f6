//! Probe throughput: the logistic-regression probe of the gene-gene interaction task
//! (ggi_original: Gene2vec pairs, features = element-wise product and absolute
//! difference of the two genes' vectors, standardised, L2 penalty 1, at most 100
//! L-BFGS iterations) fitted on the RefSeq/MiniLM store's vectors, and scored by ROC AUC.
//!
//! The matrices are written to `target/probe-bench/*.npy`, which the scikit-learn peer
//! (benches/peers/sklearn_probe.py) fits with the same penalty (C = 1 / alpha) and
//! iteration cap, so both see identical inputs.
//!
//! Run: `cargo bench --bench probe_fit` (BENCH_PAIRS sets the training pairs, 20,000 by
//! default; BENCH_STORE another store folder).

use bftembed::store::GeneStore;
use bftembed::tasks::{logistic_scores, roc_auc, ProbeSpec};
use ndarray::{Array1, Array2};
use ndarray_npy::WriteNpyExt;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The lines of a gzipped text file.
fn gz_lines(path: &Path) -> Vec<String> {
    let file = std::fs::File::open(path).expect("open a GGI file (data/gene2vec_ggi)");
    BufReader::new(flate2::read::GzDecoder::new(file))
        .lines()
        .map(|l| l.expect("read line"))
        .collect()
}

/// Features and labels of the pairs (in file order) whose genes both have vectors.
fn pairs(store: &GeneStore, split: &str, limit: usize) -> (Array2<f64>, Vec<bool>) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/gene2vec_ggi");
    let texts = gz_lines(&dir.join(format!("{split}_text.txt.gz")));
    let labels = gz_lines(&dir.join(format!("{split}_label.txt.gz")));
    let d = store.dim();
    let (mut rows, mut ys) = (Vec::new(), Vec::new());
    for (text, label) in texts.iter().zip(&labels) {
        let mut genes = text.split_whitespace().map(|g| store.row_of(g));
        let (Some(Some(a)), Some(Some(b))) = (genes.next(), genes.next()) else {
            continue;
        };
        let (a, b) = (store.vectors().row(a), store.vectors().row(b));
        rows.extend((0..d).map(|j| (a[j] * b[j]) as f64));
        rows.extend((0..d).map(|j| (a[j] - b[j]).abs() as f64));
        ys.push(label.trim() == "1");
        if ys.len() == limit {
            break;
        }
    }
    let x = Array2::from_shape_vec((ys.len(), 2 * d), rows).expect("shape");
    (x, ys)
}

fn write_npy<T: WriteNpyExt>(array: &T, path: &Path) {
    array
        .write_npy(std::fs::File::create(path).expect("create npy"))
        .expect("write npy");
}

fn main() {
    bftembed::device::pin_cpu_thread_count();
    let limit: usize = std::env::var("BENCH_PAIRS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let dir = std::env::var_os("BENCH_STORE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            bftembed::models::bftembed_home()
                .expect("home")
                .join("stores/refseq-all-minilm-l6-v2")
        });
    let store = GeneStore::open(&dir).expect("open the store (run `bftembed quickstart` first)");
    let (train_x, train_y) = pairs(&store, "train", limit);
    let (test_x, test_y) = pairs(&store, "test", limit);
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/probe-bench");
    std::fs::create_dir_all(&out).expect("mkdir");
    let as_f64 = |y: &[bool]| Array1::from_iter(y.iter().map(|&b| f64::from(u8::from(b))));
    write_npy(&train_x, &out.join("train_x.npy"));
    write_npy(&as_f64(&train_y), &out.join("train_y.npy"));
    write_npy(&test_x, &out.join("test_x.npy"));
    write_npy(&as_f64(&test_y), &out.join("test_y.npy"));
    println!(
        "pairs: {} train, {} test, {} features, threads {}",
        train_y.len(),
        test_y.len(),
        train_x.ncols(),
        rayon::current_num_threads()
    );
    let spec = ProbeSpec::default();
    for round in 0..3 {
        let start = Instant::now();
        let scores = logistic_scores(&spec, &train_x, &train_y, &test_x).expect("fit");
        let secs = start.elapsed().as_secs_f64();
        let auc = roc_auc(&test_y, &scores).expect("auc");
        println!(
            "round {round}: fit + predict {secs:.2} s, ROC AUC {auc:.4} (alpha {}, {} iterations at most)",
            spec.alpha, spec.max_iterations
        );
    }
}
