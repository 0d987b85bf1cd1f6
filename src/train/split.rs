//! The training split, written to a file so that every objective trains and is scored on
//! the same items: genes the evaluation tasks score are never trained on, and a small
//! gene-disjoint (and GO-term-disjoint) share is held out to measure held-out loss.

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What an item is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SplitRole {
    /// Trained on.
    Train,
    /// Scored for held-out loss and accuracy, never trained on.
    Heldout,
    /// Scored by the evaluation tasks; never trained on.
    Eval,
}

impl SplitRole {
    fn as_str(self) -> &'static str {
        match self {
            SplitRole::Train => "train",
            SplitRole::Heldout => "heldout",
            SplitRole::Eval => "eval",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "train" => Some(SplitRole::Train),
            "heldout" => Some(SplitRole::Heldout),
            "eval" => Some(SplitRole::Eval),
            _ => None,
        }
    }
}

/// Roles of training items, keyed `gene:SYMBOL` or `go:GO:NNNNNNN`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DataSplit {
    roles: BTreeMap<String, SplitRole>,
}

/// The key of a gene in a split.
pub fn gene_key(symbol: &str) -> String {
    format!("gene:{symbol}")
}

/// The key of a GO term in a split.
pub fn go_key(go_id: &str) -> String {
    format!("go:{go_id}")
}

impl DataSplit {
    /// Assigns roles: genes in `eval_genes` get [`SplitRole::Eval`]; of the other genes
    /// and of the GO terms, a `heldout_fraction` share (by a seeded hash of the key, so
    /// adding an item never moves another) is held out, the rest trained on.
    pub fn build(
        genes: &BTreeSet<String>,
        go_terms: &BTreeSet<String>,
        eval_genes: &BTreeSet<String>,
        heldout_fraction: f64,
        seed: u64,
    ) -> Result<Self> {
        if !(0.0..1.0).contains(&heldout_fraction) {
            return Err(Error::InvalidArgument(format!(
                "the held-out fraction must be in [0, 1), not {heldout_fraction}"
            )));
        }
        let held_out = |key: &str| unit_hash(key, seed) < heldout_fraction;
        let mut roles = BTreeMap::new();
        for gene in genes {
            let key = gene_key(gene);
            let role = if eval_genes.contains(gene) {
                SplitRole::Eval
            } else if held_out(&key) {
                SplitRole::Heldout
            } else {
                SplitRole::Train
            };
            roles.insert(key, role);
        }
        for term in go_terms {
            let key = go_key(term);
            let role = if held_out(&key) {
                SplitRole::Heldout
            } else {
                SplitRole::Train
            };
            roles.insert(key, role);
        }
        Ok(DataSplit { roles })
    }

