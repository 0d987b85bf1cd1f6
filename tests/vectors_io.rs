//! Vectors in and out: a store exported as TSV, CSV, Parquet and .npy and imported
//! again gives the same vectors, neighbours and task scores; a GenePT-style pickle
//! (tests/fixtures/make_genept_pickle.py) is read in Rust, its names resolved through
//! HGNC; an imported store refuses to embed text; malformed files name the file and line.

mod common;

use bftembed::genes::GeneCatalog;
use bftembed::io::vectors::{read_vectors, write_vectors, VectorFormat};
use bftembed::models::ModelCache;
use bftembed::store::{import_store, store_vectors, GeneStore, IndexParams, SearchMode};
use bftembed::tasks::{evaluate, GeneVectors, TaskSpec};
use std::path::Path;

fn neighbours(store: &GeneStore, symbol: &str) -> Vec<String> {
    let row = store.row_of(symbol).unwrap();
    store
        .neighbors_of_row(row, 10, SearchMode::Exact)
        .unwrap()
        .into_iter()
        .map(|n| n.symbol)
        .collect()
}

fn dosage_auc(store: &GeneStore) -> f64 {
    let task = TaskSpec::read(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tasks/dosage_sensitive_tfs.toml"),
    )
    .unwrap();
    let catalog = GeneCatalog::embedded().unwrap();
    let vectors = GeneVectors::from_store(store, "s");
    let report = evaluate(&[task], vec![(vectors, "s".into())], &catalog).unwrap();
    report.tasks[0].scores[0].value
}

#[test]
fn every_format_round_trips_a_store() {
    let source = common::full_gene_store();
    let catalog = GeneCatalog::embedded().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let expected_neighbours = neighbours(&source, "TP53");
    let expected_auc = dosage_auc(&source);
    for (format, name) in [
        (VectorFormat::Npy, "v.npy"),
        (VectorFormat::Parquet, "v.parquet"),
        (VectorFormat::Tsv, "v.tsv"),
        (VectorFormat::Csv, "v.csv"),
    ] {
        let file = dir.path().join(name);
        write_vectors(&file, format, &store_vectors(&source)).unwrap();
        assert_eq!(VectorFormat::from_path(&file), Some(format));
        let read = read_vectors(&file, format, None, None, None).unwrap();
        assert_eq!(read.names, source.symbols(), "{name}");
        assert_eq!(read.values, source.vectors().as_slice(), "{name}: values");
        let out = dir.path().join(format!("store-{name}"));
        let report = import_store(&read, &file, &catalog, &out, IndexParams::default()).unwrap();
        let store = report.store;
        // The RefSeq store keeps a few symbols HGNC does not approve (readthroughs);
        // the import reports them instead of inventing a gene.
        assert_eq!(store.len() + report.skipped.len(), source.len(), "{name}");
        assert!(report.skipped.len() < 100, "{}", report.skipped.len());
        assert!(store.manifest().model_id.starts_with("imported:"));
        assert_eq!(
            store.manifest().model_sha256,
            bftembed::fsutil::sha256_file(&file).unwrap()
        );
        assert_eq!(neighbours(&store, "TP53"), expected_neighbours, "{name}");
        assert_eq!(dosage_auc(&store), expected_auc, "{name}: dosage ROC-AUC");
    }
}

