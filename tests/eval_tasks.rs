//! The evaluation stage on the full RefSeq gene store: every shipped gene task scores
//! it well above the random floor, the report is complete, and bad task input gives
//! clear errors.

mod common;

use bftembed::genes::GeneCatalog;
use bftembed::tasks::{evaluate, GeneVectors, TaskSpec};
use std::path::{Path, PathBuf};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The shipped task, with fewer training pairs so the test stays quick.
fn quick_task(dir: &Path, name: &str) -> PathBuf {
    let text = std::fs::read_to_string(repo("tasks").join(name))
        .unwrap()
        .replace("../data/", &format!("{}/", repo("data").display()))
        .replace("max_train_pairs = 40000", "max_train_pairs = 8000");
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn refseq_store_beats_the_random_floor_on_every_gene_task() {
    let store = common::full_gene_store();
    let tmp = tempfile::tempdir().unwrap();
    let tasks: Vec<TaskSpec> = [
        "ggi_original.toml",
        "ggi_gene_disjoint.toml",
        "dosage_sensitive_tfs.toml",
    ]
    .iter()
    .map(|n| TaskSpec::read(&quick_task(tmp.path(), n)).unwrap())
    .collect();
    let vectors = GeneVectors::from_store(&store, "refseq");
    let catalog = GeneCatalog::embedded().unwrap();
    let report = evaluate(&tasks, vec![(vectors, "full store".into())], &catalog).unwrap();
    assert_eq!(report.stores.len(), 2, "the random floor is always added");
    assert_eq!(report.tasks.len(), 3);
    for task in &report.tasks {
        assert_eq!(task.scores.len(), 2, "{}: every store scored", task.id);
        let real = &task.scores[0];
        let floor = &task.scores[1];
        assert_eq!(floor.store, "random");
        assert_eq!(
            real.items_covered, floor.items_covered,
            "same genes for both"
        );
        assert!(real.items_covered > 0 && real.items_covered <= real.items_total);
        assert!(
            real.roc_auc > floor.roc_auc + 0.15,
            "{}: refseq {:.3} vs random {:.3}",
            task.id,
            real.roc_auc,
            floor.roc_auc
        );
        assert!(real.roc_auc_interval.0 <= real.roc_auc && real.roc_auc <= real.roc_auc_interval.1);
        assert!(
            (0.4..0.6).contains(&floor.roc_auc),
            "{}: floor {:.3}",
            task.id,
            floor.roc_auc
        );
    }
    let out = tmp.path().join("report");
    report.write(&out).unwrap();
    for file in [
        "report.md",
        "report.json",
        "report.html",
        "roc_ggi_original.svg",
    ] {
        assert!(out.join(file).is_file(), "{file}");
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| dosage_sensitive_tfs |") && md.contains("random"));
}

#[test]
fn bad_task_input_gives_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let typo = tmp.path().join("typo.toml");
    std::fs::write(
        &typo,
        "id = \"t\"\ntitle = \"t\"\n[gene_classes]\nlabels = \"x.csv\"\nsymbol_colum = \"gene\"\n",
    )
    .unwrap();
    let err = TaskSpec::read(&typo).unwrap_err().to_string();
    assert!(
        err.contains("typo.toml") && err.contains("symbol_colum") && err.contains("line 5"),
        "{err}"
    );

    let neither = tmp.path().join("neither.toml");
    std::fs::write(&neither, "id = \"t\"\ntitle = \"t\"\n").unwrap();
    let err = TaskSpec::read(&neither).unwrap_err().to_string();
    assert!(err.contains("exactly one"), "{err}");

    // A label file whose genes are partly unknown to the store, and with one class only.
    let csv = tmp.path().join("labels.csv");
    std::fs::write(
        &csv,
        "gene,flag\nTP53,Yes\nMDM2,Yes\nNOTAGENE1,Yes\nCDKN1A,Yes\nATM,Yes\nCHEK2,Yes\n",
    )
    .unwrap();
    let task = tmp.path().join("one_class.toml");
    std::fs::write(
        &task,
        format!(
            "id = \"one_class\"\ntitle = \"t\"\n[gene_classes]\nlabels = \"{}\"\nsymbol_column = \"gene\"\nlabel_column = \"flag\"\npositive_value = \"Yes\"\npositive_name = \"p\"\nnegative_name = \"n\"\nfolds = 2\n",
            csv.display()
        ),
    )
    .unwrap();
    let spec = TaskSpec::read(&task).unwrap();
    let store = common::full_gene_store();
    let catalog = GeneCatalog::embedded().unwrap();
    let err = evaluate(
        &[spec],
        vec![(GeneVectors::from_store(&store, "refseq"), "s".into())],
        &catalog,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("one_class") && err.contains("negative"),
        "{err}"
    );

    let bad_column = tmp.path().join("bad_column.toml");
    std::fs::write(
        &bad_column,
        std::fs::read_to_string(&task)
            .unwrap()
            .replace("label_column = \"flag\"", "label_column = \"flags\""),
    )
    .unwrap();
    let spec = TaskSpec::read(&bad_column).unwrap();
    let err = evaluate(
        &[spec],
        vec![(GeneVectors::from_store(&store, "refseq"), "s".into())],
        &catalog,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("flags") && err.contains("gene, flag"), "{err}");
}
