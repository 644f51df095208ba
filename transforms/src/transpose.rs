//! Transposition of a linear function: `(nonlinear..., linear...) -> outputs` becomes
//! `(nonlinear..., one cotangent per output) -> one cotangent per linear input`.
//!
//! The same interpreter skeleton, walked backwards: equations that do not depend on the linear
//! inputs are emitted first, as they are; then the linear equations are visited last to first,
//! each handing its result's cotangent to its linear operands through the primitive's
//! transpose rule. Only linear primitives have transpose rules. Linearity is checked before
//! anything is emitted: a non-linear use of a linear value is an error naming the equation.

use traceform_ir::{
    dot_free_axes, Atom, BinaryOp, DotDims, Func, Prim, Tensor, Tracer, Type, UnaryOp,
};

use crate::linearize::{classify, Kind};
use crate::util::{add, describe_eqn, unbroadcast, Tan};
use crate::TransformError;

/// Which operands of an equation are linear, and whether each non-linear one is known to be
/// zero (a literal 0 or a reshaping of one).
struct Operands {
    linear: Vec<bool>,
    zero: Vec<bool>,
}

/// Checks that `prim` is linear in the operands marked linear. `Err` says why not.
fn check_linear(prim: &Prim, ops: &Operands) -> Result<(), String> {
    let lin = &ops.linear;
    let linear_or_zero = |i: usize| lin[i] || ops.zero[i];
    let only = |allowed: &[usize]| -> Result<(), String> {
        match (0..lin.len()).find(|i| lin[*i] && !allowed.contains(i)) {
            None => Ok(()),
            Some(i) => Err(format!(
                "`{}` is not linear in operand {}",
                prim.name(),
                i + 1
            )),
        }
    };
    match prim {
        Prim::Unary(UnaryOp::Neg)
        | Prim::ConvertElementType { .. }
        | Prim::ReduceSum { .. }
        | Prim::Cumsum { .. }
        | Prim::BroadcastInDim { .. }
        | Prim::Reshape { .. }
        | Prim::Transpose { .. }
        | Prim::Squeeze { .. }
        | Prim::ExpandDims { .. }
        | Prim::Rev { .. }
        | Prim::Slice { .. } => Ok(()),
        Prim::Binary(BinaryOp::Add | BinaryOp::Sub) => {
            if linear_or_zero(0) && linear_or_zero(1) {
                Ok(())
            } else {
                Err(format!(
                    "`{}` adds a value that does not depend on the linear inputs (the function is affine, not linear)",
                    prim.name()
                ))
            }
        }
        Prim::Binary(BinaryOp::Mul) | Prim::DotGeneral(_) => {
            if lin[0] && lin[1] {
                Err(format!(
                    "`{}` multiplies two values that both depend on the linear inputs",
                    prim.name()
                ))
            } else {
                Ok(())
            }
        }
        Prim::Binary(BinaryOp::Div) => only(&[0]),
        Prim::SelectN => {
            only(&[1, 2])?;
            if linear_or_zero(1) && linear_or_zero(2) {
                Ok(())
            } else {
                Err("`select_n` picks between a linear value and one that is not".into())
            }
        }
        Prim::Pad { .. } => {
            if linear_or_zero(0) && linear_or_zero(1) {
                Ok(())
            } else {
                Err("`pad` mixes a linear value with a non-zero constant".into())
            }
        }
        Prim::Concatenate { .. } => {
            if (0..lin.len()).all(linear_or_zero) {
                Ok(())
            } else {
                Err("`concatenate` joins linear values with values that are not".into())
            }
        }
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
        | Prim::Argmin { .. } => only(&[]),
    }
}

