//! The encoder forward pass on the CPU over packed sequences.
//!
//! [`TransformerEncoder::forward`](super::transformer::TransformerEncoder) runs on any
//! candle device over a padded batch. Profiling it on the CPU (perf, all-MiniLM-L6-v2,
//! batch 32) put 57% of the time in matrix products and the rest in per-op overhead:
//! a fresh buffer and a thread hand-off for every bias add, residual add, mask add,
//! softmax and layer norm (page faults, memset, `sched_yield`), and libm's scalar `expf`
//! on masked scores. Here the same arithmetic runs on plain buffers reused across
//! layers:
//! - the texts of a batch are packed end to end (no padding rows in any product);
//! - biases and residuals are written into the output first and the product is
//!   accumulated onto them (one pass instead of three);
//! - attention runs per (text, head), over that text's own tokens only, with a
//!   vectorised exp (no mask, and no scores for padding);
//! - GELU and layer norm are one in-place pass each.
//!
//! The results match the candle path to float rounding (a test checks this on real
//! texts); the order of additions differs, so the last bits may.

use super::config::Activation;
use super::gelu::gelu_in_place;
use super::transformer::relative_buckets;
use crate::amx::Bf16Matrix;
use crate::row_math::softmax_row;
use crate::simd::avx2_variant;
use gemm::Parallelism;
use rayon::prelude::*;

/// A dense layer: weights `in x out`, row-major, and the bias.
pub(super) struct PackedDense {
    /// Empty when the weights live in `bf16` tiles instead.
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub inputs: usize,
    pub outputs: usize,
    /// The weights in bf16 AMX tiles, when the encoder runs at bf16 precision.
    pub bf16: Option<Bf16Matrix>,
}

/// Layer norm weights.
pub(super) struct PackedNorm {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub eps: f32,
}

/// One post-norm encoder block.
pub(super) struct PackedLayer {
    pub qkv: PackedDense,
    pub attn_out: PackedDense,
    pub attn_norm: PackedNorm,
    pub intermediate: PackedDense,
    pub output: PackedDense,
    pub out_norm: PackedNorm,
}

/// Encoder weights as plain CPU buffers (see the module comment).
pub(super) struct PackedEncoder {
    /// `vocab x hidden`.
    pub word: Vec<f32>,
    /// `positions x hidden`.
    pub position: Vec<f32>,
    pub first_position: usize,
    /// Token type 0's row, added to every token (none for MPNet).
    pub token_type: Option<Vec<f32>>,
    pub embed_norm: PackedNorm,
    pub layers: Vec<PackedLayer>,
    /// MPNet's relative position bias.
    pub relative_bias: Option<PackedRelativeBias>,
    pub heads: usize,
    pub head_dim: usize,
    pub hidden: usize,
    pub act: Activation,
}

/// MPNet's bucketed relative position bias: `buckets x heads`.
pub(super) struct PackedRelativeBias {
    pub table: Vec<f32>,
    pub buckets: usize,
}

impl PackedRelativeBias {
    /// The bias of every (query, key) pair of an `n`-token text, `heads x n x n`.
    fn scores(&self, n: usize, heads: usize) -> Vec<f32> {
        let mut out = vec![0f32; heads * n * n];
        for (pair, bucket) in relative_buckets(n, self.buckets).into_iter().enumerate() {
            let row = &self.table[bucket as usize * heads..(bucket as usize + 1) * heads];
            for (head, &b) in row.iter().enumerate() {
                out[head * n * n + pair] = b;
            }
        }
        out
    }
}

/// Where each text's rows sit in the packed matrix.
struct Spans {
    starts: Vec<usize>,
    lengths: Vec<usize>,
}

