//! `bftembed neighbors`, `bftembed search` and `bftembed reindex`.

use super::default_store;
use anyhow::{bail, Context, Result};
use bftembed::device::parse_device;
use bftembed::genes::GeneCatalog;
use bftembed::models::ModelCache;
use bftembed::store::{
    reindex_store, resolve_row, GeneStore, IndexParams, Neighbor, SearchMode, DEFAULT_EF,
};
use clap::Args;
use std::path::PathBuf;

/// How many neighbours, and how they are found: shared by every command that searches.
#[derive(Debug, Args)]
pub struct SearchOpts {
    /// How many neighbours.
    #[arg(short = 'k', long, default_value_t = 10)]
    pub k: usize,
    /// Brute-force search over every vector instead of the HNSW graph.
    #[arg(long)]
    exact: bool,
    /// HNSW search breadth (ignored with --exact); the default gives recall@10 0.999 on the gene store.
    #[arg(long, default_value_t = DEFAULT_EF)]
    ef: usize,
}

impl SearchOpts {
    /// The search mode the flags ask for.
    pub fn mode(&self) -> SearchMode {
        if self.exact {
            SearchMode::Exact
        } else {
            SearchMode::Hnsw { ef: self.ef }
        }
    }

    /// How the search is made, in words, for reports.
    pub fn describe(&self) -> String {
        if self.exact {
            "exact".into()
        } else {
            format!("hnsw ef={}", self.ef)
        }
    }
}

#[derive(Debug, Args)]
pub struct StoreOpts {
    /// Store folder (default: the one `bftembed quickstart` builds).
    #[arg(long)]
    store: Option<PathBuf>,
    #[command(flatten)]
    search: SearchOpts,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

impl StoreOpts {
    fn open(&self) -> Result<GeneStore> {
        let path = match &self.store {
            Some(p) => p.clone(),
            None => default_store()?,
        };
        if self.store.is_none() && !path.exists() {
            bail!(
                "no --store given and the default store {} does not exist yet; build it with `bftembed quickstart`",
                path.display()
            );
        }
        Ok(GeneStore::open(&path)?)
    }

