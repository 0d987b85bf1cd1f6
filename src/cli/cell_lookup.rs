//! `bftembed neighbors --cell` / `--queries`: nearest cells in a cell store.

use anyhow::{bail, Context, Result};
use bftembed::store::{CellNeighbor, CellStore, SearchMode};
use rayon::prelude::*;
use std::path::Path;

/// The neighbours of one cell (a table, or JSON), or of every cell listed in `queries`
/// (JSON lines, one per query, searched in parallel).
pub fn cell_neighbors(
    store: Option<&Path>,
    cell: Option<&str>,
    queries: Option<&Path>,
    k: usize,
    mode: SearchMode,
    json: bool,
) -> Result<()> {
    let Some(path) = store else {
        bail!("cell neighbours need --store CELL_STORE (built by `bftembed cells --store-out`)");
    };
    let store = CellStore::open(path)
        .with_context(|| format!("opening the cell store {}", path.display()))?;
    if let Some(file) = queries {
        return batch(&store, file, k, mode);
    }
    let cell = cell.context("name a --cell or a --queries file")?;
    let row = store.require_row(cell)?;
    let hits = store.neighbors_of_row(row, k, mode)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&hits_json(&store, cell, &hits))?
        );
        return Ok(());
    }
    println!("nearest to {cell} in {} cells:", store.len());
    let names: Vec<&str> = store.metadata().iter().map(|(m, _)| m.as_str()).collect();
    println!(
        "{:>4}  {:<24} {:>7}  {}",
        "rank",
        "cell",
        "cosine",
        names.join("  ")
    );
    for (i, h) in hits.iter().enumerate() {
        println!(
            "{:>4}  {:<24} {:>7.4}  {}",
            i + 1,
            h.cell,
            h.score,
            metadata_of(&store, h.row).join("  ")
        );
    }
    Ok(())
}

/// One JSON line per id in `file`; an id the store lacks stops the run before any
/// search, naming its line.
fn batch(store: &CellStore, file: &Path, k: usize, mode: SearchMode) -> Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let mut ids = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let id = line.trim();
        if id.is_empty() {
            continue;
        }
        let row = store
            .require_row(id)
            .with_context(|| format!("{}:{}", file.display(), i + 1))?;
        ids.push((id, row));
    }
    let lines: Vec<String> = ids
        .par_iter()
        .map(|(id, row)| {
            let hits = store.neighbors_of_row(*row, k, mode)?;
            Ok(serde_json::to_string(&hits_json(store, id, &hits))?)
        })
        .collect::<Result<_>>()?;
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

fn metadata_of(store: &CellStore, row: usize) -> Vec<String> {
    store
        .metadata()
        .iter()
        .map(|(_, values)| values[row].clone().unwrap_or_else(|| "-".into()))
        .collect()
}

fn hits_json(store: &CellStore, cell: &str, hits: &[CellNeighbor]) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = hits
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let mut row = serde_json::json!({"rank": i + 1, "cell": h.cell, "score": h.score});
            for ((name, _), value) in store.metadata().iter().zip(metadata_of(store, h.row)) {
                row[name] = serde_json::Value::String(value);
            }
            row
        })
        .collect();
    serde_json::json!({"query": cell, "store": store.path(), "neighbors": rows})
}
