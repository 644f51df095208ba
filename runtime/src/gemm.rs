//! The one GEMM entry point: `c = a * b` for f32 and f64 matrices given by pointers and
//! strides (`Gemm::gemm`), or by ndarray views (`mat_mul`). Every float matrix product goes
//! through it: the interpreter's `dot_general` and convolutions (`kernels.rs`, `conv.rs`),
//! and the JIT's GEMM steps (`traceform_jit`'s `gemm.rs`, which folds a `dot_general`'s axes
//! into these strides). One entry point means one library, one blocking and one summation
//! order, so the JIT's products and the interpreter's round alike (where they pass the same
//! layouts).
//!
//! How a product is computed, by its number of multiply-adds `m·k·n` (measured on AMD Zen 4,
//! 2 vCPUs shared with other work; `docs/benchmarks.md`, `docs/jit.md`):
//!
//! - at most `SMALL` (about 6x6x6): a plain loop, which beats any library's dispatch and
//!   packing (4x4x4: 0.07 µs against 0.16 for matrixmultiply, 0.20 for the gemm crate);
//! - otherwise the `gemm` crate (AVX-512 and FMA kernels picked at run time), one thread.
//!   It computes a row-major `c` as `c^T = b^T a^T` and packs the left operand of that by
//!   transposition when it is not column-major, which for a column-major `b` (a dense layer's
//!   `x · w^T`) is the whole of `b`: there a column-major scratch `c` is computed instead
//!   when that packs less (`single`: AlexNet's `[8,4096] · [9216,4096]^T` 114 -> 21 ms);
//! - at most 8 rows of `a` and `b`'s rows contiguous, from `SKINNY` (a dense layer's batch
//!   times its weights): `skinny.rs`, one pass over `b` (AlexNet's `[8,9216] · [9216,4096]`
//!   13.7 -> 11.1 ms, `[8,4096] · [4096,4096]` 5.9 -> 4.9 ms), from `PARALLEL` on two
//!   threads claiming up to `SKINNY_BLOCKS` runs of the sum;
//! - at least `PARALLEL` (128x128x128): `c` is cut in two blocks along its longer side, and
//!   the calling thread and the helper thread of `par.rs` each claim blocks until none is
//!   left (the gemm crate's own threading waits for a second thread, and was slower than one
//!   thread on a machine whose other core is busy).
//!
//! Which thread computes a block does not change its result, and the cut depends on the
//! sizes alone, so results do not depend on the timing.

use std::ops::{Add, Mul};

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::par;

mod skinny;

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

/// Products of at most this many multiply-adds are a plain loop.
const SMALL: usize = 256;

/// Products with at most `skinny::ROWS` rows in a layout `skinny.rs` takes are computed there
/// from this many multiply-adds (below, the gemm crate is as fast: the operands are cached).
const SKINNY: usize = 1 << 18;

/// Products of at least this many multiply-adds are cut in two blocks for two threads (about
/// 40 µs on one core; 128x128x128 took 25 µs instead of 39 with the other core free). Not
/// tuned finely: with the threshold at 2^18, a 64x64x64 product (5.6 µs) only paid for waking
/// the helper (6.1 µs with the other core busy).
const PARALLEL: usize = 1 << 21;

/// The most blocks a skinny product's sum is cut into for two threads: enough that a thread
/// finding its core slow leaves the other one its share (`skinny_threads`).
const SKINNY_BLOCKS: usize = 8;

/// The fewest rows of `b` in a block of a skinny product's sum cut into more than two.
const SKINNY_ROWS: usize = 256;

/// What the implementation needs of an element type.
trait Element: Gemm + Add<Output = Self> + Mul<Output = Self> {
    const ONE: Self;
    /// `self · a + b` rounded once (an FMA instruction where the caller's target has one;
    /// a library call otherwise, so only code compiled with FMA calls it).
    fn mul_add(self, a: Self, b: Self) -> Self;
}

impl Element for f32 {
    const ONE: f32 = 1.0;
    #[inline(always)]
    fn mul_add(self, a: f32, b: f32) -> f32 {
        f32::mul_add(self, a, b)
    }
}

impl Element for f64 {
    const ONE: f64 = 1.0;
    #[inline(always)]
    fn mul_add(self, a: f64, b: f64) -> f64 {
        f64::mul_add(self, a, b)
    }
}

