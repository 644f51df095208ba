//! Windowed reductions: the attributes that `reduce_window_sum/max/min` and the internal
//! `select_and_gather_add`/`select_and_scatter_add` share (`Window`), their text form (both
//! ways), their shape rules, and the per-axis geometry the kernels use: which element of x each
//! window position reads, or none (a hole of the base dilation, or padding).
//!
//! On each axis, with `w` the window size, `s` the stride, `(lo, hi)` the padding, `bd` the base
//! dilation and `wd` the window dilation (`shared/spec/ir-text.md`): x dilated has
//! `S' = (S - 1)·bd + 1` elements (0 if `S = 0`), padded `P = S' + lo + hi >= 0`, the window spans
//! `E = (w - 1)·wd + 1`, and there are `Y = floor((P - E) / s) + 1` outputs when `P >= E`, else 0.
//! Output `y`'s window position `k` reads padded position `y·s + k·wd`, which is x's element
//! `(y·s + k·wd - lo) / bd` when that divides exactly and is in range. Sizes are computed in
//! i128: attributes and axis sizes are below 2^32, so nothing overflows.

use smallvec::SmallVec;

use crate::attrs::AttrValue;
use crate::prim::Axes;
use crate::types::{Shape, Type};

/// The window attributes, one entry per axis of x. Defaults (when the text gives none): unit
/// strides and dilations, no padding.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    pub dimensions: Axes,
    pub strides: Axes,
    /// `(lo, hi)` per axis; negative values crop.
    pub padding: SmallVec<[(i64, i64); 4]>,
    pub base_dilation: Axes,
    pub window_dilation: Axes,
}

/// Which element of a window max and min pooling select (JAX's `select_prim`, written
/// `select_prim=ge` or `select_prim=le`): the first maximum, or the first minimum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Select {
    Max,
    Min,
}

impl Select {
    /// The name of JAX's comparison: `ge` keeps the running maximum unless a later element is
    /// strictly greater.
    pub fn name(self) -> &'static str {
        match self {
            Select::Max => "ge",
            Select::Min => "le",
        }
    }

    pub fn from_name(name: &str) -> Option<Select> {
        match name {
            "ge" => Some(Select::Max),
            "le" => Some(Select::Min),
            _ => None,
        }
    }
}

impl Window {
    /// A window of `dimensions` moved by `strides`, without padding or dilation.
    pub fn new(dimensions: &[usize], strides: &[usize]) -> Window {
        let rank = dimensions.len();
        Window {
            dimensions: dimensions.into(),
            strides: strides.into(),
            padding: SmallVec::from_elem((0, 0), rank),
            base_dilation: Axes::from_elem(1, rank),
            window_dilation: Axes::from_elem(1, rank),
        }
    }

    /// The same window with `(lo, hi)` padding per axis (negative crops).
    pub fn with_padding(mut self, padding: &[(i64, i64)]) -> Window {
        self.padding = padding.into();
        self
    }

    /// The same window over x dilated by `base_dilation` (`bd - 1` holes between neighbours).
    pub fn with_base_dilation(mut self, base_dilation: &[usize]) -> Window {
        self.base_dilation = base_dilation.into();
        self
    }

    /// The same window with its positions `window_dilation` apart.
    pub fn with_window_dilation(mut self, window_dilation: &[usize]) -> Window {
        self.window_dilation = window_dilation.into();
        self
    }

    pub fn rank(&self) -> usize {
        self.dimensions.len()
    }

    /// The number of positions in one window (saturating: attributes come from users).
    pub fn size(&self) -> usize {
        self.dimensions
            .iter()
            .fold(1usize, |n, &d| n.saturating_mul(d))
    }

    /// Axis `d`'s geometry for an x axis of `size` elements.
    pub fn axis(&self, d: usize, size: usize) -> AxisWindow {
        AxisWindow {
            size: size as i128,
            window: self.dimensions[d] as i128,
            stride: self.strides[d] as i128,
            low: i128::from(self.padding[d].0),
            high: i128::from(self.padding[d].1),
            base_dilation: self.base_dilation[d] as i128,
            window_dilation: self.window_dilation[d] as i128,
        }
    }

