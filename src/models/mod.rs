//! Pretrained models: the registry of models bftembed knows by name, the local cache
//! they are fetched into, and resolution of a user's `--model` argument (a known name
//! or any Hugging Face-style folder), and models from the Hugging Face hub.

mod cache;
mod hub;
mod pypi;
mod registry;

pub use cache::{bftembed_home, ModelCache, ModelDir, MODEL_MANIFEST};
pub use hub::{hub_endpoint, is_hub_repo, HubRepo};
pub use pypi::PypiClient;
pub use registry::{KnownModel, ModelKind, Packing, PinnedWheel, KNOWN_MODELS};

/// Name of the default sentence-embedding model. all-mpnet-base-v2, chosen by
/// measurement (docs/EVAL.md): on gene cards it passes GenePT's published GGI and
/// dosage figures where all-MiniLM-L6-v2 does not, at about 5x MiniLM's embedding time.
pub const DEFAULT_EMBEDDING_MODEL: &str = "all-mpnet-base-v2";
/// The small, fast encoder (all-MiniLM-L6-v2): the study's encoder, where many profile
/// sets are embedded in every run.
pub const SMALL_EMBEDDING_MODEL: &str = "all-minilm-l6-v2";
/// Name of the default generator model (used by the profile stage).
pub const DEFAULT_GENERATOR_MODEL: &str = "smollm2-135m-instruct";
