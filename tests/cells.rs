//! `bftembed cells` on real cells: 60 PBMC cells in the current AnnData layout
//! (tests/fixtures/pbmc68k_subset_anndata.h5ad), a gene store of their genes, GenePT-w
//! and GenePT-s out to Parquet and into a copy of the `.h5ad`. The vectors are checked
//! against an independent computation, the copy against the input, and both against
//! tests/fixtures/pbmc68k_subset_genept.h5ad, the file the real anndata package opened
//! (make_cells_fixture.py).

mod common;

use common::{bftembed, stderr};

use bftembed::genes::GeneCatalog;
use bftembed::io::parquet::read_parquet;
use bftembed::io::H5ad;
use bftembed::profile::RefseqSummaries;
use bftembed::store::{embed_into_store, GeneStore, IndexParams};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn source() -> PathBuf {
    common::fixture("pbmc68k_subset_anndata.h5ad")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// RefSeq profiles of the fixture's genes embedded with all-MiniLM-L6-v2, built once;
/// the same store make_cells_fixture.py builds through the CLI.
fn store() -> &'static (tempfile::TempDir, PathBuf) {
    static STORE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    STORE.get_or_init(|| {
        let matrix = H5ad::open(&source())
            .unwrap()
            .matrix("X", Some("feature_name"))
            .unwrap();
        let catalog = GeneCatalog::embedded().unwrap();
        let summaries = RefseqSummaries::embedded().unwrap();
        let mut mapper = bftembed::genes::SymbolMapper::new(&catalog);
        let wanted: std::collections::HashSet<String> =
            bftembed::cells::approved_genes(&matrix.genes, None, &mut mapper)
                .into_iter()
                .flatten()
                .collect();
        let mut records = summaries.all_profiles(&catalog).records;
        records.retain(|r| wanted.contains(&r.symbol));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        embed_into_store(&common::embedder(), &records, &path, IndexParams::default()).unwrap();
        (dir, path)
    })
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (n(a) * n(b))
}

/// GenePT-w written out again from its definition: the expression-weighted sum of the
/// vectors of the cell's genes that the store has (names resolved through HGNC).
fn genept_w_by_hand(row: &[(u32, f32)], genes: &[String], store: &GeneStore) -> Vec<f32> {
    let catalog = GeneCatalog::embedded().unwrap();
    let mut sum = vec![0f32; store.dim()];
    for &(g, x) in row {
        let symbol = catalog
            .resolve(&genes[g as usize])
            .ok()
            .map(|r| r.gene.symbol.clone());
        if let Some(r) = symbol.and_then(|s| store.row_of(&s)) {
            for (a, b) in sum.iter_mut().zip(store.vector(r)) {
                *a += x * b;
            }
        }
    }
    sum
}

