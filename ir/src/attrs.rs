//! Attributes in the text IR (`[axes=(0,1), reverse=false]`): building a `Prim` from the
//! attribute list the parser read (dispatching on `PrimKind`, exhaustively), and listing a
//! `Prim`'s attributes for the printer.

use smallvec::SmallVec;

use crate::conv::{ConvDims, PadPairs};
use crate::prim::{Axes, BinaryOp, CompareOp, DotDims, Prim, PrimKind, UnaryOp};
use crate::types::DType;
use crate::window::{Select, Window};

/// An attribute value as written in the text.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    Int(i64),
    Float(f64),
    Bool(bool),
    Name(String),
    Tuple(Vec<AttrValue>),
}

impl AttrValue {
    fn ints<T: Copy + Into<i64>>(xs: &[T]) -> AttrValue {
        AttrValue::Tuple(xs.iter().map(|&x| AttrValue::Int(x.into())).collect())
    }

    fn usizes(xs: &[usize]) -> AttrValue {
        AttrValue::Tuple(xs.iter().map(|&x| AttrValue::Int(x as i64)).collect())
    }

    fn pairs(xs: &[(i64, i64)]) -> AttrValue {
        AttrValue::Tuple(
            xs.iter()
                .map(|&(lo, hi)| AttrValue::ints(&[lo, hi]))
                .collect(),
        )
    }

    fn describe(&self) -> &'static str {
        match self {
            AttrValue::Int(_) => "an integer",
            AttrValue::Float(_) => "a float",
            AttrValue::Bool(_) => "a bool",
            AttrValue::Name(_) => "a name",
            AttrValue::Tuple(_) => "a tuple",
        }
    }
}

/// What is wrong with an attribute list; `attr` names the attribute at fault, if one is.
#[derive(Clone, Debug, PartialEq)]
pub struct AttrError {
    pub attr: Option<String>,
    pub message: String,
}