    /// The attributes in canonical order, every one printed (as the conformance corpus writes
    /// them).
    pub(crate) fn attrs(&self) -> Vec<(&'static str, AttrValue)> {
        let usizes =
            |xs: &[usize]| AttrValue::Tuple(xs.iter().map(|&x| AttrValue::Int(x as i64)).collect());
        let padding = AttrValue::Tuple(
            self.padding
                .iter()
                .map(|&(lo, hi)| AttrValue::Tuple(vec![AttrValue::Int(lo), AttrValue::Int(hi)]))
                .collect(),
        );
        vec![
            ("window_dimensions", usizes(&self.dimensions)),
            ("window_strides", usizes(&self.strides)),
            ("padding", padding),
            ("base_dilation", usizes(&self.base_dilation)),
            ("window_dilation", usizes(&self.window_dilation)),
        ]
    }

    /// Checks the attributes against x's shape and returns the result shape, or what is wrong
    /// (without the primitive's name, which the caller adds).
    pub fn output_shape(&self, x: &[usize]) -> Result<Shape, String> {
        let rank = x.len();
        let lists = [
            ("window_dimensions", self.dimensions.len()),
            ("window_strides", self.strides.len()),
            ("padding", self.padding.len()),
            ("base_dilation", self.base_dilation.len()),
            ("window_dilation", self.window_dilation.len()),
        ];
        for (name, len) in lists {
            if len != rank {
                return Err(format!(
                    "{name} has {len} entries but the operand has rank {rank}"
                ));
            }
        }
        let positive = [
            ("window_dimensions", &self.dimensions),
            ("window_strides", &self.strides),
            ("base_dilation", &self.base_dilation),
            ("window_dilation", &self.window_dilation),
        ];
        let limit = u64::from(u32::MAX);
        for (name, list) in positive {
            if let Some(&v) = list.iter().find(|&&v| v == 0 || v as u64 > limit) {
                return Err(format!(
                    "{name} {} must be positive and at most {limit}, found {v}",
                    tuple_text(list)
                ));
            }
        }
        if let Some(&(lo, hi)) = self
            .padding
            .iter()
            .find(|(lo, hi)| lo.unsigned_abs() > limit || hi.unsigned_abs() > limit)
        {
            return Err(format!(
                "padding ({lo},{hi}) must be at most {limit} in magnitude"
            ));
        }
        let mut shape = Shape::with_capacity(rank);
        for (d, &size) in x.iter().enumerate() {
            let axis = self.axis(d, size);
            let padded = axis.padded_size();
            if padded < 0 {
                return Err(format!(
                    "axis {d} of x (size {size}, dilated to {}) padded by ({},{}) would have negative size {padded}",
                    axis.dilated_size(),
                    axis.low,
                    axis.high
                ));
            }
            let y = axis.output_size();
            if y > i128::from(u32::MAX) {
                return Err(format!(
                    "axis {d} of the result would have {y} elements, which is too large"
                ));
            }
            shape.push(y as usize);
        }
        Ok(shape)
    }
}

/// Division rounding down and up, for possibly negative numerators and positive divisors.
trait DivRound {
    fn div_floor_i128(self, d: i128) -> i128;
    fn div_ceil_i128(self, d: i128) -> i128;
}

impl DivRound for i128 {
    fn div_floor_i128(self, d: i128) -> i128 {
        self.div_euclid(d)
    }
    fn div_ceil_i128(self, d: i128) -> i128 {
        -(-self).div_euclid(d)
    }
}

/// `(1,2,3)`.
fn tuple_text(xs: &[usize]) -> String {
    let inner: Vec<String> = xs.iter().map(|x| x.to_string()).collect();
    format!("({})", inner.join(","))
}

