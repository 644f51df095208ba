//! Identities with zeros and ones, negations, and selects of one value.
//!
//! NaN/Inf policy: `x + 0`, `x - 0`, `x * 1`, `x / 1` are `x` for every x (up to the sign of
//! a zero: `-0.0 + 0.0` is `+0.0`); `x * 0` is *not* rewritten to 0 for a user's zero (inf and
//! NaN times 0 are NaN) but is for a structural zero, which the analysis does (`lang.rs`).

use egg::Id;
use smallvec::SmallVec;
use traceform_ir::{BinaryOp, Literal, Prim, UnaryOp};

use super::{apply, class, is_fill, is_zero, op, ops_in, ty, Rhs, Rule};
use crate::simplify::lang::{Graph, Node};

pub fn rules() -> Vec<Rule> {
    vec![
        Rule {
            name: "add-zero",
            apply: add_zero,
        },
        Rule {
            name: "sub-zero",
            apply: sub_zero,
        },
        Rule {
            name: "zero-sub",
            apply: zero_sub,
        },
        Rule {
            name: "mul-one",
            apply: mul_one,
        },
        Rule {
            name: "mul-minus-one",
            apply: mul_minus_one,
        },
        Rule {
            name: "div-one",
            apply: div_one,
        },
        Rule {
            name: "pow-one",
            apply: pow_one,
        },
        Rule {
            name: "neg-neg",
            apply: neg_neg,
        },
        Rule {
            name: "neg-sub",
            apply: neg_sub,
        },
        Rule {
            name: "add-neg",
            apply: add_neg,
        },
        Rule {
            name: "sub-neg",
            apply: sub_neg,
        },
        Rule {
            name: "mul-neg-neg",
            apply: mul_neg_neg,
        },
        Rule {
            name: "neg-out-of-product",
            apply: neg_out_of_product,
        },
        Rule {
            name: "select-same",
            apply: select_same,
        },
        Rule {
            name: "neg-into-constant",
            apply: neg_into_constant,
        },
        Rule {
            name: "neg-into-scaled-factor",
            apply: neg_into_scaled_factor,
        },
        Rule {
            name: "constant-factors",
            apply: constant_factors,
        },
        Rule {
            name: "power-of-two-out-of-product",
            apply: power_of_two_out_of_product,
        },
        Rule {
            name: "sub-negative-scaled",
            apply: sub_negative_scaled,
        },
        Rule {
            name: "constant-into-shared-product",
            apply: constant_into_shared_product,
        },
        Rule {
            name: "scale-into-shared-difference",
            apply: scale_into_shared_difference,
        },
        Rule {
            name: "cancel-constant-term",
            apply: cancel_constant_term,
        },
        Rule {
            name: "add-self",
            apply: add_self,
        },
    ]
}

/// `(op, [a, b])` when `node` is the binary primitive `op`.
fn binary(eg: &Graph, node: &Node, want: BinaryOp) -> Option<(Id, Id)> {
    match op(eg, node)? {
        (Prim::Binary(b), [a, c]) if *b == want => Some((*a, *c)),
        _ => None,
    }
}

/// `x` when class `x` has the matched class's type (a rank-0 operand of a bigger result
/// cannot stand for it).
fn same_type(eg: &Graph, id: Id, x: Id) -> Option<Rhs> {
    (ty(eg, x) == ty(eg, id)).then(|| class(x))
}

fn neg_of(eg: &Graph, id: Id) -> Option<Id> {
    ops_in(eg, id, |p| *p == Prim::Unary(UnaryOp::Neg))
        .map(|(_, a)| a[0])
        .next()
}

/// `x + 0 = 0 + x = x`.
fn add_zero(eg: &Graph, id: Id, node: &Node) -> Option<Rhs> {
    let (a, b) = binary(eg, node, BinaryOp::Add)?;
    if is_zero(eg, b) {
        same_type(eg, id, a)
    } else if is_zero(eg, a) {
        same_type(eg, id, b)
    } else {
        None
    }
}

