//! The profile stage: one descriptive text per gene (later also per cell type and per
//! perturbation), written as a profile table that the embed stage reads.
//!
//! This module holds the table format, the NCBI RefSeq summary source (the
//! GenePT-style reference that model-written profiles are compared with), and the
//! generator's GGUF tokenizer.

mod chat;
mod generator;
mod gguf_tokenizer;
mod model_job;
mod refseq;
mod table;
mod template;

pub use chat::ChatTemplate;
pub use generator::{GenerationSettings, GgufGenerator};
pub use gguf_tokenizer::{tokenizer_from_gguf, tokenizer_from_gguf_file};
pub use model_job::{genes_to_profile, journal_path, profile_with_model, GeneToProfile};
pub use refseq::{ProfileBuild, RefseqSummaries, RefseqTextStyle, SkippedGene, SOURCE_REFSEQ};
pub use table::{profile_columns, read_profiles, write_profiles, ProfileRecord};
pub use template::{PromptTemplate, DEFAULT_GENE_TEMPLATE, GENE_FIELDS};
