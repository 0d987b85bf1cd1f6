//! Additions to a copy of an AnnData `.h5ad`, written the way anndata writes them: cell
//! vectors as `obsm` entries (a `dict` group of `array` datasets, cells × dimensions,
//! `adata.obsm[key]`), and per-cell columns in `obs` (labels as `categorical`, numbers as
//! `array`, listed in obs's `column-order`). Everything else in the file is left as it
//! is: an edit only appends the new datasets and relinks the groups on the path, and the
//! copy replaces `output` only once it is complete.

use super::anndata::H5ad;
use crate::error::{Error, Result};
use hdf5_pure::{AttrValue, File};
use std::path::Path;

/// One `obsm` entry: its key and row-major values, one row per cell of the file.
pub struct ObsmEntry<'a> {
    /// The key, such as `X_genept_w`.
    pub key: &'a str,
    /// Columns per cell.
    pub dim: usize,
    /// `cells × dim` values, row-major.
    pub values: &'a [f32],
}

/// Checks, before any work, that obsm entries can be added to a copy of `input`: an
/// `.h5ad` whose `obsm` is a group (anndata 0.7 and later) or absent.
pub fn check_obsm_writable(input: &Path) -> Result<()> {
    open_writable(input).map(|_| ())
}

/// Opens `input`, refusing a file whose obsm cannot take new entries.
fn open_writable(input: &Path) -> Result<H5ad> {
    let file = H5ad::open(input)?;
    if file.has_dataset("obsm") {
        return Err(Error::bad_file(input, OLD_LAYOUT));
    }
    Ok(file)
}

const OLD_LAYOUT: &str = "its obsm is a single table (the layout of anndata before 0.7), \
                          which obsm entries cannot be added to; open and save the file once \
                          with a current anndata, then try again";

/// Writes a copy of `input` with `entries` added to `obsm` (an entry with the same key
/// is replaced) to `output`, atomically.
pub fn write_obsm_copy(input: &Path, output: &Path, entries: &[ObsmEntry]) -> Result<()> {
    let cells = open_writable(input)?.obs_names()?.len();
    for e in entries {
        if e.dim == 0 || e.values.len() != cells * e.dim {
            return Err(Error::InvalidArgument(format!(
                "obsm['{}']: {} values for {cells} cells of {} dimensions",
                e.key,
                e.values.len(),
                e.dim
            )));
        }
    }
    edit_copy(input, output, |path| add_entries(path, entries))
}

/// Copies `input` under a temporary name beside `output`, lets `edit` change the copy in
/// place, and renames it over `output` only once complete, so a failure leaves no
/// half-made file.
fn edit_copy(input: &Path, output: &Path, edit: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let dir = crate::fsutil::parent_dir(output);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".bftembed-tmp-")
        .suffix(".h5ad")
        .tempfile_in(&dir)
        .map_err(|e| Error::io(&dir, e))?;
    std::fs::copy(input, tmp.path()).map_err(|e| Error::io(input, e))?;
    // fs::copy keeps the input's mode, which may be read-only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
            .map_err(|e| Error::io(output, e))?;
    }
    edit(tmp.path()).map_err(|e| match e {
        Error::BadFile { message, .. } => Error::bad_file(output, message),
        other => other,
    })?;
    tmp.as_file().sync_all().map_err(|e| Error::io(output, e))?;
    tmp.persist(output)
        .map_err(|e| Error::io(output, e.error))?;
    Ok(())
}

/// Adds the entries to the (copied) file in place.
fn add_entries(path: &Path, entries: &[ObsmEntry]) -> Result<()> {
    let bad = |e: hdf5_pure::Error| Error::bad_file(path, format!("adding to obsm: {e}"));
    let file = File::open_rw(path).map_err(bad)?;
    // The copy has the checked input's bytes: its obsm is a group or absent.
    if file.group("obsm").is_err() {
        file.root()
            .create_group_with("obsm", |g| {
                g.set_attr("encoding-type", AttrValue::VarLenString("dict".into()));
                g.set_attr("encoding-version", AttrValue::VarLenString("0.1.0".into()));
            })
            .map_err(bad)?;
    }
    for e in entries {
        let path_in_file = format!("obsm/{}", e.key);
        if file.dataset(&path_in_file).is_ok() || file.group(&path_in_file).is_ok() {
            file.root().delete(&path_in_file).map_err(bad)?;
        }
        let rows = (e.values.len() / e.dim) as u64;
        file.root()
            .create_dataset(&path_in_file, |b| {
                b.with_f32_data(e.values)
                    .with_shape(&[rows, e.dim as u64])
                    .set_attr("encoding-type", AttrValue::VarLenString("array".into()))
                    .set_attr("encoding-version", AttrValue::VarLenString("0.2.0".into()));
            })
            .map_err(bad)?;
    }
    file.commit().map_err(bad)
}

