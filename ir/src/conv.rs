//! `conv_general_dilated`: its attributes (`ConvDims`), the geometry of one spatial axis
//! (dilated, padded and output sizes, in checked arithmetic) and the shape rule, as
//! `shared/spec/ir-text.md` defines them ("Convolutions and windowed reductions"); and the
//! layer-style front end on `Tensor`: `conv2d` (NCHW input, OIHW kernel) with `ConvPadding`
//! (`Valid`, `Same`, or explicit pairs).
//!
//! The layout is fixed: lhs `[N, C, S1..Sk]`, rhs `[O, I, K1..Kk]`, result `[N/B, O, Y1..Yk]`.
//! On each spatial axis the lhs is dilated (`S' = (S - 1)·ld + 1`, 0 when `S = 0`), padded
//! (`P = S' + lo + hi`, negative padding crops), the kernel spans `E = (K - 1)·rd + 1` (0 when
//! `K = 0`), and `Y = floor((P - E) / s) + 1` when `P >= E`, else 0.

use smallvec::SmallVec;

use crate::prim::Axes;
use crate::trace::Tensor;
use crate::types::{Shape, Type};

/// `(lo, hi)` padding per spatial axis; negative entries crop.
pub type PadPairs = SmallVec<[(i64, i64); 4]>;

/// The attributes of `conv_general_dilated` (jax.lax's names and meanings), one entry per
/// spatial axis in every tuple.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConvDims {
    pub window_strides: Axes,
    pub padding: PadPairs,
    pub lhs_dilation: Axes,
    pub rhs_dilation: Axes,
    pub feature_group_count: usize,
    pub batch_group_count: usize,
}

/// The sizes of one spatial axis of a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AxisGeometry {
    /// `S'`: the lhs size after dilation.
    pub dilated: usize,
    /// `P`: after dilation and padding.
    pub padded: usize,
    /// `E`: the span of the dilated kernel.
    pub extent: usize,
    /// `Y`: the result size.
    pub output: usize,
}

/// `(size - 1)·dilation + 1`, or 0 for an empty axis; `None` past `u32::MAX`.
pub fn dilated_size(size: usize, dilation: usize) -> Option<usize> {
    if size == 0 {
        return Some(0);
    }
    let n = (size as u128 - 1) * dilation as u128 + 1;
    (n <= u128::from(u32::MAX)).then_some(n as usize)
}

/// The geometry of one windowed axis: input `size`, `window` taps `window_dilation` apart,
/// the input dilated by `base_dilation` and padded by `(lo, hi)`, positions `stride` apart.
/// `Err` says which size is out of range.
pub fn axis_geometry(
    size: usize,
    window: usize,
    stride: usize,
    (lo, hi): (i64, i64),
    base_dilation: usize,
    window_dilation: usize,
) -> Result<AxisGeometry, String> {
    if stride == 0 || base_dilation == 0 || window_dilation == 0 {
        return Err("strides and dilations must be at least 1".into());
    }
    let limit = u64::from(u32::MAX);
    if [stride, base_dilation, window_dilation]
        .iter()
        .any(|&x| x as u64 > limit)
        || lo.unsigned_abs() > limit
        || hi.unsigned_abs() > limit
    {
        return Err(format!(
            "strides, dilations and padding must be at most {limit} in magnitude"
        ));
    }
    let dilated = dilated_size(size, base_dilation)
        .ok_or_else(|| format!("the dilated size of {size} is too large"))?;
    let extent = dilated_size(window, window_dilation)
        .ok_or_else(|| format!("the dilated window size of {window} is too large"))?;
    // Every term is below 2^64 in magnitude, so i128 cannot overflow.
    let padded = dilated as i128 + i128::from(lo) + i128::from(hi);
    if padded < 0 {
        return Err(format!(
            "padding ({lo},{hi}) leaves a negative size {padded} of the dilated size {dilated}"
        ));
    }
    if padded > i128::from(u32::MAX) {
        return Err(format!("the padded size {padded} is too large"));
    }
    let padded = padded as usize;
    let output = if padded >= extent {
        (padded - extent) / stride + 1
    } else {
        0
    };
    Ok(AxisGeometry {
        dilated,
        padded,
        extent,
        output,
    })
}

fn tuple_str<T: std::fmt::Display>(xs: &[T]) -> String {
    let inner: Vec<String> = xs.iter().map(|x| x.to_string()).collect();
    format!("({})", inner.join(","))
}

impl ConvDims {
    /// A convolution with these strides and padding, no dilation and no groups.
    pub fn new(window_strides: &[usize], padding: &[(i64, i64)]) -> ConvDims {
        let ones = Axes::from_elem(1, window_strides.len());
        ConvDims {
            window_strides: window_strides.into(),
            padding: padding.into(),
            lhs_dilation: ones.clone(),
            rhs_dilation: ones,
            feature_group_count: 1,
            batch_group_count: 1,
        }
    }

