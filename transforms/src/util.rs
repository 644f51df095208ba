//! Small helpers the derivative rules share: symbolic zeros and their instantiation,
//! broadcasting a rank-0 tangent to a result shape, summing a cotangent back down to a rank-0
//! operand, environments of atoms, and finishing a builder as a transform result.

use traceform_ir::{Atom, Builder, Eqn, Func, Namer, Type};

use crate::TransformError;

/// A tangent or cotangent: `None` is a symbolic zero, which never becomes IR.
pub type Tan = Option<Atom>;

/// The atom an operand of the source function stands for in the function being built.
pub fn lookup(env: &[Option<Atom>], a: &Atom) -> Atom {
    match a {
        Atom::Var(v) => env[v.index()].expect("verified: defined before use"),
        Atom::Lit(_) => *a,
    }
}

/// The tangent, or structural zeros where it is symbolic (a rank-0 zero is the literal 0, an
/// operand rather than an equation: the padding value of a `pad`, say).
pub fn instantiate(b: &mut Builder, t: Tan, ty: &Type) -> Atom {
    match t {
        Some(t) => fit(b, t, &ty.shape),
        None if ty.rank() == 0 => b.lit(0.0, ty.dtype),
        None => b.zeros(ty),
    }
}

/// A rank-0 atom broadcast to `shape` (other atoms are returned as they are).
pub fn fit(b: &mut Builder, t: Atom, shape: &[usize]) -> Atom {
    if b.ty(&t).rank() == 0 && !shape.is_empty() {
        b.broadcast_in_dim(t, shape, &[])
    } else {
        t
    }
}

/// A tensor of type `ty` filled with `value` (a value, not a structural zero).
pub fn full(b: &mut Builder, value: f64, ty: &Type) -> Atom {
    let lit = b.lit(value, ty.dtype);
    fit(b, lit, &ty.shape)
}

/// The cotangent of an operand of type `ty` that an elementwise primitive broadcast
/// implicitly: summed over every axis when the operand is rank 0.
pub fn unbroadcast(b: &mut Builder, ct: Atom, ty: &Type) -> Atom {
    let rank = b.ty(&ct).rank();
    if ty.rank() == 0 && rank > 0 {
        let axes: Vec<usize> = (0..rank).collect();
        b.reduce_sum(ct, &axes)
    } else {
        ct
    }
}

/// Sum of two symbolic-or-real tangents.
pub fn add(b: &mut Builder, x: Tan, y: Tan) -> Tan {
    match (x, y) {
        (Some(x), Some(y)) => Some(b.add(x, y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// The function a transform built, or its first error as an internal one: the rules only
/// emit equations that type-check, so a failure is a bug (reported with the location of the
/// user's equation being transformed).
pub fn finish(b: Builder, outputs: &[Atom]) -> Result<Func, TransformError> {
    let f = b.finish(outputs).map_err(|e| TransformError::Internal {
        message: e.message,
        loc: e.loc,
    })?;
    if cfg!(debug_assertions) {
        traceform_ir::verify_func(&f).map_err(|e| TransformError::Internal {
            message: format!("`{}` does not verify: {}", f.name, e.message),
            loc: e.loc,
        })?;
    }
    Ok(f)
}

/// `eqn` as text (`v3 = mul v1 v2`), for error messages.
pub fn describe_eqn(func: &Func, eqn: &Eqn) -> String {
    let namer = Namer::new(func);
    let args: Vec<String> = func
        .args(eqn)
        .iter()
        .map(|a| match a {
            Atom::Var(v) => namer.name(*v),
            Atom::Lit(l) => traceform_ir::format_literal(l),
        })
        .collect();
    let mut text = format!("`{} = {}", namer.name(eqn.out), func.prim(eqn).name());
    for a in args {
        text.push(' ');
        text.push_str(&a);
    }
    text.push('`');
    text
}
