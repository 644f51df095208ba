//! The closed list of primitives, with their attributes.
//!
//! `Prim` is the single list of operations the IR knows. Every per-primitive concern (shape
//! rule, printer, kernel, derivative rules) is an exhaustive `match` on it, so adding a variant
//! breaks the build exactly where a rule is missing (see `docs/adding-a-primitive.md`).
//! Names and attribute names are those of `shared/spec/ir-text.md` (jax.lax's).

use crate::types::DType;

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
    pub const ALL: [UnaryOp; 18] = [
        UnaryOp::Neg,
        UnaryOp::Sin,
        UnaryOp::Cos,
        UnaryOp::Tan,
        UnaryOp::Tanh,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Log1p,
        UnaryOp::Expm1,
        UnaryOp::Sqrt,
        UnaryOp::Rsqrt,
        UnaryOp::Abs,
        UnaryOp::Sign,
        UnaryOp::Logistic,
        UnaryOp::Erf,
        UnaryOp::Floor,
        UnaryOp::Ceil,
        UnaryOp::Round,
    ];

    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Sin => "sin",
            UnaryOp::Cos => "cos",
            UnaryOp::Tan => "tan",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Log1p => "log1p",
            UnaryOp::Expm1 => "expm1",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Rsqrt => "rsqrt",
            UnaryOp::Abs => "abs",
            UnaryOp::Sign => "sign",
            UnaryOp::Logistic => "logistic",
            UnaryOp::Erf => "erf",
            UnaryOp::Floor => "floor",
            UnaryOp::Ceil => "ceil",
            UnaryOp::Round => "round",
        }
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
    pub const ALL: [BinaryOp; 8] = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Pow,
        BinaryOp::Max,
        BinaryOp::Min,
        BinaryOp::Atan2,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Pow => "pow",
            BinaryOp::Max => "max",
            BinaryOp::Min => "min",
            BinaryOp::Atan2 => "atan2",
        }
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
    pub const ALL: [CompareOp; 6] = [
        CompareOp::Lt,
        CompareOp::Le,
        CompareOp::Gt,
        CompareOp::Ge,
        CompareOp::Eq,
        CompareOp::Ne,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
        }
    }
}

/// Which of the two operands of a `dot_general`: the pair of axis lists in `contract` and
/// `batch` is `(lhs, rhs)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DotDims {
    pub contract: (Vec<usize>, Vec<usize>),
    pub batch: (Vec<usize>, Vec<usize>),
}

/// One primitive with its attributes. Exhaustive matches on this enum are the "checklist" of
/// everything a primitive needs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
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
        shape: Vec<usize>,
        dim: usize,
    },
    ReduceSum {
        axes: Vec<usize>,
    },
    ReduceMax {
        axes: Vec<usize>,
    },
    ReduceMin {
        axes: Vec<usize>,
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
        shape: Vec<usize>,
        dims: Vec<usize>,
    },
    Reshape {
        shape: Vec<usize>,
    },
    Transpose {
        perm: Vec<usize>,
    },
    Squeeze {
        dims: Vec<usize>,
    },
    ExpandDims {
        dims: Vec<usize>,
    },
    Rev {
        dims: Vec<usize>,
    },
    /// `strides` is all ones when the text gives none.
    Slice {
        start: Vec<usize>,
        limit: Vec<usize>,
        strides: Vec<usize>,
    },
    /// `interior` is all zeros when the text gives none.
    Pad {
        low: Vec<i64>,
        high: Vec<i64>,
        interior: Vec<usize>,
    },
    Concatenate {
        axis: usize,
    },
    DotGeneral(DotDims),
}

impl Prim {
    /// The primitive's name in the text IR.
    pub fn name(&self) -> &'static str {
        match self {
            Prim::Unary(op) => op.name(),
            Prim::IntegerPow { .. } => "integer_pow",
            Prim::StopGradient => "stop_gradient",
            Prim::Binary(op) => op.name(),
            Prim::Compare(op) => op.name(),
            Prim::And => "and",
            Prim::Or => "or",
            Prim::Not => "not",
            Prim::SelectN => "select_n",
            Prim::ConvertElementType { .. } => "convert_element_type",
            Prim::Iota { .. } => "iota",
            Prim::ReduceSum { .. } => "reduce_sum",
            Prim::ReduceMax { .. } => "reduce_max",
            Prim::ReduceMin { .. } => "reduce_min",
            Prim::Argmax { .. } => "argmax",
            Prim::Argmin { .. } => "argmin",
            Prim::Cumsum { .. } => "cumsum",
            Prim::BroadcastInDim { .. } => "broadcast_in_dim",
            Prim::Reshape { .. } => "reshape",
            Prim::Transpose { .. } => "transpose",
            Prim::Squeeze { .. } => "squeeze",
            Prim::ExpandDims { .. } => "expand_dims",
            Prim::Rev { .. } => "rev",
            Prim::Slice { .. } => "slice",
            Prim::Pad { .. } => "pad",
            Prim::Concatenate { .. } => "concatenate",
            Prim::DotGeneral(_) => "dot_general",
        }
    }

    /// Every primitive name of the text IR, in the spec's order.
    pub fn all_names() -> &'static [&'static str] {
        &ALL_NAMES
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
            | Prim::Slice { .. } => Some(1),
            Prim::Binary(_)
            | Prim::Compare(_)
            | Prim::And
            | Prim::Or
            | Prim::Pad { .. }
            | Prim::DotGeneral(_) => Some(2),
            Prim::SelectN => Some(3),
            Prim::Iota { .. } => Some(0),
            Prim::Concatenate { .. } => None,
        }
    }
}

/// Every primitive name, in the order of `shared/spec/ir-text.md`.
const ALL_NAMES: [&str; 56] = [
    "neg",
    "sin",
    "cos",
    "tan",
    "tanh",
    "exp",
    "log",
    "log1p",
    "expm1",
    "sqrt",
    "rsqrt",
    "abs",
    "sign",
    "logistic",
    "erf",
    "floor",
    "ceil",
    "round",
    "integer_pow",
    "stop_gradient",
    "add",
    "sub",
    "mul",
    "div",
    "pow",
    "max",
    "min",
    "atan2",
    "lt",
    "le",
    "gt",
    "ge",
    "eq",
    "ne",
    "and",
    "or",
    "not",
    "select_n",
    "convert_element_type",
    "iota",
    "reduce_sum",
    "reduce_max",
    "reduce_min",
    "argmax",
    "argmin",
    "cumsum",
    "broadcast_in_dim",
    "reshape",
    "transpose",
    "squeeze",
    "expand_dims",
    "rev",
    "slice",
    "pad",
    "concatenate",
    "dot_general",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_list_matches_the_enums() {
        let mut from_enums: Vec<&str> = UnaryOp::ALL.iter().map(|o| o.name()).collect();
        from_enums.extend(BinaryOp::ALL.iter().map(|o| o.name()));
        from_enums.extend(CompareOp::ALL.iter().map(|o| o.name()));
        for n in from_enums {
            assert!(ALL_NAMES.contains(&n), "{n}");
        }
        let mut sorted = ALL_NAMES.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ALL_NAMES.len());
    }
}
