//! `bftembed study`: the end-to-end comparison of profile-writing models.

use anyhow::{Context, Result};
use bftembed::study::{run_study, study_dir, PairedRow, StudyArm, StudyConfig, StudyOptions};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Args)]
pub struct StudyArgs {
    /// The study file.
    #[arg(long, default_value = "train/study.toml")]
    config: PathBuf,
    /// A few genes, one task per family and a few gene sets (the config's [quick]
    /// settings), written to OUT/quick: minutes instead of hours.
    #[arg(long)]
    quick: bool,
    /// Which arm to run: both (default), `heldout` (genes no model was taught) or
    /// `acquisition` (teach genes, then ask about them; needs [acquisition] in the file).
    #[arg(long, value_enum, default_value_t = ArmArg::Both)]
    arm: ArmArg,
}

/// The `--arm` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ArmArg {
    /// The held-out arm, then the acquisition arm when the file has one.
    Both,
    /// Only the held-out arm.
    Heldout,
    /// Only the acquisition arm.
    Acquisition,
}

pub fn run(args: StudyArgs) -> Result<()> {
    let config = StudyConfig::read(&args.config)?;
    let options = StudyOptions {
        quick: args.quick,
        commit: git_revision(&config.base),
        arm: match args.arm {
            ArmArg::Both => StudyArm::Both,
            ArmArg::Heldout => StudyArm::Heldout,
            ArmArg::Acquisition => StudyArm::Acquisition,
        },
    };
    let results = run_study(&config, &options).context("running the study")?;
    let dir = study_dir(&config, args.quick);
    if let Some(report) = &results.heldout {
        print_paired(&report.paired);
        for p in &report.problems {
            eprintln!("incomplete: {p}");
        }
        eprintln!("study report: {}", dir.join("study.md").display());
    }
    if let Some(report) = &results.acquisition {
        print_paired(&report.paired);
        for t in &report.primary {
            println!(
                "pre-registered: {} vs {} on taught card specificity {:+.4} [{:+.4}, {:+.4}] Holm p={:.3}: {}",
                t.focus, t.other, t.result.difference, t.result.interval.0, t.result.interval.1, t.p_holm, t.verdict
            );
        }
        for p in &report.problems {
            eprintln!("incomplete (acquisition): {p}");
        }
        let file = dir.join("acquisition").join("acquisition.md");
        eprintln!("acquisition report: {}", file.display());
    }
    Ok(())
}

/// One line per paired comparison.
fn print_paired(rows: &[PairedRow]) {
    for row in rows {
        if let Some(r) = &row.result {
            println!(
                "{:<8} {:<32} {} vs {:<8} {:+.3} [{:+.3}, {:+.3}] p={:.3} {}",
                row.section,
                row.item,
                row.focus,
                row.other,
                r.difference,
                r.interval.0,
                r.interval.1,
                r.p_value,
                row.verdict()
            );
        }
    }
}

/// `git describe`-style revision of the checkout holding `dir`, with `-dirty` when
/// tracked files differ from it; `None` outside a git checkout.
fn git_revision(dir: &Path) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let mut rev = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let clean = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["diff", "--quiet", "HEAD", "--"])
        .status()
        .ok()?
        .success();
    if !clean {
        rev.push_str("-dirty");
    }
    Some(rev)
}
