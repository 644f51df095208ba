//! Factoring sums of products: `a*b + a*c = a*(b+c)` and `a*b - a*c = a*(b-c)` (in any operand
//! order, through constant scalings), the same for
//! two `dot_general`s with one operand and dimension numbers in common, and
//! `L(x) + L(y) = L(x + y)` for any structurally linear data movement or reduction `L` with
//! the same attributes (`reduce_sum`, `pad` by zero, `broadcast_in_dim`, `slice`, ...). Reverse-mode
//! programs are full of these sums (a cotangent is the sum of its uses' contributions).
//! Factoring can change rounding (one fewer product): values agree to the usual float
//! tolerance, not bitwise.

use egg::Id;
use traceform_ir::{BinaryOp, Linearity, Literal, Prim};

use super::identities::constant_factor;
use super::{apply, class, is_zero, op, ops_in, ty, Rhs, Rule};
use crate::simplify::lang::{Graph, Node};

pub fn rules() -> Vec<Rule> {
    vec![
        Rule {
            name: "factor-mul",
            apply: factor_mul,
        },
        Rule {
            name: "factor-sub",
            apply: factor_sub,
        },
        Rule {
            name: "factor-across-sum",
            apply: factor_across_sum,
        },
        Rule {
            name: "factor-dot",
            apply: factor_dot,
        },
        Rule {
            name: "factor-linear",
            apply: factor_linear,
        },
        Rule {
            name: "split-sum",
            apply: split_sum,
        },
        Rule {
            name: "scale-out-of-sum",
            apply: scale_out_of_sum,
        },
    ]
}

fn add_operands(eg: &Graph, node: &Node) -> Option<(Id, Id)> {
    binary_operands(eg, node, BinaryOp::Add)
}

fn binary_operands(eg: &Graph, node: &Node, want: BinaryOp) -> Option<(Id, Id)> {
    match op(eg, node)? {
        (Prim::Binary(b), [a, c]) if *b == want => Some((*a, *c)),
        _ => None,
    }
}

fn sum(x: Rhs, y: Rhs) -> Rhs {
    Rhs::Op(Prim::Binary(BinaryOp::Add), vec![x, y])
}

/// One way to write a class as `factor * rest * scale` (`scale` a rank-0 constant, or none).
#[derive(Clone, Copy)]
struct Factoring {
    factor: Id,
    rest: Id,
    scale: Option<f64>,
}

/// The ways to write class `x` as a product: for each product `p * q` in it, `p * q` and
/// `q * p`; where an operand is itself a product with a rank-0 constant (`(a * c) * q`),
/// `a * q * c`: reverse mode scales a cotangent by a constant before multiplying it by a
/// derivative, and the common factor is the cotangent inside; and for a product scaled by a
/// constant (`(a * b) * c`), `a * b * c` and `b * a * c`: forward mode scales the product of
/// a tangent and a derivative (`(t * cos x) * 1.01`), and the common factor is the tangent.
fn factorings(eg: &Graph, x: Id, out: &mut Vec<Factoring>) {
    let is_mul = |p: &Prim| *p == Prim::Binary(BinaryOp::Mul);
    for node in &eg[x].nodes {
        let Some((ab, c)) = constant_factor(eg, node) else {
            continue;
        };
        for (_, m) in ops_in(eg, ab, is_mul) {
            for (i, j) in [(0, 1), (1, 0)] {
                if eg[m[j]].data.fill.is_none() && eg[m[i]].data.fill.is_none() {
                    out.push(Factoring {
                        factor: m[i],
                        rest: m[j],
                        scale: Some(c),
                    });
                }
            }
        }
    }
    for (_, m) in ops_in(eg, x, is_mul) {
        for (i, j) in [(0, 1), (1, 0)] {
            out.push(Factoring {
                factor: m[i],
                rest: m[j],
                scale: None,
            });
            if eg[m[j]].data.fill.is_some() {
                continue;
            }
            if let Some((a, c)) = eg[m[i]].nodes.iter().find_map(|n| constant_factor(eg, n)) {
                out.push(Factoring {
                    factor: a,
                    rest: m[j],
                    scale: Some(c),
                });
            }
        }
    }
}

/// `rest * scale` as an expression.
fn scaled(eg: &Graph, f: &Factoring) -> Rhs {
    match f.scale {
        None => Rhs::Class(f.rest),
        Some(c) => {
            let lit = Rhs::Lit(Literal::new(c, ty(eg, f.rest).dtype));
            Rhs::Op(Prim::Binary(BinaryOp::Mul), vec![Rhs::Class(f.rest), lit])
        }
    }
}

