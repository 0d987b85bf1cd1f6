//! Task files as the one tagged enum reads them: every shipped file is one kind, an
//! unknown or second kind table is refused with the file, the line and the kinds there
//! are, and a typo inside a kind's table keeps its line.

use bftembed::tasks::TaskSpec;
use std::path::Path;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn every_shipped_task_is_read_as_the_kind_its_table_names() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tasks");
    let tasks = TaskSpec::read_all(&dir).unwrap();
    assert!(tasks.len() >= 17, "{} tasks", tasks.len());
    for task in &tasks {
        let text = std::fs::read_to_string(dir.join(format!("{}.toml", task.id))).unwrap();
        let header = format!("[{}]", task.kind.table());
        assert!(
            text.lines().any(|l| l.trim() == header),
            "{}: read as {header}",
            task.id
        );
    }
}

#[test]
fn an_unknown_kind_is_named_with_its_line_and_the_kinds_there_are() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write(
        tmp.path(),
        "typo.toml",
        "id = \"t\"\ntitle = \"t\"\n\n[gene_pair]\nsplit = \"given\"\n",
    );
    let err = TaskSpec::read(&path).unwrap_err().to_string();
    for part in [
        "typo.toml",
        "line 4",
        "gene_pair",
        "gene_pairs",
        "expression_response",
    ] {
        assert!(err.contains(part), "{part} missing: {err}");
    }
    // A misspelt top-level key is read as a table name too, and refused the same way.
    let path = write(tmp.path(), "key.toml", "id = \"t\"\ntitel = \"t\"\n");
    let err = TaskSpec::read(&path).unwrap_err().to_string();
    assert!(err.contains("titel") && err.contains("line 2"), "{err}");
}

#[test]
fn a_task_has_exactly_one_kind() {
    let tmp = tempfile::tempdir().unwrap();
    let two = write(
        tmp.path(),
        "two.toml",
        "id = \"t\"\ntitle = \"t\"\n[perturbations]\ntrain = \"a.gmt\"\n[perturbations2]\n",
    );
    let err = TaskSpec::read(&two).unwrap_err().to_string();
    assert!(err.contains("perturbations2"), "{err}");
    let two = write(
        tmp.path(),
        "two_kinds.toml",
        "id = \"t\"\ntitle = \"t\"\n[perturbations]\ntrain = \"a.gmt\"\n[gene_classes]\nlabels = \"x.csv\"\nsymbol_column = \"g\"\nlabel_column = \"l\"\npositive_value = \"1\"\npositive_name = \"p\"\nnegative_name = \"n\"\n",
    );
    let err = TaskSpec::read(&two).unwrap_err().to_string();
    assert!(
        err.contains("exactly one")
            && err.contains("[perturbations]")
            && err.contains("[gene_classes]"),
        "{err}"
    );
    let none = write(tmp.path(), "none.toml", "id = \"t\"\ntitle = \"t\"\n");
    let err = TaskSpec::read(&none).unwrap_err().to_string();
    assert!(
        err.contains("exactly one") && err.contains("[cell_types]"),
        "{err}"
    );
    let no_id = write(
        tmp.path(),
        "no_id.toml",
        "title = \"t\"\n[perturbations]\ntrain = \"a.gmt\"\n",
    );
    let err = TaskSpec::read(&no_id).unwrap_err().to_string();
    assert!(err.contains("missing field `id`"), "{err}");
}

#[test]
fn a_family_task_listing_a_class_twice_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write(
        tmp.path(),
        "twice.toml",
        "id = \"t\"\ntitle = \"t\"\n[gene_families]\nlabels = \"x.csv\"\nsymbol_column = \"g\"\nclass_column = \"c\"\nclasses = [\"A\", \"B\", \"A\"]\n",
    );
    let err = TaskSpec::read(&path).unwrap_err().to_string();
    assert!(err.contains("twice.toml") && err.contains("twice"), "{err}");
}
