//! Transposes folded into `dot_general`: a transposed operand becomes different dimension
//! numbers, and a transposed product whose free axes swap is the product with its operands
//! swapped. Reverse mode writes these (the transpose rule of `dot_general` transposes its
//! result back into operand order).

use egg::Id;
use traceform_ir::{dot_free_axes, Axes, Prim};

use super::{apply, op, ops_in, ty, Rhs, Rule};
use crate::simplify::lang::{Graph, Node};

pub fn rules() -> Vec<Rule> {
    vec![
        Rule {
            name: "transpose-of-dot",
            apply: transpose_of_dot,
        },
        Rule {
            name: "dot-of-transpose",
            apply: dot_of_transpose,
        },
    ]
}

/// `transpose(dot(a, b))` whose permutation keeps the batch axes and puts `b`'s free axes
/// before `a`'s is `dot(b, a)`.
fn transpose_of_dot(eg: &Graph, _id: Id, node: &Node) -> Option<Rhs> {
    let (Prim::Transpose { perm }, [y]) = op(eg, node)? else {
        return None;
    };
    ops_in(eg, *y, |p| matches!(p, Prim::DotGeneral(_))).find_map(|(p, ab)| {
        let Prim::DotGeneral(d) = p else { return None };
        let nb = d.batch.0.len();
        let na = dot_free_axes(ty(eg, ab[0]).rank(), &d.contract.0, &d.batch.0).len();
        let nfree = perm.len() - nb;
        let want: Axes = (0..nb)
            .chain(nb + na..nb + nfree)
            .chain(nb..nb + na)
            .collect();
        (*perm == want).then(|| apply(Prim::DotGeneral(d.swapped()), &[ab[1], ab[0]]))
    })
}

/// `dot(transpose[p](a), b)` is `dot(a, b)` with the contracted and batch axes of the first
/// operand renamed through `p`, when `p` keeps the free axes in order (and likewise for the
/// second operand).
fn dot_of_transpose(eg: &Graph, _id: Id, node: &Node) -> Option<Rhs> {
    let (Prim::DotGeneral(d), [a, b]) = op(eg, node)? else {
        return None;
    };
    for side in 0..2 {
        let operand = [*a, *b][side];
        let found = ops_in(eg, operand, |p| matches!(p, Prim::Transpose { .. })).find_map(
            |(p, x)| match p {
                Prim::Transpose { perm } => Some((perm.clone(), x[0])),
                _ => None,
            },
        );
        let Some((perm, inner)) = found else { continue };
        let (contract, batch) = if side == 0 {
            (&d.contract.0, &d.batch.0)
        } else {
            (&d.contract.1, &d.batch.1)
        };
        let free = dot_free_axes(perm.len(), contract, batch);
        let mapped_free: Vec<usize> = free.iter().map(|&f| perm[f]).collect();
        if mapped_free.windows(2).any(|w| w[0] > w[1]) {
            continue;
        }
        let map = |axes: &Axes| -> Axes { axes.iter().map(|&x| perm[x]).collect() };
        let mut dims = d.clone();
        if side == 0 {
            dims.contract.0 = map(contract);
            dims.batch.0 = map(batch);
            return Some(apply(Prim::DotGeneral(dims), &[inner, *b]));
        }
        dims.contract.1 = map(contract);
        dims.batch.1 = map(batch);
        return Some(apply(Prim::DotGeneral(dims), &[*a, inner]));
    }
    None
}

#[cfg(test)]
mod tests {
    use crate::simplify::rules::testing::simplified_text as simplified;

    #[test]
    fn transpose_of_dot() {
        assert_eq!(
            simplified("func f(a: f32[2,3], b: f32[3,4]) -> f32[4,2] {\n  c = dot_general[contract=((1),(0))] a b\n  d = transpose[perm=(1,0)] c\n  return d\n}\n"),
            "func f(a: f32[2,3], b: f32[3,4]) -> f32[4,2] {\n  v0: f32[4,2] = dot_general[contract=((0),(1)), batch=((),())] b a\n  return v0\n}\n"
        );
    }

    #[test]
    fn dot_of_transpose() {
        assert_eq!(
            simplified("func f(a: f32[3,2], b: f32[3,4]) -> f32[2,4] {\n  t = transpose[perm=(1,0)] a\n  c = dot_general[contract=((1),(0))] t b\n  return c\n}\n"),
            "func f(a: f32[3,2], b: f32[3,4]) -> f32[2,4] {\n  v0: f32[2,4] = dot_general[contract=((0),(0)), batch=((),())] a b\n  return v0\n}\n"
        );
    }
}
