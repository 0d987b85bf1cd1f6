//! The training log (`log.csv`, one row per step, held-out columns on evaluation steps)
//! and the loss plot drawn from one or more logs.

use crate::error::{Error, Result};
use plotters::prelude::*;
use std::io::Write;
use std::path::{Path, PathBuf};

const HEADER: &str = "step,learning_rate,loss,cross_entropy,grad_norm,tokens,tokens_per_second,heldout_cross_entropy,heldout_token_accuracy";

/// One step's record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogRow {
    /// Optimizer step (1-based).
    pub step: usize,
    /// Learning rate used.
    pub learning_rate: f64,
    /// The objective's loss.
    pub loss: f64,
    /// Plain cross-entropy of the step's answer tokens.
    pub cross_entropy: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Answer tokens in the step.
    pub tokens: usize,
    /// Training throughput (all tokens, prompt included, per second of the step).
    pub tokens_per_second: f64,
    /// Held-out cross-entropy, on evaluation steps.
    pub heldout_cross_entropy: Option<f64>,
    /// Held-out token accuracy, on evaluation steps.
    pub heldout_token_accuracy: Option<f64>,
}

impl LogRow {
    fn to_csv(self) -> String {
        let opt = |v: Option<f64>| v.map(|v| format!("{v:.6}")).unwrap_or_default();
        format!(
            "{},{:.3e},{:.6},{:.6},{:.4},{},{:.1},{},{}",
            self.step,
            self.learning_rate,
            self.loss,
            self.cross_entropy,
            self.grad_norm,
            self.tokens,
            self.tokens_per_second,
            opt(self.heldout_cross_entropy),
            opt(self.heldout_token_accuracy)
        )
    }

    fn parse(line: &str, path: &Path, number: usize) -> Result<Self> {
        let bad = |message: String| Error::Parse {
            path: path.to_path_buf(),
            line: number,
            message,
        };
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 9 {
            return Err(bad(format!("{} fields, expected 9", f.len())));
        }
        let num = |i: usize| -> Result<f64> {
            f[i].trim()
                .parse::<f64>()
                .map_err(|_| bad(format!("field {} is not a number: '{}'", i + 1, f[i])))
        };
        let opt = |i: usize| -> Result<Option<f64>> {
            if f[i].trim().is_empty() {
                Ok(None)
            } else {
                num(i).map(Some)
            }
        };
        Ok(LogRow {
            step: num(0)? as usize,
            learning_rate: num(1)?,
            loss: num(2)?,
            cross_entropy: num(3)?,
            grad_norm: num(4)?,
            tokens: num(5)? as usize,
            tokens_per_second: num(6)?,
            heldout_cross_entropy: opt(7)?,
            heldout_token_accuracy: opt(8)?,
        })
    }
}

/// Reads a training log.
pub fn read_log(path: &Path) -> Result<Vec<LogRow>> {
    let lines = crate::fsutil::read_utf8_lines(path)?;
    let mut rows = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if i == 0 {
            if line.trim() != HEADER {
                return Err(Error::bad_file(path, "not a bftembed training log"));
            }
            continue;
        }
        if !line.trim().is_empty() {
            rows.push(LogRow::parse(line, path, i + 1)?);
        }
    }
    Ok(rows)
}

/// An open training log, appended to row by row (each row flushed to disk).
pub struct TrainLog {
    path: PathBuf,
    file: std::fs::File,
}