/// `a*b + a*c` with a factor in common (possibly under a constant factor, see
/// `factorings`): `a*(b+c)`, the sum taken where its operands have the same type (so no new
/// broadcast is needed).
fn factor_mul(eg: &Graph, id: Id, node: &Node) -> Option<Rhs> {
    let (x, y) = add_operands(eg, node)?;
    factor_common(eg, id, x, y, BinaryOp::Add)
}

/// `a*b - a*c = a*(b-c)`, as `factor-mul` (the same factorings).
fn factor_sub(eg: &Graph, id: Id, node: &Node) -> Option<Rhs> {
    let (x, y) = binary_operands(eg, node, BinaryOp::Sub)?;
    factor_common(eg, id, x, y, BinaryOp::Sub)
}

/// `x op y` (`op` an addition or subtraction) with a factor common to `x` and `y` taken out.
fn factor_common(eg: &Graph, id: Id, x: Id, y: Id, combine: BinaryOp) -> Option<Rhs> {
    let (mut left, mut right) = (Vec::new(), Vec::new());
    factorings(eg, x, &mut left);
    if left.is_empty() {
        return None;
    }
    factorings(eg, y, &mut right);
    for l in &left {
        for r in &right {
            if eg.find(l.factor) != eg.find(r.factor) {
                continue;
            }
            let (tb, tc) = (ty(eg, l.rest), ty(eg, r.rest));
            if tb != tc || (tb != ty(eg, id) && ty(eg, l.factor) != ty(eg, id)) {
                continue;
            }
            return Some(Rhs::Op(
                Prim::Binary(BinaryOp::Mul),
                vec![
                    Rhs::Class(l.factor),
                    Rhs::Op(Prim::Binary(combine), vec![scaled(eg, l), scaled(eg, r)]),
                ],
            ));
        }
    }
    None
}

/// `(p + q) + r = p + (q + r)` (or `q + (p + r)`) when `q + r` (or `p + r`) factors by
/// `factor-mul`, `factor-dot` or `factor-linear`: the one regrouping of a sum that pays, a
/// cotangent's contributions arriving in an order that separates two with a factor in common
/// (`(pad(a) + pad'(b)) + pad(c)`). It only fires where the factoring applies, so sums are not
/// reassociated freely.
fn factor_across_sum(eg: &Graph, id: Id, node: &Node) -> Option<Rhs> {
    let (x, r) = add_operands(eg, node)?;
    if ty(eg, r) != ty(eg, id) {
        return None;
    }
    let is_add = |p: &Prim| *p == Prim::Binary(BinaryOp::Add);
    for (_, pq) in ops_in(eg, x, is_add) {
        for (keep, with) in [(pq[0], pq[1]), (pq[1], pq[0])] {
            if ty(eg, keep) != ty(eg, id) || ty(eg, with) != ty(eg, id) {
                continue;
            }
            let factored = factor_common(eg, id, with, r, BinaryOp::Add)
                .or_else(|| factor_dot_pair(eg, with, r))
                .or_else(|| factor_linear_pair(eg, with, r));
            if let Some(f) = factored {
                return Some(sum(Rhs::Class(keep), f));
            }
        }
    }
    None
}

/// `dot(a, b) + dot(a, c) = dot(a, b + c)` and `dot(b, a) + dot(c, a) = dot(b + c, a)`, with
/// the same dimension numbers.
fn factor_dot(eg: &Graph, _id: Id, node: &Node) -> Option<Rhs> {
    let (x, y) = add_operands(eg, node)?;
    factor_dot_pair(eg, x, y)
}

fn factor_dot_pair(eg: &Graph, x: Id, y: Id) -> Option<Rhs> {
    let is_dot = |p: &Prim| matches!(p, Prim::DotGeneral(_));
    for (pl, l) in ops_in(eg, x, is_dot) {
        for (pr, r) in ops_in(eg, y, is_dot) {
            if pl != pr {
                continue;
            }
            if eg.find(l[0]) == eg.find(r[0]) && ty(eg, l[1]) == ty(eg, r[1]) {
                let b_plus_c = sum(Rhs::Class(l[1]), Rhs::Class(r[1]));
                return Some(Rhs::Op(pl.clone(), vec![Rhs::Class(l[0]), b_plus_c]));
            }
            if eg.find(l[1]) == eg.find(r[1]) && ty(eg, l[0]) == ty(eg, r[0]) {
                let b_plus_c = sum(Rhs::Class(l[0]), Rhs::Class(r[0]));
                return Some(Rhs::Op(pl.clone(), vec![b_plus_c, Rhs::Class(l[1])]));
            }
        }
    }
    None
}

