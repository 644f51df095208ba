//! The verifier: run after parsing, tracing and every transform (in tests and debug builds).
//!
//! Invariants enforced, for every function:
//! 1. **Indices in range**: every `Var` named anywhere is below `vars.len()`.
//! 2. **Single assignment**: each value is bound exactly once, by a parameter or an equation.
//! 3. **Defined before use**: every operand and output is a parameter or the result of an
//!    earlier equation, so `eqns` is a topological order.
//! 4. **Arity and attributes**: each equation has its primitive's number of operands, and its
//!    attributes are in range for its operands (axes, permutations, slice bounds, ...).
//! 5. **Types**: the recorded type of each result equals the one the shape rule infers.
//! 6. **Literals**: an i32 literal is an integer within range; a bool literal is 0 or 1.
//! 7. **Printable names**: the names kept from parsed text are identifiers, not keywords, and
//!    unique in the function (other values get derived names, unique by construction), so
//!    that printing and re-parsing gives back the same function.
//! 8. **Results**: a function returns at least one atom; module function names are unique.
//!
//! It never recurses: one pass over the equations.

use rustc_hash::FxHashSet;
use smallvec::SmallVec;

use crate::func::{Atom, Func, Loc, Module, Var};
use crate::shape::infer_type;
use crate::types::{DType, Type};

/// A broken invariant, with the equation at fault when there is one.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct VerifyError {
    pub loc: Loc,
    pub message: String,
}

/// Words the text IR reserves; no value may be named with them.
pub const KEYWORDS: [&str; 10] = [
    "inf", "nan", "true", "false", "f32", "f64", "i32", "bool", "func", "return",
];

/// True for the words of `KEYWORDS` (a `match`, which compiles to a length switch: the parser
/// asks this of every name it reads).
pub fn is_keyword(word: &str) -> bool {
    // Every keyword starts with one of these letters; most names do not.
    if !matches!(
        word.as_bytes().first(),
        Some(b'i' | b'n' | b't' | b'f' | b'b' | b'r')
    ) {
        return false;
    }
    matches!(
        word,
        "inf" | "nan" | "true" | "false" | "f32" | "f64" | "i32" | "bool" | "func" | "return"
    )
}

/// True for a name that the parser reads back as a name.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !is_keyword(name)
}

/// Checks every invariant listed in the module doc.
pub fn verify_func(func: &Func) -> Result<(), VerifyError> {
    let n = func.num_vars();
    let fail = |loc: Loc, message: String| Err(VerifyError { loc, message });
    let mut defined = vec![false; n];
    let mut names = FxHashSet::default();
    names.reserve(if func.names.is_empty() { 0 } else { n });
    for (v, name) in func.names.iter() {
        if !is_valid_name(name) {
            return fail(Loc::Unknown, format!("`{name}` is not a valid value name"));
        }
        if v.index() >= n {
            return fail(Loc::Unknown, format!("the name `{name}` names no value"));
        }
        if !names.insert(name) {
            return fail(Loc::Unknown, format!("the name `{name}` is used twice"));
        }
    }
    let name = |v: Var| func.var_name(v);
    for &p in &func.params {
        if p.index() >= n {
            return fail(Loc::Unknown, format!("parameter {} is out of range", p.0));
        }
        if defined[p.index()] {
            return fail(
                Loc::Unknown,
                format!("parameter `{}` is bound twice", name(p)),
            );
        }
        defined[p.index()] = true;
    }
    let check_atom = |atom: &Atom,
                      defined: &[bool],
                      loc: Loc,
                      what: &dyn Fn() -> String|
     -> Result<(), VerifyError> {
        match atom {
            Atom::Var(v) if v.index() >= n => Err(VerifyError {
                loc,
                message: format!("{} refers to value {} which does not exist", what(), v.0),
            }),
            Atom::Var(v) if !defined[v.index()] => Err(VerifyError {
                loc,
                message: format!("{} `{}` is used before it is defined", what(), name(*v)),
            }),
            Atom::Var(_) => Ok(()),
            Atom::Lit(l) => match l.dtype {
                DType::I32
                    if l.value.fract() != 0.0
                        || !(f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&l.value) =>
                {
                    Err(VerifyError {
                        loc,
                        message: format!("{}: {} is not an i32", what(), l.value),
                    })
                }
                DType::Bool if l.value != 0.0 && l.value != 1.0 => Err(VerifyError {
                    loc,
                    message: format!("{}: {} is not a bool", what(), l.value),
                }),
                _ => Ok(()),
            },
        }
    };
    for eqn in &func.eqns {
        let loc = eqn.loc;
        let prim = func.prim(eqn);
        let args = func.args(eqn);
        for (k, a) in args.iter().enumerate() {
            check_atom(a, &defined, loc, &|| {
                format!("operand {} of `{}`", k + 1, prim.name())
            })?;
        }
        let out = eqn.out.index();
        if out >= n {
            return fail(loc, format!("result of `{}` is out of range", prim.name()));
        }
        if defined[out] {
            return fail(loc, format!("`{}` is bound twice", name(eqn.out)));
        }
        let arg_types: SmallVec<[&Type; 4]> = args.iter().map(|a| func.atom_type(a)).collect();
        let inferred = infer_type(prim, &arg_types).map_err(|e| VerifyError {
            loc,
            message: e.message,
        })?;
        let declared = func.var_type(eqn.out);
        if &inferred != declared {
            return fail(
                loc,
                format!(
                    "`{}` is declared {declared} but `{}` gives {inferred}",
                    name(eqn.out),
                    prim.name()
                ),
            );
        }
        defined[out] = true;
    }
    if func.outputs.is_empty() {
        return fail(
            Loc::Unknown,
            format!("function `{}` returns nothing", func.name),
        );
    }
    for a in &func.outputs {
        check_atom(a, &defined, Loc::Unknown, &|| "returned value".to_string())?;
    }
    Ok(())
}

/// Verifies every function of a module, and that their names are unique.
pub fn verify_module(module: &Module) -> Result<(), VerifyError> {
    if module.funcs.is_empty() {
        return Err(VerifyError {
            loc: Loc::Unknown,
            message: "a module needs at least one function".into(),
        });
    }
    for (i, f) in module.funcs.iter().enumerate() {
        if module.funcs[..i].iter().any(|g| g.name == f.name) {
            return Err(VerifyError {
                loc: Loc::Unknown,
                message: format!("function `{}` is defined twice", f.name),
            });
        }
        verify_func(f)?;
    }
    Ok(())
}