#[test]
fn a_genept_pickle_is_read_and_its_names_resolved() {
    let source = common::full_gene_store();
    let catalog = GeneCatalog::embedded().unwrap();
    let pickle = common::fixture("genept_style.pickle");
    let read = read_vectors(
        &pickle,
        VectorFormat::from_path(&pickle).unwrap(),
        None,
        None,
        None,
    )
    .unwrap();
    assert_eq!(read.names.len(), 41);
    assert_eq!(read.dim, 384);
    let dir = tempfile::tempdir().unwrap();
    let report = import_store(
        &read,
        &pickle,
        &catalog,
        &dir.path().join("s"),
        IndexParams::default(),
    )
    .unwrap();
    let skipped: Vec<&str> = report.skipped.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(skipped, ["HIST1H3C", "NOT_A_GENE1"], "{:?}", report.skipped);
    assert!(report.skipped[0].reason.contains("second vector for H3C3"));
    let store = report.store;
    assert_eq!(store.len(), 39);
    // Each vector is the source store's, to float precision.
    for (i, symbol) in store.symbols().iter().enumerate() {
        let theirs = source.vector(source.row_of(symbol).unwrap());
        let cos: f32 = store.vector(i).iter().zip(theirs).map(|(a, b)| a * b).sum();
        assert!(cos > 0.999_999, "{symbol}: {cos}");
    }
    // Neighbours within the imported genes are those the source vectors give.
    let tp53 = source.vector(source.row_of("TP53").unwrap());
    let mut by_hand: Vec<(f32, &String)> = store
        .symbols()
        .iter()
        .filter(|s| *s != "TP53")
        .map(|s| {
            let v = source.vector(source.row_of(s).unwrap());
            (tp53.iter().zip(v).map(|(a, b)| a * b).sum::<f32>(), s)
        })
        .collect();
    by_hand.sort_by(|a, b| b.0.total_cmp(&a.0));
    let want: Vec<String> = by_hand.iter().take(10).map(|(_, s)| (*s).clone()).collect();
    assert_eq!(neighbours(&store, "TP53"), want);
    let err = store
        .encoder(&ModelCache::from_env().unwrap(), &candle_core::Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("imported from") && err.contains("cannot embed text"),
        "{err}"
    );
}

#[test]
fn malformed_vector_files_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let tsv = dir.path().join("bad.tsv");
    std::fs::write(&tsv, "gene\td0\td1\nTP53\t0.1\t0.2\nMDM2\t0.3\tabc\n").unwrap();
    let err = read_vectors(&tsv, VectorFormat::Tsv, None, None, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad.tsv") && err.contains(":3") && err.contains("'abc'"),
        "{err}"
    );
    let short = dir.path().join("short.csv");
    std::fs::write(&short, "gene,d0,d1\nTP53,0.1,0.2\nMDM2,0.3\n").unwrap();
    let err = read_vectors(&short, VectorFormat::Csv, None, None, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("short.csv") && err.contains(":3"), "{err}");
    let nan = dir.path().join("nan.tsv");
    std::fs::write(&nan, "gene\td0\nTP53\tnan\n").unwrap();
    let err = read_vectors(&nan, VectorFormat::Tsv, None, None, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("TP53") && err.contains("finite"), "{err}");
    // An .npy whose names file has the wrong length.
    let npy = dir.path().join("v.npy");
    let vectors = bftembed::io::vectors::NamedVectors {
        names: vec!["TP53".into(), "MDM2".into()],
        dim: 2,
        values: vec![1.0, 0.0, 0.0, 1.0],
    };
    write_vectors(&npy, VectorFormat::Npy, &vectors).unwrap();
    std::fs::write(dir.path().join("v.npy.genes.txt"), "TP53\n").unwrap();
    let err = read_vectors(&npy, VectorFormat::Npy, None, None, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("v.npy.genes.txt") && err.contains("1 names for the 2 rows"),
        "{err}"
    );
    // A pickle that is not a dict of lists of floats.
    let pickle = dir.path().join("list.pkl");
    // protocol 2: an empty list, STOP.
    std::fs::write(&pickle, [0x80, 0x02, b']', b'.']).unwrap();
    let err = read_vectors(&pickle, VectorFormat::Pickle, None, None, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("list.pkl") && err.contains("dict of name -> list of floats"),
        "{err}"
    );
}

#[test]
fn the_cli_imports_and_exports() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("imported");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_bftembed"))
        .args(["import", "--vectors"])
        .arg(common::fixture("genept_style.pickle"))
        .arg("--out")
        .arg(&store)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains("skipped: NOT_A_GENE1") && stderr.contains("holds 39 genes"),
        "{stderr}"
    );
    let out = dir.path().join("out.tsv");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_bftembed"))
        .args(["export", "--format", "tsv", "--store"])
        .arg(&store)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().count(), 40);
    let search = std::process::Command::new(env!("CARGO_BIN_EXE_bftembed"))
        .args(["search", "tumor suppressor", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    assert!(!search.status.success());
    assert!(String::from_utf8_lossy(&search.stderr).contains("cannot embed text"));
}
