//! An int8 matrix product for CPUs with AVX-512 VNNI: weights in 8-bit blocks of 32
//! (one f32 scale per block, as GGUF's Q8_0), activations quantized the same way per
//! row, and `vpdpbusd` computing four products per lane.
//!
//! Weights are tiled 16 output columns wide, so one 64-byte load feeds 16 columns × 4
//! inputs and is reused for every activation row of the batch: that reuse is what
//! makes batched decoding cheaper per token. candle's own Q8_0 product computes one
//! dot product at a time with AVX2 (and converts an f16 scale per block), which left
//! generation at about a third of llama.cpp's speed at batch 8.
//!
//! Every output element is computed by the same instruction sequence whatever the
//! batch, so results do not depend on which rows share a call.
//!
//! CPUs with AVX2 but no VNNI (the AMD EPYC Zen 3 some sessions get) run the same
//! arithmetic on 256-bit registers: `vpmaddubsw` of |activation| and the weight with
//! the activation's sign (products of two values in -127..=127, so the pairwise i16
//! sums cannot saturate), then `vpmaddwd` into i32. The integer dot products are exact
//! either way and the float steps are the same, so both paths give the reference's
//! numbers bit for bit (tested). Without it, AVX2 machines went through candle's Q8_0
//! product at 0.36-0.46x llama.cpp's speed (benches/side_by_side.py, 2026-12-07).

use super::weights::GgufPrecision;
use candle_core::{CpuStorage, CustomOp1, Device, Layout, Shape};

/// Values per quantization block.
const BLOCK: usize = 32;
/// Output columns per weight tile (one AVX-512 register of f32).
const TILE: usize = 16;
/// Bytes of one tile's block: 16 columns × 32 values.
const TILE_BLOCK_BYTES: usize = TILE * BLOCK;
/// Activation rows processed together against one weight load.
const ROW_GROUP: usize = 4;

/// A weight matrix (n outputs × k inputs) in tiled 8-bit blocks.
pub struct Q8Matrix {
    n: usize,
    k: usize,
    /// [tile][block][group of 4 inputs][column][4 bytes], each byte `q + 128`.
    qs: Vec<u8>,
    /// [tile][block][column] scales.
    scales: Vec<f32>,
}

/// Which form of the kernel this CPU runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// AVX-512 with VNNI: 16 columns per register, `vpdpbusd`.
    Vnni,
    /// AVX2: two halves of 8 columns, `vpmaddubsw` + `vpmaddwd`.
    Avx2,
}