#[test]
fn genept_vectors_go_to_parquet_and_into_an_h5ad_copy_that_keeps_everything_else() {
    let (_keep, store_path) = store();
    let tmp = tempfile::tempdir().unwrap();
    let table = tmp.path().join("cells.parquet");
    let copy = tmp.path().join("copy.h5ad");
    let out = bftembed(&[
        "cells",
        "--matrix",
        s(&source()),
        "--store",
        s(store_path),
        "--method",
        "both",
        "--obs",
        "bulk_labels,donor",
        "--out",
        s(&table),
        "--h5ad-out",
        s(&copy),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("matrix genes have a vector"),
        "{}",
        stderr(&out)
    );

    // The copy: same cells, obs and matrix as the input, plus the two obsm entries.
    let input = H5ad::open(&source()).unwrap();
    let written = H5ad::open(&copy).unwrap();
    assert_eq!(written.obs_names().unwrap(), input.obs_names().unwrap());
    for column in ["bulk_labels", "donor", "louvain"] {
        assert_eq!(
            written.obs_column(column).unwrap(),
            input.obs_column(column).unwrap()
        );
    }
    let matrix = input.matrix("X", Some("feature_name")).unwrap();
    assert_eq!(
        written.matrix("X", Some("feature_name")).unwrap().values,
        matrix.values
    );
    let (dim_w, obsm_w) = written.obsm("X_genept_w").unwrap();
    let (dim_s, obsm_s) = written.obsm("X_genept_s").unwrap();
    assert_eq!((dim_w, dim_s, obsm_w.len()), (384, 384, 60 * 384));

    // The table: the same vectors, cell ids and obs values.
    let contents = read_parquet(&table).unwrap();
    let batch = &contents.batches[0];
    let ids = bftembed::io::parquet::strings(batch, "cell", &table).unwrap();
    assert_eq!(ids, input.obs_names().unwrap());
    let (_, table_w) = bftembed::io::parquet::f32_vectors(batch, "genept_w", &table).unwrap();
    let (_, table_s) = bftembed::io::parquet::f32_vectors(batch, "genept_s", &table).unwrap();
    assert_eq!(
        (table_w.as_slice(), table_s.as_slice()),
        (&obsm_w[..], &obsm_s[..])
    );
    assert!(contents
        .meta("bftembed.cells")
        .unwrap()
        .contains("genept_s"));

    // GenePT-w equals its definition, cell by cell.
    let store = GeneStore::open(store_path).unwrap();
    for cell in [0, 17, 59] {
        let by_hand = genept_w_by_hand(&matrix.values[cell], &matrix.genes, &store);
        let c = cosine(&by_hand, &obsm_w[cell * 384..(cell + 1) * 384]);
        assert!(c > 0.9999, "cell {cell}: cosine {c}");
    }
    // GenePT-s equals the encoder on the cell's top-100 genes, written by hand.
    let catalog = GeneCatalog::embedded().unwrap();
    let mut row = matrix.values[5].clone();
    row.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let words: Vec<String> = row
        .iter()
        .filter_map(|(g, _)| catalog.resolve(&matrix.genes[*g as usize]).ok())
        .map(|r| r.gene.symbol.clone())
        .filter(|s| store.row_of(s).is_some())
        .take(100)
        .collect();
    let sentence = common::embedder().embed(&[&words.join(" ")]).unwrap();
    let c = cosine(sentence.row(0), &obsm_s[5 * 384..6 * 384]);
    assert!(c > 0.9999, "GenePT-s cosine {c}");
    // What the real anndata opened (make_cells_fixture.py) is what is written today.
    let checked = H5ad::open(&common::fixture("pbmc68k_subset_genept.h5ad")).unwrap();
    let (_, fixture_w) = checked.obsm("X_genept_w").unwrap();
    let (_, fixture_s) = checked.obsm("X_genept_s").unwrap();
    for cell in 0..60 {
        let r = cell * 384..(cell + 1) * 384;
        assert!(
            cosine(&fixture_w[r.clone()], &obsm_w[r.clone()]) > 0.9999,
            "cell {cell}"
        );
        assert!(
            cosine(&fixture_s[r.clone()], &obsm_s[r]) > 0.9999,
            "cell {cell}"
        );
    }
}

#[test]
fn scaled_values_old_layouts_and_unknown_columns_are_refused_before_any_output() {
    let (_keep, store_path) = store();
    let tmp = tempfile::tempdir().unwrap();
    let table = tmp.path().join("t.parquet");
    let scanpy = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data/scanpy_pbmc68k_reduced/10x_pbmc68k_reduced.h5ad");
    let refused = |args: &[&str], says: &str| {
        let out = bftembed(args);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains(says), "{says}: {}", stderr(&out));
        assert!(!table.exists() && !tmp.path().join("c.h5ad").exists());
    };
    // scanpy's X is scaled (negative values): GenePT cannot weigh genes by it.
    let base = [
        "cells",
        "--store",
        s(store_path),
        "--out",
        s(&table),
        "--matrix",
    ];
    let with = |extra: &[&'static str], m: &Path| -> Vec<String> {
        base.iter()
            .map(|a| a.to_string())
            .chain([s(m).to_string()])
            .chain(extra.iter().map(|a| a.to_string()))
            .collect()
    };
    let run = |args: Vec<String>, says: &str| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&args, says)
    };
    run(with(&[], &scanpy), "scaled or centred");
    // Its obsm is a compound table (anndata before 0.7): refused before the work.
    let c = tmp.path().join("c.h5ad");
    let mut args = with(&["--h5ad-matrix", "raw/X", "--h5ad-out"], &scanpy);
    args.push(s(&c).to_string());
    run(args, "before 0.7");
    run(
        with(&["--obs", "no_such_column"], &source()),
        "no column 'no_such_column'",
    );
    run(
        with(&["--h5ad-out"], &source())
            .into_iter()
            .chain([s(&source()).to_string()])
            .collect(),
        "must differ",
    );
}

