//! The reference interpreter: one loop over the equations (no recursion), each operand looked
//! up in an environment indexed by value, each value dropped right after its last use.

use std::borrow::Cow;

use traceform_ir::{Atom, Func, Type};

use crate::kernels::{apply, KernelError};
use crate::value::Value;

/// Why a function could not be evaluated.
#[derive(Clone, Debug, thiserror::Error)]
pub enum EvalError {
    /// The caller's inputs do not fit the signature.
    #[error("{0}")]
    Input(String),
    /// A kernel rejected verified operands: a bug in traceform.
    #[error("internal error in equation {eqn} (`{name}`): {source}")]
    Kernel {
        eqn: usize,
        name: String,
        source: KernelError,
    },
}

/// What one evaluation measured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvalStats {
    /// The most bytes of intermediate values live at once (inputs and outputs excluded).
    pub peak_bytes: usize,
}

/// Checks that `inputs` match the parameter types of `func`.
pub fn check_inputs(func: &Func, inputs: &[Value]) -> Result<(), EvalError> {
    let want = func.param_types();
    if inputs.len() != want.len() {
        return Err(EvalError::Input(format!(
            "`{}` takes {} input(s), given {}",
            func.name,
            want.len(),
            inputs.len()
        )));
    }
    for (i, (v, t)) in inputs.iter().zip(&want).enumerate() {
        let got: Type = v.ty();
        if &got != t {
            return Err(EvalError::Input(format!(
                "input {i} (`{}`) must be {t}, given {got}",
                func.var_name(func.params[i])
            )));
        }
    }
    Ok(())
}

/// Evaluates `func` on `inputs`.
pub fn eval(func: &Func, inputs: &[Value]) -> Result<Vec<Value>, EvalError> {
    eval_with_stats(func, inputs).map(|(outs, _)| outs)
}

/// Evaluates `func` on `inputs`, also reporting the peak of live intermediate memory.
pub fn eval_with_stats(
    func: &Func,
    inputs: &[Value],
) -> Result<(Vec<Value>, EvalStats), EvalError> {
    check_inputs(func, inputs)?;
    let n = func.vars.len();
    let last_use = func.last_uses();
    let mut is_output = vec![false; n];
    for a in &func.outputs {
        if let Atom::Var(v) = a {
            is_output[v.index()] = true;
        }
    }
    let mut is_input = vec![false; n];
    let mut env: Vec<Option<Cow<'_, Value>>> = vec![None; n];
    for (p, v) in func.params.iter().zip(inputs) {
        env[p.index()] = Some(Cow::Borrowed(v));
        is_input[p.index()] = true;
    }
    let counted = |i: usize| !is_input[i] && !is_output[i];
    let (mut live, mut peak) = (0usize, 0usize);
    for (i, eqn) in func.eqns.iter().enumerate() {
        let literals: Vec<Value> = eqn
            .args
            .iter()
            .filter_map(|a| match a {
                Atom::Lit(l) => Some(Value::from_literal(l)),
                Atom::Var(_) => None,
            })
            .collect();
        let mut lit_iter = literals.iter();
        let args: Vec<&Value> = eqn
            .args
            .iter()
            .map(|a| match a {
                Atom::Var(v) => env[v.index()]
                    .as_deref()
                    .expect("verified: defined before use"),
                Atom::Lit(_) => lit_iter.next().expect("one value per literal"),
            })
            .collect();
        let out_ty = func.var_type(eqn.out);
        let value = apply(&eqn.prim, &args, out_ty).map_err(|source| EvalError::Kernel {
            eqn: i,
            name: func.var_name(eqn.out).to_string(),
            source,
        })?;
        debug_assert_eq!(&value.ty(), out_ty, "kernel of `{}`", eqn.prim.name());
        if counted(eqn.out.index()) {
            live += value.size_bytes();
            peak = peak.max(live);
        }
        env[eqn.out.index()] = Some(Cow::Owned(value));
        for a in &eqn.args {
            if let Atom::Var(v) = a {
                let k = v.index();
                if last_use[k] == i && !is_output[k] {
                    if let Some(old) = env[k].take() {
                        if counted(k) {
                            live -= old.size_bytes();
                        }
                    }
                }
            }
        }
        // A result nobody reads is dead on arrival.
        let k = eqn.out.index();
        if last_use[k] == usize::MAX && !is_output[k] {
            if let Some(old) = env[k].take() {
                live -= old.size_bytes();
            }
        }
    }
    let outputs = func
        .outputs
        .iter()
        .map(|a| match a {
            Atom::Var(v) => env[v.index()]
                .as_deref()
                .cloned()
                .expect("verified: outputs are defined"),
            Atom::Lit(l) => Value::from_literal(l),
        })
        .collect();
    Ok((outputs, EvalStats { peak_bytes: peak }))
}
