//! GMT gene-set files: one set per line, `name <TAB> description <TAB> gene...`, gzip
//! allowed; blank lines and lines starting with `#` are skipped. Names are returned as
//! written; resolving them is the caller's business.

use crate::error::{Error, Result};
use std::path::Path;

/// One line of a GMT file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneSet {
    /// The set's name (first field, trimmed).
    pub name: String,
    /// The description (second field).
    pub description: String,
    /// The genes as written (trimmed), in file order.
    pub genes: Vec<String>,
    /// The 1-based line the set is on.
    pub line: usize,
}

/// Every set of a GMT file, in file order (a name may repeat: one gene perturbed
/// twice). A line without a name or without any gene, and a file without any set, are
/// errors naming the file (and line).
pub fn read_gmt(path: &Path) -> Result<Vec<GeneSet>> {
    let lines = crate::fsutil::read_utf8_lines(path)?;
    let mut sets = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        // Trailing tabs are common in GMT files: empty gene fields are not genes.
        let genes: Vec<String> = fields
            .iter()
            .skip(2)
            .map(|g| g.trim())
            .filter(|g| !g.is_empty())
            .map(String::from)
            .collect();
        let name = fields[0].trim();
        if fields.len() < 3 || name.is_empty() || genes.is_empty() {
            return Err(Error::Parse {
                path: path.to_path_buf(),
                line: i + 1,
                message: "a GMT line needs a name, a description and at least one gene".into(),
            });
        }
        sets.push(GeneSet {
            name: name.to_string(),
            description: fields[1].to_string(),
            genes,
            line: i + 1,
        });
    }
    if sets.is_empty() {
        return Err(Error::bad_file(path, "the GMT file has no gene sets"));
    }
    Ok(sets)
}

#[cfg(test)]
mod tests {
    use super::read_gmt;

    #[test]
    fn sets_keep_their_line_and_a_short_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.gmt");
        std::fs::write(&path, "A\tdesc\tTP53\tMDM2 \t\n\n# note\nB\td\tCD4\n").unwrap();
        let sets = read_gmt(&path).unwrap();
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[0].genes, ["TP53", "MDM2"]);
        assert_eq!((sets[1].name.as_str(), sets[1].line), ("B", 4));
        std::fs::write(&path, "A\tdesc\tTP53\nB\tonly\n").unwrap();
        let err = read_gmt(&path).unwrap_err().to_string();
        assert!(err.contains("x.gmt") && err.contains('2'), "{err}");
    }
}
