//! The full gene store, embedded from the 15k shipped RefSeq summaries: it covers the
//! genes, TP53's neighbours are TP53 biology, and HNSW agrees with brute force.

mod common;

use bftembed::genes::GeneCatalog;
use bftembed::store::{resolve_row, SearchMode};
use std::collections::HashSet;

#[test]
#[ignore = "slow: real data at full size; `bash .ci/run` (or `cargo test --release -- --include-ignored`) runs it"]
fn full_store_covers_15k_genes_and_finds_tp53_partners() {
    let store = common::full_gene_store();
    assert!(store.len() >= 15_000, "{} genes", store.len());
    let catalog = GeneCatalog::embedded().unwrap();
    let row = resolve_row(&store, &catalog, "TP53").unwrap();
    let hits = store
        .neighbors_of_row(row, 10, SearchMode::default())
        .unwrap();
    let top: Vec<&str> = hits.iter().map(|h| h.symbol.as_str()).collect();
    // p53 family members, p53-binding proteins and p53 targets.
    let partners = [
        "MDM2", "MDM4", "CDKN1A", "TP63", "TP73", "ATM", "CHEK2", "TP53BP1", "TP53BP2", "TP53AIP1",
        "TP53I3", "PPP1R13L", "ING1", "BAX", "BBC3", "PMAIP1",
    ];
    let found: Vec<&&str> = top.iter().filter(|s| partners.contains(s)).collect();
    assert!(found.len() >= 5, "TP53 top 10: {top:?}");
    assert!(
        top.contains(&"TP63") && top.contains(&"TP73"),
        "TP53 top 10: {top:?}"
    );
    // An alias resolves to the same gene.
    assert_eq!(resolve_row(&store, &catalog, "p53").unwrap(), row);
}

#[test]
#[ignore = "slow: real data at full size; `bash .ci/run` (or `cargo test --release -- --include-ignored`) runs it"]
fn hnsw_recall_at_10_against_exact_search() {
    let store = common::full_gene_store();
    // Every gene is a query: recall is measured on the whole store, not a sample.
    let k = 10;
    let mut hit = 0usize;
    let mut total = 0usize;
    for row in 0..store.len() {
        let exact: HashSet<usize> = store
            .neighbors_of_row(row, k, SearchMode::Exact)
            .unwrap()
            .iter()
            .map(|n| n.row)
            .collect();
        let approx = store
            .neighbors_of_row(row, k, SearchMode::default())
            .unwrap();
        hit += approx.iter().filter(|n| exact.contains(&n.row)).count();
        total += exact.len();
    }
    let recall = hit as f64 / total as f64;
    eprintln!("HNSW recall@10 over {} queries: {recall:.4}", store.len());
    assert!(recall >= 0.98, "recall@10 = {recall:.4}");
}
