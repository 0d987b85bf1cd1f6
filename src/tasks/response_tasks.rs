//! Stimulus response from gene vectors: for every gene, its pseudo-bulk expression
//! change (treated minus control) in each cell type is predicted by ridge regression
//! on the gene's vector, trained on the other folds of genes. Scored by the Pearson
//! correlation of predicted and measured change over held-out genes, averaged over
//! cell types.

use super::gene_tasks::{task_error, TaskScore};
use super::outcomes::{ItemOutcomes, OutcomeKind};
use super::probe::Standardizer;
use super::resample::{bootstrap_interval, shuffle};
use super::spec::{ExpressionResponseSpec, TaskSpec};
use super::vectors::{GeneVectors, SymbolMapper};
use crate::error::{Error, Result};
use ndarray::{Array1, Array2, Axis};
use std::collections::HashMap;

/// Genes with their response per cell type.
pub(super) struct ResponseTable {
    pub(super) genes: Vec<String>,
    cell_types: Vec<String>,
    /// genes × cell types.
    response: Array2<f64>,
    total_genes: usize,
}

/// Cells per `<cell type>|<condition>` column: a header line, then name, tab, count.
fn read_sizes(path: &std::path::Path) -> Result<HashMap<String, usize>> {
    let mut sizes = HashMap::new();
    for (i, line) in crate::fsutil::read_utf8_lines(path)?
        .iter()
        .enumerate()
        .skip(1)
    {
        if line.trim().is_empty() {
            continue;
        }
        let parsed = line
            .split_once('\t')
            .and_then(|(k, v)| Some((k.to_string(), v.trim().parse::<usize>().ok()?)));
        let Some((name, count)) = parsed else {
            return Err(Error::Parse {
                path: path.to_path_buf(),
                line: i + 1,
                message: format!("expected '<cell type>|<condition><TAB>cells', found '{line}'"),
            });
        };
        sizes.insert(name, count);
    }
    if sizes.is_empty() {
        // An empty table would keep every cell type, whatever min_cells says.
        return Err(Error::bad_file(path, "no group sizes in the file"));
    }
    Ok(sizes)
}

pub(super) fn read_response(
    spec: &TaskSpec,
    r: &ExpressionResponseSpec,
    mapper: &mut SymbolMapper,
) -> Result<ResponseTable> {
    let path = spec.data_path(&r.table);
    let lines = crate::fsutil::read_utf8_lines(&path)?;
    let header: Vec<&str> = lines
        .first()
        .ok_or_else(|| Error::bad_file(&path, "the table is empty"))?
        .split('\t')
        .collect();
    let sizes: HashMap<String, usize> = match &r.sizes {
        Some(s) => read_sizes(&spec.data_path(s))?,
        None => HashMap::new(),
    };
    // Cell types with both conditions (and enough cells).
    let mut types: Vec<(String, usize, usize)> = Vec::new();
    for (i, name) in header.iter().enumerate().skip(1) {
        let Some((cell_type, condition)) = name.rsplit_once('|') else {
            return Err(Error::bad_file(
                &path,
                format!("column '{name}' is not '<cell type>|<condition>'"),
            ));
        };
        if condition != r.control {
            continue;
        }
        let treated = format!("{cell_type}|{}", r.treated);
        let Some(j) = header.iter().position(|h| *h == treated) else {
            continue;
        };
        let enough =
            |col: &str| sizes.is_empty() || sizes.get(col).copied().unwrap_or(0) >= r.min_cells;
        if enough(name) && enough(&treated) {
            types.push((cell_type.to_string(), i, j));
        }
    }
    if types.is_empty() {
        return Err(Error::bad_file(
            &path,
            format!(
                "no cell type has both '{}' and '{}' columns with {} cells",
                r.control, r.treated, r.min_cells
            ),
        ));
    }
    let mut genes = Vec::new();
    let mut rows = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    for (n, line) in lines.iter().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() != header.len() {
            return Err(Error::Parse {
                path: path.clone(),
                line: n + 1,
                message: format!("{} fields, the header has {}", fields.len(), header.len()),
            });
        }
        let value = |i: usize| -> Result<f64> {
            let v: f64 = fields[i].trim().parse().unwrap_or(f64::NAN);
            if !v.is_finite() {
                return Err(Error::Parse {
                    path: path.clone(),
                    line: n + 1,
                    message: format!("'{}' is not a finite number", fields[i]),
                });
            }
            Ok(v)
        };
        let mut max_expr = 0f64;
        let mut response = Vec::with_capacity(types.len());
        for (_, c, t) in &types {
            let (c, t) = (value(*c)?, value(*t)?);
            max_expr = max_expr.max(c).max(t);
            response.push(t - c);
        }
        if max_expr < r.min_expression {
            continue;
        }
        total += 1;
        if let Some(symbol) = mapper.approved(fields[0].trim()) {
            if seen.insert(symbol.clone()) {
                genes.push(symbol);
                rows.extend(response);
            }
        }
    }
    let response = Array2::from_shape_vec((genes.len(), types.len()), rows)
        .map_err(|e| Error::bad_file(&path, e.to_string()))?;
    Ok(ResponseTable {
        genes,
        cell_types: types.into_iter().map(|t| t.0).collect(),
        response,
        total_genes: total,
    })
}

