//! Models from the Hugging Face hub (or any server with its layout), for users who can
//! reach it: the file list and LFS sha256 digests from
//! `{endpoint}/api/models/{repo}/revision/{revision}`, the files from
//! `{endpoint}/{repo}/resolve/{revision}/{file}`. The endpoint is `HF_ENDPOINT` (default
//! `https://huggingface.co`), the token `HF_TOKEN`. A cached copy lives under
//! `$BFTEMBED_HOME/models/hub/ORG--NAME@REVISION`, complete once its manifest is written.

use super::cache::{install_staged, ModelDir, MODEL_MANIFEST};
use super::pypi::stream_to_file;
use crate::error::{Error, Result};
use crate::fsutil::sha256_file;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Files a model folder needs besides its weights, fetched when the repository has them.
const SETUP_FILES: &[&str] = &[
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
    "generation_config.json",
];

/// Where the hub is: `HF_ENDPOINT`, else huggingface.co.
pub fn hub_endpoint() -> String {
    std::env::var("HF_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| "https://huggingface.co".into())
}

/// Whether a `--model` or `models fetch` name is a hub repository (`org/name`,
/// optionally `@revision`), rather than a known name or a path.
pub fn is_hub_repo(spec: &str) -> bool {
    let repo = spec.split('@').next().unwrap_or("");
    let parts: Vec<&str> = repo.split('/').collect();
    parts.len() == 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
        && !Path::new(spec).exists()
}

/// A repository and revision on the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubRepo {
    /// `org/name`.
    pub repo: String,
    /// Branch, tag or commit (default `main`).
    pub revision: String,
}

impl HubRepo {
    /// Parses `org/name` or `org/name@revision`.
    pub fn parse(spec: &str) -> Result<Self> {
        if !is_hub_repo(spec) {
            return Err(Error::InvalidArgument(format!(
                "'{spec}' is not a hub repository (org/name or org/name@revision)"
            )));
        }
        let (repo, revision) = spec.split_once('@').unwrap_or((spec, "main"));
        Ok(HubRepo {
            repo: repo.to_string(),
            revision: revision.to_string(),
        })
    }

    /// The cache folder under `models_root` (`$BFTEMBED_HOME/models`).
    pub fn cache_dir(&self, models_root: &Path) -> PathBuf {
        let name = format!("{}@{}", self.repo.replace('/', "--"), self.revision);
        models_root.join("hub").join(name)
    }

    /// The id stores record: `org/name@revision`.
    pub fn id(&self) -> String {
        format!("{}@{}", self.repo, self.revision)
    }
}

/// One file the hub lists, with its LFS digest where the hub gives one.
#[derive(Debug, Clone)]
struct HubFile {
    name: String,
    sha256: Option<String>,
    size: Option<u64>,
}

/// A client for one hub endpoint.
pub struct HubClient {
    agent: ureq::Agent,
    endpoint: String,
    token: Option<String>,
}

impl HubClient {
    /// A client for `endpoint` with the token from `HF_TOKEN`, if set.
    pub fn new(endpoint: &str) -> Self {
        let agent: ureq::Agent = crate::http::agent_config()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_body(Some(Duration::from_secs(1800)))
            .build()
            .into();
        HubClient {
            agent,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            token: std::env::var("HF_TOKEN").ok().filter(|t| !t.is_empty()),
        }
    }

