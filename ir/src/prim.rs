//! The closed list of primitives, with their attributes.
//!
//! `Prim` is the single list of operations the IR knows, and `PrimKind` its field-less
//! discriminant: one variant per name of the text IR, with `PrimKind::ALL` listing them.
//! Every per-primitive concern (name, shape rule, attributes, kernel, jvp rule, transpose
//! rule, classification) is an exhaustive `match` on one of the two, so adding a variant
//! breaks the build exactly where a rule is missing (see `docs/adding-a-primitive.md`).
//! Names and attribute names are those of `shared/spec/ir-text.md` (jax.lax's).
//!
//! Attributes are small inline vectors: building or cloning a `Prim` does not allocate for
//! ranks up to 4 (except a `conv_general_dilated`, whose attributes are boxed). Everything
//! derives `Eq, Ord, Hash`, so a `Prim` can be interned and can be an e-graph operator.

use std::sync::LazyLock;

use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use crate::conv::ConvDims;
use crate::types::{DType, Shape};
use crate::window::{Select, Window};

/// A list of axes (or axis sizes) of an attribute.
pub type Axes = SmallVec<[usize; 4]>;

/// Elementwise unary float functions (`neg` and `abs`/`sign` also take i32).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UnaryOp {
    Neg,
    Sin,
    Cos,
    Tan,
    Tanh,
    Exp,
    Log,
    Log1p,
    Expm1,
    Sqrt,
    Rsqrt,
    Abs,
    Sign,
    Logistic,
    Erf,
    Floor,
    Ceil,
    Round,
}

impl UnaryOp {
    pub fn kind(self) -> PrimKind {
        match self {
            UnaryOp::Neg => PrimKind::Neg,
            UnaryOp::Sin => PrimKind::Sin,
            UnaryOp::Cos => PrimKind::Cos,
            UnaryOp::Tan => PrimKind::Tan,
            UnaryOp::Tanh => PrimKind::Tanh,
            UnaryOp::Exp => PrimKind::Exp,
            UnaryOp::Log => PrimKind::Log,
            UnaryOp::Log1p => PrimKind::Log1p,
            UnaryOp::Expm1 => PrimKind::Expm1,
            UnaryOp::Sqrt => PrimKind::Sqrt,
            UnaryOp::Rsqrt => PrimKind::Rsqrt,
            UnaryOp::Abs => PrimKind::Abs,
            UnaryOp::Sign => PrimKind::Sign,
            UnaryOp::Logistic => PrimKind::Logistic,
            UnaryOp::Erf => PrimKind::Erf,
            UnaryOp::Floor => PrimKind::Floor,
            UnaryOp::Ceil => PrimKind::Ceil,
            UnaryOp::Round => PrimKind::Round,
        }
    }

    pub fn name(self) -> &'static str {
        self.kind().name()
    }

    /// True where the op is also defined on i32 (`neg`, `abs`, `sign`).
    pub fn accepts_int(self) -> bool {
        matches!(self, UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Sign)
    }
}

/// Elementwise binary arithmetic. `add sub mul div max min` also take i32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Max,
    Min,
    Atan2,
}

impl BinaryOp {
    pub fn kind(self) -> PrimKind {
        match self {
            BinaryOp::Add => PrimKind::Add,
            BinaryOp::Sub => PrimKind::Sub,
            BinaryOp::Mul => PrimKind::Mul,
            BinaryOp::Div => PrimKind::Div,
            BinaryOp::Pow => PrimKind::Pow,
            BinaryOp::Max => PrimKind::Max,
            BinaryOp::Min => PrimKind::Min,
            BinaryOp::Atan2 => PrimKind::Atan2,
        }
    }

    pub fn name(self) -> &'static str {
        self.kind().name()
    }

    /// True where the op is also defined on i32.
    pub fn accepts_int(self) -> bool {
        !matches!(self, BinaryOp::Pow | BinaryOp::Atan2)
    }
}

/// Elementwise comparisons; the result is bool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CompareOp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl CompareOp {
    pub fn kind(self) -> PrimKind {
        match self {
            CompareOp::Lt => PrimKind::Lt,
            CompareOp::Le => PrimKind::Le,
            CompareOp::Gt => PrimKind::Gt,
            CompareOp::Ge => PrimKind::Ge,
            CompareOp::Eq => PrimKind::Eq,
            CompareOp::Ne => PrimKind::Ne,
        }
    }

    pub fn name(self) -> &'static str {
        self.kind().name()
    }
}