macro_rules! impl_gemm {
    ($t:ty) => {
        impl Gemm for $t {
            unsafe fn gemm(
                m: usize,
                k: usize,
                n: usize,
                a: *const $t,
                a_strides: (isize, isize),
                b: *const $t,
                b_strides: (isize, isize),
                c: *mut $t,
                c_strides: (isize, isize),
            ) {
                let p = Matrices {
                    m,
                    k,
                    n,
                    a,
                    a_strides,
                    b,
                    b_strides,
                    c,
                    c_strides,
                };
                // SAFETY: the caller's contract.
                unsafe { product(p) }
            }
        }
    };
}

impl_gemm!(f32);
impl_gemm!(f64);

/// One product's operands, as `Gemm::gemm` takes them.
struct Matrices<T> {
    m: usize,
    k: usize,
    n: usize,
    a: *const T,
    a_strides: (isize, isize),
    b: *const T,
    b_strides: (isize, isize),
    c: *mut T,
    c_strides: (isize, isize),
}

impl<T> Clone for Matrices<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Matrices<T> {}

// SAFETY: the pointers are only dereferenced under `Gemm::gemm`'s contract, whose caller
// waits until every block handed to another thread is done (`two_threads`, `par::blocks`).
unsafe impl<T: Sync> Sync for Matrices<T> {}

impl<T> Matrices<T> {
    /// Rows `lo..hi` of `c` (and of `a`).
    fn rows(self, lo: usize, hi: usize) -> Self {
        Matrices {
            m: hi - lo,
            a: self.a.wrapping_offset(lo as isize * self.a_strides.0),
            c: self.c.wrapping_offset(lo as isize * self.c_strides.0),
            ..self
        }
    }

    /// The part `lo..hi` of the sum over `k`: columns of `a`, rows of `b`.
    fn ks(self, lo: usize, hi: usize) -> Self {
        Matrices {
            k: hi - lo,
            a: self.a.wrapping_offset(lo as isize * self.a_strides.1),
            b: self.b.wrapping_offset(lo as isize * self.b_strides.0),
            ..self
        }
    }

    /// Columns `lo..hi` of `c` (and of `b`).
    fn cols(self, lo: usize, hi: usize) -> Self {
        Matrices {
            n: hi - lo,
            b: self.b.wrapping_offset(lo as isize * self.b_strides.1),
            c: self.c.wrapping_offset(lo as isize * self.c_strides.1),
            ..self
        }
    }
}

/// `c = a * b`, as the module doc says.
///
/// # Safety
/// `Gemm::gemm`'s contract.
unsafe fn product<T: Element>(p: Matrices<T>) {
    if p.m == 0 || p.n == 0 {
        return;
    }
    let work = p.m.saturating_mul(p.k).saturating_mul(p.n);
    // SAFETY: the caller's contract.
    unsafe {
        if work <= SMALL {
            plain(p);
        } else if work >= SKINNY && skinny::accepts(&p) {
            skinny_threads(p);
        } else if work >= PARALLEL && p.m.max(p.n) >= 32 {
            two_threads(p);
        } else {
            single(p);
        }
    }
}

/// The definition as a loop (sums in order of `k`; zeros when `k == 0`).
///
/// # Safety
/// `Gemm::gemm`'s contract.
unsafe fn plain<T: Element>(p: Matrices<T>) {
    let ((rsa, csa), (rsb, csb), (rsc, csc)) = (p.a_strides, p.b_strides, p.c_strides);
    for i in 0..p.m as isize {
        for j in 0..p.n as isize {
            let mut acc = T::default();
            for l in 0..p.k as isize {
                // SAFETY: the caller's contract: every index is inside its matrix.
                acc = acc
                    + unsafe { *p.a.offset(i * rsa + l * csa) * *p.b.offset(l * rsb + j * csb) };
            }
            // SAFETY: the same.
            unsafe { *p.c.offset(i * rsc + j * csc) = acc };
        }
    }
}

