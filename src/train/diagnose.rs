//! The uncertainty-structure diagnostic behind BFT: where a model is unsure of a text,
//! are the uncertain tokens isolated (a word here and there) or do they come in long
//! runs (the model does not know the passage)? The paper's argument is that biomedical
//! text shows more dense-low windows than general text.
//!
//! Each text is teacher-forced through the model; p_t is the probability it gave the
//! token that came. Texts are cut into windows of g tokens (a text shorter than g is one
//! window; a trailing piece shorter than g/2 is dropped); per window, the fraction of
//! low-confidence tokens (p < threshold) and the longest run of them; a window with a run
//! of at least `dense_run` tokens is dense-low, one with low tokens but shorter runs is
//! sparse-low, one without any is confident.

use crate::error::{Error, Result};
use crate::llm::Decoder;
use plotters::prelude::*;
use std::path::Path;

/// Diagnostic settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiagnoseSettings {
    /// Window length g in tokens.
    pub window: usize,
    /// A token is low-confidence when p < threshold.
    pub threshold: f64,
    /// A run of at least this many low tokens makes a window dense-low.
    pub dense_run: usize,
}

impl Default for DiagnoseSettings {
    fn default() -> Self {
        DiagnoseSettings {
            window: 64,
            threshold: 0.25,
            dense_run: 4,
        }
    }
}

/// How a window's uncertainty is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowClass {
    /// No low-confidence token.
    Confident,
    /// Low-confidence tokens, none in a run of `dense_run`.
    SparseLow,
    /// At least one run of `dense_run` low-confidence tokens.
    DenseLow,
}

/// One window's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowStats {
    /// Share of its tokens with p < threshold.
    pub low_fraction: f64,
    /// Longest run of consecutive low tokens.
    pub longest_run: usize,
    /// Its class.
    pub class: WindowClass,
}

/// p of each actual next token of `tokens` under `model` (length: tokens - 1).
pub fn token_probabilities(model: &Decoder, tokens: &[u32]) -> Result<Vec<f64>> {
    if tokens.len() < 2 {
        return Err(Error::InvalidArgument(
            "a text needs at least two tokens".into(),
        ));
    }
    let logits = model.logits_at_every_position(&tokens[..tokens.len() - 1])?;
    let rows = logits.to_dtype(candle_core::DType::F32)?.to_vec2::<f32>()?;
    Ok(rows
        .iter()
        .zip(&tokens[1..])
        .map(|(row, &next)| {
            let (max, sum) = super::fused_ce::log_sum_exp(row);
            ((row[next as usize] - max) as f64).exp() / sum
        })
        .collect())
}

/// The windows of one text's token probabilities.
pub fn window_stats(p: &[f64], s: &DiagnoseSettings) -> Vec<WindowStats> {
    let g = s.window.max(1);
    let pieces: Vec<&[f64]> = if p.len() <= g {
        vec![p]
    } else {
        p.chunks(g).filter(|c| c.len() * 2 >= g).collect()
    };
    pieces
        .into_iter()
        .filter(|w| !w.is_empty())
        .map(|w| {
            let (mut low, mut run, mut longest) = (0, 0, 0);
            for &q in w {
                if q < s.threshold {
                    low += 1;
                    run += 1;
                    longest = longest.max(run);
                } else {
                    run = 0;
                }
            }
            let class = if longest >= s.dense_run {
                WindowClass::DenseLow
            } else if low > 0 {
                WindowClass::SparseLow
            } else {
                WindowClass::Confident
            };
            WindowStats {
                low_fraction: low as f64 / w.len() as f64,
                longest_run: longest,
                class,
            }
        })
        .collect()
}

/// A corpus's summary.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CorpusSummary {
    /// Its label.
    pub name: String,
    /// Texts scored.
    pub texts: usize,
    /// Tokens scored.
    pub tokens: usize,
    /// Windows.
    pub windows: usize,
    /// Mean p over tokens.
    pub mean_p: f64,
    /// Share of tokens below the threshold.
    pub low_token_share: f64,
    /// Mean over windows of the low fraction.
    pub mean_low_fraction: f64,
    /// Mean over windows of the longest low run.
    pub mean_longest_run: f64,
    /// Share of windows with no low token.
    pub confident_share: f64,
    /// Share of sparse-low windows.
    pub sparse_low_share: f64,
    /// Share of dense-low windows.
    pub dense_low_share: f64,
    /// Windows by longest run: index r counts windows whose longest run is r (the last
    /// bin gathers all longer runs).
    pub longest_run_histogram: Vec<usize>,
}

/// Summarises the token probabilities of a corpus's texts.
pub fn summarize(name: &str, texts: &[Vec<f64>], s: &DiagnoseSettings) -> CorpusSummary {
    const BINS: usize = 16;
    let windows: Vec<WindowStats> = texts.iter().flat_map(|p| window_stats(p, s)).collect();
    let tokens: usize = texts.iter().map(Vec::len).sum();
    let all = texts.iter().flatten();
    let n = windows.len().max(1) as f64;
    let share = |c: WindowClass| windows.iter().filter(|w| w.class == c).count() as f64 / n;
    let mut histogram = vec![0; BINS];
    for w in &windows {
        histogram[w.longest_run.min(BINS - 1)] += 1;
    }
    CorpusSummary {
        name: name.to_string(),
        texts: texts.len(),
        tokens,
        windows: windows.len(),
        mean_p: all.clone().sum::<f64>() / tokens.max(1) as f64,
        low_token_share: all.filter(|&&q| q < s.threshold).count() as f64 / tokens.max(1) as f64,
        mean_low_fraction: windows.iter().map(|w| w.low_fraction).sum::<f64>() / n,
        mean_longest_run: windows.iter().map(|w| w.longest_run as f64).sum::<f64>() / n,
        confident_share: share(WindowClass::Confident),
        sparse_low_share: share(WindowClass::SparseLow),
        dense_low_share: share(WindowClass::DenseLow),
        longest_run_histogram: histogram,
    }
}

