//! The distance used by the index: 1 - dot product, for unit vectors (their cosine distance).

use hnsw_rs::prelude::Distance;

/// Dot product of two equal-length slices. It is most of the index's time (42% of an
/// HNSW build over 100k vectors, measured with perf), so on x86-64 CPUs with AVX2 and
/// FMA (checked once, at run time) it runs as fused multiply-adds on 256-bit registers;
/// elsewhere the portable loop, which compilers vectorise for the baseline target.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    if crate::simd::has_avx2_fma() {
        // SAFETY: the CPU supports both features, checked just above.
        return unsafe { dot_avx2_fma(a, b) };
    }
    dot_lanes::<false>(a, b)
}

/// [`dot_lanes`] compiled for AVX2 and FMA, where `mul_add` becomes one instruction.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2_fma(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes::<true>(a, b)
}

/// 32 independent accumulators (four 256-bit registers), so that the loop is not held
/// up by the latency of each add. `FUSED` uses `mul_add`, one instruction where FMA is
/// enabled (and a slow library call where it is not, hence the plain product there).
#[inline(always)]
fn dot_lanes<const FUSED: bool>(a: &[f32], b: &[f32]) -> f32 {
    let madd = |x: f32, y: f32, acc: f32| {
        if FUSED {
            x.mul_add(y, acc)
        } else {
            acc + x * y
        }
    };
    const LANES: usize = 32;
    let mut acc = [0f32; LANES];
    let chunks_a = a.chunks_exact(LANES);
    let chunks_b = b.chunks_exact(LANES);
    let (tail_a, tail_b) = (chunks_a.remainder(), chunks_b.remainder());
    for (ca, cb) in chunks_a.zip(chunks_b) {
        for i in 0..LANES {
            acc[i] = madd(ca[i], cb[i], acc[i]);
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in tail_a.iter().zip(tail_b) {
        sum = madd(*x, *y, sum);
    }
    sum
}

/// Cosine distance of unit vectors, `1 - a.b`, floored at 0.
///
/// hnsw_rs's own `DistDot` asserts the result is non-negative, which rounding can
/// break for (nearly) identical unit vectors; this one clamps instead.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnitDot;

impl Distance<f32> for UnitDot {
    fn eval(&self, va: &[f32], vb: &[f32]) -> f32 {
        (1.0 - dot(va, vb)).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_naive_sum() {
        let a: Vec<f32> = (0..37).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..37).map(|i| (i as f32 * 0.11).cos()).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-5);
        assert!((dot_lanes::<false>(&a, &b) - naive).abs() < 1e-5);
        let long: Vec<f32> = (0..384).map(|i| (i as f32 * 0.05).sin()).collect();
        let naive: f32 = long.iter().map(|x| x * x).sum();
        assert!((dot(&long, &long) - naive).abs() < 1e-3);
        assert_eq!(UnitDot.eval(&[1.0, 0.0], &[1.0, 0.0]), 0.0);
    }
}