/// The dimension numbers of a `dot_general`: each pair of axis lists is `(lhs, rhs)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DotDims {
    pub contract: (Axes, Axes),
    pub batch: (Axes, Axes),
}

impl DotDims {
    /// The dimension numbers of the same product with its operands swapped.
    pub fn swapped(&self) -> DotDims {
        DotDims {
            contract: (self.contract.1.clone(), self.contract.0.clone()),
            batch: (self.batch.1.clone(), self.batch.0.clone()),
        }
    }
}

/// One primitive with its attributes. Exhaustive matches on this enum are the "checklist" of
/// everything a primitive needs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Prim {
    Unary(UnaryOp),
    IntegerPow {
        y: i32,
    },
    StopGradient,
    Binary(BinaryOp),
    Compare(CompareOp),
    And,
    Or,
    Not,
    /// `select_n p a b`: `b` where `p`, else `a`.
    SelectN,
    ConvertElementType {
        dtype: DType,
    },
    Iota {
        dtype: DType,
        shape: Shape,
        dim: usize,
    },
    /// A tensor of zeros made by a transform (a symbolic zero that had to become a value).
    /// Unlike a user's `0.0`, it stands for "no derivative here", so the simplifier may
    /// apply `x * zeros -> zeros` to it even where `x` could be inf or NaN.
    Zeros {
        dtype: DType,
        shape: Shape,
    },
    ReduceSum {
        axes: Axes,
    },
    ReduceMax {
        axes: Axes,
    },
    ReduceMin {
        axes: Axes,
    },
    Argmax {
        axis: usize,
    },
    Argmin {
        axis: usize,
    },
    Cumsum {
        axis: usize,
        reverse: bool,
    },
    BroadcastInDim {
        shape: Shape,
        dims: Axes,
    },
    Reshape {
        shape: Shape,
    },
    Transpose {
        perm: Axes,
    },
    Squeeze {
        dims: Axes,
    },
    ExpandDims {
        dims: Axes,
    },
    Rev {
        dims: Axes,
    },
    /// `strides` is all ones when the text gives none.
    Slice {
        start: Axes,
        limit: Axes,
        strides: Axes,
    },
    /// `interior` is all zeros when the text gives none.
    Pad {
        low: SmallVec<[i64; 4]>,
        high: SmallVec<[i64; 4]>,
        interior: Axes,
    },
    Concatenate {
        axis: usize,
    },
    DotGeneral(DotDims),
    /// Windowed reductions (`window.rs`); boxed, so that `Prim` stays as small as it was.
    ReduceWindowSum(Box<Window>),
    ReduceWindowMax(Box<Window>),
    ReduceWindowMin(Box<Window>),
    /// Internal (`docs/ir.md`): `reduce_window_sum_transpose c`, the transpose of
    /// `reduce_window_sum` over an operand of shape `shape`: each output's `c` added to every
    /// element of the operand its window reads. Linear.
    ReduceWindowSumTranspose {
        shape: Shape,
        window: Box<Window>,
    },
    /// Internal (`docs/ir.md`): `select_and_gather_add t x`, the tangent of max/min pooling:
    /// per window, `t` at the element of `x` that `select` picks. Linear in `t`; the selection
    /// is held fixed (zero derivative in `x`).
    SelectAndGatherAdd {
        select: Select,
        window: Box<Window>,
    },
    /// Internal (`docs/ir.md`): `select_and_scatter_add c x`, the transpose of the gather: each
    /// window's `c` added to the element of `x` that `select` picks. Linear in `c`.
    SelectAndScatterAdd {
        select: Select,
        window: Box<Window>,
    },
    /// lhs `[N, C, S..]`, rhs `[O, I, K..]`, result `[N/B, O, Y..]` (see `conv.rs`). Boxed: its
    /// six attributes would make every `Prim` a quarter larger.
    ConvGeneralDilated(Box<ConvDims>),
}

