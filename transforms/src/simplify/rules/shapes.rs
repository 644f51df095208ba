//! Data movement that cancels or fuses: transposes of transposes, reshapes of reshapes,
//! broadcasts of broadcasts, and operations that leave their operand as it is.

use egg::Id;
use traceform_ir::{Axes, Prim};

use super::{apply, class, op, ops_in, ty, Rhs, Rule};
use crate::simplify::lang::{Graph, Node};

pub fn rules() -> Vec<Rule> {
    vec![
        Rule {
            name: "no-op",
            apply: no_op,
        },
        Rule {
            name: "transpose-transpose",
            apply: transpose_transpose,
        },
        Rule {
            name: "reshape-reshape",
            apply: reshape_reshape,
        },
        Rule {
            name: "broadcast-broadcast",
            apply: broadcast_broadcast,
        },
        Rule {
            name: "reduce-reduce",
            apply: reduce_reduce,
        },
        Rule {
            name: "unit-broadcast-is-reshape",
            apply: unit_broadcast_is_reshape,
        },
        Rule {
            name: "unit-reduce-is-reshape",
            apply: unit_reduce_is_reshape,
        },
        Rule {
            name: "reshape-out-of-elementwise",
            apply: reshape_out_of_elementwise,
        },
        Rule {
            name: "stop-gradient-into-movement",
            apply: stop_gradient_into_movement,
        },
    ]
}

/// A data movement that gives its operand back: a transpose by the identity, a reshape,
/// squeeze, expand_dims or broadcast to the same shape, a reduction or reversal over no
/// axes, a conversion to the same dtype, a full unit-stride slice, a pad by nothing.
fn no_op(eg: &Graph, id: Id, node: &Node) -> Option<Rhs> {
    let (prim, args) = op(eg, node)?;
    let x = *args.first()?;
    let same = ty(eg, x) == ty(eg, id);
    let identity = match prim {
        Prim::Transpose { perm } => perm.iter().enumerate().all(|(i, &p)| i == p),
        Prim::Reshape { .. }
        | Prim::Squeeze { .. }
        | Prim::ExpandDims { .. }
        | Prim::ConvertElementType { .. } => true,
        Prim::BroadcastInDim { dims, .. } => dims.iter().enumerate().all(|(i, &d)| i == d),
        Prim::ReduceSum { axes } | Prim::ReduceMax { axes } | Prim::ReduceMin { axes } => {
            axes.is_empty()
        }
        Prim::Rev { dims } => dims.is_empty(),
        Prim::Slice { strides, .. } => strides.iter().all(|&s| s == 1),
        Prim::Pad {
            low,
            high,
            interior,
        } => low.iter().chain(high).all(|&p| p == 0) && interior.iter().all(|&i| i == 0),
        _ => false,
    };
    (identity && same).then(|| class(x))
}

/// `transpose[p2](transpose[p1] x) = transpose[p1 ∘ p2] x`.
fn transpose_transpose(eg: &Graph, _id: Id, node: &Node) -> Option<Rhs> {
    let (Prim::Transpose { perm: outer }, [y]) = op(eg, node)? else {
        return None;
    };
    let (inner, x) =
        ops_in(eg, *y, |p| matches!(p, Prim::Transpose { .. })).find_map(|(p, a)| match p {
            Prim::Transpose { perm } => Some((perm.clone(), a[0])),
            _ => None,
        })?;
    let perm: Axes = outer.iter().map(|&o| inner[o]).collect();
    Some(apply(Prim::Transpose { perm }, &[x]))
}

/// `reshape(reshape x) = reshape x`.
fn reshape_reshape(eg: &Graph, _id: Id, node: &Node) -> Option<Rhs> {
    let (Prim::Reshape { shape }, [y]) = op(eg, node)? else {
        return None;
    };
    let (_, a) = ops_in(eg, *y, |p| {
        matches!(
            p,
            Prim::Reshape { .. } | Prim::Squeeze { .. } | Prim::ExpandDims { .. }
        )
    })
    .next()?;
    Some(apply(
        Prim::Reshape {
            shape: shape.clone(),
        },
        &[a[0]],
    ))
}

/// `broadcast[s2, d2](broadcast[s1, d1] x) = broadcast[s2, d2 ∘ d1] x`.
fn broadcast_broadcast(eg: &Graph, _id: Id, node: &Node) -> Option<Rhs> {
    let (Prim::BroadcastInDim { shape, dims: outer }, [y]) = op(eg, node)? else {
        return None;
    };
    let (inner, x) = ops_in(eg, *y, |p| matches!(p, Prim::BroadcastInDim { .. })).find_map(
        |(p, a)| match p {
            Prim::BroadcastInDim { dims, .. } => Some((dims.clone(), a[0])),
            _ => None,
        },
    )?;
    let dims: Axes = inner.iter().map(|&d| outer[d]).collect();
    Some(apply(
        Prim::BroadcastInDim {
            shape: shape.clone(),
            dims,
        },
        &[x],
    ))
}

