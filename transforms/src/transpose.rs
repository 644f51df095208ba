//! Transposition of a linear function: `(nonlinear..., linear...) -> outputs` becomes
//! `(nonlinear..., one cotangent per output) -> one cotangent per linear input`.
//!
//! The same interpreter skeleton, walked backwards: equations that do not depend on the linear
//! inputs are copied first, as they are; then the linear equations are visited last to first,
//! each handing its result's cotangent to its linear operands through the primitive's
//! transpose rule. Only linear primitives have transpose rules: one rule per primitive checks
//! that the equation is linear in the operands that carry the linear inputs (by
//! `Prim::linearity`, the classification the jvp rules share) and emits cotangents for those
//! operands only. A non-linear use of a linear value is an error naming the equation and the
//! user's location it came from. Dead equations are never visited, so nothing dead is emitted.

use smallvec::SmallVec;
use traceform_ir::{
    dot_free_axes, eliminate_dead_code, live_equations, Atom, BinaryOp, Builder, DotDims, Func,
    Linearity, Loc, Prim, Type, UnaryOp,
};

use crate::conv::{conv_transpose_lhs, conv_transpose_rhs};
use crate::linearize::{classify, Kind};
use crate::util::{add, describe_eqn, finish, lookup, unbroadcast, Tan};
use crate::TransformError;

/// What the rule of one equation knows about its operands.
struct Operands {
    /// The operand's atom in the transposed function, where it is known (not linear).
    known: SmallVec<[Option<Atom>; 4]>,
    types: SmallVec<[Type; 4]>,
    /// Carries the linear inputs.
    linear: SmallVec<[bool; 4]>,
    /// Known to be zero (a literal 0, a `zeros`, or a reshaping of one).
    zero: SmallVec<[bool; 4]>,
}

impl Operands {
    fn known(&self, i: usize) -> Atom {
        self.known[i].expect("checked: a non-linear operand")
    }
}

/// Checks that `prim` is linear in the operands marked linear. `Err` says why not.
fn check_linear(prim: &Prim, ops: &Operands) -> Result<(), String> {
    let lin = &ops.linear;
    let linear_or_zero = |i: usize| lin[i] || ops.zero[i];
    let only = |allowed: std::ops::Range<usize>| match (0..lin.len())
        .find(|i| lin[*i] && !allowed.contains(i))
    {
        None => Ok(()),
        Some(i) => Err(format!(
            "`{}` is not linear in operand {}",
            prim.name(),
            i + 1
        )),
    };
    match prim.linearity() {
        Linearity::Joint | Linearity::Cases => {
            let first = usize::from(prim.linearity() == Linearity::Cases);
            only(first..lin.len())?;
            if (first..lin.len()).all(linear_or_zero) {
                Ok(())
            } else {
                Err(format!(
                    "`{}` combines a value that depends on the linear inputs with one that does not and is not zero (the function is affine, not linear)",
                    prim.name()
                ))
            }
        }
        Linearity::Bilinear => {
            if lin[0] && lin[1] {
                Err(format!(
                    "`{}` multiplies two values that both depend on the linear inputs",
                    prim.name()
                ))
            } else {
                Ok(())
            }
        }
        Linearity::FirstOnly => only(0..1),
        Linearity::Nonlinear => only(0..0),
    }
}