/// `L(x) + L(y) = L(x + y)` for a structurally linear primitive `L` of one float operand
/// (`pad` counts when both pad with a zero), with the same attributes and operand types; not
/// for `convert_element_type`, which would move the sum to the other precision.
fn factor_linear(eg: &Graph, _id: Id, node: &Node) -> Option<Rhs> {
    let (x, y) = add_operands(eg, node)?;
    factor_linear_pair(eg, x, y)
}

fn factor_linear_pair(eg: &Graph, x: Id, y: Id) -> Option<Rhs> {
    // Not a conversion: the sum would be taken in the other precision.
    let linear_unary = |p: &Prim| {
        let conversion = matches!(p, Prim::ConvertElementType { .. });
        p.linearity() == Linearity::Joint && matches!(p.arity(), Some(1)) && !conversion
            || matches!(p, Prim::Pad { .. })
    };
    for (pl, l) in ops_in(eg, x, linear_unary) {
        for (pr, r) in ops_in(eg, y, linear_unary) {
            if pl != pr || ty(eg, l[0]) != ty(eg, r[0]) || !ty(eg, l[0]).dtype.is_float() {
                continue;
            }
            if matches!(pl, Prim::Pad { .. }) && !(is_zero(eg, l[1]) && is_zero(eg, r[1])) {
                continue;
            }
            let inner = apply(Prim::Binary(BinaryOp::Add), &[l[0], r[0]]);
            let mut args = vec![inner];
            args.extend(l[1..].iter().map(|&c| Rhs::Class(c)));
            return Some(Rhs::Op(pl.clone(), args));
        }
    }
    None
}

/// `reduce_sum(a ± b) = reduce_sum(a) ± reduce_sum(b)` (`factor-linear` read backwards), for
/// operands of the summed type: extraction takes it where a term then loses a per-element
/// step, as a scale that leaves the sum (`scale-out-of-sum`): forward mode's
/// `sum(200 p - 2 q)` is `200 sum(p) - 2 sum(q)`. Rounds differently (two sums).
fn split_sum(eg: &Graph, _id: Id, node: &Node) -> Option<Rhs> {
    let (Prim::ReduceSum { axes }, [x]) = op(eg, node)? else {
        return None;
    };
    if !ty(eg, *x).dtype.is_float() {
        return None;
    }
    let sum = |p: &Prim| matches!(p, Prim::Binary(BinaryOp::Add | BinaryOp::Sub));
    let (p, ab) = ops_in(eg, *x, sum)
        .find(|(_, ab)| ty(eg, ab[0]) == ty(eg, *x) && ty(eg, ab[1]) == ty(eg, *x))?;
    let reduce = |a: Id| apply(Prim::ReduceSum { axes: axes.clone() }, &[a]);
    Some(Rhs::Op(p.clone(), vec![reduce(ab[0]), reduce(ab[1])]))
}

/// `reduce_sum(a * s) = reduce_sum(a) * s` for a rank-0 `s` (either operand): one product
/// in all instead of one per element. Rounds differently unless `s` is a power of two.
fn scale_out_of_sum(eg: &Graph, _id: Id, node: &Node) -> Option<Rhs> {
    let (Prim::ReduceSum { axes }, [x]) = op(eg, node)? else {
        return None;
    };
    let is_mul = |p: &Prim| *p == Prim::Binary(BinaryOp::Mul);
    let (a, s) = ops_in(eg, *x, is_mul).find_map(|(_, m)| {
        let scalar = |c: Id| ty(eg, c).rank() == 0;
        match (scalar(m[0]), scalar(m[1])) {
            (false, true) if ty(eg, m[0]) == ty(eg, *x) => Some((m[0], m[1])),
            (true, false) if ty(eg, m[1]) == ty(eg, *x) => Some((m[1], m[0])),
            _ => None,
        }
    })?;
    if !ty(eg, a).dtype.is_float() || ty(eg, a).rank() == 0 {
        return None;
    }
    Some(Rhs::Op(
        Prim::Binary(BinaryOp::Mul),
        vec![
            apply(Prim::ReduceSum { axes: axes.clone() }, &[a]),
            class(s),
        ],
    ))
}

#[cfg(test)]
mod tests {
    use crate::simplify::rules::testing::{simplified, simplified_text};