/// Defines `PrimKind` and `PrimKind::ALL` from one list, so no variant can be missing from
/// `ALL`.
macro_rules! prim_kinds {
    ($($variant:ident),* $(,)?) => {
        /// The field-less discriminant of `Prim`: one variant per primitive name of the text IR.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum PrimKind {
            $($variant),*
        }

        impl PrimKind {
            /// Every primitive, in the order of `shared/spec/ir-text.md` (`zeros`, an
            /// extension, after `iota`).
            pub const ALL: &'static [PrimKind] = &[$(PrimKind::$variant),*];
        }
    };
}

prim_kinds!(
    Neg,
    Sin,
    Cos,
    Tan,
    Tanh,
    Exp,
    Log,
    Log1p,
    Expm1,
    Sqrt,
    Rsqrt,
    Abs,
    Sign,
    Logistic,
    Erf,
    Floor,
    Ceil,
    Round,
    IntegerPow,
    StopGradient,
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Max,
    Min,
    Atan2,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    And,
    Or,
    Not,
    SelectN,
    ConvertElementType,
    Iota,
    Zeros,
    ReduceSum,
    ReduceMax,
    ReduceMin,
    Argmax,
    Argmin,
    Cumsum,
    BroadcastInDim,
    Reshape,
    Transpose,
    Squeeze,
    ExpandDims,
    Rev,
    Slice,
    Pad,
    Concatenate,
    DotGeneral,
    ReduceWindowSum,
    ReduceWindowMax,
    ReduceWindowMin,
    ReduceWindowSumTranspose,
    SelectAndGatherAdd,
    SelectAndScatterAdd,
    ConvGeneralDilated,
);

/// What kind of loop a primitive is, for fusion and memory planning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpClass {
    /// Each output element depends on the operand elements at the same index (rank-0
    /// operands broadcast): fusable into one loop.
    Elementwise,
    /// Reductions and scans over axes (`reduce_*`, `argmax`, `argmin`, `cumsum`).
    Reduction,
    /// Moves or repeats elements without arithmetic (broadcast, reshape, slice, pad, ...).
    DataMovement,
    /// `dot_general`, `conv_general_dilated`: a library call (GEMM).
    Contraction,
    /// No operands: `iota`, `zeros`.
    Constant,
}

/// How a primitive's result depends linearly on its operands, which is what both the jvp
/// rules and the transpose rules need to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Linearity {
    /// Linear in all operands jointly: `p(x + y) = p(x) + p(y)`. Its jvp applies `p` to the
    /// tangents, and it transposes when every operand is linear or zero.
    Joint,
    /// `select_n`: the predicate (operand 1) is fixed, and it is jointly linear in the cases.
    Cases,
    /// Linear in each operand separately, the other held fixed (`mul`, `dot_general`,
    /// `conv_general_dilated`).
    Bilinear,
    /// Linear in the first operand only, the others held fixed (`div`, and the internal
    /// `select_and_gather_add`/`select_and_scatter_add`, whose selection is fixed).
    FirstOnly,
    /// Not linear in any operand.
    Nonlinear,
}

