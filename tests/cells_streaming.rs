//! Matrices read a window of cells at a time, on the shipped files: every window
//! reader gives the cells the whole reader gives (AnnData CSR, dense and CSC; 10x
//! MatrixMarket in cell order and in gene order), `bftembed cells` writes the same
//! vectors whatever the window, a killed run resumes from its saved windows and ends
//! with the same table, and faults found in a later window are named.

mod common;

use common::{bftembed, stderr};

use bftembed::io::parquet::{f32_vectors, optional_strings, read_parquet};
use bftembed::io::{CellRow, ExpressionMatrix, H5ad, MatrixSource, MatrixStream, MatrixValues};
use parquet::file::reader::FileReader;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every window of `stream`, checked to be numbered in order and placed after the
/// cells before it; their rows, in order.
fn windows(mut stream: MatrixStream, window: usize) -> (usize, Vec<CellRow>) {
    stream.set_window(window);
    let expected = stream.window_count();
    let mut rows = Vec::new();
    let mut count = 0;
    while let Some(w) = stream.next_window().unwrap() {
        assert_eq!(w.index, count);
        assert_eq!(w.first_cell, rows.len());
        assert!(w.rows.len() <= window);
        rows.extend(w.rows);
        count += 1;
    }
    assert_eq!(count, expected);
    (count, rows)
}

/// The error of the first window of `window` cells that fails, `None` if every window
/// reads.
fn window_error(stream: &mut MatrixStream, window: usize) -> Option<String> {
    stream.set_window(window);
    loop {
        match stream.next_window() {
            Ok(Some(_)) => continue,
            Ok(None) => return None,
            Err(e) => return Some(e.to_string()),
        }
    }
}

#[test]
fn anndata_windows_give_the_whole_matrix_for_csr_dense_and_csc() {
    let path = repo("tests/fixtures/pbmc68k_subset_anndata.h5ad");
    let h5ad = H5ad::open(&path).unwrap();
    let whole = h5ad.matrix("X", Some("feature_name")).unwrap();
    assert_eq!(whole.cells.len(), 60);
    for (key, held_whole) in [("X", false), ("layers/dense", false), ("layers/csc", true)] {
        let stream = h5ad.stream(key, Some("feature_name")).unwrap();
        assert_eq!(stream.note().is_some(), held_whole, "{key}");
        assert_eq!(stream.cells, whole.cells);
        let (count, rows) = windows(stream, 7);
        assert_eq!(count, 9, "{key}: 60 cells in windows of 7");
        assert_eq!(rows, whole.values, "{key}");
    }
    // The older layout (scanpy's pbmc68k_reduced as shipped), raw/X: 700 cells.
    let shipped = repo("data/scanpy_pbmc68k_reduced/10x_pbmc68k_reduced.h5ad");
    let h5ad = H5ad::open(&shipped).unwrap();
    let whole = h5ad.matrix("raw/X", None).unwrap();
    let (count, rows) = windows(h5ad.stream("raw/X", None).unwrap(), 64);
    assert_eq!(count, 11);
    assert_eq!(rows, whole.values);
}

/// A MatrixMarket entry: gene, cell (1-based), value.
type Entry = (usize, usize, f32);

/// Kang's first `cells` cells as entries, from the shipped gene-ordered file, with its
/// genes file and those cells' barcodes.
fn kang_subset(cells: usize) -> (Vec<Entry>, Vec<String>, Vec<String>) {
    let dir = repo("data/kang2018_ifnb_pbmc_2800");
    let matrix = ExpressionMatrix::read_matrix_market(
        &dir.join("counts_genes_x_cells.mtx.gz"),
        &dir.join("genes.tsv.gz"),
        &dir.join("barcodes.tsv.gz"),
    )
    .unwrap();
    let mut entries = Vec::new();
    for (c, row) in matrix.values.iter().take(cells).enumerate() {
        for &(g, x) in row {
            entries.push((g as usize + 1, c + 1, x));
        }
    }
    (entries, matrix.genes, matrix.cells[..cells].to_vec())
}