/// `x - 0 = x`.
fn sub_zero(eg: &Graph, id: Id, node: &Node) -> Option<Rhs> {
    let (a, b) = binary(eg, node, BinaryOp::Sub)?;
    is_zero(eg, b).then(|| same_type(eg, id, a)).flatten()
}

/// `0 - x = -x`.
fn zero_sub(eg: &Graph, id: Id, node: &Node) -> Option<Rhs> {
    let (a, b) = binary(eg, node, BinaryOp::Sub)?;
    (is_zero(eg, a) && ty(eg, b) == ty(eg, id)).then(|| apply(Prim::Unary(UnaryOp::Neg), &[b]))
}

/// `x * 1 = 1 * x = x`.
fn mul_one(eg: &Graph, id: Id, node: &Node) -> Option<Rhs> {
    let (a, b) = binary(eg, node, BinaryOp::Mul)?;
    if is_fill(eg, b, 1.0) {
        same_type(eg, id, a)
    } else if is_fill(eg, a, 1.0) {
        same_type(eg, id, b)
    } else {
        None
    }
}

/// `x * -1 = -1 * x = -x`.
fn mul_minus_one(eg: &Graph, id: Id, node: &Node) -> Option<Rhs> {
    let (a, b) = binary(eg, node, BinaryOp::Mul)?;
    let neg = |x: Id| (ty(eg, x) == ty(eg, id)).then(|| apply(Prim::Unary(UnaryOp::Neg), &[x]));
    if is_fill(eg, b, -1.0) {
        neg(a)
    } else if is_fill(eg, a, -1.0) {
        neg(b)
    } else {
        None
    }
}

/// `x / 1 = x`.
fn div_one(eg: &Graph, id: Id, node: &Node) -> Option<Rhs> {
    let (a, b) = binary(eg, node, BinaryOp::Div)?;
    is_fill(eg, b, 1.0).then(|| same_type(eg, id, a)).flatten()
}

/// `integer_pow[y=1] x = x`.
fn pow_one(eg: &Graph, _id: Id, node: &Node) -> Option<Rhs> {
    match op(eg, node)? {
        (Prim::IntegerPow { y: 1 }, [x]) => Some(class(*x)),
        _ => None,
    }
}

/// `-(-x) = x`.
fn neg_neg(eg: &Graph, _id: Id, node: &Node) -> Option<Rhs> {
    match op(eg, node)? {
        (Prim::Unary(UnaryOp::Neg), [x]) => neg_of(eg, *x).map(class),
        _ => None,
    }
}

/// `-(a - b) = b - a`.
fn neg_sub(eg: &Graph, _id: Id, node: &Node) -> Option<Rhs> {
    let (Prim::Unary(UnaryOp::Neg), [x]) = op(eg, node)? else {
        return None;
    };
    let (_, ab) = ops_in(eg, *x, |p| *p == Prim::Binary(BinaryOp::Sub)).next()?;
    Some(apply(Prim::Binary(BinaryOp::Sub), &[ab[1], ab[0]]))
}

/// `a + (-b) = a - b`; `(-a) + b = b - a`.
fn add_neg(eg: &Graph, _id: Id, node: &Node) -> Option<Rhs> {
    let (a, b) = binary(eg, node, BinaryOp::Add)?;
    let sub = |x: Id, y: Id| apply(Prim::Binary(BinaryOp::Sub), &[x, y]);
    if let Some(nb) = neg_of(eg, b) {
        Some(sub(a, nb))
    } else {
        neg_of(eg, a).map(|na| sub(b, na))
    }
}

/// `a - (-b) = a + b`.
fn sub_neg(eg: &Graph, _id: Id, node: &Node) -> Option<Rhs> {
    let (a, b) = binary(eg, node, BinaryOp::Sub)?;
    neg_of(eg, b).map(|nb| apply(Prim::Binary(BinaryOp::Add), &[a, nb]))
}