impl PrimKind {
    /// The primitive's name in the text IR.
    pub fn name(self) -> &'static str {
        match self {
            PrimKind::Neg => "neg",
            PrimKind::Sin => "sin",
            PrimKind::Cos => "cos",
            PrimKind::Tan => "tan",
            PrimKind::Tanh => "tanh",
            PrimKind::Exp => "exp",
            PrimKind::Log => "log",
            PrimKind::Log1p => "log1p",
            PrimKind::Expm1 => "expm1",
            PrimKind::Sqrt => "sqrt",
            PrimKind::Rsqrt => "rsqrt",
            PrimKind::Abs => "abs",
            PrimKind::Sign => "sign",
            PrimKind::Logistic => "logistic",
            PrimKind::Erf => "erf",
            PrimKind::Floor => "floor",
            PrimKind::Ceil => "ceil",
            PrimKind::Round => "round",
            PrimKind::IntegerPow => "integer_pow",
            PrimKind::StopGradient => "stop_gradient",
            PrimKind::Add => "add",
            PrimKind::Sub => "sub",
            PrimKind::Mul => "mul",
            PrimKind::Div => "div",
            PrimKind::Pow => "pow",
            PrimKind::Max => "max",
            PrimKind::Min => "min",
            PrimKind::Atan2 => "atan2",
            PrimKind::Lt => "lt",
            PrimKind::Le => "le",
            PrimKind::Gt => "gt",
            PrimKind::Ge => "ge",
            PrimKind::Eq => "eq",
            PrimKind::Ne => "ne",
            PrimKind::And => "and",
            PrimKind::Or => "or",
            PrimKind::Not => "not",
            PrimKind::SelectN => "select_n",
            PrimKind::ConvertElementType => "convert_element_type",
            PrimKind::Iota => "iota",
            PrimKind::Zeros => "zeros",
            PrimKind::ReduceSum => "reduce_sum",
            PrimKind::ReduceMax => "reduce_max",
            PrimKind::ReduceMin => "reduce_min",
            PrimKind::Argmax => "argmax",
            PrimKind::Argmin => "argmin",
            PrimKind::Cumsum => "cumsum",
            PrimKind::BroadcastInDim => "broadcast_in_dim",
            PrimKind::Reshape => "reshape",
            PrimKind::Transpose => "transpose",
            PrimKind::Squeeze => "squeeze",
            PrimKind::ExpandDims => "expand_dims",
            PrimKind::Rev => "rev",
            PrimKind::Slice => "slice",
            PrimKind::Pad => "pad",
            PrimKind::Concatenate => "concatenate",
            PrimKind::DotGeneral => "dot_general",
            PrimKind::ReduceWindowSum => "reduce_window_sum",
            PrimKind::ReduceWindowMax => "reduce_window_max",
            PrimKind::ReduceWindowMin => "reduce_window_min",
            PrimKind::ReduceWindowSumTranspose => "reduce_window_sum_transpose",
            PrimKind::SelectAndGatherAdd => "select_and_gather_add",
            PrimKind::SelectAndScatterAdd => "select_and_scatter_add",
            PrimKind::ConvGeneralDilated => "conv_general_dilated",
        }
    }

    /// The primitive named `name` in the text IR (a hash lookup in a table built once from
    /// `ALL`: the parser asks this of every equation).
    pub fn from_name(name: &str) -> Option<PrimKind> {
        static BY_NAME: LazyLock<FxHashMap<&'static str, PrimKind>> =
            LazyLock::new(|| PrimKind::ALL.iter().map(|&k| (k.name(), k)).collect());
        BY_NAME.get(name).copied()
    }

    /// What kind of loop the primitive is.
    pub fn class(self) -> OpClass {
        match self {
            PrimKind::Neg
            | PrimKind::Sin
            | PrimKind::Cos
            | PrimKind::Tan
            | PrimKind::Tanh
            | PrimKind::Exp
            | PrimKind::Log
            | PrimKind::Log1p
            | PrimKind::Expm1
            | PrimKind::Sqrt
            | PrimKind::Rsqrt
            | PrimKind::Abs
            | PrimKind::Sign
            | PrimKind::Logistic
            | PrimKind::Erf
            | PrimKind::Floor
            | PrimKind::Ceil
            | PrimKind::Round
            | PrimKind::IntegerPow
            | PrimKind::StopGradient
            | PrimKind::Add
            | PrimKind::Sub
            | PrimKind::Mul
            | PrimKind::Div
            | PrimKind::Pow
            | PrimKind::Max
            | PrimKind::Min
            | PrimKind::Atan2
            | PrimKind::Lt
            | PrimKind::Le
            | PrimKind::Gt
            | PrimKind::Ge
            | PrimKind::Eq
            | PrimKind::Ne
            | PrimKind::And
            | PrimKind::Or
            | PrimKind::Not
            | PrimKind::SelectN
            | PrimKind::ConvertElementType => OpClass::Elementwise,
            PrimKind::ReduceSum
            | PrimKind::ReduceMax
            | PrimKind::ReduceMin
            | PrimKind::Argmax
            | PrimKind::Argmin
            | PrimKind::Cumsum
            | PrimKind::ReduceWindowSum
            | PrimKind::ReduceWindowMax
            | PrimKind::ReduceWindowMin
            | PrimKind::ReduceWindowSumTranspose
            | PrimKind::SelectAndGatherAdd
            | PrimKind::SelectAndScatterAdd => OpClass::Reduction,
            PrimKind::BroadcastInDim
            | PrimKind::Reshape
            | PrimKind::Transpose
            | PrimKind::Squeeze
            | PrimKind::ExpandDims
            | PrimKind::Rev
            | PrimKind::Slice
            | PrimKind::Pad
            | PrimKind::Concatenate => OpClass::DataMovement,
            PrimKind::DotGeneral | PrimKind::ConvGeneralDilated => OpClass::Contraction,
            PrimKind::Iota | PrimKind::Zeros => OpClass::Constant,
        }
    }
}

