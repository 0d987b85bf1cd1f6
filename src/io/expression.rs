//! Expression matrices as single-cell users have them: 10x-style MatrixMarket (genes ×
//! cells, gzip allowed, with gene and barcode files) or a dense CSV/TSV (cells × genes,
//! first column the cell id). Values are kept sparse, per cell.

use super::matrix_market::stream_matrix_market;
use super::matrix_stream::{MatrixStream, RowsInMemory};
use crate::error::{Error, Result};
use std::io::{BufRead, BufReader};
use std::path::Path;

/// Cells × genes, sparse by cell.
#[derive(Debug, Clone)]
pub struct ExpressionMatrix {
    /// Gene names (columns): symbols, or Ensembl ids for a 10x v3 features file.
    pub genes: Vec<String>,
    /// The symbol column of a 10x v3 `features.tsv` (Ensembl id, symbol, feature type),
    /// beside the ids in `genes`, for genes HGNC knows by symbol but not by id.
    pub gene_symbols: Option<Vec<String>>,
    /// Cell ids (rows).
    pub cells: Vec<String>,
    /// Per cell, (gene index, value) for non-zero values.
    pub values: Vec<Vec<(u32, f32)>>,
}

impl ExpressionMatrix {
    /// Reads a MatrixMarket coordinate file of genes × cells with its gene names and
    /// cell ids (first column of `cells`), whole; see [`stream_matrix_market`] for the
    /// file formats.
    pub fn read_matrix_market(matrix: &Path, genes: &Path, cells: &Path) -> Result<Self> {
        Self::read_stream(stream_matrix_market(matrix, genes, cells)?)
    }

    /// Every remaining window of `stream`, as one matrix.
    pub fn read_stream(stream: MatrixStream) -> Result<Self> {
        let (genes, gene_symbols) = (stream.genes.clone(), stream.gene_symbols.clone());
        let cells = stream.cells.clone();
        Ok(ExpressionMatrix {
            genes,
            gene_symbols,
            cells,
            values: stream.read_all()?,
        })
    }

    /// A dense table of cells × genes (see [`Self::read_dense`]) as a stream; the
    /// table is read whole first, since its cell ids are spread through it.
    pub fn stream_dense(path: &Path) -> Result<MatrixStream> {
        let matrix = Self::read_dense(path)?;
        let rows = Box::new(RowsInMemory(matrix.values));
        let note = format!("{}: a dense table is read whole", path.display());
        Ok(MatrixStream::new(path, matrix.genes, matrix.cells, rows).with_note(Some(note)))
    }

    /// Reads a dense table of cells × genes: a header of gene names after the first
    /// (cell id) column, then one row per cell. Commas or tabs.
    pub fn read_dense(path: &Path) -> Result<Self> {
        let reader = BufReader::new(crate::fsutil::open_maybe_gz(path)?);
        let mut lines = reader.lines();
        let header = lines
            .next()
            .ok_or_else(|| Error::bad_file(path, "the file is empty"))?
            .map_err(|e| Error::io(path, e))?;
        let sep = if header.contains('\t') { '\t' } else { ',' };
        let genes: Vec<String> = header
            .split(sep)
            .skip(1)
            .map(|g| g.trim().to_string())
            .collect();
        let mut cells = Vec::new();
        let mut values = Vec::new();
        for (i, line) in lines.enumerate() {
            let line = line.map_err(|e| Error::io(path, e))?;
            if line.trim().is_empty() {
                continue;
            }
            let mut fields = line.split(sep);
            cells.push(fields.next().unwrap_or("").trim().to_string());
            let mut row = Vec::new();
            let mut n = 0;
            for (g, f) in fields.enumerate() {
                let v: f32 = f.trim().parse().unwrap_or(f32::NAN);
                if !v.is_finite() {
                    return Err(Error::Parse {
                        path: path.to_path_buf(),
                        line: i + 2,
                        message: format!("'{f}' in column {} is not a finite number", g + 2),
                    });
                }
                if v != 0.0 {
                    row.push((g as u32, v));
                }
                n += 1;
            }
            if n != genes.len() {
                return Err(Error::Parse {
                    path: path.to_path_buf(),
                    line: i + 2,
                    message: format!("{n} values for {} genes", genes.len()),
                });
            }
            values.push(row);
        }
        Ok(ExpressionMatrix {
            gene_symbols: None,
            genes,
            cells,
            values,
        })
    }
}

