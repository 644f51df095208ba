//! The `conv_general_dilated` kernel: im2col then GEMM, for any number of spatial axes.
//!
//! For each result batch entry and each group (feature or batch group), the lhs window under
//! every result position is gathered into a column matrix `[I·K1..Kk, Y1..Yk]` (holes of the
//! lhs dilation and padding read as zero, negative padding simply never read), and one matrix
//! product with the group's kernel rows `[O/g, I·K1..Kk]` (a contiguous block of the rhs in
//! row-major order) writes the group's block of the result `[O/g, Y1..Yk]`, also contiguous.
//! The gather is driven by one table per spatial axis (the lhs index each kernel tap reads at
//! each result position, or none), so it is the same loop for every k; without lhs dilation
//! each tap reads runs of the last axis, which are copied (where the last axis is strided,
//! from a copy of the lhs whose lines are split into one phase per stride step: `Phases`).
//! The column matrix stays within a fixed budget however large the kernel or the result: it
//! is built in chunks of result positions (at least `WIDE_COLUMNS` where the limit allows,
//! down to one column), or, where whole results are small, for several batch entries at
//! once, which then share one product. Where the kernel is longer than the result
//! on the last axis (a kernel's cotangent), the column matrix is gathered transposed, one
//! column of all rows per result position, so that the runs copied go along the kernel
//! (`TapRun`), and the product reads it column-major. The matrix product is the runtime's one
//! GEMM entry point (`crate::gemm`). A large gather (`PARALLEL_GATHER` elements) is shared
//! with the helper thread (`crate::par`): its rows are cut into blocks, each block writing
//! only its own rows of the column matrix, so every element is the same copy (or zero)
//! whichever thread writes it.

use crate::gemm::{mat_mul, Gemm};
use crate::par;
use ndarray::{
    s, ArrayD, ArrayView2, ArrayViewD, ArrayViewMut2, IxDyn, LinalgScalar, ShapeBuilder,
};
use traceform_ir::ConvDims;

/// The largest column matrix built at once for column chunks of one batch entry's result,
/// in elements (4 MiB of f32), unless that leaves chunks narrower than `WIDE_COLUMNS`.
const COLUMN_BUDGET: usize = 1 << 20;

/// Column chunks are at least this wide where `COLUMN_LIMIT` allows. Each thread's half of
/// a product packs the whole kernel again, and for narrow chunks that packing is a large
/// share of the product: AlexNet's second layer (1600 rows, 729 positions per entry) took
/// 19.2 ms in chunks of 365 columns and 17.8 in whole entries. (Its first layer's chunks,
/// 1513 columns, are wider already.)
const WIDE_COLUMNS: usize = 768;

/// The largest column matrix built for chunks of `WIDE_COLUMNS` (16 MiB of f32).
const COLUMN_LIMIT: usize = 1 << 22;

/// The largest column matrix built at once for whole results of several batch entries
/// (16 MiB of f32): one product of 4 entries of AlexNet's 3x3 layers (13x13 results) instead
/// of 4 products of one, each repacking the same kernel rows. Measured on its fourth layer:
/// 29 ms with one entry per product, 15 ms with 4, the product alone (all 8 entries) 12 ms.
const BATCHED_BUDGET: usize = 1 << 22;

/// Entries share a product only up to this many result positions in all: wider column
/// matrices (AlexNet's first two layers, 3025 and 729 positions per entry) fall out of the
/// caches between the gather and the product, and were 20-25% slower batched.
const BATCHED_WIDTH: usize = 1024;

/// Gathers of at least this many elements are shared with the helper thread (`par`).
/// Measured (3x3 kernel, 16 features): 2^17 elements and more took 20-30% less time
/// shared; from 2^15 to 2^17, where the product after them ran on one thread, they took
/// up to 45% more.
const PARALLEL_GATHER: usize = 1 << 17;

/// Blocks a shared gather is cut into: more than two, so that the caller, which starts
/// without waiting for the helper, is not left with one long block once the helper is done.
const GATHER_BLOCKS: usize = 8;

/// Row-major strides of `shape`.
fn strides_of(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * shape[d + 1];
    }
    strides
}

/// `ceil(a / b)` for `b > 0`.
fn ceil_div(a: i64, b: i64) -> i64 {
    -((-a).div_euclid(b))
}

/// `(gcd(a, b), x)` with `a·x ≡ gcd (mod b)`, for `a, b > 0`.
fn gcd_and_inverse(a: i64, b: i64) -> (i64, i64) {
    let (mut r0, mut r1, mut x0, mut x1) = (a, b, 1i64, 0i64);
    while r1 != 0 {
        let q = r0 / r1;
        (r0, r1) = (r1, r0 - q * r1);
        (x0, x1) = (x1, x0 - q * x1);
    }
    (r0, x0)
}

/// The result positions at which one kernel tap reads the lhs on one axis: `start`,
/// `start + step`, ... below `end`, reading lhs indices `first`, `first + source_step`, ...;
/// every other position reads padding or a dilation hole.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Run {
    start: usize,
    end: usize,
    step: usize,
    first: usize,
    source_step: usize,
}

/// One spatial axis as the gather sees it. Result position `y` and tap `t` read the dilated,
/// padded lhs at `y·stride + t·rhs_dilation`, which is position `p = that - lo` of the dilated
/// lhs: lhs index `p / lhs_dilation` if `0 <= p < dilated` and `lhs_dilation` divides `p`,
/// else a zero. (All terms are below 2^34: the shape rule bounded them.)
#[derive(Clone, Copy, Debug)]
struct AxisReader {
    stride: i64,
    rhs_dilation: i64,
    lhs_dilation: i64,
    lo: i64,
    dilated: i64,
    outputs: i64,
}

impl AxisReader {
    fn new(dims: &ConvDims, d: usize, size: usize, outputs: usize) -> AxisReader {
        let ld = dims.lhs_dilation[d] as i64;
        AxisReader {
            stride: dims.window_strides[d] as i64,
            rhs_dilation: dims.rhs_dilation[d] as i64,
            lhs_dilation: ld,
            lo: dims.padding[d].0,
            dilated: if size == 0 {
                0
            } else {
                (size as i64 - 1) * ld + 1
            },
            outputs: outputs as i64,
        }
    }

    /// The lhs index tap `tap` reads at result position `y`, or `None`.
    fn source(&self, tap: usize, y: usize) -> Option<usize> {
        let p = y as i64 * self.stride + tap as i64 * self.rhs_dilation - self.lo;
        let inside = p >= 0 && p < self.dilated && p % self.lhs_dilation == 0;
        inside.then(|| (p / self.lhs_dilation) as usize)
    }

