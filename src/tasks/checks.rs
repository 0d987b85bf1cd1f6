//! Range checks on the numbers of a task file, made when the file is read, so that a
//! value no probe can use (`folds = 0`, `k = 0`, a negative ridge) is an error naming the
//! key and its line instead of a panic or a silent zero later.

/// One number of a task file and whether it is in range.
pub(crate) struct Check {
    /// The table the key is in (`probe`, `gene_pairs`, ...).
    pub(crate) table: &'static str,
    /// The key.
    pub(crate) key: &'static str,
    /// Its value, as shown in the error.
    pub(crate) value: String,
    /// Whether the value is in range.
    pub(crate) ok: bool,
    /// The range, said as the error says it ("must be at least 2").
    pub(crate) rule: &'static str,
}

/// `value` must be at least `min` (1 or 2).
pub(crate) fn at_least(table: &'static str, key: &'static str, value: usize, min: usize) -> Check {
    Check {
        table,
        key,
        value: value.to_string(),
        ok: value >= min,
        rule: match min {
            1 => "must be at least 1",
            2 => "must be at least 2",
            _ => "is too small",
        },
    }
}

/// `value` must be finite and `ok` (the rule, said by `rule`).
pub(crate) fn finite(
    table: &'static str,
    key: &'static str,
    value: f64,
    ok: bool,
    rule: &'static str,
) -> Check {
    Check {
        table,
        key,
        value: value.to_string(),
        ok: value.is_finite() && ok,
        rule,
    }
}

/// The 1-based line where `key` is set inside `[table]` (or where the table starts when
/// the key is left at its default); `None` when neither is in the text.
pub(crate) fn key_line(text: &str, table: &str, key: &str) -> Option<usize> {
    let mut current = String::new();
    let mut table_line = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            current = name.trim().to_string();
            if current == table {
                table_line = Some(i + 1);
            }
            continue;
        }
        if current == table {
            let name = line
                .split('=')
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches('"');
            if line.contains('=') && name == key {
                return Some(i + 1);
            }
        }
    }
    table_line
}

#[cfg(test)]
mod tests {
    use super::key_line;

    #[test]
    fn key_line_finds_the_key_inside_its_table_only() {
        let text = "id = \"x\"\n[probe]\nfolds = 3\n[cell_types]\nk = 2\nfolds = 0\n";
        assert_eq!(key_line(text, "cell_types", "folds"), Some(6));
        assert_eq!(key_line(text, "probe", "folds"), Some(3));
        assert_eq!(key_line(text, "cell_types", "top_genes"), Some(4));
        assert_eq!(key_line(text, "gene_pairs", "folds"), None);
    }
}