/// The printer's view: the attributes of `prim`, in canonical order. Optional attributes at
/// their default (unit slice strides) are left out.
pub fn prim_attrs(prim: &Prim) -> Vec<(&'static str, AttrValue)> {
    match prim {
        Prim::Unary(_)
        | Prim::StopGradient
        | Prim::Binary(_)
        | Prim::Compare(_)
        | Prim::And
        | Prim::Or
        | Prim::Not
        | Prim::SelectN => vec![],
        Prim::IntegerPow { y } => vec![("y", AttrValue::Int(*y as i64))],
        Prim::ConvertElementType { dtype } => vec![("dtype", AttrValue::Name(dtype.name().into()))],
        Prim::Iota { dtype, shape, dim } => vec![
            ("dtype", AttrValue::Name(dtype.name().into())),
            ("shape", AttrValue::usizes(shape)),
            ("dim", AttrValue::Int(*dim as i64)),
        ],
        Prim::Zeros { dtype, shape } => vec![
            ("dtype", AttrValue::Name(dtype.name().into())),
            ("shape", AttrValue::usizes(shape)),
        ],
        Prim::ReduceSum { axes } | Prim::ReduceMax { axes } | Prim::ReduceMin { axes } => {
            vec![("axes", AttrValue::usizes(axes))]
        }
        Prim::Argmax { axis } | Prim::Argmin { axis } | Prim::Concatenate { axis } => {
            vec![("axis", AttrValue::Int(*axis as i64))]
        }
        Prim::Cumsum { axis, reverse } => vec![
            ("axis", AttrValue::Int(*axis as i64)),
            ("reverse", AttrValue::Bool(*reverse)),
        ],
        Prim::BroadcastInDim { shape, dims } => vec![
            ("shape", AttrValue::usizes(shape)),
            ("dims", AttrValue::usizes(dims)),
        ],
        Prim::Reshape { shape } => vec![("shape", AttrValue::usizes(shape))],
        Prim::Transpose { perm } => vec![("perm", AttrValue::usizes(perm))],
        Prim::Squeeze { dims } | Prim::ExpandDims { dims } | Prim::Rev { dims } => {
            vec![("dims", AttrValue::usizes(dims))]
        }
        Prim::Slice {
            start,
            limit,
            strides,
        } => {
            let mut attrs = vec![
                ("start", AttrValue::usizes(start)),
                ("limit", AttrValue::usizes(limit)),
            ];
            if strides.iter().any(|&s| s != 1) {
                attrs.push(("strides", AttrValue::usizes(strides)));
            }
            attrs
        }
        Prim::Pad {
            low,
            high,
            interior,
        } => vec![
            ("low", AttrValue::ints(low)),
            ("high", AttrValue::ints(high)),
            ("interior", AttrValue::usizes(interior)),
        ],
        Prim::ReduceWindowSum(w) | Prim::ReduceWindowMax(w) | Prim::ReduceWindowMin(w) => w.attrs(),
        Prim::ReduceWindowSumTranspose { shape, window } => {
            let mut attrs = vec![("shape", AttrValue::usizes(shape))];
            attrs.extend(window.attrs());
            attrs
        }
        Prim::SelectAndGatherAdd { select, window }
        | Prim::SelectAndScatterAdd { select, window } => {
            let mut attrs = vec![("select_prim", AttrValue::Name(select.name().into()))];
            attrs.extend(window.attrs());
            attrs
        }
        Prim::DotGeneral(d) => vec![
            (
                "contract",
                AttrValue::Tuple(vec![
                    AttrValue::usizes(&d.contract.0),
                    AttrValue::usizes(&d.contract.1),
                ]),
            ),
            (
                "batch",
                AttrValue::Tuple(vec![
                    AttrValue::usizes(&d.batch.0),
                    AttrValue::usizes(&d.batch.1),
                ]),
            ),
        ],
        // Every attribute, defaults included, as JAX lists them.
        Prim::ConvGeneralDilated(c) => vec![
            ("window_strides", AttrValue::usizes(&c.window_strides)),
            ("padding", AttrValue::pairs(&c.padding)),
            ("lhs_dilation", AttrValue::usizes(&c.lhs_dilation)),
            ("rhs_dilation", AttrValue::usizes(&c.rhs_dilation)),
            (
                "feature_group_count",
                AttrValue::Int(c.feature_group_count as i64),
            ),
            (
                "batch_group_count",
                AttrValue::Int(c.batch_group_count as i64),
            ),
        ],
    }
}

/// The attributes the parser read, consumed one by one as the primitive asks for them.
struct AttrSet<'t> {
    prim: &'static str,
    attrs: Vec<(&'t str, AttrValue)>,
}

fn err(attr: &str, message: String) -> AttrError {
    AttrError {
        attr: Some(attr.to_string()),
        message,
    }
}

