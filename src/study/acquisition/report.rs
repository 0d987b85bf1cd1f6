//! The acquisition arm's report: `acquisition.md` for reading, `acquisition.json` for
//! programs, `paired.png` (the focus objective against the others) and `recall.png`
//! (card specificity of every model on taught and never-taught genes).

use super::scores::Scored;
use super::teach::{TeachingSet, TrainedRun};
use super::ArmModel;
use crate::error::{Error, Result};
use crate::fsutil::atomic_write_bytes;
use crate::models::ModelDir;
use crate::study::accuracy::ProfileAccuracy;
use crate::study::genes::StudyGenes;
use crate::study::report::{plot_paired_rows, ModelRecord, PairedRow};
use crate::study::run::Setup;
use crate::tasks::{ItemOutcomes, PairedDifference};
use crate::train::diagnose::CorpusSummary;
use plotters::prelude::*;
use std::fmt::Write as _;
use std::path::Path;

/// The family-wise error rate of the pre-registered tests.
pub const ALPHA: f64 = 0.05;

/// One trained run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunRecord {
    /// The model and its weights.
    pub model: ModelRecord,
    /// Its objective.
    pub objective: String,
    /// Cross-entropy on never-taught cards before training (absent when resumed from a
    /// run that did not record it).
    pub heldout_ce_before: Option<f64>,
    /// ... and after.
    pub heldout_ce_after: f64,
}

/// One model's recall of the cards of one gene set.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RecallRow {
    /// The model (`base` or a run).
    pub model: String,
    /// Its objective (`base` for the base model).
    pub objective: String,
    /// `taught` or `never taught`.
    pub set: String,
    /// Cosines to the cards (masked), retrieval rank, GO facts.
    pub accuracy: ProfileAccuracy,
    /// Mean share of a card's GO process names that the profile states.
    pub go_recall: f64,
    /// That share per gene, for paired tests.
    #[serde(skip)]
    pub go_recall_items: ItemOutcomes,
}

/// One task's score on one store of taught genes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProbeRow {
    /// The task.
    pub task: String,
    /// The store (a model, or `cards`).
    pub store: String,
    /// The task's main metric.
    pub metric: String,
    /// Its value.
    pub value: f64,
    /// Its 95% interval.
    pub interval: (f64, f64),
    /// Items scored.
    pub items: usize,
    /// Share of the gap from the base model's profiles (0) to the cards (1) closed.
    pub gap_closed: Option<f64>,
}

/// One pre-registered test: the focus objective against another on the taught genes'
/// card specificity, seeds pooled per gene, Holm-corrected over all such tests.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PrimaryTest {
    /// The focus objective.
    pub focus: String,
    /// The other objective.
    pub other: String,
    /// The paired difference (focus minus other) and its bootstrap.
    pub result: PairedDifference,
    /// Holm-adjusted p-value.
    pub p_holm: f64,
    /// What the decision rule says.
    pub verdict: String,
}

impl PrimaryTest {
    /// The test and its verdict: more or less acquired when the Holm-adjusted p-value is
    /// below [`ALPHA`], otherwise no clear difference.
    pub fn new(focus: &str, other: &str, result: PairedDifference, p_holm: f64) -> Self {
        let verdict = if p_holm >= ALPHA {
            "no clear difference".to_string()
        } else if result.difference > 0.0 {
            format!("{focus} acquires more")
        } else {
            format!("{focus} acquires less")
        };
        PrimaryTest {
            focus: focus.into(),
            other: other.into(),
            result,
            p_holm,
            verdict,
        }
    }
}

