//! Two-dimensional PCA maps of embedded items, for the report's scatter plots.

/// Items placed on their first two principal components, with their class.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ItemMap {
    /// (PC1, PC2) per item.
    pub points: Vec<(f32, f32)>,
    /// Class index per item.
    pub labels: Vec<usize>,
    /// Class names.
    pub classes: Vec<String>,
    /// What the points are ("cells", "genes").
    pub items: String,
}

impl ItemMap {
    /// Places `rows` (one vector per item, in the order of `labels`) on their first two
    /// principal components.
    pub fn project(rows: &[&[f32]], labels: Vec<usize>, classes: Vec<String>, items: &str) -> Self {
        ItemMap {
            points: pca_2d(rows),
            labels,
            classes,
            items: items.to_string(),
        }
    }
}

/// Projects rows onto their first two principal components (power iteration with
/// deflation on the centred data; deterministic start).
pub fn pca_2d(rows: &[&[f32]]) -> Vec<(f32, f32)> {
    let Some(d) = rows.first().map(|r| r.len()) else {
        return Vec::new();
    };
    let n = rows.len() as f64;
    let mut mean = vec![0f64; d];
    for r in rows {
        for (m, x) in mean.iter_mut().zip(r.iter()) {
            *m += *x as f64 / n;
        }
    }
    let centred: Vec<Vec<f64>> = rows
        .iter()
        .map(|r| r.iter().zip(&mean).map(|(x, m)| *x as f64 - m).collect())
        .collect();
    let mut components: Vec<Vec<f64>> = Vec::new();
    for c in 0..2 {
        let mut v: Vec<f64> = (0..d)
            .map(|j| 1.0 + ((j * 7 + c * 13) % 11) as f64 / 11.0)
            .collect();
        for _ in 0..100 {
            // v <- X^T (X v), minus what earlier components explain.
            let xv: Vec<f64> = centred.iter().map(|r| dot(r, &v)).collect();
            let mut next = vec![0f64; d];
            for (r, s) in centred.iter().zip(&xv) {
                for (a, x) in next.iter_mut().zip(r) {
                    *a += s * x;
                }
            }
            for u in &components {
                let p = dot(&next, u);
                for (a, b) in next.iter_mut().zip(u) {
                    *a -= p * b;
                }
            }
            let norm = dot(&next, &next).sqrt();
            if norm == 0.0 {
                break;
            }
            v = next.iter().map(|x| x / norm).collect();
        }
        components.push(v);
    }
    centred
        .iter()
        .map(|r| (dot(r, &components[0]) as f32, dot(r, &components[1]) as f32))
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_direction_of_largest_spread() {
        // Points along (1, 1, 0) with small noise on the third axis.
        let rows: Vec<Vec<f32>> = (0..50)
            .map(|i| {
                let t = i as f32 - 25.0;
                vec![t, t, if i % 2 == 0 { 0.1 } else { -0.1 }]
            })
            .collect();
        let refs: Vec<&[f32]> = rows.iter().map(|r| r.as_slice()).collect();
        let p = pca_2d(&refs);
        let spread1: f32 = p.iter().map(|(a, _)| a * a).sum();
        let spread2: f32 = p.iter().map(|(_, b)| b * b).sum();
        assert!(spread1 > 1000.0 * spread2, "{spread1} vs {spread2}");
    }
}
