//! The probes: standardised features, then L2-regularised logistic regression
//! (linfa-logistic, L-BFGS) fitted on training rows and scored on test rows, or ridge
//! regression (closed form, Cholesky) for numeric targets.

use crate::error::{Error, Result};
use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2, Axis};

/// Logistic-regression probe settings (features are standardised first).
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeSpec {
    /// L2 penalty.
    #[serde(default = "super::defaults::default_alpha")]
    pub alpha: f64,
    /// L-BFGS iterations at most.
    #[serde(default = "default_iterations")]
    pub max_iterations: u64,
}

impl Default for ProbeSpec {
    fn default() -> Self {
        ProbeSpec {
            alpha: super::defaults::default_alpha(),
            max_iterations: default_iterations(),
        }
    }
}

fn default_iterations() -> u64 {
    100
}

/// Column means and standard deviations of the training rows.
pub struct Standardizer {
    mean: Array1<f64>,
    scale: Array1<f64>,
}

impl Standardizer {
    /// Learns the columns' centre and spread (constant columns keep scale 1).
    pub fn fit(x: &Array2<f64>) -> Self {
        let mean = x
            .mean_axis(Axis(0))
            .unwrap_or_else(|| Array1::zeros(x.ncols()));
        let scale = x
            .std_axis(Axis(0), 0.0)
            .mapv(|s| if s > 1e-12 { s } else { 1.0 });
        Standardizer { mean, scale }
    }

    /// Applies it.
    pub fn transform(&self, x: &Array2<f64>) -> Array2<f64> {
        (x - &self.mean) / &self.scale
    }
}

/// Fits on (train_x, train_y) and returns P(positive) for each test row.
pub fn logistic_scores(
    spec: &ProbeSpec,
    train_x: &Array2<f64>,
    train_y: &[bool],
    test_x: &Array2<f64>,
) -> Result<Vec<f64>> {
    let positives = train_y.iter().filter(|&&y| y).count();
    if positives == 0 || positives == train_y.len() {
        return Err(Error::InvalidArgument(format!(
            "the training set has only one class ({} items, all {})",
            train_y.len(),
            if positives == 0 {
                "negative"
            } else {
                "positive"
            }
        )));
    }
    let scaler = Standardizer::fit(train_x);
    let dataset = Dataset::new(
        column_major(scaler.transform(train_x)),
        Array1::from(train_y.to_vec()),
    );
    let model = LogisticRegression::default()
        .alpha(spec.alpha)
        .max_iterations(spec.max_iterations)
        .fit(&dataset)
        .map_err(|e| Error::InvalidArgument(format!("logistic regression failed: {e}")))?;
    let p = model.predict_probabilities(&scaler.transform(test_x));
    // linfa calls the larger training class "positive"; turn that back into P(true).
    let true_is_pos = model.labels().pos.class;
    Ok(p.iter()
        .map(|&p| if true_is_pos { p } else { 1.0 - p })
        .collect())
}

/// The same matrix stored column by column. linfa-logistic's gradient is `xᵀ r`:
/// with `x` stored row by row, ndarray walks each column of `x` with a stride of a
/// whole row, which took three quarters of a fit's time (perf; a GGI probe with 5,000
/// pairs x 768 features ran 11 s against scikit-learn's 1 s). Stored column by column,
/// `xᵀ` has contiguous rows; `x w` goes through the matrix product, which packs either
/// layout.
fn column_major(x: Array2<f64>) -> Array2<f64> {
    x.reversed_axes()
        .as_standard_layout()
        .into_owned()
        .reversed_axes()
}

/// Ridge regression on standardised rows: fitted on the rows `train` of (x, y),
/// predictions for the rows `test` (one row per test item, one column per target).
pub(crate) fn ridge_fold(
    x: &Array2<f64>,
    y: &Array2<f64>,
    train: &[usize],
    test: &[usize],
    alpha: f64,
) -> Result<Array2<f64>> {
    let xt = x.select(Axis(0), train);
    let scaler = Standardizer::fit(&xt);
    let w = ridge(&scaler.transform(&xt), &y.select(Axis(0), train), alpha)?;
    Ok(ridge_predict(
        &w,
        &scaler.transform(&x.select(Axis(0), test)),
    ))
}