/// The gemm crate on this thread, `c` computed in whichever orientation packs less.
///
/// # Safety
/// `Gemm::gemm`'s contract.
unsafe fn single<T: Element>(p: Matrices<T>) {
    let Matrices { m, k, n, .. } = p;
    // The crate computes a `c` with rows closer than columns as `c^T = b^T a^T`, packing
    // `b^T` by transposition unless `b`'s columns are one apart; a column-major `c` packs `a`
    // by transposition unless its rows are one apart, and costs a copy of `c`.
    let transposed = p.c_strides.1.unsigned_abs() < p.c_strides.0.unsigned_abs();
    let cost_as_is = if p.b_strides.1.unsigned_abs() != 1 {
        k * n
    } else {
        0
    };
    let cost_flipped = m * n
        + if p.a_strides.0.unsigned_abs() != 1 {
            m * k
        } else {
            0
        };
    // SAFETY: the caller's contract; the scratch is an `m x n` column-major matrix.
    unsafe {
        if transposed && cost_flipped < cost_as_is {
            let mut scratch = vec![T::default(); m * n];
            crate_gemm(Matrices {
                c: scratch.as_mut_ptr(),
                c_strides: (1, m as isize),
                ..p
            });
            let (rsc, csc) = p.c_strides;
            for i in 0..m {
                let row = p.c.offset(i as isize * rsc);
                for j in 0..n {
                    *row.offset(j as isize * csc) = scratch[j * m + i];
                }
            }
        } else {
            crate_gemm(p);
        }
    }
}

