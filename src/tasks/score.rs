//! What one store scored on one task: the main metric with its interval, coverage,
//! further metrics and the per-item outcomes behind them.

/// What one store scored on one task.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskScore {
    /// The vectors' name.
    pub store: String,
    /// Items in the task file (pairs, genes or cells).
    pub items_total: usize,
    /// Items scored: those the store covers (every gene of a pair; a cell with any
    /// known gene), and with several stores those that every store covers.
    pub items_covered: usize,
    /// Items the store covers by itself, scored or not.
    pub own_items_covered: usize,
    /// Training items used.
    pub train_items: usize,
    /// Test items scored (all folds together for cross-validation).
    pub test_items: usize,
    /// The task's main metric ("ROC-AUC", "macro-F1", ...).
    pub metric: String,
    /// Its value.
    pub value: f64,
    /// Its 95% interval (bootstrap over test items) or fold range.
    pub interval: (f64, f64),
    /// How the interval was made.
    pub interval_method: String,
    /// Further metrics, by name.
    pub other_metrics: Vec<(String, f64)>,
    /// The ROC curve for binary tasks (at most about 200 points), else empty.
    pub roc: Vec<(f64, f64)>,
    /// Class names and counts (rows: truth, columns: prediction), for multi-class tasks.
    pub confusion: Option<(Vec<String>, Vec<Vec<usize>>)>,
    /// A 2-D PCA map of the items coloured by class (first store only).
    pub map: Option<super::pca::ItemMap>,
    /// The task's label sources that the store's profile texts carry: when not empty,
    /// the score is partly a reading test and not evidence of knowledge.
    pub label_text: Vec<String>,
    /// The per-item outcomes the main metric comes from (not written to report.json),
    /// for paired comparisons between stores.
    #[serde(skip)]
    pub outcomes: Option<super::outcomes::ItemOutcomes>,
}

impl TaskScore {
    /// A further metric by name.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.other_metrics
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }

    /// An empty score for `metric` on `test_items` items of `items_total`, filled in by
    /// the driver and the kind.
    pub(crate) fn new(metric: &str, items_total: usize, test_items: usize) -> Self {
        TaskScore {
            store: String::new(),
            items_total,
            items_covered: 0,
            own_items_covered: 0,
            train_items: 0,
            test_items,
            label_text: Vec::new(),
            metric: metric.to_string(),
            value: f64::NAN,
            interval: (f64::NAN, f64::NAN),
            interval_method: String::new(),
            other_metrics: Vec::new(),
            roc: Vec::new(),
            confusion: None,
            map: None,
            outcomes: None,
        }
    }
}
