//! Matrix products on plain slices through the gemm crate (the kernels candle itself
//! uses on the CPU), with every extent checked, so the fused ops that call them need
//! no `unsafe` of their own.

use gemm::Parallelism;

/// The element types the products take.
pub(crate) trait Element: Copy + 'static {
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
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(
        b.rows == k && dst.len() == m * n && a.fits() && b.fits(),
        "matrix product of {}x{} by {}x{} into {} values",
        a.rows,
        a.cols,
        b.rows,
        b.cols,
        dst.len()
    );
    if m == 0 || n == 0 {
        return;
    }
    let parallelism = match threads {
        0 | 1 => Parallelism::None,
        t => Parallelism::Rayon(t),
    };
    // SAFETY: `fits` checked that every (i, j) of both views lies inside its slice and
    // dst holds exactly m x n row-major values; the strides are non-negative.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
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
