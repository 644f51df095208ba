//! Broadcast scalars: an elementwise operation whose operand is a rank-0 value broadcast to
//! the other operand's shape takes the rank-0 value itself (the IR broadcasts rank-0 operands
//! implicitly), which removes the broadcast's memory and exposes the scalar to the identities
//! (`x * broadcast(1.0)` becomes `x * 1.0`, then `x`).

use egg::Id;
use traceform_ir::Prim;

use super::{apply, op, ops_in, ty, Rhs, Rule};
use crate::simplify::lang::{Graph, Node};

pub fn rules() -> Vec<Rule> {
    vec![Rule {
        name: "broadcast-scalar-operand",
        apply: broadcast_scalar_operand,
    }]
}

/// The rank-0 class broadcast into class `id` with `broadcast_in_dim[dims=()]`, if any.
fn broadcast_scalar(eg: &Graph, id: Id) -> Option<Id> {
    ops_in(
        eg,
        id,
        |p| matches!(p, Prim::BroadcastInDim { dims, .. } if dims.is_empty()),
    )
    .map(|(_, a)| a[0])
    .next()
}

/// `op(broadcast(s), x) = op(s, x)` and `op(x, broadcast(s)) = op(x, s)` for binary
/// elementwise arithmetic and comparisons, where `x` has the result's shape.
fn broadcast_scalar_operand(eg: &Graph, id: Id, node: &Node) -> Option<Rhs> {
    let (prim, args) = op(eg, node)?;
    if !matches!(prim, Prim::Binary(_) | Prim::Compare(_)) {
        return None;
    }
    let (a, b) = (args[0], args[1]);
    let full = |x: Id| ty(eg, x).shape == ty(eg, id).shape;
    if full(b) {
        if let Some(s) = broadcast_scalar(eg, a) {
            return Some(apply(prim.clone(), &[s, b]));
        }
    }
    if full(a) {
        if let Some(s) = broadcast_scalar(eg, b) {
            return Some(apply(prim.clone(), &[a, s]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use crate::simplify::rules::testing::simplified;

    #[test]
    fn broadcast_scalar_operand() {
        assert_eq!(
            simplified("b = broadcast_in_dim[shape=(3), dims=()] s; a = sub x b; return a"),
            "v0: f32[3] = sub x s; return v0"
        );
    }
    #[test]
    fn a_broadcast_one_disappears() {
        assert_eq!(
            simplified("b = broadcast_in_dim[shape=(3), dims=()] 1.0; a = mul b x; return a"),
            "return x"
        );
    }
}