    fn get(&self, url: &str) -> Result<ureq::http::Response<ureq::Body>> {
        let mut request = self.agent.get(url);
        if let Some(token) = &self.token {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        let response = request.call().map_err(|e| Error::Download {
            url: url.to_string(),
            message: e.to_string(),
        })?;
        let status = response.status().as_u16();
        if status == 200 {
            return Ok(response);
        }
        let hint = match (status, self.token.is_some()) {
            (401 | 403, false) => "; the repository may be gated or private: set HF_TOKEN",
            (401 | 403, true) => "; HF_TOKEN was sent and refused",
            (404, _) => "; check the repository name and revision",
            _ => "",
        };
        Err(Error::Download {
            url: url.to_string(),
            message: format!("HTTP {status}{hint}"),
        })
    }

    /// The files of a revision and the commit it resolves to.
    fn list(&self, repo: &HubRepo) -> Result<(Vec<HubFile>, Option<String>)> {
        let url = format!(
            "{}/api/models/{}/revision/{}?blobs=true",
            self.endpoint, repo.repo, repo.revision
        );
        let text = self
            .get(&url)?
            .into_body()
            .read_to_string()
            .map_err(|e| Error::Download {
                url: url.clone(),
                message: e.to_string(),
            })?;
        let json: Value = serde_json::from_str(&text).map_err(|e| Error::Download {
            url: url.clone(),
            message: format!("the model info is not JSON: {e}"),
        })?;
        let siblings = json
            .get("siblings")
            .and_then(Value::as_array)
            .ok_or_else(|| Error::Download {
                url: url.clone(),
                message: "the model info lists no files (siblings)".into(),
            })?;
        let files = siblings
            .iter()
            .filter_map(|s| {
                let name = s.get("rfilename")?.as_str()?.to_string();
                let lfs = s.get("lfs");
                Some(HubFile {
                    name,
                    sha256: lfs
                        .and_then(|l| l.get("sha256"))
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    size: lfs.and_then(|l| l.get("size")).and_then(Value::as_u64),
                })
            })
            .collect();
        let commit = json.get("sha").and_then(Value::as_str).map(str::to_string);
        Ok((files, commit))
    }

    /// Downloads a repository's model files into the cache and returns the folder.
    pub fn fetch(&self, repo: &HubRepo, models_root: &Path) -> Result<ModelDir> {
        let (files, commit) = self.list(repo)?;
        let wanted = pick_files(&files, repo)?;
        let final_dir = repo.cache_dir(models_root);
        let parent = crate::fsutil::parent_dir(&final_dir);
        std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
        let staging = tempfile::Builder::new()
            .prefix(".hub-")
            .tempdir_in(&parent)
            .map_err(|e| Error::io(&parent, e))?;
        let mut manifest = BTreeMap::new();
        for file in &wanted {
            let sha = self.download(repo, file, staging.path())?;
            manifest.insert(file.name.clone(), sha);
        }
        let record = serde_json::json!({
            "repo": repo.repo,
            "revision": repo.revision,
            "commit": commit,
            "endpoint": self.endpoint,
            "files": manifest,
        });
        let json = serde_json::to_vec_pretty(&record)
            .map_err(|e| Error::InvalidArgument(format!("manifest encoding: {e}")))?;
        install_staged(staging, &json, &final_dir)?;
        cached_hub_model(repo, models_root)
    }

    /// One file, checked against the hub's LFS digest and size when it gives them.
    fn download(&self, repo: &HubRepo, file: &HubFile, dir: &Path) -> Result<String> {
        let url = format!(
            "{}/{}/resolve/{}/{}",
            self.endpoint, repo.repo, repo.revision, file.name
        );
        let dest = dir.join(&file.name);
        let parent = crate::fsutil::parent_dir(&dest);
        std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
        let bar =
            crate::progress::bytes_bar(file.size.unwrap_or(0), &format!("fetching {}", file.name));
        let response = self.get(&url)?;
        let got = stream_to_file(response.into_body().into_reader(), &dest, &url, &mut |n| {
            bar.set_position(n)
        });
        bar.finish_and_clear();
        let got = got?;
        if let Some(expected) = &file.sha256 {
            if &got != expected {
                return Err(Error::Download {
                    url,
                    message: format!("sha256 of the download is {got}, the hub says {expected}"),
                });
            }
        }
        if let Some(size) = file.size {
            let len = std::fs::metadata(&dest)
                .map_err(|e| Error::io(&dest, e))?
                .len();
            if len != size {
                return Err(Error::Download {
                    url,
                    message: format!("{len} bytes arrived, the hub says {size}"),
                });
            }
        }
        Ok(got)
    }
}

/// The setup files the repository has, and exactly one weights file: `model.safetensors`,
/// else the one `.gguf`. Sharded or several GGUF files are refused with the list.
fn pick_files(files: &[HubFile], repo: &HubRepo) -> Result<Vec<HubFile>> {
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    let refuse = |message: String| Error::ModelMissing {
        name: repo.id(),
        reason: message,
    };
    let weights: Vec<&HubFile> = if names.contains(&"model.safetensors") {
        files
            .iter()
            .filter(|f| f.name == "model.safetensors")
            .collect()
    } else {
        let ggufs: Vec<&HubFile> = files.iter().filter(|f| f.name.ends_with(".gguf")).collect();
        if ggufs.len() > 1 {
            let list: Vec<&str> = ggufs.iter().map(|f| f.name.as_str()).collect();
            return Err(refuse(format!(
                "it holds several GGUF files ({}); download the one you want into a folder and \
                 give that folder",
                list.join(", ")
            )));
        }
        if ggufs.is_empty() && names.iter().any(|n| n.ends_with(".safetensors")) {
            return Err(refuse(
                "its weights are sharded (model-0000N-of-0000M.safetensors), which bftembed \
                 does not load"
                    .into(),
            ));
        }
        ggufs
    };
    if weights.is_empty() {
        return Err(refuse(format!(
            "it has no model.safetensors and no .gguf file (files: {})",
            names.join(", ")
        )));
    }
    let mut wanted: Vec<HubFile> = files
        .iter()
        .filter(|f| SETUP_FILES.contains(&f.name.as_str()))
        .cloned()
        .collect();
    wanted.extend(weights.into_iter().cloned());
    Ok(wanted)
}

/// The cached copy of a hub model, after checking every file against its manifest.
pub fn cached_hub_model(repo: &HubRepo, models_root: &Path) -> Result<ModelDir> {
    let dir = repo.cache_dir(models_root);
    let manifest_path = dir.join(MODEL_MANIFEST);
    if !manifest_path.is_file() {
        return Err(Error::ModelMissing {
            name: repo.id(),
            reason: format!(
                "not in the cache at {}; fetch it with `bftembed models fetch {}`",
                dir.display(),
                repo.id()
            ),
        });
    }
    let manifest = crate::fsutil::read_json(&manifest_path)?;
    let files = manifest
        .get("files")
        .and_then(Value::as_object)
        .ok_or_else(|| Error::ModelCorrupt {
            path: manifest_path.clone(),
            message: "the manifest lists no files".into(),
        })?;
    for (name, sha) in files {
        let path = dir.join(name);
        if !path.is_file() || Some(sha256_file(&path)?.as_str()) != sha.as_str() {
            return Err(Error::ModelCorrupt {
                path,
                message: format!(
                    "missing or changed since it was fetched; fetch it again with \
                     `bftembed models fetch {} --force`",
                    repo.id()
                ),
            });
        }
    }
    let mut model = ModelDir::from_folder(&dir)?;
    model.id = repo.id();
    Ok(model)
}