    /// Where tap `tap` reads the lhs, as a progression: the positions inside the dilated lhs
    /// are a range of `y`; of those, the ones on an lhs element solve
    /// `y·stride ≡ -c (mod lhs_dilation)` (`c = tap·rhs_dilation - lo`), a progression of step
    /// `lhs_dilation / gcd(stride, lhs_dilation)`.
    fn run(&self, tap: usize) -> Run {
        let (s, ld) = (self.stride, self.lhs_dilation);
        let c = tap as i64 * self.rhs_dilation - self.lo;
        let lo_y = ceil_div(-c, s).max(0);
        let hi_y = ceil_div(self.dilated - c, s).min(self.outputs);
        let empty = Run {
            start: 0,
            end: 0,
            step: 1,
            first: 0,
            source_step: 0,
        };
        let (g, inverse) = gcd_and_inverse(s, ld);
        if lo_y >= hi_y || c.rem_euclid(g) != 0 {
            return empty;
        }
        let period = ld / g;
        // y ≡ (-c/g)·(s/g)^-1 (mod period); i128 as the product may pass 2^63.
        let residue = (i128::from((-c / g).rem_euclid(period))
            * i128::from(inverse.rem_euclid(period))
            % i128::from(period)) as i64;
        let start = lo_y + (residue - lo_y).rem_euclid(period);
        if start >= hi_y {
            return empty;
        }
        Run {
            start: start as usize,
            end: hi_y as usize,
            step: period as usize,
            first: ((start * s + c) / ld) as usize,
            source_step: (s / g) as usize,
        }
    }
}

/// The lhs with each line of its last axis split into `stride` phases, for a convolution
/// strided on that axis (AlexNet's first layer: stride 4): element `i` of a line goes to
/// `(i % stride)·len + i / stride` of the phased line, `len = ceil(size / stride)`. A tap then
/// reads consecutive elements of one phase instead of every `stride`-th element of the line,
/// so the gather copies runs instead of picking elements one by one (each lhs element is
/// read by several taps: there, 363x3025 picks against one pass over 3x224x224 per entry).
/// AlexNet's first layer took 7.2 ms instead of 8.8.
#[derive(Clone, Copy, Debug)]
struct Phases {
    stride: usize,
    len: usize,
}

impl Phases {
    /// Phases for the last axis `axis` (of `size` lhs elements) when its taps read strided
    /// runs without holes and the gather picks at least twice as many elements
    /// (`gathered`) as the lhs holds (`elements`, per batch entry).
    fn of(axis: &AxisReader, size: usize, gathered: usize, elements: usize) -> Option<Phases> {
        let stride = usize::try_from(axis.stride).ok()?;
        let worth = axis.lhs_dilation == 1 && stride > 1 && size >= 2 * stride;
        (worth && gathered >= 2 * elements).then_some(Phases {
            stride,
            len: size.div_ceil(stride),
        })
    }

    /// The length of a phased line (its last phase padded).
    fn line(self) -> usize {
        self.stride * self.len
    }

    /// `run` as it reads the phased line: its elements `first + j·stride` are consecutive
    /// in phase `first % stride`.
    fn adapt(self, run: &mut Run) {
        if run.start < run.end {
            run.first = (run.first % self.stride) * self.len + run.first / self.stride;
            run.source_step = 1;
        }
    }

    /// Writes `x`, lines of `size` elements, phased into `phased` (lines of `line()`; the
    /// padding of the last phase, which no tap reads, zero). Large inputs are shared with the
    /// helper thread by blocks of lines.
    fn split<T: LinalgScalar + Send + Sync>(self, x: &[T], size: usize, phased: &mut [T]) {
        let (line, count) = (self.line(), x.len() / size);
        let blocks = if x.len() >= PARALLEL_GATHER && par::available() {
            GATHER_BLOCKS.min(count)
        } else {
            1
        };
        let cuts = (1..blocks).map(|i| par::range(count, blocks, i).start * line);
        par::parts(par::cut(phased, cuts), &|i, part| {
            let lines = par::range(count, blocks, i);
            let source = &x[lines.start * size..lines.end * size];
            for (from, to) in source.chunks_exact(size).zip(part.chunks_exact_mut(line)) {
                match self.stride {
                    2 => self.split_line::<T, 2>(from, to),
                    3 => self.split_line::<T, 3>(from, to),
                    4 => self.split_line::<T, 4>(from, to),
                    _ => self.split_line_any(from, to),
                }
            }
        });
    }

    /// One line for a stride known at compile time (the loop then vectorises).
    fn split_line<T: LinalgScalar, const S: usize>(self, from: &[T], to: &mut [T]) {
        let whole = from.len() / S;
        for (i, group) in from.chunks_exact(S).enumerate() {
            for (phase, &v) in group.iter().enumerate() {
                to[phase * self.len + i] = v;
            }
        }
        for phase in 0..S {
            let at = phase * self.len + whole;
            to[at..(phase + 1) * self.len].fill(T::zero());
        }
        for (phase, &v) in from[whole * S..].iter().enumerate() {
            to[phase * self.len + whole] = v;
        }
    }

    /// One line for any stride.
    fn split_line_any<T: LinalgScalar>(self, from: &[T], to: &mut [T]) {
        to.fill(T::zero());
        for (i, &v) in from.iter().enumerate() {
            to[(i % self.stride) * self.len + i / self.stride] = v;
        }
    }
}

/// What stays fixed over one convolution.
struct Geometry<'a> {
    /// `Run`s of the last axis, one per tap.
    last_runs: Vec<Run>,
    kernel: &'a [usize],
    outputs: &'a [usize],
    /// Elements of one lhs feature plane.
    plane: usize,
    /// The lhs offset on the leading spatial axes (all but the last) that each combination of
    /// leading kernel taps reads on each result line (a row of the last axis), or `None` in
    /// padding or a dilation hole: `line_bases[lead · lines + line]`, with `lead` the tap
    /// index over the leading axes (`tap / kernel[last]`). Worked out once per convolution,
    /// so a gather is table lookups and copies.
    line_bases: Vec<Option<usize>>,
    /// Result lines: the product of the leading axes' result sizes.
    lines: usize,
    /// For each last-axis tap, how it fills a whole result line, where its run has no holes.
    line_plans: Vec<Option<LinePlan>>,
    /// When the column matrix is built transposed (`TapRun`): per last-axis result position,
    /// the last-axis taps it reads.
    tap_runs: Option<Vec<TapRun>>,
}

/// The last-axis taps one last-axis result position reads: taps `lo..hi`, tap `lo` at lhs
/// index `first` of the line, each next one `step` further; the other taps read padding.
///
/// A convolution whose kernel is longer than its result on the last axis (the kernel's
/// cotangent: AlexNet's last layer convolves 13x13 planes with 13x13 "kernels" into 3x3
/// results) gathers its column matrix transposed, one row per result position, so that
/// what it copies are runs along the kernel (13 elements) instead of along the result (3):
/// the per-run bookkeeping was most of the gather's time there.
#[derive(Clone, Copy, Debug)]
struct TapRun {
    lo: usize,
    hi: usize,
    first: usize,
    step: usize,
}

impl TapRun {
    /// The runs of every last-axis result position, if the axis has no lhs dilation (whose
    /// holes would break the runs).
    fn all(axis: &AxisReader, taps: usize, outputs: usize) -> Option<Vec<TapRun>> {
        if axis.lhs_dilation != 1 {
            return None;
        }
        let runs = (0..outputs)
            .map(|y| {
                let inside: Vec<usize> =
                    (0..taps).filter(|&t| axis.source(t, y).is_some()).collect();
                match (inside.first(), inside.last()) {
                    (Some(&lo), Some(&hi)) => TapRun {
                        lo,
                        hi: hi + 1,
                        first: axis.source(lo, y).expect("inside"),
                        step: axis.rhs_dilation as usize,
                    },
                    _ => TapRun {
                        lo: 0,
                        hi: 0,
                        first: 0,
                        step: 1,
                    },
                }
            })
            .collect();
        Some(runs)
    }
}