impl Prim {
    /// The field-less discriminant.
    pub fn kind(&self) -> PrimKind {
        match self {
            Prim::Unary(op) => op.kind(),
            Prim::IntegerPow { .. } => PrimKind::IntegerPow,
            Prim::StopGradient => PrimKind::StopGradient,
            Prim::Binary(op) => op.kind(),
            Prim::Compare(op) => op.kind(),
            Prim::And => PrimKind::And,
            Prim::Or => PrimKind::Or,
            Prim::Not => PrimKind::Not,
            Prim::SelectN => PrimKind::SelectN,
            Prim::ConvertElementType { .. } => PrimKind::ConvertElementType,
            Prim::Iota { .. } => PrimKind::Iota,
            Prim::Zeros { .. } => PrimKind::Zeros,
            Prim::ReduceSum { .. } => PrimKind::ReduceSum,
            Prim::ReduceMax { .. } => PrimKind::ReduceMax,
            Prim::ReduceMin { .. } => PrimKind::ReduceMin,
            Prim::Argmax { .. } => PrimKind::Argmax,
            Prim::Argmin { .. } => PrimKind::Argmin,
            Prim::Cumsum { .. } => PrimKind::Cumsum,
            Prim::BroadcastInDim { .. } => PrimKind::BroadcastInDim,
            Prim::Reshape { .. } => PrimKind::Reshape,
            Prim::Transpose { .. } => PrimKind::Transpose,
            Prim::Squeeze { .. } => PrimKind::Squeeze,
            Prim::ExpandDims { .. } => PrimKind::ExpandDims,
            Prim::Rev { .. } => PrimKind::Rev,
            Prim::Slice { .. } => PrimKind::Slice,
            Prim::Pad { .. } => PrimKind::Pad,
            Prim::Concatenate { .. } => PrimKind::Concatenate,
            Prim::DotGeneral(_) => PrimKind::DotGeneral,
            Prim::ReduceWindowSum(_) => PrimKind::ReduceWindowSum,
            Prim::ReduceWindowMax(_) => PrimKind::ReduceWindowMax,
            Prim::ReduceWindowMin(_) => PrimKind::ReduceWindowMin,
            Prim::ReduceWindowSumTranspose { .. } => PrimKind::ReduceWindowSumTranspose,
            Prim::SelectAndGatherAdd { .. } => PrimKind::SelectAndGatherAdd,
            Prim::SelectAndScatterAdd { .. } => PrimKind::SelectAndScatterAdd,
            Prim::ConvGeneralDilated(_) => PrimKind::ConvGeneralDilated,
        }
    }

    /// The primitive's name in the text IR.
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// What kind of loop the primitive is.
    pub fn class(&self) -> OpClass {
        self.kind().class()
    }

    /// How many operands the primitive takes; `None` for `concatenate` (one or more).
    pub fn arity(&self) -> Option<usize> {
        match self {
            Prim::Unary(_)
            | Prim::IntegerPow { .. }
            | Prim::StopGradient
            | Prim::Not
            | Prim::ConvertElementType { .. }
            | Prim::ReduceSum { .. }
            | Prim::ReduceMax { .. }
            | Prim::ReduceMin { .. }
            | Prim::Argmax { .. }
            | Prim::Argmin { .. }
            | Prim::Cumsum { .. }
            | Prim::BroadcastInDim { .. }
            | Prim::Reshape { .. }
            | Prim::Transpose { .. }
            | Prim::Squeeze { .. }
            | Prim::ExpandDims { .. }
            | Prim::Rev { .. }
            | Prim::Slice { .. }
            | Prim::ReduceWindowSum(_)
            | Prim::ReduceWindowMax(_)
            | Prim::ReduceWindowMin(_)
            | Prim::ReduceWindowSumTranspose { .. } => Some(1),
            Prim::Binary(_)
            | Prim::Compare(_)
            | Prim::And
            | Prim::Or
            | Prim::Pad { .. }
            | Prim::DotGeneral(_)
            | Prim::SelectAndGatherAdd { .. }
            | Prim::SelectAndScatterAdd { .. }
            | Prim::ConvGeneralDilated(_) => Some(2),
            Prim::SelectN => Some(3),
            Prim::Iota { .. } | Prim::Zeros { .. } => Some(0),
            Prim::Concatenate { .. } => None,
        }
    }

