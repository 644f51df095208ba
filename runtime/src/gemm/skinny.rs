//! Products with at most `ROWS` rows of `a` and contiguous rows of `b` (a dense layer's batch
//! of 8 times its weights): `c = a · b` in one pass over `b`, the large operand, streamed from
//! memory. The gemm crate computes such a product as `c^T = b^T a^T` with its 6- and 2-column
//! kernels side by side, reading `b` twice, and has nothing to reuse in its blocking: AlexNet's
//! `[8,9216] · [9216,4096]` ran at 12 GB/s there.
//!
//! `rows` goes along a block of `b` (whole rows, asked for from memory while the previous
//! block is computed, so that it is in the L2 cache when its turn comes) by tiles of `c`
//! (every row, `W` columns) held in registers: each step loads `W` elements of a row `l` of
//! the block straight from `b` (asked for into L1 a tile before) and adds `a[i, l]` (from a
//! copy of the block's columns of `a`) times them to row `i` of the tile, with one FMA per
//! vector. A tile's steps are one piece of code (`tile`) with the tile in registers; only a
//! last tile narrower than `W`, and the tiles of a `c` whose rows are strided, go through
//! copies (`b`'s rows padded with zeros). (Copying each block into a buffer first, as the
//! kernel once did, cost 10.5 against 7.3 ms on AlexNet's first dense layer.) Each element's
//! sum is in order of `l`. The kernel is compiled for
//! AVX-512, for AVX2 + FMA and for the baseline (without FMA), picked at run time.

use super::{Element, Matrices};

/// The most rows of `a` (and `c`) a skinny product has.
pub const ROWS: usize = 8;

/// The most rows of `b` in a block.
const KC: usize = 256;

/// True when `p` is a skinny product: at most `ROWS` rows, `b`'s rows contiguous.
pub fn accepts<T>(p: &Matrices<T>) -> bool {
    (1..=ROWS).contains(&p.m) && p.k > 0 && p.n >= 64 && p.b_strides.1 == 1
}