    /// The number of spatial axes the attributes describe (that of `window_strides`).
    pub fn spatial_rank(&self) -> usize {
        self.window_strides.len()
    }

    /// `G·B`: the number of groups (at least one of the two counts is 1).
    pub fn group_count(&self) -> usize {
        self.feature_group_count * self.batch_group_count
    }

    /// The geometry of spatial axis `d` for an lhs size `s` and a kernel size `k`.
    pub fn axis(&self, d: usize, s: usize, k: usize) -> Result<AxisGeometry, String> {
        axis_geometry(
            s,
            k,
            self.window_strides[d],
            self.padding[d],
            self.lhs_dilation[d],
            self.rhs_dilation[d],
        )
        .map_err(|e| format!("spatial axis {d}: {e}"))
    }

    /// The result type for operands `lhs` and `rhs`, or what is wrong (without the
    /// primitive's name, which the caller adds).
    pub fn output_type(&self, lhs: &Type, rhs: &Type) -> Result<Type, String> {
        if lhs.dtype != rhs.dtype || !lhs.dtype.is_float() {
            return Err(format!(
                "operands must have one float dtype (f32 or f64), found {lhs} and {rhs}"
            ));
        }
        let k = self.spatial_rank();
        if lhs.rank() < 3 || rhs.rank() != lhs.rank() {
            return Err(format!(
                "lhs [N,C,S..] and rhs [O,I,K..] must have one rank of at least 3, found {lhs} and {rhs}"
            ));
        }
        if lhs.rank() != k + 2 {
            return Err(format!(
                "window_strides {} has {k} entries but the operands {lhs} and {rhs} have {} spatial axes",
                tuple_str(&self.window_strides),
                lhs.rank() - 2
            ));
        }
        for (what, len) in [
            ("padding", self.padding.len()),
            ("lhs_dilation", self.lhs_dilation.len()),
            ("rhs_dilation", self.rhs_dilation.len()),
        ] {
            if len != k {
                return Err(format!(
                    "{what} has {len} entries but the operands have {k} spatial axes"
                ));
            }
        }
        let (g, b) = (self.feature_group_count, self.batch_group_count);
        if g == 0 || b == 0 {
            return Err(format!(
                "feature_group_count ({g}) and batch_group_count ({b}) must be at least 1"
            ));
        }
        if g > 1 && b > 1 {
            return Err(format!(
                "feature_group_count ({g}) and batch_group_count ({b}) cannot both exceed 1"
            ));
        }
        let (n, c) = (lhs.shape[0], lhs.shape[1]);
        let (o, i) = (rhs.shape[0], rhs.shape[1]);
        if c as u128 != g as u128 * i as u128 {
            return Err(format!(
                "lhs {lhs} has {c} features but rhs {rhs} takes {i} per group times feature_group_count {g}"
            ));
        }
        if o % g != 0 || o % b != 0 {
            return Err(format!(
                "rhs {rhs} has {o} output features, not a multiple of feature_group_count {g} and batch_group_count {b}"
            ));
        }
        if n % b != 0 {
            return Err(format!(
                "lhs {lhs} has batch {n}, not a multiple of batch_group_count {b}"
            ));
        }
        let mut shape = Shape::with_capacity(k + 2);
        shape.push(n / b);
        shape.push(o);
        for d in 0..k {
            let geometry = self.axis(d, lhs.shape[d + 2], rhs.shape[d + 2])?;
            shape.push(geometry.output);
        }
        Ok(Type::new(lhs.dtype, shape))
    }
}

/// How a convolution is padded, as the layers of neural-network libraries say it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConvPadding {
    /// No padding: only windows that fit.
    Valid,
    /// jax's `'SAME'`: `ceil(S / s)` results per axis, the padding split evenly with the odd
    /// element after.
    Same,
    /// `(lo, hi)` per spatial axis.
    Pairs(PadPairs),
}

impl ConvPadding {
    /// The `(lo, hi)` pairs for an lhs of spatial sizes `sizes` and a kernel of spatial sizes
    /// `kernel` (with its dilation), at these strides. Axes missing from `sizes` or `kernel`
    /// count as size 0, so a rank error surfaces in the shape rule rather than here.
    pub fn pairs(
        &self,
        sizes: &[usize],
        kernel: &[usize],
        strides: &[usize],
        rhs_dilation: &[usize],
    ) -> PadPairs {
        match self {
            ConvPadding::Valid => strides.iter().map(|_| (0, 0)).collect(),
            ConvPadding::Pairs(pairs) => pairs.clone(),
            ConvPadding::Same => (0..strides.len())
                .map(|d| {
                    let at = |xs: &[usize]| xs.get(d).copied().unwrap_or(0) as i128;
                    let (size, stride) = (at(sizes), at(strides).max(1));
                    let extent = match at(kernel) {
                        0 => 0,
                        k => (k - 1) * at(rhs_dilation).max(1) + 1,
                    };
                    let outputs = (size + stride - 1) / stride;
                    let total = ((outputs - 1) * stride + extent - size).max(0);
                    let lo = total / 2;
                    let clamp = |x: i128| x.min(i128::from(u32::MAX)) as i64;
                    (clamp(lo), clamp(total - lo))
                })
                .collect(),
        }
    }
}

