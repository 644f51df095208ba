//! The `conv_general_dilated` kernel: im2col then GEMM, for any number of spatial axes.
//!
//! For each result batch entry and each group (feature or batch group), the lhs window under
//! every result position is gathered into a column matrix `[I·K1..Kk, Y1..Yk]` (holes of the
//! lhs dilation and padding read as zero, negative padding simply never read), and one matrix
//! product with the group's kernel rows `[O/g, I·K1..Kk]` (a contiguous block of the rhs in
//! row-major order) writes the group's block of the result `[O/g, Y1..Yk]`, also contiguous.
//! The gather is driven by one table per spatial axis (the lhs index each kernel tap reads at
//! each result position, or none), so it is the same loop for every k; without lhs dilation
//! each tap reads runs of the last axis, which are copied. The column matrix stays within a
//! fixed budget however large the kernel or the result: it is built in chunks of result
//! positions (down to one column), or, where whole results are small, for several batch
//! entries at once, which then share one product. The matrix product is ndarray's
//! `general_mat_mul` (matrixmultiply's GEMM for f32 and f64).

use ndarray::linalg::general_mat_mul;
use ndarray::{s, ArrayD, ArrayView2, ArrayViewMut2, IxDyn, LinalgScalar};
use traceform_ir::ConvDims;

/// The largest column matrix built at once, in elements (4 MiB of f32).
const COLUMN_BUDGET: usize = 1 << 20;

/// Marks a kernel tap that reads padding or a dilation hole.
const NONE: usize = usize::MAX;

/// For one spatial axis: `table[tap * outputs + y]` is the lhs index tap `tap` reads at result
/// position `y`, or `NONE`.
fn source_table(dims: &ConvDims, d: usize, size: usize, taps: usize, outputs: usize) -> Vec<usize> {
    let (stride, rd, ld) = (
        dims.window_strides[d] as i64,
        dims.rhs_dilation[d] as i64,
        dims.lhs_dilation[d] as i64,
    );
    let lo = dims.padding[d].0;
    let dilated = if size == 0 {
        0
    } else {
        (size as i64 - 1) * ld + 1
    };
    let mut table = Vec::with_capacity(taps * outputs);
    for tap in 0..taps as i64 {
        for y in 0..outputs as i64 {
            // The position in the dilated, unpadded lhs.
            let p = y * stride + tap * rd - lo;
            table.push(if p < 0 || p >= dilated || p % ld != 0 {
                NONE
            } else {
                (p / ld) as usize
            });
        }
    }
    table
}

/// Row-major strides of `shape`.
fn strides_of(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * shape[d + 1];
    }
    strides
}

/// On the last spatial axis of an undilated lhs, the positions one kernel tap reads: result
/// positions `start..end` read lhs positions `first`, `first + stride`, ...; the others read
/// padding. (Without lhs dilation the valid positions of a tap are one arithmetic run.)
#[derive(Clone, Copy, Debug)]
struct Run {
    start: usize,
    end: usize,
    first: usize,
}

/// The runs of each tap, read off its row of the last axis's `source_table`.
fn runs(table: &[usize], outputs: usize) -> Vec<Run> {
    table
        .chunks(outputs)
        .map(|row| {
            let start = row.iter().position(|&s| s != NONE).unwrap_or(0);
            let end = row.iter().rposition(|&s| s != NONE).map_or(0, |i| i + 1);
            let first = if start < end { row[start] } else { 0 };
            Run { start, end, first }
        })
        .collect()
}

/// What stays fixed over one convolution.
struct Geometry<'a> {
    /// Per spatial axis, see `source_table`.
    tables: Vec<Vec<usize>>,
    /// Per tap of the last axis, when its lhs dilation is 1: the gather is then a copy
    /// (stride 1) or a strided copy.
    last_runs: Option<Vec<Run>>,
    last_stride: usize,
    kernel: &'a [usize],
    outputs: &'a [usize],
    /// Row-major strides of the lhs spatial axes, of the kernel taps, of the result positions.
    in_strides: Vec<usize>,
    tap_strides: Vec<usize>,
    out_strides: Vec<usize>,
    /// Elements of one lhs feature plane.
    plane: usize,
}

