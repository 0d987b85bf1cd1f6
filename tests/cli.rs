//! The `bftembed` binary end to end on real genes, and its answers to bad input: each
//! error names the file, line or item, exits non-zero and leaves no partial output.

mod common;

use common::{bftembed, stderr};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bftembed_env(args: &[&str], home: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bftembed"))
        .args(args)
        .env("BFTEMBED_HOME", home)
        .output()
        .expect("run bftembed")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Writes `content` to `dir/name` and returns the path.
fn file(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

const GENES: &str = "# p53 pathway and a few others\nTP53\nMDM2\nCDKN1A\nTP63\nTP73\nATM\nCHEK2\n\
BRCA1\nBRCA2\nRAD51\nCD4\nCD8A\nINS\nGCG\nALB\nMYOD1\nHBB\nEGFR\nKRAS\np21\nNOTAGENE7\n";

#[test]
fn profile_embed_neighbors_search_reindex() {
    common::embedding_model();
    let tmp = tempfile::tempdir().unwrap();
    let genes = file(tmp.path(), "genes.txt", GENES.as_bytes());
    let profiles = tmp.path().join("p.parquet");
    let out = bftembed(&["profile", "--genes", p(&genes), "--out", p(&profiles)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    // p21 is an alias of several genes; NOTAGENE7 is no gene: both are reported by line.
    assert!(err.contains("genes.txt:22: NOTAGENE7"), "{err}");
    assert!(
        err.contains("genes.txt:21: p21") && err.contains("ambiguous") && err.contains("CDKN1A"),
        "{err}"
    );
    assert!(err.contains("wrote 19 profiles"), "{err}");

    let store = tmp.path().join("store");
    let out = bftembed(&[
        "embed",
        "--profiles",
        p(&profiles),
        "--out",
        p(&store),
        "--model",
        "all-minilm-l6-v2",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The default precision is the fastest this CPU runs, and the store says which.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("manifest.json")).unwrap()).unwrap();
    let fastest = bftembed::embed::EncoderPrecision::fastest(&candle_core::Device::Cpu);
    assert_eq!(
        manifest["encoder"]["precision"],
        fastest.name(),
        "{manifest}"
    );

    let out = bftembed(&[
        "neighbors",
        "p53",
        "--store",
        p(&store),
        "-k",
        "3",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let hits = json["neighbors"].as_array().unwrap();
    assert_eq!(hits.len(), 3);
    assert!(json["query"].as_str().unwrap().starts_with("TP53"));
    assert!(hits.iter().all(|h| h["symbol"] != "TP53"));

    let out = bftembed(&["neighbors", "TP53", "--store", p(&store), "--exact"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("nearest to TP53 in 19 genes"),
        "{}",
        stdout(&out)
    );

    let out = bftembed(&[
        "search",
        "hormone secreted by pancreatic islets that lowers blood glucose",
        "--store",
        p(&store),
        "-k",
        "2",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let top: Vec<&str> = json["neighbors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["symbol"].as_str().unwrap())
        .collect();
    assert!(top.contains(&"INS"), "{top:?}");

    // Unknown symbol: close matches, non-zero exit.
    let out = bftembed(&["neighbors", "TP35", "--store", p(&store)]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("unknown gene symbol 'TP35'") && err.contains("TP53"),
        "{err}"
    );

    // A truncated index is refused by name; reindex repairs it.
    let graph = store.join("index.hnsw.graph");
    let len = std::fs::metadata(&graph).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&graph)
        .unwrap()
        .set_len(len / 3)
        .unwrap();
    let out = bftembed(&["neighbors", "TP53", "--store", p(&store)]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("index.hnsw.graph") && err.contains("bftembed reindex"),
        "{err}"
    );
    let out = bftembed(&["reindex", "--store", p(&store)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = bftembed(&["neighbors", "TP53", "--store", p(&store)]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn bad_gene_lists_are_named_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out_path = tmp.path().join("never.parquet");
    let cases: Vec<(&str, &[u8], &str)> = vec![
        ("empty.txt", b"", "empty.txt: the gene list is empty"),
        (
            "comments.txt",
            b"# only a comment\n\n",
            "comments.txt: the gene list is empty",
        ),
        (
            "two.txt",
            b"TP53\nMDM2 CDKN1A\n",
            "two.txt:2: expected one gene symbol per line",
        ),
        (
            "binary.txt",
            b"TP53\nMDM2\nBR\xff\xfeCA1\n",
            "binary.txt:3: not valid UTF-8",
        ),
        (
            "html.txt",
            b"TP53\n<b>MDM2</b>\n",
            "html.txt:2: '<b>MDM2</b>' is not a gene symbol",
        ),
        (
            "unknown.txt",
            b"NOTAGENE1\nNOTAGENE2\n",
            "nothing got a profile",
        ),
    ];
    for (name, content, expected) in cases {
        let path = file(tmp.path(), name, content);
        let out = bftembed(&["profile", "--genes", p(&path), "--out", p(&out_path)]);
        assert!(!out.status.success(), "{name} should fail");
        let err = stderr(&out);
        assert!(err.contains(expected), "{name}: {err}");
        assert!(!out_path.exists(), "{name} left output behind");
    }
    let out = bftembed(&[
        "profile",
        "--genes",
        "/no/such/list.txt",
        "--out",
        p(&out_path),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("/no/such/list.txt"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn missing_model_and_bad_tables_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let texts = file(tmp.path(), "texts.txt", b"TP53 is a tumour suppressor\n");
    let out_path = tmp.path().join("t.parquet");
    let empty_home = tmp.path().join("empty-home");
    let out = bftembed_env(
        &["embed", "--texts", p(&texts), "--out", p(&out_path)],
        &empty_home,
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("bftembed models fetch all-mpnet-base-v2"),
        "{err}"
    );
    assert!(!out_path.exists());

    // A profile table that is not Parquet.
    let fake = file(tmp.path(), "fake.parquet", b"symbol,text\nTP53,hello\n");
    let store = tmp.path().join("store");
    let out = bftembed(&["embed", "--profiles", p(&fake), "--out", p(&store)]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("fake.parquet"), "{}", stderr(&out));
    assert!(!store.exists());

    // A store folder that does not exist.
    let out = bftembed(&["neighbors", "TP53", "--store", p(&tmp.path().join("nope"))]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("nope"), "{}", stderr(&out));
}

/// `bftembed embed --texts TEXTS --out OUT --model all-minilm-l6-v2 EXTRA...`.
fn embed_texts(texts: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "embed",
        "--texts",
        p(texts),
        "--out",
        p(out),
        "--model",
        "all-minilm-l6-v2",
    ];
    args.extend_from_slice(extra);
    bftembed(&args)
}

#[test]
fn unknown_or_unavailable_precisions_are_refused() {
    common::embedding_model();
    let tmp = tempfile::tempdir().unwrap();
    let texts = file(tmp.path(), "t.txt", b"TP53 is a tumour suppressor.\n");
    let out_path = tmp.path().join("v.parquet");
    let run = |precision: &str| embed_texts(&texts, &out_path, &["--precision", precision]);
    let out = run("fp8");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("choose f32 or bf16"),
        "{}",
        stderr(&out)
    );
    assert!(!out_path.exists());
    let out = run("bf16");
    let fastest = bftembed::embed::EncoderPrecision::fastest(&candle_core::Device::Cpu);
    if fastest.name() == "bf16" {
        assert!(out.status.success(), "{}", stderr(&out));
    } else {
        assert!(!out.status.success());
        assert!(stderr(&out).contains("AMX"), "{}", stderr(&out));
        assert!(!out_path.exists());
    }
}

#[test]
fn embed_texts_writes_one_vector_per_line() {
    common::embedding_model();
    let tmp = tempfile::tempdir().unwrap();
    let texts = file(
        tmp.path(),
        "texts.txt",
        "TP53 is a tumour suppressor\n\nβ-cells secrete insulin\n".as_bytes(),
    );
    let out_path = tmp.path().join("t.parquet");
    let out = embed_texts(&texts, &out_path, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let contents = bftembed::io::parquet::read_parquet(&out_path).unwrap();
    assert_eq!(contents.num_rows(), 2);
    assert_eq!(contents.meta("bftembed.model_id"), Some("all-minilm-l6-v2"));
    let batch = &contents.batches[0];
    let (dim, values) = bftembed::io::parquet::f32_vectors(batch, "vector", &out_path).unwrap();
    assert_eq!((dim, values.len()), (384, 768));
    let lines = bftembed::io::parquet::strings(batch, "text", &out_path).unwrap();
    assert_eq!(lines[1], "β-cells secrete insulin");
}
