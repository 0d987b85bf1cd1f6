//! Stage outputs are reused when their inputs have not changed: beside each output a
//! stamp holds a fingerprint of everything that made it (bftembed's version and, for
//! generated text, the kernel; model checksum, settings, gene list, input checksums).
//! A changed input, or an upgrade, changes the fingerprint and the stage reruns.

use crate::error::Result;
use crate::fsutil::{atomic_write_bytes, hex, parent_dir};
use crate::profile::hash_parts;
use sha2::Digest;
use std::path::{Path, PathBuf};

/// sha256 (hex) of the parts, each length-prefixed so that no two part lists collide
/// (the same scheme as [`crate::profile::hash_parts`]). Parts are explicit strings,
/// never `{:?}` output, so the value does not move with a compiler upgrade.
pub fn fingerprint<S: AsRef<str>>(parts: &[S]) -> String {
    hex(&hash_parts(parts).finalize())
}

fn stamp_path(output: &Path) -> PathBuf {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    parent_dir(output).join(format!(".{name}.stamp"))
}

/// True when `output` exists and was made from inputs with this fingerprint.
pub fn is_current(output: &Path, fingerprint: &str) -> bool {
    output.exists()
        && std::fs::read_to_string(stamp_path(output)).is_ok_and(|s| s.trim() == fingerprint)
}

/// Records that `output` (already written) came from inputs with this fingerprint.
pub fn mark(output: &Path, fingerprint: &str) -> Result<()> {
    atomic_write_bytes(&stamp_path(output), format!("{fingerprint}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_matches_only_its_own_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("profiles.parquet");
        let f = fingerprint(&["model-sha", "genes"]);
        assert!(!is_current(&out, &f), "nothing written yet");
        std::fs::write(&out, b"x").unwrap();
        assert!(!is_current(&out, &f), "written but never stamped");
        mark(&out, &f).unwrap();
        assert!(is_current(&out, &f));
        assert!(!is_current(&out, &fingerprint(&["model-sha", "genes2"])));
        assert_ne!(fingerprint(&["ab", "c"]), fingerprint(&["a", "bc"]));
    }
}
