//! The e-graph language and the analysis: `Node` wraps the IR's own primitives (interned in
//! the analysis, so there is no second list of primitives), and `Facts` carries each class's
//! type, constant fill, whether it is a structural zero, and a source location.

use egg::{Analysis, DidMerge, EGraph, Id, Language};
use smallvec::SmallVec;
use traceform_ir::{
    infer_type, BinaryOp, DType, Linearity, Literal, Loc, Prim, PrimId, PrimTable, Type, UnaryOp,
};

/// An e-node: a parameter of the function, a rank-0 literal, or a primitive (interned in
/// `Facts::prims`) applied to classes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Node {
    Param(u32),
    Lit(Literal),
    Op(PrimId, SmallVec<[Id; 3]>),
}

/// A node without its children: what `Language::matches` compares.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Head {
    Param(u32),
    Lit(Literal),
    Op(PrimId, usize),
}

impl Language for Node {
    type Discriminant = Head;

    fn discriminant(&self) -> Head {
        match self {
            Node::Param(i) => Head::Param(*i),
            Node::Lit(l) => Head::Lit(*l),
            Node::Op(p, children) => Head::Op(*p, children.len()),
        }
    }

    fn matches(&self, other: &Node) -> bool {
        self.discriminant() == other.discriminant()
    }

    fn children(&self) -> &[Id] {
        match self {
            Node::Op(_, children) => children,
            Node::Param(_) | Node::Lit(_) => &[],
        }
    }

    fn children_mut(&mut self) -> &mut [Id] {
        match self {
            Node::Op(_, children) => children,
            Node::Param(_) | Node::Lit(_) => &mut [],
        }
    }
}

/// What is known of one class.
#[derive(Clone, Debug)]
pub struct Data {
    pub ty: Type,
    /// Every element equals this value (already rounded to the dtype).
    pub fill: Option<f64>,
    /// A zero that a transform made (see `Prim::Zeros`): `x * zero` is zero even for inf/NaN x.
    pub structural_zero: bool,
    /// Where the class's first equation came from.
    pub loc: Loc,
}

/// The analysis: the function's parameter types and the primitives of the e-graph.
#[derive(Debug, Default)]
pub struct Facts {
    pub param_types: Vec<Type>,
    pub prims: PrimTable,
}

pub type Graph = EGraph<Node, Facts>;

/// The primitive of an `Op` node.
pub fn prim_of(eg: &Graph, p: PrimId) -> &Prim {
    eg.analysis.prims.get(p)
}

impl Analysis<Node> for Facts {
    type Data = Data;

    fn make(eg: &mut Graph, node: &Node, _id: Id) -> Data {
        match node {
            Node::Param(i) => Data {
                ty: eg.analysis.param_types[*i as usize].clone(),
                fill: None,
                structural_zero: false,
                loc: Loc::Unknown,
            },
            Node::Lit(l) => Data {
                ty: Type::scalar(l.dtype),
                fill: Some(l.value),
                structural_zero: false,
                loc: Loc::Unknown,
            },
            Node::Op(p, children) => {
                let prim = eg.analysis.prims.get(*p).clone();
                let types: SmallVec<[&Type; 3]> =
                    children.iter().map(|c| &eg[*c].data.ty).collect();
                let ty = infer_type(&prim, &types)
                    .unwrap_or_else(|e| panic!("the simplifier built an ill-typed node: {e}"));
                let fills: SmallVec<[Option<f64>; 3]> =
                    children.iter().map(|c| eg[*c].data.fill).collect();
                let zeros: SmallVec<[bool; 3]> = children
                    .iter()
                    .map(|c| eg[*c].data.structural_zero)
                    .collect();
                let fill = fold(&prim, &fills, ty.dtype);
                let structural_zero = is_structural_zero(&prim, &zeros, &fills, &types);
                Data {
                    ty,
                    fill,
                    structural_zero,
                    loc: Loc::Unknown,
                }
            }
        }
    }

    fn merge(&mut self, a: &mut Data, b: Data) -> DidMerge {
        debug_assert_eq!(a.ty, b.ty, "merged classes have one type");
        let mut changed_a = false;
        let mut changed_b = false;
        match (a.fill, b.fill) {
            (None, Some(f)) => {
                a.fill = Some(f);
                changed_a = true;
            }
            (Some(_), None) => changed_b = true,
            _ => {}
        }
        if a.structural_zero != b.structural_zero {
            changed_a |= !a.structural_zero;
            changed_b |= !b.structural_zero;
            a.structural_zero = true;
        }
        if matches!(a.loc, Loc::Unknown) && !matches!(b.loc, Loc::Unknown) {
            a.loc = b.loc;
        }
        DidMerge(changed_a, changed_b)
    }