impl PackedEncoder {
    /// Last hidden states of every token of every text, packed: text 0's tokens, then
    /// text 1's, ... (`total tokens x hidden`, row-major). A token id outside the word
    /// table, or a text longer than the position table, is refused (a tokenizer that
    /// does not belong to the weights).
    pub fn forward(&self, texts: &[&[u32]]) -> Result<Vec<f32>, String> {
        self.check(texts)?;
        let spans = Spans::of(texts);
        let h = self.hidden;
        let mut x = self.embed(texts);
        let tokens = x.len() / h;
        let widest = self
            .layers
            .iter()
            .map(|l| l.intermediate.outputs.max(l.qkv.outputs))
            .max()
            .unwrap_or(h);
        let mut wide = vec![0f32; tokens * widest];
        let mut context = vec![0f32; tokens * h];
        let mut attended = vec![0f32; tokens * h];
        // The bias depends only on key - query, so one table for the longest text
        // holds every shorter text's as its top-left corner.
        let longest = spans.lengths.iter().copied().max().unwrap_or(0);
        let bias = self
            .relative_bias
            .as_ref()
            .map(|bias| (bias.scores(longest, self.heads), longest));
        for layer in &self.layers {
            let qkv = &mut wide[..tokens * layer.qkv.outputs];
            layer.qkv.apply(&x, tokens, None, qkv);
            self.attention(qkv, &spans, bias.as_ref(), &mut context);
            layer
                .attn_out
                .apply(&context, tokens, Some(&x), &mut attended);
            layer_norm_rows(&mut attended, &layer.attn_norm);
            let inter = &mut wide[..tokens * layer.intermediate.outputs];
            layer.intermediate.apply(&attended, tokens, None, inter);
            match self.act {
                Activation::Gelu => gelu_in_place(inter),
                Activation::Relu => inter.par_iter_mut().for_each(|v| *v = v.max(0.0)),
            }
            layer.output.apply(inter, tokens, Some(&attended), &mut x);
            layer_norm_rows(&mut x, &layer.out_norm);
        }
        Ok(x)
    }

    fn check(&self, texts: &[&[u32]]) -> Result<(), String> {
        let h = self.hidden;
        let (vocab, positions) = (self.word.len() / h, self.position.len() / h);
        for text in texts {
            if let Some(id) = text.iter().find(|&&id| id as usize >= vocab) {
                return Err(format!(
                    "token id {id} is outside the model's {vocab}-token vocabulary"
                ));
            }
            if self.first_position + text.len() > positions {
                return Err(format!(
                    "{} tokens do not fit the model's {positions} positions",
                    text.len()
                ));
            }
        }
        Ok(())
    }

    /// Word + position (+ token type) embeddings, layer-normed.
    fn embed(&self, texts: &[&[u32]]) -> Vec<f32> {
        let h = self.hidden;
        let mut x = Vec::with_capacity(texts.iter().map(|t| t.len()).sum::<usize>() * h);
        for text in texts {
            for (i, &id) in text.iter().enumerate() {
                let word = &self.word[id as usize * h..(id as usize + 1) * h];
                let pos = self.first_position + i;
                let position = &self.position[pos * h..(pos + 1) * h];
                x.extend(word.iter().zip(position).map(|(w, p)| w + p));
                if let Some(token_type) = &self.token_type {
                    let row = x.len() - h;
                    for (v, t) in x[row..].iter_mut().zip(token_type) {
                        *v += t;
                    }
                }
            }
        }
        layer_norm_rows(&mut x, &self.embed_norm);
        x
    }

    /// Scaled dot-product attention of each text's tokens among themselves, per head;
    /// writes `tokens x hidden` (heads side by side) into `context`. `bias`: MPNet's
    /// relative position bias for the longest text (`heads x longest x longest`).
    fn attention(
        &self,
        qkv: &[f32],
        spans: &Spans,
        bias: Option<&(Vec<f32>, usize)>,
        context: &mut [f32],
    ) {
        let (heads, d, h) = (self.heads, self.head_dim, self.hidden);
        let out = SharedOut(context.as_mut_ptr());
        (0..spans.starts.len() * heads)
            .into_par_iter()
            .for_each_init(Vec::new, |scores, task| {
                let (text, head) = (task / heads, task % heads);
                let (start, n) = (spans.starts[text], spans.lengths[text]);
                if n == 0 {
                    // A text with no tokens (a tokenizer without special tokens, an
                    // empty text) has no rows here; its pooled vector is zero.
                    return;
                }
                scores.clear();
                match bias {
                    Some((table, longest)) => {
                        for query in 0..n {
                            let row = (head * longest + query) * longest;
                            scores.extend_from_slice(&table[row..row + n]);
                        }
                    }
                    None => scores.resize(n * n, 0.0),
                }
                let q = qkv[start * 3 * h + head * d..].as_ptr();
                let k = qkv[start * 3 * h + h + head * d..].as_ptr();
                let v = qkv[start * 3 * h + 2 * h + head * d..].as_ptr();
                let row = (3 * h) as isize;
                // SAFETY: every pointer and stride stays inside `qkv` (rows start..start+n,
                // columns of this head) or `scores` (n x n); each task writes its own
                // (rows of this text) x (columns of this head) block of `context`.
                unsafe {
                    // scores += Q Kᵀ: K read column by column, as its transpose.
                    gemm::gemm(
                        n,
                        n,
                        d,
                        scores.as_mut_ptr(),
                        1,
                        n as isize,
                        true,
                        q,
                        1,
                        row,
                        k,
                        row,
                        1,
                        1.0,
                        1.0,
                        false,
                        false,
                        false,
                        Parallelism::None,
                    );
                    softmax_rows(scores, n);
                    let dst = out.at(start * h + head * d);
                    gemm::gemm(
                        n,
                        d,
                        n,
                        dst,
                        1,
                        h as isize,
                        false,
                        scores.as_ptr(),
                        1,
                        n as isize,
                        v,
                        1,
                        row,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        Parallelism::None,
                    );
                }
            });
    }
}

