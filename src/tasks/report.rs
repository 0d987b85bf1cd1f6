//! The evaluation report: `report.md` for reading, `report.json` for programs,
//! `report.html` with the ROC curves drawn inline, and one SVG per task.

use super::score::TaskScore;
use crate::error::{Error, Result};
use std::fmt::Write as _;
use std::path::Path;

/// The vectors a report compares.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoreInfo {
    /// Name used in tables.
    pub name: String,
    /// Where it came from (a store folder, or "random").
    pub origin: String,
    /// Genes with vectors in the store.
    pub genes: usize,
    /// Genes the tasks scored it on: those every compared store has.
    pub genes_scored: usize,
}

/// A task that could not be scored, with the reason.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FailedTask {
    /// Task id.
    pub id: String,
    /// What went wrong.
    pub error: String,
}

/// Every store's score on one task.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskResult {
    /// Task id.
    pub id: String,
    /// Task title.
    pub title: String,
    /// The profile-text parts the task's labels come from (see [`super::TaskSpec`]).
    pub label_sources: Vec<String>,
    /// Scores, one per store.
    pub scores: Vec<TaskScore>,
}

impl TaskResult {
    /// Names the task's label sources and the stores whose texts carry them.
    fn label_note(&self) -> Option<String> {
        if self.label_sources.is_empty() {
            return None;
        }
        let readers: Vec<&str> = self
            .scores
            .iter()
            .filter(|x| !x.label_text.is_empty())
            .map(|x| x.store.as_str())
            .collect();
        let sources = self.label_sources.join(", ");
        Some(if readers.is_empty() {
            format!("Labels come from {sources}; no store's profile texts carry it.")
        } else {
            format!(
                "Labels come from {sources}, which the profile texts of {} carry \
                 {READS_LABELS_MARK}: for them this task is partly a reading test, not \
                 evidence of knowledge.",
                readers.join(", ")
            )
        })
    }
}

/// A whole report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EvalReport {
    /// bftembed's version.
    pub bftembed_version: String,
    /// Unix time of writing.
    pub created_unix: u64,
    /// The compared stores.
    pub stores: Vec<StoreInfo>,
    /// Whether every store was scored on the items all of them cover (several stores).
    pub common_items: bool,
    /// The tasks.
    pub tasks: Vec<TaskResult>,
    /// Tasks that could not be scored.
    pub failed: Vec<FailedTask>,
    /// Gene names in task files and matrices that matched a human gene only when case
    /// was ignored (the sign of mouse or rat data).
    pub case_only_genes: crate::genes::CaseOnlyMatches,
}

/// Marks a score whose store text states the task's labels.
pub const READS_LABELS_MARK: &str = "‡";

const COLORS: &[&str] = &[
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#7f7f7f",
];

