//! Forward mode: `jvp` maps `f(x) -> y` to `(x, t) -> (y, y_dot)`.
//!
//! An interpreter over the equations: each equation is emitted again as the primal, followed by
//! the tangent its rule computes from the operands' tangents. Tangents are `Option`s: a
//! symbolic zero (`None`) never becomes IR, so integer values, literals, `stop_gradient` and
//! the piecewise-constant primitives cost nothing. No tape is kept: the jvp program holds the
//! values of `f` plus one tangent per live value.

use traceform_ir::{
    eliminate_dead_code, Atom, BinaryOp, Func, Prim, Tensor, Tracer, Type, UnaryOp,
};

use crate::util::{add, fit, instantiate, Tan};
use crate::{check_wrt, TransformError};

/// The forward-mode derivative of `func` with respect to the inputs at positions `wrt`.
/// Signature: `(x1..xn, one tangent per input in wrt) -> (y1..ym, one tangent per float output)`.
pub fn jvp(func: &Func, wrt: Option<&[usize]>) -> Result<Func, TransformError> {
    let wrt = check_wrt(func, wrt)?;
    let tracer = Tracer::new(&format!("jvp_{}", func.name));
    let mut primal: Vec<Option<Tensor>> = vec![None; func.vars.len()];
    let mut tangent: Vec<Tan> = vec![None; func.vars.len()];
    for &p in &func.params {
        primal[p.index()] = Some(tracer.param(func.var_type(p).clone()));
    }
    for &i in &wrt {
        let p = func.params[i];
        tangent[p.index()] = Some(tracer.param(func.var_type(p).clone()));
    }
    for eqn in &func.eqns {
        let xs: Vec<Tensor> = eqn
            .args
            .iter()
            .map(|a| lookup(&tracer, &primal, a))
            .collect();
        let ts: Vec<Tan> = eqn
            .args
            .iter()
            .map(|a| a.as_var().and_then(|v| tangent[v.index()].clone()))
            .collect();
        let refs: Vec<&Tensor> = xs.iter().collect();
        let y = tracer.emit(eqn.prim.clone(), &refs);
        let t_out = if y.dtype().is_float() && ts.iter().any(Option::is_some) {
            jvp_rule(&eqn.prim, &xs, &ts, &y)
        } else {
            None
        };
        primal[eqn.out.index()] = Some(y);
        tangent[eqn.out.index()] = t_out;
    }
    let mut outputs: Vec<Tensor> = func
        .outputs
        .iter()
        .map(|a| lookup(&tracer, &primal, a))
        .collect();
    for a in &func.outputs {
        let ty = func.atom_type(a);
        if ty.dtype.is_float() {
            let t = a.as_var().and_then(|v| tangent[v.index()].clone());
            outputs.push(instantiate(&tracer, &t, &ty));
        }
    }
    let jvp = tracer.finish(&outputs).map_err(TransformError::internal)?;
    Ok(eliminate_dead_code(&jvp))
}

fn lookup(tracer: &Tracer, env: &[Option<Tensor>], a: &Atom) -> Tensor {
    match a {
        Atom::Var(v) => env[v.index()]
            .clone()
            .expect("verified: defined before use"),
        Atom::Lit(l) => tracer.literal(l.value, l.dtype),
    }
}

/// `t * factor`, or a symbolic zero.
fn scale(t: &Tan, factor: impl FnOnce() -> Tensor) -> Tan {
    t.as_ref().map(|t| t * factor())
}

/// The tangent of one equation. `x` are the primal operands, `t` their tangents (at least one
/// is not a symbolic zero), `y` the primal result, which is float.
pub fn jvp_rule(prim: &Prim, x: &[Tensor], t: &[Tan], y: &Tensor) -> Tan {
    let out = y.ty().clone();
    let fitted = |t: Tan| t.map(|t| fit(t, &out.shape));
    match prim {
        Prim::Unary(op) => unary_rule(*op, &x[0], &t[0], y),
        Prim::IntegerPow { y: n } => match n {
            0 => None,
            1 => t[0].clone(),
            n => scale(&t[0], || x[0].powi(n - 1) * f64::from(*n)),
        },
        Prim::StopGradient => None,
        Prim::Binary(op) => fitted(binary_rule(*op, &x[0], &x[1], &t[0], &t[1], y)),
        // Bool results: never reached (the caller only asks for float results).
        Prim::Compare(_) | Prim::And | Prim::Or | Prim::Not => None,
        Prim::SelectN => {
            if t[1].is_none() && t[2].is_none() {
                return None;
            }
            let tracer = y.tracer();
            let on_false = instantiate(&tracer, &t[1], &out);
            let on_true = instantiate(&tracer, &t[2], &out);
            Some(x[0].select(&on_true, &on_false))
        }
        Prim::ConvertElementType { dtype } => {
            if x[0].dtype().is_float() {
                t[0].as_ref().map(|t| t.cast(*dtype))
            } else {
                None
            }
        }
        Prim::Iota { .. } | Prim::Argmax { .. } | Prim::Argmin { .. } => None,
        Prim::ReduceSum { .. }
        | Prim::Cumsum { .. }
        | Prim::BroadcastInDim { .. }
        | Prim::Reshape { .. }
        | Prim::Transpose { .. }
        | Prim::Squeeze { .. }
        | Prim::ExpandDims { .. }
        | Prim::Rev { .. }
        | Prim::Slice { .. } => {
            let tracer = y.tracer();
            t[0].as_ref().map(|t| tracer.emit(prim.clone(), &[t]))
        }
        Prim::ReduceMax { axes } | Prim::ReduceMin { axes } => {
            // Ties share the derivative equally, as jax.lax does.
            let kept: Vec<usize> = (0..x[0].rank()).filter(|d| !axes.contains(d)).collect();
            let location = x[0].eq(y.broadcast_in_dim(x[0].shape(), &kept));
            let mask = location.cast(out.dtype);
            let counts = mask.sum(axes);
            scale(&t[0], || mask).map(|tm| tm.sum(axes) / counts)
        }
        Prim::Pad { .. } => {
            let tracer = y.tracer();
            let tx = instantiate(&tracer, &t[0], x[0].ty());
            let tv = instantiate(&tracer, &t[1], x[1].ty());
            Some(tracer.emit(prim.clone(), &[&tx, &tv]))
        }
        Prim::Concatenate { .. } => {
            let tracer = y.tracer();
            let parts: Vec<Tensor> = x
                .iter()
                .zip(t)
                .map(|(x, t)| instantiate(&tracer, t, x.ty()))
                .collect();
            let refs: Vec<&Tensor> = parts.iter().collect();
            Some(tracer.emit(prim.clone(), &refs))
        }
        Prim::DotGeneral(_) => {
            let tracer = y.tracer();
            let left = t[0]
                .as_ref()
                .map(|ta| tracer.emit(prim.clone(), &[ta, &x[1]]));
            let right = t[1]
                .as_ref()
                .map(|tb| tracer.emit(prim.clone(), &[&x[0], tb]));
            add(left, right)
        }
    }
}