#[test]
fn cells_without_a_known_gene_get_null_and_are_reported() {
    let (_keep, store_path) = store();
    let tmp = tempfile::tempdir().unwrap();
    let matrix = tmp.path().join("m.csv");
    std::fs::write(
        &matrix,
        "cell,CD3E,LYZ,NOTAGENE1\nt1,5,0,1\nm1,0,7,0\nnone,0,0,4\n",
    )
    .unwrap();
    let table = tmp.path().join("t.parquet");
    let out = bftembed(&[
        "cells",
        "--matrix",
        s(&matrix),
        "--store",
        s(store_path),
        "--out",
        s(&table),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("read as counts"), "{err}");
    assert!(
        err.contains("1 of 3 cells express no gene") && err.contains("none"),
        "{err}"
    );
    let contents = read_parquet(&table).unwrap();
    let column = contents.batches[0].column_by_name("genept_w").unwrap();
    assert_eq!(column.null_count(), 1);
    assert!(column.is_null(2) && column.is_valid(0));
}

/// The cell-sentence cache folders under the user's bftembed home.
fn sentence_caches() -> std::collections::BTreeSet<PathBuf> {
    let root = bftembed::models::bftembed_home()
        .unwrap()
        .join("cache/cell-sentences");
    std::fs::read_dir(root)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[test]
#[ignore = "slow: real data at full size; `bash .ci/run` (or `cargo test --release -- --include-ignored`) runs it"]
fn eval_keeps_cell_sentence_vectors_between_runs_and_scores_the_same() {
    let (_keep, store_path) = store();
    let tmp = tempfile::tempdir().unwrap();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let task = std::fs::read_to_string(repo.join("tasks/pbmc68k_celltype_s_knn.toml"))
        .unwrap()
        .replace("../data/", &format!("{}/data/", repo.display()));
    let task_file = tmp.path().join("pbmc_s.toml");
    std::fs::write(&task_file, task).unwrap();
    let run = |report: &str| -> (serde_json::Value, std::collections::BTreeSet<PathBuf>) {
        let before = sentence_caches();
        let out = bftembed(&[
            "eval",
            "--store",
            s(store_path),
            "--tasks",
            s(&task_file),
            "--report",
            s(&tmp.path().join(report)),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let json = std::fs::read_to_string(tmp.path().join(report).join("report.json")).unwrap();
        let json: serde_json::Value = serde_json::from_str(&json).unwrap();
        let new = sentence_caches().difference(&before).cloned().collect();
        (json["tasks"][0]["scores"].clone(), new)
    };
    let (first, made) = run("r1");
    // The store's sentences and the floor's (permuted names) were cached, unless an
    // earlier run of this test on this machine had cached them already.
    let stamps = |dirs: &std::collections::BTreeSet<PathBuf>| -> Vec<std::time::SystemTime> {
        dirs.iter()
            .flat_map(|d| std::fs::read_dir(d).unwrap().flatten())
            .map(|f| f.metadata().unwrap().modified().unwrap())
            .collect()
    };
    let written = stamps(&made);
    let (second, made_again) = run("r2");
    assert!(
        made_again.is_empty(),
        "the second run embedded again: {made_again:?}"
    );
    assert_eq!(stamps(&made), written, "cached chunks were rewritten");
    assert_eq!(first, second);
    assert!(first[0]["value"].as_f64().unwrap() > 0.2, "{first}");
}

/// The fixture's cells as a cell store (GenePT-w, with bulk_labels and donor), built
/// through the CLI into `dir`.
fn cell_store(dir: &Path) -> PathBuf {
    let (_keep, store_path) = store();
    let cells = dir.join("cells");
    let out = bftembed(&[
        "cells",
        "--matrix",
        s(&source()),
        "--store",
        s(store_path),
        "--obs",
        "bulk_labels,donor",
        "--store-out",
        s(&cells),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    cells
}

#[test]
fn a_cell_store_keeps_each_cell_with_its_metadata_and_vector() {
    use bftembed::store::{CellStore, SearchMode};
    let tmp = tempfile::tempdir().unwrap();
    let cells = cell_store(tmp.path());
    let store = CellStore::open(&cells).unwrap();
    let input = H5ad::open(&source()).unwrap();
    assert_eq!(store.cells(), input.obs_names().unwrap().as_slice());
    for column in ["bulk_labels", "donor"] {
        assert_eq!(
            store.metadata_column(column).unwrap(),
            input.obs_column(column).unwrap().as_slice()
        );
    }
    // The vectors are GenePT-w by definition, and the recipe is recorded.
    let (_, genes_path) = self::store();
    let genes = GeneStore::open(genes_path).unwrap();
    let matrix = input.matrix("X", Some("feature_name")).unwrap();
    for cell in [0, 31, 59] {
        let by_hand = genept_w_by_hand(&matrix.values[cell], &matrix.genes, &genes);
        assert!(cosine(&by_hand, store.vector(cell)) > 0.9999, "cell {cell}");
    }
    let origin = store.origin();
    assert_eq!(origin.method, "genept_w");
    assert_eq!(
        origin.gene_store_vectors_sha256,
        genes.manifest().vectors_sha256
    );
    assert_eq!(origin.metadata, ["bulk_labels", "donor"]);
    // HNSW finds what exact search finds on 60 cells.
    let row = store.row_of(&store.cells()[7]).unwrap();
    let exact = store.neighbors_of_row(row, 5, SearchMode::Exact).unwrap();
    let graph = store
        .neighbors_of_row(row, 5, SearchMode::Hnsw { ef: 64 })
        .unwrap();
    // The graph reports 1 - (1 - cosine), which may differ from the cosine in its last bit.
    let ids = |hits: &[bftembed::store::CellNeighbor]| -> Vec<String> {
        hits.iter().map(|h| h.cell.clone()).collect()
    };
    assert_eq!(ids(&exact), ids(&graph));
    assert!(exact
        .iter()
        .zip(&graph)
        .all(|(e, g)| (e.score - g.score).abs() < 1e-6));
    assert!(exact.iter().all(|h| h.row != row));
    // A gene store is not a cell store, nor the other way round.
    let err = CellStore::open(genes_path).err().unwrap().to_string();
    assert!(err.contains("this is a gene store"), "{err}");
    let err = GeneStore::open(&cells).err().unwrap().to_string();
    assert!(err.contains("this is a cell store"), "{err}");
    // The table loads in pyarrow-style readers as plain columns: cell, metadata, vector.
    let contents = read_parquet(&cells.join("vectors.parquet")).unwrap();
    let names: Vec<String> = contents.batches[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["cell", "bulk_labels", "donor", "vector"]);
}

#[test]
fn neighbours_of_a_cell_and_of_a_batch_of_cells() {
    let tmp = tempfile::tempdir().unwrap();
    let cells = cell_store(tmp.path());
    let store = bftembed::store::CellStore::open(&cells).unwrap();
    let id = store.cells()[3].clone();
    let out = bftembed(&[
        "neighbors",
        "--cell",
        &id,
        "--store",
        s(&cells),
        "-k",
        "4",
        "--exact",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hits = json["neighbors"].as_array().unwrap();
    let expected = store
        .neighbors_of_row(3, 4, bftembed::store::SearchMode::Exact)
        .unwrap();
    assert_eq!(hits.len(), 4);
    for (hit, want) in hits.iter().zip(&expected) {
        assert_eq!(hit["cell"], want.cell.as_str());
        let label = store.metadata_column("bulk_labels").unwrap()[want.row].clone();
        assert_eq!(hit["bulk_labels"].as_str(), label.as_deref());
    }
    // A batch: one JSON line per id, in the file's order.
    let queries = tmp.path().join("ids.txt");
    let ids: Vec<&str> = store.cells()[..20].iter().map(String::as_str).collect();
    std::fs::write(&queries, ids.join("\n") + "\n").unwrap();
    let out = bftembed(&[
        "neighbors",
        "--queries",
        s(&queries),
        "--store",
        s(&cells),
        "-k",
        "3",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 20);
    assert!(lines.iter().zip(&ids).all(|(l, id)| l["query"] == *id));
    // An unknown id is named, with its line, before any search.
    std::fs::write(&queries, format!("{}\nNOT-A-CELL\n", ids[0])).unwrap();
    let out = bftembed(&["neighbors", "--queries", s(&queries), "--store", s(&cells)]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("ids.txt:2") && err.contains("no cell 'NOT-A-CELL'"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

/// Leave-fold-out k-NN by hand: exact cosine over the store's vectors, similarity-weighted
/// vote, the same folds as `annotate --folds` (seeded permutation, position mod folds):
/// the accuracy and each cell's predicted label.
fn cross_validated_by_hand(
    store: &bftembed::store::CellStore,
    label: &str,
    folds: usize,
    k: usize,
) -> (f64, Vec<String>) {
    let labels = store.metadata_column(label).unwrap();
    let n = store.len();
    let mut fold = vec![0; n];
    for (i, row) in bftembed::rng::SplitMix64::new(0)
        .permutation(n)
        .into_iter()
        .enumerate()
    {
        fold[row] = i % folds;
    }
    let mut right = 0;
    let mut predicted = Vec::with_capacity(n);
    for q in 0..n {
        let mut scored: Vec<(usize, f32)> = (0..n)
            .filter(|&r| fold[r] != fold[q])
            .map(|r| (r, cosine(store.vector(q), store.vector(r))))
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut votes: std::collections::BTreeMap<&str, f32> = Default::default();
        for (r, sim) in scored.iter().take(k) {
            if let Some(label) = labels[*r].as_deref() {
                *votes.entry(label).or_default() += sim.max(0.0);
            }
        }
        let best = votes
            .iter()
            .fold(None, |b: Option<(&str, f32)>, (l, w)| match b {
                Some((_, bw)) if bw >= *w => b,
                _ => Some((l, *w)),
            })
            .unwrap()
            .0;
        right += usize::from(Some(best) == labels[q].as_deref());
        predicted.push(best.to_string());
    }
    // Cells without a true label are not scored.
    (
        right as f64 / labels.iter().flatten().count() as f64,
        predicted,
    )
}

#[test]
fn annotate_cross_validates_a_reference_as_a_by_hand_vote_does() {
    let tmp = tempfile::tempdir().unwrap();
    let cells = cell_store(tmp.path());
    let report = tmp.path().join("cv.json");
    let predictions = tmp.path().join("cv.parquet");
    let out = bftembed(&[
        "annotate",
        "--reference",
        s(&cells),
        "--label",
        "bulk_labels",
        "--folds",
        "5",
        "-k",
        "5",
        "--exact",
        "--report",
        s(&report),
        "--out",
        s(&predictions),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let agreement = &json["agreement"];
    let store = bftembed::store::CellStore::open(&cells).unwrap();
    let (by_hand, by_hand_labels) = cross_validated_by_hand(&store, "bulk_labels", 5, 5);
    let accuracy = agreement["accuracy"].as_f64().unwrap();
    assert!((accuracy - by_hand).abs() < 1e-9, "{accuracy} vs {by_hand}");
    // The confusion matrix counts every labelled cell once, its diagonal the right ones.
    let labelled = store
        .metadata_column("bulk_labels")
        .unwrap()
        .iter()
        .flatten()
        .count() as u64;
    assert_eq!(agreement["cells"], labelled);
    let confusion: Vec<Vec<u64>> = serde_json::from_value(agreement["confusion"].clone()).unwrap();
    assert_eq!(confusion.iter().flatten().sum::<u64>(), labelled);
    let rows: Vec<String> = serde_json::from_value(agreement["true_classes"].clone()).unwrap();
    let cols: Vec<String> = serde_json::from_value(agreement["predicted_classes"].clone()).unwrap();
    let diagonal: u64 = rows
        .iter()
        .enumerate()
        .filter_map(|(i, c)| cols.iter().position(|p| p == c).map(|j| confusion[i][j]))
        .sum();
    assert!((diagonal as f64 / labelled as f64 - accuracy).abs() < 1e-9);
    // The predictions table: one row per cell, with its true label beside.
    let contents = read_parquet(&predictions).unwrap();
    let batch = &contents.batches[0];
    let predicted = bftembed::io::parquet::strings(batch, "predicted", &predictions).unwrap();
    let truth = bftembed::io::parquet::strings(batch, "true_bulk_labels", &predictions).unwrap();
    assert_eq!(predicted.len(), 60);
    // Cell by cell, not only in total: each cell's voters come from the other folds.
    assert_eq!(predicted, by_hand_labels);
    let right = predicted
        .iter()
        .zip(&truth)
        .filter(|(p, t)| p == t && !t.is_empty())
        .count();
    assert_eq!(right as f64 / labelled as f64, accuracy);
}

#[test]
fn annotate_maps_query_cells_made_the_reference_way_and_refuses_what_cannot_compare() {
    let (_keep, genes_path) = store();
    let tmp = tempfile::tempdir().unwrap();
    let cells = cell_store(tmp.path());
    // The reference's own cells as the query: each finds itself first (cosine 1), so
    // every label comes back right; this pins that query cells are made as the
    // reference's were (another recipe or gene store would not give cosine 1).
    let predictions = tmp.path().join("p.parquet");
    let out = bftembed(&[
        "annotate",
        "--reference",
        s(&cells),
        "--label",
        "bulk_labels",
        "--query",
        s(&source()),
        "--truth",
        "bulk_labels",
        "-k",
        "1",
        "--out",
        s(&predictions),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("accuracy 1.000"));
    let contents = read_parquet(&predictions).unwrap();
    let (_, similarity) = (
        0,
        contents.batches[0]
            .column_by_name("nearest_similarity")
            .unwrap()
            .clone(),
    );
    let similarity = similarity
        .as_any()
        .downcast_ref::<arrow::array::Float32Array>()
        .unwrap();
    assert!(similarity.values().iter().all(|s| *s > 0.9999));
    // The same with -k 5 into a copy of the .h5ad: the labels land in obs as the copy
    // that anndata opened (make_annotate_fixture.py) has them, the input's columns kept.
    let copy = tmp.path().join("annotated.h5ad");
    let out = bftembed(&[
        "annotate",
        "--reference",
        s(&cells),
        "--label",
        "bulk_labels",
        "--query",
        s(&source()),
        "-k",
        "5",
        "--h5ad-out",
        s(&copy),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let written = H5ad::open(&copy).unwrap();
    let checked = H5ad::open(&common::fixture("pbmc68k_subset_annotated.h5ad")).unwrap();
    let input = H5ad::open(&source()).unwrap();
    assert_eq!(
        written.obs_column("predicted_bulk_labels").unwrap(),
        checked.obs_column("predicted_bulk_labels").unwrap()
    );
    for column in ["bulk_labels", "donor", "louvain"] {
        assert_eq!(
            written.obs_column(column).unwrap(),
            input.obs_column(column).unwrap()
        );
    }
    let columns = written.obs_column_order();
    assert_eq!(columns[..4], input.obs_column_order()[..]);
    assert!(columns.ends_with(&[
        "predicted_bulk_labels".to_string(),
        "predicted_bulk_labels_vote_share".to_string(),
        "predicted_bulk_labels_similarity".to_string(),
    ]));
    let out = bftembed(&[
        "annotate",
        "--reference",
        s(&cells),
        "--label",
        "bulk_labels",
        "--query",
        s(&copy),
        "-k",
        "5",
        "--h5ad-out",
        s(&tmp.path().join("again.h5ad")),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("never overwritten"),
        "{}",
        stderr(&out)
    );
    // Another gene store (the random floor of the same genes) is refused by checksum.
    let floor = tmp.path().join("floor");
    let out = bftembed(&["random-store", "--like", s(genes_path), "--out", s(&floor)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = bftembed(&[
        "annotate",
        "--reference",
        s(&cells),
        "--label",
        "bulk_labels",
        "--query",
        s(&source()),
        "--gene-store",
        s(&floor),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("other gene vectors"),
        "{}",
        stderr(&out)
    );
    // A label the reference does not carry, and a query with no known gene.
    let out = bftembed(&[
        "annotate",
        "--reference",
        s(&cells),
        "--label",
        "louvain",
        "--folds",
        "5",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no metadata column 'louvain'"),
        "{}",
        stderr(&out)
    );
    let unknown = tmp.path().join("m.csv");
    std::fs::write(&unknown, "cell,NOTAGENE1,NOTAGENE2\nc1,1,2\n").unwrap();
    let out = bftembed(&[
        "annotate",
        "--reference",
        s(&cells),
        "--label",
        "bulk_labels",
        "--query",
        s(&unknown),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("none of the matrix's 2 genes"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_damaged_cell_store_is_refused_and_verify_reads_every_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let cells = cell_store(tmp.path());
    let out = bftembed(&["verify", "--store", s(&cells)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("intact"));
    // One byte changed in the middle of the table: verify names the file; a full open
    // refuses it; the cheap open (forced here for a small store) may not see it, but
    // never panics over it.
    let table = cells.join("vectors.parquet");
    let mut bytes = std::fs::read(&table).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&table, &bytes).unwrap();
    let out = bftembed(&["verify", "--store", s(&cells)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("vectors.parquet") && stderr(&out).contains("does not match"));
    let err = bftembed::store::CellStore::open(&cells)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("does not match the manifest"), "{err}");
    let first = bftembed::store::CellStore::open(&tmp.path().join("none"))
        .err()
        .unwrap();
    assert!(first.to_string().contains("no such store folder"));
    let quick = Command::new(env!("CARGO_BIN_EXE_bftembed"))
        .args(["neighbors", "--cell", "x", "--store", s(&cells)])
        .env("BFTEMBED_FULL_CHECK_BYTES", "0")
        .output()
        .unwrap();
    assert_eq!(quick.status.code(), Some(1), "{}", stderr(&quick));
    // Truncated: refused on open at either depth.
    std::fs::write(&table, &bytes[..bytes.len() - 100]).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bftembed"))
        .args(["neighbors", "--cell", "x", "--store", s(&cells)])
        .env("BFTEMBED_FULL_CHECK_BYTES", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("vectors.parquet"), "{}", stderr(&out));
}