/// `(-a) * (-b) = a * b`.
fn mul_neg_neg(eg: &Graph, _id: Id, node: &Node) -> Option<Rhs> {
    let (a, b) = binary(eg, node, BinaryOp::Mul)?;
    Some(apply(
        Prim::Binary(BinaryOp::Mul),
        &[neg_of(eg, a)?, neg_of(eg, b)?],
    ))
}

/// `(-a) * b = a * (-b) = -(a * b)`, `(-a) / b = -(a / b)`: negations move out of products,
/// where they meet and cancel (`neg-neg`) or become a subtraction (`add-neg`).
fn neg_out_of_product(eg: &Graph, _id: Id, node: &Node) -> Option<Rhs> {
    let (prim, args) = op(eg, node)?;
    let [a, b] = args else { return None };
    let negated = match prim {
        Prim::Binary(BinaryOp::Mul) => match (neg_of(eg, *a), neg_of(eg, *b)) {
            (Some(na), None) => apply(prim.clone(), &[na, *b]),
            (None, Some(nb)) => apply(prim.clone(), &[*a, nb]),
            _ => return None,
        },
        // Not for i32: integer division by 0 is -1 and -i32::MIN wraps.
        Prim::Binary(BinaryOp::Div) if ty(eg, *a).dtype.is_float() => {
            apply(prim.clone(), &[neg_of(eg, *a)?, *b])
        }
        _ => return None,
    };
    Some(Rhs::Op(Prim::Unary(UnaryOp::Neg), vec![negated]))
}

/// The rank-0 constant factor of a product node: `(other operand, constant)`.
pub fn constant_factor(eg: &Graph, node: &Node) -> Option<(Id, f64)> {
    let (a, b) = binary(eg, node, BinaryOp::Mul)?;
    let constant = |x: Id| ty(eg, x).rank() == 0 && ty(eg, x).dtype.is_float();
    match (eg[a].data.fill, eg[b].data.fill) {
        (_, Some(c)) if constant(b) => Some((a, c)),
        (Some(c), _) if constant(a) => Some((b, c)),
        _ => None,
    }
}

/// `-(a * c) = a * (-c)` for a rank-0 constant `c` (exact).
fn neg_into_constant(eg: &Graph, _id: Id, node: &Node) -> Option<Rhs> {
    let (Prim::Unary(UnaryOp::Neg), [x]) = op(eg, node)? else {
        return None;
    };
    eg[*x].nodes.iter().find_map(|n| {
        let (a, c) = constant_factor(eg, n)?;
        let lit = Literal::new(-c, ty(eg, *x).dtype);
        Some(Rhs::Op(
            Prim::Binary(BinaryOp::Mul),
            vec![class(a), Rhs::Lit(lit)],
        ))
    })
}

/// `-(a * (b * c)) = a * (b * (-c))` for a rank-0 constant `c` (either factor; exact): the
/// negation goes into a constant one product further in, where it costs nothing. Only when
/// `b * c` has no other use: a shared scaled value negated would be computed twice.
fn neg_into_scaled_factor(eg: &Graph, _id: Id, node: &Node) -> Option<Rhs> {
    let (Prim::Unary(UnaryOp::Neg), [x]) = op(eg, node)? else {
        return None;
    };
    eg[*x].nodes.iter().find_map(|n| {
        let (a, y) = binary(eg, n, BinaryOp::Mul)?;
        let scaled = |other: Id, y: Id| {
            if eg[y].parents().len() != 1 {
                return None;
            }
            eg[y].nodes.iter().find_map(|m| {
                let (b, c) = constant_factor(eg, m)?;
                let lit = Literal::new(-c, ty(eg, y).dtype);
                Some(Rhs::Op(
                    Prim::Binary(BinaryOp::Mul),
                    vec![
                        class(other),
                        Rhs::Op(Prim::Binary(BinaryOp::Mul), vec![class(b), Rhs::Lit(lit)]),
                    ],
                ))
            })
        };
        scaled(a, y).or_else(|| scaled(y, a))
    })
}