/// Writes `diagnosis.md`, `diagnosis.json` and `longest_runs.png` into `out`; returns
/// the markdown.
pub fn write_diagnosis(
    model: &str,
    corpora: &[CorpusSummary],
    s: &DiagnoseSettings,
    out: &Path,
) -> Result<String> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let mut md = format!(
        "# Uncertainty structure: {model}\n\nWindows of {} tokens; a token is low-confidence when p < {}; a window is dense-low when it holds a run of at least {} low tokens, sparse-low when it has low tokens but no such run.\n\n| corpus | texts | tokens | windows | mean p | low tokens | mean low fraction / window | mean longest run | confident | sparse-low | dense-low |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
        s.window, s.threshold, s.dense_run
    );
    for c in corpora {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {:.3} | {:.1}% | {:.3} | {:.2} | {:.1}% | {:.1}% | {:.1}% |\n",
            c.name,
            c.texts,
            c.tokens,
            c.windows,
            c.mean_p,
            100.0 * c.low_token_share,
            c.mean_low_fraction,
            c.mean_longest_run,
            100.0 * c.confident_share,
            100.0 * c.sparse_low_share,
            100.0 * c.dense_low_share
        ));
    }
    md.push_str("\n![longest low-confidence run per window](longest_runs.png)\n");
    plot_histograms(corpora, &out.join("longest_runs.png"))?;
    let json = serde_json::json!({ "model": model, "window": s.window, "threshold": s.threshold, "dense_run": s.dense_run, "corpora": corpora });
    crate::fsutil::atomic_write_bytes(&out.join("diagnosis.json"), json.to_string().as_bytes())?;
    crate::fsutil::atomic_write_bytes(&out.join("diagnosis.md"), md.as_bytes())?;
    Ok(md)
}

fn plot_histograms(corpora: &[CorpusSummary], out: &Path) -> Result<()> {
    crate::plot::render_png(out, (800, 450), |root| {
        let bins = corpora
            .iter()
            .map(|c| c.longest_run_histogram.len())
            .max()
            .unwrap_or(1);
        let shares: Vec<Vec<f64>> = corpora
            .iter()
            .map(|c| {
                let n = c.windows.max(1) as f64;
                c.longest_run_histogram
                    .iter()
                    .map(|&k| k as f64 / n)
                    .collect()
            })
            .collect();
        let top = shares
            .iter()
            .flatten()
            .cloned()
            .fold(0.0, f64::max)
            .max(0.01)
            * 1.1;
        let mut chart = ChartBuilder::on(root)
            .caption("longest low-confidence run per window", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(-0.5f64..(bins as f64 - 0.5), 0f64..top)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc(format!(
                "longest run (tokens; last bin: {} or more)",
                bins - 1
            ))
            .y_desc("share of windows")
            .draw()
            .map_err(|e| e.to_string())?;
        let width = 0.8 / corpora.len().max(1) as f64;
        for (i, (c, values)) in corpora.iter().zip(&shares).enumerate() {
            let colour = super::log::COLOURS[i % super::log::COLOURS.len()];
            let offset = -0.4 + width * i as f64;
            chart
                .draw_series(values.iter().enumerate().map(|(r, &v)| {
                    let x = r as f64 + offset;
                    Rectangle::new([(x, 0.0), (x + width, v)], colour.filled())
                }))
                .map_err(|e| e.to_string())?
                .label(c.name.clone())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled())
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperMiddle)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_classed_by_their_longest_low_run() {
        let s = DiagnoseSettings {
            window: 8,
            threshold: 0.25,
            dense_run: 3,
        };
        // Window 1: two isolated lows (sparse); window 2: a run of 3 (dense);
        // window 3: confident; a trailing piece of 3 (< g/2) is dropped.
        let p = [
            0.9, 0.1, 0.9, 0.9, 0.2, 0.9, 0.9, 0.9, //
            0.9, 0.1, 0.1, 0.1, 0.9, 0.9, 0.9, 0.9, //
            0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, //
            0.1, 0.1, 0.1,
        ];
        let w = window_stats(&p, &s);
        assert_eq!(w.len(), 3);
        assert_eq!(w[0].class, WindowClass::SparseLow);
        assert_eq!((w[0].low_fraction, w[0].longest_run), (0.25, 1));
        assert_eq!(w[1].class, WindowClass::DenseLow);
        assert_eq!(w[1].longest_run, 3);
        assert_eq!(w[2].class, WindowClass::Confident);
        // A text shorter than g is one window.
        assert_eq!(window_stats(&p[..5], &s).len(), 1);
        let summary = summarize("t", &[p.to_vec()], &s);
        assert_eq!(summary.windows, 3);
        assert!((summary.dense_low_share - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(summary.longest_run_histogram[3], 1);
    }
}
