//! Cache keys for generated text that outlive neither the code nor the kernel.
//!
//! A key is the sha256 of explicit `key=value` parts, each length-prefixed (so no two
//! part lists collide), never of `{:?}` output, whose form Rust does not promise to keep.
//! Floats enter as their IEEE bit patterns, exact and independent of how they print.
//! Every key over model output carries bftembed's version and the generation kernel:
//! a decoder fix (released as a new version) or another kernel asks the model again.

use super::generator::GenerationSettings;
use super::subjects::SubjectKind;
use super::template::PromptTemplate;
use sha2::{Digest, Sha256};

/// The code that turns a model into text: bftembed's version and the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeIdentity {
    /// bftembed's version (`CARGO_PKG_VERSION` of this build).
    pub version: String,
    /// The generation kernel ([`crate::llm::generation_kernel`]), or the backend's
    /// name where the model runs elsewhere (`remote`).
    pub kernel: String,
}

impl CodeIdentity {
    /// This build's version with `kernel`.
    pub fn current(kernel: &str) -> Self {
        CodeIdentity {
            version: env!("CARGO_PKG_VERSION").to_string(),
            kernel: kernel.to_string(),
        }
    }

    /// The `key=value` parts it adds to a cache key.
    pub fn parts(&self) -> Vec<String> {
        vec![
            format!("bftembed_version={}", self.version),
            format!("kernel={}", self.kernel),
        ]
    }
}

/// The `key=value` parts of how a model is asked: the kind of subject, the prompt
/// template and the decoding settings.
pub fn generation_parts(
    kind: SubjectKind,
    template: &PromptTemplate,
    settings: &GenerationSettings,
) -> Vec<String> {
    let top_p = match settings.top_p {
        Some(p) => float_part(p),
        None => "none".to_string(),
    };
    vec![
        format!("kind={}", kind.label()),
        format!("template_id={}", template.id),
        format!("template_system={}", template.system),
        format!("template_user={}", template.user),
        format!("max_new_tokens={}", settings.max_new_tokens),
        format!("temperature={}", float_part(settings.temperature)),
        format!("top_p={top_p}"),
        format!("seed={}", settings.seed),
    ]
}

/// A float as its 64-bit pattern in hex.
fn float_part(x: f64) -> String {
    format!("{:016x}", x.to_bits())
}

/// sha256 over the parts, each preceded by its length in bytes (u64, little-endian).
pub fn hash_parts<S: AsRef<str>>(parts: &[S]) -> Sha256 {
    let mut h = Sha256::new();
    for p in parts {
        let p = p.as_ref();
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    h
}

/// The parts that name a profiling job's journal: code, model (identifier and weights
/// fingerprint) and how it is asked. The journal's file name carries their hash.
pub fn journal_parts(
    code: &CodeIdentity,
    model_id: &str,
    model_fingerprint: &str,
    kind: SubjectKind,
    template: &PromptTemplate,
    settings: &GenerationSettings,
) -> Vec<String> {
    let mut parts = vec!["profile-journal".to_string()];
    parts.extend(code.parts());
    parts.push(format!("model={model_id}"));
    parts.push(format!("model_fingerprint={model_fingerprint}"));
    parts.extend(generation_parts(kind, template, settings));
    parts
}
