//! traceform's derivative transforms. Each maps a `Func` to a `Func`, so they compose to any
//! depth: `hvp` is `jvp` of `grad`, and `jvp(jvp(f))`, `vjp(jvp(f))` need nothing special.
//!
//! - `jvp`: forward mode with symbolic zeros (`jvp.rs`).
//! - `linearize_jvp`: partial evaluation of a jvp program into primal and linear parts
//!   (`linearize.rs`).
//! - `transpose`: transposition of a linear function, with transpose rules for the linear
//!   primitives only (`transpose.rs`; those of `conv_general_dilated` in `conv.rs`).
//! - `vjp` = transpose(linearize(jvp)); `grad`, `value_and_grad` for scalar outputs;
//!   `hvp` = jvp(grad) (forward-over-reverse).
//!
//! The transformed signatures are the table of `shared/spec/ir-text.md`.

mod conv;
mod jacobian;
mod jvp;
mod linearize;
pub mod simplify;
mod transpose;
mod util;

pub use jacobian::{hessian, jacfwd, jacrev};
pub use jvp::{jvp, jvp_rule};
pub use linearize::{classify, linearize_jvp, Kind, Linearized};
pub use simplify::{simplify, Limits, Report, StopReason};
pub use transpose::transpose;
pub use util::Tan;

use traceform_ir::{eliminate_dead_code, Atom, Builder, Func, Loc, Type};

use crate::util::finish;

/// Why a transform does not apply.
#[derive(Clone, Debug, thiserror::Error)]
pub enum TransformError {
    /// The `wrt` positions (or, for `select_outputs`, the output positions) do not fit the
    /// function.
    #[error("{0}")]
    Wrt(String),
    /// `grad`/`hvp` of a function that does not return one float scalar.
    #[error("{0}")]
    NotScalar(String),
    /// Reverse mode or a Jacobian of a function with no float output (nothing to
    /// differentiate).
    #[error("{0}")]
    NoFloatOutput(String),
    /// A transform whose result would be too large to build (a Jacobian unrolls one
    /// derivative per seeded element).
    #[error("{0}")]
    TooLarge(String),
    /// `transpose` of a function that is not linear.
    #[error("cannot transpose: {eqn}{}: {why}", match loc { Loc::Rust(_) => format!(" (traced at {loc})"), _ => String::new() })]
    NotLinear { eqn: String, loc: Loc, why: String },
    /// A bug in traceform, at the user's equation being transformed when there is one.
    #[error("internal error: {message}{}", match loc { Loc::Unknown => String::new(), _ => format!(" (transforming the equation at {loc})") })]
    Internal { message: String, loc: Loc },
}

impl TransformError {
    /// The equation at fault, if there is one.
    pub fn loc(&self) -> Loc {
        match self {
            TransformError::NotLinear { loc, .. } | TransformError::Internal { loc, .. } => *loc,
            TransformError::Wrt(_)
            | TransformError::NotScalar(_)
            | TransformError::NoFloatOutput(_)
            | TransformError::TooLarge(_) => Loc::Unknown,
        }
    }

    /// The line and column in the text IR of the equation at fault, if there is one.
    pub fn text_location(&self) -> Option<(u32, u32)> {
        match self.loc() {
            Loc::Text { line, col } => Some((line, col)),
            _ => None,
        }
    }

    /// True for errors in what the user asked for (as opposed to bugs).
    pub fn is_user_error(&self) -> bool {
        !matches!(self, TransformError::Internal { .. })
    }
}

/// The input positions to differentiate: `wrt` checked against `func`, or every float input.
pub fn check_wrt(func: &Func, wrt: Option<&[usize]>) -> Result<Vec<usize>, TransformError> {
    let n = func.params.len();
    let positions: Vec<usize> = match wrt {
        None => (0..n)
            .filter(|&i| func.var_type(func.params[i]).dtype.is_float())
            .collect(),
        Some(w) => w.to_vec(),
    };
    for (k, &i) in positions.iter().enumerate() {
        if i >= n {
            return Err(TransformError::Wrt(format!(
                "input position {i} is out of range: `{}` has {n} input(s)",
                func.name
            )));
        }
        if positions[..k].contains(&i) {
            return Err(TransformError::Wrt(format!(
                "input position {i} is given twice"
            )));
        }
        let ty = func.var_type(func.params[i]);
        if !ty.dtype.is_float() {
            return Err(TransformError::Wrt(format!(
                "input {i} (`{}`) is {ty}: only f32 and f64 inputs can be differentiated",
                func.var_name(func.params[i])
            )));
        }
    }
    if positions.is_empty() {
        let message = match wrt {
            Some(_) => format!(
                "no input positions given to differentiate `{}` with respect to",
                func.name
            ),
            None => format!(
                "`{}` has no float input to differentiate with respect to",
                func.name
            ),
        };
        return Err(TransformError::Wrt(message));
    }
    Ok(positions)
}

