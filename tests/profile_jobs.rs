//! Model-written profiles as jobs: journaled, resumable after a kill, for genes, cell
//! types and perturbations, with the model, template and settings recorded.

mod common;

use bftembed::profile::{
    read_profile_metadata, read_profiles, GenerationSettings, LocalBackend, ProfileJob,
    PromptTemplate, Subject, SubjectKind, GENERATION_METADATA_KEY,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const GENES: &[&str] = &[
    "TP53", "BRCA1", "EGFR", "MYC", "CD4", "INS", "APOE", "CFTR", "KRAS", "PTEN", "VEGFA", "TNF",
    "IL6", "ESR1", "AKT1", "HBB", "GAPDH", "ACTB", "MTOR", "CDKN2A",
];

fn bftembed() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bftembed"))
}

fn journal_in(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().contains(".journal-"))
}

fn gene(symbol: &str) -> Subject {
    Subject {
        key: symbol.to_string(),
        entrez_id: None,
        fields: BTreeMap::from([
            ("symbol".to_string(), symbol.to_string()),
            ("name".to_string(), String::new()),
        ]),
    }
}

/// A gene-profile job with the default template, stopped after `max_new_tokens`.
fn gene_job<'a>(
    backend: &'a LocalBackend,
    template: &'a PromptTemplate,
    max_new_tokens: usize,
) -> ProfileJob<'a> {
    ProfileJob {
        backend,
        template,
        settings: GenerationSettings {
            max_new_tokens,
            ..GenerationSettings::default()
        },
        kind: SubjectKind::Gene,
    }
}

#[test]
fn a_journal_cut_by_a_kill_is_resumed_without_repeats() {
    let backend = LocalBackend {
        generator: common::generator(),
        batch_size: 2,
    };
    let template = PromptTemplate::default_gene().unwrap();
    let job = gene_job(&backend, &template, 8);
    let tmp = tempfile::tempdir().unwrap();
    let journal = job.journal_path(&tmp.path().join("p.parquet"));
    // As after a kill: MDM2 done, INS half-written when the process died.
    std::fs::write(
        &journal,
        "{\"key\":\"MDM2\",\"entrez_id\":null,\"text\":\"planted\"}\n{\"key\":\"INS\",\"ent",
    )
    .unwrap();
    let subjects: Vec<Subject> = ["TP53", "MDM2", "INS"].iter().map(|s| gene(s)).collect();
    let records = job.run(&subjects, &journal).unwrap();
    let keys: Vec<&str> = records.iter().map(|r| r.symbol.as_str()).collect();
    assert_eq!(keys, ["TP53", "MDM2", "INS"], "each subject once, in order");
    assert_eq!(records[1].text, "planted", "the journaled answer is reused");
    assert!(!records[2].text.is_empty());
    assert_eq!(records[0].source, "smollm2-135m-instruct:gene-v1");
    let lines = std::fs::read_to_string(&journal).unwrap();
    assert_eq!(lines.lines().count(), 3, "{lines}");
}

#[test]
fn a_changed_question_is_asked_again_and_a_finished_table_seeds_the_journal() {
    let backend = LocalBackend {
        generator: common::generator(),
        batch_size: 2,
    };
    let template = PromptTemplate::default_gene().unwrap();
    let job = gene_job(&backend, &template, 6);
    let tmp = tempfile::tempdir().unwrap();
    let table = tmp.path().join("p.parquet");
    let journal = job.journal_path(&table);
    let subjects: Vec<Subject> = ["TP53", "MDM2"].iter().map(|s| gene(s)).collect();
    let first = job.run(&subjects, &journal).unwrap();
    // Plant an answer for MDM2 but change TP53's question: TP53 is asked again, MDM2 is
    // not. (The name field is not in the prompt, so changing it changes nothing.)
    let text = std::fs::read_to_string(&journal).unwrap();
    std::fs::write(&journal, text.replace(&first[1].text, "planted")).unwrap();
    let mut renamed = subjects.clone();
    renamed[0]
        .fields
        .insert("name".into(), "tumor protein p53".into());
    job.run(&renamed, &journal).unwrap();
    assert_eq!(
        std::fs::read_to_string(&journal).unwrap().lines().count(),
        2
    );
    let mut changed = subjects.clone();
    changed[0]
        .fields
        .insert("symbol".into(), "TP53 (p53)".into());
    let second = job.run(&changed, &journal).unwrap();
    assert_eq!(second[1].text, "planted");
    assert_eq!(
        std::fs::read_to_string(&journal).unwrap().lines().count(),
        3,
        "one new line, for TP53's new question"
    );

    // A table this job wrote seeds an empty journal; a table made otherwise does not.
    bftembed::profile::write_profiles_with_metadata(&table, &second, &job.metadata()).unwrap();
    std::fs::remove_file(&journal).unwrap();
    assert_eq!(job.seed_journal(&table, &journal).unwrap(), 2);
    let third = job.run(&changed, &journal).unwrap();
    assert_eq!(third[1].text, "planted", "taken over from the table");
    assert_eq!(third[0].text, second[0].text);
    let other = tmp.path().join("other.parquet");
    bftembed::profile::write_profiles(&other, &second).unwrap();
    std::fs::remove_file(&journal).unwrap();
    assert_eq!(job.seed_journal(&other, &journal).unwrap(), 0);
}

