//! The study's report: `study.md` for reading, `study.json` for programs, and
//! `paired.png`, the focus model's paired differences against every other store.

use super::accuracy::ProfileAccuracy;
use super::gene_sets::NamingScores;
use super::genes::StudyGenes;
use crate::error::{Error, Result};
use crate::fsutil::atomic_write_bytes;
use crate::tasks::{EvalReport, PairedDifference};
use plotters::prelude::*;
use std::fmt::Write as _;
use std::path::Path;

/// A model and the checksum of the weights it was loaded from.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelRecord {
    /// Study name.
    pub name: String,
    /// Registry name or folder.
    pub id: String,
    /// sha256 of the weights file.
    pub weights_sha256: String,
}

/// Which study genes a store lacks (none, when the pipeline is complete).
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoreCoverage {
    /// Store name.
    pub store: String,
    /// Genes it holds.
    pub genes: usize,
    /// Study genes it lacks.
    pub missing: Vec<String>,
}

/// One paired comparison of the focus model with another store.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PairedRow {
    /// `task`, `profile` or `naming`.
    pub section: String,
    /// Task id, or what was compared.
    pub item: String,
    /// The metric.
    pub metric: String,
    /// The focus model.
    pub focus: String,
    /// The other store.
    pub other: String,
    /// Focus minus other on shared items; `None` when they share none.
    pub result: Option<PairedDifference>,
}

impl PairedRow {
    /// The table cells of the result: items, the difference with its interval (to
    /// `decimals` places), and the p-value; dashes when the stores share no items.
    pub fn cells(&self, decimals: usize) -> (String, String, String) {
        match &self.result {
            Some(r) => (
                r.items.to_string(),
                format!(
                    "{:+.d$} [{:+.d$}, {:+.d$}]",
                    r.difference,
                    r.interval.0,
                    r.interval.1,
                    d = decimals
                ),
                format!("{:.3}", r.p_value),
            ),
            None => ("0".into(), "–".into(), "–".into()),
        }
    }

    /// `better`, `worse` or `no clear difference` (95% interval of the difference
    /// excludes zero or not).
    pub fn verdict(&self) -> &'static str {
        match &self.result {
            Some(r) if r.interval.0 > 0.0 => "better",
            Some(r) if r.interval.1 < 0.0 => "worse",
            Some(_) => "no clear difference",
            None => "not comparable",
        }
    }
}

/// Everything a study run found, with what it was made from.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StudyReport {
    /// bftembed's version.
    pub bftembed_version: String,
    /// Source revision (`git describe`), where known.
    pub commit: Option<String>,
    /// Unix time of writing.
    pub created_unix: u64,
    /// A `--quick` run.
    pub quick: bool,
    /// The study file's text.
    pub config_text: String,
    /// The sentence encoder.
    pub embedding_model: ModelRecord,
    /// The profile-writing models.
    pub models: Vec<ModelRecord>,
    /// The model the paired tests centre on.
    pub focus: String,
    /// The genes and how they were drawn.
    pub genes: StudyGenes,
    /// Study genes each store lacks.
    pub coverage: Vec<StoreCoverage>,
    /// Every task on every store.
    pub eval: EvalReport,
    /// Paired comparisons of the focus model.
    pub paired: Vec<PairedRow>,
    /// Profile accuracy per store.
    pub accuracy: Vec<ProfileAccuracy>,
    /// Gene sets named.
    pub gene_sets: usize,
    /// Naming scores per model.
    pub naming: Vec<NamingScores>,
    /// Mean cosine between different sets' reference names (the naming floor).
    pub naming_floor: f64,
    /// Incompleteness found (a task not scored on a store, a store lacking genes).
    pub problems: Vec<String>,
}