/// The whole arm.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AcquisitionReport {
    /// bftembed's version.
    pub bftembed_version: String,
    /// The source revision.
    pub commit: Option<String>,
    /// Unix time of writing.
    pub created_unix: u64,
    /// A `--quick` run.
    pub quick: bool,
    /// The sentence encoder.
    pub encoder: ModelRecord,
    /// The base model every run starts from.
    pub base: ModelRecord,
    /// The trained runs.
    pub runs: Vec<RunRecord>,
    /// Taught genes, as drawn per task.
    pub taught: StudyGenes,
    /// Never-taught genes, as drawn per task.
    pub untaught: StudyGenes,
    /// Recall of the cards, per model and set.
    pub recall: Vec<RecallRow>,
    /// The probe tasks on the taught genes.
    pub probes: Vec<ProbeRow>,
    /// The uncertainty diagnostic on the taught cards, per model.
    pub diagnosis: Vec<CorpusSummary>,
    /// The pre-registered tests.
    pub primary: Vec<PrimaryTest>,
    /// Every paired comparison.
    pub paired: Vec<PairedRow>,
    /// What could not be scored.
    pub problems: Vec<String>,
}

impl AcquisitionReport {
    /// Gathers the arm's results.
    pub(super) fn assemble(
        setup: &Setup,
        encoder: &ModelDir,
        set: &TeachingSet,
        runs: &[TrainedRun],
        models: &[ArmModel],
        scored: Scored,
    ) -> Self {
        let record = |name: &str| models.iter().find(|m| m.name == name).map(ArmModel::record);
        AcquisitionReport {
            bftembed_version: env!("CARGO_PKG_VERSION").to_string(),
            commit: setup.options.commit.clone(),
            created_unix: crate::fsutil::unix_now(),
            quick: setup.options.quick,
            encoder: ModelRecord {
                name: "encoder".into(),
                id: encoder.id.clone(),
                weights_sha256: encoder.weights_sha256.clone(),
            },
            base: models[0].record(),
            runs: runs
                .iter()
                .filter_map(|r| {
                    Some(RunRecord {
                        model: record(&r.name)?,
                        objective: r.objective.clone(),
                        heldout_ce_before: r.heldout_ce.0,
                        heldout_ce_after: r.heldout_ce.1,
                    })
                })
                .collect(),
            taught: set.taught.clone(),
            untaught: set.untaught.clone(),
            recall: scored.recall,
            probes: scored.probes,
            diagnosis: scored.diagnosis,
            primary: scored.primary,
            paired: scored.paired,
            problems: scored.problems,
        }
    }

    /// A model's recall row on a set.
    pub fn recall_of(&self, model: &str, set: &str) -> Option<&RecallRow> {
        self.recall
            .iter()
            .find(|r| r.model == model && r.set == set)
    }

