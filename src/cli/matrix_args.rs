//! The flags that name an expression matrix and its cells' metadata, shared by `cells`
//! (the matrix whose cells get vectors) and `annotate` (the query cells).

use anyhow::{bail, Context, Result};
use bftembed::io::csv_table::CsvTable;
use bftembed::io::{H5ad, MatrixSource, MatrixStream, MatrixValues};
use bftembed::store::MetadataColumns;
use clap::Args;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What the matrix's values are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ValuesArg {
    /// Decide from the values: whole numbers are counts.
    Auto,
    /// Raw counts: normalised to 10,000 per cell and log1p'd first.
    Counts,
    /// Already normalised (log1p of normalised counts): used as they are.
    Normalized,
}

#[derive(Debug, Args)]
pub struct MatrixArgs {
    /// The expression matrix: an AnnData .h5ad, a 10x .mtx/.mtx.gz, or a dense CSV/TSV
    /// (cells in rows, a header of genes). Required (checked by [`MatrixArgs::check`]:
    /// `annotate` runs without one when it cross-validates).
    #[arg(long, visible_alias = "query")]
    matrix: Option<PathBuf>,
    /// A MatrixMarket matrix's genes/features file (default: the 10x one beside it).
    #[arg(long)]
    genes: Option<PathBuf>,
    /// A MatrixMarket matrix's barcodes file (default: barcodes.tsv[.gz] beside it).
    #[arg(long)]
    barcodes: Option<PathBuf>,
    /// Which matrix of an .h5ad: X (the default), raw/X or layers/NAME.
    #[arg(long)]
    h5ad_matrix: Option<String>,
    /// The .h5ad var column with gene symbols, when var's index holds other ids.
    #[arg(long)]
    gene_column: Option<String>,
    /// What the values are (default: auto).
    #[arg(long, value_enum)]
    values: Option<ValuesArg>,
    /// A CSV/TSV of per-cell metadata (for a matrix that is not an .h5ad, whose obs
    /// table is used otherwise).
    #[arg(long)]
    metadata: Option<PathBuf>,
    /// The --metadata column holding the cell ids (default: cell_id).
    #[arg(long)]
    cell_column: Option<String>,
    /// Only the cells whose metadata COLUMN equals VALUE (for example sample=CTRL).
    #[arg(long, value_name = "COLUMN=VALUE")]
    keep: Option<String>,
    /// Cells read at a time, each window's vectors saved as it is made (a killed run
    /// resumes at the first window not saved); memory holds one window's values. 0
    /// reads the matrix as one window (default: 4096).
    #[arg(long, value_name = "CELLS")]
    window: Option<usize>,
}

/// Cells per window unless `--window` says otherwise.
pub const DEFAULT_WINDOW: usize = 4096;

impl MatrixArgs {
    /// The matrix file as the flags describe it; `--values auto` reads the values as
    /// they are and [`Self::open`] decides from the first window.
    pub fn source(&self) -> MatrixSource {
        let values = match self.values() {
            ValuesArg::Counts => MatrixValues::Counts,
            ValuesArg::Auto | ValuesArg::Normalized => MatrixValues::Normalized,
        };
        let mut source = MatrixSource::new(self.path(), values);
        source.genes = self.genes.clone();
        source.cells = self.barcodes.clone();
        source.h5ad_matrix = Some(self.h5ad_matrix().to_string());
        source.h5ad_gene_column = self.gene_column.clone();
        source
    }

    /// Which matrix of an .h5ad is read.
    pub fn h5ad_matrix(&self) -> &str {
        self.h5ad_matrix.as_deref().unwrap_or("X")
    }

    // The defaults live here, not in clap: `annotate` flattens these flags as an
    // Option, which clap sets whenever any of them has a default value.
    fn values(&self) -> ValuesArg {
        self.values.unwrap_or(ValuesArg::Auto)
    }

    fn window(&self) -> usize {
        self.window.unwrap_or(DEFAULT_WINDOW)
    }

    fn cell_column(&self) -> &str {
        self.cell_column.as_deref().unwrap_or("cell_id")
    }

    /// Whether a matrix was named.
    pub fn is_given(&self) -> bool {
        self.matrix.is_some()
    }

    /// The matrix file (empty until [`Self::check`] has passed).
    pub fn path(&self) -> &Path {
        self.matrix.as_deref().unwrap_or(Path::new(""))
    }

    /// Refuses flag combinations that cannot work, before any reading.
    pub fn check(&self) -> Result<()> {
        if self.matrix.is_none() {
            bail!("name the expression matrix with --matrix (or --query)");
        }
        if self.metadata.is_some() && self.source().is_h5ad() {
            bail!("--metadata is for matrices without an obs table; an .h5ad's obs is used");
        }
        if let Some(keep) = &self.keep {
            if !keep.contains('=') {
                bail!("--keep takes COLUMN=VALUE, got '{keep}'");
            }
        }
        Ok(())
    }

