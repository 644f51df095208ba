//! Kernels of the windowed reductions (`reduce_window_sum/max/min`) and of the internal
//! `select_and_gather_add`/`select_and_scatter_add`: one pass over the outputs, each visiting
//! the elements of x its window reads, in row-major window order, without materialising the
//! dilated or padded x (holes and padding hold the reduction's identity, so they are skipped).
//!
//! Whether a window position reads an element of x is decided axis by axis, so the positions
//! of an output are the product of per-axis lists, computed once per axis (`Taps`); the
//! product over all axes but the last is formed once per row of outputs, and the last axis's
//! list is the inner loop. A row's outputs go along together, each position of that product
//! outermost, so that their independent folds overlap; every output still visits its own
//! window in row-major order (3x3 max pooling of AlexNet's first layer: 2.6 -> 1.7 ms).
//! Where the last axis's taps are regular (output `y` reads `y * stride + k * dilation`: no
//! padding or holes there, as in pooling), `reduce_window_max/min` go along the row's
//! outputs innermost for each tap, a strided loop that vectorises, each output still folding
//! its taps in window order (the same pooling: 1.74 -> 0.65 ms); for pooling's common
//! windows (3 taps at stride 1 or 2, 2 at stride 2), all of a line's taps in one pass
//! (`fold_taps`: 0.65 -> 0.52 ms).
//!
//! Large kernels (`PARALLEL_WINDOW` window positions) are shared with the helper thread
//! (`crate::par`), in blocks of whole rows of outputs; every output (or element of the
//! scattered result) is computed by the same operations in the same order as on one thread.
//! The reductions and `select_and_gather_add` give each block its rows' outputs. The
//! scatters (`reduce_window_sum_transpose`, `select_and_scatter_add`) are cut only between
//! groups of outputs that differ on the leading axes over which the window is one wide
//! (batch and channel in pooling): those groups read and write disjoint slabs of x, in
//! order, so each block owns a slice of the result; with no such axis they stay on one
//! thread.

use std::ops::Range;

use ndarray::{ArrayD, ArrayViewD, IxDyn};
use traceform_ir::{Select, Window};

use crate::kernels::Real;
use crate::par;

/// Window kernels visiting at least this many window positions (outputs times window size)
/// are shared with the helper thread. Measured (3x3 max pooling and its gradient): 4096
/// outputs took about 35% less time shared, 1024 outputs a few microseconds less.
const PARALLEL_WINDOW: usize = 1 << 15;

/// Blocks a shared kernel is cut into (more than two: see `conv`'s `GATHER_BLOCKS`).
const WINDOW_BLOCKS: usize = 8;

/// Per axis, for each output index, the offsets (index times x's row-major stride) of the
/// elements of x its window positions read, in window order (a compressed sparse row table).
struct Taps {
    out_shape: Vec<usize>,
    starts: Vec<Vec<usize>>,
    offsets: Vec<Vec<usize>>,
}

impl Taps {
    fn new(window: &Window, x_shape: &[usize], out_shape: &[usize]) -> Taps {
        let rank = x_shape.len();
        let mut x_strides = vec![1; rank];
        for d in (0..rank.saturating_sub(1)).rev() {
            x_strides[d] = x_strides[d + 1] * x_shape[d + 1];
        }
        let mut starts = Vec::with_capacity(rank);
        let mut offsets = Vec::with_capacity(rank);
        for d in 0..rank {
            let axis = window.axis(d, x_shape[d]);
            let mut start = Vec::with_capacity(out_shape[d] + 1);
            let mut offset = Vec::new();
            for y in 0..out_shape[d] {
                start.push(offset.len());
                offset.extend(axis.sources(y).into_iter().map(|(_, i)| i * x_strides[d]));
            }
            start.push(offset.len());
            starts.push(start);
            offsets.push(offset);
        }
        Taps {
            out_shape: out_shape.to_vec(),
            starts,
            offsets,
        }
    }

    /// `(stride, dilation, taps)` when the last axis's taps are regular: output `y` reads
    /// offsets `y * stride + k * dilation` for `k < taps` (no padding or holes there), as in
    /// pooling. Rank > 0.
    fn regular_last(&self) -> Option<(usize, usize, usize)> {
        let d = self.out_shape.len() - 1;
        let (starts, offsets) = (&self.starts[d], &self.offsets[d]);
        let taps = starts.get(1)? - starts[0];
        let first = &offsets[..taps];
        let stride = match starts.len() {
            0..=2 => 0,
            _ => offsets.get(taps)?.checked_sub(offsets[0])?,
        };
        let dilation = if taps > 1 {
            first[1].checked_sub(first[0])?
        } else {
            0
        };
        let regular = (0..starts.len() - 1).all(|y| {
            let row = &offsets[starts[y]..starts[y + 1]];
            row.len() == taps
                && row
                    .iter()
                    .enumerate()
                    .all(|(k, &o)| o == y * stride + k * dilation)
        });
        (regular && taps > 0).then_some((stride, dilation, taps))
    }

