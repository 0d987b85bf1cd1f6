//! Sentence-transformers' pooling: masked mean over tokens, then L2 normalisation.

use candle_core::{DType, Result, Tensor, D};

/// Mean of `hidden` (`batch x tokens x dim`) over the tokens whose `mask`
/// (`batch x tokens`, 1 for real tokens, 0 for padding) is set.
pub fn masked_mean_pool(hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let mask = mask.to_dtype(hidden.dtype())?.unsqueeze(D::Minus1)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    // Same floor as sentence-transformers (torch.clamp(min=1e-9)).
    let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
    summed.broadcast_div(&counts)
}

/// Divides each row by its L2 norm (floored at 1e-12, as torch's `normalize` does).
pub fn l2_normalize_rows(x: &Tensor) -> Result<Tensor> {
    let norms = x
        .to_dtype(DType::F32)?
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-12, f64::MAX)?
        .to_dtype(x.dtype())?;
    x.broadcast_div(&norms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn padding_does_not_move_the_mean() {
        let dev = Device::Cpu;
        let hidden = Tensor::new(
            &[
                [[1f32, 2.], [3., 4.], [100., 100.]],
                [[5., 6.], [7., 8.], [9., 10.]],
            ],
            &dev,
        )
        .unwrap();
        let mask = Tensor::new(&[[1u32, 1, 0], [1, 1, 1]], &dev).unwrap();
        let pooled = masked_mean_pool(&hidden, &mask).unwrap();
        let v: Vec<Vec<f32>> = pooled.to_vec2().unwrap();
        assert_eq!(v, vec![vec![2., 3.], vec![7., 8.]]);
        let unit: Vec<Vec<f32>> = l2_normalize_rows(&pooled).unwrap().to_vec2().unwrap();
        let norm: f32 = unit[0].iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-6);
    }
}