/// The non-blank lines of a tab-separated file, each split into trimmed fields (a
/// line always has at least one).
pub(super) fn tab_columns(path: &Path) -> Result<Vec<Vec<String>>> {
    Ok(crate::fsutil::read_utf8_lines(path)?
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split('\t').map(|f| f.trim().to_string()).collect())
        .collect())
}

/// The symbol column of a 10x genes file, one per row (features dropped later with
/// the rest of their row), or `None` when the file is not 10x's. Only the rows that
/// are genes decide it, since antibody or guide features carry no Ensembl id.
pub(super) fn ten_x_symbols(gene_rows: &[Vec<String>], keep: &[bool]) -> Option<Vec<String>> {
    let gene_rows_kept: Vec<&Vec<String>> = gene_rows
        .iter()
        .zip(keep)
        .filter(|(_, &k)| k)
        .map(|(r, _)| r)
        .collect();
    ensembl_with_symbols(&gene_rows_kept).then(|| gene_rows.iter().map(|r| r[1].clone()).collect())
}

/// The names whose `keep` is true.
pub(super) fn kept(names: &[String], keep: &[bool]) -> Vec<String> {
    names
        .iter()
        .zip(keep)
        .filter(|(_, &k)| k)
        .map(|(g, _)| g.clone())
        .collect()
}

/// Whether a genes-file row is a gene: 10x v3 files name each feature's type in a third
/// column ("Gene Expression", "Antibody Capture", "CRISPR Guide Capture", ...).
pub(super) fn is_gene_feature(row: &[String]) -> bool {
    row.get(2)
        .is_none_or(|t| t.is_empty() || t == "Gene Expression")
}

/// Whether a genes file is 10x's: a second column on every line and Ensembl gene ids
/// (ENSG..., ENSMUSG...) in the first.
fn ensembl_with_symbols(rows: &[&Vec<String>]) -> bool {
    !rows.is_empty()
        && rows
            .iter()
            .all(|r| r.len() >= 2 && is_ensembl_gene_id(&r[0]))
}

/// `ENS`, a species code ending in `G` (ENSG, ENSMUSG), at least 6 digits, an optional
/// `.version`.
fn is_ensembl_gene_id(id: &str) -> bool {
    let stem = id.split_once('.').map_or(id, |(stem, _)| stem);
    let Some(rest) = stem.strip_prefix("ENS") else {
        return false;
    };
    let digits = rest.trim_start_matches(|c: char| c.is_ascii_uppercase());
    rest[..rest.len() - digits.len()].ends_with('G')
        && digits.len() >= 6
        && digits.chars().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::{is_ensembl_gene_id, ExpressionMatrix};

    #[test]
    fn ten_x_antibody_features_are_not_read_as_genes() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let features = write(
            "features.tsv",
            "ENSG00000010610\tCD4\tGene Expression\nCD4_TotalSeqB\tCD4\tAntibody Capture\nENSG00000141510\tTP53\tGene Expression\n",
        );
        let cells = write("barcodes.tsv", "c1\nc2\n");
        let mtx = write(
            "m.mtx",
            "%%MatrixMarket matrix coordinate integer general\n3 2 3\n1 1 4\n2 1 900\n3 2 2\n",
        );
        let m = ExpressionMatrix::read_matrix_market(&mtx, &features, &cells).unwrap();
        assert_eq!(m.genes, ["ENSG00000010610", "ENSG00000141510"]);
        assert_eq!(m.gene_symbols.as_deref().unwrap(), ["CD4", "TP53"]);
        assert_eq!(m.values, vec![vec![(0, 4.0)], vec![(1, 2.0)]]);
    }

    #[test]
    fn ensembl_gene_ids_of_any_species_and_version_are_recognised() {
        for id in [
            "ENSG00000141510",
            "ENSG00000141510.17",
            "ENSMUSG00000023274",
        ] {
            assert!(is_ensembl_gene_id(id), "{id}");
        }
        for id in ["TP53", "ENST00000269305", "ENSG123", "ENS"] {
            assert!(!is_ensembl_gene_id(id), "{id}");
        }
    }
}
