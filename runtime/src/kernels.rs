//! One kernel per primitive, written for clarity over speed: these define what every
//! primitive means, and the JIT is judged against them. Kernels read their operands as views
//! in any layout (an input is never copied to be evaluated); the few that need contiguous
//! data copy it locally (`as_standard_layout`), and fast paths over a slice fall back to
//! ndarray's iterators for other layouts.

use ndarray::{
    concatenate, ArrayD, ArrayView1, ArrayView2, ArrayViewD, ArrayViewMut2, Axis, IxDyn,
    LinalgScalar, Slice, Zip,
};
use traceform_ir::{dot_free_axes, BinaryOp, CompareOp, DType, DotDims, Prim, Type, UnaryOp};

use crate::conv::conv_general_dilated;
use crate::gemm::{mat_mul, Gemm};
use crate::value::{Value, ValueRef};
use crate::window::{
    reduce_window, reduce_window_extremum, reduce_window_sum_transpose, select_and_gather_add,
    select_and_scatter_add,
};

/// The float element operations the kernels need, for f32 and f64.
pub trait Real: Copy + PartialOrd + LinalgScalar + std::fmt::Debug {
    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
    /// `op` applied to every element (the match is outside the element loop).
    fn map_unary(a: &ArrayViewD<'_, Self>, op: UnaryOp) -> ArrayD<Self>;
    /// `integer_pow`: square-and-multiply, then the reciprocal for a negative power, exactly
    /// as jax.lax lowers it.
    fn integer_pow(self, y: i32) -> Self;
    fn powf(self, y: Self) -> Self;
    fn atan2(self, x: Self) -> Self;
    fn is_nan(self) -> bool;
}

macro_rules! impl_real {
    ($t:ty, $erf:path) => {
        impl Real for $t {
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn map_unary(a: &ArrayViewD<'_, Self>, op: UnaryOp) -> ArrayD<Self> {
                match op {
                    UnaryOp::Neg => a.mapv(|x| -x),
                    UnaryOp::Sin => a.mapv(<$t>::sin),
                    UnaryOp::Cos => a.mapv(<$t>::cos),
                    UnaryOp::Tan => a.mapv(<$t>::tan),
                    UnaryOp::Tanh => a.mapv(<$t>::tanh),
                    UnaryOp::Exp => a.mapv(<$t>::exp),
                    UnaryOp::Log => a.mapv(<$t>::ln),
                    UnaryOp::Log1p => a.mapv(<$t>::ln_1p),
                    UnaryOp::Expm1 => a.mapv(<$t>::exp_m1),
                    UnaryOp::Sqrt => a.mapv(<$t>::sqrt),
                    UnaryOp::Rsqrt => a.mapv(|x| 1.0 / x.sqrt()),
                    UnaryOp::Abs => a.mapv(<$t>::abs),
                    // -1, 0 or 1; zeros keep their sign and NaN stays NaN, as in XLA.
                    UnaryOp::Sign => a.mapv(|x| {
                        if x > 0.0 {
                            1.0
                        } else if x < 0.0 {
                            -1.0
                        } else {
                            x
                        }
                    }),
                    UnaryOp::Logistic => a.mapv(|x| 1.0 / (1.0 + (-x).exp())),
                    UnaryOp::Erf => a.mapv($erf),
                    UnaryOp::Floor => a.mapv(<$t>::floor),
                    UnaryOp::Ceil => a.mapv(<$t>::ceil),
                    // Rust's round is half away from zero, as the spec says.
                    UnaryOp::Round => a.mapv(<$t>::round),
                }
            }
            fn integer_pow(self, y: i32) -> Self {
                let (mut base, mut n) = (self, y.unsigned_abs());
                let mut acc: Option<$t> = None;
                while n > 0 {
                    if n & 1 == 1 {
                        acc = Some(acc.map_or(base, |a| a * base));
                    }
                    n >>= 1;
                    if n > 0 {
                        base *= base;
                    }
                }
                let acc = acc.unwrap_or(1.0);
                if y < 0 {
                    1.0 / acc
                } else {
                    acc
                }
            }
            fn powf(self, y: Self) -> Self {
                self.powf(y)
            }
            fn atan2(self, x: Self) -> Self {
                self.atan2(x)
            }
            fn is_nan(self) -> bool {
                self.is_nan()
            }
        }
    };
}

impl_real!(f32, libm::erff);
impl_real!(f64, libm::erf);

/// `integer_pow` of every element; the common small powers get loops of their own (with the
/// same association order as the general square-and-multiply).
fn map_integer_pow<T: Real>(a: &ArrayViewD<'_, T>, y: i32) -> ArrayD<T> {
    match y {
        1 => a.to_owned(),
        2 => a.mapv(|x| x * x),
        3 => a.mapv(|x| x * (x * x)),
        -1 => a.mapv(|x| T::one() / x),
        -2 => a.mapv(|x| T::one() / (x * x)),
        _ => a.mapv(|x| x.integer_pow(y)),
    }
}

/// An internal error: a kernel was handed operands the verifier should have rejected.
#[derive(Clone, Debug, thiserror::Error)]
#[error("`{prim}`: {message}")]
pub struct KernelError {
    pub prim: &'static str,
    pub message: String,
}

fn bad<T>(prim: &Prim, args: &[ValueRef<'_>]) -> Result<T, KernelError> {
    let types: Vec<String> = args.iter().map(|a| a.ty().to_string()).collect();
    Err(KernelError {
        prim: prim.name(),
        message: format!("no kernel for operands ({})", types.join(", ")),
    })
}

/// Elementwise map of two arrays of equal shape, or with one of them rank 0.
fn zip_map<A: Copy, B: Copy, R>(
    a: &ArrayViewD<'_, A>,
    b: &ArrayViewD<'_, B>,
    f: impl Fn(A, B) -> R,
) -> ArrayD<R> {
    if a.shape() == b.shape() {
        Zip::from(a).and(b).map_collect(|&x, &y| f(x, y))
    } else if a.ndim() == 0 {
        let x = a[IxDyn(&[])];
        b.map(|&y| f(x, y))
    } else {
        let y = b[IxDyn(&[])];
        a.map(|&x| f(x, y))
    }
}

fn max_nan<T: PartialOrd + Copy>(a: T, b: T, nan: impl Fn(T) -> bool) -> T {
    if nan(a) || a > b {
        a
    } else if nan(b) || b > a {
        b
    } else {
        a
    }
}

fn min_nan<T: PartialOrd + Copy>(a: T, b: T, nan: impl Fn(T) -> bool) -> T {
    if nan(a) || a < b {
        a
    } else if nan(b) || b < a {
        b
    } else {
        a
    }
}

fn float_binary<T: Real>(op: BinaryOp, a: &ArrayViewD<'_, T>, b: &ArrayViewD<'_, T>) -> ArrayD<T> {
    match op {
        BinaryOp::Add => zip_map(a, b, |x, y| x + y),
        BinaryOp::Sub => zip_map(a, b, |x, y| x - y),
        BinaryOp::Mul => zip_map(a, b, |x, y| x * y),
        BinaryOp::Div => zip_map(a, b, |x, y| x / y),
        BinaryOp::Pow => zip_map(a, b, |x, y| x.powf(y)),
        BinaryOp::Max => zip_map(a, b, |x, y| max_nan(x, y, T::is_nan)),
        BinaryOp::Min => zip_map(a, b, |x, y| min_nan(x, y, T::is_nan)),
        BinaryOp::Atan2 => zip_map(a, b, |x, y| x.atan2(y)),
    }
}

fn int_binary(
    op: BinaryOp,
    a: &ArrayViewD<'_, i32>,
    b: &ArrayViewD<'_, i32>,
) -> Option<ArrayD<i32>> {
    Some(match op {
        BinaryOp::Add => zip_map(a, b, i32::wrapping_add),
        BinaryOp::Sub => zip_map(a, b, i32::wrapping_sub),
        BinaryOp::Mul => zip_map(a, b, i32::wrapping_mul),
        // XLA's integer division: truncating, and x / 0 = -1.
        BinaryOp::Div => zip_map(a, b, |x, y| if y == 0 { -1 } else { x.wrapping_div(y) }),
        BinaryOp::Max => zip_map(a, b, |x, y| x.max(y)),
        BinaryOp::Min => zip_map(a, b, |x, y| x.min(y)),
        BinaryOp::Pow | BinaryOp::Atan2 => return None,
    })
}

fn compare<T: PartialOrd + Copy>(
    op: CompareOp,
    a: &ArrayViewD<'_, T>,
    b: &ArrayViewD<'_, T>,
) -> ArrayD<bool> {
    match op {
        CompareOp::Lt => zip_map(a, b, |x, y| x < y),
        CompareOp::Le => zip_map(a, b, |x, y| x <= y),
        CompareOp::Gt => zip_map(a, b, |x, y| x > y),
        CompareOp::Ge => zip_map(a, b, |x, y| x >= y),
        CompareOp::Eq => zip_map(a, b, |x, y| x == y),
        CompareOp::Ne => zip_map(a, b, |x, y| x != y),
    }
}

fn select<T: Copy>(
    p: &ArrayViewD<'_, bool>,
    on_false: &ArrayViewD<'_, T>,
    on_true: &ArrayViewD<'_, T>,
) -> ArrayD<T> {
    let picked = zip_map(on_false, on_true, |f, t| (f, t));
    zip_map(p, &picked.view(), |p, (f, t)| if p { t } else { f })
}

fn standard<T: Clone>(v: ArrayViewD<'_, T>) -> ArrayD<T> {
    v.as_standard_layout().into_owned()
}

fn reshape<T: Clone>(x: &ArrayViewD<'_, T>, shape: &[usize]) -> ArrayD<T> {
    standard(x.view())
        .into_shape_with_order(IxDyn(shape))
        .expect("verified: element counts agree")
}

fn broadcast_in_dim<T: Clone>(x: &ArrayViewD<'_, T>, shape: &[usize], dims: &[usize]) -> ArrayD<T> {
    let mut aligned = vec![1; shape.len()];
    for (i, &d) in dims.iter().enumerate() {
        aligned[d] = x.shape()[i];
    }
    let x = reshape(x, &aligned);
    x.broadcast(IxDyn(shape))
        .expect("verified: broadcastable")
        .to_owned()
}

fn transpose<T: Clone>(x: &ArrayViewD<'_, T>, perm: &[usize]) -> ArrayD<T> {
    standard(x.view().permuted_axes(IxDyn(perm)))
}

fn rev<T: Clone>(x: &ArrayViewD<'_, T>, dims: &[usize]) -> ArrayD<T> {
    let mut v = x.view();
    for &d in dims {
        v.invert_axis(Axis(d));
    }
    standard(v)
}

fn slice<T: Clone>(
    x: &ArrayViewD<'_, T>,
    start: &[usize],
    limit: &[usize],
    strides: &[usize],
) -> ArrayD<T> {
    let v = x.slice_each_axis(|ax| {
        let d = ax.axis.index();
        Slice::new(
            start[d] as isize,
            Some(limit[d] as isize),
            strides[d] as isize,
        )
    });
    standard(v)
}

fn pad<T: Clone>(
    x: &ArrayViewD<'_, T>,
    value: &ArrayViewD<'_, T>,
    low: &[i64],
    interior: &[usize],
    out_shape: &[usize],
) -> ArrayD<T> {
    let fill = value[IxDyn(&[])].clone();
    let mut out = ArrayD::from_elem(IxDyn(out_shape), fill);
    // Along each axis, operand element i lands at low + i * (interior + 1); keep the elements
    // that land inside the result (negative padding crops) and copy them in one strided
    // assignment.
    let mut src = Vec::with_capacity(x.ndim());
    let mut dst = Vec::with_capacity(x.ndim());
    for d in 0..x.ndim() {
        let step = interior[d] as i64 + 1;
        let (n, size) = (x.shape()[d] as i64, out_shape[d] as i64);
        let first = if low[d] < 0 {
            (-low[d] + step - 1) / step
        } else {
            0
        };
        let last = if n == 0 {
            -1
        } else {
            (n - 1).min((size - 1 - low[d]).div_euclid(step))
        };
        if last < first {
            return out;
        }
        src.push(Slice::new(first as isize, Some(last as isize + 1), 1));
        let start = low[d] + first * step;
        dst.push(Slice::new(
            start as isize,
            Some((start + (last - first) * step + 1) as isize),
            step as isize,
        ));
    }
    let part = x.slice_each_axis(|ax| src[ax.axis.index()]);
    out.slice_each_axis_mut(|ax| dst[ax.axis.index()])
        .assign(&part);
    out
}

/// Running sums along `axis` with `add` (i32 passes `wrapping_add`: overflow wraps in every
/// build profile, as in XLA).
fn cumsum<T: Copy>(
    x: &ArrayViewD<'_, T>,
    axis: usize,
    reverse: bool,
    add: impl Fn(T, T) -> T,
) -> ArrayD<T> {
    let mut out = x.to_owned();
    if reverse {
        out.invert_axis(Axis(axis));
    }
    out.accumulate_axis_inplace(Axis(axis), |&prev, cur| *cur = add(*cur, prev));
    if reverse {
        out.invert_axis(Axis(axis));
    }
    standard(out.view())
}

/// Reduces `x` over `axes`: every output element starts at `init` and takes in its input
/// elements with `f(acc, element)`, in one pass over the input in row-major order and without
/// copying it (so each output element is a sequential left fold in memory order).
fn reduce<T: Copy>(
    x: &ArrayViewD<'_, T>,
    axes: &[usize],
    init: T,
    f: impl Fn(T, T) -> T,
) -> ArrayD<T> {
    if axes.is_empty() {
        return standard(x.view());
    }
    let kept = (0..x.ndim()).filter(|d| !axes.contains(d));
    let shape: Vec<usize> = kept.map(|d| x.shape()[d]).collect();
    let mut out = ArrayD::from_elem(IxDyn(&shape), init);
    if !x.is_empty() {
        let (view, reduced) = merged_axes(x, axes);
        let slots = out
            .as_slice_mut()
            .expect("a new array is in standard layout");
        fold_lanes(view, &reduced, slots, &f);
    }
    out
}

/// `x` viewed with its size-1 axes dropped and each run of adjacent reduced (or kept) axes
/// merged into one, and which axes of that view are reduced (at least one axis). Neither
/// changes the row-major order of the elements or the output element each lands in; it only
/// lengthens the lanes `fold_lanes` works on. Merging needs standard layout; other layouts
/// keep their axes.
fn merged_axes<'a, T>(x: &'a ArrayViewD<'_, T>, axes: &[usize]) -> (ArrayViewD<'a, T>, Vec<bool>) {
    let unmerged = || (x.view(), (0..x.ndim()).map(|d| axes.contains(&d)).collect());
    if !x.is_standard_layout() {
        return unmerged();
    }
    let (mut shape, mut reduced) = (Vec::new(), Vec::new());
    for (d, &n) in x.shape().iter().enumerate().filter(|&(_, &n)| n != 1) {
        let r = axes.contains(&d);
        match (shape.last_mut(), reduced.last()) {
            (Some(len), Some(&last)) if last == r => *len *= n,
            _ => {
                shape.push(n);
                reduced.push(r);
            }
        }
    }
    if shape.is_empty() {
        (shape, reduced) = (vec![1], vec![true]);
    }
    match x.view().into_shape_with_order(IxDyn(&shape)) {
        Ok(view) => (view, reduced),
        Err(_) => unmerged(),
    }
}

/// Folds every element of `x` (rank at least 1, not empty) into `out`, the row-major array of
/// its kept axes, lane by lane along the last axis in row-major order: a reduced last axis
/// folds each lane into one output element, a kept one combines each lane with a row of
/// outputs. A standard-layout `x` is cut into lanes straight from its slice.
fn fold_lanes<T: Copy>(
    x: ArrayViewD<'_, T>,
    reduced: &[bool],
    out: &mut [T],
    f: &impl Fn(T, T) -> T,
) {
    let lane_len = x.shape()[x.ndim() - 1];
    match x.as_slice() {
        Some(xs) => {
            let lanes = xs.chunks_exact(lane_len).map(ArrayView1::from);
            fold_each_lane(lanes, x.shape(), reduced, out, f)
        }
        None => fold_each_lane(x.rows().into_iter(), x.shape(), reduced, out, f),
    }
}

/// `fold_lanes` over `lanes`, the lanes of an array of `shape` in row-major order.
fn fold_each_lane<'a, T: Copy + 'a>(
    lanes: impl Iterator<Item = ArrayView1<'a, T>>,
    shape: &[usize],
    reduced: &[bool],
    out: &mut [T],
    f: &impl Fn(T, T) -> T,
) {
    let (&last_reduced, outer) = reduced.split_last().expect("rank at least 1");
    let outer_shape = &shape[..outer.len()];
    let strides = out_strides(shape, reduced);
    let mut index = vec![0; outer.len()];
    for lane in lanes {
        let at: usize = index.iter().zip(&strides).map(|(i, s)| i * s).sum();
        if last_reduced {
            out[at] = fold_lane(out[at], lane, f);
        } else {
            combine_lane(&mut out[at..at + lane.len()], lane, f);
        }
        advance(&mut index, outer_shape);
    }
}

/// The stride in the output of each input axis: 0 for a reduced axis, row-major over the
/// kept ones.
fn out_strides(shape: &[usize], reduced: &[bool]) -> Vec<usize> {
    let mut strides = vec![0; shape.len()];
    let mut step = 1;
    for d in (0..shape.len()).rev().filter(|&d| !reduced[d]) {
        strides[d] = step;
        step *= shape[d];
    }
    strides
}

/// Steps the row-major multi-index `index` within `shape` to the next position.
fn advance(index: &mut [usize], shape: &[usize]) {
    for d in (0..index.len()).rev() {
        index[d] += 1;
        if index[d] < shape[d] {
            return;
        }
        index[d] = 0;
    }
}

/// `acc` folded with the lane's elements in order.
fn fold_lane<T: Copy>(acc: T, lane: ArrayView1<'_, T>, f: &impl Fn(T, T) -> T) -> T {
    match lane.as_slice() {
        Some(xs) => xs.iter().fold(acc, |a, &v| f(a, v)),
        None => lane.iter().fold(acc, |a, &v| f(a, v)),
    }
}

/// Each output element combined with the lane element at its position.
fn combine_lane<T: Copy>(out: &mut [T], lane: ArrayView1<'_, T>, f: &impl Fn(T, T) -> T) {
    match lane.as_slice() {
        Some(xs) => out.iter_mut().zip(xs).for_each(|(o, &v)| *o = f(*o, v)),
        None => out.iter_mut().zip(&lane).for_each(|(o, &v)| *o = f(*o, v)),
    }
}

fn arg_best<T: Copy + PartialOrd>(
    x: &ArrayViewD<'_, T>,
    axis: usize,
    better: impl Fn(T, T) -> bool,
    nan: impl Fn(T) -> bool,
) -> ArrayD<i32> {
    x.map_axis(Axis(axis), |lane| {
        let mut best_i = 0usize;
        let mut best = lane[0];
        for (i, &v) in lane.iter().enumerate().skip(1) {
            if nan(best) {
                break;
            }
            if nan(v) || better(v, best) {
                best = v;
                best_i = i;
            }
        }
        best_i as i32
    })
}

/// `out = x · y` by the GEMM (`crate::gemm`, the one the JIT calls too).
fn float_mat_mul<T: Gemm>(x: ArrayView2<'_, T>, y: ArrayView2<'_, T>, out: ArrayViewMut2<'_, T>) {
    mat_mul(x, y, out);
}

/// `out = x · y` for i32 with every product and sum wrapping, as XLA's integer dot does
/// (ndarray's generic product uses `+` and `*`, which panic on overflow in debug builds).
fn wrapping_mat_mul(
    x: ArrayView2<'_, i32>,
    y: ArrayView2<'_, i32>,
    mut out: ArrayViewMut2<'_, i32>,
) {
    for (xi, mut oi) in x.rows().into_iter().zip(out.rows_mut()) {
        for (&a, yk) in xi.iter().zip(y.rows()) {
            oi.zip_mut_with(&yk, |o, &b| *o = o.wrapping_add(a.wrapping_mul(b)));
        }
    }
}

/// `dot_general` as batched matrix products, each computed by `mat_mul`.
fn dot_general<T: LinalgScalar>(
    x: &ArrayViewD<'_, T>,
    y: &ArrayViewD<'_, T>,
    dims: &DotDims,
    mat_mul: impl Fn(ArrayView2<'_, T>, ArrayView2<'_, T>, ArrayViewMut2<'_, T>),
) -> ArrayD<T> {
    let (lc, rc) = &dims.contract;
    let (lb, rb) = &dims.batch;
    let lf = dot_free_axes(x.ndim(), lc, lb);
    let rf = dot_free_axes(y.ndim(), rc, rb);
    let size = |a: &ArrayViewD<'_, T>, axes: &[usize]| {
        axes.iter().map(|&d| a.shape()[d]).product::<usize>()
    };
    let (b, m, k, n) = (size(x, lb), size(x, &lf), size(x, lc), size(y, &rf));
    let xperm: Vec<usize> = lb.iter().chain(&lf).chain(lc).copied().collect();
    let yperm: Vec<usize> = rb.iter().chain(rc).chain(&rf).copied().collect();
    if lb.is_empty() && x.ndim() == 2 && y.ndim() == 2 && lc.len() == 1 && rc.len() == 1 {
        // A product of two matrices: the GEMM reads them in place with any strides, so a
        // matrix used as stored or transposed is never copied (a dense layer's weights, hundreds
        // of MiB for AlexNet, were copied on every call).
        let xi = x
            .view()
            .into_dimensionality::<ndarray::Ix2>()
            .expect("rank 2");
        let yi = y
            .view()
            .into_dimensionality::<ndarray::Ix2>()
            .expect("rank 2");
        let (xi, yi) = (
            xi.permuted_axes([lf[0], lc[0]]),
            yi.permuted_axes([rc[0], rf[0]]),
        );
        let mut out = ndarray::Array2::<T>::zeros((m, n));
        mat_mul(xi, yi, out.view_mut());
        return out.into_dyn();
    }
    let x3 = reshape(&transpose(x, &xperm).view(), &[b, m, k]);
    let y3 = reshape(&transpose(y, &yperm).view(), &[b, k, n]);
    let mut out = ndarray::Array3::<T>::zeros((b, m, n));
    for i in 0..b {
        let xi = x3
            .index_axis(Axis(0), i)
            .into_dimensionality::<ndarray::Ix2>()
            .expect("rank 2");
        let yi = y3
            .index_axis(Axis(0), i)
            .into_dimensionality::<ndarray::Ix2>()
            .expect("rank 2");
        let oi = out
            .index_axis_mut(Axis(0), i)
            .into_dimensionality::<ndarray::Ix2>()
            .expect("rank 2");
        mat_mul(xi, yi, oi);
    }
    let mut shape: Vec<usize> = lb.iter().map(|&d| x.shape()[d]).collect();
    shape.extend(lf.iter().map(|&d| x.shape()[d]));
    shape.extend(rf.iter().map(|&d| y.shape()[d]));
    out.into_dyn()
        .into_shape_with_order(IxDyn(&shape))
        .expect("sizes agree")
}

fn iota<T>(shape: &[usize], dim: usize, from: impl Fn(usize) -> T) -> ArrayD<T> {
    ArrayD::from_shape_fn(IxDyn(shape), |idx| from(idx[dim]))
}

fn convert(x: &ValueRef<'_>, to: DType) -> Value {
    macro_rules! conv {
        ($a:expr, $f:expr) => {
            match to {
                DType::F32 => Value::F32($a.mapv(|v| $f(v) as f32)),
                DType::F64 => Value::F64($a.mapv(|v| $f(v))),
                // Float to int truncates toward zero (saturating; NaN becomes 0).
                DType::I32 => Value::I32($a.mapv(|v| $f(v) as i32)),
                DType::Bool => Value::Bool($a.mapv(|v| $f(v) != 0.0)),
            }
        };
    }
    match x {
        ValueRef::F32(a) => conv!(a, f64::from),
        ValueRef::F64(a) => conv!(a, |v: f64| v),
        ValueRef::I32(a) => conv!(a, f64::from),
        ValueRef::Bool(a) => conv!(a, |v: bool| f64::from(u8::from(v))),
    }
}

/// Applies `prim` to `args`, producing a value of type `out` (the verified result type).
pub fn apply(prim: &Prim, args: &[ValueRef<'_>], out: &Type) -> Result<Value, KernelError> {
    use ValueRef::{Bool, F32, F64, I32};
    macro_rules! any {
        ($v:expr, $a:ident => $e:expr) => {
            match &$v {
                F32($a) => Value::F32($e),
                F64($a) => Value::F64($e),
                I32($a) => Value::I32($e),
                Bool($a) => Value::Bool($e),
            }
        };
    }
    macro_rules! same2 {
        ($x:expr, $y:expr, $a:ident, $b:ident => $e:expr) => {
            match (&$x, &$y) {
                (F32($a), F32($b)) => Value::F32($e),
                (F64($a), F64($b)) => Value::F64($e),
                (I32($a), I32($b)) => Value::I32($e),
                (Bool($a), Bool($b)) => Value::Bool($e),
                _ => return bad(prim, args),
            }
        };
    }
    Ok(match prim {
        Prim::Unary(op) => match &args[0] {
            F32(a) => Value::F32(Real::map_unary(a, *op)),
            F64(a) => Value::F64(Real::map_unary(a, *op)),
            I32(a) => match op {
                UnaryOp::Neg => Value::I32(a.mapv(i32::wrapping_neg)),
                UnaryOp::Abs => Value::I32(a.mapv(i32::wrapping_abs)),
                UnaryOp::Sign => Value::I32(a.mapv(i32::signum)),
                _ => return bad(prim, args),
            },
            Bool(_) => return bad(prim, args),
        },
        Prim::IntegerPow { y } => match &args[0] {
            F32(a) => Value::F32(map_integer_pow(a, *y)),
            F64(a) => Value::F64(map_integer_pow(a, *y)),
            _ => return bad(prim, args),
        },
        Prim::StopGradient => args[0].to_owned(),
        Prim::Binary(op) => match (&args[0], &args[1]) {
            (F32(a), F32(b)) => Value::F32(float_binary(*op, a, b)),
            (F64(a), F64(b)) => Value::F64(float_binary(*op, a, b)),
            (I32(a), I32(b)) => match int_binary(*op, a, b) {
                Some(r) => Value::I32(r),
                None => return bad(prim, args),
            },
            _ => return bad(prim, args),
        },
        Prim::Compare(op) => match (&args[0], &args[1]) {
            (F32(a), F32(b)) => Value::Bool(compare(*op, a, b)),
            (F64(a), F64(b)) => Value::Bool(compare(*op, a, b)),
            (I32(a), I32(b)) => Value::Bool(compare(*op, a, b)),
            (Bool(a), Bool(b)) => Value::Bool(compare(*op, a, b)),
            _ => return bad(prim, args),
        },
        Prim::And | Prim::Or | Prim::Not => match (prim, args) {
            (Prim::And, [Bool(a), Bool(b)]) => Value::Bool(zip_map(a, b, |x, y| x && y)),
            (Prim::Or, [Bool(a), Bool(b)]) => Value::Bool(zip_map(a, b, |x, y| x || y)),
            (Prim::Not, [Bool(a)]) => Value::Bool(a.mapv(|x| !x)),
            _ => return bad(prim, args),
        },
        Prim::SelectN => {
            let Bool(p) = &args[0] else {
                return bad(prim, args);
            };
            same2!(args[1], args[2], f, t => select(p, f, t))
        }
        Prim::ConvertElementType { dtype } => convert(&args[0], *dtype),
        Prim::Iota { dtype, shape, dim } => match dtype {
            DType::F32 => Value::F32(iota(shape, *dim, |i| i as f32)),
            DType::F64 => Value::F64(iota(shape, *dim, |i| i as f64)),
            // Integer `as` truncates: positions past i32::MAX wrap in every profile.
            DType::I32 => Value::I32(iota(shape, *dim, |i| i as i32)),
            DType::Bool => return bad(prim, args),
        },
        Prim::Zeros { .. } => Value::full(out, 0.0),
        Prim::ReduceSum { axes } => match &args[0] {
            F32(a) => Value::F32(reduce(a, axes, 0.0, |s, v| s + v)),
            F64(a) => Value::F64(reduce(a, axes, 0.0, |s, v| s + v)),
            I32(a) => Value::I32(reduce(a, axes, 0, i32::wrapping_add)),
            Bool(_) => return bad(prim, args),
        },
        Prim::ReduceMax { axes } => match &args[0] {
            F32(a) => Value::F32(reduce(a, axes, f32::NEG_INFINITY, |s, v| {
                max_nan(s, v, f32::is_nan)
            })),
            F64(a) => Value::F64(reduce(a, axes, f64::NEG_INFINITY, |s, v| {
                max_nan(s, v, f64::is_nan)
            })),
            I32(a) => Value::I32(reduce(a, axes, i32::MIN, i32::max)),
            Bool(_) => return bad(prim, args),
        },
        Prim::ReduceMin { axes } => match &args[0] {
            F32(a) => Value::F32(reduce(a, axes, f32::INFINITY, |s, v| {
                min_nan(s, v, f32::is_nan)
            })),
            F64(a) => Value::F64(reduce(a, axes, f64::INFINITY, |s, v| {
                min_nan(s, v, f64::is_nan)
            })),
            I32(a) => Value::I32(reduce(a, axes, i32::MAX, i32::min)),
            Bool(_) => return bad(prim, args),
        },
        Prim::Argmax { axis } => match &args[0] {
            F32(a) => Value::I32(arg_best(a, *axis, |v, b| v > b, f32::is_nan)),
            F64(a) => Value::I32(arg_best(a, *axis, |v, b| v > b, f64::is_nan)),
            I32(a) => Value::I32(arg_best(a, *axis, |v, b| v > b, |_| false)),
            Bool(_) => return bad(prim, args),
        },
        Prim::Argmin { axis } => match &args[0] {
            F32(a) => Value::I32(arg_best(a, *axis, |v, b| v < b, f32::is_nan)),
            F64(a) => Value::I32(arg_best(a, *axis, |v, b| v < b, f64::is_nan)),
            I32(a) => Value::I32(arg_best(a, *axis, |v, b| v < b, |_| false)),
            Bool(_) => return bad(prim, args),
        },
        Prim::Cumsum { axis, reverse } => match &args[0] {
            F32(a) => Value::F32(cumsum(a, *axis, *reverse, |x, y| x + y)),
            F64(a) => Value::F64(cumsum(a, *axis, *reverse, |x, y| x + y)),
            I32(a) => Value::I32(cumsum(a, *axis, *reverse, i32::wrapping_add)),
            Bool(_) => return bad(prim, args),
        },
        Prim::BroadcastInDim { shape, dims } => {
            any!(args[0], a => broadcast_in_dim(a, shape, dims))
        }
        Prim::Reshape { shape } => any!(args[0], a => reshape(a, shape)),
        Prim::Transpose { perm } => any!(args[0], a => transpose(a, perm)),
        Prim::Squeeze { .. } | Prim::ExpandDims { .. } => {
            any!(args[0], a => reshape(a, &out.shape))
        }
        Prim::Rev { dims } => any!(args[0], a => rev(a, dims)),
        Prim::Slice {
            start,
            limit,
            strides,
        } => any!(args[0], a => slice(a, start, limit, strides)),
        Prim::Pad { low, interior, .. } => {
            same2!(args[0], args[1], a, v => pad(a, v, low, interior, &out.shape))
        }
        Prim::Concatenate { axis } => {
            macro_rules! cat {
                ($variant:ident) => {{
                    let mut views = Vec::with_capacity(args.len());
                    for a in args {
                        let $variant(a) = a else {
                            return bad(prim, args);
                        };
                        views.push(a.view());
                    }
                    Value::$variant(
                        concatenate(Axis(*axis), &views).expect("verified: shapes agree"),
                    )
                }};
            }
            match &args[0] {
                F32(_) => cat!(F32),
                F64(_) => cat!(F64),
                I32(_) => cat!(I32),
                Bool(_) => cat!(Bool),
            }
        }
        Prim::DotGeneral(dims) => match (&args[0], &args[1]) {
            (F32(a), F32(b)) => Value::F32(dot_general(a, b, dims, float_mat_mul)),
            (F64(a), F64(b)) => Value::F64(dot_general(a, b, dims, float_mat_mul)),
            (I32(a), I32(b)) => Value::I32(dot_general(a, b, dims, wrapping_mat_mul)),
            _ => return bad(prim, args),
        },
        Prim::ReduceWindowSum(w) => match &args[0] {
            F32(a) => Value::F32(reduce_window(a, w, &out.shape, 0.0, |s, v| s + v)),
            F64(a) => Value::F64(reduce_window(a, w, &out.shape, 0.0, |s, v| s + v)),
            I32(a) => Value::I32(reduce_window(a, w, &out.shape, 0, i32::wrapping_add)),
            Bool(_) => return bad(prim, args),
        },
        Prim::ReduceWindowMax(w) => match &args[0] {
            F32(a) => Value::F32(reduce_window_extremum(
                a,
                w,
                &out.shape,
                f32::NEG_INFINITY,
                |v, s| v > s,
            )),
            F64(a) => Value::F64(reduce_window_extremum(
                a,
                w,
                &out.shape,
                f64::NEG_INFINITY,
                |v, s| v > s,
            )),
            I32(a) => Value::I32(reduce_window(a, w, &out.shape, i32::MIN, i32::max)),
            Bool(_) => return bad(prim, args),
        },
        Prim::ReduceWindowMin(w) => match &args[0] {
            F32(a) => Value::F32(reduce_window_extremum(
                a,
                w,
                &out.shape,
                f32::INFINITY,
                |v, s| v < s,
            )),
            F64(a) => Value::F64(reduce_window_extremum(
                a,
                w,
                &out.shape,
                f64::INFINITY,
                |v, s| v < s,
            )),
            I32(a) => Value::I32(reduce_window(a, w, &out.shape, i32::MAX, i32::min)),
            Bool(_) => return bad(prim, args),
        },
        Prim::ReduceWindowSumTranspose { shape, window } => match &args[0] {
            F32(c) => Value::F32(reduce_window_sum_transpose(c, window, shape, |a, b| a + b)),
            F64(c) => Value::F64(reduce_window_sum_transpose(c, window, shape, |a, b| a + b)),
            I32(c) => Value::I32(reduce_window_sum_transpose(
                c,
                window,
                shape,
                i32::wrapping_add,
            )),
            Bool(_) => return bad(prim, args),
        },
        Prim::SelectAndGatherAdd { select, window } => match (&args[0], &args[1]) {
            (F32(t), F32(x)) => {
                Value::F32(select_and_gather_add(t, x, *select, window, &out.shape))
            }
            (F64(t), F64(x)) => {
                Value::F64(select_and_gather_add(t, x, *select, window, &out.shape))
            }
            _ => return bad(prim, args),
        },
        Prim::SelectAndScatterAdd { select, window } => match (&args[0], &args[1]) {
            (F32(c), F32(x)) => Value::F32(select_and_scatter_add(c, x, *select, window)),
            (F64(c), F64(x)) => Value::F64(select_and_scatter_add(c, x, *select, window)),
            _ => return bad(prim, args),
        },
        Prim::ConvGeneralDilated(dims) => match (&args[0], &args[1]) {
            (F32(a), F32(b)) => Value::F32(conv_general_dilated(a, b, dims, &out.shape)),
            (F64(a), F64(b)) => Value::F64(conv_general_dilated(a, b, dims, &out.shape)),
            _ => return bad(prim, args),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::ShapeBuilder;
    use traceform_ir::parse_func;

    /// Evaluates the single function in `src` on `inputs`.
    fn run(src: &str, inputs: &[Value]) -> Vec<Value> {
        let f = parse_func(src).unwrap();
        let refs: Vec<&Value> = inputs.iter().collect();
        crate::eval(&f, &refs).unwrap()
    }

    fn f32s(shape: &[usize], data: Vec<f32>) -> Value {
        Value::F32(ArrayD::from_shape_vec(shape.to_vec(), data).unwrap())
    }

    fn i32s(shape: &[usize], data: Vec<i32>) -> Value {
        Value::I32(ArrayD::from_shape_vec(shape.to_vec(), data).unwrap())
    }

    fn ints(v: &Value) -> Vec<i32> {
        match v {
            Value::I32(a) => a.iter().copied().collect(),
            _ => panic!("not i32: {}", v.ty()),
        }
    }

    fn bits(v: &Value) -> Vec<u32> {
        match v {
            Value::F32(a) => a.iter().map(|x| x.to_bits()).collect(),
            _ => panic!("not f32: {}", v.ty()),
        }
    }

    /// `x` reduced over `axes` by the obvious loop: every element, in row-major order, folded
    /// into the output element its kept indices name.
    fn naive(x: &ArrayD<f32>, axes: &[usize], init: f32, f: fn(f32, f32) -> f32) -> Vec<f32> {
        let kept: Vec<usize> = (0..x.ndim()).filter(|d| !axes.contains(d)).collect();
        let shape: Vec<usize> = kept.iter().map(|&d| x.shape()[d]).collect();
        let mut out = ArrayD::from_elem(IxDyn(&shape), init);
        for (idx, &v) in x.indexed_iter() {
            let o: Vec<usize> = kept.iter().map(|&d| idx[d]).collect();
            out[IxDyn(&o)] = f(out[IxDyn(&o)], v);
        }
        out.iter().copied().collect()
    }

    /// A reduction, its identity and its element operation.
    type Reduction = (Prim, f32, fn(f32, f32) -> f32);

    fn reduce_prims(axes: &[usize]) -> [Reduction; 3] {
        let axes: traceform_ir::Axes = axes.into();
        [
            (Prim::ReduceSum { axes: axes.clone() }, 0.0, |a, b| a + b),
            (
                Prim::ReduceMax { axes: axes.clone() },
                f32::NEG_INFINITY,
                f32::max,
            ),
            (Prim::ReduceMin { axes }, f32::INFINITY, f32::min),
        ]
    }

    /// Every subset of the axes of `x`, reduced by each of the three reductions, against the
    /// naive loop (small integers, so every summation order is exact).
    fn check_all_subsets(x: &ArrayD<f32>) {
        let v = Value::F32(x.clone());
        for mask in 0u32..1 << x.ndim() {
            let axes: Vec<usize> = (0..x.ndim()).filter(|d| mask >> d & 1 == 1).collect();
            for (prim, init, f) in reduce_prims(&axes) {
                let shape: Vec<usize> = (0..x.ndim())
                    .filter(|d| !axes.contains(d))
                    .map(|d| x.shape()[d])
                    .collect();
                let out = apply(&prim, &[v.view()], &Type::new(DType::F32, shape.clone())).unwrap();
                assert_eq!(out.shape(), &shape[..], "{} over {axes:?}", prim.name());
                let want: Vec<f64> = naive(x, &axes, init, f)
                    .into_iter()
                    .map(f64::from)
                    .collect();
                assert_eq!(
                    out.to_f64_vec(),
                    want,
                    "{} over {axes:?} of {:?}",
                    prim.name(),
                    x.shape()
                );
            }
        }
    }

    fn small_ints(shape: &[usize]) -> ArrayD<f32> {
        let n: usize = shape.iter().product();
        let data = (0..n).map(|i| ((i * 7 + 3) % 11) as f32 - 5.0).collect();
        ArrayD::from_shape_vec(shape.to_vec(), data).unwrap()
    }

    #[test]
    fn reductions_over_every_axis_subset_match_the_naive_loop() {
        for shape in [
            &[5][..],
            &[2, 3, 4],
            &[2, 1, 3, 1],
            &[3, 1, 1, 2, 2],
            &[2, 0, 3],
            &[],
        ] {
            check_all_subsets(&small_ints(shape));
        }
    }

    #[test]
    fn reductions_of_non_standard_layouts_match_the_naive_loop() {
        // Callers may pass any layout: column-major, and an axis-swapped view made owned.
        let x = small_ints(&[3, 4, 2]);
        let fortran =
            ArrayD::from_shape_vec(IxDyn(&[3, 4, 2]).f(), x.iter().copied().collect()).unwrap();
        check_all_subsets(&fortran);
        let mut swapped = x.clone();
        swapped.swap_axes(0, 2);
        check_all_subsets(&swapped);
    }

    #[test]
    fn reduce_max_and_min_propagate_the_first_nan_and_keep_the_first_of_equal_zeros() {
        let nan_a = f32::from_bits(0x7fc0_0001);
        let nan_b = f32::from_bits(0x7fc0_0002);
        let x = f32s(&[2, 4], vec![1.0, nan_a, 3.0, nan_b, -0.0, 0.0, 0.0, -0.0]);
        let outs = run(
            "func f(x: f32[2,4]) -> (f32[2], f32[2], f32[4], f32[]) {\n  a: f32[2] = reduce_max[axes=(1)] x\n  b: f32[2] = reduce_min[axes=(1)] x\n  c: f32[4] = reduce_max[axes=(0)] x\n  d: f32[] = reduce_min[axes=(0,1)] x\n  return a, b, c, d\n}\n",
            &[x],
        );
        assert_eq!(bits(&outs[0]), vec![nan_a.to_bits(), (-0.0f32).to_bits()]);
        assert_eq!(bits(&outs[1]), vec![nan_a.to_bits(), (-0.0f32).to_bits()]);
        let c = vec![
            1.0f32.to_bits(),
            nan_a.to_bits(),
            3.0f32.to_bits(),
            nan_b.to_bits(),
        ];
        assert_eq!(bits(&outs[2]), c);
        assert_eq!(bits(&outs[3]), vec![nan_a.to_bits()]);
    }

    #[test]
    fn empty_reductions_give_the_identity() {
        let outs = run(
            "func f(x: f32[2,0], y: i32[0,3]) -> (f32[2], f32[2], f32[2], i32[3], i32[3], i32[3]) {\n  a: f32[2] = reduce_sum[axes=(1)] x\n  b: f32[2] = reduce_max[axes=(1)] x\n  c: f32[2] = reduce_min[axes=(1)] x\n  d: i32[3] = reduce_sum[axes=(0)] y\n  e: i32[3] = reduce_max[axes=(0)] y\n  g: i32[3] = reduce_min[axes=(0)] y\n  return a, b, c, d, e, g\n}\n",
            &[f32s(&[2, 0], vec![]), i32s(&[0, 3], vec![])],
        );
        assert_eq!(outs[0].to_f64_vec(), vec![0.0; 2]);
        assert_eq!(outs[1].to_f64_vec(), vec![f64::NEG_INFINITY; 2]);
        assert_eq!(outs[2].to_f64_vec(), vec![f64::INFINITY; 2]);
        assert_eq!(ints(&outs[3]), vec![0; 3]);
        assert_eq!(ints(&outs[4]), vec![i32::MIN; 3]);
        assert_eq!(ints(&outs[5]), vec![i32::MAX; 3]);
    }

    #[test]
    fn reducing_no_axes_is_the_identity() {
        let x = f32s(&[3], vec![-0.0, f32::NAN, f32::NEG_INFINITY]);
        let outs = run(
            "func f(x: f32[3]) -> (f32[3], f32[3], f32[3]) {\n  a: f32[3] = reduce_sum[axes=()] x\n  b: f32[3] = reduce_max[axes=()] x\n  c: f32[3] = reduce_min[axes=()] x\n  return a, b, c\n}\n",
            std::slice::from_ref(&x),
        );
        for out in &outs {
            assert_eq!(bits(out), bits(&x));
        }
    }

    #[test]
    fn i32_elementwise_arithmetic_wraps() {
        let (max, min) = (i32::MAX, i32::MIN);
        let outs = run(
            "func f(x: i32[3], y: i32[3]) -> (i32[3], i32[3], i32[3], i32[3], i32[3], i32[3]) {\n  a: i32[3] = add x y\n  b: i32[3] = sub x y\n  c: i32[3] = mul x y\n  d: i32[3] = neg x\n  e: i32[3] = abs x\n  g: i32[3] = div x y\n  return a, b, c, d, e, g\n}\n",
            &[i32s(&[3], vec![max, min, min]), i32s(&[3], vec![1, 1, -1])],
        );
        assert_eq!(ints(&outs[0]), vec![min, min + 1, max]);
        assert_eq!(ints(&outs[1]), vec![max - 1, max, min + 1]);
        assert_eq!(ints(&outs[2]), vec![max, min, min]);
        assert_eq!(ints(&outs[3]), vec![min + 1, min, min]);
        assert_eq!(ints(&outs[4]), vec![max, min, min]);
        assert_eq!(ints(&outs[5]), vec![max, min, min]);
    }

    #[test]
    fn i32_reduce_sum_wraps() {
        let x = i32s(&[2, 3], vec![i32::MAX, 1, i32::MAX, i32::MIN, -1, 5]);
        let outs = run(
            "func f(x: i32[2,3]) -> (i32[2], i32[3], i32[]) {\n  a: i32[2] = reduce_sum[axes=(1)] x\n  b: i32[3] = reduce_sum[axes=(0)] x\n  c: i32[] = reduce_sum[axes=(0,1)] x\n  return a, b, c\n}\n",
            &[x],
        );
        assert_eq!(ints(&outs[0]), vec![-1, i32::MIN + 4]);
        assert_eq!(ints(&outs[1]), vec![-1, 0, i32::MIN + 4]);
        assert_eq!(ints(&outs[2]), vec![i32::MIN + 3]);
    }

    #[test]
    fn float_to_i32_saturates_and_nan_becomes_zero() {
        let x = f32s(
            &[7],
            vec![
                3e9,
                -3e9,
                f32::NAN,
                2.7,
                -2.7,
                f32::INFINITY,
                f32::NEG_INFINITY,
            ],
        );
        let outs = run(
            "func f(x: f32[7]) -> i32[7] {\n  a: i32[7] = convert_element_type[dtype=i32] x\n  return a\n}\n",
            &[x],
        );
        let (max, min) = (i32::MAX, i32::MIN);
        assert_eq!(ints(&outs[0]), vec![max, min, 0, 2, -2, max, min]);
    }

    #[test]
    fn integer_pow_of_i32_min_does_not_overflow() {
        let x = f32s(&[5], vec![1.0, 2.0, -1.0, 0.5, 0.0]);
        let outs = run(
            "func f(x: f32[5]) -> (f32[5], f32[5]) {\n  a: f32[5] = integer_pow[y=-2147483648] x\n  b: f32[5] = integer_pow[y=2147483647] x\n  return a, b\n}\n",
            &[x],
        );
        let inf = f64::INFINITY;
        assert_eq!(outs[0].to_f64_vec(), vec![1.0, 0.0, 1.0, inf, inf]);
        assert_eq!(outs[1].to_f64_vec(), vec![1.0, inf, -1.0, 0.0, 0.0]);
    }

    #[test]
    fn i32_cumsum_wraps() {
        let x = i32s(&[3], vec![i32::MAX, 1, 1]);
        let outs = run(
            "func f(x: i32[3]) -> (i32[3], i32[3]) {\n  a: i32[3] = cumsum[axis=0, reverse=false] x\n  b: i32[3] = cumsum[axis=0, reverse=true] x\n  return a, b\n}\n",
            &[x],
        );
        assert_eq!(ints(&outs[0]), vec![i32::MAX, i32::MIN, i32::MIN + 1]);
        assert_eq!(ints(&outs[1]), vec![i32::MIN + 1, 2, 1]);
    }

    #[test]
    fn i32_dot_general_wraps() {
        let (max, min) = (i32::MAX, i32::MIN);
        let x = i32s(&[2, 2], vec![max, max, min, 1]);
        let y = i32s(&[2, 2], vec![1, 2, 1, 0]);
        let outs = run(
            "func f(x: i32[2,2], y: i32[2,2]) -> i32[2,2] {\n  a: i32[2,2] = dot_general[contract=((1),(0)), batch=((),())] x y\n  return a\n}\n",
            &[x, y],
        );
        // Row 0: max + max and 2 * max, both -2; row 1: min + 1 and 2 * min = 0.
        assert_eq!(ints(&outs[0]), vec![-2, -2, min + 1, 0]);
    }

    #[test]
    fn i32_dot_general_agrees_with_f64_on_batched_permuted_operands() {
        let src = |t: &str| {
            format!(
                "func f(x: {t}[2,3,4,5], y: {t}[4,2,3,6]) -> {t}[2,5,6] {{\n  a: {t}[2,5,6] = dot_general[contract=((1,2),(2,0)), batch=((0),(1))] x y\n  return a\n}}\n"
            )
        };
        let xs: Vec<i32> = (0..120).map(|i| (i * 5 % 13) - 6).collect();
        let ys: Vec<i32> = (0..144).map(|i| (i * 3 % 7) - 3).collect();
        let as_f64 = |v: &[i32], s: &[usize]| {
            Value::F64(
                ArrayD::from_shape_vec(s.to_vec(), v.iter().map(|&i| f64::from(i)).collect())
                    .unwrap(),
            )
        };
        let ints_out = run(
            &src("i32"),
            &[
                i32s(&[2, 3, 4, 5], xs.clone()),
                i32s(&[4, 2, 3, 6], ys.clone()),
            ],
        );
        let floats_out = run(
            &src("f64"),
            &[as_f64(&xs, &[2, 3, 4, 5]), as_f64(&ys, &[4, 2, 3, 6])],
        );
        assert_eq!(ints_out[0].to_f64_vec(), floats_out[0].to_f64_vec());
    }
}
