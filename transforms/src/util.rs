//! Small tensor helpers the derivative rules share: symbolic zeros and their instantiation,
//! broadcasting a rank-0 tangent to a result shape, and summing a cotangent back down to a
//! rank-0 operand.

use traceform_ir::{Atom, Eqn, Func, Tensor, Tracer, Type};

/// A tangent or cotangent: `None` is a symbolic zero, which never becomes IR.
pub type Tan = Option<Tensor>;

/// The tangent, or real zeros where it is symbolic.
pub fn instantiate(tracer: &Tracer, t: &Tan, ty: &Type) -> Tensor {
    match t {
        Some(t) => fit(t.clone(), &ty.shape),
        None => tracer.zeros(ty),
    }
}

/// A rank-0 tensor broadcast to `shape` (other tensors are returned as they are).
pub fn fit(t: Tensor, shape: &[usize]) -> Tensor {
    if t.rank() == 0 && !shape.is_empty() {
        t.broadcast_in_dim(shape, &[])
    } else {
        t
    }
}

/// The cotangent of an operand of type `ty` that an elementwise primitive broadcast
/// implicitly: summed over every axis when the operand is rank 0.
pub fn unbroadcast(ct: Tensor, ty: &Type) -> Tensor {
    if ty.rank() == 0 && ct.rank() > 0 {
        ct.sum_all()
    } else {
        ct
    }
}

/// Sum of two symbolic-or-real tangents.
pub fn add(a: Tan, b: Tan) -> Tan {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, None) => a,
        (None, b) => b,
    }
}

/// `eqn` as text (`v3 = mul v1 v2`), for error messages.
pub fn describe_eqn(func: &Func, eqn: &Eqn) -> String {
    let args: Vec<String> = eqn
        .args
        .iter()
        .map(|a| match a {
            Atom::Var(v) => func.var_name(*v).to_string(),
            Atom::Lit(l) => traceform_ir::format_literal(l),
        })
        .collect();
    format!(
        "`{} = {} {}`",
        func.var_name(eqn.out),
        eqn.prim.name(),
        args.join(" ")
    )
}