/// An error unless `func` has a float output (what reverse mode and Jacobians differentiate).
fn check_float_output(func: &Func, what: &str) -> Result<(), TransformError> {
    let types = func.output_types();
    if types.iter().any(|t| t.dtype.is_float()) {
        return Ok(());
    }
    let shown: Vec<String> = types.iter().map(|t| t.to_string()).collect();
    Err(TransformError::NoFloatOutput(format!(
        "`{what}` needs a function with a float output, but `{}` returns ({})",
        func.name,
        shown.join(", ")
    )))
}

fn check_scalar(func: &Func, what: &str) -> Result<(), TransformError> {
    let types = func.output_types();
    if types.len() != 1 || types[0].rank() != 0 || !types[0].dtype.is_float() {
        let shown: Vec<String> = types.iter().map(|t| t.to_string()).collect();
        return Err(TransformError::NotScalar(format!(
            "`{what}` needs a function with one float scalar output, but `{}` returns ({})",
            func.name,
            shown.join(", ")
        )));
    }
    Ok(())
}

/// The reverse-mode pieces of `func`: its linearization and the transpose of the linear part.
struct Reverse {
    lin: Linearized,
    transposed: Func,
}

fn reverse(func: &Func, wrt: &[usize]) -> Result<Reverse, TransformError> {
    let j = jvp(func, Some(wrt))?;
    let lin = linearize_jvp(&j, func.params.len(), func.outputs.len())?;
    let transposed = transpose(&lin.linear, lin.n_residuals())?;
    Ok(Reverse { lin, transposed })
}

/// Builds `name(x1..xn, extra params...)` whose body runs the primal part, then the transposed
/// part on the residuals and `seeds(builder, extra params)`; `pick` chooses the outputs from
/// `(primal outputs, input cotangents)`.
fn compose_reverse(
    func: &Func,
    rev: &Reverse,
    name: String,
    extra: &[Type],
    seeds: impl FnOnce(&mut Builder, &[Atom]) -> Vec<Atom>,
    pick: impl FnOnce(Vec<Atom>, Vec<Atom>) -> Vec<Atom>,
) -> Result<Func, TransformError> {
    let mut b = Builder::new(name);
    b.reserve(rev.lin.primal.eqns.len() + rev.transposed.eqns.len());
    let xs: Vec<Atom> = func
        .param_types()
        .iter()
        .map(|t| Atom::Var(b.param(t)))
        .collect();
    let extras: Vec<Atom> = extra.iter().map(|t| Atom::Var(b.param(t))).collect();
    let mut primal_out = b.inline(&rev.lin.primal, &xs);
    let residuals = primal_out.split_off(rev.lin.n_outputs);
    let mut args = residuals;
    args.extend(seeds(&mut b, &extras));
    let cts = b.inline(&rev.transposed, &args);
    let outputs = pick(primal_out, cts);
    Ok(eliminate_dead_code(finish(b, &outputs)?))
}

/// Reverse mode: `(x1..xn, one cotangent per float output) -> (y1..ym, one cotangent per
/// input in wrt)`.
pub fn vjp(func: &Func, wrt: Option<&[usize]>) -> Result<Func, TransformError> {
    check_float_output(func, "vjp")?;
    let wrt = check_wrt(func, wrt)?;
    let rev = reverse(func, &wrt)?;
    let cotangent_types = func.float_output_types();
    compose_reverse(
        func,
        &rev,
        format!("vjp_{}", func.name),
        &cotangent_types,
        |_, cts| cts.to_vec(),
        |mut ys, cts| {
            ys.extend(cts);
            ys
        },
    )
}

/// The gradient of a function with one float scalar output: `(x1..xn) -> one gradient per
/// input in wrt`.
pub fn grad(func: &Func, wrt: Option<&[usize]>) -> Result<Func, TransformError> {
    scalar_reverse(func, wrt, "grad", false)
}

/// `(x1..xn) -> (y, one gradient per input in wrt)`.
pub fn value_and_grad(func: &Func, wrt: Option<&[usize]>) -> Result<Func, TransformError> {
    scalar_reverse(func, wrt, "value_and_grad", true)
}

/// Reverse mode of a scalar function seeded with the cotangent 1, returning the gradients,
/// preceded by the value when `with_value`.
fn scalar_reverse(
    func: &Func,
    wrt: Option<&[usize]>,
    what: &str,
    with_value: bool,
) -> Result<Func, TransformError> {
    check_scalar(func, what)?;
    let wrt = check_wrt(func, wrt)?;
    let rev = reverse(func, &wrt)?;
    let dtype = func.output_types()[0].dtype;
    compose_reverse(
        func,
        &rev,
        format!("{what}_{}", func.name),
        &[],
        |b, _| vec![b.lit(1.0, dtype)],
        |mut ys, cts| {
            if !with_value {
                ys.clear();
            }
            ys.extend(cts);
            ys
        },
    )
}

