//! Issue 14's evaluation cases, each on real genes and real task data: stores with one
//! folder name, task numbers out of range, stores that cover too little, a failing task
//! among good ones, stores scored on different items, HNSW settings out of range, and
//! gene identifiers (Ensembl ids, 10x v3 features files, mouse-style symbols).

mod common;

use common::{bftembed, stderr};

use bftembed::genes::GeneCatalog;
use bftembed::io::ExpressionMatrix;
use bftembed::tasks::{evaluate_each, GeneVectors, SymbolMapper, TaskSpec};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The dosage task's genes that have a RefSeq summary, with their class
/// (dosage-sensitive or not), in label-file order.
fn dosage_genes() -> Vec<(String, bool)> {
    let path = repo("data/geneformer_dosage_sensitive_tfs/dosage_sens_tf_labels.csv.gz");
    let mut table = bftembed::io::csv_table::CsvTable::open(&path).unwrap();
    let (name, sensitive) = (
        table.column("gene_name").unwrap(),
        table.column("dosage_sensitive").unwrap(),
    );
    let catalog = GeneCatalog::embedded().unwrap();
    let summaries = bftembed::profile::RefseqSummaries::embedded().unwrap();
    let with_summary: std::collections::HashSet<String> = summaries
        .all_profiles(&catalog)
        .records
        .into_iter()
        .map(|r| r.symbol)
        .collect();
    table
        .records()
        .map(|r| {
            let r = r.unwrap();
            (
                r.get(name).unwrap().to_string(),
                r.get(sensitive) == Some("Yes"),
            )
        })
        .filter(|(g, _)| with_summary.contains(g))
        .collect()
}

