//! The evaluation metrics agree with scikit-learn (fixture written by
//! tests/fixtures/make_sklearn_metrics.py), to 1e-6.

mod common;

use bftembed::tasks::{accuracy, average_precision, macro_f1, roc_auc};

#[test]
fn metrics_match_scikit_learn() {
    let text = std::fs::read_to_string(common::fixture("sklearn_metrics.json")).unwrap();
    let fixture: serde_json::Value = serde_json::from_str(&text).unwrap();
    let as_f64 = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let as_i64 = |v: &serde_json::Value| -> Vec<i64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect()
    };
    let cases = fixture["binary"].as_array().unwrap();
    assert!(cases.len() >= 4);
    for case in cases {
        let labels: Vec<bool> = as_i64(&case["labels"]).iter().map(|&l| l == 1).collect();
        let scores = as_f64(&case["scores"]);
        let predicted: Vec<bool> = as_i64(&case["predicted"]).iter().map(|&l| l == 1).collect();
        let close = |ours: f64, key: &str| {
            let theirs = case[key].as_f64().unwrap();
            assert!(
                (ours - theirs).abs() < 1e-6,
                "{key}: {ours} vs scikit-learn {theirs}"
            );
        };
        close(roc_auc(&labels, &scores).unwrap(), "roc_auc");
        close(
            average_precision(&labels, &scores).unwrap(),
            "average_precision",
        );
        close(accuracy(&labels, &predicted).unwrap(), "accuracy");
        close(macro_f1(&labels, &predicted).unwrap(), "macro_f1");
    }
    let multi = &fixture["multiclass"];
    let truth = as_i64(&multi["labels"]);
    let predicted = as_i64(&multi["predicted"]);
    assert!(
        (accuracy(&truth, &predicted).unwrap() - multi["accuracy"].as_f64().unwrap()).abs() < 1e-6
    );
    assert!(
        (macro_f1(&truth, &predicted).unwrap() - multi["macro_f1"].as_f64().unwrap()).abs() < 1e-6
    );
}

#[test]
fn a_single_class_is_an_error_not_nan() {
    let err = roc_auc(&[true, true, true], &[0.1, 0.5, 0.9])
        .unwrap_err()
        .to_string();
    assert!(err.contains("both classes"), "{err}");
    assert!(average_precision(&[false, false], &[0.1, 0.2]).is_err());
}