    /// Rows of outputs: outputs over every axis but the last (rank > 0).
    fn rows(&self) -> usize {
        self.out_shape[..self.out_shape.len() - 1].iter().product()
    }

    /// Calls `f(first, prefix, last)` for every row of outputs in `rows` (rank > 0), in order:
    /// `first` is the row's first output (row-major). The elements of x the window of the
    /// row's output `y` reads are at the flat offsets `p + l` for `p` in `prefix` (the
    /// positions over every axis but the last, built once per row) and `l` in `last.of(y)`
    /// (over the last axis), `p` outermost: row-major window order.
    fn for_each_row_in(&self, rows: Range<usize>, mut f: impl FnMut(usize, &[usize], Last<'_>)) {
        let last_axis = self.out_shape.len() - 1;
        let row_len = self.out_shape[last_axis];
        if rows.is_empty() || row_len == 0 {
            return;
        }
        let last = Last {
            starts: &self.starts[last_axis],
            offsets: &self.offsets[last_axis],
        };
        let mut index = self.row_index(rows.start);
        let (mut prefix, mut next) = (Vec::new(), Vec::new());
        let mut o = rows.start * row_len;
        for _ in rows {
            prefix.clear();
            prefix.push(0);
            for (d, &y) in index.iter().enumerate() {
                let axis = &self.offsets[d][self.starts[d][y]..self.starts[d][y + 1]];
                next.clear();
                for &base in &prefix {
                    next.extend(axis.iter().map(|&off| base + off));
                }
                std::mem::swap(&mut prefix, &mut next);
            }
            f(o, &prefix, last);
            o += row_len;
            for d in (0..last_axis).rev() {
                index[d] += 1;
                if index[d] < self.out_shape[d] {
                    break;
                }
                index[d] = 0;
            }
        }
    }

    /// The output coordinates (every axis but the last) of row `row`.
    fn row_index(&self, mut row: usize) -> Vec<usize> {
        let leading = &self.out_shape[..self.out_shape.len() - 1];
        let mut index = vec![0; leading.len()];
        for d in (0..leading.len()).rev() {
            index[d] = row % leading[d];
            row /= leading[d];
        }
        index
    }

    /// The offset in x of the one element group `group` reads on the leading `axes` axes
    /// (over which the window is one wide), or `None` where it reads padding or a hole.
    fn group_base(&self, mut group: usize, axes: usize) -> Option<usize> {
        let mut base = 0;
        for d in (0..axes).rev() {
            let y = group % self.out_shape[d];
            group /= self.out_shape[d];
            let taps = &self.offsets[d][self.starts[d][y]..self.starts[d][y + 1]];
            base += taps.first()?;
        }
        Some(base)
    }
}

/// The last axis's taps of one row of outputs: `of(y)` are the offsets in x that output `y`
/// of the row reads on that axis, in window order.
#[derive(Clone, Copy)]
struct Last<'a> {
    starts: &'a [usize],
    offsets: &'a [usize],
}

impl<'a> Last<'a> {
    /// The taps of a row of one output reading one element: a rank-0 reduction's.
    const SCALAR: Last<'static> = Last {
        starts: &[0, 1],
        offsets: &[0],
    };

    fn of(&self, y: usize) -> &'a [usize] {
        &self.offsets[self.starts[y]..self.starts[y + 1]]
    }

    fn len(&self) -> usize {
        self.starts.len() - 1
    }
}

/// How many blocks to share a window kernel's outputs in, cut between `units` independent
/// units: 1 (this thread alone) below `PARALLEL_WINDOW` window positions.
fn block_count(taps: &Taps, window_size: usize, units: usize) -> usize {
    let outputs: usize = taps.out_shape.iter().product();
    if outputs.saturating_mul(window_size) >= PARALLEL_WINDOW && par::available() {
        WINDOW_BLOCKS.min(units).max(1)
    } else {
        1
    }
}

