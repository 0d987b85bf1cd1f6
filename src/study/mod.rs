//! The study: do profiles written by a BFT-tuned model make better gene and cell
//! embeddings than those of SFT, DFT and the base model? It runs the other stages in
//! order through their public interfaces — the split chooses genes, the profile stage
//! writes each model's profiles, the store stage embeds them, the tasks score them —
//! adds paired tests, a check of the profiles against NCBI summaries and GO
//! annotations, and gene-set naming, and writes one report (`train/study.toml`).

mod accuracy;
mod acquisition;
mod cache;
mod config;
mod facts;
mod gene_sets;
mod genes;
mod report;
mod run;
mod scoring;
mod stages;

pub use accuracy::{mask_gene, profile_accuracy, ProfileAccuracy, VectorsBySymbol};
pub use acquisition::{
    gap_closed, go_recall, holm, AcquisitionReport, PrimaryTest, ProbeRow, RecallRow, RunRecord,
    BASE_MODEL, CARDS_STORE,
};
pub use cache::{fingerprint, is_current, mark};
pub use config::{
    AcquisitionConfig, AcquisitionRun, ComparisonConfig, EmbeddingConfig, FactsConfig,
    GeneSelection, GeneSetConfig, GeneSetSource, GenerationConfig, QuickAcquisition, QuickConfig,
    StudyConfig, StudyModel, NCBI_STORE, RANDOM_STORE,
};
pub use facts::{FactCheck, GoKnowledge};
pub use gene_sets::{
    clean_answer, draw_gene_sets, score_naming, NamedGeneSet, NamingScores, SourceScores,
};
pub use genes::{select_study_genes, StudyGenes, TaskDraw};
pub use report::{ModelRecord, PairedRow, StoreCoverage, StudyReport};
pub use run::{run_study, study_dir, StudyArm, StudyOptions, StudyResults};
pub use stages::{answers, answers_fingerprint, store, store_fingerprint, AskSettings};