/// The cotangents of the linear operands of one equation, given its result's cotangent `ct`,
/// or why the equation is not linear in them. Returns `(operand index, cotangent)` pairs,
/// only for linear operands.
fn transpose_rule(
    b: &mut Builder,
    prim: &Prim,
    ct: Atom,
    ops: &Operands,
) -> Result<SmallVec<[(usize, Atom); 2]>, String> {
    check_linear(prim, ops)?;
    let types = &ops.types;
    let lin = &ops.linear;
    let mut out: SmallVec<[(usize, Atom); 2]> = SmallVec::new();
    let ct_ty = b.ty(&ct).clone();
    match prim {
        Prim::Unary(UnaryOp::Neg) => out.push((0, b.neg(ct))),
        Prim::Binary(BinaryOp::Add | BinaryOp::Sub) => {
            if lin[0] {
                out.push((0, unbroadcast(b, ct, &types[0])));
            }
            if lin[1] {
                let c = match prim {
                    Prim::Binary(BinaryOp::Sub) => b.neg(ct),
                    _ => ct,
                };
                out.push((1, unbroadcast(b, c, &types[1])));
            }
        }
        Prim::Binary(BinaryOp::Mul) => {
            if lin[0] {
                let c = b.mul(ct, ops.known(1));
                out.push((0, unbroadcast(b, c, &types[0])));
            } else {
                let c = b.mul(ops.known(0), ct);
                out.push((1, unbroadcast(b, c, &types[1])));
            }
        }
        Prim::Binary(BinaryOp::Div) => {
            let c = b.div(ct, ops.known(1));
            out.push((0, unbroadcast(b, c, &types[0])));
        }
        Prim::SelectN => {
            let p = ops.known(0);
            let z = b.zeros(&ct_ty);
            if lin[1] {
                out.push((1, b.select(p, ct, z)));
            }
            if lin[2] {
                out.push((2, b.select(p, z, ct)));
            }
        }
        Prim::Zeros { .. } => {}
        Prim::ConvertElementType { .. } => out.push((0, b.convert(ct, types[0].dtype))),
        Prim::ReduceSum { axes } => {
            let kept: Vec<usize> = (0..types[0].rank()).filter(|d| !axes.contains(d)).collect();
            out.push((0, b.broadcast_in_dim(ct, &types[0].shape, &kept)));
        }
        Prim::Cumsum { axis, reverse } => out.push((
            0,
            b.eqn(
                Prim::Cumsum {
                    axis: *axis,
                    reverse: !reverse,
                },
                &[ct],
            ),
        )),
        Prim::BroadcastInDim { shape, dims } => {
            let operand = &types[0];
            let summed: Vec<usize> = (0..shape.len())
                .filter(|d| match dims.iter().position(|x| x == d) {
                    None => true,
                    Some(i) => operand.shape[i] == 1 && shape[*d] != 1,
                })
                .collect();
            let mut r = if summed.is_empty() {
                ct
            } else {
                b.reduce_sum(ct, &summed)
            };
            if b.ty(&r).shape != operand.shape {
                r = b.reshape(r, &operand.shape);
            }
            out.push((0, r));
        }
        Prim::Reshape { .. } | Prim::Squeeze { .. } | Prim::ExpandDims { .. } => {
            out.push((0, b.reshape(ct, &types[0].shape)));
        }
        Prim::Transpose { perm } => {
            let mut inverse = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inverse[p] = i;
            }
            out.push((0, b.transpose(ct, &inverse)));
        }
        Prim::Rev { dims } => out.push((0, b.eqn(Prim::Rev { dims: dims.clone() }, &[ct]))),
        Prim::Slice { start, strides, .. } => {
            let operand = &types[0];
            if ct_ty.num_elements() == 0 {
                out.push((0, b.zeros(operand)));
            } else {
                let low = start.iter().map(|&s| s as i64).collect();
                let high = (0..operand.rank())
                    .map(|d| {
                        let used = start[d] + (ct_ty.shape[d] - 1) * strides[d] + 1;
                        (operand.shape[d] - used) as i64
                    })
                    .collect();
                let interior = strides.iter().map(|s| s - 1).collect();
                let zero = b.lit(0.0, ct_ty.dtype);
                let pad = Prim::Pad {
                    low,
                    high,
                    interior,
                };
                out.push((0, b.eqn(pad, &[ct, zero])));
            }
        }
        Prim::Pad {
            low,
            high,
            interior,
        } => {
            let operand = &types[0];
            let zero = b.lit(0.0, ct_ty.dtype);
            let unpad = Prim::Pad {
                low: low.iter().map(|l| -l).collect(),
                high: high.iter().map(|h| -h).collect(),
                interior: interior.iter().map(|_| 0).collect(),
            };
            let unpadded = b.eqn(unpad, &[ct, zero]);
            let unpadded_shape = b.ty(&unpadded).shape.clone();
            let t_operand = b.eqn(
                Prim::Slice {
                    start: operand.shape.iter().map(|_| 0).collect(),
                    limit: unpadded_shape,
                    strides: interior.iter().map(|i| i + 1).collect(),
                },
                &[unpadded],
            );
            if lin[1] {
                let all: Vec<usize> = (0..ct_ty.rank()).collect();
                let total = b.reduce_sum(ct, &all);
                let inner = b.reduce_sum(t_operand, &all);
                out.push((1, b.sub(total, inner)));
            }
            if lin[0] {
                out.push((0, t_operand));
            }
        }
        Prim::Concatenate { axis } => {
            let mut offset = 0;
            for (i, ty) in types.iter().enumerate() {
                let start = offset;
                offset += ty.shape[*axis];
                if !lin[i] {
                    continue;
                }
                let mut starts: SmallVec<[usize; 4]> = SmallVec::from_elem(0, ty.rank());
                let mut limit = ct_ty.shape.clone();
                starts[*axis] = start;
                limit[*axis] = offset;
                let slice = Prim::Slice {
                    start: starts,
                    limit,
                    strides: SmallVec::from_elem(1, ty.rank()),
                };
                out.push((i, b.eqn(slice, &[ct])));
            }
        }
        Prim::DotGeneral(dims) => {
            if lin[0] {
                let c = dot_transpose_lhs(b, ct, &types[0], ops.known(1), dims, false);
                out.push((0, c));
            } else {
                let c = dot_transpose_lhs(b, ct, &types[1], ops.known(0), &dims.swapped(), true);
                out.push((1, c));
            }
        }
        Prim::ReduceWindowSum(window) => {
            let transposed = Prim::ReduceWindowSumTranspose {
                shape: types[0].shape.clone(),
                window: window.clone(),
            };
            out.push((0, b.eqn(transposed, &[ct])));
        }
        Prim::ReduceWindowSumTranspose { window, .. } => {
            out.push((0, b.eqn(Prim::ReduceWindowSum(window.clone()), &[ct])));
        }
        Prim::SelectAndGatherAdd { select, window } => {
            let scatter = Prim::SelectAndScatterAdd {
                select: *select,
                window: window.clone(),
            };
            out.push((0, b.eqn(scatter, &[ct, ops.known(1)])));
        }
        Prim::SelectAndScatterAdd { select, window } => {
            let gather = Prim::SelectAndGatherAdd {
                select: *select,
                window: window.clone(),
            };
            out.push((0, b.eqn(gather, &[ct, ops.known(1)])));
        }
        Prim::ConvGeneralDilated(dims) => {
            if lin[0] {
                let c = conv_transpose_lhs(b, dims, ct, &types[0], ops.known(1));
                out.push((0, c));
            } else {
                let c = conv_transpose_rhs(b, dims, ct, ops.known(0), &types[1]);
                out.push((1, c));
            }
        }
        // Not linear in any operand: `check_linear` returned the error already.
        Prim::Unary(_)
        | Prim::IntegerPow { .. }
        | Prim::StopGradient
        | Prim::Binary(_)
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
        | Prim::ReduceWindowMin(_) => {
            return Err(format!("`{}` has no transpose rule", prim.name()))
        }
    }
    Ok(out)
}