/// One value per output, written a row of outputs at a time by `row(prefix, last, out)` (as
/// `Taps::for_each_row_in` gives them; `out` holds `fill`s), in blocks of whole rows when
/// there are many, each block filling its own part of the result. A row at a time lets the
/// kernels interleave the row's outputs: each output's own fold is a chain of dependent
/// operations (a `maxss` is 3 cycles), while the outputs are independent.
fn map_outputs<T: Copy + Send + Sync>(
    taps: &Taps,
    window_size: usize,
    fill: T,
    row: impl Fn(&[usize], Last<'_>, &mut [T]) + Sync,
) -> Vec<T> {
    let count: usize = taps.out_shape.iter().product();
    let mut out = vec![fill; count];
    if taps.out_shape.is_empty() {
        row(&[0], Last::SCALAR, &mut out);
        return out;
    }
    let (rows, row_len) = (taps.rows(), count / taps.rows().max(1));
    let blocks = block_count(taps, window_size, rows);
    let cuts = (1..blocks).map(|i| par::range(rows, blocks, i).start * row_len);
    par::parts(par::cut(&mut out, cuts), &|i, part| {
        let block = par::range(rows, blocks, i);
        let base = block.start * row_len;
        taps.for_each_row_in(block, |first, prefix, last| {
            row(prefix, last, &mut part[first - base..][..row_len])
        });
    });
    out
}

/// x-shaped `zero`s that `update(out, base, first, prefix, last)` adds the contributions of a
/// row of outputs to (output `first + y` of the row, for `y` in order; offset `i` of x is
/// `out[i - base]`), in blocks when there are many outputs. Blocks are cut between groups of
/// outputs that share their coordinates on the leading axes over which the window is one
/// wide: such groups read (and write) disjoint slabs of x, in order, so each block owns the
/// slice of the result from its first slab on, and every element receives its contributions
/// in the same order as on one thread.
fn scatter_outputs<T: Copy + Send + Sync>(
    taps: &Taps,
    window: &Window,
    x_shape: &[usize],
    zero: T,
    update: impl Fn(&mut [T], usize, usize, &[usize], Last<'_>) + Sync,
) -> Vec<T> {
    let mut out = vec![zero; x_shape.iter().product()];
    let rank = taps.out_shape.len();
    if rank == 0 {
        update(&mut out, 0, 0, &[0], Last::SCALAR);
        return out;
    }
    let axes = (0..rank - 1)
        .take_while(|&d| window.dimensions[d] == 1)
        .count();
    let groups: usize = taps.out_shape[..axes].iter().product();
    let blocks = block_count(taps, window.size(), groups);
    if blocks == 1 {
        taps.for_each_row_in(0..taps.rows(), |first, prefix, last| {
            update(&mut out, 0, first, prefix, last)
        });
        return out;
    }
    let rows_per_group = taps.rows() / groups;
    let group_blocks = |i: usize| par::range(groups, blocks, i);
    // Where each block's slabs begin (an empty block: where the next one's do).
    let mut starts = vec![out.len(); blocks + 1];
    for i in (0..blocks).rev() {
        let first = group_blocks(i).find_map(|g| taps.group_base(g, axes));
        starts[i] = first.unwrap_or(starts[i + 1]);
    }
    starts[0] = 0;
    par::parts(
        par::cut(&mut out, starts[1..blocks].iter().copied()),
        &|i, part| {
            let groups = group_blocks(i);
            let rows = groups.start * rows_per_group..groups.end * rows_per_group;
            taps.for_each_row_in(rows, |first, prefix, last| {
                update(part, starts[i], first, prefix, last)
            });
        },
    );
    out
}

/// The elements in row-major order: the view's own slice when it is in standard layout, else
/// a copy.
fn flat<'a, T: Clone>(a: &'a ArrayViewD<'_, T>) -> std::borrow::Cow<'a, [T]> {
    match a.as_slice() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(a.iter().cloned().collect()),
    }
}

fn from_vec<T>(shape: &[usize], data: Vec<T>) -> ArrayD<T> {
    ArrayD::from_shape_vec(IxDyn(shape), data).expect("one element per output")
}

/// `reduce_window_*`: every output starts at `init` (the reduction's identity) and folds in the
/// elements of x its window reads with `f(acc, element)`.
pub fn reduce_window<T: Copy + Send + Sync>(
    x: &ArrayViewD<'_, T>,
    window: &Window,
    out_shape: &[usize],
    init: T,
    f: impl Fn(T, T) -> T + Sync,
) -> ArrayD<T> {
    let xs = flat(x);
    let taps = Taps::new(window, x.shape(), out_shape);
    let out = map_outputs(&taps, window.size(), init, |prefix, last, out| {
        for &p in prefix {
            for (y, acc) in out.iter_mut().enumerate() {
                // A local, not `*acc`, in the loop: each fold through memory waited on the
                // previous store.
                let mut a = *acc;
                for &l in last.of(y) {
                    a = f(a, xs[p + l]);
                }
                *acc = a;
            }
        }
    });
    from_vec(out_shape, out)
}

/// `reduce_window_max`/`_min` of floats: every output starts at `init` (the identity) and
/// takes each element that `beats` it; a window holding a NaN gives NaN. As in `first_best_row`,
/// NaNs stay out of the loop's dependency chain.
pub fn reduce_window_extremum<T: Real + Send + Sync>(
    x: &ArrayViewD<'_, T>,
    window: &Window,
    out_shape: &[usize],
    init: T,
    beats: impl Fn(T, T) -> bool + Sync,
) -> ArrayD<T> {
    let xs = flat(x);
    let taps = Taps::new(window, x.shape(), out_shape);
    let regular = (!out_shape.is_empty())
        .then(|| taps.regular_last())
        .flatten();
    let out = map_outputs(&taps, window.size(), init, |prefix, last, out| {
        let mut any_nan = false;
        if let Some((stride, dilation, count)) = regular {
            // The same folds in the same order per output, with the row's outputs innermost
            // (a strided loop that vectorises).
            for &p in prefix {
                let src = &xs[p..];
                any_nan |= match (stride, dilation, count) {
                    // Pooling's common windows: all taps of an output in one pass.
                    (2, 1, 3) => fold_taps::<T, 2, 1, 3>(src, out, &beats),
                    (1, 1, 3) => fold_taps::<T, 1, 1, 3>(src, out, &beats),
                    (2, 1, 2) => fold_taps::<T, 2, 1, 2>(src, out, &beats),
                    _ => (0..count).fold(false, |nan, k| {
                        let src = &src[k * dilation..];
                        nan | match stride {
                            1 => fold_strided::<T, 1>(src, out, &beats),
                            2 => fold_strided::<T, 2>(src, out, &beats),
                            _ => fold_any_stride(src, stride, out, &beats),
                        }
                    }),
                };
            }
        } else {
            for &p in prefix {
                for (y, acc) in out.iter_mut().enumerate() {
                    let mut a = *acc;
                    for &l in last.of(y) {
                        let v = xs[p + l];
                        a = if beats(v, a) { v } else { a };
                        any_nan |= v.is_nan();
                    }
                    *acc = a;
                }
            }
        }
        if any_nan {
            // The row's windows that hold a NaN give their first one.
            for (y, acc) in out.iter_mut().enumerate() {
                if let Some(i) = first_nan(&xs, prefix, last.of(y)) {
                    *acc = xs[i];
                }
            }
        }
    });
    from_vec(out_shape, out)
}

/// `out[y]` takes `src[y * S]` where it `beats` it, for every `y`; whether one was NaN.
#[inline(always)]
fn fold_strided<T: Real, const S: usize>(
    src: &[T],
    out: &mut [T],
    beats: &impl Fn(T, T) -> bool,
) -> bool {
    let n = out.len();
    // Whole chunks of `S` for all but possibly the last output (whose chunk may end early).
    let whole = if src.len() >= n * S { n } else { n - 1 };
    let mut nan = false;
    for (chunk, a) in src[..whole * S].chunks_exact(S).zip(&mut out[..whole]) {
        let v = chunk[0];
        *a = if beats(v, *a) { v } else { *a };
        nan |= v.is_nan();
    }
    nan | fold_any_stride(&src[whole * S..], S, &mut out[whole..], beats)
}

/// `out[y]` takes each of `src[y * S + k * D]`, `k < C`, in order, where it `beats` it: the
/// `C` taps of one line of a window with stride `S` and dilation `D` in one pass over `out`
/// (a pass per tap, as `fold_strided`, took 0.65 against 0.52 ms on AlexNet's first 3x3
/// pooling; compiled for AVX2 or AVX-512, it was slower still); whether one was NaN.
#[inline(always)]
fn fold_taps<T: Real, const S: usize, const D: usize, const C: usize>(
    src: &[T],
    out: &mut [T],
    beats: &impl Fn(T, T) -> bool,
) -> bool {
    let last = (C - 1) * D;
    // The outputs whose last tap's chunk of `S` lies inside `src` go along in one vectorised
    // loop; the rest (at most the last few) one by one.
    let whole = out.len().min(src.len().saturating_sub(last) / S);
    let mut nan = false;
    let taps: [std::slice::ChunksExact<'_, T>; C] =
        std::array::from_fn(|k| src[k * D..k * D + whole * S].chunks_exact(S));
    let mut taps = taps;
    for a in &mut out[..whole] {
        let mut m = *a;
        for tap in &mut taps {
            let v = tap.next().expect("a chunk per output")[0];
            m = if beats(v, m) { v } else { m };
            nan |= v.is_nan();
        }
        *a = m;
    }
    for (y, a) in out.iter_mut().enumerate().skip(whole) {
        for k in 0..C {
            let v = src[y * S + k * D];
            *a = if beats(v, *a) { v } else { *a };
            nan |= v.is_nan();
        }
    }
    nan
}

/// `fold_strided` for a stride known only at run time.
fn fold_any_stride<T: Real>(
    src: &[T],
    stride: usize,
    out: &mut [T],
    beats: &impl Fn(T, T) -> bool,
) -> bool {
    let mut nan = false;
    for (y, a) in out.iter_mut().enumerate() {
        let v = src[y * stride];
        *a = if beats(v, *a) { v } else { *a };
        nan |= v.is_nan();
    }
    nan
}

/// The offset of the first NaN a window reads (positions `p + l`, `p` in `prefix` outermost:
/// window order), if any.
fn first_nan<T: Real>(xs: &[T], prefix: &[usize], last: &[usize]) -> Option<usize> {
    let mut taps = prefix
        .iter()
        .flat_map(|&p| last.iter().map(move |&l| p + l));
    taps.find(|&i| xs[i].is_nan())
}

/// `reduce_window_sum_transpose c`: zeros of `x_shape`, with each output's `c` added to every
/// element its window reads (the adjoint of `reduce_window`'s sum, visit for visit).
pub fn reduce_window_sum_transpose<T: Copy + Default + Send + Sync>(
    c: &ArrayViewD<'_, T>,
    window: &Window,
    x_shape: &[usize],
    add: impl Fn(T, T) -> T + Sync,
) -> ArrayD<T> {
    let cs = flat(c);
    let taps = Taps::new(window, x_shape, c.shape());
    let zero = T::default();
    let out = scatter_outputs(
        &taps,
        window,
        x_shape,
        zero,
        |out, base, first, prefix, last| {
            for y in 0..last.len() {
                let value = cs[first + y];
                for &p in prefix {
                    for &l in last.of(y) {
                        let i = p + l - base;
                        out[i] = add(out[i], value);
                    }
                }
            }
        },
    );
    from_vec(x_shape, out)
}

/// Where in x the window of each output `y` of a row is selected, `f(y, Some(i))` in order of
/// `y` (`None` for a window that reads no element of x): the first maximum (minimum), a NaN
/// counting as the maximum and the minimum (the first NaN is selected, as `reduce_window_max`
/// returns it).
fn select_row<T: Real>(
    xs: &[T],
    prefix: &[usize],
    last: Last<'_>,
    select: Select,
    f: impl FnMut(usize, Option<usize>),
) {
    match select {
        Select::Max => first_best_row(xs, prefix, last, |c, v| c > v, f),
        Select::Min => first_best_row(xs, prefix, last, |c, v| c < v, f),
    }
}

/// Outputs of a row `first_best_row` follows at once.
const CHUNK: usize = 32;

/// Per output of a row, the first tap no later tap beats (`beats(candidate, current)`), or
/// the first NaN if there is one. Up to `CHUNK` outputs go along together, each with its
/// window in row-major order: their folds are independent, so they overlap. The main loop
/// has no data-dependent branches (comparisons of random data mispredict) and keeps NaNs out
/// of its dependency chains: it only notes whether one was seen; a chunk that saw one finds
/// each window's first NaN again.
#[inline(always)]
fn first_best_row<T: Real>(
    xs: &[T],
    prefix: &[usize],
    last: Last<'_>,
    beats: impl Fn(T, T) -> bool,
    mut f: impl FnMut(usize, Option<usize>),
) {
    let Some(&p0) = prefix.first() else {
        (0..last.len()).for_each(|y| f(y, None));
        return;
    };
    for y0 in (0..last.len()).step_by(CHUNK) {
        let ys = y0..(y0 + CHUNK).min(last.len());
        let (mut best, mut value) = ([0; CHUNK], [T::zero(); CHUNK]);
        for y in ys.clone() {
            if let Some(&l) = last.of(y).first() {
                best[y - y0] = p0 + l;
                value[y - y0] = xs[p0 + l];
            }
        }
        let mut any_nan = false;
        for &p in prefix {
            for y in ys.clone() {
                let (mut b, mut v) = (best[y - y0], value[y - y0]);
                for &l in last.of(y) {
                    let candidate = xs[p + l];
                    let wins = beats(candidate, v);
                    b = if wins { p + l } else { b };
                    v = if wins { candidate } else { v };
                    any_nan |= candidate.is_nan();
                }
                (best[y - y0], value[y - y0]) = (b, v);
            }
        }
        for y in ys {
            let taps = last.of(y);
            let at = if taps.is_empty() {
                None
            } else if any_nan {
                Some(first_nan(xs, prefix, taps).unwrap_or(best[y - y0]))
            } else {
                Some(best[y - y0])
            };
            f(y, at);
        }
    }
}

/// `select_and_gather_add t x`: per window, `t` at the element of x `select` picks (0 for a
/// window that reads none).
pub fn select_and_gather_add<T: Real + Send + Sync>(
    t: &ArrayViewD<'_, T>,
    x: &ArrayViewD<'_, T>,
    select: Select,
    window: &Window,
    out_shape: &[usize],
) -> ArrayD<T> {
    let (ts, xs) = (flat(t), flat(x));
    let taps = Taps::new(window, x.shape(), out_shape);
    let out = map_outputs(&taps, window.size(), T::zero(), |prefix, last, out| {
        select_row(&xs, prefix, last, select, |y, at| {
            out[y] = at.map_or(T::zero(), |i| ts[i])
        })
    });
    from_vec(out_shape, out)
}

/// `select_and_scatter_add c x`: x-shaped zeros, with each window's `c` added to the element
/// of x `select` picks.
pub fn select_and_scatter_add<T: Real + Send + Sync>(
    c: &ArrayViewD<'_, T>,
    x: &ArrayViewD<'_, T>,
    select: Select,
    window: &Window,
) -> ArrayD<T> {
    let (cs, xs) = (flat(c), flat(x));
    let taps = Taps::new(window, x.shape(), c.shape());
    let out = scatter_outputs(
        &taps,
        window,
        x.shape(),
        T::zero(),
        |out, base, first, prefix, last| {
            select_row(&xs, prefix, last, select, |y, at| {
                if let Some(i) = at {
                    out[i - base] = out[i - base] + cs[first + y];
                }
            })
        },
    );
    from_vec(x.shape(), out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic generator (xorshift64*).
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) % n
        }
    }

    /// The spec read literally: x dilated and padded into an explicit array whose holes and
    /// padding are `None`, then every window position visited in row-major order.
    fn naive_windows(
        window: &Window,
        x_shape: &[usize],
        out_shape: &[usize],
    ) -> Vec<Vec<Option<usize>>> {
        let rank = x_shape.len();
        let count: usize = out_shape.iter().product();
        let positions: usize = window.size();
        let mut result = Vec::with_capacity(count);
        for o in 0..count {
            let mut y = vec![0; rank];
            let mut rest = o;
            for d in (0..rank).rev() {
                y[d] = rest % out_shape[d];
                rest /= out_shape[d];
            }
            let mut taps = Vec::with_capacity(positions);
            for k_flat in 0..positions {
                let mut k = vec![0; rank];
                let mut rest = k_flat;
                for d in (0..rank).rev() {
                    k[d] = rest % window.dimensions[d];
                    rest /= window.dimensions[d];
                }
                let mut flat = Some(0usize);
                for d in 0..rank {
                    let p = (y[d] * window.strides[d] + k[d] * window.window_dilation[d]) as i64
                        - window.padding[d].0;
                    let bd = window.base_dilation[d] as i64;
                    let i = p / bd;
                    let inside = p >= 0 && p % bd == 0 && i < x_shape[d] as i64;
                    flat = flat.filter(|_| inside).map(|f| f * x_shape[d] + i as usize);
                }
                taps.push(flat);
            }
            result.push(taps);
        }
        result
    }

    fn random_window(rng: &mut Rng, rank: usize) -> (Window, Vec<usize>) {
        let shape: Vec<usize> = (0..rank).map(|_| 1 + rng.below(5) as usize).collect();
        let dims: Vec<usize> = (0..rank).map(|_| 1 + rng.below(3) as usize).collect();
        let strides: Vec<usize> = (0..rank).map(|_| 1 + rng.below(3) as usize).collect();
        let mut w = Window::new(&dims, &strides);
        for d in 0..rank {
            w.padding[d] = (rng.below(4) as i64 - 1, rng.below(4) as i64 - 1);
            w.base_dilation[d] = 1 + rng.below(2) as usize;
            w.window_dilation[d] = 1 + rng.below(2) as usize;
        }
        (w, shape)
    }

    #[test]
    fn a_nan_is_the_extremum_and_the_first_one_is_selected() {
        let x = ArrayD::from_shape_vec(IxDyn(&[4]), vec![1.0, f64::NAN, 3.0, f64::NAN]).unwrap();
        let t = ArrayD::from_shape_vec(IxDyn(&[4]), vec![10.0, 20.0, 30.0, 40.0]).unwrap();
        let w = Window::new(&[4], &[1]);
        for select in [Select::Max, Select::Min] {
            let g = select_and_gather_add(&t.view(), &x.view(), select, &w, &[1]);
            assert_eq!(g.as_slice().unwrap(), &[20.0]);
        }
        let out = traceform_ir::Type::new(traceform_ir::DType::F64, [1]);
        let x = crate::Value::F64(x);
        for prim in [
            traceform_ir::Prim::ReduceWindowMax(Box::new(w.clone())),
            traceform_ir::Prim::ReduceWindowMin(Box::new(w.clone())),
        ] {
            let m = crate::apply(&prim, &[x.view()], &out).unwrap();
            assert!(m.to_f64_vec()[0].is_nan(), "{}", prim.name());
        }
    }

    /// A row of outputs where some windows hold NaNs (of distinct payloads) and others do not:
    /// each output is its own window's first NaN, or its extremum, as one output alone is
    /// (on the strided path of regular taps, too).
    #[test]
    fn nans_in_a_row_of_windows_stay_in_their_own() {
        let nan = |payload: u64| f64::from_bits(f64::NAN.to_bits() | payload);
        let mut xs: Vec<f64> = (0..41).map(|i| ((i * 7) % 11) as f64).collect();
        for (at, payload) in [(4, 1), (5, 2), (30, 3)] {
            xs[at] = nan(payload);
        }
        let ts: Vec<f64> = (0..41).map(|i| 100.0 + i as f64).collect();
        let x = ArrayD::from_shape_vec(IxDyn(&[41]), xs.clone()).unwrap();
        let t = ArrayD::from_shape_vec(IxDyn(&[41]), ts.clone()).unwrap();
        let w = Window::new(&[3], &[2]);
        let out_shape = w.output_shape(&[41]).unwrap();
        // Pooling's regular taps: the reductions take the strided path.
        assert_eq!(
            Taps::new(&w, &[41], &out_shape).regular_last(),
            Some((2, 1, 3))
        );
        let maxes =
            reduce_window_extremum(&x.view(), &w, &out_shape, f64::NEG_INFINITY, |v, a| v > a);
        let gathered = select_and_gather_add(&t.view(), &x.view(), Select::Max, &w, &out_shape);
        for y in 0..out_shape[0] {
            let window = &xs[2 * y..2 * y + 3];
            let (want, at) = match window.iter().position(|v| v.is_nan()) {
                Some(i) => (window[i], 2 * y + i),
                None => {
                    let i = (0..3).reduce(|b, i| if window[i] > window[b] { i } else { b });
                    (window[i.unwrap()], 2 * y + i.unwrap())
                }
            };
            assert_eq!(maxes[[y]].to_bits(), want.to_bits(), "output {y}");
            assert_eq!(gathered[[y]], ts[at], "output {y}");
        }
    }

    /// Every kernel on x of `shape` (few distinct values, so that ties are common) against
    /// the spec read literally.
    fn check_against_the_spec(rng: &mut Rng, window: &Window, shape: &[usize]) {
        let out_shape = window.output_shape(shape).unwrap();
        let n: usize = shape.iter().product();
        let xs: Vec<f64> = (0..n).map(|_| rng.below(3) as f64).collect();
        let ts: Vec<f64> = (0..n).map(|_| rng.below(1000) as f64).collect();
        let x = ArrayD::from_shape_vec(IxDyn(shape), xs.clone()).unwrap();
        let t = ArrayD::from_shape_vec(IxDyn(shape), ts.clone()).unwrap();
        let xi = x.mapv(|v| v as i32);
        let windows = naive_windows(window, shape, &out_shape);
        let sums = reduce_window(&x.view(), window, &out_shape, 0.0, |a, b| a + b);
        let maxes = reduce_window(&xi.view(), window, &out_shape, i32::MIN, i32::max);
        let mins =
            reduce_window_extremum(&x.view(), window, &out_shape, f64::INFINITY, |v, a| v < a);
        let gathered = select_and_gather_add(&t.view(), &x.view(), Select::Min, window, &out_shape);
        let m: usize = out_shape.iter().product();
        let cs =
            ArrayD::from_shape_vec(IxDyn(&out_shape), (0..m).map(|o| o as f64 + 1.0).collect())
                .unwrap();
        let scattered = select_and_scatter_add(&cs.view(), &x.view(), Select::Max, window);
        let spread = reduce_window_sum_transpose(&cs.view(), window, shape, |a, b| a + b);
        let mut want_spread = vec![0.0; n];
        let mut want_scatter = vec![0.0; n];
        for (o, taps) in windows.iter().enumerate() {
            let elements: Vec<usize> = taps.iter().flatten().copied().collect();
            let sum: f64 = elements.iter().map(|&i| xs[i]).sum();
            for &i in &elements {
                want_spread[i] += cs.as_slice().unwrap()[o];
            }
            assert_eq!(sums.as_slice().unwrap()[o], sum, "{window:?} {shape:?}");
            let max = elements
                .iter()
                .map(|&i| xs[i] as i32)
                .max()
                .unwrap_or(i32::MIN);
            assert_eq!(maxes.as_slice().unwrap()[o], max);
            let min = elements
                .iter()
                .map(|&i| xs[i])
                .fold(f64::INFINITY, f64::min);
            assert_eq!(mins.as_slice().unwrap()[o], min);
            // The first minimum (maximum) in window order: the lowest position whose value
            // no earlier one beats.
            let first_min =
                elements
                    .iter()
                    .copied()
                    .reduce(|best, i| if xs[i] < xs[best] { i } else { best });
            assert_eq!(
                gathered.as_slice().unwrap()[o],
                first_min.map_or(0.0, |i| ts[i])
            );
            let first_max =
                elements
                    .iter()
                    .copied()
                    .reduce(|best, i| if xs[i] > xs[best] { i } else { best });
            if let Some(i) = first_max {
                want_scatter[i] += cs.as_slice().unwrap()[o];
            }
        }
        assert_eq!(scattered.as_slice().unwrap(), want_scatter.as_slice());
        assert_eq!(spread.as_slice().unwrap(), want_spread.as_slice());
    }

    #[test]
    fn kernels_agree_with_the_spec_read_literally() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut checked = 0;
        for case in 0..400 {
            let (window, shape) = random_window(&mut rng, 1 + case % 3);
            if window.output_shape(&shape).is_ok() {
                check_against_the_spec(&mut rng, &window, &shape);
                checked += 1;
            }
        }
        assert!(checked > 200, "{checked} configurations checked");
    }

    /// Pooling's common windows, whose taps along the last axis fold in one pass
    /// (`fold_taps`), on lines of odd and even lengths (so that the last outputs take the
    /// one-by-one path).
    #[test]
    fn pooling_windows_folded_in_one_pass_agree_with_the_spec() {
        let mut rng = Rng(11);
        for (size, stride) in [(3, 2), (3, 1), (2, 2)] {
            for last in [7, 8, 9, 40, 41] {
                let window = Window::new(&[1, size, size], &[1, stride, stride]);
                let shape = [3, 9, last];
                let out = window.output_shape(&shape).unwrap();
                let taps = Taps::new(&window, &shape, &out);
                assert_eq!(taps.regular_last(), Some((stride, 1, size)));
                check_against_the_spec(&mut rng, &window, &shape);
            }
        }
    }

    #[test]
    fn kernels_shared_with_the_helper_agree_with_the_spec() {
        // Above the threshold, odd sizes; leading axes one wide with strides, padding and
        // dilation (so that some groups of outputs read nothing), and one wider.
        let mut rng = Rng(5);
        let pool = |dims: &[usize], strides: &[usize]| Window::new(dims, strides);
        let mut strided = pool(&[1, 1, 3, 2], &[2, 1, 2, 1]);
        strided.padding[0] = (2, 1);
        strided.base_dilation[0] = 2;
        strided.padding[1] = (-1, 1);
        let mut wide = pool(&[1, 2, 3, 3], &[1, 1, 2, 1]);
        wide.padding[3] = (1, 1);
        for (window, shape) in [
            (pool(&[1, 1, 3, 3], &[1, 1, 2, 1]), [3, 37, 59, 31]),
            (strided, [5, 17, 53, 29]),
            (wide, [3, 23, 61, 35]),
        ] {
            let outputs: usize = window.output_shape(&shape).unwrap().iter().product();
            assert!(outputs * window.size() >= 4 * PARALLEL_WINDOW, "{outputs}");
            check_against_the_spec(&mut rng, &window, &shape);
        }
    }
}