impl Spans {
    fn of(texts: &[&[u32]]) -> Self {
        let lengths: Vec<usize> = texts.iter().map(|t| t.len()).collect();
        let starts = lengths
            .iter()
            .scan(0, |next, &n| {
                let start = *next;
                *next += n;
                Some(start)
            })
            .collect();
        Spans { starts, lengths }
    }
}

impl PackedDense {
    /// `out = x · W + bias (+ residual)` for `rows` rows of `x`.
    fn apply(&self, x: &[f32], rows: usize, residual: Option<&[f32]>, out: &mut [f32]) {
        let (k, n) = (self.inputs, self.outputs);
        debug_assert_eq!(x.len(), rows * k);
        debug_assert_eq!(out.len(), rows * n);
        let rows_out = out.par_chunks_mut(n).with_min_len(64);
        match residual {
            Some(res) => rows_out.zip(res.par_chunks(n)).for_each(|(row, res)| {
                for ((o, b), r) in row.iter_mut().zip(&self.bias).zip(res) {
                    *o = b + r;
                }
            }),
            None => rows_out.for_each(|row| row.copy_from_slice(&self.bias)),
        }
        if let Some(tiles) = &self.bf16 {
            tiles.accumulate(x, rows, out);
            return;
        }
        // Layers packed into tiles keep no f32 weights (see `Dense::to_packed`).
        assert_eq!(
            self.weight.len(),
            k * n,
            "a dense layer without f32 weights"
        );
        // SAFETY: the shapes were checked above: x is rows x k, W is k x n, out rows x n,
        // all row-major with unit column stride.
        unsafe {
            gemm::gemm(
                rows,
                n,
                k,
                out.as_mut_ptr(),
                1,
                n as isize,
                true,
                x.as_ptr(),
                1,
                k as isize,
                self.weight.as_ptr(),
                1,
                n as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                Parallelism::Rayon(rayon::current_num_threads()),
            );
        }
    }
}

/// A pointer that rayon tasks write disjoint blocks through.
struct SharedOut(*mut f32);
// SAFETY: used only inside one `attention` call, whose tasks write disjoint blocks.
unsafe impl Sync for SharedOut {}
unsafe impl Send for SharedOut {}

impl SharedOut {
    /// The element `offset` places in.
    ///
    /// # Safety
    /// `offset` must be inside the buffer.
    unsafe fn at(&self, offset: usize) -> *mut f32 {
        self.0.add(offset)
    }
}

/// Layer norm of each row in place (two passes over the row: mean, then variance).
fn layer_norm_rows(x: &mut [f32], norm: &PackedNorm) {
    let h = norm.weight.len();
    x.par_chunks_mut(h * 16)
        .for_each(|rows| layer_norm_block(rows, norm));
}

avx2_variant!(fn layer_norm_block => layer_norm_block_body(rows: &mut [f32], norm: &PackedNorm));

#[inline(always)]
fn layer_norm_block_body(rows: &mut [f32], norm: &PackedNorm) {
    for row in rows.chunks_mut(norm.weight.len()) {
        layer_norm_row(row, norm);
    }
}

#[inline(always)]
fn layer_norm_row(row: &mut [f32], norm: &PackedNorm) {
    let n = row.len() as f32;
    let mean = row.iter().sum::<f32>() / n;
    let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let inv = 1.0 / (var + norm.eps).sqrt();
    for ((v, w), b) in row.iter_mut().zip(&norm.weight).zip(&norm.bias) {
        *v = (*v - mean) * inv * w + b;
    }
}

avx2_variant!(
    /// Softmax of each row of an `n x n` score matrix, in place.
    fn softmax_rows => softmax_rows_body(scores: &mut [f32], n: usize)
);

#[inline(always)]
fn softmax_rows_body(scores: &mut [f32], n: usize) {
    for row in scores.chunks_mut(n) {
        softmax_row(row);
    }
}