/// How one last-axis tap fills a whole result line of `y_last` positions: zeros before
/// `start`, then `end - start` lhs elements from `first` by `source_step`, then zeros.
#[derive(Clone, Copy, Debug)]
struct LinePlan {
    start: usize,
    end: usize,
    first: usize,
    source_step: usize,
}

impl LinePlan {
    /// The plan of `run` over a line, when the run reads consecutive result positions.
    fn of(run: Run) -> Option<LinePlan> {
        if run.start >= run.end {
            return Some(LinePlan {
                start: 0,
                end: 0,
                first: 0,
                source_step: 1,
            });
        }
        (run.step == 1).then_some(LinePlan {
            start: run.start,
            end: run.end,
            first: run.first,
            source_step: run.source_step,
        })
    }

    /// Fills `line` (one whole result line) from the lhs line `source`.
    fn fill<T: LinalgScalar>(&self, source: &[T], line: &mut [T]) {
        let (start, end) = (self.start.min(line.len()), self.end.min(line.len()));
        if start >= end {
            zero(line);
            return;
        }
        let (before, rest) = line.split_at_mut(start);
        let (run, after) = rest.split_at_mut(end - start);
        zero(before);
        zero(after);
        if self.source_step == 1 {
            copy_short(run, &source[self.first..self.first + run.len()]);
        } else {
            let from = source[self.first..].iter().step_by(self.source_step);
            for (dst, &src) in run.iter_mut().zip(from) {
                *dst = src;
            }
        }
    }
}

/// Consecutive result lines `lines` of one leading-axes tap combination that read the lhs
/// contiguously (each line `y_last` after the one before, from `base` on), or that all read
/// padding (`base` none).
#[derive(Clone, Debug, PartialEq)]
struct LineGroup {
    lines: std::ops::Range<usize>,
    base: Option<usize>,
}

impl LineGroup {
    /// The groups of `bases` (one lhs offset per result line, as `Geometry::line_bases`),
    /// lines numbered from 0.
    fn all(bases: &[Option<usize>], y_last: usize) -> Vec<LineGroup> {
        let mut groups = Vec::new();
        let mut p = 0;
        while p < bases.len() {
            let mut q = p + 1;
            while q < bases.len() && bases[q] == bases[p].map(|base| base + (q - p) * y_last) {
                q += 1;
            }
            groups.push(LineGroup {
                lines: p..q,
                base: bases[p],
            });
            p = q;
        }
        groups
    }
}

impl LinePlan {
    /// Fills `row`, whole result lines of `y_last` positions grouped as `groups`, for a plan
    /// that reads consecutive lhs elements. Where consecutive lines read lhs lines `y_last`
    /// apart (a stride-1 convolution whose result lines are as long as the lhs lines: "same"
    /// padding), the reads of those lines are one contiguous run of the lhs: it is copied at
    /// once, then the positions in padding are zeroed. The groups are worked out once per
    /// gather, not per row (comparing the lines' offsets for every row was most of the time
    /// of AlexNet's 13x13 gathers).
    fn fill_lines<T: LinalgScalar>(
        &self,
        plane: &[T],
        groups: &[LineGroup],
        y_last: usize,
        row: &mut [T],
    ) {
        let (start, end) = (self.start.min(y_last), self.end.min(y_last));
        for group in groups {
            let count = group.lines.len();
            let lines = &mut row[group.lines.start * y_last..group.lines.end * y_last];
            let Some(base) = group.base.filter(|_| start < end) else {
                zero(lines);
                continue;
            };
            let len = (count - 1) * y_last + (end - start);
            let from = base + self.first;
            copy_short(&mut lines[start..start + len], &plane[from..from + len]);
            if start > 0 || end < y_last {
                for line in lines.chunks_exact_mut(y_last) {
                    zero(&mut line[..start]);
                    zero(&mut line[end..]);
                }
            }
        }
    }
}

/// `dst.copy_from_slice(src)` for the short runs of a gather (a result line is often 13 to 55
/// elements): by blocks of 16 (4, 1 below that; `cover`), which compile to vector moves,
/// instead of a `memmove` call per run, whose overhead dominated the gather.
fn copy_short<T: Copy>(dst: &mut [T], src: &[T]) {
    fn block<T: Copy, const B: usize>(dst: &mut [T], src: &[T], at: usize) {
        let from: [T; B] = src[at..at + B].try_into().expect("a block");
        dst[at..at + B].copy_from_slice(&from);
    }
    let n = dst.len();
    assert_eq!(n, src.len(), "copy_short: lengths differ");
    match n {
        64.. => dst.copy_from_slice(src),
        16.. => cover::<16>(n, |at| block::<T, 16>(dst, src, at)),
        4.. => cover::<4>(n, |at| block::<T, 4>(dst, src, at)),
        _ => cover::<1>(n, |at| block::<T, 1>(dst, src, at)),
    }
}

/// Zeroes a short slice without a `memset` call, by blocks as `copy_short` copies.
fn zero<T: LinalgScalar>(dst: &mut [T]) {
    fn block<T: LinalgScalar, const B: usize>(dst: &mut [T], at: usize) {
        dst[at..at + B].copy_from_slice(&[T::zero(); B]);
    }
    let n = dst.len();
    match n {
        64.. => dst.fill(T::zero()),
        16.. => cover::<16>(n, |at| block::<T, 16>(dst, at)),
        4.. => cover::<4>(n, |at| block::<T, 4>(dst, at)),
        _ => cover::<1>(n, |at| block::<T, 1>(dst, at)),
    }
}

/// Calls `block(at)` for blocks of `B` that cover `0..n`, for `n <= 4B`: at most four, the
/// last one overlapping the one before (none for `n == 0`). Straight-line code, not a loop:
/// a loop of blocks was made back into a `memmove` or `memset` call by the compiler, even
/// for one element.
#[inline(always)]
fn cover<const B: usize>(n: usize, mut block: impl FnMut(usize)) {
    if n < B {
        return;
    }
    block(0);
    if n > 2 * B {
        block(B);
    }
    if n > 3 * B {
        block(2 * B);
    }
    block(n - B);
}