/// The cotangent of the left operand of `dot_general(x, y)` given the result's cotangent `ct`:
/// contract `ct` with `y` over `y`'s free axes, then put the axes back in `x`'s order.
/// With `swap_ans`, the result's free axes of `y` come before those of `x` (used for the right
/// operand, with the dimension numbers swapped).
fn dot_transpose_lhs(
    b: &mut Builder,
    ct: Atom,
    x: &Type,
    y: Atom,
    dims: &DotDims,
    swap_ans: bool,
) -> Atom {
    let y_rank = b.ty(&y).rank();
    let (xc, yc) = &dims.contract;
    let (xb, yb) = &dims.batch;
    let x_kept = dot_free_axes(x.rank(), xc, xb);
    let y_kept = dot_free_axes(y_rank, yc, yb);
    let nb = xb.len();
    let ans_batch: SmallVec<[usize; 4]> = (0..nb).collect();
    let ans_y: SmallVec<[usize; 4]> = if swap_ans {
        (nb..nb + y_kept.len()).collect()
    } else {
        (nb + x_kept.len()..nb + x_kept.len() + y_kept.len()).collect()
    };
    let d = b.eqn(
        Prim::DotGeneral(DotDims {
            contract: (ans_y, y_kept.iter().copied().collect()),
            batch: (ans_batch, yb.clone()),
        }),
        &[ct, y],
    );
    // `d`'s axes are x's batch axes, x's free axes, then x's contracted axes in the order of
    // y's matching axes.
    let mut by_y: Vec<(usize, usize)> = yc.iter().copied().zip(xc.iter().copied()).collect();
    by_y.sort_unstable();
    let order: Vec<usize> = xb
        .iter()
        .copied()
        .chain(x_kept)
        .chain(by_y.into_iter().map(|(_, xa)| xa))
        .collect();
    let mut perm = vec![0; order.len()];
    for (i, &axis) in order.iter().enumerate() {
        perm[axis] = i;
    }
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        d
    } else {
        b.transpose(d, &perm)
    }
}

