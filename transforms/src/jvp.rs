//! Forward mode: `jvp` maps `f(x) -> y` to `(x, t) -> (y, y_dot)`.
//!
//! An interpreter over the equations: each equation is copied as the primal, followed by the
//! tangent its rule computes from the operands' tangents, every emitted equation stamped with
//! the location of the equation it came from. Tangents are `Option`s: a symbolic zero
//! (`None`) never becomes IR, so integer values, literals, `stop_gradient` and the
//! piecewise-constant primitives cost nothing; where a zero must become a value it is a
//! `zeros` equation, which the simplifier knows is structural. No tape is kept: the jvp
//! program holds the values of `f` plus one tangent per live value.

use smallvec::SmallVec;
use traceform_ir::{
    eliminate_dead_code, Atom, BinaryOp, Builder, CompareOp, Func, Linearity, Loc, Prim, Select,
    Type, UnaryOp,
};

use crate::util::{add, finish, fit, full, instantiate, lookup, Tan};
use crate::{check_wrt, TransformError};

/// The forward-mode derivative of `func` with respect to the inputs at positions `wrt`.
/// Signature: `(x1..xn, one tangent per input in wrt) -> (y1..ym, one tangent per float output)`.
pub fn jvp(func: &Func, wrt: Option<&[usize]>) -> Result<Func, TransformError> {
    let wrt = check_wrt(func, wrt)?;
    let mut b = Builder::new(format!("jvp_{}", func.name));
    b.reserve(3 * func.eqns.len());
    let mut primal: Vec<Option<Atom>> = vec![None; func.num_vars()];
    let mut tangent: Vec<Tan> = vec![None; func.num_vars()];
    for &p in &func.params {
        primal[p.index()] = Some(Atom::Var(b.param(func.var_type(p))));
    }
    for &i in &wrt {
        let p = func.params[i];
        tangent[p.index()] = Some(Atom::Var(b.param(func.var_type(p))));
    }
    let mut xs: SmallVec<[Atom; 4]> = SmallVec::new();
    let mut ts: SmallVec<[Tan; 4]> = SmallVec::new();
    for eqn in &func.eqns {
        xs.clear();
        ts.clear();
        for a in func.args(eqn) {
            xs.push(lookup(&primal, a));
            ts.push(a.as_var().and_then(|v| tangent[v.index()]));
        }
        let y = Atom::Var(b.copy_eqn(func, eqn, &xs));
        if func.var_type(eqn.out).dtype.is_float() && ts.iter().any(Option::is_some) {
            b.set_loc(eqn.loc);
            tangent[eqn.out.index()] = jvp_rule(&mut b, func.prim(eqn), &xs, &ts, y);
        }
        primal[eqn.out.index()] = Some(y);
    }
    b.set_loc(Loc::Unknown);
    let mut outputs: Vec<Atom> = func.outputs.iter().map(|a| lookup(&primal, a)).collect();
    for a in &func.outputs {
        let ty = func.atom_type(a);
        if ty.dtype.is_float() {
            let t = a.as_var().and_then(|v| tangent[v.index()]);
            outputs.push(instantiate(&mut b, t, ty));
        }
    }
    Ok(eliminate_dead_code(finish(b, &outputs)?))
}