/// Hessian-vector products by forward-over-reverse, `jvp(simplify(grad(f)))`:
/// `(x1..xn, one vector per input in wrt) -> one H·v per input in wrt`.
pub fn hvp(func: &Func, wrt: Option<&[usize]>) -> Result<Func, TransformError> {
    check_scalar(func, "hvp")?;
    let wrt = check_wrt(func, wrt)?;
    let g = grad(func, Some(&wrt))?;
    // The gradient simplified first, so that its jvp shares the gradient's local derivatives
    // (docs/simplify.md); not when the hvp (about three times the gradient) would be too
    // large for the e-graph anyway, where the work would buy nothing.
    let limits = Limits::for_size(g.eqns.len());
    let g = if 3 * g.eqns.len() <= limits.max_eqns {
        simplify(&g, &limits).0
    } else {
        g
    };
    let mut jg = jvp(&g, Some(&wrt))?;
    jg.outputs.drain(..wrt.len());
    jg.name = format!("hvp_{}", func.name);
    Ok(eliminate_dead_code(jg))
}

/// Transposes `func` with respect to the inputs at positions `linear` (default: every float
/// input), which it must be linear in: `(the other inputs..., one cotangent per output) ->
/// one cotangent per input in linear`.
pub fn transpose_wrt(func: &Func, linear: Option<&[usize]>) -> Result<Func, TransformError> {
    let linear = check_wrt(func, linear)?;
    let others: Vec<usize> = (0..func.params.len())
        .filter(|i| !linear.contains(i))
        .collect();
    // The same function with the linear inputs moved last (parameter order is only a list).
    let mut reordered = func.clone();
    reordered.params = others
        .iter()
        .chain(&linear)
        .map(|&i| func.params[i])
        .collect();
    let mut t = transpose(&reordered, others.len())?;
    t.name = format!("transpose_{}", func.name);
    Ok(t)
}

/// Keeps only the outputs at `positions`, in that order, and removes the work no kept output
/// needs: `(x1..xn) -> (y_i for i in positions)`. With it a derivative program returns what a
/// JAX user would keep of it, as in the double-vjp trick `vjp(vjp(f))` where only the last
/// cotangent is wanted and the first backward pass is then dead.
pub fn select_outputs(func: &Func, positions: &[usize]) -> Result<Func, TransformError> {
    let n = func.outputs.len();
    if positions.is_empty() {
        return Err(TransformError::Wrt(
            "outputs: no output positions given (expected e.g. outputs:0,2)".into(),
        ));
    }
    for (k, &i) in positions.iter().enumerate() {
        if i >= n {
            return Err(TransformError::Wrt(format!(
                "output position {i} is out of range: `{}` has {n} output(s)",
                func.name
            )));
        }
        if positions[..k].contains(&i) {
            return Err(TransformError::Wrt(format!(
                "output position {i} is given twice"
            )));
        }
    }
    let mut kept = func.clone();
    kept.outputs = positions.iter().map(|&i| func.outputs[i]).collect();
    Ok(eliminate_dead_code(kept))
}

#[cfg(test)]
mod tests {
    use traceform_ir::parse_func;

    use super::*;

    fn f() -> Func {
        parse_func(
            "func f(x: f32[2], n: i32[], y: f32[]) -> f32[] {
  s: f32[] = reduce_sum[axes=(0)] x
  r: f32[] = mul s y
  return r
}",
        )
        .unwrap()
    }

    fn wrt_error(func: &Func, wrt: Option<&[usize]>) -> String {
        match check_wrt(func, wrt).unwrap_err() {
            TransformError::Wrt(message) => message,
            other => panic!("not a wrt error: {other}"),
        }
    }

    #[test]
    fn check_wrt_defaults_to_the_float_inputs_and_says_what_is_wrong() {
        let f = f();
        assert_eq!(check_wrt(&f, None).unwrap(), [0, 2]);
        assert_eq!(check_wrt(&f, Some(&[2, 0])).unwrap(), [2, 0]);
        assert_eq!(
            wrt_error(&f, Some(&[])),
            "no input positions given to differentiate `f` with respect to"
        );
        assert_eq!(
            wrt_error(&f, Some(&[0, 3])),
            "input position 3 is out of range: `f` has 3 input(s)"
        );
        assert_eq!(
            wrt_error(&f, Some(&[2, 2])),
            "input position 2 is given twice"
        );
        assert_eq!(
            wrt_error(&f, Some(&[1])),
            "input 1 (`n`) is i32[]: only f32 and f64 inputs can be differentiated"
        );
        let ints = parse_func("func g(n: i32[]) -> i32[] {\n  return n\n}").unwrap();
        assert_eq!(
            wrt_error(&ints, None),
            "`g` has no float input to differentiate with respect to"
        );
    }

    #[test]
    fn grad_and_hvp_name_a_non_scalar_output() {
        let v = parse_func("func v(x: f32[2]) -> f32[2] {\n  y: f32[2] = sin x\n  return y\n}")
            .unwrap();
        for (what, e) in [("grad", grad(&v, None)), ("hvp", hvp(&v, None))] {
            let e = e.unwrap_err();
            assert!(matches!(e, TransformError::NotScalar(_)), "{e}");
            assert_eq!(
                e.to_string(),
                format!(
                    "`{what}` needs a function with one float scalar output, but `v` returns (f32[2])"
                )
            );
        }
    }
}
