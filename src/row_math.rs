//! Row kernels shared by the encoder, the decoder and the trainer: a vectorisable exp,
//! softmax in place, and log-sum-exp.
//!
//! They are `#[inline(always)]` so that a caller compiled for AVX2 (see
//! [`crate::simd::avx2_variant`]) gets AVX2 copies of them; libm's scalar `exp` does not
//! vectorise, and profiles of the encoder and of a training step put it at 5-10%.

/// Lanes of the row loops: eight floats fill one AVX2 register, and independent lanes
/// let the compiler vectorise the max and the sum (a single accumulator would have to
/// be added in order).
const LANES: usize = 8;

/// The largest value of a row (negative infinity for an empty row).
#[inline(always)]
pub(crate) fn row_max(row: &[f32]) -> f32 {
    let mut max = [f32::NEG_INFINITY; LANES];
    let chunks = row.chunks_exact(LANES);
    for v in chunks.remainder() {
        max[0] = if *v > max[0] { *v } else { max[0] };
    }
    for chunk in chunks {
        for i in 0..LANES {
            max[i] = if chunk[i] > max[i] { chunk[i] } else { max[i] };
        }
    }
    max.iter()
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m })
}

/// Softmax of a row, in place.
#[inline(always)]
pub(crate) fn softmax_row(row: &mut [f32]) {
    let max = row_max(row);
    let mut sum = [0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for chunk in &mut chunks {
        for i in 0..LANES {
            chunk[i] = exp_f32(chunk[i] - max);
            sum[i] += chunk[i];
        }
    }
    for v in chunks.into_remainder() {
        *v = exp_f32(*v - max);
        sum[0] += *v;
    }
    let inv = 1.0 / sum.iter().sum::<f32>();
    for v in row.iter_mut() {
        *v *= inv;
    }
}

/// ln Σ exp(x) over a row, the sum taken in f32 lanes relative to the row's maximum
/// (every term at most 1) and added up in f64.
#[inline(always)]
pub(crate) fn log_sum_exp(row: &[f32]) -> f64 {
    let max = row_max(row);
    let mut sum = [0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    for v in chunks.remainder() {
        sum[0] += exp_f32(*v - max);
    }
    for chunk in chunks {
        for i in 0..LANES {
            sum[i] += exp_f32(chunk[i] - max);
        }
    }
    let total: f64 = sum.iter().map(|&s| s as f64).sum();
    max as f64 + total.ln()
}

/// exp(x) for x <= 0 (softmax arguments), vectorisable: 2^n · p(r) with
/// r = x - n ln 2 in [-ln2/2, ln2/2] and Cephes' degree-6 polynomial (relative error
/// about 2e-7). Below -87 it returns exp(-87), about 1.6e-38: softmax's largest
/// argument is 0, so such terms are lost in the sum either way.
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5 * 2^23 rounds to the nearest integer in float arithmetic (no libm).
    const ROUND: f32 = 12_582_912.0;
    let x = if x > -87.0 { x } else { -87.0 };
    let shifted = x * LOG2E + ROUND;
    let n = shifted - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    // n sits in the low mantissa bits of `shifted`: 2^n is (n + 127) put in the
    // exponent field, in integer arithmetic that vectorises (a float-to-int cast would
    // not, with Rust's saturating semantics).
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let pow2 = f32::from_bits(n_bits.wrapping_add(127) << 23);
    e * pow2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_accurate_on_softmax_arguments() {
        let mut worst = 0f64;
        for i in 0..=870_000 {
            let x = -(i as f32) / 10_000.0;
            let exact = (x as f64).exp();
            let rel = ((exp_f32(x) as f64 - exact) / exact).abs();
            worst = worst.max(rel);
        }
        assert!(worst < 5e-7, "max relative error {worst}");
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(-1000.0).to_bits(), exp_f32(-87.0).to_bits());
    }

    #[test]
    fn log_sum_exp_and_softmax_match_f64() {
        // 49,157 values (not a multiple of the lanes), spread like a vocabulary's logits.
        let row: Vec<f32> = (0..49_157)
            .map(|i| ((i as f32 * 0.618).sin() * 9.0) + if i == 777 { 30.0 } else { 0.0 })
            .collect();
        let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let exact = max
            + row
                .iter()
                .map(|&x| (x as f64 - max).exp())
                .sum::<f64>()
                .ln();
        assert!((log_sum_exp(&row) - exact).abs() < 1e-6);
        let mut soft = row.clone();
        softmax_row(&mut soft);
        for (s, &x) in soft.iter().zip(&row) {
            let want = (x as f64 - exact).exp();
            assert!((*s as f64 - want).abs() < 1e-6 * want.max(1e-3));
        }
    }
}