impl TrainLog {
    /// Opens the log at `path` for a run resuming after `step` (0: a fresh run): rows
    /// after `step` (written after the last checkpoint, and about to be redone) are
    /// dropped, by rewriting the file atomically.
    pub fn open(path: &Path, step: usize) -> Result<Self> {
        let mut kept = Vec::new();
        if step > 0 && path.is_file() {
            kept = read_log(path)?
                .into_iter()
                .filter(|r| r.step <= step)
                .collect();
        }
        let mut text = format!("{HEADER}\n");
        for row in kept {
            text.push_str(&row.to_csv());
            text.push('\n');
        }
        crate::fsutil::atomic_write_bytes(path, text.as_bytes())?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(TrainLog {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends a row.
    pub fn append(&mut self, row: &LogRow) -> Result<()> {
        writeln!(self.file, "{}", row.to_csv())
            .and_then(|_| self.file.sync_data())
            .map_err(|e| Error::io(&self.path, e))
    }
}

/// Mean of each run of `window` consecutive values, for a readable training curve.
fn smoothed(points: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
    points
        .chunks(window.max(1))
        .map(|c| {
            let n = c.len() as f64;
            (
                c.iter().map(|p| p.0).sum::<f64>() / n,
                c.iter().map(|p| p.1).sum::<f64>() / n,
            )
        })
        .collect()
}

/// Series colours shared by the training plots.
pub(super) const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Draws training cross-entropy (averaged over blocks of steps) and held-out
/// cross-entropy against step for each run, side by side, into a PNG.
pub fn plot_runs(runs: &[(String, Vec<LogRow>)], out: &Path) -> Result<()> {
    crate::plot::render_png(out, (1200, 450), |root| {
        let panels = root.split_evenly((1, 2));
        let steps = runs
            .iter()
            .flat_map(|(_, r)| r.iter().map(|x| x.step))
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        let series = |heldout: bool| -> Vec<(String, Vec<(f64, f64)>)> {
            runs.iter()
                .map(|(name, rows)| {
                    let points: Vec<(f64, f64)> = if heldout {
                        rows.iter()
                            .filter_map(|r| r.heldout_cross_entropy.map(|v| (r.step as f64, v)))
                            .collect()
                    } else {
                        let raw: Vec<(f64, f64)> = rows
                            .iter()
                            .map(|r| (r.step as f64, r.cross_entropy))
                            .collect();
                        smoothed(&raw, (rows.len() / 40).max(1))
                    };
                    (name.clone(), points)
                })
                .collect()
        };
        for (panel, (title, heldout)) in panels.iter().zip([
            ("training cross-entropy (block means)", false),
            ("held-out cross-entropy", true),
        ]) {
            let data = series(heldout);
            let values = data.iter().flat_map(|(_, p)| p.iter().map(|x| x.1));
            let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            });
            let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
            let pad = ((hi - lo) * 0.08).max(1e-3);
            let mut chart = ChartBuilder::on(panel)
                .caption(title, ("sans-serif", 20))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(52)
                .build_cartesian_2d(0f64..steps, (lo - pad)..(hi + pad))
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc("optimizer step")
                .y_desc("nats per answer token")
                .draw()
                .map_err(|e| e.to_string())?;
            for (i, (name, points)) in data.into_iter().enumerate() {
                let colour = COLOURS[i % COLOURS.len()];
                chart
                    .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
                    .map_err(|e| e.to_string())?
                    .label(name)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                    });
                if heldout {
                    chart
                        .draw_series(points.iter().map(|p| Circle::new(*p, 3, colour.filled())))
                        .map_err(|e| e.to_string())?;
                }
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(step: usize, heldout: Option<f64>) -> LogRow {
        LogRow {
            step,
            learning_rate: 1e-4,
            loss: 2.0 / step as f64,
            cross_entropy: 3.0 / step as f64,
            grad_norm: 1.5,
            tokens: 100,
            tokens_per_second: 50.0,
            heldout_cross_entropy: heldout,
            heldout_token_accuracy: heldout.map(|_| 0.5),
        }
    }

    #[test]
    fn resuming_drops_rows_after_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.csv");
        let mut log = TrainLog::open(&path, 0).unwrap();
        for s in 1..=6 {
            log.append(&row(s, (s % 3 == 0).then_some(1.0))).unwrap();
        }
        drop(log);
        let mut log = TrainLog::open(&path, 4).unwrap();
        log.append(&row(5, None)).unwrap();
        let rows = read_log(&path).unwrap();
        assert_eq!(
            rows.iter().map(|r| r.step).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        assert_eq!(rows[2].heldout_cross_entropy, Some(1.0));
        let png = dir.path().join("loss.png");
        plot_runs(&[("sft".into(), rows)], &png).unwrap();
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
    }
}