/// One new `obs` column: one value per cell of the file.
pub enum ObsColumn<'a> {
    /// Labels, written as a categorical (a missing label is code -1, NaN in pandas).
    Labels(&'a str, &'a [Option<String>]),
    /// Numbers, written as a float32 array (NaN where missing).
    Numbers(&'a str, &'a [f32]),
}

impl ObsColumn<'_> {
    fn name(&self) -> &str {
        match self {
            ObsColumn::Labels(name, _) | ObsColumn::Numbers(name, _) => name,
        }
    }

    fn len(&self) -> usize {
        match self {
            ObsColumn::Labels(_, v) => v.len(),
            ObsColumn::Numbers(_, v) => v.len(),
        }
    }
}

/// Writes a copy of `input` with `columns` added to `obs` (a column with the same name is
/// refused: the input's own columns are never overwritten) to `output`, atomically.
pub fn write_obs_copy(input: &Path, output: &Path, columns: &[ObsColumn]) -> Result<()> {
    let file = H5ad::open(input)?;
    let cells = file.obs_names()?.len();
    let existing = file.obs_columns()?;
    for c in columns {
        if c.len() != cells {
            return Err(Error::InvalidArgument(format!(
                "obs['{}']: {} values for {cells} cells",
                c.name(),
                c.len()
            )));
        }
        if existing.iter().any(|e| e == c.name()) {
            return Err(Error::bad_file(
                input,
                format!(
                    "obs already has a column '{}'; it is never overwritten",
                    c.name()
                ),
            ));
        }
    }
    // The input's own order first (anndata shows obs in `column-order`), then the new.
    let mut order = file.obs_column_order();
    order.extend(columns.iter().map(|c| c.name().to_string()));
    edit_copy(input, output, |path| add_obs_columns(path, columns, &order))
}

/// Adds the columns to the (copied) file in place and lists them in `column-order`.
fn add_obs_columns(path: &Path, columns: &[ObsColumn], order: &[String]) -> Result<()> {
    let bad = |e: hdf5_pure::Error| Error::bad_file(path, format!("adding to obs: {e}"));
    let file = File::open_rw(path).map_err(bad)?;
    let attr = |s: &str| AttrValue::VarLenString(s.into());
    for column in columns {
        let at = format!("obs/{}", column.name());
        match column {
            ObsColumn::Numbers(_, values) => {
                let rows = values.len() as u64;
                file.root()
                    .create_dataset(&at, |b| {
                        b.with_f32_data(values)
                            .with_shape(&[rows])
                            .set_attr("encoding-type", attr("array"))
                            .set_attr("encoding-version", attr("0.2.0"));
                    })
                    .map_err(bad)?;
            }
            ObsColumn::Labels(_, labels) => {
                let mut categories: Vec<&str> =
                    labels.iter().flatten().map(String::as_str).collect();
                categories.sort_unstable();
                categories.dedup();
                let codes: Vec<i32> = labels
                    .iter()
                    .map(|l| match l {
                        Some(l) => categories
                            .binary_search(&l.as_str())
                            .map_or(-1, |i| i as i32),
                        None => -1,
                    })
                    .collect();
                file.root()
                    .create_group_with(&at, |g| {
                        g.set_attr("encoding-type", attr("categorical"));
                        g.set_attr("encoding-version", attr("0.2.0"));
                        g.set_attr("ordered", AttrValue::U8(0));
                    })
                    .map_err(bad)?;
                file.root()
                    .create_dataset(&format!("{at}/categories"), |b| {
                        b.with_vlen_strings(&categories)
                            .set_attr("encoding-type", attr("string-array"))
                            .set_attr("encoding-version", attr("0.2.0"));
                    })
                    .map_err(bad)?;
                let rows = codes.len() as u64;
                file.root()
                    .create_dataset(&format!("{at}/codes"), |b| {
                        b.with_i32_data(&codes)
                            .with_shape(&[rows])
                            .set_attr("encoding-type", attr("array"))
                            .set_attr("encoding-version", attr("0.2.0"));
                    })
                    .map_err(bad)?;
            }
        }
    }
    let obs = file.group("obs").map_err(bad)?;
    obs.set_attr("column-order", AttrValue::VarLenStringArray(order.to_vec()))
        .map_err(bad)?;
    file.commit().map_err(bad)
}
