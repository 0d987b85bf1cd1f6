//! Cell vectors into a copy of an AnnData `.h5ad` as `obsm` entries, the way anndata
//! writes them (a `dict` group of `array` datasets, cells × dimensions), so scanpy finds
//! them under `adata.obsm[key]`. Everything else in the file (X, obs, var, layers) is
//! left as it is: the edit only appends the new datasets and relinks the groups on the
//! path, and the copy replaces `output` only once it is complete.

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
    // The copy is edited under a temporary name beside `output` and renamed over it
    // only once complete, so a failure leaves no half-made file.
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
    add_entries(tmp.path(), entries).map_err(|e| match e {
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