/// The tangent of one equation. `x` are the primal operands, `t` their tangents (at least one
/// is not a symbolic zero), `y` the primal result, which is float.
pub fn jvp_rule(b: &mut Builder, prim: &Prim, x: &[Atom], t: &[Tan], y: Atom) -> Tan {
    let out = b.ty(&y).clone();
    match prim {
        Prim::Unary(op) => unary_rule(b, *op, x[0], t[0]?, y),
        Prim::IntegerPow { y: n } => {
            let t = t[0]?;
            // n x^(n-1); for n = i32::MIN, x^(n-1) is y / x (n - 1 does not fit an i32).
            let power = match n.checked_sub(1) {
                // x^0 = 1: a zero derivative everywhere, at x = 0 too (not 0 * 0^-1 = NaN),
                // as jax.lax's rule.
                Some(-1) => return None,
                Some(0) => return Some(t),
                Some(m) => b.integer_pow(x[0], m),
                None => b.div(y, x[0]),
            };
            let n = b.lit_like(&x[0], f64::from(*n));
            let d = b.mul(power, n);
            Some(b.mul(t, d))
        }
        Prim::StopGradient => None,
        Prim::Binary(BinaryOp::Add | BinaryOp::Sub) => linear_jvp(b, prim, x, t, &out),
        Prim::Binary(op) => {
            let r = binary_rule(b, *op, x, t, y);
            r.map(|r| fit(b, r, &out.shape))
        }
        // Bool and integer results: never reached (the caller only asks for float results).
        Prim::Compare(_) | Prim::And | Prim::Or | Prim::Not => None,
        Prim::Iota { .. } | Prim::Zeros { .. } | Prim::Argmax { .. } | Prim::Argmin { .. } => None,
        Prim::SelectN
        | Prim::ConvertElementType { .. }
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
        | Prim::ReduceWindowSumTranspose { .. } => linear_jvp(b, prim, x, t, &out),
        Prim::ReduceMax { axes } | Prim::ReduceMin { axes } => {
            // Ties share the derivative equally, as jax.lax does.
            let t = t[0]?;
            let x_ty = b.ty(&x[0]).clone();
            let kept: Vec<usize> = (0..x_ty.rank()).filter(|d| !axes.contains(d)).collect();
            let spread = b.broadcast_in_dim(y, &x_ty.shape, &kept);
            let location = b.compare(CompareOp::Eq, x[0], spread);
            let mask = b.convert(location, out.dtype);
            let counts = b.reduce_sum(mask, axes);
            let picked = b.mul(t, mask);
            let total = b.reduce_sum(picked, axes);
            Some(b.div(total, counts))
        }
        // The tangent at the element each window selects; the selection is fixed.
        Prim::ReduceWindowMax(window) | Prim::ReduceWindowMin(window) => {
            let select = match prim {
                Prim::ReduceWindowMax(_) => Select::Max,
                _ => Select::Min,
            };
            let gather = Prim::SelectAndGatherAdd {
                select,
                window: window.clone(),
            };
            Some(b.eqn(gather, &[t[0]?, x[0]]))
        }
        // Linear in operand 1; zero derivative in the selecting operand x.
        Prim::SelectAndGatherAdd { .. } | Prim::SelectAndScatterAdd { .. } => {
            Some(b.eqn(prim.clone(), &[t[0]?, x[1]]))
        }
        // Bilinear: the product rule, with the primitive itself.
        Prim::DotGeneral(_) | Prim::ConvGeneralDilated(_) => {
            let left = t[0].map(|ta| b.eqn(prim.clone(), &[ta, x[1]]));
            let right = t[1].map(|tb| b.eqn(prim.clone(), &[x[0], tb]));
            add(b, left, right)
        }
    }
}

/// The jvp of a structurally linear primitive (see `Prim::linearity`): the primitive itself
/// applied to the tangents, symbolic zeros instantiated only where another operand has a
/// tangent (and not at all for `add`/`sub`, where a missing side is just left out).
fn linear_jvp(b: &mut Builder, prim: &Prim, x: &[Atom], t: &[Tan], out: &Type) -> Tan {
    match (prim, t) {
        (Prim::Binary(BinaryOp::Add), [ta, tb]) => {
            let s = add(b, *ta, *tb)?;
            return Some(fit(b, s, &out.shape));
        }
        (Prim::Binary(BinaryOp::Sub), [ta, None]) => return Some(fit(b, (*ta)?, &out.shape)),
        (Prim::Binary(BinaryOp::Sub), [None, Some(tb)]) => {
            let n = b.neg(*tb);
            return Some(fit(b, n, &out.shape));
        }
        _ => {}
    }
    let first_linear = match prim.linearity() {
        Linearity::Joint => 0,
        Linearity::Cases => 1,
        Linearity::Bilinear | Linearity::FirstOnly | Linearity::Nonlinear => {
            unreachable!("`{}` is not structurally linear", prim.name())
        }
    };
    if t[first_linear..].iter().all(Option::is_none) {
        return None;
    }
    let mut args: SmallVec<[Atom; 4]> = x[..first_linear].iter().copied().collect();
    for (xi, ti) in x[first_linear..].iter().zip(&t[first_linear..]) {
        let ty = b.ty(xi).clone();
        args.push(instantiate(b, *ti, &ty));
    }
    Some(b.eqn(prim.clone(), &args))
}