/// `(a * c1) * c2 = a * (c1 c2)` for rank-0 constants (one rounding fewer: values agree to
/// float tolerance, not bitwise).
fn constant_factors(eg: &Graph, id: Id, node: &Node) -> Option<Rhs> {
    let (x, c2) = constant_factor(eg, node)?;
    eg[x].nodes.iter().find_map(|n| {
        let (a, c1) = constant_factor(eg, n)?;
        let dtype = ty(eg, id).dtype;
        let product = match dtype {
            traceform_ir::DType::F32 => f64::from(c1 as f32 * c2 as f32),
            _ => c1 * c2,
        };
        // Only where the folded constant is an ordinary number: `(x * 1e30) * 1e30` is not
        // `x * inf`, nor `(x * 1e-30) * 1e-30` `x * 0`.
        let ordinary = match dtype {
            traceform_ir::DType::F32 => (product as f32).is_normal(),
            _ => product.is_normal(),
        };
        if !ordinary {
            return None;
        }
        Some(Rhs::Op(
            Prim::Binary(BinaryOp::Mul),
            vec![class(a), Rhs::Lit(Literal::new(product, dtype))],
        ))
    })
}

/// Whether `k` is `±2^n`: scaling by it rounds nothing (short of overflow and underflow).
fn power_of_two(k: f64) -> bool {
    k != 0.0 && k.is_finite() && k.abs().log2().fract() == 0.0
}

/// `a * (b * k) = (a * b) * k` for a rank-0 constant `k` that is a power of two (exact),
/// where the product is summed or scaled by a constant: the scale moves outwards, where it
/// meets the other constant (`constant-factors`) or leaves the sum (`scale-out-of-sum`):
/// forward mode's `sum(t * (x * 2))` is `sum(t * x) * 2`. (Elsewhere the two forms cost the
/// same, and the rule would only give extraction a choice to make.)
fn power_of_two_out_of_product(eg: &Graph, id: Id, node: &Node) -> Option<Rhs> {
    let (x, y) = binary(eg, node, BinaryOp::Mul)?;
    let full = |c: Id| eg[c].data.fill.is_none() || ty(eg, c).rank() > 0;
    if !full(x) || !full(y) {
        return None;
    }
    let me = eg.find(id);
    let summed_or_scaled = eg[me].parents().any(|p| {
        eg[p].nodes.iter().any(|n| match op(eg, n) {
            Some((Prim::ReduceSum { .. }, [c])) => eg.find(*c) == me,
            _ => constant_factor(eg, n).is_some_and(|(c, _)| eg.find(c) == me),
        })
    });
    if !summed_or_scaled {
        return None;
    }
    for (a, by) in [(x, y), (y, x)] {
        let found = eg[by].nodes.iter().find_map(|n| {
            let (b, k) = constant_factor(eg, n)?;
            (power_of_two(k) && k.abs() != 1.0 && ty(eg, b) == ty(eg, by)).then_some((b, k))
        });
        if let Some((b, k)) = found {
            let lit = Literal::new(k, ty(eg, by).dtype);
            let ab = apply(Prim::Binary(BinaryOp::Mul), &[a, b]);
            return Some(Rhs::Op(
                Prim::Binary(BinaryOp::Mul),
                vec![ab, Rhs::Lit(lit)],
            ));
        }
    }
    None
}

/// `a + b*c = a - b*(-c)` for a negative rank-0 constant `c` (either operand order; exact):
/// a sum of terms with negative weights is written as a subtraction, as forward mode writes
/// it (`sub`'s tangent is the difference of the tangents), so that reverse mode's sum of
/// scaled contributions and forward mode's difference are one class.
fn sub_negative_scaled(eg: &Graph, _id: Id, node: &Node) -> Option<Rhs> {
    let (x, y) = binary(eg, node, BinaryOp::Add)?;
    for (a, by) in [(x, y), (y, x)] {
        let found = eg[by].nodes.iter().find_map(|n| {
            let (b, c) = constant_factor(eg, n)?;
            (c < 0.0).then_some((b, c))
        });
        if let Some((b, c)) = found {
            let lit = Literal::new(-c, ty(eg, by).dtype);
            let scaled = Rhs::Op(Prim::Binary(BinaryOp::Mul), vec![class(b), Rhs::Lit(lit)]);
            return Some(Rhs::Op(Prim::Binary(BinaryOp::Sub), vec![class(a), scaled]));
        }
    }
    None
}

