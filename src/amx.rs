//! Matrix products on Intel AMX tiles in bfloat16, accumulated in f32.
//!
//! Intel Xeons from Sapphire Rapids on have AMX: eight 1 KiB tile registers and an
//! instruction (`tdpbf16ps`) that multiplies a 16 x 32 bf16 tile by a 32 x 16 bf16 tile
//! into a 16 x 16 f32 tile, about 16 times the work of an AVX-512 f32 multiply-add per
//! cycle. The encoder's dense layers are most of its time (see `embed/packed.rs`), so
//! on such a CPU they can run here: weights rounded to bf16 once at load, activations
//! rounded per product, sums kept in f32. That rounding moves each vector by about 1e-3
//! in cosine, which is why callers ask for it by name and record it.
//!
//! Rust's AMX intrinsics are not stable, so the few instructions are written as inline
//! assembly. Linux hands out the tile state only to a process that asks for it
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM)`), which [`available`] does once.

use rayon::prelude::*;

/// Rows (and bf16 pairs) per tile.
const TILE_ROWS: usize = 16;
/// bf16 values per tile row (64 bytes): the inner dimension one instruction covers.
const TILE_K: usize = 32;
/// f32 values per output tile row.
const TILE_N: usize = 16;
/// Output rows of one block of sums: two tiles stacked.
const BLOCK_ROWS: usize = 2 * TILE_ROWS;
/// Rows converted to bf16 and multiplied together by one task: the weights are read
/// from memory once per group (128 rows of a 1,536-wide input are 384 KiB of bf16,
/// which stays in L2).
const GROUP_ROWS: usize = 4 * BLOCK_ROWS;
/// Output columns of one block of sums: two tiles side by side.
const BLOCK_COLS: usize = 2 * TILE_N;

/// Whether this CPU and kernel let the process use AMX tiles with bf16 products
/// (checked, and the tile state requested from Linux, once per process).
pub(crate) fn available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(detect)
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn detect() -> bool {
    let leaf = std::arch::x86_64::__cpuid_count(7, 0);
    let (tile, bf16) = (leaf.edx >> 24 & 1 == 1, leaf.edx >> 22 & 1 == 1);
    if !(tile && bf16) {
        return false;
    }
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: a plain system call with two integer arguments; it only changes which
    // register state the kernel saves for this process.
    let granted = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        )
    };
    granted == 0
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn detect() -> bool {
    false
}

/// Rounds an f32 to the nearest bf16, ties to even (the values here are finite).
fn bf16_bits(v: f32) -> u16 {
    let bits = v.to_bits();
    ((bits + 0x7fff + (bits >> 16 & 1)) >> 16) as u16
}

/// A `k x n` weight matrix in bf16, laid out as the B operand of `tdpbf16ps`: for each
/// 16-column block and each 32-row block, one tile whose row `p` holds, for each
/// column `j`, the pair `W[2p][j], W[2p + 1][j]`.
pub(crate) struct Bf16Matrix {
    tiles: Vec<u16>,
    k: usize,
    n: usize,
}

impl Bf16Matrix {
    /// Packs a row-major `k x n` matrix; `None` unless both sides are multiples of 32
    /// (every encoder's hidden and intermediate sizes are; others keep f32).
    pub(crate) fn pack(weight: &[f32], k: usize, n: usize) -> Option<Self> {
        if k == 0
            || n == 0
            || !k.is_multiple_of(TILE_K)
            || !n.is_multiple_of(BLOCK_COLS)
            || weight.len() != k * n
        {
            return None;
        }
        let mut tiles = Vec::with_capacity(k * n);
        for col_block in 0..n / TILE_N {
            for k_block in 0..k / TILE_K {
                for pair in 0..TILE_ROWS {
                    let row = k_block * TILE_K + 2 * pair;
                    for j in col_block * TILE_N..(col_block + 1) * TILE_N {
                        tiles.push(bf16_bits(weight[row * n + j]));
                        tiles.push(bf16_bits(weight[(row + 1) * n + j]));
                    }
                }
            }
        }
        Some(Bf16Matrix { tiles, k, n })
    }

    /// `out += x · W` for `rows` rows of `x` (`rows x k`, row-major) into `out`
    /// (`rows x n`), with `x` rounded to bf16. Groups of rows run in parallel.
    ///
    /// # Panics
    /// If [`available`] is false or the shapes disagree (a programming error).
    pub(crate) fn accumulate(&self, x: &[f32], rows: usize, out: &mut [f32]) {
        assert!(available(), "AMX products asked for on a CPU without them");
        assert_eq!(x.len(), rows * self.k);
        assert_eq!(out.len(), rows * self.n);
        let (k, n) = (self.k, self.n);
        out.par_chunks_mut(GROUP_ROWS * n)
            .zip(x.par_chunks(GROUP_ROWS * k))
            .for_each_init(Vec::new, |half, (out_group, x_group)| {
                half.clear();
                half.extend(x_group.iter().map(|&v| bf16_bits(v)));
                let rows = out_group.len() / n;
                let full = rows / BLOCK_ROWS * BLOCK_ROWS;
                let (a_full, a_tail) = half.split_at(full * k);
                let (out_full, out_tail) = out_group.split_at_mut(full * n);
                // SAFETY: AMX is available (asserted above); each part is a whole
                // number of blocks of the given height, `a` r x k and `out` r x n.
                unsafe {
                    if full > 0 {
                        self.blocks(a_full, out_full, TILE_ROWS, TILE_ROWS);
                    }
                    let tail = rows - full;
                    if tail > 0 {
                        let top = tail.min(TILE_ROWS);
                        self.blocks(a_tail, out_tail, top, tail - top);
                    }
                }
            });
    }

    /// `out += a · W` over blocks of `top + bottom` rows (`top` in 1..=16, `bottom` in
    /// 0..=16). Column pairs outermost, so that the weight tiles of a pair are read
    /// from memory once and from cache for every block of the group.
    ///
    /// # Safety
    /// AMX must be available; `a` is `r x k` bf16 and `out` is `r x n`, with r a
    /// multiple of `top + bottom`.
    #[cfg(target_arch = "x86_64")]
    unsafe fn blocks(&self, a: &[u16], out: &mut [f32], top: usize, bottom: usize) {
        use std::arch::asm;
        let (k, n) = (self.k, self.n);
        let block_rows = top + bottom;
        let count = out.len() / n / block_rows;
        let config = TileConfig::new(top, bottom);
        let (a_stride, c_stride, b_stride) = (k * 2, n * 4, TILE_N * 2 * 2);
        let tile_elems = TILE_ROWS * TILE_N * 2;
        let k_blocks = k / TILE_K;
        asm!("ldtilecfg [{}]", in(reg) config.bytes.as_ptr(), options(nostack, readonly));
        for col_block in (0..n / TILE_N).step_by(2) {
            let b_left = self.tiles.as_ptr().add(col_block * k_blocks * tile_elems);
            let b_right = b_left.add(k_blocks * tile_elems);
            for block in 0..count {
                let c_top = out
                    .as_mut_ptr()
                    .add(block * block_rows * n + col_block * TILE_N);
                // Only used when the block has a bottom half.
                let c_bottom = c_top.wrapping_add(TILE_ROWS * n);
                let a_top = a.as_ptr().add(block * block_rows * k);
                let a_bottom = a_top.wrapping_add(TILE_ROWS * k);
                asm!(
                    "tileloadd tmm0, [{c} + {s}]",
                    "tileloadd tmm1, [{c} + {s} + 64]",
                    c = in(reg) c_top, s = in(reg) c_stride, options(nostack, readonly)
                );
                if bottom > 0 {
                    asm!(
                        "tileloadd tmm2, [{c} + {s}]",
                        "tileloadd tmm3, [{c} + {s} + 64]",
                        c = in(reg) c_bottom, s = in(reg) c_stride, options(nostack, readonly)
                    );
                }
                for k_block in 0..k_blocks {
                    let (a_off, b_off) = (k_block * TILE_K, k_block * tile_elems);
                    asm!(
                        "tileloadd tmm4, [{a} + {sa}]",
                        "tileloadd tmm6, [{bl} + {sb}]",
                        "tileloadd tmm7, [{br} + {sb}]",
                        "tdpbf16ps tmm0, tmm4, tmm6",
                        "tdpbf16ps tmm1, tmm4, tmm7",
                        a = in(reg) a_top.add(a_off), sa = in(reg) a_stride,
                        bl = in(reg) b_left.add(b_off), br = in(reg) b_right.add(b_off),
                        sb = in(reg) b_stride, options(nostack, readonly)
                    );
                    if bottom > 0 {
                        asm!(
                            "tileloadd tmm5, [{a} + {sa}]",
                            "tdpbf16ps tmm2, tmm5, tmm6",
                            "tdpbf16ps tmm3, tmm5, tmm7",
                            a = in(reg) a_bottom.add(a_off), sa = in(reg) a_stride,
                            options(nostack, readonly)
                        );
                    }
                }
                asm!(
                    "tilestored [{c} + {s}], tmm0",
                    "tilestored [{c} + {s} + 64], tmm1",
                    c = in(reg) c_top, s = in(reg) c_stride, options(nostack)
                );
                if bottom > 0 {
                    asm!(
                        "tilestored [{c} + {s}], tmm2",
                        "tilestored [{c} + {s} + 64], tmm3",
                        c = in(reg) c_bottom, s = in(reg) c_stride, options(nostack)
                    );
                }
            }
        }
        asm!("tilerelease", options(nostack, nomem));
    }

    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn blocks(&self, _a: &[u16], _out: &mut [f32], _top: usize, _bottom: usize) {
        unreachable!("AMX exists only on x86-64")
    }
}

/// The 64-byte operand of `ldtilecfg`: palette 1; tiles 0-3 hold sums (top-left,
/// top-right, bottom-left, bottom-right), 4-5 the top and bottom rows of the input,
/// 6-7 the left and right weight tiles. Tiles of an empty bottom half stay unset.
#[repr(C, align(64))]
struct TileConfig {
    bytes: [u8; 64],
}

impl TileConfig {
    fn new(top: usize, bottom: usize) -> Self {
        let mut bytes = [0u8; 64];
        bytes[0] = 1;
        let mut set = |tile: usize, rows: usize| {
            if rows > 0 {
                bytes[16 + 2 * tile] = 64;
                bytes[48 + tile] = rows as u8;
            }
        };
        for (tile, rows) in [(0, top), (1, top), (2, bottom), (3, bottom), (4, top)] {
            set(tile, rows);
        }
        for (tile, rows) in [(5, bottom), (6, TILE_ROWS), (7, TILE_ROWS)] {
            set(tile, rows);
        }
        TileConfig { bytes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bf16_value(bits: u16) -> f32 {
        f32::from_bits(u32::from(bits) << 16)
    }

    #[test]
    fn rounding_to_bf16_is_to_nearest_even() {
        assert_eq!(bf16_bits(1.0), 0x3f80);
        // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even 1.0.
        assert_eq!(bf16_bits(1.0 + 1.0 / 256.0), 0x3f80);
        assert_eq!(bf16_bits(1.0 + 3.0 / 256.0), 0x3f82);
        assert_eq!(bf16_value(bf16_bits(-2.5)), -2.5);
    }

    #[test]
    fn shapes_that_are_not_tile_multiples_are_not_packed() {
        assert!(Bf16Matrix::pack(&[0.0; 48 * 32], 48, 32).is_none());
        assert!(Bf16Matrix::pack(&[0.0; 32 * 48], 32, 48).is_none());
        assert!(Bf16Matrix::pack(&[0.0; 32 * 64], 32, 64).is_some());
    }

    /// Against the same bf16-rounded inputs multiplied in f64, for row counts that
    /// fill both tile halves, one, and part of one.
    #[test]
    fn products_equal_the_rounded_inputs_product() {
        if !available() {
            eprintln!("skipped: this CPU has no AMX bf16 tiles");
            return;
        }
        let (k, n) = (96, 64);
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        };
        let weight: Vec<f32> = (0..k * n).map(|_| next()).collect();
        let packed = Bf16Matrix::pack(&weight, k, n).expect("tile multiples");
        for rows in [1, 16, 17, 32, 45, 70, 128, 161, 300] {
            let x: Vec<f32> = (0..rows * k).map(|_| next()).collect();
            let start: Vec<f32> = (0..rows * n).map(|_| next()).collect();
            let mut out = start.clone();
            packed.accumulate(&x, rows, &mut out);
            for r in 0..rows {
                for j in 0..n {
                    let expected = start[r * n + j] as f64
                        + (0..k)
                            .map(|i| {
                                bf16_value(bf16_bits(x[r * k + i])) as f64
                                    * bf16_value(bf16_bits(weight[i * n + j])) as f64
                            })
                            .sum::<f64>();
                    let got = out[r * n + j] as f64;
                    assert!(
                        (got - expected).abs() < 1e-4,
                        "rows {rows}, ({r}, {j}): {got} vs {expected}"
                    );
                }
            }
        }
    }
}
