//! A side-by-side comparison of finished runs (the shared-setup SFT / DFT / BFT / BFT-v3
//! comparison): held-out cross-entropy and token accuracy before and after, and one
//! plot of every run's curves.

use super::log::{plot_runs, read_log};
use crate::error::{Error, Result};
use std::path::Path;

/// Writes `comparison.md` and `loss.png` into `out` for the runs in `run_dirs` (each a
/// training output folder with `summary.json` and `log.csv`); returns the markdown.
pub fn compare_runs(run_dirs: &[&Path], out: &Path) -> Result<String> {
    let mut table = String::from(
        "| run | objective | steps | held-out CE before | held-out CE after | held-out token accuracy before | after | train tokens/s |\n|---|---|---|---|---|---|---|---|\n",
    );
    let mut curves = Vec::new();
    let mut by_kind = String::new();
    for dir in run_dirs {
        by_kind.push_str(&heldout_rows(dir)?);
        let path = dir.join("summary.json");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let s: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::bad_file(&path, format!("not a run summary: {e}")))?;
        let field = |k: &str| s.get(k).cloned().unwrap_or(serde_json::Value::Null);
        let pair = |k: &str, i: usize| {
            field(k)
                .get(i)
                .and_then(|v| v.as_f64())
                .map(|v| format!("{v:.4}"))
                .unwrap_or_else(|| "-".into())
        };
        let name = field("name").as_str().unwrap_or("?").to_string();
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.0} |\n",
            name,
            field("objective").as_str().unwrap_or("?"),
            field("steps"),
            pair("base_heldout", 0),
            pair("final_heldout", 0),
            pair("base_heldout", 1),
            pair("final_heldout", 1),
            field("tokens_per_second").as_f64().unwrap_or(0.0),
        ));
        curves.push((name, read_log(&dir.join("log.csv"))?));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    plot_runs(&curves, &out.join("loss.png"))?;
    let by_kind = if by_kind.is_empty() {
        String::new()
    } else {
        format!(
            "\nBy kind of pair (`bftembed train-eval`, the same seeded held-out sample for every model):\n\n| model | held-out gene summaries: CE | token accuracy | answer tokens | held-out GO definitions: CE | token accuracy | answer tokens |\n|---|---|---|---|---|---|---|\n{by_kind}"
        )
    };
    let markdown = format!(
        "# Training comparison\n\nHeld-out cross-entropy (nats per answer token) and token accuracy on the same held-out pairs, before the first step (the base model) and after the last.\n\n{table}{by_kind}\n![training and held-out loss](loss.png)\n"
    );
    crate::fsutil::atomic_write_bytes(&out.join("comparison.md"), markdown.as_bytes())?;
    Ok(markdown)
}

/// Table rows from a run folder's by-kind held-out files (base first), if any.
fn heldout_rows(dir: &Path) -> Result<String> {
    let mut rows = String::new();
    for file in [super::HELDOUT_BASE_FILE, super::HELDOUT_FILE] {
        let path = dir.join(file);
        if !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let h: super::HeldoutByKind = serde_json::from_str(&text)
            .map_err(|e| Error::bad_file(&path, format!("not a held-out score file: {e}")))?;
        let cells = |r: Option<&super::HeldoutReport>| match r {
            Some(r) => format!(
                "{:.4} | {:.4} | {}",
                r.cross_entropy, r.token_accuracy, r.tokens
            ),
            None => "- | - | -".into(),
        };
        let label = if file == super::HELDOUT_BASE_FILE {
            format!("{} (base)", h.model)
        } else {
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or(h.model)
        };
        rows.push_str(&format!(
            "| {label} | {} | {} |\n",
            cells(Some(&h.genes)),
            cells(h.go.as_ref())
        ));
    }
    Ok(rows)
}
