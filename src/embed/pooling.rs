//! Sentence-transformers' pooling of token vectors into one vector per text (mean, CLS,
//! max, last token), then L2 normalisation.

use candle_core::{DType, Result, Tensor, D};

/// How the token vectors of a text become one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The mean of the real (unmasked) tokens.
    Mean,
    /// The first token (`[CLS]` / `<s>`).
    Cls,
    /// The element-wise maximum over the real tokens.
    Max,
    /// The last real token (decoder-style embedding models).
    LastToken,
}

impl Pooling {
    /// The mode by its sentence-transformers 6 name (`mean`, `cls`, `max`, `lasttoken`).
    pub fn from_mode(mode: &str) -> Option<Self> {
        match mode {
            "mean" => Some(Pooling::Mean),
            "cls" => Some(Pooling::Cls),
            "max" => Some(Pooling::Max),
            "lasttoken" => Some(Pooling::LastToken),
            _ => None,
        }
    }

    /// The mode by its sentence-transformers 2-5 flag (`pooling_mode_mean_tokens`, ...).
    pub fn from_flag(flag: &str) -> Option<Self> {
        match flag {
            "pooling_mode_mean_tokens" => Some(Pooling::Mean),
            "pooling_mode_cls_token" => Some(Pooling::Cls),
            "pooling_mode_max_tokens" => Some(Pooling::Max),
            "pooling_mode_lasttoken" => Some(Pooling::LastToken),
            _ => None,
        }
    }

    /// The sentence-transformers 6 name, recorded in store manifests.
    pub fn mode(self) -> &'static str {
        match self {
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
            Pooling::Max => "max",
            Pooling::LastToken => "lasttoken",
        }
    }

    /// Pools `hidden` (`batch x tokens x dim`) of right-padded texts whose `mask`
    /// (`batch x tokens`) is 1 for real tokens.
    pub fn pool(self, hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
        match self {
            Pooling::Mean => masked_mean_pool(hidden, mask),
            Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1),
            Pooling::Max => masked_max_pool(hidden, mask),
            Pooling::LastToken => last_token_pool(hidden, mask),
        }
    }
}

/// Maximum over the real tokens; padding is pushed to the most negative float first,
/// as sentence-transformers does (its -inf or -1e9 loses to any real value alike).
fn masked_max_pool(hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let mask = mask.to_dtype(hidden.dtype())?.unsqueeze(D::Minus1)?;
    let penalty = ((mask.ones_like()? - &mask)? * f64::from(f32::MIN))?;
    hidden.broadcast_mul(&mask)?.broadcast_add(&penalty)?.max(1)
}

/// The last real token of each right-padded text (an empty mask takes the first).
fn last_token_pool(hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let lengths: Vec<u32> = mask.to_dtype(DType::U32)?.sum(1)?.to_vec1()?;
    let rows = lengths
        .iter()
        .enumerate()
        .map(|(row, &n)| hidden.get(row)?.get(n.saturating_sub(1) as usize))
        .collect::<Result<Vec<_>>>()?;
    Tensor::stack(&rows, 0)
}

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

    #[test]
    fn each_mode_pools_only_real_tokens() {
        let dev = Device::Cpu;
        let hidden = Tensor::new(
            &[
                [[1f32, -2.], [3., -4.], [100., 100.]],
                [[5., 6.], [-7., 8.], [9., -10.]],
            ],
            &dev,
        )
        .unwrap();
        let mask = Tensor::new(&[[1u32, 1, 0], [1, 1, 1]], &dev).unwrap();
        let pooled =
            |p: Pooling| -> Vec<Vec<f32>> { p.pool(&hidden, &mask).unwrap().to_vec2().unwrap() };
        assert_eq!(pooled(Pooling::Cls), vec![vec![1., -2.], vec![5., 6.]]);
        assert_eq!(pooled(Pooling::Max), vec![vec![3., -2.], vec![9., 8.]]);
        assert_eq!(
            pooled(Pooling::LastToken),
            vec![vec![3., -4.], vec![9., -10.]]
        );
        for p in [
            Pooling::Mean,
            Pooling::Cls,
            Pooling::Max,
            Pooling::LastToken,
        ] {
            assert_eq!(Pooling::from_mode(p.mode()), Some(p));
        }
    }
}
