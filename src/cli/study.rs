//! `bftembed study`: the end-to-end comparison of profile-writing models.

use anyhow::{Context, Result};
use bftembed::study::{run_study, study_dir, StudyConfig, StudyOptions};
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
}

pub fn run(args: StudyArgs) -> Result<()> {
    let config = StudyConfig::read(&args.config)?;
    let options = StudyOptions {
        quick: args.quick,
        commit: git_revision(&config.base),
    };
    let report = run_study(&config, &options).context("running the study")?;
    let dir = study_dir(&config, args.quick);
    for row in &report.paired {
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
    for p in &report.problems {
        eprintln!("incomplete: {p}");
    }
    eprintln!("study report: {}", dir.join("study.md").display());
    Ok(())
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