fn unary_rule(op: UnaryOp, x: &Tensor, t: &Tan, y: &Tensor) -> Tan {
    match op {
        UnaryOp::Neg => t.as_ref().map(|t| -t),
        UnaryOp::Sin => scale(t, || x.cos()),
        UnaryOp::Cos => scale(t, || -x.sin()),
        UnaryOp::Tan => scale(t, || 1.0 + y * y),
        UnaryOp::Tanh => scale(t, || 1.0 - y * y),
        UnaryOp::Exp => scale(t, || y.clone()),
        UnaryOp::Log => t.as_ref().map(|t| t / x),
        UnaryOp::Log1p => t.as_ref().map(|t| t / (1.0 + x)),
        UnaryOp::Expm1 => scale(t, || y + 1.0),
        // sqrt'(0) = inf, as in jax.lax.
        UnaryOp::Sqrt => scale(t, || 0.5 / y),
        UnaryOp::Rsqrt => scale(t, || -0.5 * (y / x)),
        // abs'(0) = 1, as in jax.lax.
        UnaryOp::Abs => t.as_ref().map(|t| x.ge(0.0).select(t, &-t)),
        UnaryOp::Logistic => scale(t, || y * (1.0 - y)),
        UnaryOp::Erf => scale(t, || {
            let two_over_sqrt_pi = 2.0 / std::f64::consts::PI.sqrt();
            (-(x * x)).exp() * two_over_sqrt_pi
        }),
        UnaryOp::Sign | UnaryOp::Floor | UnaryOp::Ceil | UnaryOp::Round => None,
    }
}

/// Where `p` holds, `on_true`; else `on_false`; both rank-0 constants of `like`'s dtype.
fn choose(p: &Tensor, on_true: f64, on_false: f64, like: &Type) -> Tensor {
    let tracer = p.tracer();
    let t = fit(tracer.literal(on_true, like.dtype), p.shape());
    let f = fit(tracer.literal(on_false, like.dtype), p.shape());
    p.select(&t, &f)
}

fn binary_rule(op: BinaryOp, a: &Tensor, b: &Tensor, ta: &Tan, tb: &Tan, y: &Tensor) -> Tan {
    match op {
        BinaryOp::Add => add(ta.clone(), tb.clone()),
        BinaryOp::Sub => add(ta.clone(), tb.as_ref().map(|t| -t)),
        BinaryOp::Mul => add(scale(ta, || b.clone()), scale(tb, || a.clone())),
        BinaryOp::Div => add(ta.as_ref().map(|t| t / b), scale(tb, || -(a / (b * b)))),
        BinaryOp::Pow => {
            // d/da: b * a^(b-1), taken as 0 where b == 0; d/db: log(a) * y, with log(0) read
            // as 0 (jax.lax's conventions).
            let da = scale(ta, || {
                let d = b * a.pow(b - 1.0);
                let zero = fit(d.lit(0.0), d.shape());
                b.eq(0.0).select(&zero, &d)
            });
            let db = scale(tb, || {
                let ones = choose(&a.eq(0.0), 1.0, 0.0, a.ty());
                let safe_a = a + ones;
                safe_a.log() * y
            });
            add(da, db)
        }
        BinaryOp::Max | BinaryOp::Min => {
            // The derivative goes to the larger (smaller) operand; ties split it 0.5 / 0.5.
            let (wins_a, wins_b) = match op {
                BinaryOp::Max => (a.gt(b), a.lt(b)),
                _ => (a.lt(b), a.gt(b)),
            };
            let dtype = y.dtype();
            let half_tie = a.eq(b).cast(dtype) * 0.5;
            let da = scale(ta, || wins_a.cast(dtype) + &half_tie);
            let db = scale(tb, || wins_b.cast(dtype) + &half_tie);
            add(da, db)
        }
        BinaryOp::Atan2 => {
            let denom = a * a + b * b;
            add(scale(ta, || b / &denom), scale(tb, || -(a / &denom)))
        }
    }
}
