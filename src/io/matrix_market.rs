//! 10x-style MatrixMarket coordinate files (genes × cells, gzip allowed) with their
//! genes and cells files, read a window of cells at a time when the entries are in cell
//! order (10x writes them so), and whole otherwise.

use super::expression::{is_gene_feature, kept, tab_columns, ten_x_symbols};
use super::matrix_stream::{CellRow, MatrixStream, RowSource, RowsInMemory};
use crate::error::{Error, Result};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Lines, Read};
use std::path::{Path, PathBuf};

/// How many entries are looked at on opening to decide whether they are in cell order.
const ORDER_PROBE: usize = 20_000;

/// A MatrixMarket coordinate file of genes × cells with its gene names and cell ids
/// (first column of `cells`), as a stream of cell windows. The genes file is one name
/// per line, or 10x's `genes.tsv` / `features.tsv` whose first column holds Ensembl ids
/// and second the symbols: then the ids are the names and the symbols go to
/// `gene_symbols`. Features that are not genes (antibody, CRISPR guide) are dropped, so
/// they count neither as genes nor in library sizes. The declared entry count is checked
/// at the end, so a truncated file is an error rather than a matrix with values missing.
pub fn stream_matrix_market(matrix: &Path, genes: &Path, cells: &Path) -> Result<MatrixStream> {
    let gene_rows = tab_columns(genes)?;
    let cell_ids: Vec<String> = tab_columns(cells)?
        .into_iter()
        .map(|mut c| c.swap_remove(0))
        .collect();
    let gene_names: Vec<String> = gene_rows.iter().map(|r| r[0].clone()).collect();
    let keep: Vec<bool> = gene_rows.iter().map(|r| is_gene_feature(r)).collect();
    let gene_symbols = ten_x_symbols(&gene_rows, &keep).map(|s| kept(&s, &keep));
    let mut entries = Entries::open(matrix, gene_names.len(), cell_ids.len())?;
    entries.gene_index = new_gene_index(&keep);
    let ahead = entries.probe()?;
    let in_cell_order = ahead
        .iter()
        .zip(ahead.iter().skip(1))
        .all(|(a, b)| a.2 <= b.2);
    let (rows, note): (Box<dyn RowSource>, _) = if in_cell_order {
        (Box::new(CellOrderRows { entries, ahead }), None)
    } else {
        let rows = entries.read_whole(ahead, cell_ids.len())?;
        let note = format!(
            "{}: the entries are in gene order, so the matrix is read whole (in cell order, \
             as 10x writes it, it is read a window of cells at a time)",
            matrix.display()
        );
        (Box::new(rows), Some(note))
    };
    let mut stream = MatrixStream::new(matrix, kept(&gene_names, &keep), cell_ids, rows);
    stream.gene_symbols = gene_symbols;
    Ok(stream.with_note(note))
}

/// Per file gene, its column among the kept genes.
fn new_gene_index(keep: &[bool]) -> Vec<Option<u32>> {
    let mut next = 0u32;
    keep.iter()
        .map(|&k| {
            k.then(|| {
                next += 1;
                next - 1
            })
        })
        .collect()
}

/// One entry: its line, 0-based gene (file row) and cell (file column), and value.
type Entry = (usize, usize, usize, f32);

/// The entries of a MatrixMarket file, one at a time, each checked.
struct Entries {
    path: PathBuf,
    lines: Lines<BufReader<Box<dyn Read>>>,
    line: usize,
    size: (usize, usize),
    declared: usize,
    seen: usize,
    gene_index: Vec<Option<u32>>,
}

impl Entries {
    /// Opens the file and reads its header and size line, which must say `genes` ×
    /// `cells`.
    fn open(path: &Path, genes: usize, cells: usize) -> Result<Self> {
        let mut lines = BufReader::new(crate::fsutil::open_maybe_gz(path)?).lines();
        let mut line = 0;
        loop {
            let text = match lines.next() {
                Some(text) => text.map_err(|e| Error::io(path, e))?,
                None => return Err(Error::bad_file(path, "the file ends before its size line")),
            };
            line += 1;
            if line == 1 && !text.starts_with("%%MatrixMarket matrix coordinate") {
                return Err(parse_error(
                    path,
                    1,
                    "not a MatrixMarket coordinate file".into(),
                ));
            }
            if text.starts_with('%') || text.trim().is_empty() {
                continue;
            }
            let fields: Vec<&str> = text.split_whitespace().collect();
            let (rows, cols, declared) = parse_size_line(path, line, &fields, genes, cells)?;
            return Ok(Entries {
                path: path.to_path_buf(),
                lines,
                line,
                size: (rows, cols),
                declared,
                seen: 0,
                gene_index: Vec::new(),
            });
        }
    }

    /// The next entry, `None` at the end of the file (whose entry count is checked).
    fn next(&mut self) -> Result<Option<Entry>> {
        for text in self.lines.by_ref() {
            let text = text.map_err(|e| Error::io(&self.path, e))?;
            self.line += 1;
            if text.starts_with('%') || text.trim().is_empty() {
                continue;
            }
            let fields: Vec<&str> = text.split_whitespace().collect();
            let (r, c, v) = parse_entry(&self.path, self.line, &text, &fields, self.size)?;
            self.seen += 1;
            return Ok(Some((self.line, r - 1, c - 1, v)));
        }
        if self.seen != self.declared {
            return Err(Error::bad_file(
                &self.path,
                format!(
                    "the size line declares {} entries but the file holds {} (truncated?)",
                    self.declared, self.seen
                ),
            ));
        }
        Ok(None)
    }

