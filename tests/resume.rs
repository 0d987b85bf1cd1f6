//! A long embedding job killed mid-way resumes from its saved chunks.

mod common;

use bftembed::embed::{embed_resumable, work_dir_for, CHUNK_TEXTS};

#[test]
fn finished_chunks_are_reused_and_missing_ones_recomputed() {
    let embedder = common::embedder();
    let texts: Vec<String> = (0..CHUNK_TEXTS + 7)
        .map(|i| format!("gene number {i}"))
        .collect();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("store");
    let work = work_dir_for(&out, &embedder, &texts);
    let full = embed_resumable(&embedder, &texts, &work).unwrap();
    assert!(work.join("chunk-00000.f32").is_file() && work.join("chunk-00001.f32").is_file());

    // As after a kill in chunk 1: chunk 0 done (marked so we can see it is reused),
    // chunk 1 never written, and a stray temp file from the interrupted write.
    let marked: Vec<u8> = std::iter::repeat_n(0.5f32.to_le_bytes(), CHUNK_TEXTS * 384)
        .flatten()
        .collect();
    std::fs::write(work.join("chunk-00000.f32"), &marked).unwrap();
    std::fs::remove_file(work.join("chunk-00001.f32")).unwrap();
    std::fs::write(work.join(".bftembed-tmp-half"), b"partial").unwrap();
    let resumed = embed_resumable(&embedder, &texts, &work).unwrap();
    assert!(
        resumed.row(0).iter().all(|&x| x == 0.5),
        "chunk 0 was not reused"
    );
    assert_eq!(
        resumed.row(CHUNK_TEXTS),
        full.row(CHUNK_TEXTS),
        "chunk 1 recomputed"
    );

    // A chunk of the wrong size (cut short by a crash) is recomputed, not trusted.
    std::fs::write(work.join("chunk-00000.f32"), &marked[..100]).unwrap();
    let again = embed_resumable(&embedder, &texts, &work).unwrap();
    assert_eq!(again.row(0), full.row(0));

    // Different texts use a different work folder.
    let other = work_dir_for(&out, &embedder, &texts[1..]);
    assert_ne!(other, work);
}