    /// How the result depends linearly on the operands (float operands; a conversion is
    /// linear only from float to float).
    pub fn linearity(&self) -> Linearity {
        match self {
            Prim::Unary(UnaryOp::Neg)
            | Prim::Binary(BinaryOp::Add | BinaryOp::Sub)
            | Prim::Zeros { .. }
            | Prim::ReduceSum { .. }
            | Prim::Cumsum { .. }
            | Prim::BroadcastInDim { .. }
            | Prim::Reshape { .. }
            | Prim::Transpose { .. }
            | Prim::Squeeze { .. }
            | Prim::ExpandDims { .. }
            | Prim::Rev { .. }
            | Prim::Slice { .. }
            | Prim::Pad { .. }
            | Prim::Concatenate { .. }
            | Prim::ReduceWindowSum(_)
            | Prim::ReduceWindowSumTranspose { .. } => Linearity::Joint,
            Prim::ConvertElementType { dtype } => {
                if dtype.is_float() {
                    Linearity::Joint
                } else {
                    Linearity::Nonlinear
                }
            }
            Prim::SelectN => Linearity::Cases,
            Prim::Binary(BinaryOp::Mul) | Prim::DotGeneral(_) | Prim::ConvGeneralDilated(_) => {
                Linearity::Bilinear
            }
            Prim::Binary(BinaryOp::Div)
            | Prim::SelectAndGatherAdd { .. }
            | Prim::SelectAndScatterAdd { .. } => Linearity::FirstOnly,
            Prim::Unary(_)
            | Prim::IntegerPow { .. }
            | Prim::StopGradient
            | Prim::Binary(BinaryOp::Pow | BinaryOp::Max | BinaryOp::Min | BinaryOp::Atan2)
            | Prim::Compare(_)
            | Prim::And
            | Prim::Or
            | Prim::Not
            | Prim::Iota { .. }
            | Prim::ReduceMax { .. }
            | Prim::ReduceMin { .. }
            | Prim::Argmax { .. }
            | Prim::Argmin { .. }
            | Prim::ReduceWindowMax(_)
            | Prim::ReduceWindowMin(_) => Linearity::Nonlinear,
        }
    }

    /// True when the primitive is linear in its (float) operands jointly, or in its cases
    /// (`select_n`): its jvp is the primitive itself applied to the tangents, and its
    /// transpose needs every linear-position operand to be linear or zero.
    pub fn is_structurally_linear(&self) -> bool {
        matches!(self.linearity(), Linearity::Joint | Linearity::Cases)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        let mut names: Vec<&str> = PrimKind::ALL.iter().map(|k| k.name()).collect();
        for &k in PrimKind::ALL {
            assert_eq!(PrimKind::from_name(k.name()), Some(k));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PrimKind::ALL.len());
    }

    #[test]
    fn sub_enums_map_to_their_kinds() {
        assert_eq!(Prim::Unary(UnaryOp::Erf).kind(), PrimKind::Erf);
        assert_eq!(Prim::Binary(BinaryOp::Atan2).name(), "atan2");
        assert_eq!(Prim::Compare(CompareOp::Ne).class(), OpClass::Elementwise);
    }

    #[test]
    fn only_float_conversions_are_linear() {
        let to = |dtype| Prim::ConvertElementType { dtype }.is_structurally_linear();
        assert!(to(DType::F64) && to(DType::F32));
        assert!(!to(DType::I32) && !to(DType::Bool));
    }
}
