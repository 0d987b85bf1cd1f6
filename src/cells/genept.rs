//! The two GenePT recipes for one cell, from its row of the expression matrix.

/// GenePT-w: the expression-weighted mean of the vectors of the genes the cell
/// expresses (`gene_vector[g]`, `None` for a gene without a vector), each minus
/// `centre`, L2-normalised. Genes for which `uses` is false are left out. `None` when
/// no expressed gene has a vector: such a cell has no GenePT-w vector at all, and a
/// zero vector in its place would read as a real one.
pub fn weighted_vector(
    row: &[(u32, f32)],
    gene_vector: &[Option<&[f32]>],
    centre: &[f32],
    uses: impl Fn(u32) -> bool,
) -> Option<Vec<f32>> {
    let mut sum = vec![0f32; centre.len()];
    let mut weight = 0f32;
    for &(g, x) in row.iter().filter(|(g, _)| uses(*g)) {
        if let Some(v) = gene_vector[g as usize] {
            for ((a, b), m) in sum.iter_mut().zip(v).zip(centre) {
                *a += x * (b - m);
            }
            weight += x;
        }
    }
    if weight <= 0.0 {
        return None;
    }
    let norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt();
    (norm > 0.0).then(|| sum.iter().map(|x| x / norm).collect())
}

/// The mean of the known gene vectors: what GenePT-w subtracts when asked to centre.
pub fn mean_vector(gene_vector: &[Option<&[f32]>], dim: usize) -> Vec<f32> {
    let known: Vec<&[f32]> = gene_vector.iter().flatten().copied().collect();
    let mut centre = vec![0f32; dim];
    for v in &known {
        for (c, x) in centre.iter_mut().zip(v.iter()) {
            *c += x / known.len() as f32;
        }
    }
    centre
}

/// GenePT-s: the names of the cell's `top` most expressed genes among those its row
/// stores (its non-zeros), highest first (ties in matrix order), joined by spaces. Only
/// genes for which `eligible` is true and that have a name in `words` count. `None`
/// when there is no such gene.
pub fn cell_sentence(
    row: &[(u32, f32)],
    words: &[Option<String>],
    top: usize,
    eligible: impl Fn(u32) -> bool,
) -> Option<String> {
    let mut genes: Vec<(u32, f32)> = row
        .iter()
        .filter(|(g, _)| eligible(*g) && words[*g as usize].is_some())
        .copied()
        .collect();
    genes.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let names: Vec<&str> = genes
        .iter()
        .take(top)
        .filter_map(|(g, _)| words[*g as usize].as_deref())
        .collect();
    (!names.is_empty()).then(|| names.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_vectors_follow_expression_and_skip_unknown_genes() {
        let a = [1.0f32, 0.0];
        let b = [0.0f32, 1.0];
        let genes = [Some(&a[..]), Some(&b[..]), None];
        // 3 x a + 1 x b, gene 2 unknown.
        let v = weighted_vector(&[(0, 3.0), (1, 1.0), (2, 9.0)], &genes, &[0.0, 0.0], |_| {
            true
        })
        .unwrap();
        let n = 10f32.sqrt();
        assert!((v[0] - 3.0 / n).abs() < 1e-6 && (v[1] - 1.0 / n).abs() < 1e-6);
        assert!(weighted_vector(&[(2, 5.0)], &genes, &[0.0, 0.0], |_| true).is_none());
        assert!(weighted_vector(&[(0, 1.0)], &genes, &[0.0, 0.0], |g| g != 0).is_none());
        assert_eq!(mean_vector(&genes, 2), vec![0.5, 0.5]);
    }

    #[test]
    fn sentences_name_the_top_genes_in_order() {
        let words: Vec<Option<String>> = ["CD3E", "LYZ", "", "MS4A1"]
            .iter()
            .map(|s| (!s.is_empty()).then(|| s.to_string()))
            .collect();
        let row = [(0, 1.0), (1, 5.0), (2, 9.0), (3, 1.0)];
        assert_eq!(
            cell_sentence(&row, &words, 2, |_| true).as_deref(),
            Some("LYZ CD3E")
        );
        assert_eq!(
            cell_sentence(&row, &words, 10, |_| true).as_deref(),
            Some("LYZ CD3E MS4A1")
        );
        assert_eq!(cell_sentence(&[(2, 1.0)], &words, 5, |_| true), None);
        assert_eq!(
            cell_sentence(&row, &words, 5, |g| g != 1).as_deref(),
            Some("CD3E MS4A1")
        );
    }
}