/// Writes a MatrixMarket folder (matrix.mtx, genes.tsv, barcodes.tsv) of `entries` in
/// the order given.
fn write_mtx(dir: &Path, entries: &[Entry], genes: &[String], cells: &[String]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("matrix.mtx")).unwrap());
    writeln!(f, "%%MatrixMarket matrix coordinate integer general").unwrap();
    writeln!(f, "{} {} {}", genes.len(), cells.len(), entries.len()).unwrap();
    for (g, c, x) in entries {
        writeln!(f, "{g} {c} {x}").unwrap();
    }
    drop(f);
    std::fs::write(dir.join("genes.tsv"), genes.join("\n") + "\n").unwrap();
    std::fs::write(dir.join("barcodes.tsv"), cells.join("\n") + "\n").unwrap();
}

fn mtx_stream(dir: &Path) -> MatrixStream {
    MatrixSource::new(&dir.join("matrix.mtx"), MatrixValues::Counts)
        .stream()
        .unwrap()
}

#[test]
fn matrix_market_windows_give_the_whole_matrix_in_either_order() {
    let (mut entries, genes, cells) = kang_subset(400);
    assert!(
        entries.len() > 25_000,
        "more entries than the order probe reads"
    );
    let tmp = tempfile::tempdir().unwrap();
    entries.sort_by_key(|&(g, c, _)| (g, c));
    let by_gene = tmp.path().join("by_gene");
    write_mtx(&by_gene, &entries, &genes, &cells);
    // 10x's order: by cell, genes descending within a cell.
    entries.sort_by_key(|&(g, c, _)| (c, std::cmp::Reverse(g)));
    let by_cell = tmp.path().join("by_cell");
    write_mtx(&by_cell, &entries, &genes, &cells);

    let whole = mtx_stream(&by_gene).read_all().unwrap();
    assert_eq!(whole.len(), 400);
    let gene_order = mtx_stream(&by_gene);
    assert!(gene_order.note().unwrap().contains("gene order"));
    assert_eq!(windows(gene_order, 37).1, whole);
    let cell_order = mtx_stream(&by_cell);
    assert_eq!(cell_order.note(), None, "streamed");
    let (count, rows) = windows(cell_order, 37);
    assert_eq!(count, 11);
    assert_eq!(
        rows, whole,
        "log-normalised counts, by gene within each cell"
    );
}

#[test]
fn matrix_market_faults_past_the_first_window_are_named() {
    let (mut entries, genes, cells) = kang_subset(400);
    entries.sort_by_key(|&(g, c, _)| (c, g));
    let tmp = tempfile::tempdir().unwrap();
    // In cell order for the first 20,000 entries, then an entry of cell 1 at the end.
    let mut late = entries.clone();
    late.push((late[0].0 + 1, 1, 2.0));
    let folder = tmp.path().join("late");
    write_mtx(&folder, &late, &genes, &cells);
    let mut stream = mtx_stream(&folder);
    let err = window_error(&mut stream, 50).expect("an out-of-order entry was accepted");
    let line = late.len() + 2;
    assert!(err.contains(&format!("{line}")), "{err}");
    assert!(
        err.contains("not in cell order") || err.contains("cell order"),
        "{err}"
    );

    // A file cut short: the windows before the cut are read, the end is refused.
    let cut = tmp.path().join("cut");
    write_mtx(&cut, &entries, &genes, &cells);
    let text = std::fs::read_to_string(cut.join("matrix.mtx")).unwrap();
    let keep: Vec<&str> = text.lines().take(text.lines().count() - 500).collect();
    std::fs::write(cut.join("matrix.mtx"), keep.join("\n") + "\n").unwrap();
    let mut stream = mtx_stream(&cut);
    let err = window_error(&mut stream, 50).expect("the truncated file was accepted");
    assert!(err.contains("truncated"), "{err}");

    // Whole numbers in the first window read as counts; a fraction later is refused.
    let mut mixed = entries.clone();
    let last = mixed.len() - 1;
    mixed[last].2 = 0.5;
    let folder = tmp.path().join("mixed");
    write_mtx(&folder, &mixed, &genes, &cells);
    let mut stream = mtx_stream(&folder);
    stream.set_values(None);
    let err = window_error(&mut stream, 100).expect("a fraction after counts was accepted");
    assert!(
        err.contains("read as counts") && err.contains(&cells[399]),
        "{err}"
    );
}