impl EvalReport {
    /// Writes report.md, report.json, report.html and roc_TASK.svg into `dir`, each
    /// atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let json = serde_json::to_string_pretty(self)
            .map_err(|e| Error::InvalidArgument(format!("report encoding: {e}")))?;
        crate::fsutil::atomic_write_bytes(&dir.join("report.json"), json.as_bytes())?;
        crate::fsutil::atomic_write_bytes(&dir.join("report.md"), self.markdown().as_bytes())?;
        let mut svgs = Vec::new();
        for task in &self.tasks {
            if task.scores.iter().all(|x| x.roc.is_empty()) {
                svgs.push(String::new());
                continue;
            }
            let svg = roc_svg(task);
            let path = dir.join(format!("roc_{}.svg", task.id));
            crate::fsutil::atomic_write_bytes(&path, svg.as_bytes())?;
            svgs.push(svg);
        }
        let mut maps = Vec::new();
        for task in &self.tasks {
            let map = task
                .scores
                .iter()
                .find_map(|x| x.map.as_ref().map(|m| (x, m)));
            let svg = match map {
                Some((score, map)) => {
                    let svg = map_svg(&task.id, &score.store, map);
                    crate::fsutil::atomic_write_bytes(
                        &dir.join(format!("map_{}.svg", task.id)),
                        svg.as_bytes(),
                    )?;
                    svg
                }
                None => String::new(),
            };
            maps.push(svg);
        }
        let figures: Vec<String> = svgs
            .iter()
            .zip(&maps)
            .map(|(a, b)| format!("{a}{b}"))
            .collect();
        crate::fsutil::atomic_write_bytes(
            &dir.join("report.html"),
            self.html(&figures).as_bytes(),
        )?;
        Ok(())
    }

    /// One row per task, one column per store: the main metric with its interval, and
    /// with `show_items` the number of test items in brackets.
    pub fn summary_table(&self, show_items: bool) -> String {
        let mut s = String::new();
        let _ = write!(s, "| task | metric |");
        for store in &self.stores {
            let _ = write!(s, " {} |", store.name);
        }
        let _ = write!(s, "\n|---|---|");
        for _ in &self.stores {
            let _ = write!(s, "---|");
        }
        let _ = writeln!(s);
        for task in &self.tasks {
            let metric = task.scores.first().map(|x| x.metric.as_str()).unwrap_or("");
            let _ = write!(s, "| {} | {metric} |", task.id);
            for store in &self.stores {
                match task.scores.iter().find(|x| x.store == store.name) {
                    Some(x) => {
                        let _ = write!(
                            s,
                            " {:.3} [{:.3}, {:.3}]",
                            x.value, x.interval.0, x.interval.1
                        );
                        if show_items {
                            let _ = write!(s, " ({})", x.test_items);
                        }
                        if !x.label_text.is_empty() {
                            let _ = write!(s, " {READS_LABELS_MARK}");
                        }
                        let _ = write!(s, " |");
                    }
                    None => {
                        let _ = write!(s, " – |");
                    }
                }
            }
            let _ = writeln!(s);
        }
        if let Some(note) = self.reading_note() {
            let _ = writeln!(s, "\n{note}");
        }
        s
    }

    /// Explains the mark on scores whose store text carries the task's label source;
    /// `None` when no score has it.
    pub fn reading_note(&self) -> Option<String> {
        let marked: Vec<String> = self
            .tasks
            .iter()
            .flat_map(|t| {
                t.scores
                    .iter()
                    .filter(|x| !x.label_text.is_empty())
                    .map(move |x| format!("{} on {} ({})", x.store, t.id, x.label_text.join(", ")))
            })
            .collect();
        if marked.is_empty() {
            return None;
        }
        Some(format!(
            "{READS_LABELS_MARK} Reading test, not evidence of knowledge: the store's profile \
             texts carry the source the task's labels were taken from: {}.",
            marked.join("; ")
        ))
    }

    /// Says that several stores were scored on the items all of them cover, and on how
    /// many genes; `None` for a single store.
    pub fn common_items_note(&self) -> Option<String> {
        if !self.common_items {
            return None;
        }
        let scored = self.stores.first().map_or(0, |s| s.genes_scored);
        Some(format!(
            "Every store is scored on the items that all of them cover ({scored} genes in common); each task's table gives each store's own coverage beside it."
        ))
    }

    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# bftembed evaluation\n");
        let _ = writeln!(s, "bftembed {}. Stores:\n", self.bftembed_version);
        for store in &self.stores {
            let _ = writeln!(
                s,
                "- **{}**: {} ({} genes)",
                store.name, store.origin, store.genes
            );
        }
        let _ = writeln!(s, "\n## Summary\n");
        if let Some(note) = self.common_items_note() {
            let _ = writeln!(s, "{note}\n");
        }
        s.push_str(&self.summary_table(false));
        if let Some(w) = self.case_only_genes.warning("gene names") {
            let _ = writeln!(s, "\n**Warning**: {w}.");
        }
        if !self.failed.is_empty() {
            let _ = writeln!(s, "\n## Tasks that could not be scored\n");
            for f in &self.failed {
                let _ = writeln!(s, "- **{}**: {}", f.id, f.error.replace('\n', " "));
            }
        }
        for task in &self.tasks {
            let _ = writeln!(s, "\n## {}: {}\n", task.id, task.title);
            if let Some(note) = task.label_note() {
                let _ = writeln!(s, "{note}\n");
            }
            let _ = writeln!(
                s,
                "| store | scored | own coverage | train | test | metric | value | interval | other |"
            );
            let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
            for x in &task.scores {
                let _ = writeln!(
                    s,
                    "| {} | {}/{} | {}/{} | {} | {} | {} | {:.3} | [{:.3}, {:.3}] ({}) | {} |",
                    x.store,
                    x.items_covered,
                    x.items_total,
                    x.own_items_covered,
                    x.items_total,
                    x.train_items,
                    x.test_items,
                    x.metric,
                    x.value,
                    x.interval.0,
                    x.interval.1,
                    x.interval_method,
                    others(x)
                );
            }
            if task.scores.iter().any(|x| !x.roc.is_empty()) {
                let _ = writeln!(s, "\n![ROC curves](roc_{}.svg)", task.id);
            }
            if task.scores.iter().any(|x| x.map.is_some()) {
                let _ = writeln!(s, "\n![PCA map](map_{}.svg)", task.id);
            }
            if let Some(x) = task.scores.first() {
                if let Some((labels, counts)) = &x.confusion {
                    let _ = writeln!(
                        s,
                        "\nConfusion matrix of {} (rows: truth, columns: prediction):\n",
                        x.store
                    );
                    let _ = writeln!(s, "| truth \\ predicted | {} |", labels.join(" | "));
                    let _ = writeln!(s, "|---|{}", "---|".repeat(labels.len()));
                    for (label, row) in labels.iter().zip(counts) {
                        let cells: Vec<String> = row.iter().map(|c| c.to_string()).collect();
                        let _ = writeln!(s, "| {label} | {} |", cells.join(" | "));
                    }
                }
            }
        }
        s
    }

    fn html(&self, svgs: &[String]) -> String {
        let mut s = String::from(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>bftembed evaluation</title>\
             <style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;margin:1em 0}\
             td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child{text-align:left}</style></head><body>",
        );
        let _ = write!(
            s,
            "<h1>bftembed evaluation</h1><p>bftembed {}</p><ul>",
            self.bftembed_version
        );
        for store in &self.stores {
            let _ = write!(
                s,
                "<li><b>{}</b>: {} ({} genes)</li>",
                esc(&store.name),
                esc(&store.origin),
                store.genes
            );
        }
        s.push_str("</ul>");
        if let Some(note) = self.common_items_note() {
            let _ = write!(s, "<p>{}</p>", esc(&note));
        }
        if let Some(w) = self.case_only_genes.warning("gene names") {
            let _ = write!(s, "<p><b>Warning</b>: {}.</p>", esc(&w));
        }
        if !self.failed.is_empty() {
            s.push_str("<h2>Tasks that could not be scored</h2><ul>");
            for f in &self.failed {
                let _ = write!(s, "<li><b>{}</b>: {}</li>", esc(&f.id), esc(&f.error));
            }
            s.push_str("</ul>");
        }
        for (task, svg) in self.tasks.iter().zip(svgs) {
            let _ = write!(s, "<h2>{}: {}</h2><table><tr><th>store</th><th>scored</th><th>own coverage</th><th>train</th><th>test</th><th>metric</th><th>value</th><th>interval</th><th>other</th></tr>", esc(&task.id), esc(&task.title));
            for x in &task.scores {
                let _ = write!(
                    s,
                    "<tr><td>{}</td><td>{}/{}</td><td>{}/{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>[{:.3}, {:.3}]</td><td>{}</td></tr>",
                    esc(&x.store), x.items_covered, x.items_total, x.own_items_covered, x.items_total, x.train_items, x.test_items, esc(&x.metric), x.value,
                    x.interval.0, x.interval.1, esc(&others(x))
                );
            }
            s.push_str("</table>");
            s.push_str(svg);
            if let Some(x) = task.scores.first() {
                if let Some((labels, counts)) = &x.confusion {
                    let _ = write!(s, "<p>Confusion matrix of {} (rows: truth, columns: prediction)</p><table><tr><th></th>", esc(&x.store));
                    for l in labels {
                        let _ = write!(s, "<th>{}</th>", esc(l));
                    }
                    s.push_str("</tr>");
                    for (label, row) in labels.iter().zip(counts) {
                        let total: usize = row.iter().sum::<usize>().max(1);
                        let _ = write!(s, "<tr><td>{}</td>", esc(label));
                        for c in row {
                            let shade = 255 - (200 * c / total) as u8;
                            let _ = write!(
                                s,
                                "<td style=\"background:rgb({shade},{shade},255)\">{c}</td>"
                            );
                        }
                        s.push_str("</tr>");
                    }
                    s.push_str("</table>");
                }
            }
        }
        s.push_str("</body></html>");
        s
    }
}