    /// The matrix as a stream of `--window` cells at a time, its values
    /// normalised as `--values` says (or as the first window looks), only the `--keep`
    /// cells, and the `columns` of metadata for those cells.
    pub fn open(&self, columns: &[String]) -> Result<(MatrixStream, MetadataColumns)> {
        let mut stream = self.source().stream()?;
        stream.set_window(match self.window() {
            0 => usize::MAX,
            cells => cells,
        });
        if self.values() == ValuesArg::Auto {
            stream.set_values(None);
        }
        let mut wanted: Vec<String> = columns.to_vec();
        let keep = self.keep.as_ref().and_then(|k| k.split_once('='));
        if let Some((column, _)) = keep {
            wanted.push(column.to_string());
        }
        let mut metadata = self.metadata_columns(&stream.cells, &wanted)?;
        if let Some((column, value)) = keep {
            let (_, values) = metadata.pop().context("the --keep column")?;
            let flags: Vec<bool> = values.iter().map(|v| v.as_deref() == Some(value)).collect();
            let kept_cells = flags.iter().filter(|&&f| f).count();
            if kept_cells == 0 {
                bail!("--keep {column}={value}: no cell of the matrix has that value");
            }
            eprintln!(
                "keeping the {kept_cells} of {} cells with {column}={value}",
                flags.len()
            );
            for (_, values) in &mut metadata {
                *values = kept(std::mem::take(values), &flags);
            }
            stream.keep_only(flags)?;
        }
        self.report_values(&mut stream)?;
        Ok((stream, metadata))
    }

    /// Reads the first window, which decides what auto values are, and says what they
    /// were taken to be and whether the matrix is held whole.
    fn report_values(&self, stream: &mut MatrixStream) -> Result<()> {
        stream.peek()?;
        if self.values() == ValuesArg::Auto && stream.values() == Some(MatrixValues::Counts) {
            eprintln!(
                "{}: the values are whole numbers: read as counts and log-normalised (--values \
                 to say otherwise)",
                self.path().display()
            );
        }
        if let Some(note) = stream.note().filter(|_| stream.window_count() > 1) {
            eprintln!("note: {note}");
        }
        Ok(())
    }

    /// What decides the matrix's values, for the key of a resumable run.
    pub fn recipe(&self) -> Vec<String> {
        vec![
            format!("h5ad_matrix={}", self.h5ad_matrix()),
            format!("gene_column={:?}", self.gene_column),
            format!("genes={:?}", self.genes),
            format!("barcodes={:?}", self.barcodes),
            format!("values={:?}", self.values()),
            format!("keep={:?}", self.keep),
            format!("metadata={:?}", self.metadata),
            format!("window={}", self.window()),
        ]
    }

    /// The named metadata columns, one value per matrix cell: from the .h5ad's obs, or
    /// from `--metadata` matched by cell id (a cell it does not list gets none).
    fn metadata_columns(&self, cells: &[String], names: &[String]) -> Result<MetadataColumns> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        if self.source().is_h5ad() {
            return self.obs_columns(names);
        }
        let Some(path) = &self.metadata else {
            bail!(
                "{}: metadata columns ({}) need an .h5ad or a --metadata CSV",
                self.path().display(),
                names.join(", ")
            );
        };
        let mut table = CsvTable::open(path)?;
        let id = table.column(self.cell_column())?;
        let cols: Vec<usize> = names
            .iter()
            .map(|n| table.column(n))
            .collect::<bftembed::Result<_>>()?;
        let mut by_cell: HashMap<String, Vec<String>> = HashMap::new();
        for record in table.records() {
            let record = record?;
            let field = |c: usize| record.get(c).unwrap_or("").to_string();
            by_cell.insert(field(id), cols.iter().map(|&c| field(c)).collect());
        }
        let listed = cells.iter().filter(|c| by_cell.contains_key(*c)).count();
        if listed == 0 {
            bail!(
                "{}: no cell id in column '{}' matches the matrix's cells (it has e.g. {})",
                path.display(),
                self.cell_column(),
                cells.first().map_or("none", String::as_str)
            );
        }
        Ok(names
            .iter()
            .enumerate()
            .map(|(j, name)| {
                let values = cells
                    .iter()
                    .map(|c| {
                        by_cell
                            .get(c)
                            .map(|v| v[j].clone())
                            .filter(|v| !v.is_empty())
                    })
                    .collect();
                (name.clone(), values)
            })
            .collect())
    }

    /// The named obs columns of an .h5ad, each checked to exist.
    fn obs_columns(&self, names: &[String]) -> Result<MetadataColumns> {
        let file = H5ad::open(self.path())?;
        let known = file.obs_columns()?;
        names
            .iter()
            .map(|name| {
                if !known.contains(name) {
                    bail!(
                        "{}: obs has no column '{name}' (it has: {})",
                        self.path().display(),
                        known.join(", ")
                    );
                }
                Ok((name.clone(), file.obs_column(name)?))
            })
            .collect()
    }
}

/// The values whose `keep` is true, in order.
pub(super) fn kept<T>(values: Vec<T>, keep: &[bool]) -> Vec<T> {
    values
        .into_iter()
        .zip(keep)
        .filter_map(|(v, &k)| k.then_some(v))
        .collect()
}