/// A gene store of seeded vectors for `symbols`, built through `bftembed import`.
fn imported_store(dir: &Path, symbols: &[String]) -> PathBuf {
    let mut tsv = String::from("symbol");
    for d in 0..16 {
        tsv.push_str(&format!("\td{d}"));
    }
    tsv.push('\n');
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for symbol in symbols {
        tsv.push_str(symbol);
        for _ in 0..16 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            tsv.push_str(&format!(
                "\t{:.6}",
                (state >> 40) as f64 / (1u64 << 24) as f64 - 0.5
            ));
        }
        tsv.push('\n');
    }
    let file = dir.join("vectors.tsv");
    std::fs::write(&file, tsv).unwrap();
    let store = dir.join("store");
    let out = bftembed(&["import", "--vectors", s(&file), "--out", s(&store)]);
    assert!(out.status.success(), "{}", stderr(&out));
    store
}

/// The cell ids and GenePT-w vectors of a cells table.
fn table(path: &Path) -> (Vec<Option<String>>, Vec<f32>) {
    let contents = read_parquet(path).unwrap();
    let mut cells = Vec::new();
    let mut vectors = Vec::new();
    for batch in &contents.batches {
        cells.extend(optional_strings(batch, "cell", path).unwrap());
        vectors.extend(f32_vectors(batch, "genept_w", path).unwrap().1);
    }
    (cells, vectors)
}

#[test]
fn cells_writes_the_same_vectors_whatever_the_window() {
    let tmp = tempfile::tempdir().unwrap();
    let input = repo("tests/fixtures/pbmc68k_subset_anndata.h5ad");
    let genes = H5ad::open(&input)
        .unwrap()
        .matrix("X", Some("feature_name"))
        .unwrap()
        .genes;
    let store = imported_store(tmp.path(), &genes);
    let run = |window: &str, out: &Path| {
        let o = bftembed(&[
            "cells",
            "--matrix",
            s(&input),
            "--gene-column",
            "feature_name",
            "--store",
            s(&store),
            "--window",
            window,
            "--obs",
            "bulk_labels",
            "--out",
            s(out),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    };
    let (one, many) = (
        tmp.path().join("one.parquet"),
        tmp.path().join("many.parquet"),
    );
    run("0", &one);
    run("8", &many);
    assert_eq!(table(&one), table(&many));
    let groups =
        parquet::file::reader::SerializedFileReader::new(std::fs::File::open(&many).unwrap())
            .unwrap()
            .metadata()
            .num_row_groups();
    assert_eq!(groups, 8, "a row group per window");
    assert_eq!(table(&one).0.len(), 60);
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".cells-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "the saved windows are removed after writing"
    );
}

#[test]
fn a_killed_cells_run_resumes_and_ends_with_the_same_table() {
    let (mut entries, genes, cells) = kang_subset(2000);
    entries.sort_by_key(|&(g, c, _)| (c, g));
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("kang");
    write_mtx(&folder, &entries, &genes, &cells);
    let store = imported_store(tmp.path(), &genes);
    let matrix = folder.join("matrix.mtx");
    let args = |out: &Path| -> Vec<String> {
        [
            "cells",
            "--matrix",
            s(&matrix),
            "--store",
            s(&store),
            "--window",
            "10",
            "--out",
            s(out),
        ]
        .map(String::from)
        .to_vec()
    };
    let reference = tmp.path().join("reference.parquet");
    let o = bftembed(
        &args(&reference)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(o.status.success(), "{}", stderr(&o));

    // Start, wait for some saved windows, kill.
    let out = tmp.path().join("resumed.parquet");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bftembed"))
        .args(args(&out))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let saved = |dir: &Path| -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".resumed.parquet.cells-")
            })
            .map(|e| std::fs::read_dir(e.path()).map_or(0, |d| d.count()))
            .sum()
    };
    let start = Instant::now();
    while saved(tmp.path()) < 5 && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!out.exists(), "killed before the end: no table yet");
    let before = saved(tmp.path());
    assert!(
        (5..200).contains(&before),
        "{before} windows saved when killed"
    );

    let o = bftembed(&args(&out).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("resumed: "), "{}", stderr(&o));
    assert_eq!(table(&out), table(&reference));
    assert_eq!(saved(tmp.path()), 0, "the work folder is gone");
}