fn others(x: &TaskScore) -> String {
    x.other_metrics
        .iter()
        .map(|(n, v)| {
            if v.fract() == 0.0 {
                format!("{n} {v}")
            } else {
                format!("{n} {v:.3}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// ROC curves of every store on one task, with the chance diagonal.
fn roc_svg(task: &TaskResult) -> String {
    let (w, h, m) = (680.0, 400.0, 50.0);
    let side = 300.0;
    let x = |v: f64| m + v * side;
    let y = |v: f64| m + (1.0 - v) * side;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"11\">\
         <rect x=\"{m}\" y=\"{m}\" width=\"{side}\" height=\"{side}\" fill=\"none\" stroke=\"#333\"/>\
         <line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#aaa\" stroke-dasharray=\"4 3\"/>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">false positive rate</text>\
         <text x=\"14\" y=\"{}\" transform=\"rotate(-90 14 {})\" text-anchor=\"middle\">true positive rate</text>\
         <text x=\"{m}\" y=\"30\" font-size=\"13\">{}</text>",
        x(0.0), y(0.0), x(1.0), y(1.0), m + side / 2.0, m + side + 35.0, m + side / 2.0, m + side / 2.0, esc(&task.id)
    );
    for t in [0.0, 0.5, 1.0] {
        let _ = write!(s, "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{t}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{t}</text>", x(t), m + side + 15.0, m - 5.0, y(t) + 4.0);
    }
    for (i, score) in task.scores.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<String> = score
            .roc
            .iter()
            .map(|(fx, fy)| format!("{:.1},{:.1}", x(*fx), y(*fy)))
            .collect();
        let _ = write!(
            s,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.6\" points=\"{}\"/>",
            points.join(" ")
        );
        let _ = write!(
            s,
            "<rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{color}\"/><text x=\"{}\" y=\"{}\">{} ({:.3})</text>",
            m + side + 8.0, m + 10.0 + 16.0 * i as f64, m + side + 22.0, m + 19.0 + 16.0 * i as f64, esc(&score.store), score.value
        );
    }
    s.push_str("</svg>");
    s
}

/// A PCA scatter of one store's items, coloured by class.
fn map_svg(task: &str, store: &str, map: &super::pca::ItemMap) -> String {
    let (side, m) = (320.0f32, 40.0f32);
    let (mut x0, mut x1, mut y0, mut y1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
    for (x, y) in &map.points {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        y0 = y0.min(*y);
        y1 = y1.max(*y);
    }
    // A margin inside the frame, so the outermost points are not cut by it.
    let (px, py) = (0.04 * (x1 - x0), 0.04 * (y1 - y0));
    let (x0, x1, y0, y1) = (x0 - px, x1 + px, y0 - py, y1 + py);
    let sx = |x: f32| m + (x - x0) / (x1 - x0).max(1e-9) * side;
    let sy = |y: f32| m + (1.0 - (y - y0) / (y1 - y0).max(1e-9)) * side;
    let legend_w = 240.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"11\">\
         <rect x=\"{m}\" y=\"{m}\" width=\"{side}\" height=\"{side}\" fill=\"none\" stroke=\"#333\"/>\
         <text x=\"{m}\" y=\"25\" font-size=\"13\">{}: {} of {} on PC1/PC2</text>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">PC1</text>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 {} {})\">PC2</text>",
        side + 2.0 * m + legend_w,
        side + 2.0 * m,
        esc(task),
        esc(&map.items),
        esc(store),
        m + side / 2.0,
        m + side + 20.0,
        m - 12.0,
        m + side / 2.0,
        m - 12.0,
        m + side / 2.0
    );
    for ((x, y), l) in map.points.iter().zip(&map.labels) {
        let _ = write!(
            s,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2\" fill=\"{}\" fill-opacity=\"0.7\"/>",
            sx(*x),
            sy(*y),
            PALETTE[l % PALETTE.len()]
        );
    }
    for (i, c) in map.classes.iter().enumerate() {
        let y = m + 10.0 + 15.0 * i as f32;
        let _ = write!(
            s,
            "<circle cx=\"{}\" cy=\"{}\" r=\"4\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{}</text>",
            m + side + 15.0,
            y,
            PALETTE[i % PALETTE.len()],
            m + side + 25.0,
            y + 4.0,
            esc(c)
        );
    }
    s.push_str("</svg>");
    s
}

const PALETTE: &[&str] = &[
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39",
];