/// `(a * b) * k = a * (b * k)` where `b * k` (for a rank-0 constant `k`) is already in the
/// e-graph: the product reuses a value the program computes anyway (forward mode's
/// `(t * sin x) * 1.01` and the primal's `sin x * 1.01`). Extraction (`choose_shared`) takes
/// it when `b * k` is computed for another user.
fn constant_into_shared_product(eg: &Graph, id: Id, node: &Node) -> Option<Rhs> {
    let (ab, _) = constant_factor(eg, node)?;
    let is_mul = |p: &Prim| *p == Prim::Binary(BinaryOp::Mul);
    for (_, m) in ops_in(eg, ab, is_mul) {
        for (a, b) in [(m[0], m[1]), (m[1], m[0])] {
            if eg[a].data.fill.is_some() || ty(eg, b) != ty(eg, ab) {
                continue;
            }
            let Some(shared) = scaled_class(eg, node, b) else {
                continue;
            };
            if shared == eg.find(id) || shared == eg.find(ab) {
                continue;
            }
            let args = if a == m[0] { [a, shared] } else { [shared, a] };
            return Some(apply(Prim::Binary(BinaryOp::Mul), &args));
        }
    }
    None
}

/// The class of `b * k` (or `k * b`), if the e-graph has it, where `node` is a product with
/// the rank-0 constant `k` (found by `constant_factor`).
fn scaled_class(eg: &Graph, node: &Node, b: Id) -> Option<Id> {
    let Node::Op(p, children) = node else {
        return None;
    };
    let [x, y] = children.as_slice() else {
        return None;
    };
    let constant = |c: Id| eg[c].data.fill.is_some() && ty(eg, c).rank() == 0;
    let k = if constant(*y) { *y } else { *x };
    [[b, k], [k, b]]
        .into_iter()
        .find_map(|pair| eg.lookup(Node::Op(*p, SmallVec::from_slice(&pair))))
}

/// `(c ± y) * k = c*k ± y*k` and `(a * (c ± y)) * k = a * (c*k ± y*k)` for rank-0 constants
/// `c` and `k`, `k` a power of two (so both sides round alike), where `y * k` is already in
/// the e-graph: `tanh`'s derivative scaled, `0.5 (1 + y)(1 - y)`, is `(1 + y)(0.5 - h)` with
/// the primal's `h = 0.5 y`. Extraction takes it when `h` is computed anyway.
fn scale_into_shared_difference(eg: &Graph, id: Id, node: &Node) -> Option<Rhs> {
    let (ab, k) = constant_factor(eg, node)?;
    let dtype = ty(eg, id).dtype;
    if !power_of_two(k) {
        return None;
    }
    // `c*k ± y*k` for a class `b` holding `c ± y`, when `y*k` is in the e-graph.
    let scaled = |b: Id| -> Option<Rhs> {
        let sum = |p: &Prim| matches!(p, Prim::Binary(BinaryOp::Add | BinaryOp::Sub));
        for (p, cy) in ops_in(eg, b, sum) {
            let (cl, y) = (cy[0], eg.find(cy[1]));
            let Some(c) = eg[cl].data.fill else { continue };
            if ty(eg, cl).rank() != 0 || ty(eg, y) != ty(eg, b) || !c.is_finite() {
                continue;
            }
            if let Some(hy) = scaled_class(eg, node, y) {
                let ck = Rhs::Lit(Literal::new(c * k, dtype));
                return Some(Rhs::Op(p.clone(), vec![ck, class(hy)]));
            }
        }
        None
    };
    if let Some(r) = scaled(ab) {
        return Some(r);
    }
    let is_mul = |p: &Prim| *p == Prim::Binary(BinaryOp::Mul);
    for (_, m) in ops_in(eg, ab, is_mul) {
        for (i, (a, b)) in [(m[0], m[1]), (m[1], m[0])].into_iter().enumerate() {
            if let Some(diff) = scaled(b) {
                let args = if i == 0 {
                    vec![class(a), diff]
                } else {
                    vec![diff, class(a)]
                };
                return Some(Rhs::Op(Prim::Binary(BinaryOp::Mul), args));
            }
        }
    }
    None
}