impl Tensor {
    /// A 2-d convolution of an NCHW input with an OIHW kernel (`[N, C, H, W]` and
    /// `[O, C, KH, KW]`, giving `[N, O, H', W']`), as `jax.lax.conv` with these strides and
    /// padding; no dilation, no groups (`conv_general_dilated` has them).
    #[track_caller]
    pub fn conv2d(&self, kernel: &Tensor, strides: [usize; 2], padding: ConvPadding) -> Tensor {
        let (x, k) = (self.shape(), kernel.shape());
        let spatial = |s: &[usize]| s.get(2..).unwrap_or(&[]).to_vec();
        let padding = padding.pairs(&spatial(&x), &spatial(&k), &strides, &[1, 1]);
        let mut dims = ConvDims::new(&strides, &[]);
        dims.padding = padding;
        self.conv_general_dilated(kernel, dims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::DType;

    fn f64s(shape: &[usize]) -> Type {
        Type::new(DType::F64, shape)
    }

    #[test]
    fn strided_padded_output_sizes_follow_the_spec() {
        // conv2d_stride_pad of the corpus: [2,3,6,5] * [4,3,3,2] -> [2,4,3,3].
        let mut dims = ConvDims::new(&[2, 2], &[(1, 1), (2, 0)]);
        let t = dims.output_type(&f64s(&[2, 3, 6, 5]), &f64s(&[4, 3, 3, 2]));
        assert_eq!(t.unwrap(), f64s(&[2, 4, 3, 3]));
        dims.lhs_dilation = [2, 2][..].into();
        dims.padding = [(1, 1), (2, 2)][..].into();
        dims.window_strides = [1, 1][..].into();
        let t = dims.output_type(&f64s(&[1, 2, 4, 3]), &f64s(&[2, 2, 3, 3]));
        assert_eq!(t.unwrap(), f64s(&[1, 2, 7, 7]));
    }

    #[test]
    fn negative_padding_crops_and_may_leave_nothing() {
        let g = axis_geometry(5, 2, 1, (-1, -2), 1, 1).unwrap();
        assert_eq!((g.padded, g.output), (2, 1));
        let g = axis_geometry(5, 3, 1, (-1, -2), 1, 1).unwrap();
        assert_eq!(g.output, 0);
        let e = axis_geometry(2, 1, 1, (-2, -1), 1, 1).unwrap_err();
        assert!(e.contains("negative size -1"), "{e}");
    }

    #[test]
    fn groups_are_checked() {
        let mut dims = ConvDims::new(&[1], &[(0, 0)]);
        dims.feature_group_count = 2;
        let e = dims
            .output_type(&f64s(&[1, 4, 5]), &f64s(&[3, 2, 2]))
            .unwrap_err();
        assert!(e.contains("not a multiple"), "{e}");
        dims.batch_group_count = 2;
        let e = dims
            .output_type(&f64s(&[2, 4, 5]), &f64s(&[4, 2, 2]))
            .unwrap_err();
        assert!(e.contains("cannot both"), "{e}");
    }

    #[test]
    fn one_axis_padding_is_written_either_way_and_defaults_print_in_full() {
        let text = |padding: &str| {
            format!(
                "func f(x: f32[1,2,5], w: f32[3,2,2]) -> f32[1,3,2] {{\n  y = conv_general_dilated[window_strides=(2), padding={padding}] x w\n  return y\n}}\n"
            )
        };
        let a = crate::parse::parse_func(&text("((1,-1))")).unwrap();
        let b = crate::parse::parse_func(&text("((1,-1),)")).unwrap();
        assert_eq!(a, b);
        let printed = crate::print::print_func(&a);
        assert!(
            printed.contains("conv_general_dilated[window_strides=(2), padding=((1,-1)), lhs_dilation=(1), rhs_dilation=(1), feature_group_count=1, batch_group_count=1] x w"),
            "{printed}"
        );
        assert_eq!(crate::parse::parse_func(&printed).unwrap(), a);
        let e = crate::parse::parse_func(&text("(1,-1)")).unwrap_err();
        assert!(e.to_string().contains("(lo,hi) pairs"), "{e}");
    }

    #[test]
    fn huge_dilations_are_errors() {
        let e = axis_geometry(1 << 20, 1, 1, (0, 0), 1 << 20, 1).unwrap_err();
        assert!(e.contains("too large"), "{e}");
        // Attributes the parser bounds can come from Rust unbounded.
        let e = axis_geometry(3, 1, 1, (i64::MIN, i64::MAX), 1, 1).unwrap_err();
        assert!(e.contains("at most"), "{e}");
        let e = axis_geometry(3, 1, usize::MAX, (0, 0), 1, 1).unwrap_err();
        assert!(e.contains("at most"), "{e}");
    }
}
