//! The one GEMM entry point: `c = a * b` for f32 and f64 matrices given by pointers and
//! strides (`Gemm::gemm`), or by ndarray views (`mat_mul`). Every float matrix product goes
//! through it: the interpreter's `dot_general` and convolutions (`kernels.rs`, `conv.rs`),
//! and the JIT's GEMM steps (`traceform_jit`'s `gemm.rs`, which folds a `dot_general`'s axes
//! into these strides). One entry point means one library, one blocking and one summation
//! order, so the JIT's products and the interpreter's round alike.

use ndarray::{ArrayView2, ArrayViewMut2};

/// An element type the GEMM multiplies: f32 and f64.
pub trait Gemm: Copy + Default + Send + Sync + 'static {
    /// `c = a * b` for an `m x k` `a` and a `k x n` `b`, each given by its first element and
    /// its (row, column) strides in elements; `c` (`m x n`) is overwritten, never read. With
    /// `k == 0`, `c` is zeroed.
    ///
    /// # Safety
    /// The pointers and strides must describe valid matrices of those sizes (any strides,
    /// negative or zero included, for `a` and `b`), `c` writable, its elements distinct and
    /// not overlapping `a` or `b`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: *const Self,
        a_strides: (isize, isize),
        b: *const Self,
        b_strides: (isize, isize),
        c: *mut Self,
        c_strides: (isize, isize),
    );
}

/// Writes zeros over the `m x n` matrix `c`.
///
/// # Safety
/// As `Gemm::gemm`'s `c`.
unsafe fn zero<T: Gemm>(m: usize, n: usize, c: *mut T, (rsc, csc): (isize, isize)) {
    for i in 0..m as isize {
        for j in 0..n as isize {
            // SAFETY: the caller's contract.
            unsafe { *c.offset(i * rsc + j * csc) = T::default() };
        }
    }
}

macro_rules! impl_gemm {
    ($t:ty, $mm:path) => {
        impl Gemm for $t {
            unsafe fn gemm(
                m: usize,
                k: usize,
                n: usize,
                a: *const $t,
                (rsa, csa): (isize, isize),
                b: *const $t,
                (rsb, csb): (isize, isize),
                c: *mut $t,
                (rsc, csc): (isize, isize),
            ) {
                if m == 0 || n == 0 {
                    return;
                }
                // SAFETY: the caller's contract.
                unsafe {
                    if k == 0 {
                        zero(m, n, c, (rsc, csc));
                        return;
                    }
                    $mm(m, k, n, 1.0, a, rsa, csa, b, rsb, csb, 0.0, c, rsc, csc)
                }
            }
        }
    };
}

impl_gemm!(f32, matrixmultiply::sgemm);
impl_gemm!(f64, matrixmultiply::dgemm);

/// `c = a * b` over ndarray views of any strides.
///
/// # Panics
/// If the shapes do not agree.
pub fn mat_mul<T: Gemm>(a: ArrayView2<'_, T>, b: ArrayView2<'_, T>, mut c: ArrayViewMut2<'_, T>) {
    let ((m, k), (k2, n)) = (a.dim(), b.dim());
    assert!(
        k == k2 && c.dim() == (m, n),
        "mat_mul of {:?} by {:?} into {:?}",
        a.dim(),
        b.dim(),
        c.dim()
    );
    let strides = |s: &[isize]| (s[0], s[1]);
    let (sa, sb, sc) = (
        strides(a.strides()),
        strides(b.strides()),
        strides(c.strides()),
    );
    // SAFETY: the views describe valid matrices of the checked sizes, and a mutable view's
    // elements are distinct and not shared with the read-only `a` and `b`.
    unsafe { T::gemm(m, k, n, a.as_ptr(), sa, b.as_ptr(), sb, c.as_mut_ptr(), sc) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{s, Array2};

    /// The definition, term by term, in f64.
    fn naive(a: &ArrayView2<'_, f64>, b: &ArrayView2<'_, f64>) -> Array2<f64> {
        Array2::from_shape_fn((a.nrows(), b.ncols()), |(i, j)| {
            (0..a.ncols()).map(|l| a[(i, l)] * b[(l, j)]).sum()
        })
    }

    fn filled(m: usize, n: usize, seed: usize) -> Array2<f64> {
        // Small integers: every product and sum is exact in f32 and f64.
        Array2::from_shape_fn((m, n), |(i, j)| {
            ((i * 7 + j * 13 + seed * 5) % 9) as f64 - 4.0
        })
    }

    #[test]
    fn products_of_any_strides_and_sizes_are_exact_on_integers() {
        for &(m, k, n) in &[
            (0, 3, 4),
            (3, 0, 4),
            (3, 4, 0),
            (1, 1, 1),
            (4, 4, 4),
            (7, 9, 5),
            (17, 33, 65),
            (128, 256, 10),
            (70, 300, 130),
        ] {
            let a = filled(m, k, 1);
            let b = filled(k, n, 2);
            let at = filled(k, m, 3).reversed_axes();
            let want = naive(&a.view(), &b.view());
            // As stored, transposed, reversed (negative strides), broadcast (zero strides).
            let views = [
                (a.view(), b.view()),
                (at.view(), b.view()),
                (a.slice(s![..;-1, ..]), b.slice(s![.., ..;-1])),
            ];
            for (x, y) in views {
                let want = naive(&x, &y);
                let mut got = Array2::from_elem((m, n), f64::NAN);
                mat_mul(x, y, got.view_mut());
                assert_eq!(got, want, "f64 {m}x{k}x{n}");
                let (x32, y32) = (x.mapv(|v| v as f32), y.mapv(|v| v as f32));
                let mut got32 = Array2::from_elem((m, n), f32::NAN);
                mat_mul(x32.view(), y32.view(), got32.view_mut());
                assert_eq!(got32.mapv(f64::from), want, "f32 {m}x{k}x{n}");
            }
            if k > 0 {
                let row = filled(1, k, 4);
                let broadcast = row.broadcast((m, k)).unwrap();
                let mut got = Array2::from_elem((m, n), f64::NAN);
                mat_mul(broadcast, b.view(), got.view_mut());
                assert_eq!(got, naive(&broadcast, &b.view()), "broadcast {m}x{k}x{n}");
            }
            // Into a column block of a wider result, and into a transposed one.
            let mut wide = Array2::from_elem((m, n + 3), f64::NAN);
            mat_mul(a.view(), b.view(), wide.slice_mut(s![.., 1..n + 1]));
            assert_eq!(wide.slice(s![.., 1..n + 1]), want);
            assert!(wide.column(0).iter().all(|v| v.is_nan()));
            let mut tall = Array2::from_elem((n, m), f64::NAN);
            mat_mul(a.view(), b.view(), tall.view_mut().reversed_axes());
            assert_eq!(tall.t(), want);
        }
    }
}