/// One call of the gemm crate, one thread (its convention: `dst = alpha·dst + beta·lhs·rhs`,
/// sizes `m, n, k`, column stride before row stride; `dst` not read).
///
/// # Safety
/// `Gemm::gemm`'s contract.
unsafe fn crate_gemm<T: Element>(p: Matrices<T>) {
    let ((rsa, csa), (rsb, csb), (rsc, csc)) = (p.a_strides, p.b_strides, p.c_strides);
    // SAFETY: the caller's contract, which is the crate's.
    unsafe {
        gemm::gemm(
            p.m,
            p.n,
            p.k,
            p.c,
            csc,
            rsc,
            false,
            p.a,
            csa,
            rsa,
            p.b,
            csb,
            rsb,
            T::default(),
            T::ONE,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// `c` cut in two blocks along its longer side (at a multiple of 16), claimed by this thread
/// and the helper, each block computed by `single`.
///
/// # Safety
/// `Gemm::gemm`'s contract.
unsafe fn two_threads<T: Element>(p: Matrices<T>) {
    if !par::available() {
        // SAFETY: the caller's contract.
        return unsafe { single(p) };
    }
    let len = p.m.max(p.n);
    let cut = (len / 2).next_multiple_of(16).min(len);
    let blocks = [(0, cut), (cut, len)];
    let block = move |i: usize| {
        let (lo, hi) = blocks[i];
        if p.m >= p.n {
            p.rows(lo, hi)
        } else {
            p.cols(lo, hi)
        }
    };
    // SAFETY: the caller's contract; blocks do not overlap, and `par::blocks` returns only
    // when both are done.
    par::blocks(blocks.len(), &|i| unsafe { single(block(i)) });
}

/// A skinny product (`skinny.rs`); from `PARALLEL` multiply-adds, cut along the sum into
/// runs of `b`'s rows (two, or up to `SKINNY_BLOCKS` of at least `SKINNY_ROWS`), each one
/// stream from memory, which the two threads claim until none is left. Block 0 writes `c`, every other
/// block a scratch result; the scratch results are then added to `c` in block order,
/// whichever thread computed which: results do not depend on timing. (Two halves, one per
/// thread, ran AlexNet's first dense layer in 15-17 ms instead of 7 whenever one core read
/// memory slower than the other: the other thread then waited.)
///
/// # Safety
/// `Gemm::gemm`'s contract, and `skinny::accepts(&p)`.
unsafe fn skinny_threads<T: Element>(p: Matrices<T>) {
    if p.m * p.k * p.n < PARALLEL || p.k < 2 || !par::available() {
        // SAFETY: the caller's contract.
        return unsafe { skinny::product(p) };
    }
    let blocks = (p.k / SKINNY_ROWS).clamp(2, SKINNY_BLOCKS);
    let len = p.m * p.n;
    let mut scratch = vec![T::default(); (blocks - 1) * len];
    let parts: Vec<Matrices<T>> = (0..blocks)
        .map(|i| {
            let ks = par::range(p.k, blocks, i);
            let part = p.ks(ks.start, ks.end);
            if i == 0 {
                part
            } else {
                Matrices {
                    c: scratch[(i - 1) * len..].as_mut_ptr(),
                    c_strides: (p.n as isize, 1),
                    ..part
                }
            }
        })
        .collect();
    // SAFETY: the caller's contract; the blocks write distinct results, and `par::blocks`
    // returns only when all are done.
    par::blocks(blocks, &|i| unsafe { skinny::product(parts[i]) });
    let (rsc, csc) = p.c_strides;
    for part in scratch.chunks_exact(len) {
        for i in 0..p.m {
            for j in 0..p.n {
                // SAFETY: the caller's contract: `(i, j)` is inside `c`.
                unsafe {
                    let at = p.c.offset(i as isize * rsc + j as isize * csc);
                    *at = *at + part[i * p.n + j];
                }
            }
        }
    }
}

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

    /// `mat_mul` of `x` by `y` into each layout of result, in f64 and f32, against the
    /// definition.
    fn check(x: ArrayView2<'_, f64>, y: ArrayView2<'_, f64>, what: &str) {
        let want = naive(&x, &y);
        let (m, n) = want.dim();
        let mut got = Array2::from_elem((m, n), f64::NAN);
        mat_mul(x, y, got.view_mut());
        assert_eq!(got, want, "{what}, f64");
        let (x32, y32) = (x.mapv(|v| v as f32), y.mapv(|v| v as f32));
        let mut got32 = Array2::from_elem((m, n), f32::NAN);
        mat_mul(x32.view(), y32.view(), got32.view_mut());
        assert_eq!(got32.mapv(f64::from), want, "{what}, f32");
        // Into a column block of a wider result, a transposed one and a reversed one.
        let mut wide = Array2::from_elem((m, n + 3), f64::NAN);
        mat_mul(x, y, wide.slice_mut(s![.., 1..n + 1]));
        assert_eq!(wide.slice(s![.., 1..n + 1]), want, "{what}, column block");
        assert!(wide.column(0).iter().all(|v| v.is_nan()));
        let mut tall = Array2::from_elem((n, m), f64::NAN);
        mat_mul(x, y, tall.view_mut().reversed_axes());
        assert_eq!(tall.t(), want, "{what}, transposed result");
        let mut reversed = Array2::from_elem((m, n), f64::NAN);
        mat_mul(x, y, reversed.slice_mut(s![..;-1, ..]));
        assert_eq!(
            reversed.slice(s![..;-1, ..]),
            want,
            "{what}, reversed result"
        );
    }

    #[test]
    fn products_of_any_strides_and_sizes_are_exact_on_integers() {
        // Every path: the plain loop (up to 4x4x4), one thread (as is, and with a scratch
        // column-major result where b is column-major and a small), two threads (cut along
        // rows, along columns, with the scratch result).
        for &(m, k, n) in &[
            (0, 3, 4),
            (3, 0, 4),
            (3, 4, 0),
            (1, 1, 1),
            (4, 4, 4),
            (7, 9, 5),
            (17, 33, 65),
            (128, 256, 10),
            (8, 300, 200),
            (128, 128, 128),
            (40, 1400, 40),
            (16, 2048, 128),
            // Skinny products (`skinny.rs`): one thread, two threads on two and on eight runs
            // of `k`, a last tile of 8 columns, one and five rows, `k == 1`.
            (8, 300, 200),
            (5, 700, 1000),
            (8, 2100, 264),
            (1, 4096, 100),
            (8, 1, 40000),
        ] {
            let a = filled(m, k, 1);
            let b = filled(k, n, 2);
            let at = filled(k, m, 3).reversed_axes();
            let bt = filled(n, k, 4).reversed_axes();
            check(a.view(), b.view(), &format!("{m}x{k}x{n}"));
            check(at.view(), b.view(), &format!("{m}x{k}x{n}, a transposed"));
            check(a.view(), bt.view(), &format!("{m}x{k}x{n}, b transposed"));
            check(
                at.view(),
                bt.view(),
                &format!("{m}x{k}x{n}, both transposed"),
            );
            let (ar, br) = (a.slice(s![..;-1, ..]), b.slice(s![.., ..;-1]));
            check(ar, br, &format!("{m}x{k}x{n}, reversed"));
            if k > 0 {
                let row = filled(1, k, 5);
                let broadcast = row.broadcast((m, k)).unwrap();
                check(broadcast, b.view(), &format!("{m}x{k}x{n}, broadcast"));
            }
        }
    }

    #[test]
    fn threads_sharing_the_helper_get_their_own_products() {
        let (a, b) = (filled(128, 160, 1), filled(160, 136, 2));
        let want = naive(&a.view(), &b.view());
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..20 {
                        let mut got = Array2::from_elem(want.dim(), f64::NAN);
                        mat_mul(a.view(), b.view(), got.view_mut());
                        assert_eq!(got, want);
                    }
                });
            }
        });
    }
}
