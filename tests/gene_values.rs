//! The `gene_values` task kind (one number per gene, ridge from the gene vector) on the
//! shipped knockdown-impact table and the full RefSeq store: real vectors predict how
//! many genes respond to a knockdown, the random floor and the same values shuffled
//! among genes do not, and a value that is not a number is named with its line.

mod common;

use bftembed::genes::GeneCatalog;
use bftembed::tasks::{evaluate, evaluate_each, task_genes, GeneVectors, SymbolMapper, TaskSpec};
use std::io::Read;
use std::path::{Path, PathBuf};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The shipped task pointed at `table` (the shipped one when `None`).
fn task(dir: &Path, table: Option<&Path>) -> TaskSpec {
    let shipped = repo("data/replogle2022_degsigs_sigrecon/k562_signature_sizes.tsv.gz");
    let text = std::fs::read_to_string(repo("tasks/replogle_k562_knockdown_impact.toml"))
        .unwrap()
        .replace(
            "../data/replogle2022_degsigs_sigrecon/k562_signature_sizes.tsv.gz",
            &table.unwrap_or(&shipped).display().to_string(),
        );
    let path = dir.join("impact.toml");
    std::fs::write(&path, text).unwrap();
    TaskSpec::read(&path).unwrap()
}

fn shipped_rows() -> Vec<(String, String)> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(
        std::fs::File::open(repo(
            "data/replogle2022_degsigs_sigrecon/k562_signature_sizes.tsv.gz",
        ))
        .unwrap(),
    )
    .read_to_string(&mut text)
    .unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let (g, v) = l.split_once('\t').unwrap();
            (g.to_string(), v.to_string())
        })
        .collect()
}

fn write_table(path: &Path, rows: &[(String, String)]) {
    let mut text = String::from("knocked_down_gene\tup_regulated_genes\n");
    for (g, v) in rows {
        text.push_str(&format!("{g}\t{v}\n"));
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn refseq_vectors_predict_knockdown_impact_and_shuffled_values_do_not() {
    let store = common::full_gene_store();
    let catalog = GeneCatalog::embedded().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let vectors = || {
        vec![(
            GeneVectors::from_store(&store, "refseq"),
            "full store".into(),
        )]
    };

    let report = evaluate(&[task(tmp.path(), None)], vectors(), &catalog).unwrap();
    let scores = &report.tasks[0].scores;
    let (real, floor) = (&scores[0], &scores[1]);
    assert_eq!(
        (real.metric.as_str(), floor.store.as_str()),
        ("Pearson r", "random")
    );
    assert_eq!(real.items_total, 585);
    assert!(
        real.items_covered >= 450,
        "{} genes scored",
        real.items_covered
    );
    assert_eq!(
        real.test_items, real.items_covered,
        "every gene is tested once"
    );
    // Measured 0.237 [0.161, 0.311] (Spearman 0.233) against the floor's -0.038.
    assert!(real.value > 0.15 && real.interval.0 > 0.05, "{real:?}");
    assert!(floor.value.abs() < 0.12, "floor r {}", floor.value);
    assert!(real.get("Spearman rho").unwrap() > 0.12);

    // The same numbers moved to other genes: what the vectors know about a gene is then
    // unrelated to its number.
    let mut rows = shipped_rows();
    let values: Vec<String> = rows.iter().map(|r| r.1.clone()).collect();
    let n = rows.len();
    for (i, row) in rows.iter_mut().enumerate() {
        row.1 = values[(i * 389 + 17) % n].clone();
    }
    let shuffled = tmp.path().join("shuffled.tsv");
    write_table(&shuffled, &rows);
    let control = evaluate(&[task(tmp.path(), Some(&shuffled))], vectors(), &catalog).unwrap();
    let r = control.tasks[0].scores[0].value;
    assert!(r.abs() < 0.12, "shuffled values still give r = {r}");

    // The genes it scores are the knocked-down genes (kept out of training data).
    let mut mapper = SymbolMapper::new(&catalog);
    let genes = task_genes(&task(tmp.path(), None), &mut mapper).unwrap();
    assert!(genes.items.contains("UBL5") && genes.items.len() >= 580);
}

#[test]
fn a_value_that_is_not_a_number_is_named_with_its_line() {
    let catalog = GeneCatalog::embedded().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut rows = shipped_rows();
    rows.truncate(30);
    rows[6].1 = "many".into();
    let bad = tmp.path().join("bad.tsv");
    write_table(&bad, &rows);
    let vectors = GeneVectors::from_store(&common::full_gene_store(), "refseq");
    let (_, failed) = evaluate_each(
        &[task(tmp.path(), Some(&bad))],
        vec![(vectors, "full store".into())],
        &catalog,
    )
    .unwrap();
    let err = failed[0].1.to_string();
    assert!(err.contains("bad.tsv:8") && err.contains("'many'"), "{err}");
}
