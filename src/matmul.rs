//! Matrix products on plain slices through the gemm crate (the kernels candle itself
//! uses on the CPU), with every extent checked, so the fused ops that call them need
//! no `unsafe` of their own.

use gemm::Parallelism;

/// The element types the products take.
pub(crate) trait Element: Copy + Send + Sync + 'static {
    /// 0 in this type.
    const ZERO: Self;
    /// 1 in this type.
    const ONE: Self;
}

impl Element for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
}

impl Element for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
}

/// A read-only matrix view of a slice: element (i, j) is `data[i * row_step + j *
/// col_step]`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    row_step: usize,
    col_step: usize,
}

impl<'a, T> Mat<'a, T> {
    /// `data` as a row-major `rows x cols` matrix.
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        Mat {
            data,
            rows,
            cols,
            row_step: cols,
            col_step: 1,
        }
    }

    /// The transpose of this view (no copy).
    pub fn t(self) -> Self {
        Mat {
            rows: self.cols,
            cols: self.rows,
            row_step: self.col_step,
            col_step: self.row_step,
            ..self
        }
    }

    fn fits(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_step + (self.cols - 1) * self.col_step < self.data.len()
    }
}

/// `dst (m x n, row-major) = a · b`, or `dst += a · b` with `accumulate`, on `threads`
/// rayon threads (1: the calling thread only).
///
/// Panics when the shapes disagree or a view runs past its slice: callers build the
/// views from shapes they have already checked, so this is a programming error.
pub(crate) fn gemm<T: Element>(
    dst: &mut [T],
    a: Mat<T>,
    b: Mat<T>,
    accumulate: bool,
    threads: usize,
) {
    check(dst.len(), a, b);
    // SAFETY: `check` ensured dst holds exactly m x n values and both views fit their
    // slices; dst is initialised, so reading it (accumulate) is fine.
    unsafe { gemm_raw(dst.as_mut_ptr(), a, b, accumulate, threads) }
}

/// `a · b` as a new row-major (m x n) vector. Unlike a zero-filled destination, the
/// vector is not written twice: a frozen forward pass makes ~300 MB of products a step,
/// and a zero fill runs on one thread before the product's two start.
pub(crate) fn product<T: Element>(a: Mat<T>, b: Mat<T>, threads: usize) -> Vec<T> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    check(m * n, a, b);
    if k == 0 || m == 0 || n == 0 {
        return vec![T::ZERO; m * n];
    }
    let mut dst: Vec<T> = Vec::with_capacity(m * n);
    // SAFETY: `check` ensured both views fit their slices and the capacity is m x n.
    // With `accumulate` false and k > 0, gemm writes every element of dst (beta · a·b,
    // the old value neither read nor scaled), so all m x n values are initialised
    // before `set_len`.
    unsafe {
        gemm_raw(dst.as_mut_ptr(), a, b, false, threads);
        dst.set_len(m * n);
    }
    dst
}

/// Panics unless a (m x k) and b (k x n) agree, fit their slices, and dst holds m x n.
fn check<T>(dst_len: usize, a: Mat<T>, b: Mat<T>) {
    assert!(
        b.rows == a.cols && dst_len == a.rows * b.cols && a.fits() && b.fits(),
        "matrix product of {}x{} by {}x{} into {} values",
        a.rows,
        a.cols,
        b.rows,
        b.cols,
        dst_len
    );
}

/// The gemm call behind [`gemm`] and [`product`].
///
/// # Safety
/// `dst` must be valid for writes of m x n row-major values (and reads, when
/// `accumulate`), and both views must fit their slices ([`check`]).
unsafe fn gemm_raw<T: Element>(
    dst: *mut T,
    a: Mat<T>,
    b: Mat<T>,
    accumulate: bool,
    threads: usize,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if m == 0 || n == 0 {
        return;
    }
    let parallelism = match threads {
        0 | 1 => Parallelism::None,
        t => Parallelism::Rayon(t),
    };
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        n as isize,
        accumulate,
        a.data.as_ptr(),
        a.col_step as isize,
        a.row_step as isize,
        b.data.as_ptr(),
        b.col_step as isize,
        b.row_step as isize,
        if accumulate { T::ONE } else { T::ZERO },
        T::ONE,
        false,
        false,
        false,
        parallelism,
    );
}

/// The transpose of row-major (rows x cols) `values`, row-major (cols x rows), over
/// the rayon pool.
pub(crate) fn transposed<T: Element>(values: &[T], rows: usize, cols: usize) -> Vec<T> {
    use rayon::prelude::*;
    const TILE: usize = 32;
    assert_eq!(values.len(), rows * cols, "transpose of {rows}x{cols}");
    let mut out = vec![T::ZERO; rows * cols];
    if rows == 0 {
        return out;
    }
    // Each task writes TILE output rows (TILE input columns): it reads a short run of
    // every input row and writes one column of its tile, whose TILE cache lines stay
    // in cache from one input row to the next.
    out.par_chunks_mut(TILE * rows)
        .enumerate()
        .for_each(|(task, block)| {
            let c0 = task * TILE;
            let width = block.len() / rows;
            for r in 0..rows {
                let src = &values[r * cols + c0..r * cols + c0 + width];
                for (c, &v) in src.iter().enumerate() {
                    block[c * rows + r] = v;
                }
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_of_every_layout_match_a_plain_loop() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.91).cos()).collect();
        let want: Vec<f64> = (0..m * n)
            .map(|ij| (0..k).map(|l| a[ij / n * k + l] * b[l * n + ij % n]).sum())
            .collect();
        // a stored transposed (k x m) and b stored transposed (n x k).
        let at: Vec<f64> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
        let bt: Vec<f64> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        for (av, bv) in [
            (Mat::row_major(&a, m, k), Mat::row_major(&b, k, n)),
            (Mat::row_major(&at, k, m).t(), Mat::row_major(&bt, n, k).t()),
        ] {
            let mut dst = vec![1.0; m * n];
            gemm(&mut dst, av, bv, true, 2);
            for (d, w) in dst.iter().zip(&want) {
                assert!((d - 1.0 - w).abs() < 1e-12);
            }
            gemm(&mut dst, av, bv, false, 1);
            for (d, w) in dst.iter().zip(&want) {
                assert!((d - w).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn a_new_product_and_a_transpose_match_a_plain_loop() {
        let (m, k, n) = (37, 19, 45);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.91).cos()).collect();
        let mut want = vec![0f32; m * n];
        gemm(
            &mut want,
            Mat::row_major(&a, m, k),
            Mat::row_major(&b, k, n),
            false,
            1,
        );
        let got = product(Mat::row_major(&a, m, k), Mat::row_major(&b, k, n), 2);
        assert_eq!(got, want);
        assert_eq!(
            product(Mat::row_major(&a, m, 0), Mat::row_major(&b, 0, n), 2),
            vec![0.0; m * n]
        );
        let at = transposed(&a, m, k);
        for i in 0..m {
            for j in 0..k {
                assert_eq!(at[j * m + i], a[i * k + j]);
            }
        }
    }

    #[test]
    #[should_panic(expected = "matrix product")]
    fn a_view_past_its_slice_is_refused() {
        let a = vec![0f32; 6];
        let mut dst = vec![0f32; 4];
        gemm(
            &mut dst,
            Mat::row_major(&a, 2, 4),
            Mat::row_major(&a, 4, 2),
            false,
            1,
        );
    }
}
