//! Kernels of the windowed reductions (`reduce_window_sum/max/min`) and of the internal
//! `select_and_gather_add`/`select_and_scatter_add`: one pass over the outputs, each visiting
//! the elements of x its window reads, in row-major window order, without materialising the
//! dilated or padded x (holes and padding hold the reduction's identity, so they are skipped).
//!
//! Whether a window position reads an element of x is decided axis by axis, so the positions
//! of an output are the product of per-axis lists, computed once per axis (`Taps`); the
//! product over all axes but the last is formed once per row of outputs, and the last axis's
//! list is the inner loop.
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

    /// Calls `f(o, prefix, last)` for every output `o` (row-major): the elements of x its
    /// window reads are at the flat offsets `p + l` for `p` in `prefix` (the positions over
    /// every axis but the last) and `l` in `last` (over the last axis), `p` outermost: row-major
    /// window order. `prefix` is built once per row of outputs.
    fn for_each(&self, mut f: impl FnMut(usize, &[usize], &[usize])) {
        match self.out_shape.len() {
            0 => f(0, &[0], &[0]),
            _ => self.for_each_in(0..self.rows(), f),
        }
    }

    /// Rows of outputs: outputs over every axis but the last (rank > 0).
    fn rows(&self) -> usize {
        self.out_shape[..self.out_shape.len() - 1].iter().product()
    }

    /// `for_each` over the outputs of rows `rows` only (rank > 0).
    fn for_each_in(&self, rows: Range<usize>, mut f: impl FnMut(usize, &[usize], &[usize])) {
        let last_axis = self.out_shape.len() - 1;
        let row_len = self.out_shape[last_axis];
        if rows.is_empty() || row_len == 0 {
            return;
        }
        let (starts, offsets) = (&self.starts[last_axis], &self.offsets[last_axis]);
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
            for y in 0..row_len {
                f(o, &prefix, &offsets[starts[y]..starts[y + 1]]);
                o += 1;
            }
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

/// One value per output, `value(prefix, last)` (as `Taps::for_each` gives them), in blocks of
/// whole rows of outputs when there are many, each block filling its own part of the result.
fn map_outputs<T: Copy + Send + Sync>(
    taps: &Taps,
    window_size: usize,
    fill: T,
    value: impl Fn(&[usize], &[usize]) -> T + Sync,
) -> Vec<T> {
    let count: usize = taps.out_shape.iter().product();
    let mut out = vec![fill; count];
    if taps.out_shape.is_empty() {
        taps.for_each(|o, prefix, last| out[o] = value(prefix, last));
        return out;
    }
    let (rows, row_len) = (taps.rows(), count / taps.rows().max(1));
    let blocks = block_count(taps, window_size, rows);
    let cuts = (1..blocks).map(|i| par::range(rows, blocks, i).start * row_len);
    par::parts(par::cut(&mut out, cuts), &|i, part| {
        let block = par::range(rows, blocks, i);
        let base = block.start * row_len;
        taps.for_each_in(block, |o, prefix, last| {
            part[o - base] = value(prefix, last)
        });
    });
    out
}

/// x-shaped `zero`s that `update(out, base, o, prefix, last)` adds output `o`'s contribution
/// to (offset `i` of x is `out[i - base]`), in blocks when there are many outputs. Blocks are cut between groups of outputs that share their coordinates on the
/// leading axes over which the window is one wide: such groups read (and write) disjoint
/// slabs of x, in order, so each block owns the slice of the result from its first slab on,
/// and every element receives its contributions in the same order as on one thread.
fn scatter_outputs<T: Copy + Send + Sync>(
    taps: &Taps,
    window: &Window,
    x_shape: &[usize],
    zero: T,
    update: impl Fn(&mut [T], usize, usize, &[usize], &[usize]) + Sync,
) -> Vec<T> {
    let mut out = vec![zero; x_shape.iter().product()];
    let rank = taps.out_shape.len();
    let axes = (0..rank.saturating_sub(1))
        .take_while(|&d| window.dimensions[d] == 1)
        .count();
    let groups: usize = taps.out_shape[..axes].iter().product();
    let blocks = block_count(taps, window.size(), groups);
    if blocks == 1 {
        taps.for_each(|o, prefix, last| update(&mut out, 0, o, prefix, last));
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
            taps.for_each_in(rows, |o, prefix, last| {
                update(part, starts[i], o, prefix, last)
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
    let out = map_outputs(&taps, window.size(), init, |prefix, last| {
        let mut acc = init;
        for &p in prefix {
            for &l in last {
                acc = f(acc, xs[p + l]);
            }
        }
        acc
    });
    from_vec(out_shape, out)
}

/// `reduce_window_max`/`_min` of floats: every output starts at `init` (the identity) and
/// takes each element that `beats` it; a window holding a NaN gives NaN. As in `first_best`,
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
    let out = map_outputs(&taps, window.size(), init, |prefix, last| {
        let (mut acc, mut nan) = (init, None);
        for &p in prefix {
            for &l in last {
                let v = xs[p + l];
                acc = if beats(v, acc) { v } else { acc };
                if v.is_nan() && nan.is_none() {
                    nan = Some(v);
                }
            }
        }
        nan.unwrap_or(acc)
    });
    from_vec(out_shape, out)
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
        |out, base, o, prefix, last| {
            let value = cs[o];
            for &p in prefix {
                for &l in last {
                    let i = p + l - base;
                    out[i] = add(out[i], value);
                }
            }
        },
    );
    from_vec(x_shape, out)
}

/// Where in x the window's selected element is: the first maximum (minimum), a NaN counting
/// as the maximum and the minimum (the first NaN is selected, as `reduce_window_max` returns
/// it); `None` for a window that reads no element of x.
fn selected<T: Real>(xs: &[T], prefix: &[usize], last: &[usize], select: Select) -> Option<usize> {
    match select {
        Select::Max => first_best(xs, prefix, last, |c, v| c > v),
        Select::Min => first_best(xs, prefix, last, |c, v| c < v),
    }
}

/// The first tap no later tap beats (`beats(candidate, current)`), or the first NaN if there
/// is one. The main loop has no data-dependent branches (comparisons of random data
/// mispredict) and keeps NaNs out of its dependency chain: it only notes whether one was seen.
#[inline(always)]
fn first_best<T: Real>(
    xs: &[T],
    prefix: &[usize],
    last: &[usize],
    beats: impl Fn(T, T) -> bool,
) -> Option<usize> {
    let mut best = prefix.first()? + last.first()?;
    let mut value = xs[best];
    let mut any_nan = false;
    for &p in prefix {
        for &l in last {
            let candidate = xs[p + l];
            let wins = beats(candidate, value);
            best = if wins { p + l } else { best };
            value = if wins { candidate } else { value };
            any_nan |= candidate.is_nan();
        }
    }
    if any_nan {
        let mut taps = prefix
            .iter()
            .flat_map(|&p| last.iter().map(move |&l| p + l));
        return taps.find(|&i| xs[i].is_nan());
    }
    Some(best)
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
    let out = map_outputs(&taps, window.size(), T::zero(), |prefix, last| {
        selected(&xs, prefix, last, select).map_or(T::zero(), |i| ts[i])
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
        |out, base, o, prefix, last| {
            if let Some(i) = selected(&xs, prefix, last, select) {
                out[i - base] = out[i - base] + cs[o];
            }
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