/// `reduce_sum[a2](reduce_sum[a1] x) = reduce_sum[a1 ∪ a2'] x` (`a2` renumbered into `x`'s
/// axes).
fn reduce_reduce(eg: &Graph, _id: Id, node: &Node) -> Option<Rhs> {
    let (Prim::ReduceSum { axes: outer }, [y]) = op(eg, node)? else {
        return None;
    };
    let (inner, x) =
        ops_in(eg, *y, |p| matches!(p, Prim::ReduceSum { .. })).find_map(|(p, a)| match p {
            Prim::ReduceSum { axes } => Some((axes.clone(), a[0])),
            _ => None,
        })?;
    let kept: Vec<usize> = (0..ty(eg, x).rank())
        .filter(|d| !inner.contains(d))
        .collect();
    let mut axes: Axes = inner.clone();
    axes.extend(outer.iter().map(|&o| kept[o]));
    axes.sort_unstable();
    Some(apply(Prim::ReduceSum { axes }, &[x]))
}

/// A `broadcast_in_dim` that only inserts size-1 axes (as many elements out as in) is a
/// `reshape`, which then meets other reshapes.
fn unit_broadcast_is_reshape(eg: &Graph, id: Id, node: &Node) -> Option<Rhs> {
    let (Prim::BroadcastInDim { shape, .. }, [x]) = op(eg, node)? else {
        return None;
    };
    let same_size = ty(eg, *x).num_elements() == ty(eg, id).num_elements();
    (same_size && ty(eg, *x).rank() < shape.len()).then(|| {
        apply(
            Prim::Reshape {
                shape: shape.clone(),
            },
            &[*x],
        )
    })
}

/// A reduction over axes of size 1 only moves no data: it is a `reshape` (which then meets
/// the reshapes around it).
fn unit_reduce_is_reshape(eg: &Graph, id: Id, node: &Node) -> Option<Rhs> {
    let (Prim::ReduceSum { axes } | Prim::ReduceMax { axes } | Prim::ReduceMin { axes }, [x]) =
        op(eg, node)?
    else {
        return None;
    };
    let shape = &ty(eg, *x).shape;
    (!axes.is_empty() && axes.iter().all(|&a| shape[a] == 1)).then(|| {
        apply(
            Prim::Reshape {
                shape: ty(eg, id).shape.clone(),
            },
            &[*x],
        )
    })
}

/// The operand of a reshape (or squeeze, or expand_dims) in class `id`, if there is one.
fn reshaped(eg: &Graph, id: Id) -> Option<Id> {
    ops_in(eg, id, |p| {
        matches!(
            p,
            Prim::Reshape { .. } | Prim::Squeeze { .. } | Prim::ExpandDims { .. }
        )
    })
    .map(|(_, a)| a[0])
    .next()
}

/// `op(reshape a, reshape b) = reshape(op(a, b))` for binary elementwise arithmetic and
/// comparisons when `a` and `b` have one shape, and `op(reshape a, s) = reshape(op(a, s))` for
/// a rank-0 `s` (either side): one reshape instead of two, and the elementwise operation
/// meets the producers of `a` and `b` (a reshape followed by its inverse then cancels).
fn reshape_out_of_elementwise(eg: &Graph, id: Id, node: &Node) -> Option<Rhs> {
    let (prim, &[a, b]) = op(eg, node)? else {
        return None;
    };
    if !matches!(prim, Prim::Binary(_) | Prim::Compare(_)) || ty(eg, id).rank() == 0 {
        return None;
    }
    let scalar = |x: Id| ty(eg, x).rank() == 0;
    let (a2, b2) = match (scalar(a), scalar(b)) {
        (true, false) => (a, reshaped(eg, b)?),
        (false, true) => (reshaped(eg, a)?, b),
        (false, false) => {
            let (a2, b2) = (reshaped(eg, a)?, reshaped(eg, b)?);
            if ty(eg, a2).shape != ty(eg, b2).shape {
                return None;
            }
            (a2, b2)
        }
        (true, true) => return None,
    };
    Some(Rhs::Op(
        Prim::Reshape {
            shape: ty(eg, id).shape.clone(),
        },
        vec![apply(prim.clone(), &[a2, b2])],
    ))
}