/// One axis of a window over one axis of x, in i128.
#[derive(Clone, Copy, Debug)]
pub struct AxisWindow {
    pub size: i128,
    pub window: i128,
    pub stride: i128,
    pub low: i128,
    pub high: i128,
    pub base_dilation: i128,
    pub window_dilation: i128,
}

impl AxisWindow {
    /// `S' = (S - 1)·bd + 1`, 0 if `S = 0`.
    pub fn dilated_size(&self) -> i128 {
        if self.size == 0 {
            0
        } else {
            (self.size - 1) * self.base_dilation + 1
        }
    }

    /// `P = S' + lo + hi`.
    pub fn padded_size(&self) -> i128 {
        self.dilated_size() + self.low + self.high
    }

    /// `E = (w - 1)·wd + 1`.
    pub fn span(&self) -> i128 {
        (self.window - 1) * self.window_dilation + 1
    }

    /// `Y`: `floor((P - E) / s) + 1` when `P >= E`, else 0.
    pub fn output_size(&self) -> i128 {
        let (p, e) = (self.padded_size(), self.span());
        if p >= e {
            (p - e) / self.stride + 1
        } else {
            0
        }
    }

    /// The window positions of output `y` that read an element of x, with the element each
    /// reads, in window order. The work is bounded by the smaller of the window and the part of
    /// x it spans, so a window of 2^32 positions over a few elements costs a few steps.
    pub fn sources(&self, y: usize) -> Vec<(usize, usize)> {
        let start = y as i128 * self.stride - self.low;
        let end = start + self.span() - 1;
        // x's element i sits at padded position i·bd + lo; those in [start, end].
        let first = start.max(0).div_ceil_i128(self.base_dilation);
        let last = end.div_floor_i128(self.base_dilation).min(self.size - 1);
        if last < first {
            return Vec::new();
        }
        if last - first + 1 < self.window {
            (first..=last)
                .filter_map(|i| {
                    let offset = i * self.base_dilation - start;
                    (offset % self.window_dilation == 0)
                        .then(|| ((offset / self.window_dilation) as usize, i as usize))
                })
                .collect()
        } else {
            (0..self.window as usize)
                .filter_map(|k| self.source(y, k).map(|i| (k, i)))
                .collect()
        }
    }

    /// The element of x that output `y`'s window position `k` reads, or `None` for a hole or
    /// padding.
    pub fn source(&self, y: usize, k: usize) -> Option<usize> {
        let p = y as i128 * self.stride + k as i128 * self.window_dilation - self.low;
        if p < 0 || p % self.base_dilation != 0 {
            return None;
        }
        let i = p / self.base_dilation;
        (i < self.size).then_some(i as usize)
    }
}

/// The type of `reduce_window_*` of `x`.
pub(crate) fn reduce_window_type(window: &Window, x: &Type) -> Result<Type, String> {
    if !x.dtype.is_numeric() {
        return Err(format!("operand 1 must be f32, f64 or i32, found {x}"));
    }
    Ok(Type::new(x.dtype, window.output_shape(&x.shape)?))
}

/// The type of `reduce_window_sum_transpose[shape=S] c`: `c` of the type of
/// `reduce_window_sum` over an operand of shape `S`; the result has shape `S`.
pub(crate) fn sum_transpose_type(
    window: &Window,
    shape: &[usize],
    c: &Type,
) -> Result<Type, String> {
    if !c.dtype.is_numeric() {
        return Err(format!("operand 1 must be f32, f64 or i32, found {c}"));
    }
    let want = Type::new(c.dtype, window.output_shape(shape)?);
    if *c != want {
        return Err(format!(
            "the cotangent (operand 1) must have the type {want} of the windowed sum over shape {}, found {c}",
            tuple_text(shape)
        ));
    }
    Ok(Type::new(c.dtype, shape))
}

/// The type of `select_and_gather_add t x`: the window result's shape, `t` of x's type.
pub(crate) fn gather_type(window: &Window, t: &Type, x: &Type) -> Result<Type, String> {
    if !x.dtype.is_float() {
        return Err(format!("operand 2 must be f32 or f64, found {x}"));
    }
    if t != x {
        return Err(format!(
            "the tangent (operand 1) must have the operand's type {x}, found {t}"
        ));
    }
    Ok(Type::new(x.dtype, window.output_shape(&x.shape)?))
}