/// `c = a · b` for a product `accepts` took (or a part of one by `Matrices::ks` or
/// `Matrices::rows`).
///
/// # Safety
/// `Gemm::gemm`'s contract, and `b`'s rows contiguous.
pub unsafe fn product<T: Element>(p: Matrices<T>) {
    if p.k == 0 {
        for i in 0..p.m {
            for j in 0..p.n {
                // SAFETY: the caller's contract.
                unsafe {
                    *p.c.offset(i as isize * p.c_strides.0 + j as isize * p.c_strides.1) =
                        T::default()
                };
            }
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the feature was detected; the caller's contract.
            return unsafe { avx512(p) };
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the same.
            return unsafe { avx2(p) };
        }
    }
    // SAFETY: the caller's contract.
    unsafe { dispatch::<T, false>(p, 16) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn avx512<T: Element>(p: Matrices<T>) {
    // SAFETY: the caller's contract.
    unsafe { dispatch::<T, true>(p, 64) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2<T: Element>(p: Matrices<T>) {
    // SAFETY: the caller's contract.
    unsafe { dispatch::<T, true>(p, 32) }
}

/// The kernel for `p.m` rows, its tile two vectors of `vector` bytes wide (`8 x W` elements
/// of `c`: 16 registers of AVX-512).
#[inline(always)]
unsafe fn dispatch<T: Element, const FMA: bool>(p: Matrices<T>, vector: usize) {
    macro_rules! by_rows {
        ($w:expr) => {
            match p.m {
                1 => rows::<T, FMA, 1, $w>(p),
                2 => rows::<T, FMA, 2, $w>(p),
                3 => rows::<T, FMA, 3, $w>(p),
                4 => rows::<T, FMA, 4, $w>(p),
                5 => rows::<T, FMA, 5, $w>(p),
                6 => rows::<T, FMA, 6, $w>(p),
                7 => rows::<T, FMA, 7, $w>(p),
                _ => rows::<T, FMA, 8, $w>(p),
            }
        };
    }
    // SAFETY: the caller's contract.
    unsafe {
        match vector / std::mem::size_of::<T>() {
            16 => by_rows!(32),
            8 => by_rows!(16),
            4 => by_rows!(8),
            _ => by_rows!(4),
        }
    }
}

/// The `rows` kernel (module doc) for `M` rows and tiles of `W` columns.
#[inline(always)]
unsafe fn rows<T: Element, const FMA: bool, const M: usize, const W: usize>(p: Matrices<T>) {
    let ((rsa, csa), rsb, (rsc, csc)) = (p.a_strides, p.b_strides.0, p.c_strides);
    let size = std::mem::size_of::<T>();
    let nb = (PANEL_BYTES / size).min(p.n.next_multiple_of(W));
    let kc = (BLOCK_BYTES / (nb * size)).clamp(4, KC).min(p.k);
    // The last tile of a panel narrower than `W`: its rows, padded with zeros, and its part
    // of `c`, `M` rows of `W`.
    let mut tail = vec![T::default(); kc * W];
    let mut tail_c = [[T::default(); W]; M];
    // The block's columns of `a`, `M` values per row of `b`: one line for every few steps,
    // where `a`'s own rows (a multiple of 4 KiB apart in AlexNet) are `M` lines in one cache
    // set (7.4 -> 6.7 ms on `[8,9216] · [9216,4096]`, 339 -> 303 µs on
    // `[8,512] · [512,4096]`).
    let mut packed = vec![T::default(); kc * M];
    let at = |i: usize, j: usize| i as isize * rsc + j as isize * csc;
    // SAFETY (every access): `Gemm::gemm`'s contract; `i < m`, `l < k`, `j + w < n`, and
    // `b`'s rows are contiguous (`layout`).
    unsafe {
        for l0 in (0..p.k).step_by(kc) {
            let l1 = (l0 + kc).min(p.k);
            for (r, l) in (l0..l1).enumerate() {
                for (i, x) in packed[r * M..(r + 1) * M].iter_mut().enumerate() {
                    *x = *p.a.offset(i as isize * rsa + l as isize * csa);
                }
            }
            let block = &packed[..(l1 - l0) * M];
            for j0 in (0..p.n).step_by(nb) {
                let width = nb.min(p.n - j0);
                // While this block's tiles go by, the next block (the next panel of these
                // rows, or the next rows) is asked for, a share per step, so that reading
                // it from memory overlaps this block's arithmetic (a tile's share at once
                // stalled on the outstanding misses: 337 -> 307 µs on `[8,512] · [512,4096]`,
                // 6.8 -> 6.6 ms on `[8,9216] · [9216,4096]`).
                let (next_l, next_j) = if j0 + nb < p.n {
                    (l0, j0 + nb)
                } else {
                    (l1, 0)
                };
                let mut next = if next_l < p.k {
                    let rows = (next_l + kc).min(p.k) - next_l;
                    let width = nb.min(p.n - next_j);
                    let first = p.b.wrapping_offset(next_l as isize * rsb + next_j as isize);
                    Ahead::new(
                        first,
                        rsb,
                        rows,
                        width * size,
                        width.div_ceil(W) * (l1 - l0),
                    )
                } else {
                    Ahead::default()
                };
                let whole_tiles = if csc == 1 { width / W } else { 0 };
                for j in (0..whole_tiles * W).step_by(W) {
                    let b = p.b.offset(l0 as isize * rsb + (j0 + j) as isize);
                    let c = p.c.offset(at(0, j0 + j));
                    let steps = Steps {
                        b,
                        rsb,
                        packed: block,
                        first: l0 == 0,
                        ahead: &mut next,
                    };
                    tile::<T, FMA, M, W>(c, rsc, steps);
                }
                // A tile narrower than `W`, or any tile of a `c` with strided rows: through
                // copies (`c`'s part) and padded copies (`b`'s rows).
                for j in (whole_tiles * W..width).step_by(W) {
                    let valid = W.min(width - j);
                    let b = if valid == W {
                        p.b.offset(l0 as isize * rsb + (j0 + j) as isize)
                    } else {
                        for (r, l) in (l0..l1).enumerate() {
                            let from = std::slice::from_raw_parts(
                                p.b.offset(l as isize * rsb + (j0 + j) as isize),
                                valid,
                            );
                            let to = &mut tail[r * W..(r + 1) * W];
                            to[..valid].copy_from_slice(from);
                            to[valid..].fill(T::default());
                        }
                        tail.as_ptr()
                    };
                    let rsb = if valid == W { rsb } else { W as isize };
                    // (The first block's tile starts from zeros: `c` is not read, nor yet
                    // written.)
                    for (i, row) in tail_c.iter_mut().enumerate().filter(|_| l0 > 0) {
                        for (w, v) in row[..valid].iter_mut().enumerate() {
                            *v = *p.c.offset(at(i, j0 + j + w));
                        }
                    }
                    let steps = Steps {
                        b,
                        rsb,
                        packed: block,
                        first: l0 == 0,
                        ahead: &mut next,
                    };
                    tile::<T, FMA, M, W>(tail_c.as_mut_ptr().cast(), W as isize, steps);
                    for (i, row) in tail_c.iter().enumerate() {
                        for (w, &v) in row[..valid].iter().enumerate() {
                            *p.c.offset(at(i, j0 + j + w)) = v;
                        }
                    }
                }
            }
        }
    }
}

/// The rows of `b` a tile of the `rows` kernel goes along, with `a`'s packed columns and the
/// next block's prefetches.
struct Steps<'a, T> {
    /// The tile's part of the block's first row.
    b: *const T,
    /// Elements from one row of `b` to the next.
    rsb: isize,
    /// The block's columns of `a`, `M` per row.
    packed: &'a [T],
    /// The first block: the tile starts from zeros, not from `c`.
    first: bool,
    ahead: &'a mut Ahead,
}

/// One tile (`M x W` elements of `c` from `c`, rows `rsc` apart) of the `rows` kernel, in
/// registers: `c = a · b` (the first block) or `c += a · b` over the block's rows, each row `W` elements of `b` and `M` of
/// `a`, in order. Tiles are read and written whole, by vectors, so that `acc` stays in
/// registers; only where this is inlined with constant `M` and `W` (the tile's code in one
/// piece, as in a hand-written kernel, ran 2.0 -> 2.8 FMAs per ns on one core with `b` in
/// cache, from a loop that chose between `b` and a padded copy at each step).
///
/// # Safety
/// `c` holds the tile; `steps.b` the tile's rows for every row of `packed`.
#[inline(always)]
unsafe fn tile<T: Element, const FMA: bool, const M: usize, const W: usize>(
    c: *mut T,
    rsc: isize,
    steps: Steps<'_, T>,
) {
    // SAFETY: the caller's contract.
    unsafe {
        let mut acc = [[T::default(); W]; M];
        if !steps.first {
            for (i, row) in acc.iter_mut().enumerate() {
                *row = c.offset(i as isize * rsc).cast::<[T; W]>().read_unaligned();
            }
        }
        let (mut b, mut a) = (steps.b, steps.packed.as_ptr());
        for _ in 0..steps.packed.len() / M {
            steps.ahead.step();
            // The same row's line of the next tile, from L2 into L1, a tile ahead (6.6 -> 5.8
            // ms on `[8,9216] · [9216,4096]`, 14.1 -> 11.4 on one thread; the row `l + d` of
            // this tile, in the same cache sets, was slower).
            for line in 0..(W * std::mem::size_of::<T>()).div_ceil(64) {
                prefetch::<true>(b.wrapping_add(W).cast::<u8>().wrapping_add(line * 64));
            }
            let line = b.cast::<[T; W]>().read_unaligned();
            for (i, row) in acc.iter_mut().enumerate() {
                let x = *a.add(i);
                for (v, &y) in row.iter_mut().zip(&line) {
                    *v = mul_add::<T, FMA>(x, y, *v);
                }
            }
            (b, a) = (b.offset(steps.rsb), a.add(M));
        }
        for (i, row) in acc.iter().enumerate() {
            c.offset(i as isize * rsc)
                .cast::<[T; W]>()
                .write_unaligned(*row);
        }
    }
}

/// The next block's lines, asked for into L2 a few at each step of the current block.
#[derive(Default)]
struct Ahead {
    /// The next block's first row, and the bytes from one row to the next.
    first: *const u8,
    row_bytes: isize,
    /// Lines per row and rows; the next line to ask for (row and line in it).
    lines_per_row: usize,
    rows: usize,
    row: usize,
    line: usize,
    /// Lines asked for at each step.
    per_step: usize,
}

impl Ahead {
    /// The block of `rows` rows of `bytes` from `first` (rows `rsb` elements apart), over
    /// `steps` steps.
    fn new<T>(first: *const T, rsb: isize, rows: usize, bytes: usize, steps: usize) -> Self {
        let lines_per_row = bytes.div_ceil(64);
        Ahead {
            first: first.cast(),
            row_bytes: rsb * std::mem::size_of::<T>() as isize,
            lines_per_row,
            rows,
            row: 0,
            line: 0,
            per_step: (rows * lines_per_row).div_ceil(steps.max(1)),
        }
    }

    /// Asks for this step's lines.
    #[inline(always)]
    fn step(&mut self) {
        for _ in 0..self.per_step {
            if self.row == self.rows {
                return;
            }
            let row = self
                .first
                .wrapping_offset(self.row as isize * self.row_bytes);
            prefetch::<false>(row.wrapping_add(self.line * 64));
            self.line += 1;
            if self.line == self.lines_per_row {
                (self.row, self.line) = (self.row + 1, 0);
            }
        }
    }
}

/// Asks for the cache line at `at`, into L1 or (`L1` false) into L2 (any address: a prefetch
/// never faults).
#[inline(always)]
fn prefetch<const L1: bool>(at: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing and cannot fault, whatever the address.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0, _MM_HINT_T1};
        if L1 {
            _mm_prefetch::<_MM_HINT_T0>(at.cast::<i8>());
        } else {
            _mm_prefetch::<_MM_HINT_T1>(at.cast::<i8>());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

/// Bytes of each row of `b` in a block of the `rows` kernel: whole rows up to 64 KiB, so that
/// a block of a row-major `b` is one run of memory to ask for.
const PANEL_BYTES: usize = 1 << 16;

/// Bytes of the `rows` kernel's block (its rows: `BLOCK_BYTES / panel`, 4 to `KC`): with the
/// next block, asked for meanwhile, it fits the L2 cache (1 MiB) while its tiles go by.
/// 256 KiB and 1 MiB were slower (9.0 and 9.9 against 7.3 ms on `[8,9216] · [9216,4096]`).
const BLOCK_BYTES: usize = 1 << 19;

/// `x · y + z`, rounded once where the target has FMA, else twice.
#[inline(always)]
fn mul_add<T: Element, const FMA: bool>(x: T, y: T, z: T) -> T {
    if FMA {
        x.mul_add(y, z)
    } else {
        z + x * y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every compiled variant this machine can run (the baseline always), against the
    /// definition, on small integers (exact in f32 with or without FMA).
    #[test]
    fn every_variant_agrees_with_the_definition() {
        for &(m, k, n) in &[(8, 300, 200), (3, 5, 70), (1, 600, 64), (8, 1, 100)] {
            let a: Vec<f32> = (0..m * k).map(|x| (x % 7) as f32 - 3.0).collect();
            let b: Vec<f32> = (0..k * n).map(|x| (x % 5) as f32 - 2.0).collect();
            let want: Vec<f32> = (0..m * n)
                .map(|ij| (0..k).map(|l| a[ij / n * k + l] * b[l * n + ij % n]).sum())
                .collect();
            let mut c = vec![f32::NAN; m * n];
            let p = Matrices {
                m,
                k,
                n,
                a: a.as_ptr(),
                a_strides: (k as isize, 1),
                b: b.as_ptr(),
                b_strides: (n as isize, 1),
                c: c.as_mut_ptr(),
                c_strides: (n as isize, 1),
            };
            assert!(accepts(&p));
            // SAFETY: the matrices are valid for these sizes; the features are checked.
            unsafe {
                dispatch::<f32, false>(p, 16);
                assert_eq!(c, want, "{m}x{k}x{n}, baseline");
                #[cfg(target_arch = "x86_64")]
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    c.fill(f32::NAN);
                    avx2(p);
                    assert_eq!(c, want, "{m}x{k}x{n}, AVX2");
                }
                #[cfg(target_arch = "x86_64")]
                if std::is_x86_feature_detected!("avx512f") {
                    c.fill(f32::NAN);
                    avx512(p);
                    assert_eq!(c, want, "{m}x{k}x{n}, AVX-512");
                }
            }
        }
    }
}