impl Geometry<'_> {
    /// Writes the windows of `image` (I feature planes) at the result positions `positions`
    /// (row-major over the spatial axes) into `(columns, row_stride, offset)`: row `r` of the
    /// column matrix (`r < I·taps`) from `columns[r·row_stride + offset]` on. Large gathers
    /// are cut into blocks of whole rows, each writing only its own rows, for `par::blocks`.
    fn gather<T: LinalgScalar + Send + Sync>(
        &self,
        images: &[&[T]],
        features: usize,
        positions: std::ops::Range<usize>,
        (columns, row_stride, offset): (&mut [T], usize, usize),
    ) {
        let rows = features * self.kernel.iter().product::<usize>();
        if let Some(runs) = &self.tap_runs {
            for (i, image) in images.iter().enumerate() {
                let at = offset + i * positions.len();
                let target = (&mut *columns, at);
                self.gather_transposed(image, features, positions.clone(), runs, target);
            }
            return;
        }
        let size = rows * positions.len() * images.len();
        let blocks = if size >= PARALLEL_GATHER && par::available() {
            GATHER_BLOCKS.min(rows)
        } else {
            1
        };
        if blocks == 1 {
            let target = (columns, row_stride, offset);
            return self.gather_rows(images, 0..rows, positions, target);
        }
        let cuts = (1..blocks).map(|i| par::range(rows, blocks, i).start * row_stride);
        par::parts(par::cut(columns, cuts), &|i, part| {
            let block = par::range(rows, blocks, i);
            self.gather_rows(images, block, positions.clone(), (part, row_stride, offset));
        });
    }

    /// `gather` of the column matrix's rows `rows` only (feature-major: row `r` is feature
    /// `r / taps`, tap `r % taps`), row `rows.start` at the start of `columns`. Each row is
    /// written whole, every image's part in turn (image by image over the whole matrix, the
    /// lines the parts share were written once per image, back from L3: 0.63 -> 0.38 ms for
    /// the 9 MB of AlexNet's fourth layer, four entries per product).
    fn gather_rows<T: LinalgScalar>(
        &self,
        images: &[&[T]],
        rows: std::ops::Range<usize>,
        positions: std::ops::Range<usize>,
        (columns, row_stride, offset): (&mut [T], usize, usize),
    ) {
        let k = self.kernel.len();
        let last = k - 1;
        let taps: usize = self.kernel.iter().product();
        let y_last = self.outputs[last];
        let width = positions.len();
        // The result lines (rows of the last axis) the range touches.
        let lines = positions.start / y_last..positions.end.div_ceil(y_last);
        let kernel_last = self.kernel[last];
        let whole_lines = positions.start % y_last == 0 && positions.end % y_last == 0;
        // Per combination of leading taps, its result lines in groups (`LineGroup`).
        let groups: Vec<Vec<LineGroup>> = if whole_lines {
            (0..taps / kernel_last)
                .map(|lead| {
                    let bases = &self.line_bases[lead * self.lines..][..self.lines];
                    LineGroup::all(&bases[lines.clone()], y_last)
                })
                .collect()
        } else {
            Vec::new()
        };
        for (r, image) in rows
            .clone()
            .flat_map(|r| images.iter().enumerate().map(move |i| (r, i)))
        {
            let (image, i) = (image.1, image.0);
            let (feature, tap) = (r / taps, r % taps);
            let plane = &image[feature * self.plane..(feature + 1) * self.plane];
            let (lead, tap_last) = (tap / kernel_last, tap % kernel_last);
            let bases = &self.line_bases[lead * self.lines..][..self.lines];
            let (run, plan) = (self.last_runs[tap_last], self.line_plans[tap_last]);
            let at = (r - rows.start) * row_stride + offset + i * width;
            let row = &mut columns[at..][..width];
            if let Some(plan) = plan.filter(|p| whole_lines && p.source_step == 1) {
                plan.fill_lines(plane, &groups[lead], y_last, row);
                continue;
            }
            for p in lines.clone() {
                // The part of result line p in the range: last-axis positions y0..y1.
                let y0 = positions.start.max(p * y_last) - p * y_last;
                let y1 = positions.end.min((p + 1) * y_last) - p * y_last;
                let at = p * y_last + y0 - positions.start;
                let segment = &mut row[at..at + (y1 - y0)];
                match (bases[p], plan) {
                    (None, _) => zero(segment),
                    (Some(base), Some(plan)) if y0 == 0 && y1 == y_last => {
                        plan.fill(&plane[base..], segment)
                    }
                    (Some(base), _) => gather_segment(&plane[base..], run, y0, segment),
                }
            }
        }
    }

    /// `gather` into the transposed column matrix (`tap_runs` is set): the column of result
    /// position `p` (all `I·taps` rows) at `columns[(offset + p - positions.start)·I·taps..]`.
    /// Large gathers are cut into blocks of positions, each writing only its own columns.
    fn gather_transposed<T: LinalgScalar + Send + Sync>(
        &self,
        image: &[T],
        features: usize,
        positions: std::ops::Range<usize>,
        runs: &[TapRun],
        (columns, offset): (&mut [T], usize),
    ) {
        let rows = features * self.kernel.iter().product::<usize>();
        let count = positions.len();
        let blocks = if rows * count >= PARALLEL_GATHER && par::available() {
            GATHER_BLOCKS.min(count)
        } else {
            1
        };
        let at = |i: usize| (offset + par::range(count, blocks, i).start) * rows;
        let cuts = (1..blocks).map(at);
        par::parts(par::cut(columns, cuts), &|i, part| {
            let block = par::range(count, blocks, i);
            let base = if i == 0 { 0 } else { at(i) };
            for j in block {
                let column = &mut part[(offset + j) * rows - base..][..rows];
                self.gather_position(image, features, positions.start + j, runs, column);
            }
        });
    }

    /// The column of result position `p`: row `f·taps + tap` is what tap `tap` reads of
    /// feature `f` there.
    fn gather_position<T: LinalgScalar>(
        &self,
        image: &[T],
        features: usize,
        p: usize,
        runs: &[TapRun],
        column: &mut [T],
    ) {
        let last = self.kernel.len() - 1;
        let (kernel_last, y_last) = (self.kernel[last], self.outputs[last]);
        let taps: usize = self.kernel.iter().product();
        let leads = taps / kernel_last;
        let (line, run) = (p / y_last, runs[p % y_last]);
        for f in 0..features {
            let plane = &image[f * self.plane..(f + 1) * self.plane];
            for lead in 0..leads {
                let segment = &mut column[f * taps + lead * kernel_last..][..kernel_last];
                let Some(base) = self.line_bases[lead * self.lines + line] else {
                    zero(segment);
                    continue;
                };
                let (before, rest) = segment.split_at_mut(run.lo);
                let (inside, after) = rest.split_at_mut(run.hi - run.lo);
                zero(before);
                zero(after);
                let from = &plane[base + run.first..];
                if run.step == 1 {
                    copy_short(inside, &from[..inside.len()]);
                } else {
                    for (dst, &src) in inside.iter_mut().zip(from.iter().step_by(run.step)) {
                        *dst = src;
                    }
                }
            }
        }
    }

    /// `line_bases` (see the field) for `axes` over `kernel` and the result `outputs`.
    fn line_bases(
        axes: &[AxisReader],
        kernel: &[usize],
        outputs: &[usize],
        in_strides: &[usize],
    ) -> Vec<Option<usize>> {
        let last = kernel.len() - 1;
        let leads: usize = kernel[..last].iter().product();
        let lines: usize = outputs[..last].iter().product();
        let mut bases = Vec::with_capacity(leads * lines);
        let (mut tap_index, mut coord) = (vec![0; last], vec![0; last]);
        for lead in 0..leads {
            let mut rest = lead;
            for d in (0..last).rev() {
                tap_index[d] = rest % kernel[d];
                rest /= kernel[d];
            }
            for line in 0..lines {
                let mut rest = line;
                for d in (0..last).rev() {
                    coord[d] = rest % outputs[d];
                    rest /= outputs[d];
                }
                let base = (0..last).try_fold(0, |base, d| {
                    Some(base + axes[d].source(tap_index[d], coord[d])? * in_strides[d])
                });
                bases.push(base);
            }
        }
        bases
    }
}