/// The type of `select_and_scatter_add c x`: x's type, `c` of the window result's type.
pub(crate) fn scatter_type(window: &Window, c: &Type, x: &Type) -> Result<Type, String> {
    if !x.dtype.is_float() {
        return Err(format!("operand 2 must be f32 or f64, found {x}"));
    }
    let want = Type::new(x.dtype, window.output_shape(&x.shape)?);
    if *c != want {
        return Err(format!(
            "the source (operand 1) must have the windowed result's type {want}, found {c}"
        ));
    }
    Ok(x.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_sizes_and_sources_follow_the_spec() {
        // S = 4, bd = 2: S' = 7, x at positions 0, 2, 4, 6; padding (0, 1): P = 8; w = 2,
        // wd = 2: E = 3; s = 2: Y = 3. Output y reads positions 2y and 2y + 2.
        let mut w = Window::new(&[2], &[2]);
        w.padding[0] = (0, 1);
        w.base_dilation[0] = 2;
        w.window_dilation[0] = 2;
        assert_eq!(w.output_shape(&[4]).unwrap().as_slice(), &[3]);
        let axis = w.axis(0, 4);
        assert_eq!((axis.source(0, 0), axis.source(0, 1)), (Some(0), Some(1)));
        assert_eq!((axis.source(2, 0), axis.source(2, 1)), (Some(2), Some(3)));
        // With lo = 1 every element moves to an odd position: every window reads holes.
        w.padding[0] = (1, 0);
        let axis = w.axis(0, 4);
        assert!((0..3).all(|y| axis.source(y, 0).is_none() && axis.source(y, 1).is_none()));
        let mut cropped = Window::new(&[1], &[1]);
        cropped.padding[0] = (-2, 0);
        assert_eq!(cropped.output_shape(&[5]).unwrap().as_slice(), &[3]);
        assert_eq!(cropped.axis(0, 5).source(0, 0), Some(2));
    }

    #[test]
    fn sources_lists_the_positions_that_read_x() {
        for (w, s, lo, hi, bd, wd, n) in [
            (3, 2, 1, 1, 1, 1, 5),
            (4, 1, -1, 2, 2, 3, 4),
            (2, 3, 2, 0, 3, 1, 3),
            (5, 1, 0, 0, 1, 2, 2),
        ] {
            let mut win = Window::new(&[w], &[s]);
            win.padding[0] = (lo, hi);
            win.base_dilation[0] = bd;
            win.window_dilation[0] = wd;
            let axis = win.axis(0, n);
            for y in 0..win.output_shape(&[n]).unwrap()[0] {
                let want: Vec<(usize, usize)> = (0..w)
                    .filter_map(|k| axis.source(y, k).map(|i| (k, i)))
                    .collect();
                assert_eq!(axis.sources(y), want, "{win:?} y={y}");
            }
        }
        // A window of 2^32 - 1 positions over three elements.
        let mut huge = Window::new(&[u32::MAX as usize], &[1]);
        huge.padding[0] = (0, i64::from(u32::MAX));
        let axis = huge.axis(0, 3);
        assert_eq!(axis.sources(0), [(0, 0), (1, 1), (2, 2)]);
        assert_eq!(huge.size(), u32::MAX as usize);
    }

    #[test]
    fn bad_attributes_are_errors() {
        let w = Window::new(&[0], &[1]);
        assert!(w.output_shape(&[3]).unwrap_err().contains("positive"));
        let mut w = Window::new(&[1], &[1]);
        w.padding[0] = (-5, 0);
        assert!(w.output_shape(&[3]).unwrap_err().contains("negative size"));
        let w = Window::new(&[1, 1], &[1, 1]);
        assert!(w.output_shape(&[3]).unwrap_err().contains("rank 1"));
    }
}
