//! Gene cards on real genes: coverage of the protein-coding genome, the content and
//! order of a card, the `source` column, template errors, and the CLI end to end.

mod common;

use bftembed::genes::{read_gene_list, GeneCatalog};
use bftembed::profile::{
    card_fields_of, read_profile_metadata, read_profiles, CardTemplate, GeneCards,
    CARD_TEMPLATE_METADATA_KEY, PROTEIN_CODING,
};
use std::path::Path;
use std::process::Command;

fn cards() -> GeneCards {
    GeneCards::embedded(CardTemplate::default_card().unwrap()).unwrap()
}

#[test]
fn cards_cover_nearly_every_protein_coding_gene() {
    let catalog = GeneCatalog::embedded().unwrap();
    let coding = catalog
        .genes()
        .filter(|g| g.locus_type == PROTEIN_CODING)
        .count();
    let build = cards().all_cards(&catalog);
    assert_eq!(build.records.len() + build.skipped.len(), coding);
    // RefSeq summaries alone cover 12,627 of them; GO and HGNC groups reach 98%.
    let share = build.records.len() as f64 / coding as f64;
    assert!(share > 0.97, "{} of {coding}", build.records.len());
    let with_summary = build
        .records
        .iter()
        .filter(|r| card_fields_of(&r.source).contains(&"summary"))
        .count();
    assert!((12_000..13_500).contains(&with_summary), "{with_summary}");
    // Every skipped gene is protein coding and has no knowledge field at all.
    assert!(build
        .skipped
        .iter()
        .all(|s| s.reason.contains("none of the template's knowledge fields")));
}

#[test]
fn a_card_reads_in_template_order_and_names_its_fields() {
    let catalog = GeneCatalog::embedded().unwrap();
    let cards = cards();
    let tp53 = cards.card(catalog.by_symbol("TP53").unwrap()).unwrap();
    assert!(
        tp53.text.starts_with(
            "TP53 (tumor protein p53). Also known as p53, LFS1. Locus type: gene with \
             protein product. Chromosome 17. This gene encodes a tumor suppressor"
        ),
        "{}",
        &tp53.text[..200]
    );
    let order: Vec<usize> = [
        "Molecular functions:",
        "Biological processes:",
        "Cellular components:",
    ]
    .iter()
    .map(|s| tp53.text.find(s).expect(s))
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    assert!(tp53
        .text
        .contains("DNA-binding transcription factor activity"));
    assert_eq!(tp53.entrez_id, Some(7157));
    assert_eq!(
        card_fields_of(&tp53.source),
        [
            "name",
            "aliases",
            "locus_type",
            "chromosome",
            "summary",
            "go_function",
            "go_process",
            "go_component"
        ]
    );
    // FIRRM (was C1orf112) has no RefSeq summary: its card still has GO and symbols.
    let firrm = cards.card(catalog.by_symbol("FIRRM").unwrap()).unwrap();
    assert!(firrm.text.contains("Previous symbols: C1orf112."));
    assert!(!card_fields_of(&firrm.source).contains(&"summary"));
    // SOX2 is in an HGNC group; the group is written last by the shipped template.
    let sox2 = cards.card(catalog.by_symbol("SOX2").unwrap()).unwrap();
    assert!(
        sox2.text
            .ends_with("HGNC gene groups: SRY-box transcription factors."),
        "{}",
        sox2.text
    );
}

#[test]
fn a_template_picks_fields_order_and_caps_lists() {
    let template = CardTemplate::parse(
        "id = \"mine\"\nseparator = \" | \"\n\
         [[parts]]\nfield = \"go_process\"\ntext = \"{symbol}: {value}\"\nmax = 2\n\
         [[parts]]\nfield = \"name\"\ntext = \"{value}\"\n",
        Path::new("mine.toml"),
    )
    .unwrap();
    let cards = GeneCards::embedded(template).unwrap();
    let catalog = GeneCatalog::embedded().unwrap();
    let card = cards.card(catalog.by_symbol("TP53").unwrap()).unwrap();
    let (processes, name) = card.text.split_once(" | ").unwrap();
    assert_eq!(name, "tumor protein p53");
    assert_eq!(processes.matches("; ").count(), 1, "{processes}");
    assert!(processes.starts_with("TP53: "));
    assert_eq!(card.source, "card:go_process+name");
    // A gene with no GO process has only its name: no card.
    let list_dir = tempfile::tempdir().unwrap();
    let list = list_dir.path().join("genes.txt");
    std::fs::write(&list, "LINC00115\nTP53\np53\n").unwrap();
    let build = cards.cards_for(&read_gene_list(&list).unwrap(), &catalog);
    assert_eq!(build.records.len(), 1);
    assert_eq!(build.skipped.len(), 2);
    assert_eq!(build.skipped[0].line, 1);
    assert!(build.skipped[1].reason.contains("same gene"));
}