    #[test]
    fn factor_mul() {
        assert_eq!(
            simplified("a = mul x s; b = mul y s; c = add a b; return c"),
            "v0: f32[3] = add x y; v1: f32[3] = mul s v0; return v1"
        );
    }
    #[test]
    fn factor_under_a_constant() {
        assert_eq!(
            simplified("a = mul x 0.5; b = mul a y; c = mul x x; d = add b c; return d"),
            "v0: f32[3] = mul y 0.5:f32; v1: f32[3] = add v0 x; v2: f32[3] = mul x v1; return v2"
        );
    }
    #[test]
    fn factor_sub() {
        assert_eq!(
            simplified("a = mul s x; b = mul s y; c = sub a b; return c"),
            "v0: f32[3] = sub x y; v1: f32[3] = mul s v0; return v1"
        );
    }
    #[test]
    fn factor_a_scaled_product() {
        assert_eq!(
            simplified("a = mul x y; b = mul a 3.0; c = mul x x; d = sub b c; return d"),
            "v0: f32[3] = mul y 3.0:f32; v1: f32[3] = sub v0 x; v2: f32[3] = mul x v1; return v2"
        );
    }
    #[test]
    fn factor_across_sum() {
        assert_eq!(
            simplified("a = mul x s; b = mul y s; c = add a x; d = add c b; return d"),
            "v0: f32[3] = add x y; v1: f32[3] = mul s v0; v2: f32[3] = add x v1; return v2"
        );
    }
    #[test]
    fn factor_dot() {
        assert_eq!(
            simplified("a = dot_general[contract=((),())] s x; b = dot_general[contract=((),())] s y; c = add a b; return c"),
            "v0: f32[3] = add x y; v1: f32[3] = dot_general[contract=((),()), batch=((),())] s v0; return v1"
        );
    }
    #[test]
    fn factor_pad() {
        assert_eq!(
            simplified("a = pad[low=(1), high=(0)] x 0.0; b = pad[low=(1), high=(0)] y 0.0; c = add a b; d = slice[start=(0), limit=(3)] c; return d"),
            "v0: f32[3] = add x y; v1: f32[4] = pad[low=(1), high=(0), interior=(0)] v0 0.0:f32; v2: f32[3] = slice[start=(0), limit=(3)] v1; return v2"
        );
    }
    #[test]
    fn conversions_do_not_factor() {
        assert_eq!(
            simplified("a = convert_element_type[dtype=f64] x; b = convert_element_type[dtype=f64] y; c = add a b; d = convert_element_type[dtype=f32] c; return d"),
            "v0: f64[3] = convert_element_type[dtype=f64] x; v1: f64[3] = convert_element_type[dtype=f64] y; v2: f64[3] = add v0 v1; v3: f32[3] = convert_element_type[dtype=f32] v2; return v3"
        );
    }
    #[test]
    fn split_sum_where_a_scale_leaves_it() {
        // Forward mode's `sum(3 p - q)`: a product less per element.
        let text = "func f(x: f32[3], y: f32[3]) -> f32[] {\n  a: f32[3] = mul x 3.0\n  b: f32[3] = sub a y\n  c: f32[] = reduce_sum[axes=(0)] b\n  return c\n}\n";
        assert_eq!(
            simplified_text(text),
            "func f(x: f32[3], y: f32[3]) -> f32[] {\n  v0: f32[] = reduce_sum[axes=(0)] x\n  v1: f32[] = mul v0 3.0:f32\n  v2: f32[] = reduce_sum[axes=(0)] y\n  v3: f32[] = sub v1 v2\n  return v3\n}\n"
        );
    }
    #[test]
    fn sums_without_a_scale_stay_whole() {
        let text = "func f(x: f32[3], y: f32[3]) -> f32[] {\n  b: f32[3] = sub x y\n  c: f32[] = reduce_sum[axes=(0)] b\n  return c\n}\n";
        assert_eq!(
            simplified_text(text),
            "func f(x: f32[3], y: f32[3]) -> f32[] {\n  v0: f32[3] = sub x y\n  v1: f32[] = reduce_sum[axes=(0)] v0\n  return v1\n}\n"
        );
    }
    #[test]
    fn factor_reduce_sum() {
        assert_eq!(
            simplified("a = broadcast_in_dim[shape=(2,3), dims=(1)] x; b = broadcast_in_dim[shape=(2,3), dims=(1)] y; c = reduce_sum[axes=(0)] a; d = reduce_sum[axes=(0)] b; e = add c d; return e"),
            "v0: f32[3] = add x y; v1: f32[2,3] = broadcast_in_dim[shape=(2,3), dims=(1)] v0; v2: f32[3] = reduce_sum[axes=(0)] v1; return v2"
        );
    }
}