    fn mode(&self) -> SearchMode {
        self.search.mode()
    }
}

#[derive(Debug, Args)]
pub struct NeighborsArgs {
    /// Gene symbol, alias, previous symbol or Entrez id (a gene store).
    #[arg(required_unless_present_any = ["cell", "queries"])]
    symbol: Option<String>,
    /// A cell id (a cell store, `bftembed cells --store-out`).
    #[arg(long, conflicts_with_all = ["symbol", "queries"])]
    cell: Option<String>,
    /// A file of cell ids, one per line: the neighbours of each, as JSON lines, searched
    /// on every core.
    #[arg(long, conflicts_with = "symbol")]
    queries: Option<PathBuf>,
    #[command(flatten)]
    opts: StoreOpts,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Free text, for example "DNA damage checkpoint kinase".
    query: String,
    #[command(flatten)]
    opts: StoreOpts,
    /// cpu, cuda, cuda:N, metal or auto.
    #[arg(long, default_value = "cpu")]
    device: String,
}

#[derive(Debug, Args)]
pub struct ReindexArgs {
    /// Store folder (default: the one `bftembed quickstart` builds).
    #[arg(long)]
    store: Option<PathBuf>,
    /// HNSW links per node.
    #[arg(long, default_value_t = IndexParams::default().max_nb_connection)]
    hnsw_m: usize,
    /// HNSW candidate list size while building.
    #[arg(long, default_value_t = IndexParams::default().ef_construction)]
    hnsw_ef_construction: usize,
}

pub fn neighbors(args: NeighborsArgs) -> Result<()> {
    let Some(symbol) = &args.symbol else {
        return super::cell_lookup::cell_neighbors(
            args.opts.store.as_deref(),
            args.cell.as_deref(),
            args.queries.as_deref(),
            args.opts.search.k,
            args.opts.mode(),
            args.opts.json,
        );
    };
    let store = args.opts.open()?;
    let catalog = GeneCatalog::embedded()?;
    let row = resolve_row(&store, &catalog, symbol)?;
    warn_case_only(&store.symbols()[row], symbol.trim(), &catalog);
    let hits = store.neighbors_of_row(row, args.opts.search.k, args.opts.mode())?;
    let title = if store.symbols()[row].eq_ignore_ascii_case(symbol.trim()) {
        store.symbols()[row].clone()
    } else {
        format!(
            "{} (resolved from '{}')",
            store.symbols()[row],
            symbol.trim()
        )
    };
    print_hits(&store, &title, &hits, args.opts.json)
}

/// Warns when `query` found `symbol` only by the catalogue's case-only rule (`Cd4` for
/// CD4, not `C2ORF15` for C2orf15).
fn warn_case_only(symbol: &str, query: &str, catalog: &GeneCatalog) {
    if catalog.resolve(query).is_ok_and(|r| r.case_only) {
        let mut found = bftembed::genes::CaseOnlyMatches::default();
        found.add(query, symbol);
        if let Some(w) = found.warning("name") {
            eprintln!("warning: {w}");
        }
    }
}

pub fn search(args: SearchArgs) -> Result<()> {
    if args.query.trim().is_empty() {
        bail!("the search text is empty");
    }
    let store = args.opts.open()?;
    let embedder = store
        .encoder(&ModelCache::from_env()?, &parse_device(&args.device)?)
        .with_context(|| {
            format!(
                "loading the store's embedding model '{}'",
                store.manifest().model_id
            )
        })?;
    let query = embedder.embed_queries(&[args.query.as_str()])?;
    let hits = store.search_vector(query.row(0), args.opts.search.k, args.opts.mode())?;
    print_hits(
        &store,
        &format!("\"{}\"", args.query.trim()),
        &hits,
        args.opts.json,
    )
}

pub fn reindex(args: ReindexArgs) -> Result<()> {
    let path = match args.store {
        Some(p) => p,
        None => default_store()?,
    };
    let params = IndexParams {
        max_nb_connection: args.hnsw_m,
        ef_construction: args.hnsw_ef_construction,
    };
    let manifest = reindex_store(&path, params)?;
    eprintln!(
        "rebuilt the index of {} ({} {:?})",
        path.display(),
        manifest.count,
        manifest.items
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Store folder, gene or cell store (default: the one `bftembed quickstart` builds).
    #[arg(long)]
    store: Option<PathBuf>,
}

/// Checks every byte of a store against its manifest (opening a large store checks
/// only sizes and file ends).
pub fn verify(args: VerifyArgs) -> Result<()> {
    let path = match args.store {
        Some(p) => p,
        None => default_store()?,
    };
    let started = std::time::Instant::now();
    let manifest = bftembed::store::verify_store(&path)?;
    println!(
        "{}: intact ({} {:?} of dimension {}, every file's sha256 and the vectors' checksum \
         match the manifest; {:.1} s)",
        path.display(),
        manifest.count,
        manifest.items,
        manifest.dim,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn print_hits(store: &GeneStore, title: &str, hits: &[Neighbor], json: bool) -> Result<()> {
    if json {
        let rows: Vec<serde_json::Value> = hits
            .iter()
            .enumerate()
            .map(|(i, h)| {
                serde_json::json!({
                    "rank": i + 1,
                    "symbol": h.symbol,
                    "entrez_id": h.entrez_id,
                    "score": h.score,
                })
            })
            .collect();
        let out = serde_json::json!({"query": title, "store": store.path(), "neighbors": rows});
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("nearest to {title} in {} genes:", store.len());
        println!(
            "{:>4}  {:<12} {:>7}  description",
            "rank", "symbol", "cosine"
        );
        for (i, h) in hits.iter().enumerate() {
            println!(
                "{:>4}  {:<12} {:>7.4}  {}",
                i + 1,
                h.symbol,
                h.score,
                first_words(store.text(h.row), 70)
            );
        }
    }
    Ok(())
}

/// The start of a profile text, after the leading "SYMBOL (name)." part.
fn first_words(text: &str, max_chars: usize) -> String {
    let body = text.split_once(". ").map(|(head, _)| head).unwrap_or(text);
    let body = body
        .split_once(" (")
        .map(|(_, rest)| rest.trim_end_matches(')'))
        .unwrap_or(body);
    if body.chars().count() <= max_chars {
        body.to_string()
    } else {
        let cut: String = body.chars().take(max_chars - 1).collect();
        format!("{cut}…")
    }
}