    fn modify(eg: &mut Graph, id: Id) {
        let data = eg[id].data.clone();
        if data.structural_zero {
            let zeros = Prim::Zeros {
                dtype: data.ty.dtype,
                shape: data.ty.shape.clone(),
            };
            let p = eg.analysis.prims.intern(&zeros);
            let z = eg.add(Node::Op(p, SmallVec::new()));
            eg.union(id, z);
        } else if let Some(c) = data.fill {
            // A constant becomes a literal, broadcast if it is not rank 0: cheaper than
            // whatever computed it, and visible to the identities.
            let mut l = eg.add(Node::Lit(Literal::new(c, data.ty.dtype)));
            if data.ty.rank() > 0 {
                let b = Prim::BroadcastInDim {
                    shape: data.ty.shape.clone(),
                    dims: Default::default(),
                };
                let p = eg.analysis.prims.intern(&b);
                l = eg.add(Node::Op(p, SmallVec::from_slice(&[l])));
            }
            eg.union(id, l);
        }
    }
}

/// The value every element of the result has, when the operands' fills determine it exactly
/// as the interpreter computes it (same dtype, same rounding).
fn fold(prim: &Prim, fills: &[Option<f64>], dtype: DType) -> Option<f64> {
    let round = |v: f64| Literal::new(v, dtype).value;
    let arith = |f32op: fn(f32, f32) -> f32, f64op: fn(f64, f64) -> f64| -> Option<f64> {
        let (a, b) = (fills[0]?, fills[1]?);
        match dtype {
            DType::F32 => Some(f64::from(f32op(a as f32, b as f32))),
            DType::F64 => Some(f64op(a, b)),
            DType::I32 | DType::Bool => None,
        }
    };
    match prim {
        Prim::Zeros { .. } => Some(0.0),
        Prim::Unary(UnaryOp::Neg) if dtype.is_float() => fills[0].map(|v| -v),
        Prim::Binary(BinaryOp::Add) => arith(|a, b| a + b, |a, b| a + b),
        Prim::Binary(BinaryOp::Sub) => arith(|a, b| a - b, |a, b| a - b),
        Prim::Binary(BinaryOp::Mul) => arith(|a, b| a * b, |a, b| a * b),
        Prim::Binary(BinaryOp::Div) => arith(|a, b| a / b, |a, b| a / b),
        Prim::ConvertElementType { .. } => fills[0].map(round),
        Prim::BroadcastInDim { .. }
        | Prim::Reshape { .. }
        | Prim::Transpose { .. }
        | Prim::Squeeze { .. }
        | Prim::ExpandDims { .. }
        | Prim::Rev { .. }
        | Prim::StopGradient
        | Prim::Slice { .. } => fills[0],
        Prim::Pad { .. } => match (fills[0], fills[1]) {
            (Some(a), Some(b)) if a.to_bits() == b.to_bits() => Some(a),
            _ => None,
        },
        Prim::Concatenate { .. } => {
            let first = fills[0]?;
            fills
                .iter()
                .all(|f| f.map(f64::to_bits) == Some(first.to_bits()))
                .then_some(first)
        }
        _ => None,
    }
}

/// Whether a node whose operands are (`zeros`) structural zeros is one: a float linear
/// primitive of zeros (rank-0 literal zeros, which is what a scalar symbolic zero becomes,
/// count as zeros beside at least one structural one), or a float product or quotient with a
/// zero as its linear operand. Never for i32 or bool values, whose zeros are ordinary values.
fn is_structural_zero(prim: &Prim, zeros: &[bool], fills: &[Option<f64>], types: &[&Type]) -> bool {
    if let Prim::Zeros { dtype, .. } = prim {
        return dtype.is_float();
    }
    if !types
        .iter()
        .all(|t| t.dtype.is_float() || t.dtype == DType::Bool)
    {
        return false;
    }
    let float = |i: usize| types[i].dtype.is_float();
    let zero_like =
        |i: usize| zeros[i] || (float(i) && types[i].rank() == 0 && fills[i] == Some(0.0));
    match prim.linearity() {
        Linearity::Joint => {
            zeros.iter().any(|&z| z) && (0..zeros.len()).all(|i| float(i) && zero_like(i))
        }
        Linearity::Cases => float(1) && zeros[1] && zeros[2],
        Linearity::Bilinear => float(0) && (zeros[0] || zeros[1]),
        Linearity::FirstOnly => float(0) && zeros[0],
        Linearity::Nonlinear => false,
    }
}