/// The cotangents of the linear operands of one equation, given its result's cotangent `ct`.
/// `x` holds the operand values where they are known (`None` for linear operands) and `types`
/// all operand types. Returns `(operand index, cotangent)` pairs.
fn transpose_rule(
    prim: &Prim,
    ct: &Tensor,
    x: &[Option<Tensor>],
    types: &[Type],
    linear: &[bool],
) -> Vec<(usize, Tensor)> {
    let tracer = ct.tracer();
    let known = |i: usize| x[i].clone().expect("checked: a known operand");
    let mut out = Vec::new();
    match prim {
        Prim::Unary(UnaryOp::Neg) => out.push((0, -ct)),
        Prim::Binary(BinaryOp::Add) => {
            out.push((0, unbroadcast(ct.clone(), &types[0])));
            out.push((1, unbroadcast(ct.clone(), &types[1])));
        }
        Prim::Binary(BinaryOp::Sub) => {
            out.push((0, unbroadcast(ct.clone(), &types[0])));
            out.push((1, unbroadcast(-ct, &types[1])));
        }
        Prim::Binary(BinaryOp::Mul) => {
            if linear[0] {
                out.push((0, unbroadcast(ct * known(1), &types[0])));
            } else {
                out.push((1, unbroadcast(known(0) * ct, &types[1])));
            }
        }
        Prim::Binary(BinaryOp::Div) => out.push((0, unbroadcast(ct / known(1), &types[0]))),
        Prim::SelectN => {
            let p = known(0);
            let z = tracer.zeros(ct.ty());
            out.push((1, p.select(&z, ct)));
            out.push((2, p.select(ct, &z)));
        }
        Prim::ConvertElementType { .. } => out.push((0, ct.cast(types[0].dtype))),
        Prim::ReduceSum { axes } => {
            let kept: Vec<usize> = (0..types[0].rank()).filter(|d| !axes.contains(d)).collect();
            out.push((0, ct.broadcast_in_dim(&types[0].shape, &kept)));
        }
        Prim::Cumsum { axis, reverse } => out.push((0, ct.cumsum(*axis, !reverse))),
        Prim::BroadcastInDim { shape, dims } => {
            let operand = &types[0];
            let summed: Vec<usize> = (0..shape.len())
                .filter(|d| match dims.iter().position(|x| x == d) {
                    None => true,
                    Some(i) => operand.shape[i] == 1 && shape[*d] != 1,
                })
                .collect();
            let mut r = if summed.is_empty() {
                ct.clone()
            } else {
                ct.sum(&summed)
            };
            if r.shape() != operand.shape.as_slice() {
                r = r.reshape(&operand.shape);
            }
            out.push((0, r));
        }
        Prim::Reshape { .. } | Prim::Squeeze { .. } | Prim::ExpandDims { .. } => {
            out.push((0, ct.reshape(&types[0].shape)));
        }
        Prim::Transpose { perm } => {
            let mut inverse = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inverse[p] = i;
            }
            out.push((0, ct.transpose(&inverse)));
        }
        Prim::Rev { dims } => out.push((0, ct.rev(dims))),
        Prim::Slice { start, strides, .. } => {
            let operand = &types[0];
            if ct.ty().num_elements() == 0 {
                out.push((0, tracer.zeros(operand)));
            } else {
                let low: Vec<i64> = start.iter().map(|&s| s as i64).collect();
                let high: Vec<i64> = (0..operand.rank())
                    .map(|d| {
                        let used = start[d] + (ct.shape()[d] - 1) * strides[d] + 1;
                        (operand.shape[d] - used) as i64
                    })
                    .collect();
                let interior: Vec<usize> = strides.iter().map(|s| s - 1).collect();
                out.push((0, ct.pad(0.0, &low, &high, &interior)));
            }
        }
        Prim::Pad {
            low,
            high,
            interior,
        } => {
            let operand = &types[0];
            let neg_low: Vec<i64> = low.iter().map(|l| -l).collect();
            let neg_high: Vec<i64> = high.iter().map(|h| -h).collect();
            let unpadded = ct.pad(0.0, &neg_low, &neg_high, &vec![0; operand.rank()]);
            let starts = vec![0; operand.rank()];
            let steps: Vec<usize> = interior.iter().map(|i| i + 1).collect();
            let t_operand = unpadded.slice_strided(&starts, unpadded.shape(), &steps);
            if linear[1] {
                out.push((1, ct.sum_all() - t_operand.sum_all()));
            }
            out.push((0, t_operand));
        }
        Prim::Concatenate { axis } => {
            let mut offset = 0;
            for (i, ty) in types.iter().enumerate() {
                let mut start = vec![0; ty.rank()];
                let mut limit = ct.shape().to_vec();
                start[*axis] = offset;
                limit[*axis] = offset + ty.shape[*axis];
                offset += ty.shape[*axis];
                out.push((i, ct.slice(&start, &limit)));
            }
        }
        Prim::DotGeneral(dims) => {
            if linear[0] {
                out.push((0, dot_transpose_lhs(ct, &types[0], &known(1), dims, false)));
            } else {
                let swapped = DotDims {
                    contract: (dims.contract.1.clone(), dims.contract.0.clone()),
                    batch: (dims.batch.1.clone(), dims.batch.0.clone()),
                };
                out.push((
                    1,
                    dot_transpose_lhs(ct, &types[1], &known(0), &swapped, true),
                ));
            }
        }
        // Not linear: `check_linear` rejected these before any rule runs.
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
        | Prim::Argmin { .. } => unreachable!("checked: `{}` is not linear", prim.name()),
    }
    out.retain(|(i, _)| linear[*i]);
    out
}

/// The cotangent of the left operand of `dot_general(x, y)` given the result's cotangent `ct`:
/// contract `ct` with `y` over `y`'s free axes, then put the axes back in `x`'s order.
/// With `swap_ans`, the result's free axes of `y` come before those of `x` (used for the right
/// operand, with the dimension numbers swapped).
fn dot_transpose_lhs(ct: &Tensor, x: &Type, y: &Tensor, dims: &DotDims, swap_ans: bool) -> Tensor {
    let (xc, yc) = &dims.contract;
    let (xb, yb) = &dims.batch;
    let x_kept = dot_free_axes(x.rank(), xc, xb);
    let y_kept = dot_free_axes(y.rank(), yc, yb);
    let nb = xb.len();
    let ans_batch: Vec<usize> = (0..nb).collect();
    let ans_y: Vec<usize> = if swap_ans {
        (nb..nb + y_kept.len()).collect()
    } else {
        (nb + x_kept.len()..nb + x_kept.len() + y_kept.len()).collect()
    };
    let d = ct.dot_general(y, (&ans_y, &y_kept), (&ans_batch, yb));
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
        d.transpose(&perm)
    }
}