impl StudyReport {
    /// Writes study.md, study.json, scores.png and paired.png into `dir`, atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self)
            .map_err(|e| Error::InvalidArgument(format!("study report encoding: {e}")))?;
        atomic_write_bytes(&dir.join("study.json"), json.as_bytes())?;
        self.plot_paired(&dir.join("paired.png"))?;
        self.plot_scores(&dir.join("scores.png"))?;
        atomic_write_bytes(&dir.join("study.md"), self.markdown().as_bytes())
    }

    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# bftembed study{}\n",
            if self.quick { " (quick)" } else { "" }
        );
        let _ = writeln!(
            s,
            "bftembed {}, commit {}. {} genes (evaluation genes of the split, never trained on), \
             {} tasks, {} gene sets named. Encoder {} (sha256 {}).\n",
            self.bftembed_version,
            self.commit.as_deref().unwrap_or("unknown"),
            self.genes.genes.len(),
            self.eval.tasks.len(),
            self.gene_sets,
            self.embedding_model.id,
            short(&self.embedding_model.weights_sha256),
        );
        let _ = writeln!(s, "| model | weights | sha256 |\n|---|---|---|");
        for m in &self.models {
            let _ = writeln!(
                s,
                "| {} | {} | {} |",
                m.name,
                m.id,
                short(&m.weights_sha256)
            );
        }
        if self.problems.is_empty() {
            let _ = writeln!(
                s,
                "\nComplete: every store holds every study gene and was scored on every task."
            );
        } else {
            let _ = writeln!(s, "\n**Incomplete:**\n");
            for p in &self.problems {
                let _ = writeln!(s, "- {p}");
            }
        }
        self.write_task_table(&mut s);
        self.write_paired(&mut s);
        self.write_accuracy(&mut s);
        self.write_naming(&mut s);
        let _ = writeln!(
            s,
            "\n## Genes drawn per task\n\n| task | evaluation genes | drawn |\n|---|---|---|"
        );
        for d in &self.genes.draws {
            let _ = writeln!(s, "| {} | {} | {} |", d.task, d.candidates, d.drawn);
        }
        s
    }

    fn write_task_table(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\n## Probe tasks\n\nMain metric with its 95% interval (bootstrap of test items, or the \
             range over folds); items covered in brackets. Full per-task report, ROC curves and \
             confusion matrices: `eval/report.md`.\n\n![scores per task](scores.png)\n"
        );
        s.push_str(&self.eval.summary_table(true));
    }

    fn write_paired(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\n## Paired tests: {} against each other store\n\n\
             Difference of the metric ({} minus other) on the items both were tested on, with \
             the 95% interval and two-sided p-value of a paired bootstrap. `better`/`worse` when \
             the interval excludes zero. {} comparisons: expect about one in twenty to cross \
             zero by chance.\n\n![paired differences](paired.png)\n",
            self.focus,
            self.focus,
            self.paired.len()
        );
        let _ = writeln!(
            s,
            "| section | task or measure | metric | other | items | difference [95%] | p | verdict |\n\
             |---|---|---|---|---|---|---|---|"
        );
        for row in &self.paired {
            let (items, diff, p) = row.cells(3);
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {items} | {diff} | {p} | {} |",
                row.section,
                row.item,
                row.metric,
                row.other,
                row.verdict()
            );
        }
    }

    fn write_accuracy(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\n## Profile accuracy\n\nEach profile against the NCBI summaries (summary text only) \
             of the same genes, both with the gene's symbol and name masked: the prompt hands \
             the model the symbol, so repeating it is no knowledge. The `ncbi` row checks the \
             summaries against themselves (cosine 1 by construction; its facts columns are the \
             ceiling a profile can reach). Specificity = cosine to the gene's own summary minus the mean cosine \
             to the other genes' summaries: a profile in the right register but about nothing in \
             particular scores near 0. Facts: GO process names in the text and how many the \
             gene is annotated to; other gene symbols and how many share an annotated process \
             with the gene.\n"
        );
        let _ = writeln!(
            s,
            "| store | genes | cos own | cos others | specificity | own in top 1 | top 10 | median rank | GO terms / profile | supported | genes / profile | supported |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for a in &self.accuracy {
            let _ = writeln!(
                s,
                "| {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.0} | {:.2} | {} | {:.2} | {} |",
                a.model,
                a.genes,
                a.cosine_own,
                a.cosine_others,
                a.specificity,
                a.top1,
                a.top10,
                a.median_rank,
                a.terms_per_profile,
                percent(a.terms_supported),
                a.genes_per_profile,
                percent(a.genes_supported)
            );
        }
    }

    fn write_naming(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\n## Gene-set naming\n\nEach model names the main process of {} gene sets \
             (GeneAgent's GO, MSigDB and NeST sets). Cosine of the answer to the reference name, \
             the reference's median rank among all GO process names ranked by similarity to the \
             answer, and the share ranked in the top 10. Floor: mean cosine between different \
             sets' reference names, {:.3}.\n",
            self.gene_sets, self.naming_floor
        );
        let _ = writeln!(
            s,
            "| model | source | sets | cosine | median rank | top 10 |\n|---|---|---|---|---|---|"
        );
        for n in &self.naming {
            for src in &n.by_source {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {:.3} | {:.0} | {:.3} |",
                    n.model, src.source, src.sets, src.cosine, src.median_rank, src.top10
                );
            }
        }
    }

    /// One small panel per task: every store's score with its interval.
    fn plot_scores(&self, out: &Path) -> Result<()> {
        let tasks = &self.eval.tasks;
        let stores: Vec<&str> = self.eval.stores.iter().map(|x| x.name.as_str()).collect();
        let cols = 3usize;
        let rows = tasks.len().div_ceil(cols).max(1);
        crate::plot::render_png(out, (1200, 260 * rows as u32), |root| {
            let panels = root.split_evenly((rows, cols));
            for (panel, task) in panels.iter().zip(tasks) {
                let (lo, hi) =
                    task.scores
                        .iter()
                        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
                            (
                                lo.min(x.interval.0.min(x.value)),
                                hi.max(x.interval.1.max(x.value)),
                            )
                        });
                let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
                let pad = ((hi - lo) * 0.1).max(1e-3);
                let metric = task.scores.first().map_or("", |x| x.metric.as_str());
                let mut chart = ChartBuilder::on(panel)
                    .caption(&task.id, ("sans-serif", 15))
                    .margin(8)
                    .x_label_area_size(22)
                    .y_label_area_size(48)
                    .build_cartesian_2d(0f64..stores.len() as f64, (lo - pad)..(hi + pad))
                    .map_err(|e| e.to_string())?;
                chart
                    .configure_mesh()
                    .disable_x_mesh()
                    .x_labels(stores.len() * 2 + 1)
                    .x_label_formatter(&|x| {
                        let i = x.floor() as usize;
                        if (x - i as f64 - 0.5).abs() < 0.01 {
                            stores.get(i).map(|s| s.to_string()).unwrap_or_default()
                        } else {
                            String::new()
                        }
                    })
                    .y_desc(metric.split(' ').next().unwrap_or(""))
                    .draw()
                    .map_err(|e| e.to_string())?;
                for (i, store) in stores.iter().enumerate() {
                    let Some(x) = task.scores.iter().find(|x| x.store == *store) else {
                        continue;
                    };
                    let colour = if *store == self.focus {
                        RGBColor(214, 39, 40)
                    } else if *store == super::config::NCBI_STORE {
                        RGBColor(31, 119, 180)
                    } else if *store == super::config::RANDOM_STORE {
                        RGBColor(150, 150, 150)
                    } else {
                        RGBColor(60, 60, 60)
                    };
                    let c = i as f64 + 0.5;
                    chart
                        .draw_series(std::iter::once(PathElement::new(
                            vec![(c, x.interval.0), (c, x.interval.1)],
                            colour.stroke_width(2),
                        )))
                        .map_err(|e| e.to_string())?;
                    chart
                        .draw_series(std::iter::once(Circle::new(
                            (c, x.value),
                            4,
                            colour.filled(),
                        )))
                        .map_err(|e| e.to_string())?;
                }
            }
            Ok(())
        })
    }

    fn plot_paired(&self, out: &Path) -> Result<()> {
        let title = format!(
            "{} minus other store (95% paired bootstrap interval)",
            self.focus
        );
        plot_paired_rows(&self.paired, &title, out)
    }
}