/// What the rule of `eqn` needs to know about its operands; `env` maps the known ones (empty
/// when only checking linearity).
fn operands(
    func: &Func,
    eqn: &traceform_ir::Eqn,
    kind: &[Kind],
    zero: &[bool],
    env: &[Option<Atom>],
) -> Operands {
    let args = func.args(eqn);
    let is_lin = |a: &Atom| a.as_var().is_some_and(|v| kind[v.index()] == Kind::Linear);
    Operands {
        known: args
            .iter()
            .map(|a| match a {
                Atom::Lit(_) => Some(*a),
                Atom::Var(v) if !is_lin(a) => env.get(v.index()).copied().flatten(),
                Atom::Var(_) => None,
            })
            .collect(),
        types: args.iter().map(|a| func.atom_type(a).clone()).collect(),
        linear: args.iter().map(is_lin).collect(),
        zero: args.iter().map(|a| is_zero(a, zero)).collect(),
    }
}

/// Which values are zero: literal zeros, `zeros` equations, and reshapings of them.
fn zero_values(func: &Func) -> Vec<bool> {
    let mut zero = vec![false; func.num_vars()];
    for eqn in &func.eqns {
        zero[eqn.out.index()] = match func.prim(eqn) {
            Prim::Zeros { .. } => true,
            Prim::BroadcastInDim { .. }
            | Prim::Reshape { .. }
            | Prim::ConvertElementType { .. } => is_zero(&func.args(eqn)[0], &zero),
            _ => false,
        };
    }
    zero
}

fn is_zero(a: &Atom, zero: &[bool]) -> bool {
    match a {
        Atom::Lit(l) => l.value == 0.0,
        Atom::Var(v) => zero[v.index()],
    }
}

/// Transposes `func`, whose parameters from `first_linear` on are its linear inputs.
/// Result: `(nonlinear params..., one cotangent per output) -> one cotangent per linear param`.
pub fn transpose(func: &Func, first_linear: usize) -> Result<Func, TransformError> {
    // Dead equations are skipped in both sweeps: they are neither checked nor emitted.
    let live = live_equations(func);
    let kind = classify(func, first_linear);
    let is_lin = |a: &Atom| a.as_var().is_some_and(|v| kind[v.index()] == Kind::Linear);
    let zero = zero_values(func);
    for (k, a) in func.outputs.iter().enumerate() {
        if !is_lin(a) && !is_zero(a, &zero) {
            return Err(TransformError::NotLinear {
                eqn: format!("output {k}"),
                loc: Loc::Unknown,
                why: "it does not depend on the linear inputs and is not zero".into(),
            });
        }
    }
    // Linearity is checked in program order before anything is emitted, so the error names
    // the first equation that breaks it (each rule checks again as it runs).
    for (eqn, _) in func.eqns.iter().zip(&live).filter(|(_, &l)| l) {
        if kind[eqn.out.index()] == Kind::Linear {
            let ops = operands(func, eqn, &kind, &zero, &[]);
            check_linear(func.prim(eqn), &ops).map_err(|why| TransformError::NotLinear {
                eqn: describe_eqn(func, eqn),
                loc: eqn.loc,
                why,
            })?;
        }
    }
    let mut b = Builder::new(format!("transpose_{}", func.name));
    b.reserve(2 * func.eqns.len());
    let mut env: Vec<Option<Atom>> = vec![None; func.num_vars()];
    for &p in &func.params[..first_linear] {
        env[p.index()] = Some(Atom::Var(b.param(func.var_type(p))));
    }
    // The contributions to each value's cotangent, in the order they were found (its uses,
    // last to first); summed when the value's own equation is reached, in program order of
    // the uses (`sum_in_use_order`).
    let mut ct: Vec<SmallVec<[Atom; 2]>> = vec![SmallVec::new(); func.num_vars()];
    for a in &func.outputs {
        let seed = Atom::Var(b.param(func.atom_type(a)));
        if let Some(v) = a.as_var().filter(|v| kind[v.index()] == Kind::Linear) {
            ct[v.index()].push(seed);
        }
    }
    // Forward: everything that does not depend on the linear inputs.
    for (eqn, _) in func.eqns.iter().zip(&live).filter(|(_, &l)| l) {
        if kind[eqn.out.index()] != Kind::Linear {
            let xs: SmallVec<[Atom; 4]> = func.args(eqn).iter().map(|a| lookup(&env, a)).collect();
            env[eqn.out.index()] = Some(Atom::Var(b.copy_eqn(func, eqn, &xs)));
        }
    }
    // Backward: the linear equations, last to first.
    for (eqn, _) in func.eqns.iter().zip(&live).rev().filter(|(_, &l)| l) {
        if kind[eqn.out.index()] != Kind::Linear {
            continue;
        }
        let Some(ct_out) = sum_in_use_order(&mut b, std::mem::take(&mut ct[eqn.out.index()]))
        else {
            continue;
        };
        let args = func.args(eqn);
        let ops = operands(func, eqn, &kind, &zero, &env);
        b.set_loc(eqn.loc);
        let cts = transpose_rule(&mut b, func.prim(eqn), ct_out, &ops).map_err(|why| {
            TransformError::NotLinear {
                eqn: describe_eqn(func, eqn),
                loc: eqn.loc,
                why,
            }
        })?;
        for (i, c) in cts {
            let v = args[i].as_var().expect("linear operands are values");
            ct[v.index()].push(c);
        }
    }
    b.set_loc(Loc::Unknown);
    let outputs: Vec<Atom> = func.params[first_linear..]
        .iter()
        .map(
            |&p| match sum_in_use_order(&mut b, std::mem::take(&mut ct[p.index()])) {
                Some(c) => c,
                None => b.zeros(func.var_type(p)),
            },
        )
        .collect();
    Ok(eliminate_dead_code(finish(b, &outputs)?))
}