/// A sum with a finite rank-0 constant `a` as one term, as `(a, sign of the other term, the
/// other term)`: `a + b`, `b + a`, `a - b`.
fn constant_term(eg: &Graph, node: &Node) -> Option<(f64, bool, Id)> {
    let constant = |x: Id| {
        let f = eg[x].data.fill?;
        (ty(eg, x).rank() == 0 && ty(eg, x).dtype.is_float() && f.is_finite()).then_some(f)
    };
    if let Some((p, q)) = binary(eg, node, BinaryOp::Add) {
        if let Some(a) = constant(p) {
            return Some((a, true, q));
        }
        return constant(q).map(|a| (a, true, p));
    }
    let (p, q) = binary(eg, node, BinaryOp::Sub)?;
    constant(p).map(|a| (a, false, q))
}

/// `(a ± b) - (a ± c)` for a finite rank-0 constant `a`: `b - c`, `b + c`, `-(b + c)` or
/// `c - b` (the constant cancels; rounds differently, and more accurately:
/// `(1 - y) - (1 + y)` loses `y`'s low bits where `-(y + y)` does not).
fn cancel_constant_term(eg: &Graph, id: Id, node: &Node) -> Option<Rhs> {
    let (x, y) = binary(eg, node, BinaryOp::Sub)?;
    let full = |v: Id| ty(eg, v) == ty(eg, id);
    for nx in &eg[x].nodes {
        let Some((a1, plus_b, b)) = constant_term(eg, nx) else {
            continue;
        };
        for ny in &eg[y].nodes {
            let Some((a2, plus_c, c)) = constant_term(eg, ny) else {
                continue;
            };
            if a1.to_bits() != a2.to_bits() || !full(b) || !full(c) {
                continue;
            }
            let add = |p: Id, q: Id| apply(Prim::Binary(BinaryOp::Add), &[p, q]);
            let sub = |p: Id, q: Id| apply(Prim::Binary(BinaryOp::Sub), &[p, q]);
            return Some(match (plus_b, plus_c) {
                (true, true) => sub(b, c),
                (true, false) => add(b, c),
                (false, true) => Rhs::Op(Prim::Unary(UnaryOp::Neg), vec![add(b, c)]),
                (false, false) => sub(c, b),
            });
        }
    }
    None
}

/// `x + x = x * 2` (exact), so the doubling can join other constant factors.
fn add_self(eg: &Graph, _id: Id, node: &Node) -> Option<Rhs> {
    let (a, b) = binary(eg, node, BinaryOp::Add)?;
    let dtype = ty(eg, a).dtype;
    (eg.find(a) == eg.find(b) && dtype.is_float()).then(|| {
        Rhs::Op(
            Prim::Binary(BinaryOp::Mul),
            vec![class(a), Rhs::Lit(Literal::new(2.0, dtype))],
        )
    })
}