fn form() -> Option<Form> {
    #[cfg(target_arch = "x86_64")]
    {
        static DETECTED: std::sync::OnceLock<Option<Form>> = std::sync::OnceLock::new();
        *DETECTED.get_or_init(|| {
            if std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512vnni")
            {
                Some(Form::Vnni)
            } else if crate::simd::has_avx2_fma() {
                Some(Form::Avx2)
            } else {
                None
            }
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// Whether this CPU can run the kernel (AVX-512 VNNI, or AVX2 with FMA).
pub fn supported() -> bool {
    form().is_some()
}

/// The matrix-product path a decoder loaded at `precision` on `device` generates with:
/// `"int8-vnni"` or `"int8-avx2"` (this module's kernel: [`GgufPrecision::Q8`] on a CPU
/// with AVX-512 VNNI, or with AVX2 and FMA), else candle's products, `"generic-cpu"`,
/// `"generic-cuda"` or `"generic-metal"`. The paths round differently, so greedy text can differ between
/// them; caches of generated text carry this name in their keys.
pub fn generation_kernel(device: &Device, precision: GgufPrecision) -> &'static str {
    if runs_int8_kernel(device, precision) {
        // Both forms give the same numbers; the names differ so that a cache records
        // which one ran.
        match form() {
            Some(Form::Vnni) => "int8-vnni",
            _ => "int8-avx2",
        }
    } else if device.is_cuda() {
        "generic-cuda"
    } else if device.is_metal() {
        "generic-metal"
    } else {
        "generic-cpu"
    }
}

/// Whether the matrices of a model loaded at `precision` on `device` go to the int8
/// kernel (those whose shape tiles; see [`Q8Matrix::from_f32`]).
pub(super) fn runs_int8_kernel(device: &Device, precision: GgufPrecision) -> bool {
    precision == GgufPrecision::Q8 && device.is_cpu() && supported()
}

/// Symmetric 8-bit quantization of one block: (scale, values in -127..=127).
fn quantize_block(values: &[f32], out: &mut [i8]) -> f32 {
    let amax = values.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
    for (o, v) in out.iter_mut().zip(values) {
        *o = (v * inv).round().clamp(-127.0, 127.0) as i8;
    }
    d
}

impl Q8Matrix {
    /// Quantizes a row-major (n, k) f32 matrix; `None` when this CPU cannot run the
    /// kernel (AVX-512 VNNI, as `supported` checks) or the shape does not tile (n must be a multiple of 16
    /// and k of 32). A `Q8Matrix` therefore only exists where [`matmul`](Self::matmul)
    /// can run.
    pub fn from_f32(w: &[f32], n: usize, k: usize) -> Option<Self> {
        if !supported()
            || n == 0
            || k == 0
            || !n.is_multiple_of(TILE)
            || !k.is_multiple_of(BLOCK)
            || w.len() != n * k
        {
            return None;
        }
        let blocks = k / BLOCK;
        let tiles = n / TILE;
        let mut qs = vec![0u8; tiles * blocks * TILE_BLOCK_BYTES];
        let mut scales = vec![0f32; tiles * blocks * TILE];
        let mut q = [0i8; BLOCK];
        for col in 0..n {
            let (tile, c) = (col / TILE, col % TILE);
            for b in 0..blocks {
                let d = quantize_block(&w[col * k + b * BLOCK..col * k + (b + 1) * BLOCK], &mut q);
                scales[(tile * blocks + b) * TILE + c] = d;
                let base = (tile * blocks + b) * TILE_BLOCK_BYTES;
                for (j, &v) in q.iter().enumerate() {
                    let (group, byte) = (j / 4, j % 4);
                    qs[base + group * TILE * 4 + c * 4 + byte] = (v as i16 + 128) as u8;
                }
            }
        }
        Some(Q8Matrix { n, k, qs, scales })
    }

    /// Output columns.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Input width.
    pub fn k(&self) -> usize {
        self.k
    }

    /// (m, k) row-major activations times the transposed weights: (m, n) row-major.
    /// Safe on any CPU that built the matrix: [`from_f32`](Self::from_f32) refuses the
    /// others.
    pub fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        match form() {
            Some(form) => self.matmul_in(form, x, m),
            None => unreachable!("a Q8Matrix is only built where the kernel runs"),
        }
    }

    /// [`matmul`](Self::matmul) in a given form (the CPU must have it).
    fn matmul_in(&self, form: Form, x: &[f32], m: usize) -> Vec<f32> {
        let acts = QuantizedRows::new(x, m, self.k);
        let mut out = vec![0f32; m * self.n];
        let tiles = self.n / TILE;
        let out_ptr = SendPtr(out.as_mut_ptr());
        // candle's own worker pool: the threads that run its other CPU ops, so the two
        // never compete for the cores.
        candle_core::utils::barrier_pool().execute_chunked(tiles, |range| {
            let out_ptr = &out_ptr;
            for tile in range {
                let mut row = 0;
                while row < m {
                    let rows = (m - row).min(ROW_GROUP);
                    // SAFETY: a Q8Matrix exists only where `form()` is some (checked by
                    // `from_f32`); each (row, tile) output range is written by exactly
                    // one task.
                    unsafe { self.tile(form, &acts, tile, row, rows, out_ptr.0) }
                    row += rows;
                }
            }
        });
        out
    }

    /// Rows `row0..row0 + rows` (at most [`ROW_GROUP`]) of one tile, in this CPU's form.
    ///
    /// # Safety
    /// The CPU must have `form`, and `out` must hold the (m, n) output.
    unsafe fn tile(
        &self,
        form: Form,
        acts: &QuantizedRows,
        tile: usize,
        row0: usize,
        rows: usize,
        out: *mut f32,
    ) {
        #[cfg(target_arch = "x86_64")]
        match (form, rows) {
            (Form::Vnni, 4) => self.tile_rows::<4>(acts, tile, row0, out),
            (Form::Vnni, 3) => self.tile_rows::<3>(acts, tile, row0, out),
            (Form::Vnni, 2) => self.tile_rows::<2>(acts, tile, row0, out),
            (Form::Vnni, _) => self.tile_rows::<1>(acts, tile, row0, out),
            (Form::Avx2, 4) => self.tile_rows_avx2::<4>(acts, tile, row0, out),
            (Form::Avx2, 3) => self.tile_rows_avx2::<3>(acts, tile, row0, out),
            (Form::Avx2, 2) => self.tile_rows_avx2::<2>(acts, tile, row0, out),
            (Form::Avx2, _) => self.tile_rows_avx2::<1>(acts, tile, row0, out),
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!(
            "the int8 kernel is only built for x86_64 ({form:?} {acts:p} {tile} {row0} {rows} {out:p})"
        )
    }

    /// The AVX2 form of [`tile_rows`](Self::tile_rows): the tile's 16 columns as two
    /// halves of 8, the same integer dot products and float steps.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tile_rows_avx2<const R: usize>(
        &self,
        acts: &QuantizedRows,
        tile: usize,
        row0: usize,
        out: *mut f32,
    ) {
        use std::arch::x86_64::*;
        let blocks = self.k / BLOCK;
        // Stored bytes are q + 128; flipping the top bit gives q as i8.
        let flip = _mm256_set1_epi8(i8::MIN);
        let ones = _mm256_set1_epi16(1);
        for half in 0..2 {
            let mut acc = [_mm256_setzero_ps(); R];
            for b in 0..blocks {
                let w = self
                    .qs
                    .as_ptr()
                    .add((tile * blocks + b) * TILE_BLOCK_BYTES + half * 32);
                let mut dots = [_mm256_setzero_si256(); R];
                for group in 0..BLOCK / 4 {
                    let stored = _mm256_loadu_si256(w.add(group * TILE * 4) as *const __m256i);
                    let q = _mm256_xor_si256(stored, flip);
                    for (r, dot) in dots.iter_mut().enumerate() {
                        let xp = acts
                            .values
                            .as_ptr()
                            .add((row0 + r) * self.k + b * BLOCK + group * 4);
                        let xv = _mm256_set1_epi32((xp as *const i32).read_unaligned());
                        // |x| * (q with x's sign) = x * q, pairs summed to i16, then
                        // the two pairs of each column summed to i32.
                        let pairs =
                            _mm256_maddubs_epi16(_mm256_abs_epi8(xv), _mm256_sign_epi8(q, xv));
                        *dot = _mm256_add_epi32(*dot, _mm256_madd_epi16(pairs, ones));
                    }
                }
                let dw = _mm256_loadu_ps(
                    self.scales
                        .as_ptr()
                        .add((tile * blocks + b) * TILE + half * 8),
                );
                for (r, a) in acc.iter_mut().enumerate() {
                    let scale =
                        _mm256_mul_ps(dw, _mm256_set1_ps(acts.scales[(row0 + r) * blocks + b]));
                    *a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dots[r]), scale, *a);
                }
            }
            for (r, a) in acc.iter().enumerate() {
                _mm256_storeu_ps(out.add((row0 + r) * self.n + tile * TILE + half * 8), *a);
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn tile_rows<const R: usize>(
        &self,
        acts: &QuantizedRows,
        tile: usize,
        row0: usize,
        out: *mut f32,
    ) {
        use std::arch::x86_64::*;
        let blocks = self.k / BLOCK;
        let mut acc = [_mm512_setzero_ps(); R];
        for b in 0..blocks {
            let w = self.qs.as_ptr().add((tile * blocks + b) * TILE_BLOCK_BYTES);
            let mut dots = [_mm512_setzero_si512(); R];
            for group in 0..BLOCK / 4 {
                let wv = _mm512_loadu_si512(w.add(group * TILE * 4) as *const __m512i);
                for (r, dot) in dots.iter_mut().enumerate() {
                    let xp = acts
                        .values
                        .as_ptr()
                        .add((row0 + r) * self.k + b * BLOCK + group * 4);
                    let xv = _mm512_set1_epi32((xp as *const i32).read_unaligned());
                    *dot = _mm512_dpbusd_epi32(*dot, wv, xv);
                }
            }
            let dw = _mm512_loadu_ps(self.scales.as_ptr().add((tile * blocks + b) * TILE));
            for (r, a) in acc.iter_mut().enumerate() {
                let i = (row0 + r) * blocks + b;
                let exact = _mm512_sub_epi32(dots[r], _mm512_set1_epi32(acts.offsets[i]));
                let scale = _mm512_mul_ps(dw, _mm512_set1_ps(acts.scales[i]));
                *a = _mm512_fmadd_ps(_mm512_cvtepi32_ps(exact), scale, *a);
            }
        }
        for (r, a) in acc.iter().enumerate() {
            _mm512_storeu_ps(out.add((row0 + r) * self.n + tile * TILE), *a);
        }
    }

    /// The same arithmetic in plain Rust, for checking the kernel.
    pub fn matmul_reference(&self, x: &[f32], m: usize) -> Vec<f32> {
        let acts = QuantizedRows::new(x, m, self.k);
        let blocks = self.k / BLOCK;
        let mut out = vec![0f32; m * self.n];
        for r in 0..m {
            for col in 0..self.n {
                let (tile, c) = (col / TILE, col % TILE);
                let mut acc = 0f32;
                for b in 0..blocks {
                    let base = (tile * blocks + b) * TILE_BLOCK_BYTES;
                    let mut dot = 0i32;
                    for j in 0..BLOCK {
                        let w = self.qs[base + (j / 4) * TILE * 4 + c * 4 + j % 4] as i32;
                        dot += w * acts.values[r * self.k + b * BLOCK + j] as i32;
                    }
                    let i = r * blocks + b;
                    let scale = self.scales[(tile * blocks + b) * TILE + c] * acts.scales[i];
                    acc = ((dot - acts.offsets[i]) as f32).mul_add(scale, acc);
                }
                out[r * self.n + col] = acc;
            }
        }
        out
    }
}

struct SendPtr(*mut f32);
// SAFETY: the pointer is only used to write disjoint output ranges from the tasks of
// one `matmul` call, which ends before the buffer is returned.
unsafe impl Sync for SendPtr {}
unsafe impl Send for SendPtr {}

/// Activations quantized per row and block, with the correction that the +128 offset
/// of the weights adds (128 × the block's sum).
struct QuantizedRows {
    values: Vec<i8>,
    scales: Vec<f32>,
    offsets: Vec<i32>,
}

impl QuantizedRows {
    fn new(x: &[f32], m: usize, k: usize) -> Self {
        let blocks = k / BLOCK;
        let mut values = vec![0i8; m * k];
        let mut scales = vec![0f32; m * blocks];
        let mut offsets = vec![0i32; m * blocks];
        for i in 0..m * blocks {
            let range = i * BLOCK..(i + 1) * BLOCK;
            scales[i] = quantize_block(&x[range.clone()], &mut values[range.clone()]);
            offsets[i] = 128 * values[range].iter().map(|&v| v as i32).sum::<i32>();
        }
        QuantizedRows {
            values,
            scales,
            offsets,
        }
    }
}

/// The product as a candle op on CPU tensors (..., k) -> (..., n).
pub struct Q8MatMulOp<'a>(pub &'a Q8Matrix);

impl CustomOp1 for Q8MatMulOp<'_> {
    fn name(&self) -> &'static str {
        "q8-vnni-matmul"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(values) = storage else {
            candle_core::bail!("q8 matmul expects f32 activations");
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("q8 matmul expects contiguous activations");
        };
        let mut dims = layout.dims().to_vec();
        let k = dims.last().copied().unwrap_or(0);
        if k != self.0.k {
            candle_core::bail!("q8 matmul: input width {k}, weights expect {}", self.0.k);
        }
        let m = (end - start) / k;
        let out = self.0.matmul(&values[start..end], m);
        if let Some(last) = dims.last_mut() {
            *last = self.0.n;
        }
        Ok((CpuStorage::F32(out), Shape::from(dims)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    }

    #[test]
    fn kernel_matches_reference_and_float_product() {
        if !supported() {
            return;
        }
        let (n, k) = (48, 96);
        let w = pseudo_random(n * k, 1);
        let q = Q8Matrix::from_f32(&w, n, k).unwrap();
        // The AVX2 form runs wherever AVX-512 VNNI does; both must equal the reference.
        let forms: Vec<Form> = [Form::Vnni, Form::Avx2]
            .into_iter()
            .filter(|&f| f == Form::Avx2 || form() == Some(Form::Vnni))
            .collect();
        for m in [1, 3, 4, 7] {
            let x = pseudo_random(m * k, 2 + m as u32);
            let fast = q.matmul(&x, m);
            for &f in &forms {
                assert_eq!(
                    q.matmul_in(f, &x, m),
                    q.matmul_reference(&x, m),
                    "{f:?}, m = {m}"
                );
            }
            for r in 0..m {
                for c in 0..n {
                    let exact: f32 = (0..k).map(|j| x[r * k + j] * w[c * k + j]).sum();
                    assert!(
                        (fast[r * n + c] - exact).abs() < 0.02,
                        "{} vs {exact}",
                        fast[r * n + c]
                    );
                }
            }
            // A row's result does not depend on its batch.
            let alone = q.matmul(&x[..k], 1);
            assert_eq!(&fast[..n], &alone[..]);
        }
        assert!(Q8Matrix::from_f32(&w[..40 * k], 40, k).is_none());
    }
}