impl AttrSet<'_> {
    fn take(&mut self, name: &str) -> Option<AttrValue> {
        let i = self.attrs.iter().position(|(n, _)| *n == name)?;
        Some(self.attrs.remove(i).1)
    }

    fn required(&mut self, name: &str) -> Result<AttrValue, AttrError> {
        self.take(name).ok_or_else(|| AttrError {
            attr: None,
            message: format!("`{}` needs the attribute `{name}`", self.prim),
        })
    }

    fn as_int(&self, name: &str, v: &AttrValue) -> Result<i64, AttrError> {
        match v {
            AttrValue::Int(i) => Ok(*i),
            other => Err(err(
                name,
                format!(
                    "attribute `{name}` of `{}` must be an integer, found {}",
                    self.prim,
                    other.describe()
                ),
            )),
        }
    }

    fn as_usize(&self, name: &str, v: &AttrValue) -> Result<usize, AttrError> {
        let i = self.as_int(name, v)?;
        if i < 0 {
            return Err(err(
                name,
                format!(
                    "attribute `{name}` of `{}` must be a non-negative integer, found {i}",
                    self.prim
                ),
            ));
        }
        if i > i64::from(u32::MAX) {
            return Err(err(
                name,
                format!(
                    "attribute `{name}` of `{}` is too large: {i} (at most {})",
                    self.prim,
                    u32::MAX
                ),
            ));
        }
        Ok(i as usize)
    }

    fn as_list(&self, name: &str, v: AttrValue) -> Result<Vec<AttrValue>, AttrError> {
        match v {
            AttrValue::Tuple(items) => Ok(items),
            // A bare integer is accepted as a one-element tuple.
            AttrValue::Int(i) => Ok(vec![AttrValue::Int(i)]),
            other => Err(err(
                name,
                format!(
                    "attribute `{name}` of `{}` must be a tuple, found {}",
                    self.prim,
                    other.describe()
                ),
            )),
        }
    }

    fn usize_list_of(&self, name: &str, v: AttrValue) -> Result<Axes, AttrError> {
        self.as_list(name, v)?
            .iter()
            .map(|x| self.as_usize(name, x))
            .collect()
    }

    fn usize_list(&mut self, name: &str) -> Result<Axes, AttrError> {
        let v = self.required(name)?;
        self.usize_list_of(name, v)
    }

    /// Signed integers of magnitude at most `u32::MAX` (paddings).
    fn int_list(&mut self, name: &str) -> Result<SmallVec<[i64; 4]>, AttrError> {
        let v = self.required(name)?;
        self.as_list(name, v)?
            .iter()
            .map(|x| self.bounded_int(name, x))
            .collect()
    }

    /// A signed integer of magnitude at most `u32::MAX` (a padding).
    fn bounded_int(&self, name: &str, v: &AttrValue) -> Result<i64, AttrError> {
        let i = self.as_int(name, v)?;
        if i.unsigned_abs() > u64::from(u32::MAX) {
            return Err(err(
                name,
                format!(
                    "attribute `{name}` of `{}` is too large: {i} (magnitude at most {})",
                    self.prim,
                    u32::MAX
                ),
            ));
        }
        Ok(i)
    }

    /// `((lo,hi),..)`: one pair of signed integers per axis (`((lo,hi))` for one axis).
    fn pad_pairs(&mut self, name: &str) -> Result<PadPairs, AttrError> {
        let v = self.required(name)?;
        let shape_error = |found: &str| {
            err(
                name,
                format!(
                    "attribute `{name}` of `{}` must be a tuple of (lo,hi) pairs, like ((1,1),(0,2)) or ((1,1)), found {found}",
                    self.prim
                ),
            )
        };
        let AttrValue::Tuple(items) = v else {
            return Err(shape_error(v.describe()));
        };
        items
            .iter()
            .map(|item| match item {
                AttrValue::Tuple(pair) if pair.len() == 2 => Ok((
                    self.bounded_int(name, &pair[0])?,
                    self.bounded_int(name, &pair[1])?,
                )),
                AttrValue::Tuple(other) => {
                    Err(shape_error(&format!("a tuple of {} items", other.len())))
                }
                other => Err(shape_error(other.describe())),
            })
            .collect()
    }

    /// An optional list of positive integers, all ones when absent.
    fn dilation(&mut self, name: &str, len: usize) -> Result<Axes, AttrError> {
        match self.take(name) {
            Some(v) => self.usize_list_of(name, v),
            None => Ok(Axes::from_elem(1, len)),
        }
    }

    /// An optional count, 1 when absent.
    fn count(&mut self, name: &str) -> Result<usize, AttrError> {
        match self.take(name) {
            Some(v) => self.as_usize(name, &v),
            None => Ok(1),
        }
    }

    fn usize(&mut self, name: &str) -> Result<usize, AttrError> {
        let v = self.required(name)?;
        self.as_usize(name, &v)
    }

    fn dtype(&mut self, name: &str) -> Result<DType, AttrError> {
        match self.required(name)? {
            AttrValue::Name(n) => DType::from_name(&n).ok_or_else(|| {
                err(
                    name,
                    format!("attribute `{name}` must be one of f32, f64, i32, bool, found `{n}`"),
                )
            }),
            other => Err(err(
                name,
                format!(
                    "attribute `{name}` must be a dtype, found {}",
                    other.describe()
                ),
            )),
        }
    }

    fn pair_of_lists(&mut self, name: &str) -> Result<(Axes, Axes), AttrError> {
        let v = self.required(name)?;
        let AttrValue::Tuple(items) = v else {
            return Err(err(
                name,
                format!("attribute `{name}` must be a pair of tuples, like ((1),(0))"),
            ));
        };
        if items.len() != 2 {
            return Err(err(
                name,
                format!(
                    "attribute `{name}` must be a pair of tuples, found {} items",
                    items.len()
                ),
            ));
        }
        let mut it = items.into_iter();
        let lhs = self.usize_list_of(name, it.next().unwrap_or(AttrValue::Tuple(vec![])))?;
        let rhs = self.usize_list_of(name, it.next().unwrap_or(AttrValue::Tuple(vec![])))?;
        Ok((lhs, rhs))
    }

    /// A tuple of `(lo,hi)` integer pairs, like `((0,0),(1,-1))` (paddings of the windowed
    /// reductions and convolutions); one pair may be written `((1,1))` or `((1,1),)`.
    fn int_pairs_of(
        &self,
        name: &str,
        v: AttrValue,
    ) -> Result<SmallVec<[(i64, i64); 4]>, AttrError> {
        let bad = || {
            err(
                name,
                format!(
                    "attribute `{name}` of `{}` must hold one (lo,hi) pair of integers per axis, like ((0,0),(1,1))",
                    self.prim
                ),
            )
        };
        let AttrValue::Tuple(pairs) = v else {
            return Err(bad());
        };
        pairs
            .iter()
            .map(|pair| match pair {
                AttrValue::Tuple(items) => match items.as_slice() {
                    [lo, hi] => Ok((self.as_int(name, lo)?, self.as_int(name, hi)?)),
                    _ => Err(bad()),
                },
                _ => Err(bad()),
            })
            .collect()
    }

    /// The window attributes of `reduce_window_*` and the select-and-gather/scatter pair:
    /// `window_dimensions` is required, the others default to unit strides and dilations and
    /// no padding.
    fn window(&mut self) -> Result<Box<Window>, AttrError> {
        let dimensions = self.usize_list("window_dimensions")?;
        let mut window = Window::new(&dimensions, &Axes::from_elem(1, dimensions.len()));
        if let Some(v) = self.take("window_strides") {
            window.strides = self.usize_list_of("window_strides", v)?;
        }
        if let Some(v) = self.take("base_dilation") {
            window.base_dilation = self.usize_list_of("base_dilation", v)?;
        }
        if let Some(v) = self.take("window_dilation") {
            window.window_dilation = self.usize_list_of("window_dilation", v)?;
        }
        if let Some(v) = self.take("padding") {
            window.padding = self.int_pairs_of("padding", v)?;
        }
        Ok(Box::new(window))
    }

    /// `select_prim=ge` (max) or `select_prim=le` (min).
    fn select(&mut self) -> Result<Select, AttrError> {
        match self.required("select_prim")? {
            AttrValue::Name(n) => Select::from_name(&n).ok_or_else(|| {
                err(
                    "select_prim",
                    format!("attribute `select_prim` must be `ge` or `le`, found `{n}`"),
                )
            }),
            other => Err(err(
                "select_prim",
                format!(
                    "attribute `select_prim` must be `ge` or `le`, found {}",
                    other.describe()
                ),
            )),
        }
    }

    fn finish(self, prim: Prim) -> Result<Prim, AttrError> {
        match self.attrs.first() {
            None => Ok(prim),
            Some((name, _)) => Err(err(
                name,
                format!("`{}` has no attribute `{name}`", self.prim),
            )),
        }
    }
}