#[test]
fn template_mistakes_are_refused_with_the_file_and_part() {
    let cases = [
        ("id = \"x\"\n[[parts]]\nfield = \"go_processes\"\ntext = \"{value}\"\n", "go_processes"),
        ("id = \"x\"\n[[parts]]\nfield = \"name\"\ntext = \"{vaule}\"\n", "{vaule}"),
        ("id = \"x\"\n[[parts]]\nfield = \"name\"\ntext = \"a\"\nmax = 0\n", "max = 0"),
        (
            "id = \"x\"\n[[parts]]\nfield = \"name\"\ntext = \"a\"\n[[parts]]\nfield = \"name\"\ntext = \"b\"\n",
            "twice",
        ),
        ("id = \"x\"\nparts = []\n", "[[parts]]"),
    ];
    for (text, expected) in cases {
        let err = CardTemplate::parse(text, Path::new("bad_card.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bad_card.toml") && err.contains(expected),
            "{expected}: {err}"
        );
    }
}

#[test]
fn the_cli_writes_cards_with_their_template() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("genes.txt");
    std::fs::write(&list, "TP53\nNOTAGENE1\nSOX2\n").unwrap();
    let out = dir.path().join("cards.parquet");
    let run = Command::new(env!("CARGO_BIN_EXE_bftembed"))
        .args(["profile", "--source", "card", "--genes"])
        .arg(&list)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains("genes.txt:2: NOTAGENE1"), "{stderr}");
    let records = read_profiles(&out).unwrap();
    let symbols: Vec<&str> = records.iter().map(|r| r.symbol.as_str()).collect();
    assert_eq!(symbols, ["TP53", "SOX2"]);
    let metadata = read_profile_metadata(&out).unwrap();
    let template = metadata
        .iter()
        .find(|(k, _)| k == CARD_TEMPLATE_METADATA_KEY)
        .map(|(_, v)| v.as_str())
        .unwrap();
    assert_eq!(template, bftembed::profile::DEFAULT_CARD_TEMPLATE);
}

/// A two-family task over HGNC groups, with the shipped hgnc_gene_families label source.
fn two_family_task(dir: &Path) -> std::path::PathBuf {
    let labels =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/hgnc/hgnc_gene_families_by_symbol.tsv.gz");
    let text = format!(
        "id = \"two_families\"\ntitle = \"two HGNC groups\"\nlabel_sources = [\"groups\"]\n\
         [gene_families]\nlabels = \"{}\"\nsymbol_column = \"symbol\"\nclass_column = \"family_name\"\n\
         classes = [\"Solute carriers\", \"Zinc fingers C2H2-type\"]\n",
        labels.display()
    );
    let path = dir.join("two_families.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn eval_marks_scores_of_stores_whose_cards_state_the_labels() {
    use bftembed::tasks::{evaluate, GeneVectors, TaskSpec};
    let dir = tempfile::tempdir().unwrap();
    let catalog = GeneCatalog::embedded().unwrap();
    let genes: Vec<String> = (1..=24)
        .map(|i| format!("SLC2A{}", 1 + i % 14))
        .chain((1..=40).map(|i| format!("ZNF{}", 100 + i * 3)))
        .collect();
    let list = dir.path().join("genes.txt");
    std::fs::write(&list, genes.join("\n")).unwrap();
    let build = cards().cards_for(&read_gene_list(&list).unwrap(), &catalog);
    assert!(build.records.len() > 40, "{}", build.records.len());
    let store = bftembed::store::embed_into_store(
        &common::embedder(),
        &build.records,
        &dir.path().join("store"),
        bftembed::store::IndexParams::default(),
    )
    .unwrap();
    let vectors = GeneVectors::from_store(&store, "cards");
    assert!(vectors.text_parts().contains("groups") && vectors.text_parts().contains("go_process"));
    let task = TaskSpec::read(&two_family_task(dir.path())).unwrap();
    let report = evaluate(&[task], vec![(vectors, "cards".into())], &catalog).unwrap();
    let scores = &report.tasks[0].scores;
    assert_eq!(scores[0].label_text, ["groups"]);
    assert!(
        scores[1].label_text.is_empty(),
        "the random floor reads nothing"
    );
    let markdown = report.markdown();
    assert!(
        markdown.contains("Reading test, not evidence of knowledge"),
        "{markdown}"
    );
    assert!(
        markdown.contains("cards on two_families (groups)"),
        "{markdown}"
    );
    // The shipped label sources: GO classes read go_process, families read groups; a
    // RefSeq store carries neither.
    let shipped = |name: &str| {
        TaskSpec::read(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tasks")
                .join(name),
        )
        .unwrap()
    };
    let parts = store_parts(&store);
    assert_eq!(
        shipped("go_process_classes.toml").label_text_in(&parts),
        ["go_process"]
    );
    assert_eq!(
        shipped("hgnc_gene_families.toml").label_text_in(&parts),
        ["groups"]
    );
    assert!(shipped("dosage_sensitive_tfs.toml")
        .label_text_in(&parts)
        .is_empty());
}

fn store_parts(store: &bftembed::store::GeneStore) -> std::collections::BTreeSet<String> {
    bftembed::tasks::GeneVectors::from_store(store, "s")
        .text_parts()
        .clone()
}

#[test]
fn an_unknown_label_source_is_refused_with_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = two_family_task(dir.path());
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("[\"groups\"]", "[\"go_processes\"]");
    std::fs::write(&path, text).unwrap();
    let err = bftembed::tasks::TaskSpec::read(&path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("two_families.toml")
            && err.contains("go_processes")
            && err.contains("go_process"),
        "{err}"
    );
}