/// Builds a store with the CLI from RefSeq profiles of `genes` (`summary` texts when
/// asked, so two stores of the same genes differ).
fn build_store(dir: &Path, genes: &[String], text: &str) -> PathBuf {
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    let list = dir.with_extension("txt");
    std::fs::write(&list, genes.join("\n")).unwrap();
    let profiles = dir.with_extension("parquet");
    let out = bftembed(&[
        "profile",
        "--genes",
        p(&list),
        "--text",
        text,
        "--out",
        p(&profiles),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = bftembed(&[
        "embed",
        "--profiles",
        p(&profiles),
        "--out",
        p(dir),
        "--model",
        "all-minilm-l6-v2",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    dir.to_path_buf()
}

/// Three stores built once: `a/store` (every dosage gene, named texts), `b/store` (two
/// thirds of them, summary texts) and `c/random` (like b, under the floor's name).
struct Stores {
    _dir: tempfile::TempDir,
    a: PathBuf,
    b: PathBuf,
    random: PathBuf,
}

fn stores() -> &'static Stores {
    static STORES: OnceLock<Stores> = OnceLock::new();
    STORES.get_or_init(|| {
        common::embedding_model();
        let dir = tempfile::tempdir().unwrap();
        let dosage = dosage_genes();
        let mut genes: Vec<String> = dosage.iter().map(|(g, _)| g.clone()).collect();
        // Two of every three genes, so both classes stay in the smaller stores.
        let part: Vec<String> = genes
            .iter()
            .step_by(3)
            .chain(genes.iter().skip(1).step_by(3))
            .cloned()
            .collect();
        let part = part.as_slice();
        genes.extend(["TP53", "MDM2", "CD4", "INS"].map(String::from));
        Stores {
            a: build_store(&dir.path().join("a/store"), &genes, "named"),
            b: build_store(&dir.path().join("b/store"), part, "summary"),
            random: build_store(&dir.path().join("c/random"), part, "summary"),
            _dir: dir,
        }
    })
}

fn eval(stores: &[&Path], tasks: &Path, report: &Path) -> Output {
    let mut args = vec!["eval"];
    for s in stores {
        args.extend(["--store", p(s)]);
    }
    args.extend(["--tasks", p(tasks), "--report", p(report)]);
    bftembed(&args)
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A shipped task file with data paths made absolute and `edit` applied.
fn task_copy(dir: &Path, name: &str, mut edit: impl FnMut(String) -> String) -> PathBuf {
    let text = std::fs::read_to_string(repo("tasks").join(name))
        .unwrap()
        .replace("../data/", &format!("{}/", repo("data").display()));
    let path = dir.join(name);
    std::fs::write(&path, edit(text)).unwrap();
    path
}

#[test]
#[ignore = "slow: real data at full size; `bash .ci/run` (or `cargo test --release -- --include-ignored`) runs it"]
fn stores_with_one_folder_name_keep_their_own_scores_everywhere() {
    let s = stores();
    let tmp = tempfile::tempdir().unwrap();
    let task = task_copy(tmp.path(), "dosage_sensitive_tfs.toml", |t| t);
    let report = tmp.path().join("report");
    let out = eval(&[&s.a, &s.b, &s.random], &task, &report);
    assert!(out.status.success(), "{}", stderr(&out));
    let json = read_json(&report.join("report.json"));
    let names: Vec<&str> = json["stores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a/store", "b/store", "c/random", "random"]);
    // The summary table's cell of each store is that store's own score.
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    let row = md
        .lines()
        .find(|l| l.starts_with("| dosage_sensitive_tfs |"))
        .unwrap();
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    let scores = json["tasks"][0]["scores"].as_array().unwrap();
    let a = scores[0]["value"].as_f64().unwrap();
    let b = scores[1]["value"].as_f64().unwrap();
    assert!(
        (a - b).abs() > 1e-3,
        "the two stores should differ: {a} {b}"
    );
    for (i, score) in scores.iter().enumerate() {
        assert_eq!(score["store"], names[i]);
        let shown = format!("{:.3}", score["value"].as_f64().unwrap());
        assert!(cells[3 + i].starts_with(&shown), "{row}");
    }
    // The same folder twice is refused before any work.
    let out = eval(&[&s.a, &s.a], &task, &tmp.path().join("twice"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("are the same store"),
        "{}",
        stderr(&out)
    );
    assert!(!tmp.path().join("twice").exists());
}

#[test]
#[ignore = "slow: real data at full size; `bash .ci/run` (or `cargo test --release -- --include-ignored`) runs it"]
fn several_stores_are_scored_on_the_items_all_of_them_cover() {
    let s = stores();
    let tmp = tempfile::tempdir().unwrap();
    let task = task_copy(tmp.path(), "dosage_sensitive_tfs.toml", |t| t);
    let report = tmp.path().join("report");
    let out = eval(&[&s.a, &s.b], &task, &report);
    assert!(out.status.success(), "{}", stderr(&out));
    let json = read_json(&report.join("report.json"));
    assert_eq!(json["common_items"], true);
    let scores = json["tasks"][0]["scores"].as_array().unwrap();
    let scored: Vec<u64> = scores
        .iter()
        .map(|x| x["items_covered"].as_u64().unwrap())
        .collect();
    let tested: Vec<u64> = scores
        .iter()
        .map(|x| x["test_items"].as_u64().unwrap())
        .collect();
    assert!(scored.iter().all(|&n| n == scored[0]), "{scored:?}");
    assert!(tested.iter().all(|&n| n == tested[0]), "{tested:?}");
    let own_a = scores[0]["own_items_covered"].as_u64().unwrap();
    let own_b = scores[1]["own_items_covered"].as_u64().unwrap();
    assert!(
        own_a > own_b && own_b >= scored[0],
        "{own_a} {own_b} {scored:?}"
    );
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(md.contains("items that all of them cover"), "{md}");
    assert!(md.contains(&format!("{own_a}/")), "{md}");

    // One store alone is scored on everything it covers.
    let alone = tmp.path().join("alone");
    let out = eval(&[&s.a], &task, &alone);
    assert!(out.status.success(), "{}", stderr(&out));
    let json = read_json(&alone.join("report.json"));
    let score = &json["tasks"][0]["scores"][0];
    assert_eq!(score["items_covered"].as_u64().unwrap(), own_a);
}

#[test]
#[ignore = "slow: real data at full size; `bash .ci/run` (or `cargo test --release -- --include-ignored`) runs it"]
fn a_store_that_covers_too_little_fails_its_task_clearly_and_the_rest_still_runs() {
    let s = stores();
    let tmp = tempfile::tempdir().unwrap();
    let tiny = build_store(
        &tmp.path().join("tiny"),
        &["TP53", "MDM2", "CD4", "INS"].map(String::from),
        "named",
    );
    let tasks = tmp.path().join("tasks");
    std::fs::create_dir_all(&tasks).unwrap();
    task_copy(&tasks, "dosage_sensitive_tfs.toml", |t| t);
    let report = tmp.path().join("report");
    let out = eval(&[&tiny], &tasks.join("dosage_sensitive_tfs.toml"), &report);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("dosage_sensitive_tfs") && err.contains("covers none"),
        "{err}"
    );
    assert!(err.contains("no report written"), "{err}");
    assert!(!report.exists(), "nothing was scored, so no report");

    // One class only: six dosage-insensitive TFs.
    let insensitive: Vec<String> = dosage_genes()
        .into_iter()
        .filter(|(_, sensitive)| !sensitive)
        .take(6)
        .map(|(g, _)| g)
        .collect();
    let one_class = build_store(&tmp.path().join("one"), &insensitive, "named");
    let out = eval(
        &[&one_class],
        &tasks.join("dosage_sensitive_tfs.toml"),
        &tmp.path().join("r1"),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("one class"), "{}", stderr(&out));

    // A failing task beside a good one: the good one is scored and reported.
    task_copy(&tasks, "hgnc_gene_families.toml", |t| t);
    let report = tmp.path().join("both");
    let out = eval(&[&s.a], &tasks, &report);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let json = read_json(&report.join("report.json"));
    let scored: Vec<&str> = json["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(scored, ["dosage_sensitive_tfs"]);
    assert_eq!(json["failed"][0]["id"], "hgnc_gene_families");
    assert!(stderr(&out).contains("1 of 2 tasks could not be scored"));
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(
        md.contains("could not be scored") && md.contains("hgnc_gene_families"),
        "{md}"
    );
}

/// (task file, table, key, bad value): every number a task kind reads.
const BAD_NUMBERS: &[(&str, &str, &str, &str)] = &[
    (
        "kang_ifnb_response.toml",
        "expression_response",
        "folds",
        "0",
    ),
    (
        "kang_ifnb_response.toml",
        "expression_response",
        "folds",
        "1",
    ),
    (
        "kang_ifnb_response.toml",
        "expression_response",
        "ridge",
        "0.0",
    ),
    (
        "kang_ifnb_response.toml",
        "expression_response",
        "ridge",
        "nan",
    ),
    (
        "kang_ifnb_response.toml",
        "expression_response",
        "min_expression",
        "-1.0",
    ),
    (
        "kang_ifnb_response.toml",
        "expression_response",
        "min_cells",
        "-3",
    ),
    ("pbmc68k_celltype_w_knn.toml", "cell_types", "folds", "0"),
    ("pbmc68k_celltype_w_knn.toml", "cell_types", "k", "0"),
    (
        "pbmc68k_celltype_s_knn.toml",
        "cell_types",
        "top_genes",
        "0",
    ),
    ("dosage_sensitive_tfs.toml", "gene_classes", "folds", "0"),
    ("dosage_sensitive_tfs.toml", "probe", "alpha", "-1.0"),
    ("dosage_sensitive_tfs.toml", "probe", "max_iterations", "0"),
    ("hgnc_gene_families.toml", "gene_families", "folds", "1"),
    ("replogle_k562_cv.toml", "perturbations", "folds", "0"),
    ("replogle_k562_cv.toml", "perturbations", "neighbors", "0"),
    (
        "ggi_gene_disjoint.toml",
        "gene_pairs",
        "held_out_genes",
        "1.5",
    ),
    (
        "ggi_gene_disjoint.toml",
        "gene_pairs",
        "max_train_pairs",
        "0",
    ),
];

/// Sets `key = value` inside `[table]`, replacing the line if the key is there.
fn set_key(text: &str, table: &str, key: &str, value: &str) -> (String, usize) {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut line_no = 0;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            if current == table && line_no == 0 {
                out.push(format!("{key} = {value}"));
                line_no = out.len();
            }
            current = t.trim_matches(|c| c == '[' || c == ']').to_string();
        } else if current == table && t.split('=').next().unwrap().trim() == key {
            out.push(format!("{key} = {value}"));
            line_no = out.len();
            continue;
        }
        out.push(line.to_string());
    }
    if line_no == 0 {
        if current != table {
            out.push(format!("[{table}]"));
        }
        out.push(format!("{key} = {value}"));
        line_no = out.len();
    }
    (out.join("\n") + "\n", line_no)
}

#[test]
fn every_out_of_range_number_is_named_with_its_key_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    for &(file, table, key, value) in BAD_NUMBERS {
        let mut line = 0;
        let path = task_copy(tmp.path(), file, |t| {
            let (t, l) = set_key(&t, table, key, value);
            line = l;
            t
        });
        let err = TaskSpec::read(&path).unwrap_err().to_string();
        assert!(err.contains(key), "{file} {key} = {value}: {err}");
        assert!(
            err.contains(&format!("{file}:{line}")) || err.contains(&format!("line {line}")),
            "{file} {key} = {value} (line {line}): {err}"
        );
    }
    // Through the CLI: folds = 0 used to report r = 0.000 and exit 0.
    let path = task_copy(tmp.path(), "kang_ifnb_response.toml", |t| {
        set_key(&t, "expression_response", "folds", "0").0
    });
    let out = bftembed(&[
        "eval",
        "--tasks",
        p(&path),
        "--report",
        p(&tmp.path().join("r")),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("folds = 0"), "{}", stderr(&out));
    assert!(!tmp.path().join("r").exists());
}

#[test]
#[ignore = "slow: real data at full size; `bash .ci/run` (or `cargo test --release -- --include-ignored`) runs it"]
fn hnsw_links_out_of_range_are_refused_before_any_work() {
    let s = stores();
    let tmp = tempfile::tempdir().unwrap();
    let profiles = s.b.with_extension("parquet");
    for m in ["0", "1", "256", "300"] {
        let out_dir = tmp.path().join(format!("m{m}"));
        let out = bftembed(&[
            "embed",
            "--profiles",
            p(&profiles),
            "--out",
            p(&out_dir),
            "--hnsw-m",
            m,
        ]);
        assert_eq!(out.status.code(), Some(1), "--hnsw-m {m}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("--hnsw-m") && stderr(&out).contains("between 2 and 255"),
            "{}",
            stderr(&out)
        );
        assert!(!out_dir.exists());
        assert!(std::fs::read_dir(tmp.path()).unwrap().next().is_none());
    }
    let out = bftembed(&["reindex", "--store", p(&s.b), "--hnsw-m", "300"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
#[ignore = "slow: real data at full size; `bash .ci/run` (or `cargo test --release -- --include-ignored`) runs it"]
fn ensembl_ids_resolve_and_mouse_style_symbols_are_reported() {
    let s = stores();
    let out = bftembed(&[
        "neighbors",
        "ENSG00000141510",
        "--store",
        p(&s.a),
        "-k",
        "3",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("TP53"));
    let out = bftembed(&["neighbors", "Tp53", "--store", p(&s.a), "-k", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("only when case is ignored"),
        "{}",
        stderr(&out)
    );

    let tmp = tempfile::tempdir().unwrap();
    let list = tmp.path().join("mouse.txt");
    std::fs::write(&list, "Cd4\nGapdh\nENSG00000141510\n").unwrap();
    let out = bftembed(&[
        "profile",
        "--genes",
        p(&list),
        "--out",
        p(&tmp.path().join("m.parquet")),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("2 names") && err.contains("Cd4 -> CD4"),
        "{err}"
    );
    assert!(err.contains("wrote 3 profiles"), "{err}");

    // A task whose symbol column holds Ensembl ids scores the same genes.
    let by_id = task_copy(tmp.path(), "dosage_sensitive_tfs.toml", |t| {
        t.replace(
            "symbol_column = \"gene_name\"",
            "symbol_column = \"ensembl_id\"",
        )
    });
    let report = tmp.path().join("by_id");
    let out = eval(&[&s.a], &by_id, &report);
    assert!(out.status.success(), "{}", stderr(&out));
    let covered = read_json(&report.join("report.json"))["tasks"][0]["scores"][0]["items_covered"]
        .as_u64()
        .unwrap();
    assert!(covered > 200, "{covered}");
}

/// Kang's genes file rewritten: as a 10x v3 features file (Ensembl id, symbol, type)
/// where HGNC knows the id, and with mouse-style capitalisation.
fn kang_genes_as(dir: &Path, catalog: &GeneCatalog, mouse: bool) -> PathBuf {
    let genes =
        bftembed::fsutil::read_utf8_lines(&repo("data/kang2018_ifnb_pbmc_2800/genes.tsv.gz"))
            .unwrap();
    let lines: Vec<String> = genes
        .iter()
        .enumerate()
        .map(|(i, g)| {
            if mouse {
                let mut c = g.to_lowercase();
                c[..1].make_ascii_uppercase();
                c
            } else {
                let id = catalog
                    .resolve(g)
                    .ok()
                    .and_then(|r| r.gene.ensembl_id.clone())
                    .unwrap_or_else(|| format!("ENSG99{i:09}"));
                format!("{id}\t{g}\tGene Expression")
            }
        })
        .collect();
    let path = dir.join(if mouse { "mouse.tsv" } else { "features.tsv" });
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

#[test]
#[ignore = "slow: real data at full size; `bash .ci/run` (or `cargo test --release -- --include-ignored`) runs it"]
fn ten_x_v3_features_and_mouse_style_genes_in_an_expression_matrix() {
    let s = stores();
    let catalog = GeneCatalog::embedded().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let features = kang_genes_as(tmp.path(), &catalog, false);
    let kang = |f: &str| repo(&format!("data/kang2018_ifnb_pbmc_2800/{f}"));
    let matrix = ExpressionMatrix::read_matrix_market(
        &kang("counts_genes_x_cells.mtx.gz"),
        &features,
        &kang("barcodes.tsv.gz"),
    )
    .unwrap();
    assert!(matrix.genes[0].starts_with("ENSG"), "{}", matrix.genes[0]);
    assert!(matrix.gene_symbols.is_some());
    let mut mapper = SymbolMapper::new(&catalog);
    assert_eq!(
        mapper.approved(&matrix.genes[0]).is_some(),
        catalog.resolve("AL627309.1").is_ok()
    );

    let store = bftembed::store::GeneStore::open(&s.a).unwrap();
    let score_with = |genes: &Path| {
        let task = task_copy(tmp.path(), "kang_celltype_w_logistic.toml", |t| {
            t.replace(
                &format!("{}", kang("genes.tsv.gz").display()),
                &genes.display().to_string(),
            )
        });
        let spec = TaskSpec::read(&task).unwrap();
        let vectors = GeneVectors::from_store(&store, "a");
        evaluate_each(&[spec], vec![(vectors, "a".into())], &catalog).unwrap()
    };
    let (shipped, _) = score_with(&kang("genes.tsv.gz"));
    let (v3, failed) = score_with(&features);
    assert!(failed.is_empty());
    let known = |r: &bftembed::tasks::EvalReport| r.tasks[0].scores[0].get("genes known").unwrap();
    assert_eq!(
        known(&v3),
        known(&shipped),
        "the features file reads as the symbols do"
    );
    assert_eq!(v3.case_only_genes.count, 0);

    let mouse = kang_genes_as(tmp.path(), &catalog, true);
    let (report, _) = score_with(&mouse);
    assert!(
        report.case_only_genes.count > 100,
        "{:?}",
        report.case_only_genes
    );
    let md = report.markdown();
    assert!(md.contains("only when case is ignored"), "{md}");
}

#[test]
#[ignore = "slow: real data at full size; `bash .ci/run` (or `cargo test --release -- --include-ignored`) runs it"]
fn cell_embeddings_are_shared_only_by_tasks_that_embed_the_same_cells() {
    let s = stores();
    let tmp = tempfile::tempdir().unwrap();
    let catalog = GeneCatalog::embedded().unwrap();
    // First a task whose test value matches no cell (it fails after embedding the
    // training cells), then the shipped task on all 2,800 cells: the second must not
    // reuse the first one's cells.
    let wrong = task_copy(tmp.path(), "kang_celltype_w_logistic.toml", |t| {
        t.replace("test_value = \"STIM\"", "test_value = \"stim\"")
            .replace(
                "id = \"kang_celltype_w_logistic\"",
                "id = \"wrong_test_value\"",
            )
    });
    let wrong = TaskSpec::read(&wrong).unwrap();
    let right = TaskSpec::read(&task_copy(
        tmp.path(),
        "kang_celltype_w_logistic.toml",
        |t| t,
    ))
    .unwrap();
    let store = bftembed::store::GeneStore::open(&s.a).unwrap();
    let vectors = GeneVectors::from_store(&store, "a");
    let (report, failed) =
        evaluate_each(&[wrong, right], vec![(vectors, "a".into())], &catalog).unwrap();
    assert_eq!(
        failed.len(),
        1,
        "{:?}",
        failed.iter().map(|f| f.1.to_string()).collect::<Vec<_>>()
    );
    assert_eq!(report.tasks[0].id, "kang_celltype_w_logistic");
    assert_eq!(report.tasks[0].scores[0].items_total, 2800);
}