impl Geometry<'_> {
    /// Writes the windows of `image` (I feature planes) at the result positions `positions`
    /// (row-major over the spatial axes) into `(columns, row_stride, offset)`: row `r` of the
    /// column matrix (`r < I·taps`) from `columns[r·row_stride + offset]` on.
    fn gather<T: LinalgScalar>(
        &self,
        image: &[T],
        features: usize,
        positions: std::ops::Range<usize>,
        (columns, row_stride, offset): (&mut [T], usize, usize),
    ) {
        let k = self.kernel.len();
        let last = k - 1;
        let taps: usize = self.kernel.iter().product();
        let y_last = self.outputs[last];
        let width = positions.len();
        // The result rows (all but the last axis) the range touches, and their coordinates,
        // worked out once.
        let first_row = positions.start / y_last;
        let rows = first_row..positions.end.div_ceil(y_last);
        let coords: Vec<usize> = rows
            .clone()
            .flat_map(|p| {
                (0..last).map(move |d| p * y_last / self.out_strides[d] % self.outputs[d])
            })
            .collect();
        let mut tap_index = vec![0; k];
        for feature in 0..features {
            let plane = &image[feature * self.plane..(feature + 1) * self.plane];
            for tap in 0..taps {
                for (d, t) in tap_index.iter_mut().enumerate() {
                    *t = tap / self.tap_strides[d] % self.kernel[d];
                }
                let row = &mut columns[(feature * taps + tap) * row_stride + offset..][..width];
                for p in rows.clone() {
                    // The part of result row p in the range: last-axis positions y0..y1.
                    let y0 = positions.start.max(p * y_last) - p * y_last;
                    let y1 = positions.end.min((p + 1) * y_last) - p * y_last;
                    let at = p * y_last + y0 - positions.start;
                    let segment = &mut row[at..at + (y1 - y0)];
                    let coord = &coords[(p - first_row) * last..][..last];
                    match self.leading_offset(&tap_index, coord) {
                        None => segment.fill(T::zero()),
                        Some(base) => {
                            self.gather_segment(plane, base, tap_index[last], y0, segment)
                        }
                    }
                }
            }
        }
    }

    /// The lhs offset tap `tap_index` reads on the leading spatial axes at result coordinates
    /// `coord`, or `None` in padding or a dilation hole.
    fn leading_offset(&self, tap_index: &[usize], coord: &[usize]) -> Option<usize> {
        let mut base = 0;
        for (d, &c) in coord.iter().enumerate() {
            let src = self.tables[d][tap_index[d] * self.outputs[d] + c];
            if src == NONE {
                return None;
            }
            base += src * self.in_strides[d];
        }
        Some(base)
    }

    /// Fills `segment`, last-axis result positions `y0..`, with what last-axis tap `tap` reads
    /// from `plane` at leading offset `base`.
    fn gather_segment<T: LinalgScalar>(
        &self,
        plane: &[T],
        base: usize,
        tap: usize,
        y0: usize,
        segment: &mut [T],
    ) {
        let y1 = y0 + segment.len();
        match &self.last_runs {
            Some(runs) => {
                let run = runs[tap];
                // A run starts no later than it ends, so neither do the clamped bounds.
                let (start, end) = (run.start.clamp(y0, y1), run.end.clamp(y0, y1));
                segment[..start - y0].fill(T::zero());
                segment[end - y0..].fill(T::zero());
                let target = &mut segment[start - y0..end - y0];
                if target.is_empty() {
                    return;
                }
                let source = &plane[base + run.first + (start - run.start) * self.last_stride..];
                if self.last_stride == 1 {
                    target.copy_from_slice(&source[..target.len()]);
                } else {
                    let strided = source.iter().step_by(self.last_stride);
                    for (dst, &src) in target.iter_mut().zip(strided) {
                        *dst = src;
                    }
                }
            }
            None => {
                let y_last = self.outputs[self.kernel.len() - 1];
                let table =
                    &self.tables[self.kernel.len() - 1][tap * y_last + y0..][..segment.len()];
                for (dst, &src) in segment.iter_mut().zip(table) {
                    *dst = if src == NONE {
                        T::zero()
                    } else {
                        plane[base + src]
                    };
                }
            }
        }
    }
}