/// `stop_gradient(m x) = m(stop_gradient x)` for a data movement `m` of one operand (both
/// have the same value and a zero derivative): the stop moves to the smaller value, and the
/// movement meets the movements around it (`broadcast(stop_gradient(broadcast x))` becomes
/// one broadcast of `stop_gradient x`).
fn stop_gradient_into_movement(eg: &Graph, _id: Id, node: &Node) -> Option<Rhs> {
    let (Prim::StopGradient, [y]) = op(eg, node)? else {
        return None;
    };
    let (prim, x) = ops_in(eg, *y, |p| {
        matches!(
            p,
            Prim::Reshape { .. }
                | Prim::BroadcastInDim { .. }
                | Prim::Transpose { .. }
                | Prim::Squeeze { .. }
                | Prim::ExpandDims { .. }
                | Prim::Rev { .. }
        )
    })
    .next()?;
    Some(Rhs::Op(
        prim.clone(),
        vec![apply(Prim::StopGradient, &[x[0]])],
    ))
}

#[cfg(test)]
mod tests {
    use crate::simplify::rules::testing::{simplified, simplified_text};

    #[test]
    fn no_op() {
        assert_eq!(
            simplified("a = reshape[shape=(3)] x; b = transpose[perm=(0)] a; c = broadcast_in_dim[shape=(3), dims=(0)] b; d = reduce_sum[axes=()] c; e = convert_element_type[dtype=f32] d; f = slice[start=(0), limit=(3)] e; g = pad[low=(0), high=(0)] f 0.0; h = rev[dims=()] g; return h"),
            "return x"
        );
    }
    #[test]
    fn transpose_transpose() {
        assert_eq!(
            simplified("a = reshape[shape=(1,3)] x; b = transpose[perm=(1,0)] a; c = transpose[perm=(1,0)] b; d = reshape[shape=(3)] c; return d"),
            "return x"
        );
    }
    #[test]
    fn reshape_reshape() {
        assert_eq!(
            simplified_text("func f(x: f32[3]) -> f32[3,1] {\n  a: f32[1,3] = reshape[shape=(1,3)] x\n  b: f32[3,1] = reshape[shape=(3,1)] a\n  return b\n}\n"),
            "func f(x: f32[3]) -> f32[3,1] {\n  v0: f32[3,1] = reshape[shape=(3,1)] x\n  return v0\n}\n"
        );
    }
    #[test]
    fn broadcast_broadcast() {
        assert_eq!(
            simplified("a = broadcast_in_dim[shape=(2,3), dims=(1)] x; b = broadcast_in_dim[shape=(4,2,3), dims=(1,2)] a; c = reduce_sum[axes=(0,1)] b; return c"),
            "v0: f32[4,2,3] = broadcast_in_dim[shape=(4,2,3), dims=(2)] x; v1: f32[3] = reduce_sum[axes=(0,1)] v0; return v1"
        );
    }
    #[test]
    fn unit_broadcast_is_reshape() {
        assert_eq!(
            simplified(
                "a = broadcast_in_dim[shape=(1,3), dims=(1)] x; b = reshape[shape=(3)] a; return b"
            ),
            "return x"
        );
    }
    #[test]
    fn unit_reduce_is_reshape() {
        assert_eq!(
            simplified("a = reshape[shape=(1,3)] x; b = reduce_max[axes=(0)] a; return b"),
            "return x"
        );
    }
    #[test]
    fn reshape_out_of_elementwise() {
        assert_eq!(
            simplified("a = reshape[shape=(3,1)] x; b = reshape[shape=(3,1)] y; c = div a b; d = mul c s; e = reshape[shape=(3)] d; return e"),
            "v0: f32[3] = div x y; v1: f32[3] = mul v0 s; return v1"
        );
    }
    #[test]
    fn stop_gradient_into_movement() {
        assert_eq!(
            simplified("a = broadcast_in_dim[shape=(3,1), dims=(0)] x; b = stop_gradient a; c = broadcast_in_dim[shape=(3,2), dims=(0,1)] b; d = reduce_sum[axes=(1)] c; return d"),
            "v0: f32[3] = stop_gradient x; v1: f32[3,2] = broadcast_in_dim[shape=(3,2), dims=(0)] v0; v2: f32[3] = reduce_sum[axes=(1)] v1; return v2"
        );
    }
    #[test]
    fn reduce_reduce() {
        assert_eq!(
            simplified("a = broadcast_in_dim[shape=(2,3,4), dims=(1)] x; b = reduce_sum[axes=(0)] a; c = reduce_sum[axes=(1)] b; return c"),
            "v0: f32[2,3,4] = broadcast_in_dim[shape=(2,3,4), dims=(1)] x; v1: f32[3] = reduce_sum[axes=(0,2)] v0; return v1"
        );
    }
}