/// Fills `segment`, last-axis result positions `y0..`, with what `run` reads of `line`.
fn gather_segment<T: LinalgScalar>(line: &[T], run: Run, y0: usize, segment: &mut [T]) {
    let y1 = y0 + segment.len();
    // The first position of the run at or after y0, and the end within the segment.
    let skip = (y0.max(run.start) - run.start).div_ceil(run.step);
    let start = run.start + skip * run.step;
    let end = run.end.min(y1);
    if start >= end {
        segment.fill(T::zero());
        return;
    }
    let source = &line[run.first + skip * run.source_step..];
    let count = (end - start).div_ceil(run.step);
    if run.step == 1 {
        segment[..start - y0].fill(T::zero());
        segment[end - y0..].fill(T::zero());
        let target = &mut segment[start - y0..end - y0];
        if run.source_step == 1 {
            target.copy_from_slice(&source[..count]);
        } else {
            for (dst, &src) in target
                .iter_mut()
                .zip(source.iter().step_by(run.source_step))
            {
                *dst = src;
            }
        }
    } else {
        segment.fill(T::zero());
        let targets = segment[start - y0..].iter_mut().step_by(run.step);
        for (dst, &src) in targets
            .zip(source.iter().step_by(run.source_step))
            .take(count)
        {
            *dst = src;
        }
    }
}

/// `conv_general_dilated[dims] lhs rhs`, whose verified result shape is `out_shape`.
pub fn conv_general_dilated<T: LinalgScalar + Gemm + Scratch>(
    lhs: &ArrayViewD<'_, T>,
    rhs: &ArrayViewD<'_, T>,
    dims: &ConvDims,
    out_shape: &[usize],
) -> ArrayD<T> {
    let mut out = vec![T::zero(); out_shape.iter().product()];
    conv_general_dilated_into(lhs, &[rhs.view()], dims, out_shape, &mut [&mut out]);
    ArrayD::from_shape_vec(IxDyn(out_shape), out).expect("sizes agree")
}

/// `conv_general_dilated[dims] lhs rhs[i]` into `outs[i]` (row-major, of the verified result
/// shape `out_shape`, every element written), for kernels `rhs` of one shape: the columns are
/// gathered once and multiplied by each kernel in turn. Each result is the one
/// `conv_general_dilated` gives for its kernel alone, bit for bit: the same columns and the
/// same products. (A jvp convolves each primal activation with the weights and with their
/// tangent.)
///
/// # Panics
/// When `rhs` and `outs` differ in length, a kernel's shape differs from the first's, or a
/// result's length from `out_shape`'s.
pub fn conv_general_dilated_into<T: LinalgScalar + Gemm + Scratch>(
    lhs: &ArrayViewD<'_, T>,
    rhs: &[ArrayViewD<'_, T>],
    dims: &ConvDims,
    out_shape: &[usize],
    outs: &mut [&mut [T]],
) {
    let len: usize = out_shape.iter().product();
    assert!(
        rhs.len() == outs.len()
            && rhs.iter().all(|r| r.shape() == rhs[0].shape())
            && outs.iter().all(|o| o.len() == len),
        "conv_general_dilated_into: kernels and results disagree"
    );
    let Some(first) = rhs.first() else {
        return;
    };
    let lhs = lhs.as_standard_layout();
    let rhs: Vec<_> = rhs.iter().map(|r| r.as_standard_layout()).collect();
    let x = lhs.as_slice().expect("standard layout");
    let ws: Vec<&[T]> = rhs
        .iter()
        .map(|r| r.as_slice().expect("standard layout"))
        .collect();
    let (channels, features, out_features) = (lhs.shape()[1], first.shape()[1], first.shape()[0]);
    let kernel = &first.shape()[2..];
    let outputs = &out_shape[2..];
    let k = kernel.len();
    let groups = dims.group_count();
    let per_group = out_features / groups.max(1);
    let taps: usize = kernel.iter().product();
    let rows = features * taps;
    let positions: usize = outputs.iter().product();
    let plane: usize = lhs.shape()[2..].iter().product();
    let lhs_last = lhs.shape()[lhs.ndim() - 1];
    if rows == 0 {
        outs.iter_mut().for_each(|out| out.fill(T::zero()));
    }
    if len > 0 && rows > 0 {
        let axes: Vec<AxisReader> = (0..k)
            .map(|d| AxisReader::new(dims, d, lhs.shape()[d + 2], outputs[d]))
            .collect();
        let mut last_runs: Vec<Run> = (0..kernel[k - 1]).map(|t| axes[k - 1].run(t)).collect();
        // Transposed where the kernel is longer than the result on the last axis (`TapRun`).
        let tap_runs = (kernel[k - 1] > outputs[k - 1])
            .then(|| TapRun::all(&axes[k - 1], kernel[k - 1], outputs[k - 1]))
            .flatten();
        let phases = tap_runs
            .is_none()
            .then(|| Phases::of(&axes[k - 1], lhs_last, rows * positions, features * plane))
            .flatten();
        let mut spatial = lhs.shape()[2..].to_vec();
        if let Some(phases) = phases {
            spatial[k - 1] = phases.line();
            last_runs.iter_mut().for_each(|run| phases.adapt(run));
        }
        let in_strides = strides_of(&spatial);
        let plane: usize = spatial.iter().product();
        let geometry = Geometry {
            tap_runs,
            line_bases: Geometry::line_bases(&axes, kernel, outputs, &in_strides),
            lines: outputs[..k - 1].iter().product(),
            line_plans: last_runs.iter().map(|&r| LinePlan::of(r)).collect(),
            last_runs,
            kernel,
            outputs,
            plane,
        };
        let batch = out_shape[0];
        // Whole results of several batch entries per product where their columns fit the
        // budget (small results: late layers, the kernel's transpose); else column chunks of
        // one entry's result, at least one column wide.
        // Several entries per product are spread evenly over the products (8 entries at
        // most 5 per product are two products of 4, not 5 and 3).
        let most = (BATCHED_BUDGET / (rows * positions))
            .min(BATCHED_WIDTH / positions)
            .clamp(1, batch);
        let entries_per_product = batch.div_ceil(batch.div_ceil(most));
        // Column chunks of one entry, as even as the budget allows (a budget of 2888 columns
        // over 3025 positions gives two chunks of 1513, not 2888 and a product of 137).
        let chunk = (COLUMN_BUDGET / rows)
            .max(WIDE_COLUMNS.min(COLUMN_LIMIT / rows))
            .clamp(1, positions);
        let chunk = positions.div_ceil(positions.div_ceil(chunk));
        let widest = (entries_per_product * positions).max(chunk);
        let (columns_len, products_len) =
            (rows * widest, per_group * entries_per_product * positions);
        let phased_len = phases.map_or(0, |p| x.len() / lhs_last * p.line());
        T::with_scratch(columns_len + products_len + phased_len, |scratch| {
            let (columns, rest) = scratch.split_at_mut(columns_len);
            let (products, phased) = rest.split_at_mut(products_len);
            let x = match phases {
                Some(phases) => {
                    phases.split(x, lhs_last, phased);
                    &*phased
                }
                None => x,
            };
            // Batch group q reads lhs batch entry q·(N/B) + n, all features; feature group q
            // reads batch entry n, features q·I..(q+1)·I.
            let image = |n: usize, q: usize| {
                let (entry, first_feature) = if dims.batch_group_count > 1 {
                    (q * batch + n, 0)
                } else {
                    (n, q * features)
                };
                let start = (entry * channels + first_feature) * plane;
                &x[start..start + features * plane]
            };
            for q in 0..groups {
                let (lo, hi) = (q * per_group * rows, (q + 1) * per_group * rows);
                let mut n = 0;
                while n < batch {
                    let count = entries_per_product.min(batch - n);
                    if count > 1 {
                        let width = count * positions;
                        let cols = &mut columns[..rows * width];
                        let images: Vec<&[T]> = (n..n + count).map(|n| image(n, q)).collect();
                        let target = (&mut *cols, width, 0);
                        geometry.gather(&images, features, 0..positions, target);
                        let cols = column_matrix(cols, rows, width, geometry.tap_runs.is_some());
                        for (w, out) in ws.iter().zip(outs.iter_mut()) {
                            let product = ArrayViewMut2::from_shape(
                                (per_group, width),
                                &mut products[..per_group * width],
                            )
                            .expect("sizes agree");
                            mat_mul(group_rows(&w[lo..hi], per_group, rows), cols, product);
                            // Column block i of the product is entry n + i's rows of group q.
                            for i in 0..count {
                                for o in 0..per_group {
                                    let to =
                                        ((n + i) * out_features + q * per_group + o) * positions;
                                    let from = o * width + i * positions;
                                    out[to..to + positions]
                                        .copy_from_slice(&products[from..from + positions]);
                                }
                            }
                        }
                    } else {
                        let block = (n * out_features + q * per_group) * positions;
                        let mut first = 0;
                        while first < positions {
                            let end = (first + chunk).min(positions);
                            let width = end - first;
                            let cols = &mut columns[..rows * width];
                            geometry.gather(&[image(n, q)], features, first..end, (cols, width, 0));
                            let cols =
                                column_matrix(cols, rows, width, geometry.tap_runs.is_some());
                            for (w, out) in ws.iter().zip(outs.iter_mut()) {
                                let mut result = ArrayViewMut2::from_shape(
                                    (per_group, positions),
                                    &mut out[block..block + per_group * positions],
                                )
                                .expect("sizes agree");
                                let weights = group_rows(&w[lo..hi], per_group, rows);
                                mat_mul(weights, cols, result.slice_mut(s![.., first..end]));
                            }
                            first = end;
                        }
                    }
                    n += count;
                }
            }
        });
    }
}

/// The column matrix `[rows, width]` in `cols`: row-major, or column-major where it was
/// gathered transposed.
fn column_matrix<T>(cols: &[T], rows: usize, width: usize, transposed: bool) -> ArrayView2<'_, T> {
    let shape = if transposed {
        (rows, width).strides((1, rows))
    } else {
        (rows, width).strides((width, 1))
    };
    ArrayView2::from_shape(shape, cols).expect("sizes agree")
}