/// Runs a response task for every set of vectors.
pub fn run_expression_response(
    spec: &TaskSpec,
    r: &ExpressionResponseSpec,
    stores: &[&GeneVectors],
    mapper: &mut SymbolMapper,
) -> Result<Vec<TaskScore>> {
    let table = read_response(spec, r, mapper)?;
    let mut out = Vec::new();
    for vectors in stores {
        let covered: Vec<usize> = (0..table.genes.len())
            .filter(|&i| vectors.get(&table.genes[i]).is_some())
            .collect();
        if covered.len() < 2 * r.folds {
            return Err(task_error(
                spec,
                vectors,
                Error::InvalidArgument(format!("only {} genes are covered", covered.len())),
            ));
        }
        let d = vectors.dim();
        let mut x = Array2::<f64>::zeros((covered.len(), d));
        for (row, &g) in covered.iter().enumerate() {
            if let Some(v) = vectors.get(&table.genes[g]) {
                for j in 0..d {
                    x[(row, j)] = v[j] as f64;
                }
            }
        }
        let y = table.response.select(Axis(0), &covered);
        let mut order: Vec<usize> = (0..covered.len()).collect();
        shuffle(&mut order, r.seed);
        let mut predicted = Array2::<f64>::zeros(y.dim());
        let mut train_items = 0;
        for fold in 0..r.folds {
            let test: Vec<usize> = order
                .iter()
                .enumerate()
                .filter(|(n, _)| n % r.folds == fold)
                .map(|(_, &i)| i)
                .collect();
            let train: Vec<usize> = order
                .iter()
                .enumerate()
                .filter(|(n, _)| n % r.folds != fold)
                .map(|(_, &i)| i)
                .collect();
            train_items = train_items.max(train.len());
            let xt = x.select(Axis(0), &train);
            let scaler = Standardizer::fit(&xt);
            let w = ridge(&scaler.transform(&xt), &y.select(Axis(0), &train), r.ridge)
                .map_err(|e| task_error(spec, vectors, e))?;
            let p = predict(&w, &scaler.transform(&x.select(Axis(0), &test)));
            for (row, &i) in test.iter().enumerate() {
                predicted.row_mut(i).assign(&p.row(row));
            }
        }
        let mean_r = |idx: &[usize]| -> f64 {
            let rs: Vec<f64> = (0..table.cell_types.len())
                .map(|t| {
                    let a: Vec<f64> = idx.iter().map(|&i| predicted[(i, t)]).collect();
                    let b: Vec<f64> = idx.iter().map(|&i| y[(i, t)]).collect();
                    pearson(&a, &b)
                })
                .collect();
            rs.iter().sum::<f64>() / rs.len() as f64
        };
        let all: Vec<usize> = (0..covered.len()).collect();
        let value = mean_r(&all);
        let interval = bootstrap_interval(all.len(), r.seed ^ 0x7e5, |idx| Some(mean_r(idx)));
        let mut other = vec![("cell types".to_string(), table.cell_types.len() as f64)];
        for (t, name) in table.cell_types.iter().enumerate() {
            let a: Vec<f64> = all.iter().map(|&i| predicted[(i, t)]).collect();
            let b: Vec<f64> = all.iter().map(|&i| y[(i, t)]).collect();
            other.push((format!("r {name}"), pearson(&a, &b)));
        }
        out.push(TaskScore {
            store: vectors.name.clone(),
            items_total: table.total_genes,
            items_covered: covered.len(),
            own_items_covered: table.genes.iter().filter(|g| vectors.covers(g)).count(),
            train_items,
            test_items: covered.len(),
            metric: "mean Pearson r".into(),
            value,
            interval,
            interval_method: "bootstrap of genes, 200 resamples".into(),
            other_metrics: other,
            roc: Vec::new(),
            confusion: None,
            map: None,
            outcomes: Some(ItemOutcomes {
                ids: covered.iter().map(|&g| table.genes[g].clone()).collect(),
                kind: OutcomeKind::Columns {
                    truth: y.rows().into_iter().map(|r| r.to_vec()).collect(),
                    predicted: predicted.rows().into_iter().map(|r| r.to_vec()).collect(),
                },
            }),
        });
    }
    Ok(out)
}

/// Ridge weights (with intercept as the last row) for every target column; the
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

fn predict(w: &Array2<f64>, x: &Array2<f64>) -> Array2<f64> {
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

/// Pearson correlation; 0 when either side is constant.
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    if saa == 0.0 || sbb == 0.0 {
        0.0
    } else {
        sab / (saa * sbb).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ridge_recovers_a_linear_map() {
        let x = Array2::from_shape_fn((50, 3), |(i, j)| ((i * 7 + j * 3) % 11) as f64 - 5.0);
        let y = Array2::from_shape_fn((50, 1), |(i, _)| 2.0 * x[(i, 0)] - x[(i, 2)] + 4.0);
        let w = ridge(&x, &y, 1e-9).unwrap();
        let p = predict(&w, &x);
        assert!((&p - &y).iter().all(|e| e.abs() < 1e-6));
        assert!((pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.5]) - 0.9986).abs() < 1e-3);
    }
}