/// The paired differences of `rows` as intervals around zero (green when the interval
/// is above zero, red below, grey across), one row each, labelled by task or metric.
pub(super) fn plot_paired_rows(rows: &[PairedRow], title: &str, out: &Path) -> Result<()> {
    let rows: Vec<(String, &PairedDifference)> = rows
        .iter()
        .filter_map(|r| {
            let label = if r.section == "task" {
                format!("{} vs {}", r.item, r.other)
            } else {
                format!("{} vs {}", r.metric, r.other)
            };
            r.result.as_ref().map(|x| (label, x))
        })
        .collect();
    let height = (60 + 18 * rows.len().max(1)) as u32;
    let (lo, hi) = rows.iter().fold((0f64, 0f64), |(lo, hi), (_, r)| {
        (lo.min(r.interval.0), hi.max(r.interval.1))
    });
    let pad = ((hi - lo) * 0.05).max(1e-3);
    crate::plot::render_png(out, (1100, height), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(420)
            .build_cartesian_2d((lo - pad)..(hi + pad), 0f64..rows.len().max(1) as f64)
            .map_err(|e| e.to_string())?;
        let labels: Vec<String> = rows.iter().map(|(l, _)| l.clone()).collect();
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(rows.len() * 2 + 1)
            .y_label_formatter(&|y| {
                // Rows sit at i + 0.5 from the top; other tick positions stay blank.
                let i = y.floor() as usize;
                if (y - i as f64 - 0.5).abs() < 0.01 && i < labels.len() {
                    labels[labels.len() - 1 - i].clone()
                } else {
                    String::new()
                }
            })
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(0.0, 0.0), (0.0, rows.len() as f64)],
                BLACK.stroke_width(1),
            )))
            .map_err(|e| e.to_string())?;
        let n = rows.len();
        for (i, (_, r)) in rows.iter().enumerate() {
            let y = (n - 1 - i) as f64 + 0.5;
            let colour = if r.interval.0 > 0.0 {
                RGBColor(44, 160, 44)
            } else if r.interval.1 < 0.0 {
                RGBColor(214, 39, 40)
            } else {
                RGBColor(110, 110, 110)
            };
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(r.interval.0, y), (r.interval.1, y)],
                    colour.stroke_width(2),
                )))
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(std::iter::once(Circle::new(
                    (r.difference, y),
                    4,
                    colour.filled(),
                )))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

fn percent(x: f64) -> String {
    if x.is_finite() {
        format!("{:.0}%", 100.0 * x)
    } else {
        "–".into()
    }
}
