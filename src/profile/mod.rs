//! The profile stage: one descriptive text per gene, cell type or perturbation,
//! written as a profile table that the embed stage reads.
//!
//! Sources: gene cards from the shipped HGNC, RefSeq and GO tables ([`GeneCards`]),
//! the NCBI RefSeq summaries (the GenePT-style reference that model-written
//! profiles are compared with), a local causal LM ([`Generator`]), or an
//! OpenAI-compatible server ([`OpenAiBackend`]).

mod backend;
mod card;
mod fingerprint;
mod gene_knowledge;
mod generator;
mod model_job;
mod openai_client;
mod refseq;
mod subjects;
mod table;
mod template;

pub use crate::openai::OpenAiSettings;
pub use backend::{AnswerBackend, LocalBackend, Question};
pub use card::{
    card_fields_of, CardField, CardPart, CardTemplate, GeneCards, CARD_TEMPLATE_METADATA_KEY,
    DEFAULT_CARD_TEMPLATE, PROTEIN_CODING, SOURCE_CARD_PREFIX,
};
pub use fingerprint::{generation_parts, hash_parts, journal_parts, CodeIdentity};
pub use gene_knowledge::{GeneKnowledge, Ontology};
pub use generator::{Completion, FinishReason, GenerationSettings, Generator};
pub use model_job::{ProfileJob, GENERATION_METADATA_KEY};
pub use openai_client::OpenAiBackend;
pub use refseq::{ProfileBuild, RefseqSummaries, RefseqTextStyle, SkippedGene, SOURCE_REFSEQ};
pub use subjects::{
    gene_set_subject, gene_subjects, read_cell_types, read_gene_sets, read_perturbations, Subject,
    SubjectKind,
};
pub use table::{
    profile_columns, read_profile_metadata, read_profiles, write_profiles,
    write_profiles_with_metadata, ProfileRecord,
};
pub use template::{
    PromptTemplate, DEFAULT_CELL_TYPE_TEMPLATE, DEFAULT_GENE_SET_TEMPLATE, DEFAULT_GENE_TEMPLATE,
    DEFAULT_PERTURBATION_TEMPLATE, GENE_FIELDS,
};
