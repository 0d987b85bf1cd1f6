//! What a sentence-transformers folder asks for after the transformer: pooling,
//! normalisation, prompts and the truncation length, read from `modules.json`,
//! `1_Pooling/config.json`, `config_sentence_transformers.json`,
//! `sentence_bert_config.json` and `tokenizer_config.json`, in the layouts of
//! sentence-transformers 2.x to 6.x. A module, pooling mode or option whose computation
//! bftembed does not perform is refused with what is supported.

use super::config::SUPPORTED;
use super::pooling::Pooling;
use crate::error::{Error, Result};
use crate::fsutil::read_json;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// The module kinds whose computation bftembed performs, by the last part of their
/// type name (`sentence_transformers.models.Pooling` in 2.x-5.x,
/// `sentence_transformers.sentence_transformer.modules.pooling.Pooling` in 6.x).
const SUPPORTED_MODULES: &[&str] = &["Transformer", "Pooling", "Normalize"];

/// How a sentence-transformers folder turns token vectors into a text's vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentenceSetup {
    /// How token vectors are pooled.
    pub pooling: Pooling,
    /// Whether the pipeline ends in a Normalize module (bftembed's stores normalise
    /// either way, since their distance is cosine).
    pub normalize: bool,
    /// Put before every document (profile) text: the `document` prompt, else the
    /// default prompt.
    pub document_prefix: String,
    /// Put before every search query: the `query` prompt, else the document prefix.
    pub query_prefix: String,
    /// The folder's truncation length in tokens, when it gives one.
    pub max_seq_length: Option<usize>,
}

impl SentenceSetup {
    /// Reads the folder; `hidden_size` is checked against the pooling dimension. A
    /// folder without sentence-transformers files is a plain transformer checkpoint,
    /// which sentence-transformers pools by the mean, without prompts.
    pub fn read(folder: &Path, hidden_size: usize) -> Result<Self> {
        let modules = folder.join("modules.json");
        let (pooling_config, normalize) = if modules.is_file() {
            let listed = read_modules(&modules)?;
            let config = folder.join(&listed.pooling_dir).join("config.json");
            if !config.is_file() {
                return Err(Error::ModelCorrupt {
                    path: modules,
                    message: format!(
                        "its Pooling module's config {} is missing",
                        config.display()
                    ),
                });
            }
            (Some(config), listed.normalize)
        } else {
            // bftembed's model cache keeps the pooling config as pooling_config.json.
            let found = ["1_Pooling/config.json", "pooling_config.json"]
                .iter()
                .map(|name| folder.join(name))
                .find(|p| p.is_file());
            (found, true)
        };
        let pooling = match pooling_config {
            Some(path) => read_pooling(&path, &read_json(&path)?, hidden_size)?,
            None => Pooling::Mean,
        };
        let (document_prefix, query_prefix) =
            read_prompts(&folder.join("config_sentence_transformers.json"))?;
        Ok(SentenceSetup {
            pooling,
            normalize,
            document_prefix,
            query_prefix,
            max_seq_length: read_max_seq_length(folder)?,
        })
    }
}

/// The modules a `modules.json` lists, once every one is known to be supported.
struct ListedModules {
    pooling_dir: String,
    normalize: bool,
}

fn read_modules(path: &Path) -> Result<ListedModules> {
    let modules = read_json(path)?;
    let list = modules
        .as_array()
        .ok_or_else(|| Error::bad_file(path, "modules.json is not a list of modules"))?;
    let mut pooling_dir = None;
    let mut normalize = false;
    for module in list {
        let kind = module.get("type").and_then(Value::as_str).unwrap_or("");
        let dir = module.get("path").and_then(Value::as_str).unwrap_or("");
        let short = kind.rsplit('.').next().unwrap_or("");
        if !SUPPORTED_MODULES.contains(&short) {
            return Err(Error::unsupported(
                path,
                format!(
                    "module \"{kind}\" (path \"{dir}\") is not supported; only Transformer, \
                     Pooling and Normalize modules are applied; {SUPPORTED}"
                ),
            ));
        }
        match short {
            "Pooling" => pooling_dir = Some(dir.to_string()),
            "Normalize" => normalize = true,
            _ => {}
        }
    }
    let pooling_dir = pooling_dir.ok_or_else(|| {
        Error::unsupported(
            path,
            format!("modules.json lists no Pooling module; {SUPPORTED}"),
        )
    })?;
    Ok(ListedModules {
        pooling_dir,
        normalize,
    })
}