/// Ridge regression weights (with intercept as the last row) for every target column; the
/// penalty leaves the intercept alone.
fn ridge(x: &Array2<f64>, y: &Array2<f64>, alpha: f64) -> Result<Array2<f64>> {
    let x_mean = x
        .mean_axis(Axis(0))
        .unwrap_or_else(|| Array1::zeros(x.ncols()));
    let y_mean = y
        .mean_axis(Axis(0))
        .unwrap_or_else(|| Array1::zeros(y.ncols()));
    let xc = x - &x_mean;
    let yc = y - &y_mean;
    let mut a = xc.t().dot(&xc);
    for i in 0..a.nrows() {
        a[(i, i)] += alpha;
    }
    let b = xc.t().dot(&yc);
    let l = cholesky(&a)?;
    let w = cholesky_solve(&l, &b);
    let mut out = Array2::zeros((w.nrows() + 1, w.ncols()));
    out.slice_mut(ndarray::s![..w.nrows(), ..]).assign(&w);
    out.row_mut(w.nrows()).assign(&(&y_mean - &x_mean.dot(&w)));
    Ok(out)
}

/// Predictions of a ridge fit (weights with the intercept as the last row).
fn ridge_predict(w: &Array2<f64>, x: &Array2<f64>) -> Array2<f64> {
    let d = x.ncols();
    x.dot(&w.slice(ndarray::s![..d, ..])) + w.row(d)
}

/// Lower-triangular L with L Lᵀ = a (a symmetric positive definite).
fn cholesky(a: &Array2<f64>) -> Result<Array2<f64>> {
    let n = a.nrows();
    let mut l = Array2::<f64>::zeros((n, n));
    for i in 0..n {
        for j in 0..=i {
            let mut sum = a[(i, j)];
            for k in 0..j {
                sum -= l[(i, k)] * l[(j, k)];
            }
            if i == j {
                if sum <= 0.0 {
                    return Err(Error::InvalidArgument(
                        "the ridge system is not positive definite; raise `ridge`".into(),
                    ));
                }
                l[(i, i)] = sum.sqrt();
            } else {
                l[(i, j)] = sum / l[(j, j)];
            }
        }
    }
    Ok(l)
}

fn cholesky_solve(l: &Array2<f64>, b: &Array2<f64>) -> Array2<f64> {
    let n = l.nrows();
    let mut x = b.clone();
    for c in 0..b.ncols() {
        for i in 0..n {
            let mut s = x[(i, c)];
            for k in 0..i {
                s -= l[(i, k)] * x[(k, c)];
            }
            x[(i, c)] = s / l[(i, i)];
        }
        for i in (0..n).rev() {
            let mut s = x[(i, c)];
            for k in i + 1..n {
                s -= l[(k, i)] * x[(k, c)];
            }
            x[(i, c)] = s / l[(i, i)];
        }
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_are_the_probability_of_true_whichever_class_is_larger() {
        let x = Array2::from_shape_vec((6, 1), vec![0.0, 1.0, 2.0, 3.0, 10.0, 11.0]).unwrap();
        let spec = ProbeSpec::default();
        for (y, high_is_true) in [
            (vec![false, false, false, false, true, true], true),
            (vec![true, true, true, true, false, false], false),
        ] {
            let s = logistic_scores(&spec, &x, &y, &x).unwrap();
            assert_eq!(s[5] > s[0], high_is_true, "{s:?}");
        }
    }

    #[test]
    fn ridge_recovers_a_linear_map() {
        let x = Array2::from_shape_fn((50, 3), |(i, j)| ((i * 7 + j * 3) % 11) as f64 - 5.0);
        let y = Array2::from_shape_fn((50, 1), |(i, _)| 2.0 * x[(i, 0)] - x[(i, 2)] + 4.0);
        let w = ridge(&x, &y, 1e-9).unwrap();
        let p = ridge_predict(&w, &x);
        assert!((&p - &y).iter().all(|e| e.abs() < 1e-6));
    }
}
