//! Fetching wheels from PyPI over HTTPS (JSON API for the digest, then the file),
//! trusting the system's CA store so that it works behind a TLS-inspecting proxy.

use crate::error::{Error, Result};
use crate::fsutil::hex;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

/// Where the PyPI JSON API lives; `BFTEMBED_PYPI_URL` overrides it (a mirror, say).
pub fn pypi_base_url() -> String {
    std::env::var("BFTEMBED_PYPI_URL").unwrap_or_else(|_| "https://pypi.org/pypi".to_string())
}

/// A small HTTPS client for PyPI.
pub struct PypiClient {
    agent: ureq::Agent,
    base: String,
}

/// One downloadable file of a release, as PyPI describes it.
#[derive(Debug, Clone)]
pub struct ReleaseFile {
    /// The file name.
    pub filename: String,
    /// The download address.
    pub url: String,
    /// PyPI's sha256 of the file.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

impl Default for PypiClient {
    fn default() -> Self {
        Self::new()
    }
}

impl PypiClient {
    /// A client using the platform's certificate verifier (the system CA store).
    pub fn new() -> Self {
        let agent: ureq::Agent = crate::http::agent_config()
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_body(Some(Duration::from_secs(1800)))
            .build()
            .into();
        PypiClient {
            agent,
            base: pypi_base_url(),
        }
    }

    /// Asks PyPI's JSON API for the files of `package` at `version`. The project-level
    /// endpoint is used (it lists every release), since some proxies pass only that one.
    pub fn release_files(&self, package: &str, version: &str) -> Result<Vec<ReleaseFile>> {
        let url = format!("{}/{}/json", self.base, package);
        let download_err = |message: String| Error::Download {
            url: url.clone(),
            message,
        };
        let mut response = self
            .agent
            .get(&url)
            .call()
            .map_err(|e| download_err(e.to_string()))?;
        let json: serde_json::Value = response
            .body_mut()
            .read_json()
            .map_err(|e| download_err(format!("malformed JSON: {e}")))?;
        let urls = json
            .get("releases")
            .and_then(|r| r.get(version))
            .and_then(|u| u.as_array())
            .ok_or_else(|| download_err(format!("PyPI lists no release {version} of {package}")))?;
        let mut files = Vec::new();
        for entry in urls {
            let field = |k: &str| entry.get(k).and_then(|v| v.as_str()).map(str::to_string);
            let (Some(filename), Some(file_url)) = (field("filename"), field("url")) else {
                continue;
            };
            let Some(sha256) = entry
                .get("digests")
                .and_then(|d| d.get("sha256"))
                .and_then(|s| s.as_str())
            else {
                continue;
            };
            let size = entry.get("size").and_then(|s| s.as_u64()).unwrap_or(0);
            files.push(ReleaseFile {
                filename,
                url: file_url,
                sha256: sha256.to_string(),
                size,
            });
        }
        Ok(files)
    }

    /// Downloads `file` to `dest`, hashing as it goes; returns the sha256 of what arrived.
    /// `on_progress` receives the number of bytes received so far.
    pub fn download(
        &self,
        file: &ReleaseFile,
        dest: &Path,
        mut on_progress: impl FnMut(u64),
    ) -> Result<String> {
        let download_err = |message: String| Error::Download {
            url: file.url.clone(),
            message,
        };
        let response = self
            .agent
            .get(&file.url)
            .call()
            .map_err(|e| download_err(e.to_string()))?;
        stream_to_file(
            response.into_body().into_reader(),
            dest,
            &file.url,
            &mut on_progress,
        )
    }
}

/// Copies a response body to `dest`, hashing as it goes; returns the sha256 of what
/// arrived. `on_progress` receives the number of bytes received so far.
pub(super) fn stream_to_file(
    mut reader: impl Read,
    dest: &Path,
    url: &str,
    on_progress: &mut dyn FnMut(u64),
) -> Result<String> {
    let mut out = std::fs::File::create(dest).map_err(|e| Error::io(dest, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut received = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(|e| Error::Download {
            url: url.to_string(),
            message: format!("connection broke: {e}"),
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(|e| Error::io(dest, e))?;
        received += n as u64;
        on_progress(received);
    }
    out.sync_all().map_err(|e| Error::io(dest, e))?;
    Ok(hex(&hasher.finalize()))
}
