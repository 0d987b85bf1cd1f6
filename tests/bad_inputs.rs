//! The bad-input corpus (`tests/bad_inputs/`, written by its `make_corpus.py`): the CLI
//! on each file must exit 1 (an error, not a panic's 101), name the file and, where the
//! fault is on a line, the line, and leave no output behind.

mod common;

use common::bftembed;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/bad_inputs")
        .join(name)
}

/// How a case reaches the CLI.
#[derive(Clone, Copy)]
enum Run {
    /// `profile --genes FILE`.
    GeneList,
    /// `eval` on a task file of this kind whose data file is FILE.
    TaskData(&'static str),
    /// `eval --tasks FILE`.
    TaskFile,
    /// `study --config FILE`.
    Study,
    /// `train --config FILE`.
    Train,
    /// `embed --profiles FILE`.
    Profiles,
    /// `profile --source model --model DIR` with FILE as the folder's GGUF.
    Gguf,
    /// `embed --texts` with an encoder folder whose weights are FILE.
    Safetensors,
}

/// (file, how it runs, what the message must contain besides the file name).
const CASES: &[(&str, Run, &[&str])] = &[
    (
        "genes_two_fields.txt",
        Run::GeneList,
        &[":2:", "one gene symbol per line"],
    ),
    (
        "genes_bad_character.txt",
        Run::GeneList,
        &[":4:", "not a gene symbol"],
    ),
    ("genes_empty.txt", Run::GeneList, &["empty"]),
    ("genes_only_comments.txt", Run::GeneList, &["empty"]),
    ("genes_non_utf8.txt", Run::GeneList, &[":2:", "UTF-8"]),
    ("genes_truncated.txt.gz", Run::GeneList, &["gzip"]),
    (
        "labels_missing_column.csv",
        Run::TaskData("classes"),
        &["gene_name"],
    ),
    ("labels_ragged.csv", Run::TaskData("classes"), &[":3:"]),
    ("labels_empty.csv", Run::TaskData("classes"), &["empty"]),
    (
        "labels_non_utf8.csv",
        Run::TaskData("classes"),
        &[":2:", "UTF-8"],
    ),
    (
        "labels_truncated.csv.gz",
        Run::TaskData("classes"),
        &["gzip"],
    ),
    ("families_ragged.tsv", Run::TaskData("families"), &[":3:"]),
    (
        "families_non_utf8.tsv",
        Run::TaskData("families"),
        &[":2:", "UTF-8"],
    ),
    (
        "pairs_three_genes.txt",
        Run::TaskData("pairs"),
        &[":2:", "two gene symbols"],
    ),
    (
        "pairs_non_utf8.txt",
        Run::TaskData("pairs"),
        &[":2:", "UTF-8"],
    ),
    (
        "pairs_labels_not_binary.txt",
        Run::TaskData("pair_labels"),
        &[":2:", "not 0 or 1"],
    ),
    (
        "pairs_labels_short.txt",
        Run::TaskData("pair_labels"),
        &["1 labels for 2 pairs"],
    ),
    ("signatures_one_field.gmt", Run::TaskData("gmt"), &[":2:"]),
    (
        "signatures_non_utf8.gmt",
        Run::TaskData("gmt"),
        &[":1:", "UTF-8"],
    ),
    ("signatures_empty.gmt", Run::TaskData("gmt"), &["empty"]),
    (
        "response_bad_number.tsv",
        Run::TaskData("response"),
        &[":3:", "many"],
    ),
    ("response_ragged.tsv", Run::TaskData("response"), &[":2:"]),
    (
        "response_nan.tsv",
        Run::TaskData("response"),
        &[":3:", "finite"],
    ),
    (
        "sizes_header_only.tsv",
        Run::TaskData("sizes"),
        &["no group sizes"],
    ),
    (
        "sizes_bad_count.tsv",
        Run::TaskData("sizes"),
        &[":2:", "forty"],
    ),
    (
        "mtx_bad_header.mtx",
        Run::TaskData("mtx"),
        &[":1:", "coordinate"],
    ),
    (
        "mtx_out_of_range.mtx",
        Run::TaskData("mtx"),
        &[":4:", "outside 3 × 2"],
    ),
    (
        "mtx_size_mismatch.mtx",
        Run::TaskData("mtx"),
        &[":2:", "4 × 2", "3 genes"],
    ),
    (
        "mtx_truncated.mtx",
        Run::TaskData("mtx"),
        &["declares 4 entries", "holds 2"],
    ),
    ("mtx_bad_value.mtx", Run::TaskData("mtx"), &[":3:"]),
    (
        "cells_missing_column.csv",
        Run::TaskData("cells"),
        &["cell_type"],
    ),
    (
        "anndata_truncated.h5ad",
        Run::TaskData("h5ad"),
        &["truncated"],
    ),
    (
        "anndata_not_hdf5.h5ad",
        Run::TaskData("h5ad"),
        &["not an HDF5 file"],
    ),
    ("task_unknown_key.toml", Run::TaskFile, &["line 10", "fold"]),
    ("task_wrong_type.toml", Run::TaskFile, &["line 10", "folds"]),
    ("task_folds_zero.toml", Run::TaskFile, &[":7:", "folds = 0"]),
    ("task_k_zero.toml", Run::TaskFile, &[":13:", "k = 0"]),
    ("task_two_kinds.toml", Run::TaskFile, &["exactly one"]),
    ("task_non_utf8.toml", Run::TaskFile, &["UTF-8"]),
    (
        "task_not_toml.toml",
        Run::TaskFile,
        &["TOML parse error at line"],
    ),
    ("study_unknown_key.toml", Run::Study, &["line 2", "splti"]),
    ("train_unknown_key.toml", Run::Train, &["learning_rat"]),
    ("train_steps_zero.toml", Run::Train, &["steps"]),
    ("train_negative_rate.toml", Run::Train, &["learning_rate"]),
    ("profiles_truncated.parquet", Run::Profiles, &["Parquet"]),
    ("profiles_wrong_schema.parquet", Run::Profiles, &["column"]),
    ("model_truncated.gguf", Run::Gguf, &[]),
    ("model_bad_magic.gguf", Run::Gguf, &["GGUF"]),
    ("model_truncated.safetensors", Run::Safetensors, &[]),
    (
        "model_bad_header.safetensors",
        Run::Safetensors,
        &["header"],
    ),
];

/// A task file of `kind` reading `data`, written into `dir`.
fn task_for(kind: &str, data: &Path, dir: &Path) -> PathBuf {
    let d = data.display();
    let c = |name: &str| corpus(name).display().to_string();
    let fixture = common::fixture("pbmc68k_subset_anndata.h5ad");
    let body = match kind {
        "classes" => format!("[gene_classes]\nlabels = \"{d}\"\nsymbol_column = \"gene_name\"\nlabel_column = \"dosage_sensitive\"\npositive_value = \"Yes\"\npositive_name = \"s\"\nnegative_name = \"i\"\n"),
        "families" => format!("[gene_families]\nlabels = \"{d}\"\nsymbol_column = \"symbol\"\nclass_column = \"family\"\nclasses = [\"a\", \"b\"]\n"),
        "pairs" => format!("[gene_pairs]\ntrain_pairs = \"{d}\"\ntrain_labels = \"{}\"\ntest_pairs = \"{}\"\ntest_labels = \"{}\"\nsplit = \"given\"\n", c("pairs_labels_good.txt"), c("pairs_good.txt"), c("pairs_labels_good.txt")),
        "pair_labels" => format!("[gene_pairs]\ntrain_pairs = \"{}\"\ntrain_labels = \"{d}\"\ntest_pairs = \"{}\"\ntest_labels = \"{}\"\nsplit = \"given\"\n", c("pairs_good.txt"), c("pairs_good.txt"), c("pairs_labels_good.txt")),
        "gmt" => format!("[perturbations]\ntrain = \"{d}\"\n"),
        "response" => format!("[expression_response]\ntable = \"{d}\"\ncontrol = \"CTRL\"\ntreated = \"STIM\"\n"),
        "sizes" => format!("[expression_response]\ntable = \"{}\"\nsizes = \"{d}\"\ncontrol = \"CTRL\"\ntreated = \"STIM\"\n", c("response_good.tsv")),
        "mtx" => format!("[cell_types]\nmatrix = \"{d}\"\ngenes = \"{}\"\ncells = \"{}\"\nvalues = \"counts\"\nmetadata = \"{}\"\ncell_column = \"cell_id\"\nlabel_column = \"cell_type\"\nembedding = \"weighted\"\nclassifier = \"knn\"\n", c("mtx_genes.txt"), c("mtx_cells.txt"), c("mtx_cells.csv")),
        "cells" => format!("[cell_types]\nmatrix = \"{}\"\ngenes = \"{}\"\ncells = \"{}\"\nvalues = \"counts\"\nmetadata = \"{d}\"\ncell_column = \"cell_id\"\nlabel_column = \"cell_type\"\nembedding = \"weighted\"\nclassifier = \"knn\"\n", c("mtx_good.mtx"), c("mtx_genes.txt"), c("mtx_cells.txt")),
        "h5ad" => format!("[cell_types]\nmatrix = \"{d}\"\nvalues = \"counts\"\nlabel_column = \"bulk_labels\"\nembedding = \"weighted\"\nclassifier = \"knn\"\n"),
        "h5ad_group" => format!("[cell_types]\nmatrix = \"{}\"\nh5ad_matrix = \"layers/spliced\"\nvalues = \"counts\"\nlabel_column = \"bulk_labels\"\nembedding = \"weighted\"\nclassifier = \"knn\"\n", fixture.display()),
        other => panic!("no task kind {other}"),
    };
    let path = dir.join(format!("task_{kind}.toml"));
    std::fs::write(
        &path,
        format!("id = \"bad_{kind}\"\ntitle = \"bad input\"\n{body}"),
    )
    .unwrap();
    path
}

/// A small real store (six genes) built once, for the cases that need one.
fn store() -> &'static Path {
    static STORE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &STORE
        .get_or_init(|| {
            common::embedding_model();
            let dir = tempfile::tempdir().unwrap();
            let genes = dir.path().join("g.txt");
            std::fs::write(&genes, "TP53\nMDM2\nCDKN1A\nATM\nCHEK2\nBRCA1\n").unwrap();
            let profiles = dir.path().join("p.parquet");
            let store = dir.path().join("store");
            for args in [
                vec!["profile", "--genes", s(&genes), "--out", s(&profiles)],
                vec![
                    "embed",
                    "--profiles",
                    s(&profiles),
                    "--out",
                    s(&store),
                    "--model",
                    "all-minilm-l6-v2",
                ],
            ] {
                let out = bftembed(&args);
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            (dir, store)
        })
        .1
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The command line for one case, writing only under `out`.
fn command_for(file: &Path, run: Run, tmp: &Path, out: &Path) -> Vec<String> {
    let owned = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    match run {
        Run::GeneList => owned(&["profile", "--genes", s(file), "--out", s(out)]),
        Run::TaskData(kind) => {
            let task = task_for(kind, file, tmp);
            owned(&[
                "eval",
                "--store",
                s(store()),
                "--tasks",
                s(&task),
                "--report",
                s(out),
            ])
        }
        Run::TaskFile => owned(&[
            "eval",
            "--store",
            s(store()),
            "--tasks",
            s(file),
            "--report",
            s(out),
        ]),
        Run::Study => owned(&["study", "--config", s(file), "--quick"]),
        Run::Train => owned(&["train", "--config", s(file), "--out", s(out)]),
        Run::Profiles => owned(&["embed", "--profiles", s(file), "--out", s(out)]),
        Run::Gguf => {
            let model = tmp.join("gguf_model");
            std::fs::create_dir_all(&model).unwrap();
            std::fs::copy(file, model.join("model.gguf")).unwrap();
            let genes = corpus("mtx_genes.txt");
            owned(&[
                "profile",
                "--genes",
                s(&genes),
                "--source",
                "model",
                "--model",
                s(&model),
                "--out",
                s(out),
            ])
        }
        Run::Safetensors => {
            let model = tmp.join("st_model");
            std::fs::create_dir_all(&model).unwrap();
            let real = common::embedding_model();
            for name in ["config.json", "tokenizer.json"] {
                std::fs::copy(real.path.join(name), model.join(name)).unwrap();
            }
            std::fs::copy(file, model.join("model.safetensors")).unwrap();
            let texts = corpus("mtx_genes.txt");
            owned(&[
                "embed",
                "--texts",
                s(&texts),
                "--model",
                s(&model),
                "--out",
                s(out),
            ])
        }
    }
}

/// Runs one case; returns a description of what was wrong, if anything.
fn check(name: &str, run: Run, expect: &[&str]) -> Option<String> {
    let tmp = tempfile::tempdir().unwrap();
    let file = corpus(name);
    let out = tmp.path().join("out");
    let args = command_for(&file, run, tmp.path(), &out);
    let result = Command::new(env!("CARGO_BIN_EXE_bftembed"))
        .args(&args)
        .current_dir(tmp.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&result.stderr).to_string();
    let mut problems = Vec::new();
    if result.status.code() != Some(1) {
        problems.push(format!("exit {:?}", result.status.code()));
    }
    if err.contains("panicked") {
        problems.push("panicked".into());
    }
    let stem = file.file_name().unwrap().to_string_lossy().to_string();
    let named = matches!(run, Run::Gguf | Run::Safetensors) || err.contains(&stem);
    if !named {
        problems.push(format!("does not name {stem}"));
    }
    for want in expect {
        if !err.contains(want) {
            problems.push(format!("lacks '{want}'"));
        }
    }
    if out.exists() {
        problems.push("left output behind".into());
    }
    (!problems.is_empty()).then(|| format!("{name}: {}\n    {}", problems.join(", "), err.trim()))
}

#[test]
fn every_bad_input_is_refused_by_name_without_a_panic_or_output() {
    let mut failures: Vec<String> = CASES
        .iter()
        .filter_map(|&(name, run, expect)| check(name, run, expect))
        .collect();
    // A group the file does not have (the fixture has no spliced layer).
    let tmp = tempfile::tempdir().unwrap();
    let task = task_for("h5ad_group", Path::new(""), tmp.path());
    let out = tmp.path().join("out");
    let run = bftembed(&[
        "eval",
        "--store",
        s(store()),
        "--tasks",
        s(&task),
        "--report",
        s(&out),
    ]);
    let err = String::from_utf8_lossy(&run.stderr);
    if run.status.code() != Some(1) || !err.contains("layers/spliced") || out.exists() {
        failures.push(format!("h5ad wrong group: {err}"));
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        CASES.len() + 1,
        failures.join("\n")
    );
}

/// A way of damaging a store folder.
type Damage = Box<dyn Fn(&Path)>;

/// Copies the store into `dir` and applies `damage`.
fn damaged_store(dir: &Path, damage: impl Fn(&Path)) -> PathBuf {
    let copy = dir.join("store");
    std::fs::create_dir_all(&copy).unwrap();
    for entry in std::fs::read_dir(store()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
    }
    damage(&copy);
    copy
}

#[test]
fn damaged_stores_are_refused_with_the_file_at_fault() {
    let cases: Vec<(&str, Damage, &str)> = vec![
        (
            "missing index",
            Box::new(|d: &Path| std::fs::remove_file(d.join("index.hnsw.graph")).unwrap()),
            "index.hnsw.graph",
        ),
        (
            "changed vectors",
            Box::new(|d: &Path| {
                let path = d.join("vectors.parquet");
                let mut bytes = std::fs::read(&path).unwrap();
                let at = bytes.len() / 2;
                bytes[at] ^= 0x5a;
                std::fs::write(&path, bytes).unwrap();
            }),
            "vectors.parquet",
        ),
        (
            "edited manifest",
            Box::new(|d: &Path| {
                let path = d.join("manifest.json");
                let text = std::fs::read_to_string(&path)
                    .unwrap()
                    .replace("\"count\": 6", "\"count\": 7");
                std::fs::write(&path, text).unwrap();
            }),
            "manifest",
        ),
        (
            "manifest not JSON",
            Box::new(|d: &Path| std::fs::write(d.join("manifest.json"), "{ not json").unwrap()),
            "manifest.json",
        ),
    ];
    let mut failures = Vec::new();
    for (what, damage, expect) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let store = damaged_store(tmp.path(), damage);
        let run = bftembed(&["neighbors", "TP53", "--store", s(&store)]);
        let err = String::from_utf8_lossy(&run.stderr);
        if run.status.code() != Some(1) || !err.contains(expect) {
            failures.push(format!("{what}: exit {:?}: {err}", run.status.code()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