#[test]
fn a_killed_profile_run_restarts_and_profiles_every_gene_once() {
    let tmp = tempfile::tempdir().unwrap();
    let list = tmp.path().join("genes.txt");
    std::fs::write(&list, GENES.join("\n")).unwrap();
    let out = tmp.path().join("profiles.parquet");
    let args = |cmd: &mut Command| {
        cmd.args(["profile", "--source", "model", "--max-new-tokens", "16"])
            .args(["--batch-size", "2", "--genes"])
            .arg(&list)
            .arg("--out")
            .arg(&out);
    };
    let mut first = bftembed();
    args(&mut first);
    let mut child = first.spawn().unwrap();
    let start = Instant::now();
    loop {
        let done = journal_in(tmp.path())
            .and_then(|j| std::fs::read_to_string(j).ok())
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if done >= 4 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no progress in the journal"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!out.exists(), "a killed run must not leave a table");
    let journal = journal_in(tmp.path()).unwrap();
    let before = std::fs::read_to_string(&journal).unwrap();
    assert!(
        before.lines().count() < GENES.len(),
        "the kill came too late to test"
    );

    let mut second = bftembed();
    args(&mut second);
    let run = second.output().unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(String::from_utf8_lossy(&run.stderr).contains("resuming"));
    let records = read_profiles(&out).unwrap();
    let mut keys: Vec<&str> = records.iter().map(|r| r.symbol.as_str()).collect();
    assert_eq!(keys.len(), GENES.len(), "every gene exactly once");
    keys.sort_unstable();
    let mut expected = GENES.to_vec();
    expected.sort_unstable();
    assert_eq!(keys, expected);
    // Answers written before the kill are kept as they were.
    for line in before.lines() {
        let entry: serde_json::Value = serde_json::from_str(line).unwrap();
        let rec = records.iter().find(|r| r.symbol == entry["key"]).unwrap();
        assert_eq!(rec.text, entry["text"].as_str().unwrap());
    }
    assert!(
        !journal.exists(),
        "the journal is removed once the table is written"
    );
    let meta = read_profile_metadata(&out).unwrap();
    let generation = meta
        .iter()
        .find(|(k, _)| k == GENERATION_METADATA_KEY)
        .map(|(_, v)| serde_json::from_str::<serde_json::Value>(v).unwrap())
        .unwrap();
    assert_eq!(generation["model"], "smollm2-135m-instruct");
    assert_eq!(generation["template_id"], "gene-v1");
    assert_eq!(generation["max_new_tokens"], 16);
    assert_eq!(generation["temperature"], 0.0);
}

#[test]
fn cell_types_and_perturbations_get_profiles() {
    let tmp = tempfile::tempdir().unwrap();
    let cells = tmp.path().join("cells.tsv");
    std::fs::write(
        &cells,
        "CD14+ monocyte\tCD14, LYZ, S100A8\nB cell\tMS4A1, CD79A\n",
    )
    .unwrap();
    let perts = tmp.path().join("perts.tsv");
    std::fs::write(&perts, "TP53\tknockdown\nMYC\toverexpression\n").unwrap();
    for (flag, file, keys, template) in [
        (
            "--cell-types",
            &cells,
            ["CD14+ monocyte", "B cell"],
            "cell-type-v1",
        ),
        (
            "--perturbations",
            &perts,
            ["TP53 knockdown", "MYC overexpression"],
            "perturbation-v1",
        ),
    ] {
        let out = tmp.path().join(format!("{}.parquet", &flag[2..]));
        let run = bftembed()
            .args(["profile", "--max-new-tokens", "12", flag])
            .arg(file)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let records = read_profiles(&out).unwrap();
        let got: Vec<&str> = records.iter().map(|r| r.symbol.as_str()).collect();
        assert_eq!(got, keys);
        assert!(records.iter().all(|r| !r.text.is_empty()));
        assert!(
            records[0].source.ends_with(template),
            "{}",
            records[0].source
        );
    }
}

#[test]
fn bad_input_fails_before_any_work_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let genes = tmp.path().join("g.txt");
    std::fs::write(&genes, "TP53\n").unwrap();
    let empty = tmp.path().join("empty.txt");
    std::fs::write(&empty, "# nothing here\n\n").unwrap();
    let template = tmp.path().join("t.toml");
    std::fs::write(&template, "id = \"t\"\nuser = \"tell me about {gene}\"\n").unwrap();
    let cell_template = tmp.path().join("c.toml");
    std::fs::write(&cell_template, "id = \"c\"\nuser = \"about {symbol}\"\n").unwrap();
    let cells = tmp.path().join("cells.tsv");
    std::fs::write(&cells, "B cell\tMS4A1\n").unwrap();
    let out = tmp.path().join("p.parquet");
    let cases: Vec<(Vec<&std::ffi::OsStr>, &str)> = vec![
        (
            vec![
                "--genes".as_ref(),
                genes.as_os_str(),
                "--template".as_ref(),
                template.as_os_str(),
            ],
            "{gene}",
        ),
        (
            vec![
                "--cell-types".as_ref(),
                cells.as_os_str(),
                "--template".as_ref(),
                cell_template.as_os_str(),
            ],
            "{symbol}",
        ),
        (vec!["--genes".as_ref(), empty.as_os_str()], "empty"),
        (
            vec![
                "--genes".as_ref(),
                genes.as_os_str(),
                "--backend".as_ref(),
                "openai".as_ref(),
            ],
            "--endpoint",
        ),
    ];
    for (extra, needle) in cases {
        let run = bftembed()
            .args(["profile", "--source", "model"])
            .args(&extra)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(!run.status.success());
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(err.contains(needle), "expected '{needle}' in: {err}");
        assert!(!out.exists());
    }
}