/// A group's block of kernel rows: `per_group` rows of `I·K1..Kk` (`rows`).
fn group_rows<T>(w: &[T], per_group: usize, rows: usize) -> ArrayView2<'_, T> {
    ArrayView2::from_shape((per_group, rows), w).expect("sizes agree")
}

/// A scratch buffer of this element type, kept by each thread from call to call: the column
/// matrix is megabytes, and allocating it per call cost a `memset` (or page faults) as long as
/// the gather itself on AlexNet's late layers. Its contents are left from the last call: the
/// gather writes every element it hands to the product, and the product overwrites its result.
pub trait Scratch: Copy + Default + 'static {
    /// Calls `f` with a buffer of `len` elements (this thread's, grown as needed; a fresh one
    /// if this thread's is in use).
    fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R;
}

macro_rules! scratch {
    ($t:ty) => {
        impl Scratch for $t {
            fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [$t]) -> R) -> R {
                thread_local! {
                    static BUFFER: std::cell::RefCell<Vec<$t>> =
                        const { std::cell::RefCell::new(Vec::new()) };
                }
                BUFFER.with(|buffer| match buffer.try_borrow_mut() {
                    Ok(mut buffer) => {
                        if buffer.len() < len {
                            buffer.resize(len, <$t>::default());
                        }
                        f(&mut buffer[..len])
                    }
                    Err(_) => f(&mut vec![<$t>::default(); len]),
                })
            }
        }
    };
}
scratch!(f32);
scratch!(f64);

#[cfg(test)]
mod tests {
    use super::*;
    use traceform_ir::{DType, Type};