    /// The first [`ORDER_PROBE`] entries.
    fn probe(&mut self) -> Result<VecDeque<Entry>> {
        let mut ahead = VecDeque::new();
        while ahead.len() < ORDER_PROBE {
            match self.next()? {
                Some(entry) => ahead.push_back(entry),
                None => break,
            }
        }
        Ok(ahead)
    }

    /// Adds an entry to its cell's row, unless its gene is a dropped feature.
    fn place(&self, row: &mut CellRow, gene: usize, value: f32) {
        if let Some(g) = self.gene_index[gene] {
            row.push((g, value));
        }
    }

    /// Every entry, `ahead` first, into per-cell rows sorted by gene.
    fn read_whole(mut self, ahead: VecDeque<Entry>, cells: usize) -> Result<RowsInMemory> {
        let mut rows = vec![Vec::new(); cells];
        for (_, gene, cell, value) in ahead {
            self.place(&mut rows[cell], gene, value);
        }
        while let Some((_, gene, cell, value)) = self.next()? {
            self.place(&mut rows[cell], gene, value);
        }
        rows.iter_mut().for_each(|r| r.sort_by_key(|(g, _)| *g));
        Ok(RowsInMemory(rows))
    }
}

/// The rows of a file whose entries are in cell order, read as the windows ask.
struct CellOrderRows {
    entries: Entries,
    /// Entries read but not yet placed: the order probe's, then the one past a window.
    ahead: VecDeque<Entry>,
}

impl RowSource for CellOrderRows {
    fn rows(&mut self, start: usize, count: usize) -> Result<Vec<CellRow>> {
        let mut rows = vec![Vec::new(); count];
        loop {
            let entry = match self.ahead.pop_front() {
                Some(entry) => entry,
                None => match self.entries.next()? {
                    Some(entry) => entry,
                    None => break,
                },
            };
            let (line, gene, cell, value) = entry;
            if cell < start {
                return Err(parse_error(
                    &self.entries.path,
                    line,
                    format!(
                        "an entry of cell {} after entries of cell {}: the first {ORDER_PROBE} \
                         entries were in cell order but the file is not, so it cannot be read \
                         by window; read it whole (one window) or sort it by column",
                        cell + 1,
                        start + 1
                    ),
                ));
            }
            if cell >= start + count {
                self.ahead.push_front(entry);
                break;
            }
            self.entries.place(&mut rows[cell - start], gene, value);
        }
        rows.iter_mut().for_each(|r| r.sort_by_key(|(g, _)| *g));
        Ok(rows)
    }
}

/// A parse error at a (1-based) line of a MatrixMarket file.
fn parse_error(matrix: &Path, line: usize, message: String) -> Error {
    Error::Parse {
        path: matrix.to_path_buf(),
        line,
        message,
    }
}

/// Rows, columns and entry count of a MatrixMarket size line at `line`, which must
/// match the `genes` and `cells` the names files give.
fn parse_size_line(
    matrix: &Path,
    line: usize,
    fields: &[&str],
    genes: usize,
    cells: usize,
) -> Result<(usize, usize, usize)> {
    let rows: usize = fields
        .first()
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| parse_error(matrix, line, "bad size line".into()))?;
    let cols: usize = fields
        .get(1)
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| parse_error(matrix, line, "bad size line".into()))?;
    let declared = fields.get(2).and_then(|f| f.parse().ok()).ok_or_else(|| {
        parse_error(
            matrix,
            line,
            "bad size line (expected 'rows cols entries')".into(),
        )
    })?;
    if rows != genes || cols != cells {
        return Err(parse_error(
            matrix,
            line,
            format!("the matrix is {rows} × {cols} but there are {genes} genes and {cells} cells"),
        ));
    }
    Ok((rows, cols, declared))
}

/// The 1-based row, column and value of a MatrixMarket entry line (`text`, split into
/// `fields`) at `line`, inside `size` and finite.
fn parse_entry(
    matrix: &Path,
    line: usize,
    text: &str,
    fields: &[&str],
    (rows, cols): (usize, usize),
) -> Result<(usize, usize, f32)> {
    let (Some(r), Some(c), Some(v)) = (
        fields.first().and_then(|f| f.parse::<usize>().ok()),
        fields.get(1).and_then(|f| f.parse::<usize>().ok()),
        fields.get(2).and_then(|f| f.parse::<f32>().ok()),
    ) else {
        return Err(parse_error(
            matrix,
            line,
            format!("expected 'row col value', found '{text}'"),
        ));
    };
    if r == 0 || c == 0 || r > rows || c > cols {
        return Err(parse_error(
            matrix,
            line,
            format!("entry ({r}, {c}) is outside {rows} × {cols}"),
        ));
    }
    if !v.is_finite() {
        return Err(parse_error(
            matrix,
            line,
            format!("value '{}' is not a finite number", fields[2]),
        ));
    }
    Ok((r, c, v))
}