/// The sum of a value's cotangent contributions, collected from its last use to its first,
/// taken in program order of the uses: `(c_first + c_second) + ...`. That is the order in
/// which the forward tangent of a left-to-right expression sums the same terms, so the
/// simplifier finds a gradient's local derivative and a jvp's as the same sum (no rule
/// reorders sums).
fn sum_in_use_order(b: &mut Builder, contributions: SmallVec<[Atom; 2]>) -> Tan {
    contributions
        .into_iter()
        .rev()
        .fold(None, |total, c| add(b, total, Some(c)))
}

#[cfg(test)]
mod tests {
    use traceform_ir::parse_func;

    use super::*;

    /// The error of transposing `text` in its parameters from 1 on.
    fn error(text: &str) -> TransformError {
        transpose(&parse_func(text).unwrap(), 1).unwrap_err()
    }

    #[test]
    fn a_product_of_two_linear_values_is_named_with_its_place() {
        let e = error(
            "func f(a: f32[3], t: f32[3]) -> f32[3] {
  u: f32[3] = mul t a
  v: f32[3] = mul u t
  return v
}",
        );
        assert_eq!(
            e.to_string(),
            "cannot transpose: `v = mul u t`: `mul` multiplies two values that both depend on the linear inputs"
        );
        assert_eq!(e.text_location(), Some((3, 15)));
        assert!(e.is_user_error());
    }

    #[test]
    fn an_affine_equation_is_not_linear() {
        let e = error(
            "func f(a: f32[3], t: f32[3]) -> f32[3] {
  u: f32[3] = add t 1.0
  return u
}",
        );
        let text = e.to_string();
        assert!(
            text.starts_with("cannot transpose: `u = add t 1.0:f32`: `add` combines")
                && text.ends_with("(the function is affine, not linear)"),
            "{text}"
        );
    }

    #[test]
    fn the_first_non_linear_equation_in_program_order_is_named() {
        let e = error(
            "func f(a: f32[3], t: f32[3]) -> f32[3] {
  u: f32[3] = sin t
  v: f32[3] = exp u
  w: f32[3] = cumsum[axis=0] v
  return w
}",
        );
        assert!(
            e.to_string()
                .contains("`u = sin t`: `sin` is not linear in operand 1"),
            "{e}"
        );
        assert_eq!(e.text_location(), Some((2, 15)));
    }

    #[test]
    fn an_output_that_does_not_depend_on_the_linear_inputs_is_named() {
        let e = error(
            "func f(a: f32[3], t: f32[3]) -> (f32[3], f32[3]) {
  u: f32[3] = mul t a
  return u, a
}",
        );
        assert_eq!(
            e.to_string(),
            "cannot transpose: output 1: it does not depend on the linear inputs and is not zero"
        );
        assert_eq!(e.text_location(), None);
    }

    #[test]
    fn dead_non_linear_equations_are_skipped() {
        let f = parse_func(
            "func f(a: f32[3], t: f32[3]) -> f32[3] {
  dead: f32[3] = sin t
  u: f32[3] = mul a t
  return u
}",
        )
        .unwrap();
        let t = transpose(&f, 1).unwrap();
        let prims: Vec<&str> = t.eqns.iter().map(|e| t.prim(e).name()).collect();
        assert_eq!(prims, ["mul"], "{}", traceform_ir::print_func(&t));
    }
}