    /// A split of genes only, each with the role given (the study's acquisition arm:
    /// taught genes train, never-taught genes held out).
    pub fn of_genes<'a>(roles: impl IntoIterator<Item = (&'a str, SplitRole)>) -> Self {
        DataSplit {
            roles: roles
                .into_iter()
                .map(|(gene, role)| (gene_key(gene), role))
                .collect(),
        }
    }

    /// The role of an item; items not in the split are not used at all.
    pub fn role(&self, key: &str) -> Option<SplitRole> {
        self.roles.get(key).copied()
    }

    /// Number of items with each role.
    pub fn counts(&self) -> BTreeMap<SplitRole, usize> {
        let mut out = BTreeMap::new();
        for role in self.roles.values() {
            *out.entry(*role).or_insert(0) += 1;
        }
        out
    }

    /// Genes with a role, in symbol order.
    pub fn genes_with(&self, role: SplitRole) -> Vec<String> {
        self.roles
            .iter()
            .filter(|(_, r)| **r == role)
            .filter_map(|(k, _)| k.strip_prefix("gene:").map(String::from))
            .collect()
    }

    /// Writes the split as a TSV (`item`, `role`), gzipped when the name ends in `.gz`,
    /// atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut text = String::from("item\trole\n");
        for (key, role) in &self.roles {
            text.push_str(key);
            text.push('\t');
            text.push_str(role.as_str());
            text.push('\n');
        }
        let gz = path.extension().and_then(|e| e.to_str()) == Some("gz");
        let bytes = if gz {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            std::io::Write::write_all(&mut encoder, text.as_bytes())
                .and_then(|_| encoder.finish())
                .map_err(|e| Error::io(path, e))?
        } else {
            text.into_bytes()
        };
        crate::fsutil::atomic_write_bytes(path, &bytes)
    }

    /// Reads a split file; a malformed line is an error naming the file and line.
    pub fn read(path: &Path) -> Result<Self> {
        let lines = crate::fsutil::read_utf8_lines(path)?;
        let mut roles = BTreeMap::new();
        let mut iter = lines.iter().enumerate();
        match iter.next() {
            Some((_, header)) if header.trim_end() == "item\trole" => {}
            _ => return Err(Error::bad_file(path, "expected the header 'item<TAB>role'")),
        }
        for (i, line) in iter {
            if line.trim().is_empty() {
                continue;
            }
            let parse_error = |message: String| Error::Parse {
                path: path.to_path_buf(),
                line: i + 1,
                message,
            };
            let (key, role) = line
                .split_once('\t')
                .ok_or_else(|| parse_error("expected 'item<TAB>role'".into()))?;
            if !(key.starts_with("gene:") || key.starts_with("go:")) {
                return Err(parse_error(format!(
                    "item '{key}' is neither gene:SYMBOL nor go:GO-ID"
                )));
            }
            let role = SplitRole::parse(role.trim()).ok_or_else(|| {
                parse_error(format!("role '{role}' is not train, heldout or eval"))
            })?;
            if roles.insert(key.to_string(), role).is_some() {
                return Err(parse_error(format!("item '{key}' appears twice")));
            }
        }
        Ok(DataSplit { roles })
    }
}

/// A seeded hash of a key mapped to [0, 1).
fn unit_hash(key: &str, seed: u64) -> f64 {
    let digest = Sha256::new()
        .chain_update(seed.to_le_bytes())
        .chain_update(key.as_bytes())
        .finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn eval_genes_are_never_trained_and_roles_are_stable() {
        let genes: BTreeSet<String> = (0..2000).map(|i| format!("G{i}")).collect();
        let go = set(&["GO:0000001", "GO:0000002"]);
        let eval = set(&["G1", "G2", "G3"]);
        let split = DataSplit::build(&genes, &go, &eval, 0.1, 7).unwrap();
        for g in ["G1", "G2", "G3"] {
            assert_eq!(split.role(&gene_key(g)), Some(SplitRole::Eval));
        }
        let held = split.genes_with(SplitRole::Heldout).len();
        assert!((150..250).contains(&held), "{held} held out of 1997");
        // Adding genes never moves an existing one.
        let mut more = genes.clone();
        more.insert("NEW".into());
        let bigger = DataSplit::build(&more, &go, &eval, 0.1, 7).unwrap();
        for g in &genes {
            assert_eq!(split.role(&gene_key(g)), bigger.role(&gene_key(g)));
        }
    }

    #[test]
    fn round_trips_and_names_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let split = DataSplit::build(
            &set(&["TP53", "BRCA1"]),
            &set(&["GO:1"]),
            &set(&["TP53"]),
            0.5,
            1,
        )
        .unwrap();
        let path = dir.path().join("split.tsv.gz");
        split.write(&path).unwrap();
        assert_eq!(DataSplit::read(&path).unwrap(), split);
        let bad = dir.path().join("bad.tsv");
        std::fs::write(&bad, "item\trole\ngene:TP53\ttrain\ngene:MYC\ttest\n").unwrap();
        let message = DataSplit::read(&bad).unwrap_err().to_string();
        assert!(
            message.contains("bad.tsv") && message.contains('3'),
            "{message}"
        );
        assert!(message.contains("'test'"), "{message}");
    }
}