/// The pooling mode: one `pooling_mode` string (sentence-transformers 6) or the
/// `pooling_mode_*` flags (earlier), exactly one of them set.
fn read_pooling(path: &Path, config: &Value, hidden_size: usize) -> Result<Pooling> {
    let fields = config
        .as_object()
        .ok_or_else(|| Error::bad_file(path, "a pooling config must be a JSON object"))?;
    let modes = pooling_modes(path, fields)?;
    let pooling = match modes.as_slice() {
        [one] => Pooling::from_mode(one).ok_or_else(|| refused_mode(path, one))?,
        [] => return Err(refused_mode(path, "no mode (no pooling_mode is set)")),
        several => return Err(refused_mode(path, &several.join(" + "))),
    };
    if fields.get("include_prompt").and_then(Value::as_bool) == Some(false) {
        return Err(Error::unsupported(
            path,
            "include_prompt false (prompt tokens left out of pooling) is not supported; \
             bftembed pools over every token, the prompt's too",
        ));
    }
    let dim = ["embedding_dimension", "word_embedding_dimension"]
        .iter()
        .find_map(|k| fields.get(*k).and_then(Value::as_u64));
    match dim {
        Some(dim) if dim as usize != hidden_size => Err(Error::ModelCorrupt {
            path: path.to_path_buf(),
            message: format!(
                "the pooling dimension is {dim} but config.json's hidden_size is {hidden_size}"
            ),
        }),
        _ => Ok(pooling),
    }
}

/// Every mode the config turns on, by the name it uses.
fn pooling_modes(path: &Path, fields: &Map<String, Value>) -> Result<Vec<String>> {
    let mut modes = Vec::new();
    if let Some(mode) = fields.get("pooling_mode").and_then(Value::as_str) {
        modes.push(mode.to_string());
    }
    for (key, value) in fields
        .iter()
        .filter(|(k, _)| k.starts_with("pooling_mode_"))
    {
        let on = value.as_bool().ok_or_else(|| {
            Error::bad_file(path, format!("{key} must be true or false, not {value}"))
        })?;
        let mode = match Pooling::from_flag(key) {
            Some(p) => p.mode().to_string(),
            None => key.clone(),
        };
        if on && !modes.contains(&mode) {
            modes.push(mode);
        }
    }
    Ok(modes)
}

fn refused_mode(path: &Path, mode: &str) -> Error {
    Error::unsupported(
        path,
        format!(
            "pooling by {mode} is not supported; bftembed pools by exactly one of mean, cls, \
             max or lasttoken"
        ),
    )
}

/// (document prefix, query prefix) from `config_sentence_transformers.json`.
fn read_prompts(path: &Path) -> Result<(String, String)> {
    if !path.is_file() {
        return Ok((String::new(), String::new()));
    }
    let config = read_json(path)?;
    let prompts = config.get("prompts").and_then(Value::as_object);
    let prompt =
        |name: &str| -> Option<String> { prompts?.get(name)?.as_str().map(str::to_string) };
    let default = match config.get("default_prompt_name") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => Some(prompt(name).ok_or_else(|| {
            Error::bad_file(
                path,
                format!("default_prompt_name \"{name}\" is not one of its prompts"),
            )
        })?),
        Some(other) => {
            return Err(Error::bad_file(
                path,
                format!("default_prompt_name must be a string, not {other}"),
            ))
        }
    };
    let document = prompt("document")
        .filter(|p| !p.is_empty())
        .or(default)
        .unwrap_or_default();
    let query = prompt("query")
        .filter(|p| !p.is_empty())
        .unwrap_or(document.clone());
    Ok((document, query))
}

/// `max_seq_length` from `sentence_bert_config.json` (sentence-transformers up to 5),
/// else `model_max_length` from `tokenizer_config.json` (6 writes it there), after
/// refusing `do_lower_case` (sentence-transformers would lower-case the text itself).
fn read_max_seq_length(folder: &Path) -> Result<Option<usize>> {
    let st_config: PathBuf = folder.join("sentence_bert_config.json");
    if st_config.is_file() {
        let json = read_json(&st_config)?;
        if json.get("do_lower_case").and_then(Value::as_bool) == Some(true) {
            return Err(Error::unsupported(
                &st_config,
                "do_lower_case true is not supported: bftembed passes text to tokenizer.json \
                 as it is (do_lower_case false, the tokenizer's own normalisation only)",
            ));
        }
        if let Some(n) = json.get("max_seq_length").and_then(Value::as_u64) {
            return Ok(Some(n as usize));
        }
    }
    let tokenizer_config = folder.join("tokenizer_config.json");
    if tokenizer_config.is_file() {
        // transformers writes a huge number (1e30) when the tokenizer sets no limit.
        let limit = read_json(&tokenizer_config)?
            .get("model_max_length")
            .and_then(Value::as_u64)
            .filter(|&n| n < 1 << 20);
        return Ok(limit.map(|n| n as usize));
    }
    Ok(None)
}
