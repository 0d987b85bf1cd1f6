//! Seeded tensors and their distance, shared by the unit tests of the fused ops.

use candle_core::{DType, Device, Tensor, Var};

/// A seeded tensor of `dims` with values in [-2, 2).
pub(crate) fn random(dims: &[usize], seed: u64, dtype: DType) -> Tensor {
    let n: usize = dims.iter().product();
    let mut rng = crate::rng::SplitMix64::new(seed);
    let values: Vec<f64> = (0..n).map(|_| rng.next_f64() * 4.0 - 2.0).collect();
    Tensor::from_vec(values, dims, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

/// [`random`] as a variable.
pub(crate) fn random_var(dims: &[usize], seed: u64, dtype: DType) -> Var {
    Var::from_tensor(&random(dims, seed, dtype)).unwrap()
}

/// The largest absolute difference between two tensors of one shape.
pub(crate) fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}
