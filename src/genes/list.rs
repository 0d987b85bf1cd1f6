//! Gene-list files: one gene symbol (or Entrez id) per line; `#` starts a comment.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// One gene named in a list file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneListEntry {
    /// 1-based line number in the file.
    pub line: usize,
    /// The symbol as written.
    pub symbol: String,
}

/// A parsed gene list.
#[derive(Debug, Clone)]
pub struct GeneList {
    /// The file it came from.
    pub path: PathBuf,
    /// The genes, in file order, first occurrence of each kept.
    pub entries: Vec<GeneListEntry>,
    /// Symbols that appeared more than once (their later lines were skipped).
    pub duplicates: Vec<GeneListEntry>,
}

/// Reads a gene list. Blank lines and `#` comments are skipped; a line with more than
/// one field, or characters that no gene symbol has, is an error naming the line; a list
/// with no genes at all is an error.
pub fn read_gene_list(path: &Path) -> Result<GeneList> {
    let lines = crate::fsutil::read_utf8_lines(path)?;
    let mut entries: Vec<GeneListEntry> = Vec::new();
    let mut duplicates = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, raw) in lines.iter().enumerate() {
        let line = i + 1;
        let content = raw.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        let fields: Vec<&str> = content
            .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
            .filter(|f| !f.is_empty())
            .collect();
        if fields.len() > 1 {
            return Err(Error::Parse {
                path: path.to_path_buf(),
                line,
                message: format!(
                    "expected one gene symbol per line, found {} fields ({})",
                    fields.len(),
                    fields.join(" | ")
                ),
            });
        }
        let symbol = fields[0];
        if let Some(bad) = symbol
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '@' | '/')))
        {
            return Err(Error::Parse {
                path: path.to_path_buf(),
                line,
                message: format!("'{symbol}' is not a gene symbol (character {bad:?})"),
            });
        }
        let entry = GeneListEntry {
            line,
            symbol: symbol.to_string(),
        };
        if seen.insert(symbol.to_uppercase()) {
            entries.push(entry);
        } else {
            duplicates.push(entry);
        }
    }
    if entries.is_empty() {
        return Err(Error::bad_file(
            path,
            "the gene list is empty (expected one gene symbol per line)",
        ));
    }
    Ok(GeneList {
        path: path.to_path_buf(),
        entries,
        duplicates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(content: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("genes.txt");
        std::fs::write(&path, content).unwrap();
        (dir, path)
    }

    #[test]
    fn parses_comments_blanks_and_duplicates() {
        let (_d, p) = write(b"# my genes\nTP53\n\nMDM2  # partner\ntp53\nHLA-A\n");
        let list = read_gene_list(&p).unwrap();
        let symbols: Vec<_> = list.entries.iter().map(|e| e.symbol.as_str()).collect();
        assert_eq!(symbols, ["TP53", "MDM2", "HLA-A"]);
        assert_eq!(list.duplicates[0].line, 5);
    }

    #[test]
    fn errors_name_the_line() {
        let (_d, p) = write(b"TP53\nMDM2 CDKN1A\n");
        let e = read_gene_list(&p).unwrap_err().to_string();
        assert!(
            e.contains("genes.txt:2") && e.contains("one gene symbol per line"),
            "{e}"
        );
        let (_d, p) = write(b"TP53\n<html>\n");
        let e = read_gene_list(&p).unwrap_err().to_string();
        assert!(e.contains("genes.txt:2"), "{e}");
        let (_d, p) = write(b"# nothing\n\n");
        let e = read_gene_list(&p).unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
    }
}
