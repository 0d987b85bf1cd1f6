//! The probe: standardised features, then L2-regularised logistic regression
//! (linfa-logistic, L-BFGS), fitted on training rows and scored on test rows.

use super::spec::ProbeSpec;
use crate::error::{Error, Result};
use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2, Axis};

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
    let dataset = Dataset::new(scaler.transform(train_x), Array1::from(train_y.to_vec()));
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
}
