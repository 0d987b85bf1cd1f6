//! AnnData `.h5ad` reading on real files: scanpy's pbmc68k_reduced as shipped (the older
//! layout) agrees with its own CSV export, the same cells rewritten by anndata 0.12 (the
//! current layout; dense, CSR and CSC; Ensembl ids in the var index and symbols in a
//! column) agree with it, obs columns decode, and broken files or keys give errors
//! naming the file and what is wrong.

use bftembed::io::{ExpressionMatrix, H5ad};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn shipped() -> PathBuf {
    repo("data/scanpy_pbmc68k_reduced/10x_pbmc68k_reduced.h5ad")
}

fn fixture() -> PathBuf {
    repo("tests/fixtures/pbmc68k_subset_anndata.h5ad")
}

/// (cell, gene) -> value, for comparing matrices whatever their storage.
fn entries(m: &ExpressionMatrix) -> HashMap<(String, String), f32> {
    let mut out = HashMap::new();
    for (c, row) in m.values.iter().enumerate() {
        for &(g, v) in row {
            out.insert((m.cells[c].clone(), m.genes[g as usize].clone()), v);
        }
    }
    out
}

#[test]
fn the_shipped_h5ad_matches_its_csv_export() {
    let h5ad = H5ad::open(&shipped()).unwrap();
    let raw = h5ad.matrix("raw/X", None).unwrap();
    let csv = ExpressionMatrix::read_dense(&repo(
        "data/scanpy_pbmc68k_reduced/pbmc68k_reduced_lognorm.csv.gz",
    ))
    .unwrap();
    assert_eq!((raw.cells.len(), raw.genes.len()), (700, 765));
    assert_eq!(raw.cells, csv.cells);
    assert_eq!(raw.genes, csv.genes);
    let (a, b) = (entries(&raw), entries(&csv));
    assert_eq!(a.len(), 174_400, "non-zero values of raw.X");
    assert_eq!(a.len(), b.len());
    for (key, v) in &a {
        // The CSV keeps 4 significant digits.
        let w = b[key];
        assert!(
            (v - w).abs() <= 5e-4 * v.abs().max(1.0),
            "{key:?}: {v} vs {w}"
        );
    }

    // X holds the scaled values (dense, negative entries), a different matrix.
    let scaled = h5ad.matrix("X", None).unwrap();
    assert_eq!(scaled.genes, raw.genes);
    assert!(scaled.values[0].iter().any(|(_, v)| *v < 0.0));
    // Dense rows are read in windows; values past the first window agree with h5py.
    assert_eq!(scaled.values.iter().map(Vec::len).sum::<usize>(), 535_433);
    let tail: f64 = scaled.values[600..]
        .iter()
        .flatten()
        .map(|(_, v)| *v as f64)
        .sum();
    assert!((tail - 296.311).abs() < 1e-2, "{tail}");
    assert_eq!(scaled.values[699].last(), Some(&(764, -0.49)));

    let labels = h5ad.obs_column("bulk_labels").unwrap();
    assert_eq!(labels.len(), 700);
    let dendritic = labels
        .iter()
        .filter(|l| l.as_deref() == Some("Dendritic"))
        .count();
    assert_eq!(dendritic, 240, "counts in PROVENANCE.md");
    let n_genes = h5ad.obs_column("n_genes").unwrap();
    assert!(n_genes
        .iter()
        .all(|n| n.as_deref().is_some_and(|n| n.parse::<f64>().is_ok())));
}

#[test]
fn the_current_layout_reads_the_same_cells_in_every_storage() {
    let shipped = entries(
        &H5ad::open(&shipped())
            .unwrap()
            .matrix("raw/X", None)
            .unwrap(),
    );
    let h5ad = H5ad::open(&fixture()).unwrap();
    // Ensembl ids in the var index, symbols in feature_name (CELLxGENE's layout).
    let by_id = h5ad.matrix("X", None).unwrap();
    assert_eq!(by_id.genes[0], "ENSG00000188290");
    let csr = h5ad.matrix("X", Some("feature_name")).unwrap();
    assert_eq!((csr.cells.len(), csr.genes.len()), (60, 765));
    assert_eq!(csr.genes[0], "HES4");
    let csr_entries = entries(&csr);
    for (key, v) in &csr_entries {
        assert_eq!(shipped.get(key), Some(v), "{key:?}");
    }
    for layer in ["layers/dense", "layers/csc"] {
        let other = h5ad.matrix(layer, Some("feature_name")).unwrap();
        assert_eq!(other.cells, csr.cells, "{layer}");
        assert_eq!(entries(&other), csr_entries, "{layer}");
    }

    let labels = h5ad.obs_column("bulk_labels").unwrap();
    assert_eq!(labels[0].as_deref(), Some("CD14+ Monocyte"));
    assert_eq!(labels[3], None, "a missing categorical value (code -1)");
    let donors = h5ad.obs_column("donor").unwrap();
    assert_eq!(donors[0].as_deref(), Some("A"));
    assert_eq!(donors[59].as_deref(), Some("B"));
    assert_eq!(
        h5ad.obs_columns().unwrap(),
        ["bulk_labels", "donor", "louvain", "n_genes"]
    );
}

#[test]
fn broken_files_and_keys_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let text = tmp.path().join("cells.h5ad");
    std::fs::write(&text, "cell_id,CD3E\nc1,1\n").unwrap();
    let err = H5ad::open(&text).err().unwrap().to_string();
    assert!(
        err.contains("cells.h5ad") && err.contains("not an HDF5 file"),
        "{err}"
    );

    let bytes = std::fs::read(fixture()).unwrap();
    let truncated = tmp.path().join("truncated.h5ad");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let err = match H5ad::open(&truncated) {
        Err(e) => e.to_string(),
        Ok(h5ad) => h5ad.matrix("X", None).err().unwrap().to_string(),
    };
    assert!(err.contains("truncated.h5ad"), "{err}");

    let h5ad = H5ad::open(&fixture()).unwrap();
    let err = h5ad
        .matrix("layers/counts", None)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("no matrix 'layers/counts'") && err.contains("csc, dense"),
        "{err}"
    );
    let err = h5ad.matrix("raw/X", None).err().unwrap().to_string();
    assert!(err.contains("no matrix 'raw/X'"), "{err}");
    let err = h5ad.matrix("obsm/X_pca", None).err().unwrap().to_string();
    assert!(err.contains("use X, raw/X or layers/NAME"), "{err}");
    let err = h5ad
        .matrix("X", Some("gene_symbols"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("var has no column 'gene_symbols' (it has: feature_name)"),
        "{err}"
    );
    let err = h5ad.obs_column("cell_type").err().unwrap().to_string();
    assert!(
        err.contains("no column 'cell_type'") && err.contains("bulk_labels"),
        "{err}"
    );
}