fn unary_rule(b: &mut Builder, op: UnaryOp, x: Atom, t: Atom, y: Atom) -> Tan {
    let one = b.lit_like(&x, 1.0);
    let d = match op {
        UnaryOp::Neg => return Some(b.neg(t)),
        UnaryOp::Sin => b.unary(UnaryOp::Cos, x),
        UnaryOp::Cos => {
            let s = b.unary(UnaryOp::Sin, x);
            b.neg(s)
        }
        UnaryOp::Tan => {
            let yy = b.mul(y, y);
            b.add(one, yy)
        }
        // (1 + y)(1 - y), not 1 - y^2: no cancellation where |y| is near 1.
        UnaryOp::Tanh => {
            let plus = b.add(one, y);
            let minus = b.sub(one, y);
            b.mul(plus, minus)
        }
        UnaryOp::Exp => y,
        UnaryOp::Log => return Some(b.div(t, x)),
        UnaryOp::Log1p => {
            let denom = b.add(one, x);
            return Some(b.div(t, denom));
        }
        // exp(x), not y + 1: no cancellation where y is near -1.
        UnaryOp::Expm1 => b.unary(UnaryOp::Exp, x),
        // sqrt'(0) = inf, as in jax.lax.
        UnaryOp::Sqrt => {
            let half = b.lit_like(&x, 0.5);
            b.div(half, y)
        }
        UnaryOp::Rsqrt => {
            let ratio = b.div(y, x);
            let minus_half = b.lit_like(&x, -0.5);
            b.mul(minus_half, ratio)
        }
        // abs'(0) = 1, as in jax.lax.
        UnaryOp::Abs => {
            let zero = b.lit_like(&x, 0.0);
            let nonneg = b.compare(CompareOp::Ge, x, zero);
            let minus_t = b.neg(t);
            return Some(b.select(nonneg, minus_t, t));
        }
        // y * logistic(-x), not y (1 - y): no cancellation where y is near 1.
        UnaryOp::Logistic => {
            let minus_x = b.neg(x);
            let other = b.unary(UnaryOp::Logistic, minus_x);
            b.mul(y, other)
        }
        UnaryOp::Erf => {
            let xx = b.mul(x, x);
            let minus = b.neg(xx);
            let e = b.unary(UnaryOp::Exp, minus);
            let two_over_sqrt_pi = b.lit_like(&x, 2.0 / std::f64::consts::PI.sqrt());
            b.mul(e, two_over_sqrt_pi)
        }
        UnaryOp::Sign | UnaryOp::Floor | UnaryOp::Ceil | UnaryOp::Round => return None,
    };
    Some(b.mul(t, d))
}

/// `t * d(x)`, or a symbolic zero.
fn scale(b: &mut Builder, t: Tan, d: impl FnOnce(&mut Builder) -> Atom) -> Tan {
    let t = t?;
    let d = d(b);
    Some(b.mul(t, d))
}