    /// Writes `acquisition.json`, `acquisition.md`, `paired.png` and `recall.png`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self)
            .map_err(|e| Error::InvalidArgument(format!("acquisition report encoding: {e}")))?;
        atomic_write_bytes(&dir.join("acquisition.json"), json.as_bytes())?;
        let focus = self.primary.first().map_or("focus", |p| p.focus.as_str());
        let title = format!("{focus} minus other (95% paired bootstrap interval)");
        plot_paired_rows(&self.paired, &title, &dir.join("paired.png"))?;
        self.plot_recall(&dir.join("recall.png"))?;
        atomic_write_bytes(&dir.join("acquisition.md"), self.markdown().as_bytes())
    }

    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# Acquisition arm{}\n\nbftembed {}, commit {}. {} taught genes, {} never taught. \
             Base {} (sha256 {}); encoder {} (sha256 {}).\n",
            if self.quick { " (quick)" } else { "" },
            self.bftembed_version,
            self.commit.as_deref().unwrap_or("unknown"),
            self.taught.genes.len(),
            self.untaught.genes.len(),
            self.base.id,
            short(&self.base.weights_sha256),
            self.encoder.id,
            short(&self.encoder.weights_sha256),
        );
        if self.problems.is_empty() {
            let _ = writeln!(s, "Complete: every model profiled every gene; every task was scored on every store.\n");
        } else {
            let _ = writeln!(s, "**Incomplete:**\n");
            for p in &self.problems {
                let _ = writeln!(s, "- {p}");
            }
            s.push('\n');
        }
        self.write_runs(&mut s);
        self.write_primary(&mut s);
        self.write_recall(&mut s);
        self.write_probes(&mut s);
        self.write_diagnosis(&mut s);
        self.write_paired(&mut s);
        self.write_draws(&mut s);
        s
    }

    fn write_runs(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "## Runs\n\nCross-entropy of the answer tokens on never-taught genes' cards (a seeded sample), before and after training.\n\n\
             | run | objective | sha256 | held-out CE before | after |\n|---|---|---|---|---|"
        );
        for r in &self.runs {
            let before = r
                .heldout_ce_before
                .map_or("–".into(), |v| format!("{v:.3}"));
            let _ = writeln!(
                s,
                "| {} | {} | {} | {before} | {:.3} |",
                r.model.name,
                r.objective,
                short(&r.model.weights_sha256),
                r.heldout_ce_after
            );
        }
    }

    fn write_primary(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\n## Pre-registered tests\n\nCard specificity on the taught genes (cosine of the masked profile to its own masked card minus the mean cosine to the other taught cards), runs of one objective averaged per gene; paired bootstrap over genes; Holm's correction over these tests; a verdict needs adjusted p < {ALPHA}.\n\n\
             | focus | other | genes | difference [95%] | p | Holm p | verdict |\n|---|---|---|---|---|---|---|"
        );
        for t in &self.primary {
            let r = &t.result;
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:+.4} [{:+.4}, {:+.4}] | {:.3} | {:.3} | {} |",
                t.focus,
                t.other,
                r.items,
                r.difference,
                r.interval.0,
                r.interval.1,
                r.p_value,
                t.p_holm,
                t.verdict
            );
        }
    }

    fn write_recall(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\n## Recall of the cards\n\nEvery profile against the cards of its set's genes, both with the gene's symbol and name masked. \
             Specificity = cosine to the own card minus the mean cosine to the set's other cards. GO recall = share of the card's GO process names (of at least two words) the profile states; \
             GO supported = share of the profile's GO process names the gene is annotated to (1 minus the wrong share).\n\n\
             ![card specificity](recall.png)\n\n\
             | model | set | genes | cos own | cos others | specificity | own in top 1 | top 10 | median rank | GO recall | GO terms / profile | GO supported |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for r in &self.recall {
            let a = &r.accuracy;
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.3} | {:.3} | {:.4} | {:.3} | {:.3} | {:.0} | {} | {:.2} | {} |",
                r.model,
                r.set,
                a.genes,
                a.cosine_own,
                a.cosine_others,
                a.specificity,
                a.top1,
                a.top10,
                a.median_rank,
                percent(r.go_recall),
                a.terms_per_profile,
                percent(a.terms_supported)
            );
        }
    }

    fn write_probes(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\n## Probe tasks on the taught genes\n\nOne store per model of its taught genes' profiles, beside the taught cards' store. \
             Gap closed = (model - base) / (cards - base). Full report: `eval/report.md`.\n\n\
             | task | store | metric | value [95%] | items | gap closed |\n|---|---|---|---|---|---|"
        );
        for p in &self.probes {
            let gap = p.gap_closed.map_or("–".into(), |g| format!("{g:+.2}"));
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.3} [{:.3}, {:.3}] | {} | {gap} |",
                p.task, p.store, p.metric, p.value, p.interval.0, p.interval.1, p.items
            );
        }
    }

    fn write_diagnosis(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\n## Uncertainty on the taught cards\n\nEach card read as plain text (first 256 tokens) by each model; windows of 64 tokens, a token is low-confidence when p < 0.25, a window dense-low when it holds a run of 4 low tokens (`bftembed diagnose`).\n\n\
             | model | cards | tokens | mean p | low tokens | confident | sparse-low | dense-low |\n|---|---|---|---|---|---|---|---|"
        );
        for d in &self.diagnosis {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.3} | {} | {} | {} | {} |",
                d.name,
                d.texts,
                d.tokens,
                d.mean_p,
                percent(d.low_token_share),
                percent(d.confident_share),
                percent(d.sparse_low_share),
                percent(d.dense_low_share)
            );
        }
    }

    fn write_paired(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\n## Every paired comparison\n\nFocus minus other on the genes (or task items) both have; 95% paired bootstrap interval; `recall` rows pool each objective's seeds per gene, `seeds` rows compare two runs of one objective (chance alone), `task` rows compare first runs. Not corrected for multiple tests: only the table above decides.\n\n\
             ![paired differences](paired.png)\n\n\
             | section | set or task | metric | focus | other | items | difference [95%] | p | verdict |\n|---|---|---|---|---|---|---|---|---|"
        );
        for row in &self.paired {
            let (items, diff, p) = row.cells(4);
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {items} | {diff} | {p} | {} |",
                row.section,
                row.item,
                row.metric,
                row.focus,
                row.other,
                row.verdict()
            );
        }
    }

    fn write_draws(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\n## Genes drawn per task\n\n| task | evaluation genes | taught | never-taught candidates | never taught |\n|---|---|---|---|---|"
        );
        for (t, u) in self.taught.draws.iter().zip(&self.untaught.draws) {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                t.task, t.candidates, t.drawn, u.candidates, u.drawn
            );
        }
    }

    /// Card specificity per model, taught beside never-taught genes.
    fn plot_recall(&self, out: &Path) -> Result<()> {
        let mut models: Vec<&str> = Vec::new();
        for r in &self.recall {
            if !models.contains(&r.model.as_str()) {
                models.push(&r.model);
            }
        }
        let value = |m: &str, set: &str| {
            self.recall_of(m, set)
                .map_or(0.0, |r| r.accuracy.specificity)
        };
        let values: Vec<f64> = models
            .iter()
            .flat_map(|m| [value(m, "taught"), value(m, "never taught")])
            .filter(|v| v.is_finite())
            .collect();
        // Bars start at zero; a model whose profiles are closer to other genes' cards
        // than to their own has a negative bar.
        let top = values.iter().copied().fold(0.01f64, f64::max) * 1.15;
        let bottom = values.iter().copied().fold(0.0f64, f64::min) * 1.15;
        let width = (160 + 90 * models.len()) as u32;
        crate::plot::render_png(out, (width.max(500), 420), |root| {
            let mut chart = ChartBuilder::on(root)
                .caption(
                    "card specificity: taught vs never-taught genes",
                    ("sans-serif", 18),
                )
                .margin(10)
                .x_label_area_size(40)
                .y_label_area_size(60)
                .build_cartesian_2d(0f64..models.len() as f64, bottom..top)
                .map_err(|e| e.to_string())?;
            let labels: Vec<String> = models.iter().map(|m| m.to_string()).collect();
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(models.len() * 2 + 1)
                .x_label_formatter(&|x| {
                    let i = x.floor() as usize;
                    if (x - i as f64 - 0.5).abs() < 0.01 && i < labels.len() {
                        labels[i].clone()
                    } else {
                        String::new()
                    }
                })
                .y_desc("specificity (cosine own - others)")
                .draw()
                .map_err(|e| e.to_string())?;
            let colours = [
                (RGBColor(31, 119, 180), "taught"),
                (RGBColor(255, 127, 14), "never taught"),
            ];
            for (k, (colour, set)) in colours.into_iter().enumerate() {
                let bars = models.iter().enumerate().map(|(i, m)| {
                    let x0 = i as f64 + 0.1 + 0.4 * k as f64;
                    Rectangle::new([(x0, 0.0), (x0 + 0.4, value(m, set))], colour.filled())
                });
                chart
                    .draw_series(bars)
                    .map_err(|e| e.to_string())?
                    .label(set)
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour.filled())
                    });
            }
            chart
                .configure_series_labels()
                .border_style(BLACK)
                .background_style(WHITE)
                .draw()
                .map_err(|e| e.to_string())
        })
    }
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