/// Builds the primitive named `name` from the attributes written after it. Unknown primitives,
/// missing, unknown or ill-typed attributes are errors.
pub fn prim_from_parts(name: &str, attrs: Vec<(&str, AttrValue)>) -> Result<Prim, AttrError> {
    let Some(kind) = PrimKind::from_name(name) else {
        return Err(AttrError {
            attr: None,
            message: format!("unknown primitive `{name}`"),
        });
    };
    for (i, (n, _)) in attrs.iter().enumerate() {
        if attrs[..i].iter().any(|(m, _)| m == n) {
            return Err(err(n, format!("attribute `{n}` is given twice")));
        }
    }
    let mut set = AttrSet {
        prim: kind.name(),
        attrs,
    };
    let prim = match kind {
        PrimKind::Neg => Prim::Unary(UnaryOp::Neg),
        PrimKind::Sin => Prim::Unary(UnaryOp::Sin),
        PrimKind::Cos => Prim::Unary(UnaryOp::Cos),
        PrimKind::Tan => Prim::Unary(UnaryOp::Tan),
        PrimKind::Tanh => Prim::Unary(UnaryOp::Tanh),
        PrimKind::Exp => Prim::Unary(UnaryOp::Exp),
        PrimKind::Log => Prim::Unary(UnaryOp::Log),
        PrimKind::Log1p => Prim::Unary(UnaryOp::Log1p),
        PrimKind::Expm1 => Prim::Unary(UnaryOp::Expm1),
        PrimKind::Sqrt => Prim::Unary(UnaryOp::Sqrt),
        PrimKind::Rsqrt => Prim::Unary(UnaryOp::Rsqrt),
        PrimKind::Abs => Prim::Unary(UnaryOp::Abs),
        PrimKind::Sign => Prim::Unary(UnaryOp::Sign),
        PrimKind::Logistic => Prim::Unary(UnaryOp::Logistic),
        PrimKind::Erf => Prim::Unary(UnaryOp::Erf),
        PrimKind::Floor => Prim::Unary(UnaryOp::Floor),
        PrimKind::Ceil => Prim::Unary(UnaryOp::Ceil),
        PrimKind::Round => Prim::Unary(UnaryOp::Round),
        PrimKind::IntegerPow => {
            let v = set.required("y")?;
            let y = set.as_int("y", &v)?;
            let y = i32::try_from(y).map_err(|_| {
                err(
                    "y",
                    format!("attribute `y` of `integer_pow` is too large: {y}"),
                )
            })?;
            Prim::IntegerPow { y }
        }
        PrimKind::StopGradient => Prim::StopGradient,
        PrimKind::Add => Prim::Binary(BinaryOp::Add),
        PrimKind::Sub => Prim::Binary(BinaryOp::Sub),
        PrimKind::Mul => Prim::Binary(BinaryOp::Mul),
        PrimKind::Div => Prim::Binary(BinaryOp::Div),
        PrimKind::Pow => Prim::Binary(BinaryOp::Pow),
        PrimKind::Max => Prim::Binary(BinaryOp::Max),
        PrimKind::Min => Prim::Binary(BinaryOp::Min),
        PrimKind::Atan2 => Prim::Binary(BinaryOp::Atan2),
        PrimKind::Lt => Prim::Compare(CompareOp::Lt),
        PrimKind::Le => Prim::Compare(CompareOp::Le),
        PrimKind::Gt => Prim::Compare(CompareOp::Gt),
        PrimKind::Ge => Prim::Compare(CompareOp::Ge),
        PrimKind::Eq => Prim::Compare(CompareOp::Eq),
        PrimKind::Ne => Prim::Compare(CompareOp::Ne),
        PrimKind::And => Prim::And,
        PrimKind::Or => Prim::Or,
        PrimKind::Not => Prim::Not,
        PrimKind::SelectN => Prim::SelectN,
        PrimKind::ConvertElementType => Prim::ConvertElementType {
            dtype: set.dtype("dtype")?,
        },
        PrimKind::Iota => Prim::Iota {
            dtype: set.dtype("dtype")?,
            shape: set.usize_list("shape")?,
            dim: set.usize("dim")?,
        },
        PrimKind::Zeros => Prim::Zeros {
            dtype: set.dtype("dtype")?,
            shape: set.usize_list("shape")?,
        },
        PrimKind::ReduceSum => Prim::ReduceSum {
            axes: set.usize_list("axes")?,
        },
        PrimKind::ReduceMax => Prim::ReduceMax {
            axes: set.usize_list("axes")?,
        },
        PrimKind::ReduceMin => Prim::ReduceMin {
            axes: set.usize_list("axes")?,
        },
        PrimKind::Argmax => Prim::Argmax {
            axis: set.usize("axis")?,
        },
        PrimKind::Argmin => Prim::Argmin {
            axis: set.usize("axis")?,
        },
        PrimKind::Cumsum => {
            let axis = set.usize("axis")?;
            let reverse = match set.take("reverse") {
                None => false,
                Some(AttrValue::Bool(b)) => b,
                Some(other) => {
                    return Err(err(
                        "reverse",
                        format!(
                            "attribute `reverse` of `cumsum` must be true or false, found {}",
                            other.describe()
                        ),
                    ))
                }
            };
            Prim::Cumsum { axis, reverse }
        }
        PrimKind::BroadcastInDim => Prim::BroadcastInDim {
            shape: set.usize_list("shape")?,
            dims: set.usize_list("dims")?,
        },
        PrimKind::Reshape => Prim::Reshape {
            shape: set.usize_list("shape")?,
        },
        PrimKind::Transpose => Prim::Transpose {
            perm: set.usize_list("perm")?,
        },
        PrimKind::Squeeze => Prim::Squeeze {
            dims: set.usize_list("dims")?,
        },
        PrimKind::ExpandDims => Prim::ExpandDims {
            dims: set.usize_list("dims")?,
        },
        PrimKind::Rev => Prim::Rev {
            dims: set.usize_list("dims")?,
        },
        PrimKind::Slice => {
            let start = set.usize_list("start")?;
            let limit = set.usize_list("limit")?;
            let strides = match set.take("strides") {
                Some(v) => set.usize_list_of("strides", v)?,
                None => Axes::from_elem(1, start.len()),
            };
            Prim::Slice {
                start,
                limit,
                strides,
            }
        }
        PrimKind::Pad => {
            let low = set.int_list("low")?;
            let high = set.int_list("high")?;
            let interior = match set.take("interior") {
                Some(v) => set.usize_list_of("interior", v)?,
                None => Axes::from_elem(0, low.len()),
            };
            Prim::Pad {
                low,
                high,
                interior,
            }
        }
        PrimKind::Concatenate => Prim::Concatenate {
            axis: set.usize("axis")?,
        },
        PrimKind::DotGeneral => {
            let contract = set.pair_of_lists("contract")?;
            let batch = match set.take("batch") {
                Some(v) => {
                    set.attrs.push(("batch", v));
                    set.pair_of_lists("batch")?
                }
                None => (Axes::new(), Axes::new()),
            };
            Prim::DotGeneral(DotDims { contract, batch })
        }
        PrimKind::ReduceWindowSum => Prim::ReduceWindowSum(set.window()?),
        PrimKind::ReduceWindowMax => Prim::ReduceWindowMax(set.window()?),
        PrimKind::ReduceWindowMin => Prim::ReduceWindowMin(set.window()?),
        PrimKind::ReduceWindowSumTranspose => Prim::ReduceWindowSumTranspose {
            shape: set.usize_list("shape")?,
            window: set.window()?,
        },
        PrimKind::SelectAndGatherAdd => Prim::SelectAndGatherAdd {
            select: set.select()?,
            window: set.window()?,
        },
        PrimKind::SelectAndScatterAdd => Prim::SelectAndScatterAdd {
            select: set.select()?,
            window: set.window()?,
        },
        PrimKind::ConvGeneralDilated => {
            let window_strides = set.usize_list("window_strides")?;
            let padding = set.pad_pairs("padding")?;
            let k = window_strides.len();
            Prim::ConvGeneralDilated(Box::new(ConvDims {
                window_strides,
                padding,
                lhs_dilation: set.dilation("lhs_dilation", k)?,
                rhs_dilation: set.dilation("rhs_dilation", k)?,
                feature_group_count: set.count("feature_group_count")?,
                batch_group_count: set.count("batch_group_count")?,
            }))
        }
    };
    set.finish(prim)
}