fn binary_rule(b: &mut Builder, op: BinaryOp, x: &[Atom], t: &[Tan], y: Atom) -> Tan {
    let (xa, xb) = (x[0], x[1]);
    let (ta, tb) = (t[0], t[1]);
    match op {
        BinaryOp::Add | BinaryOp::Sub => unreachable!("linear: handled by linear_jvp"),
        // x * x: t x + t x is 2 (t x) (exact), one term for the transpose to hand back.
        BinaryOp::Mul if xa == xb && ta == tb => {
            let l = scale(b, ta, |_| xb)?;
            let two = b.lit_like(&l, 2.0);
            Some(b.mul(l, two))
        }
        BinaryOp::Mul => {
            let l = scale(b, ta, |_| xb);
            let r = scale(b, tb, |_| xa);
            add(b, l, r)
        }
        // d/db is -(a/b)/b = -y/b: no b*b to overflow.
        BinaryOp::Div => {
            let l = ta.map(|ta| b.div(ta, xb));
            let r = scale(b, tb, |b| {
                let q = b.div(y, xb);
                b.neg(q)
            });
            add(b, l, r)
        }
        BinaryOp::Pow => {
            // d/da: b * a^(b-1), taken as 0 where b == 0; d/db: log(a) * y, with log(0) read
            // as 0 (jax.lax's conventions).
            let da = scale(b, ta, |b| {
                let one = b.lit_like(&xa, 1.0);
                let bm1 = b.sub(xb, one);
                let p = b.binary(BinaryOp::Pow, xa, bm1);
                let d = b.mul(xb, p);
                let d_ty = b.ty(&d).clone();
                let zero = b.zeros(&d_ty);
                let z = b.lit_like(&xb, 0.0);
                let b_is_zero = b.compare(CompareOp::Eq, xb, z);
                b.select(b_is_zero, d, zero)
            });
            let db = scale(b, tb, |b| {
                let a_ty = b.ty(&xa).clone();
                let z = b.lit_like(&xa, 0.0);
                let a_is_zero = b.compare(CompareOp::Eq, xa, z);
                let one = full(b, 1.0, &a_ty);
                let zero = b.zeros(&a_ty);
                let ones = b.select(a_is_zero, zero, one);
                let safe_a = b.add(xa, ones);
                let l = b.unary(UnaryOp::Log, safe_a);
                b.mul(l, y)
            });
            add(b, da, db)
        }
        BinaryOp::Max | BinaryOp::Min => {
            // The derivative goes to the larger (smaller) operand; ties split it 0.5 / 0.5.
            let (wins_a, wins_b) = match op {
                BinaryOp::Max => (CompareOp::Gt, CompareOp::Lt),
                _ => (CompareOp::Lt, CompareOp::Gt),
            };
            let dtype = b.dtype(&y);
            let tie = b.compare(CompareOp::Eq, xa, xb);
            let tie = b.convert(tie, dtype);
            let half = b.lit(0.5, dtype);
            let half_tie = b.mul(tie, half);
            let da = scale(b, ta, |b| {
                let w = b.compare(wins_a, xa, xb);
                let w = b.convert(w, dtype);
                b.add(w, half_tie)
            });
            let db = scale(b, tb, |b| {
                let w = b.compare(wins_b, xa, xb);
                let w = b.convert(w, dtype);
                b.add(w, half_tie)
            });
            add(b, da, db)
        }
        BinaryOp::Atan2 => {
            let aa = b.mul(xa, xa);
            let bb = b.mul(xb, xb);
            let denom = b.add(aa, bb);
            let da = scale(b, ta, |b| b.div(xb, denom));
            let db = scale(b, tb, |b| {
                let q = b.div(xa, denom);
                b.neg(q)
            });
            add(b, da, db)
        }
    }
}

#[cfg(test)]
mod tests {
    use expect_test::expect;
    use traceform_ir::{print_func, DType};

    use super::*;

    /// `f(x, t) = (prim x, the tangent jvp_rule emits for it)` over f32[3], as text, or `None`
    /// when the rule returns a symbolic zero.
    fn unary_tangent(prim: &Prim) -> Option<String> {
        let ty = Type::new(DType::F32, [3]);
        let mut b = Builder::new("rule");
        let x = Atom::Var(b.param(&ty));
        let t = Atom::Var(b.param(&ty));
        let y = b.eqn(prim.clone(), &[x]);
        let tangent = jvp_rule(&mut b, prim, &[x], &[Some(t)], y)?;
        Some(print_func(&b.finish(&[y, tangent]).unwrap()))
    }

    #[test]
    fn the_rule_of_sin_multiplies_the_tangent_by_cos() {
        expect![[r#"
            func rule(x0: f32[3], x1: f32[3]) -> (f32[3], f32[3]) {
              v0: f32[3] = sin x0
              v1: f32[3] = cos x0
              v2: f32[3] = mul x1 v1
              return v0, v2
            }
        "#]]
        .assert_eq(&unary_tangent(&Prim::Unary(UnaryOp::Sin)).unwrap());
    }

    #[test]
    fn the_rule_of_abs_selects_the_tangent_where_x_is_at_least_zero() {
        expect![[r#"
            func rule(x0: f32[3], x1: f32[3]) -> (f32[3], f32[3]) {
              v0: f32[3] = abs x0
              v1: bool[3] = ge x0 0.0:f32
              v2: f32[3] = neg x1
              v3: f32[3] = select_n v1 v2 x1
              return v0, v3
            }
        "#]]
        .assert_eq(&unary_tangent(&Prim::Unary(UnaryOp::Abs)).unwrap());
    }

    #[test]
    fn piecewise_constant_primitives_have_symbolic_zero_tangents() {
        for prim in [
            Prim::Unary(UnaryOp::Floor),
            Prim::Unary(UnaryOp::Ceil),
            Prim::Unary(UnaryOp::Round),
            Prim::Unary(UnaryOp::Sign),
            Prim::StopGradient,
            Prim::IntegerPow { y: 0 },
        ] {
            assert_eq!(unary_tangent(&prim), None, "{}", prim.name());
        }
        // And x^1 passes the tangent through without an equation.
        let text = unary_tangent(&Prim::IntegerPow { y: 1 }).unwrap();
        assert!(text.contains("return v0, x1"), "{text}");
    }
}