/// `select_n p a a = a`.
fn select_same(eg: &Graph, _id: Id, node: &Node) -> Option<Rhs> {
    match op(eg, node)? {
        (Prim::SelectN, [_, a, b]) if eg.find(*a) == eg.find(*b) => Some(class(*a)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::simplify::rules::testing::{simplified, simplified_text};

    #[test]
    fn add_zero() {
        assert_eq!(simplified("a = add x 0.0; return a"), "return x");
    }
    #[test]
    fn add_zero_keeps_a_broadcast_result() {
        assert_eq!(
            simplified("a = add s 0.0; b = mul a x; return b"),
            "v0: f32[3] = mul s x; return v0"
        );
    }
    #[test]
    fn sub_zero() {
        assert_eq!(simplified("a = sub x 0.0; return a"), "return x");
    }
    #[test]
    fn zero_sub() {
        assert_eq!(
            simplified("a = sub 0.0 x; return a"),
            "v0: f32[3] = neg x; return v0"
        );
    }
    #[test]
    fn mul_one() {
        assert_eq!(simplified("a = mul 1.0 x; return a"), "return x");
    }
    #[test]
    fn mul_minus_one() {
        assert_eq!(
            simplified("a = mul x -1.0; return a"),
            "v0: f32[3] = neg x; return v0"
        );
    }
    #[test]
    fn user_zeros_are_not_absorbing() {
        assert_eq!(
            simplified("a = mul x 0.0; return a"),
            "v0: f32[3] = mul x 0.0:f32; return v0"
        );
    }
    #[test]
    fn structural_zeros_are_absorbing() {
        assert_eq!(
            simplified("z = zeros[dtype=f32, shape=(3)]; a = mul x z; b = add a y; return b"),
            "return y"
        );
    }
    #[test]
    fn div_one() {
        assert_eq!(simplified("a = div x 1.0; return a"), "return x");
    }
    #[test]
    fn pow_one() {
        assert_eq!(simplified("a = integer_pow[y=1] x; return a"), "return x");
    }
    #[test]
    fn neg_neg() {
        assert_eq!(simplified("a = neg x; b = neg a; return b"), "return x");
    }
    #[test]
    fn neg_sub() {
        assert_eq!(
            simplified("a = sub x y; b = neg a; return b"),
            "v0: f32[3] = sub y x; return v0"
        );
    }
    #[test]
    fn add_neg() {
        assert_eq!(
            simplified("a = neg y; b = add x a; return b"),
            "v0: f32[3] = sub x y; return v0"
        );
    }
    #[test]
    fn sub_neg() {
        assert_eq!(
            simplified("a = neg y; b = sub x a; return b"),
            "v0: f32[3] = add x y; return v0"
        );
    }
    #[test]
    fn mul_neg_neg() {
        assert_eq!(
            simplified("a = neg x; b = neg y; c = mul a b; return c"),
            "v0: f32[3] = mul x y; return v0"
        );
    }
    #[test]
    fn neg_out_of_product() {
        assert_eq!(
            simplified("a = neg x; b = mul a y; c = neg b; return c"),
            "v0: f32[3] = mul x y; return v0"
        );
    }
    #[test]
    fn constants_fold_into_broadcast_literals() {
        assert_eq!(
            simplified("b = broadcast_in_dim[shape=(3), dims=()] 1.0; c = mul b 100.0; a = mul x c; return a"),
            "v0: f32[3] = mul x 100.0:f32; return v0"
        );
    }
    #[test]
    fn neg_into_constant() {
        assert_eq!(
            simplified("a = mul x 2.0; b = neg a; return b"),
            "v0: f32[3] = mul x -2.0:f32; return v0"
        );
    }
    #[test]
    fn neg_into_scaled_factor() {
        assert_eq!(
            simplified("a = mul y 2.0; b = mul x a; c = neg b; return c"),
            "v0: f32[3] = mul y -2.0:f32; v1: f32[3] = mul x v0; return v1"
        );
    }
    #[test]
    fn constant_factors() {
        assert_eq!(
            simplified("a = mul x 2.0; b = mul 0.5 a; c = mul b y; return c"),
            "v0: f32[3] = mul x y; return v0"
        );
    }
    #[test]
    fn power_of_two_out_of_a_summed_product() {
        let text = "func f(x: f32[3], y: f32[3]) -> f32[] {\n  a: f32[3] = mul x 2.0\n  b: f32[3] = mul y a\n  c: f32[] = reduce_sum[axes=(0)] b\n  return c\n}\n";
        assert_eq!(
            simplified_text(text),
            "func f(x: f32[3], y: f32[3]) -> f32[] {\n  v0: f32[3] = mul y x\n  v1: f32[] = reduce_sum[axes=(0)] v0\n  v2: f32[] = mul v1 2.0:f32\n  return v2\n}\n"
        );
    }
    #[test]
    fn sub_negative_scaled() {
        assert_eq!(
            simplified("a = mul y -2.0; b = add a x; return b"),
            "v0: f32[3] = mul y 2.0:f32; v1: f32[3] = sub x v0; return v1"
        );
    }
    #[test]
    fn constant_into_shared_product() {
        assert_eq!(
            super::super::testing::simplified_text("func f(x: f32[3], y: f32[3]) -> (f32[3], f32[3]) {\n  a = mul x 3.0\n  b = mul y x\n  c = mul b 3.0\n  return a, c\n}\n"),
            "func f(x: f32[3], y: f32[3]) -> (f32[3], f32[3]) {\n  v0: f32[3] = mul x 3.0:f32\n  v1: f32[3] = mul y v0\n  return v0, v1\n}\n"
        );
    }
    #[test]
    fn scale_into_shared_difference() {
        assert_eq!(
            super::super::testing::simplified_text("func f(x: f32[3], y: f32[3]) -> (f32[3], f32[3]) {\n  h = mul x 0.5\n  a = sub 1.0 x\n  b = mul y a\n  c = mul b 0.5\n  return h, c\n}\n"),
            "func f(x: f32[3], y: f32[3]) -> (f32[3], f32[3]) {\n  v0: f32[3] = mul x 0.5:f32\n  v1: f32[3] = sub 0.5:f32 v0\n  v2: f32[3] = mul y v1\n  return v0, v2\n}\n"
        );
    }
    #[test]
    fn cancel_constant_term() {
        assert_eq!(
            simplified("a = sub 1.0 x; b = add 1.0 x; c = sub a b; return c"),
            "v0: f32[3] = mul x -2.0:f32; return v0"
        );
    }
    #[test]
    fn add_self() {
        assert_eq!(
            simplified("a = add x x; b = mul a 0.25; return b"),
            "v0: f32[3] = mul x 0.5:f32; return v0"
        );
    }
    #[test]
    fn integer_zeros_are_values() {
        assert_eq!(
            super::super::testing::simplified_text("func f(x: i32[3], y: i32[3]) -> i32[3] {\n  z = zeros[dtype=i32, shape=(3)]\n  a = add z x\n  b = div z y\n  c = mul a b\n  return c\n}\n"),
            "func f(x: i32[3], y: i32[3]) -> i32[3] {\n  v0: i32[3] = div 0:i32 y\n  v1: i32[3] = mul x v0\n  return v1\n}\n"
        );
    }
    #[test]
    fn integer_negations_stay_inside_quotients() {
        assert_eq!(
            super::super::testing::simplified_text("func f(x: i32[2], y: i32[2]) -> i32[2] {\n  n = neg x\n  d = div n y\n  r = neg d\n  return r\n}\n"),
            "func f(x: i32[2], y: i32[2]) -> i32[2] {\n  v0: i32[2] = neg x\n  v1: i32[2] = div v0 y\n  v2: i32[2] = neg v1\n  return v2\n}\n"
        );
    }
    #[test]
    fn constants_that_would_overflow_do_not_fold() {
        assert_eq!(
            simplified("a = mul x 1e30; b = mul a 1e30; return b"),
            "v0: f32[3] = mul x 1e30:f32; v1: f32[3] = mul v0 1e30:f32; return v1"
        );
    }
    #[test]
    fn select_same() {
        assert_eq!(
            simplified("p = gt x y; a = select_n p x x; return a"),
            "return x"
        );
    }
}