    /// A deterministic generator (xorshift64*), so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
        }

        fn range(&mut self, lo: i64, hi: i64) -> i64 {
            lo + self.below((hi - lo + 1) as usize) as i64
        }

        /// Small integers, so that every sum is exact in f64 and the order does not matter.
        fn array(&mut self, shape: &[usize]) -> ArrayD<f64> {
            ArrayD::from_shape_fn(IxDyn(shape), |_| self.range(-3, 3) as f64)
        }
    }

    /// The spec's definition, term by term.
    fn naive(lhs: &ArrayD<f64>, rhs: &ArrayD<f64>, dims: &ConvDims, out: &[usize]) -> ArrayD<f64> {
        let (n_all, o_all, i_all) = (lhs.shape()[0], rhs.shape()[0], rhs.shape()[1]);
        let (g, b) = (dims.feature_group_count, dims.batch_group_count);
        let k = dims.spatial_rank();
        ArrayD::from_shape_fn(IxDyn(out), |idx| {
            let (n, o) = (idx[0], idx[1]);
            let feature_group = o / (o_all / g);
            let batch_group = o / (o_all / b);
            let mut sum = 0.0;
            let kernel = &rhs.shape()[2..];
            let taps: usize = kernel.iter().product();
            for i in 0..i_all {
                for tap in 0..taps {
                    let mut kappa = vec![0; k];
                    let mut rest = tap;
                    for d in (0..k).rev() {
                        kappa[d] = rest % kernel[d];
                        rest /= kernel[d];
                    }
                    let mut at = vec![n + batch_group * (n_all / b), feature_group * i_all + i];
                    let mut inside = true;
                    for d in 0..k {
                        let size = lhs.shape()[d + 2] as i64;
                        let ld = dims.lhs_dilation[d] as i64;
                        let p = (idx[d + 2] * dims.window_strides[d]
                            + kappa[d] * dims.rhs_dilation[d])
                            as i64
                            - dims.padding[d].0;
                        if p < 0 || p % ld != 0 || p / ld >= size {
                            inside = false;
                        }
                        at.push((p.max(0) / ld) as usize);
                    }
                    if inside {
                        let mut r = vec![o, i];
                        r.extend_from_slice(&kappa);
                        sum += lhs[IxDyn(&at)] * rhs[IxDyn(&r)];
                    }
                }
            }
            sum
        })
    }

    /// A random valid convolution: (lhs shape, rhs shape, attributes, result shape).
    fn random_case(rng: &mut Rng) -> (Vec<usize>, Vec<usize>, ConvDims, Vec<usize>) {
        loop {
            let k = 1 + rng.below(3);
            let (g, b) = match rng.below(3) {
                0 => (1, 1),
                1 => (1 + rng.below(3), 1),
                _ => (1, 1 + rng.below(3)),
            };
            let i = 1 + rng.below(3);
            let o = g * b * (1 + rng.below(2));
            let n = b * (1 + rng.below(2));
            let mut lhs = vec![n, g * i];
            let mut rhs = vec![o, i];
            let mut dims = ConvDims::new(&[], &[]);
            for _ in 0..k {
                lhs.push(rng.below(6));
                rhs.push(1 + rng.below(3));
                dims.window_strides.push(1 + rng.below(3));
                dims.lhs_dilation.push(1 + rng.below(3));
                dims.rhs_dilation.push(1 + rng.below(3));
                dims.padding.push((rng.range(-2, 3), rng.range(-2, 3)));
            }
            dims.feature_group_count = g;
            dims.batch_group_count = b;
            let ty = |s: &[usize]| Type::new(DType::F64, s);
            if let Ok(out) = dims.output_type(&ty(&lhs), &ty(&rhs)) {
                if out.num_elements() > 0 || rng.below(10) == 0 {
                    return (lhs, rhs, dims, out.shape.to_vec());
                }
            }
        }
    }

    #[test]
    fn same_padded_layers_copy_whole_planes_and_batch_entries() {
        // Stride 1 and result lines as long as the lhs lines: each column row is one copy of
        // the plane (`LinePlan::fill_lines`); small results: several entries per product.
        let mut rng = Rng(0xa1e);
        for (n, c, o, size, kernel, pad) in
            [(8, 6, 5, 13, 3, 1), (3, 4, 7, 9, 5, 2), (2, 2, 3, 6, 1, 0)]
        {
            let dims = ConvDims::new(&[1, 1], &[(pad, pad), (pad, pad)]);
            let (x, w) = (
                rng.array(&[n, c, size, size]),
                rng.array(&[o, c, kernel, kernel]),
            );
            let out = [n, o, size, size];
            let want = naive(&x, &w, &dims, &out);
            assert_eq!(
                conv_general_dilated(&x.view(), &w.view(), &dims, &out),
                want
            );
        }
    }

    #[test]
    fn several_kernels_on_one_gather_give_each_kernels_own_result() {
        let mut rng = Rng(0x7a1e);
        let mut real = |shape: &[usize]| {
            ArrayD::from_shape_fn(IxDyn(shape), |_| rng.range(-1000, 1000) as f32 / 37.0)
        };
        let mut cases = vec![
            // Batched entries per product, and column chunks of one entry.
            (
                vec![8, 6, 13, 13],
                vec![5, 6, 3, 3],
                ConvDims::new(&[1, 1], &[(1, 1), (1, 1)]),
            ),
            (
                vec![2, 3, 40, 40],
                vec![4, 3, 5, 5],
                ConvDims::new(&[1, 1], &[(2, 2), (2, 2)]),
            ),
        ];
        let mut grouped = ConvDims::new(&[1], &[(0, 1)]);
        grouped.feature_group_count = 2;
        cases.push((vec![3, 4, 9], vec![6, 2, 2], grouped));
        for (ls, rs, dims) in cases {
            let ty = |s: &[usize]| traceform_ir::Type::new(traceform_ir::DType::F32, s);
            let out = dims.output_type(&ty(&ls), &ty(&rs)).unwrap().shape.to_vec();
            let x = real(&ls);
            let ws = [real(&rs), real(&rs), real(&rs)];
            let len: usize = out.iter().product();
            let mut results = vec![vec![f32::NAN; len]; 3];
            let mut outs: Vec<&mut [f32]> = results.iter_mut().map(|r| &mut r[..]).collect();
            let views: Vec<_> = ws.iter().map(|w| w.view()).collect();
            conv_general_dilated_into(&x.view(), &views, &dims, &out, &mut outs);
            for (w, got) in ws.iter().zip(&results) {
                let alone = conv_general_dilated(&x.view(), &w.view(), &dims, &out);
                assert_eq!(alone.as_slice().unwrap(), &got[..], "{ls:?} * {rs:?}");
            }
        }
    }

    #[test]
    fn im2col_gemm_matches_the_definition_on_random_convolutions() {
        let mut rng = Rng(0x5eed);
        for case in 0..400 {
            let (ls, rs, dims, out) = random_case(&mut rng);
            let (x, w) = (rng.array(&ls), rng.array(&rs));
            let want = naive(&x, &w, &dims, &out);
            let got = conv_general_dilated(&x.view(), &w.view(), &dims, &out);
            assert_eq!(got, want, "case {case}: {ls:?} * {rs:?} with {dims:?}");
            let got32 = conv_general_dilated(
                &x.mapv(|v| v as f32).view(),
                &w.mapv(|v| v as f32).view(),
                &dims,
                &out,
            );
            assert_eq!(got32.mapv(f64::from), want, "f32 case {case}");
        }
    }

    #[test]
    fn runs_are_exactly_the_positions_a_tap_reads() {
        let mut rng = Rng(99);
        for _ in 0..2000 {
            let mut dims = ConvDims::new(&[1 + rng.below(5)], &[(rng.range(-4, 6), 0)]);
            dims.lhs_dilation[0] = 1 + rng.below(6);
            dims.rhs_dilation[0] = 1 + rng.below(4);
            let (size, taps, outputs) = (rng.below(7), 1 + rng.below(5), rng.below(12));
            let axis = AxisReader::new(&dims, 0, size, outputs);
            for tap in 0..taps {
                let run = axis.run(tap);
                let read: Vec<(usize, usize)> = (0..outputs)
                    .filter_map(|y| axis.source(tap, y).map(|src| (y, src)))
                    .collect();
                let progression: Vec<(usize, usize)> = (run.start..run.end)
                    .step_by(run.step)
                    .enumerate()
                    .map(|(j, y)| (y, run.first + j * run.source_step))
                    .collect();
                assert_eq!(
                    progression, read,
                    "{dims:?}, size {size}, tap {tap}: {run:?}"
                );
            }
        }
    }

    #[test]
    fn kernels_longer_than_the_budget_are_gathered_a_column_at_a_time() {
        let taps = COLUMN_LIMIT + 7;
        let mut rng = Rng(11);
        let x = rng.array(&[1, 1, 3]);
        let w = rng.array(&[2, 1, taps]);
        let dims = ConvDims::new(&[1], &[(taps as i64 - 2, 1)]);
        let out = dims
            .output_type(
                &Type::new(DType::F64, x.shape()),
                &Type::new(DType::F64, w.shape()),
            )
            .unwrap();
        assert_eq!(out.shape.as_slice(), &[1, 2, 3]);
        let got = conv_general_dilated(&x.view(), &w.view(), &dims, &out.shape);
        assert_eq!(got, naive(&x, &w, &dims, &out.shape));
    }

    #[test]
    fn chunked_columns_and_non_standard_layouts_agree_with_the_definition() {
        // A kernel large enough that the column matrix is built in several chunks, which end
        // inside result rows; both gathers (runs without lhs dilation, tables with it).
        let mut rng = Rng(7);
        let x = rng
            .array(&[28, 2, 60, 40])
            .permuted_axes(IxDyn(&[1, 0, 2, 3]));
        assert!(!x.is_standard_layout());
        let w = rng.array(&[3, 28, 5, 9]);
        for lhs_dilation in [[1, 1], [1, 2]] {
            let dims = ConvDims {
                window_strides: [1, 2][..].into(),
                padding: [(2, 2), (-1, 3)][..].into(),
                lhs_dilation: lhs_dilation[..].into(),
                rhs_dilation: [2, 1][..].into(),
                feature_group_count: 1,
                batch_group_count: 1,
            };
            let ty = |a: &ArrayD<f64>| Type::new(DType::F64, a.shape());
            let out = dims.output_type(&ty(&x), &ty(&w)).unwrap();
            assert!(28 * 45 * out.shape[2] * out.shape[3] > COLUMN_BUDGET);
            assert_ne!(COLUMN_BUDGET / (28 * 45) % out.shape[3], 0);
            let got = conv_general_dilated(&x.view(), &w.view(), &dims, &out.shape);
            assert_eq!(got, naive(&x, &w, &dims, &out.shape), "{dims:?}");
        }
    }

    #[test]
    fn kernels_longer_than_their_results_gather_transposed_columns() {
        // The kernel's cotangent of a convolution (taps and positions swapped): columns of
        // result positions, whole and in chunks, shared with the helper above the threshold,
        // with rhs dilation (runs of step 2) and padding on both sides.
        let mut rng = Rng(0x7ab);
        let ty = |a: &ArrayD<f64>| Type::new(DType::F64, a.shape());
        for (lhs, rhs, rhs_dilation, padding) in [
            ([4, 8, 30, 30], [5, 8, 28, 28], [1, 1], [(1, 1), (1, 1)]),
            ([3, 2, 41, 40], [2, 2, 17, 13], [2, 3], [(2, 1), (0, 2)]),
            ([2, 3, 9, 12], [4, 3, 4, 9], [1, 1], [(-1, 2), (1, 0)]),
        ] {
            let (x, w) = (rng.array(&lhs), rng.array(&rhs));
            let mut dims = ConvDims::new(&[1, 1], &padding);
            dims.rhs_dilation = rhs_dilation[..].into();
            let out = dims.output_type(&ty(&x), &ty(&w)).unwrap().shape;
            assert!(rhs[3] > out[3], "{out:?}");
            let got = conv_general_dilated(&x.view(), &w.view(), &dims, &out);
            assert_eq!(got, naive(&x, &w, &dims, &out), "{lhs:?} * {rhs:?}");
        }
        let rows = 8 * 28 * 28;
        assert!(rows * 5 * 5 >= PARALLEL_GATHER);
    }

    #[test]
    fn strided_last_axes_gather_from_phased_lines() {
        // Strides 2 to 5 on the last axis (2, 3 and 4 compiled for their stride), lines not a
        // multiple of the stride, padding of both signs, rhs dilation, one to three spatial
        // axes, and an input large enough to be phased by both threads (AlexNet's first
        // layer's shape, smaller).
        let mut rng = Rng(0x9a5e);
        let ty = |a: &ArrayD<f64>| Type::new(DType::F64, a.shape());
        // (lhs shape, rhs shape, strides, rhs dilation, padding)
        type Case<'a> = (
            &'a [usize],
            &'a [usize],
            &'a [usize],
            &'a [usize],
            &'a [(i64, i64)],
        );
        let cases: [Case<'_>; 6] = [
            (
                &[2, 3, 57, 58],
                &[4, 3, 11, 11],
                &[4, 4],
                &[1, 1],
                &[(2, 2), (2, 1)],
            ),
            (&[3, 2, 23], &[2, 2, 7], &[2], &[1], &[(-1, 2)]),
            (
                &[2, 2, 9, 31],
                &[3, 2, 2, 5],
                &[1, 3],
                &[1, 2],
                &[(1, 0), (3, -2)],
            ),
            (
                &[1, 4, 5, 6, 27],
                &[2, 4, 2, 2, 7],
                &[1, 2, 5],
                &[1, 1, 1],
                &[(0, 0); 3],
            ),
            (&[2, 1, 40], &[1, 1, 11], &[4], &[1], &[(0, 0)]),
            (
                &[2, 8, 92, 90],
                &[4, 8, 5, 7],
                &[2, 3],
                &[1, 1],
                &[(1, 1), (-1, 3)],
            ),
        ];
        for (lhs, rhs, strides, rhs_dilation, padding) in cases {
            let (x, w) = (rng.array(lhs), rng.array(rhs));
            let mut dims = ConvDims::new(strides, padding);
            dims.rhs_dilation = rhs_dilation.into();
            let out = dims.output_type(&ty(&x), &ty(&w)).unwrap().shape;
            let k = strides.len();
            let axis = AxisReader::new(&dims, k - 1, lhs[k + 1], out[k + 1]);
            let rows: usize = rhs[1..].iter().product();
            let positions: usize = out[2..].iter().product();
            let elements: usize = lhs[1..].iter().product();
            let phases = Phases::of(&axis, lhs[k + 1], rows * positions, elements);
            assert!(phases.is_some(), "{lhs:?} * {rhs:?} is not phased");
            let got = conv_general_dilated(&x.view(), &w.view(), &dims, &out);
            assert_eq!(got, naive(&x, &w, &dims, &out), "{lhs:?} * {rhs:?}");
        }
        const { assert!(2 * 8 * 92 * 90 >= PARALLEL_GATHER) };
    }

    #[test]
    fn gathers_shared_with_the_helper_agree_with_the_definition() {
        // Odd sizes above the threshold, so the rows are cut into uneven blocks: several
        // entries per product (the late layers' path) and, with a larger result, chunks of
        // one entry's columns; feature groups and lhs dilation.
        let mut rng = Rng(23);
        let ty = |a: &ArrayD<f64>| Type::new(DType::F64, a.shape());
        for (lhs, rhs, groups, lhs_dilation) in [
            ([3, 10, 53, 41], [4, 5, 3, 5], 2, [1, 1]),
            ([2, 7, 71, 47], [3, 7, 5, 5], 1, [2, 1]),
        ] {
            let (x, w) = (rng.array(&lhs), rng.array(&rhs));
            let mut dims = ConvDims::new(&[1, 1], &[(1, 2), (2, 0)]);
            dims.lhs_dilation = lhs_dilation[..].into();
            dims.feature_group_count = groups;
            let out = dims.output_type(&ty(&x), &ty(&w)).unwrap().shape;
            let rows = rhs[1] * rhs[2] * rhs[3];
            assert!(rows * out[2] * out[3] >= PARALLEL_GATHER, "{out:?}");
            let got = conv_general_dilated(&x.view(), &w.view(), &dims, &out);
            assert_eq!(got, naive(&x, &w, &dims, &out), "{dims:?}");
        }
    }
}