/// `conv_general_dilated[dims] lhs rhs`, whose verified result shape is `out_shape`.
pub fn conv_general_dilated<T: LinalgScalar>(
    lhs: &ArrayD<T>,
    rhs: &ArrayD<T>,
    dims: &ConvDims,
    out_shape: &[usize],
) -> ArrayD<T> {
    let lhs = lhs.as_standard_layout();
    let rhs = rhs.as_standard_layout();
    let x = lhs.as_slice().expect("standard layout");
    let w = rhs.as_slice().expect("standard layout");
    let (channels, features, out_features) = (lhs.shape()[1], rhs.shape()[1], rhs.shape()[0]);
    let kernel = &rhs.shape()[2..];
    let outputs = &out_shape[2..];
    let k = kernel.len();
    let groups = dims.group_count();
    let per_group = out_features / groups.max(1);
    let taps: usize = kernel.iter().product();
    let rows = features * taps;
    let positions: usize = outputs.iter().product();
    let plane: usize = lhs.shape()[2..].iter().product();
    let mut out = vec![T::zero(); out_shape.iter().product()];
    if !out.is_empty() && rows > 0 {
        let tables: Vec<Vec<usize>> = (0..k)
            .map(|d| source_table(dims, d, lhs.shape()[d + 2], kernel[d], outputs[d]))
            .collect();
        let last_runs =
            (dims.lhs_dilation[k - 1] == 1).then(|| runs(&tables[k - 1], outputs[k - 1]));
        let geometry = Geometry {
            tables,
            last_runs,
            last_stride: dims.window_strides[k - 1],
            kernel,
            outputs,
            in_strides: strides_of(&lhs.shape()[2..]),
            tap_strides: strides_of(kernel),
            out_strides: strides_of(outputs),
            plane,
        };
        let batch = out_shape[0];
        // Whole results of several batch entries per product where their columns fit the
        // budget (small results: late layers, the kernel's transpose); else column chunks of
        // one entry's result, at least one column wide.
        let entries_per_product = (COLUMN_BUDGET / (rows * positions)).clamp(1, batch);
        let chunk = (COLUMN_BUDGET / rows).clamp(1, positions);
        let widest = (entries_per_product * positions).max(chunk);
        let mut columns = vec![T::zero(); rows * widest];
        let mut products = vec![T::zero(); per_group * entries_per_product * positions];
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
            let weights = ArrayView2::from_shape(
                (per_group, rows),
                &w[q * per_group * rows..(q + 1) * per_group * rows],
            )
            .expect("sizes agree");
            let mut n = 0;
            while n < batch {
                let count = entries_per_product.min(batch - n);
                if count > 1 {
                    let width = count * positions;
                    let cols = &mut columns[..rows * width];
                    for i in 0..count {
                        let target = (&mut *cols, width, i * positions);
                        geometry.gather(image(n + i, q), features, 0..positions, target);
                    }
                    let cols = ArrayView2::from_shape((rows, width), &*cols).expect("sizes agree");
                    let mut product = ArrayViewMut2::from_shape(
                        (per_group, width),
                        &mut products[..per_group * width],
                    )
                    .expect("sizes agree");
                    general_mat_mul(T::one(), &weights, &cols, T::zero(), &mut product);
                    // Column block i of the product is entry n + i's rows of group q.
                    for i in 0..count {
                        for o in 0..per_group {
                            let to = ((n + i) * out_features + q * per_group + o) * positions;
                            let from = o * width + i * positions;
                            out[to..to + positions]
                                .copy_from_slice(&products[from..from + positions]);
                        }
                    }
                } else {
                    let block = (n * out_features + q * per_group) * positions;
                    let mut result = ArrayViewMut2::from_shape(
                        (per_group, positions),
                        &mut out[block..block + per_group * positions],
                    )
                    .expect("sizes agree");
                    let mut first = 0;
                    while first < positions {
                        let end = (first + chunk).min(positions);
                        let width = end - first;
                        let cols = &mut columns[..rows * width];
                        geometry.gather(image(n, q), features, first..end, (cols, width, 0));
                        let cols =
                            ArrayView2::from_shape((rows, width), &*cols).expect("sizes agree");
                        let mut target = result.slice_mut(s![.., first..end]);
                        general_mat_mul(T::one(), &weights, &cols, T::zero(), &mut target);
                        first = end;
                    }
                }
                n += count;
            }
        }
    }
    ArrayD::from_shape_vec(IxDyn(out_shape), out).expect("sizes agree")
}

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
    fn im2col_gemm_matches_the_definition_on_random_convolutions() {
        let mut rng = Rng(0x5eed);
        for case in 0..400 {
            let (ls, rs, dims, out) = random_case(&mut rng);
            let (x, w) = (rng.array(&ls), rng.array(&rs));
            let want = naive(&x, &w, &dims, &out);
            let got = conv_general_dilated(&x, &w, &dims, &out);
            assert_eq!(got, want, "case {case}: {ls:?} * {rs:?} with {dims:?}");
            let got32 =
                conv_general_dilated(&x.mapv(|v| v as f32), &w.mapv(|v| v as f32), &dims, &out);
            assert_eq!(got32.mapv(f64::from), want, "f32 case {case}");
        }
    }

    #[test]
    fn kernels_longer_than_the_budget_are_gathered_a_column_at_a_time() {
        let taps = COLUMN_BUDGET + 7;
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
        let got = conv_general_dilated(&x, &w, &dims, &out.shape);
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
            let got = conv_general_dilated(&x, &w, &dims, &out.shape);
            assert_eq!(got, naive(&x, &w, &dims, &out.shape), "{dims:?}");
        }
    }
}
