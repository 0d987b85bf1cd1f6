//! The library's error type: every variant names the file, line or item at fault,
//! so a user can act on the message without reading the source.

use std::path::PathBuf;

/// Everything that can go wrong in bftembed's library code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O failure on a named file or folder.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder being read or written.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// A training run whose loss or gradient stopped being finite.
    #[error("training diverged at step {step}: {what}; the last checkpoint is kept")]
    Diverged {
        /// The step that failed.
        step: usize,
        /// What went non-finite.
        what: String,
    },

    /// A malformed line or record in an input file.
    #[error("{}:{line}: {message}", path.display())]
    Parse {
        /// The input file.
        path: PathBuf,
        /// 1-based line (or record) number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },

    /// An input file that is malformed as a whole (empty, wrong format, wrong columns).
    #[error("{}: {message}", path.display())]
    BadFile {
        /// The input file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },

    /// A model that is neither in the cache nor a usable local folder.
    #[error("model '{name}' is not available: {reason}")]
    ModelMissing {
        /// The model name or path the user gave.
        name: String,
        /// Why it cannot be used, including the command that fixes it.
        reason: String,
    },

    /// A model file that exists but does not match its recorded checksum or cannot be parsed.
    #[error("model file {} is corrupt: {message}", path.display())]
    ModelCorrupt {
        /// The offending file.
        path: PathBuf,
        /// What check failed.
        message: String,
    },

    /// A model bftembed cannot run correctly (another architecture, pooling mode,
    /// tokenizer or RoPE variant): refused rather than approximated. The message says
    /// what is not supported and what is.
    #[error("{}: {message}", path.display())]
    UnsupportedModel {
        /// The file whose setting is not supported.
        path: PathBuf,
        /// What is not supported, and what is.
        message: String,
    },

    /// A failed download or registry query.
    #[error("download from {url} failed: {message}")]
    Download {
        /// The address asked.
        url: String,
        /// What went wrong.
        message: String,
    },

    /// A gene symbol that resolves to no known gene.
    #[error("unknown gene symbol '{symbol}'{}", suggestion_text(suggestions))]
    UnknownGene {
        /// The symbol as given.
        symbol: String,
        /// Close matches (aliases, edit distance), best first.
        suggestions: Vec<String>,
    },

    /// A previous symbol or alias that names several genes.
    #[error("gene symbol '{symbol}' is ambiguous: it names {}; give the approved symbol", candidates.join(", "))]
    AmbiguousGene {
        /// The symbol as given.
        symbol: String,
        /// The approved symbols it may mean.
        candidates: Vec<String>,
    },

    /// A store folder that is incomplete, inconsistent or corrupt.
    #[error("store {}: {message}", path.display())]
    Store {
        /// The store folder or file.
        path: PathBuf,
        /// What is wrong and, where possible, how to fix it.
        message: String,
    },

    /// An evaluation task that cannot be scored on a store.
    #[error("task {task} on {store}: {message}")]
    Task {
        /// The task id.
        task: String,
        /// The store's name.
        store: String,
        /// What went wrong.
        message: String,
    },

    /// A tensor computation failed.
    #[error("tensor computation: {0}")]
    Candle(#[from] candle_core::Error),

    /// The tokenizer failed on a model's tokenizer file or an input text.
    #[error("tokenizer: {0}")]
    Tokenizer(String),

    /// A caller passed an argument that makes no sense (k = 0, empty batch, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A service that cannot answer through no fault of the request (its worker has
    /// stopped); `bftembed serve` answers it with a 5xx status, which clients may retry.
    #[error("service unavailable: {0}")]
    Unavailable(String),
}

fn suggestion_text(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", suggestions.join(", "))
    }
}

impl Error {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A whole-file format problem.
    pub fn bad_file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::BadFile {
            path: path.into(),
            message: message.into(),
        }
    }

    /// A model setting bftembed does not support.
    pub fn unsupported(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::UnsupportedModel {
            path: path.into(),
            message: message.into(),
        }
    }

    /// A store consistency problem.
    pub fn store(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Store {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// The library's result type.
pub type Result<T> = std::result::Result<T, Error>;