fn lookup(tracer: &Tracer, env: &[Option<Tensor>], a: &Atom) -> Option<Tensor> {
    match a {
        Atom::Var(v) => env[v.index()].clone(),
        Atom::Lit(l) => Some(tracer.literal(l.value, l.dtype)),
    }
}

/// Transposes `func`, whose parameters from `first_linear` on are its linear inputs.
/// Result: `(nonlinear params..., one cotangent per output) -> one cotangent per linear param`.
pub fn transpose(func: &Func, first_linear: usize) -> Result<Func, TransformError> {
    let kind = classify(func, first_linear);
    let is_lin = |a: &Atom| a.as_var().is_some_and(|v| kind[v.index()] == Kind::Linear);
    // Values known to be zero: literal zeros and reshapings of them.
    let mut zero = vec![false; func.vars.len()];
    let atom_zero = |a: &Atom, zero: &[bool]| match a {
        Atom::Lit(l) => l.value == 0.0,
        Atom::Var(v) => zero[v.index()],
    };
    for eqn in &func.eqns {
        let reshaping = matches!(
            eqn.prim,
            Prim::BroadcastInDim { .. } | Prim::Reshape { .. } | Prim::ConvertElementType { .. }
        );
        zero[eqn.out.index()] = reshaping && atom_zero(&eqn.args[0], &zero);
    }
    // Check linearity of every equation and output before emitting anything.
    for (i, eqn) in func.eqns.iter().enumerate() {
        if kind[eqn.out.index()] != Kind::Linear {
            continue;
        }
        let ops = Operands {
            linear: eqn.args.iter().map(is_lin).collect(),
            zero: eqn.args.iter().map(|a| atom_zero(a, &zero)).collect(),
        };
        check_linear(&eqn.prim, &ops).map_err(|why| TransformError::NotLinear {
            eqn: describe_eqn(func, eqn),
            loc: func.loc(i),
            why,
        })?;
    }
    for (k, a) in func.outputs.iter().enumerate() {
        if !is_lin(a) && !atom_zero(a, &zero) {
            return Err(TransformError::NotLinear {
                eqn: format!("output {k}"),
                loc: traceform_ir::Loc::Unknown,
                why: "it does not depend on the linear inputs and is not zero".into(),
            });
        }
    }

    let tracer = Tracer::new(&format!("transpose_{}", func.name));
    let mut env: Vec<Option<Tensor>> = vec![None; func.vars.len()];
    for &p in &func.params[..first_linear] {
        env[p.index()] = Some(tracer.param(func.var_type(p).clone()));
    }
    let mut ct: Vec<Tan> = vec![None; func.vars.len()];
    for a in &func.outputs {
        let seed = tracer.param(func.atom_type(a));
        if let Some(v) = a.as_var().filter(|v| kind[v.index()] == Kind::Linear) {
            ct[v.index()] = add(ct[v.index()].take(), Some(seed));
        }
    }
    // Forward: everything that does not depend on the linear inputs.
    for eqn in &func.eqns {
        if kind[eqn.out.index()] != Kind::Linear {
            let xs: Vec<Tensor> = eqn
                .args
                .iter()
                .map(|a| lookup(&tracer, &env, a).expect("non-linear operands are known"))
                .collect();
            let refs: Vec<&Tensor> = xs.iter().collect();
            env[eqn.out.index()] = Some(tracer.emit(eqn.prim.clone(), &refs));
        }
    }
    // Backward: the linear equations, last to first.
    for eqn in func.eqns.iter().rev() {
        if kind[eqn.out.index()] != Kind::Linear {
            continue;
        }
        let Some(ct_out) = ct[eqn.out.index()].take() else {
            continue;
        };
        let linear: Vec<bool> = eqn.args.iter().map(is_lin).collect();
        let xs: Vec<Option<Tensor>> = eqn
            .args
            .iter()
            .zip(&linear)
            .map(|(a, &l)| if l { None } else { lookup(&tracer, &env, a) })
            .collect();
        let types: Vec<Type> = eqn.args.iter().map(|a| func.atom_type(a)).collect();
        for (i, c) in transpose_rule(&eqn.prim, &ct_out, &xs, &types, &linear) {
            let v = eqn.args[i].as_var().expect("linear operands are values");
            ct[v.index()] = add(ct[v.index()].take(), Some(c));
        }
    }
    let outputs: Vec<Tensor> = func.params[first_linear..]
        .iter()
        .map(|&p| match ct[p.index()].take() {
            Some(c) => c,
            None => tracer.zeros(func.var_type(p)),
        })
        .collect();
    tracer.finish(&outputs).map_err(TransformError::internal)
}
