//! File helpers shared by every stage: atomic writes, checked text reading, hashing.
//!
//! Every file bftembed produces is written to a temporary sibling and renamed into
//! place, so a crash or a kill never leaves a half-written output behind.

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

/// Writes `path` atomically: `write` fills a temporary file in the same folder,
/// which is synced and then renamed over `path`. On any error nothing is left behind.
pub fn atomic_write<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&mut File) -> Result<()>,
{
    let dir = parent_dir(path);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".bftembed-tmp-")
        .tempfile_in(&dir)
        .map_err(|e| Error::io(&dir, e))?;
    write(tmp.as_file_mut())?;
    // Temporary files are created private (0600); outputs are ordinary files.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(|e| Error::io(path, e))?;
    }
    tmp.as_file_mut()
        .flush()
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// Writes bytes atomically (see [`atomic_write`]).
pub fn atomic_write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    atomic_write(path, |f| f.write_all(bytes).map_err(|e| Error::io(path, e)))
}

/// The folder a path lives in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Opens a file for reading, transparently gunzipping names ending in `.gz`.
pub fn open_maybe_gz(path: &Path) -> Result<Box<dyn Read>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let reader = BufReader::new(file);
    if path.extension().is_some_and(|e| e == "gz") {
        Ok(Box::new(GzipHint(flate2::read::MultiGzDecoder::new(
            reader,
        ))))
    } else {
        Ok(Box::new(reader))
    }
}

/// A gzip decoder whose errors say that the compressed data is at fault, since the
/// decoder's own words ("incomplete deflate stream") do not name gzip or truncation.
struct GzipHint<R>(R);

impl<R: Read> Read for GzipHint<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf).map_err(|e| {
            std::io::Error::new(e.kind(), format!("{e} (truncated or damaged gzip data)"))
        })
    }
}

/// Reads a whole text file (gzipped or not) and returns its lines.
/// A byte sequence that is not UTF-8 is reported with its line number.
pub fn read_utf8_lines(path: &Path) -> Result<Vec<String>> {
    let mut bytes = Vec::new();
    open_maybe_gz(path)?
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    let mut lines = Vec::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        match std::str::from_utf8(raw) {
            Ok(s) => lines.push(s.to_string()),
            Err(e) => {
                return Err(Error::Parse {
                    path: path.to_path_buf(),
                    line: i + 1,
                    message: format!(
                        "not valid UTF-8 (bad byte at column {}); save the file as UTF-8",
                        e.valid_up_to() + 1
                    ),
                })
            }
        }
    }
    if bytes.ends_with(b"\n") {
        lines.pop();
    }
    Ok(lines)
}

/// A hidden work file or folder beside `output`, named after it, `kind` and a hash
/// (`.NAME.KIND-HASH16SUFFIX`), so that only the same job finds it again.
pub fn job_sibling(output: &Path, kind: &str, hasher: Sha256, suffix: &str) -> PathBuf {
    let key = hex(&hasher.finalize());
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "output".into());
    parent_dir(output).join(format!(".{name}.{kind}-{}{suffix}", &key[..16]))
}

/// A JSON file's contents; a file that is not JSON is an error naming it.
pub fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::bad_file(path, format!("not JSON: {e}")))
}

/// Hex sha256 of a file's contents.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Hex sha256 of an in-memory slice of f32 values (little-endian bytes).
pub fn sha256_f32(values: &[f32]) -> String {
    let mut hasher = Sha256::new();
    for v in values {
        hasher.update(v.to_le_bytes());
    }
    hex(&hasher.finalize())
}

/// Lower-case hex encoding.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Seconds since the Unix epoch, for manifests.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `a/b/../c` as `a/c`, without touching the file system (the output folder may not
/// exist yet), so paths in messages and summaries read plainly.
pub fn lexically_clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// A stable 64-bit hash (FNV-1a) for seeds derived from names: unlike the std
/// hasher, the same on every platform and release.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Bytes hashed at each end of a file by [`sha256_file_ends`].
pub const FILE_END_BYTES: u64 = 1 << 20;

/// Hex sha256 of a file's first and last [`FILE_END_BYTES`] (the whole file when it is
/// shorter than both together): where Parquet keeps its footer and hnsw_rs its header,
/// so a cheap check on every open sees a changed layout without reading the rest.
pub fn sha256_file_ends(path: &Path) -> Result<String> {
    use std::io::{Seek, SeekFrom};
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut hasher = Sha256::new();
    hasher.update(size.to_le_bytes());
    let mut read_span = |from: u64, len: u64| -> Result<()> {
        let mut buf = vec![0u8; len as usize];
        file.seek(SeekFrom::Start(from))
            .and_then(|_| file.read_exact(&mut buf))
            .map_err(|e| Error::io(path, e))?;
        hasher.update(&buf);
        Ok(())
    };
    if size <= 2 * FILE_END_BYTES {
        read_span(0, size)?;
    } else {
        read_span(0, FILE_END_BYTES)?;
        read_span(size - FILE_END_BYTES, FILE_END_BYTES)?;
    }
    Ok(hex(&hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_ends_see_the_size_and_both_ends_but_not_the_middle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.bin");
        let mut bytes: Vec<u8> = (0..3 * FILE_END_BYTES as usize).map(|i| i as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let before = sha256_file_ends(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(
            sha256_file_ends(&path).unwrap(),
            before,
            "the middle is not read"
        );
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert_ne!(sha256_file_ends(&path).unwrap(), before);
        bytes[last] ^= 1;
        bytes.push(0);
        std::fs::write(&path, &bytes).unwrap();
        assert_ne!(sha256_file_ends(&path).unwrap(), before, "the size counts");
        std::fs::write(&path, b"small").unwrap();
        assert_ne!(sha256_file_ends(&path).unwrap(), before);
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        atomic_write_bytes(&path, b"first").unwrap();
        atomic_write_bytes(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let failed = atomic_write(&path, |_| Err(Error::InvalidArgument("boom".into())));
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "a failed write must not leave a temp file");
    }

    #[test]
    fn non_utf8_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("genes.txt");
        std::fs::write(&path, b"TP53\nMDM2\nBR\xffCA1\n").unwrap();
        let err = read_utf8_lines(&path).unwrap_err().to_string();
        assert!(err.contains("genes.txt:3"), "{err}");
        assert!(err.contains("UTF-8"), "{err}");
    }

    #[test]
    fn reads_lines_without_trailing_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        std::fs::write(&path, b"a\r\nb\n").unwrap();
        assert_eq!(read_utf8_lines(&path).unwrap(), vec!["a", "b"]);
    }
}
