//! The canonical printer of the text IR. Deterministic: the same function always prints to
//! the same text, every binder with its type and every literal with its dtype, so that
//! `parse(print(f)) == f`.

use std::fmt::Write;

use crate::attrs::{prim_attrs, AttrValue};
use crate::func::{Atom, Func, Literal, Module};
use crate::types::DType;

/// Formats a float so that parsing it gives back the same f64 (`inf`, `-inf`, `nan`, and the
/// shortest round-trip decimal otherwise, always with a `.` or an exponent).
pub fn format_float(x: f64) -> String {
    if x.is_nan() {
        "nan".into()
    } else if x.is_infinite() {
        if x > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        format!("{x:?}")
    }
}

pub fn format_literal(l: &Literal) -> String {
    match l.dtype {
        DType::Bool => if l.value != 0.0 { "true" } else { "false" }.into(),
        DType::I32 => format!("{}:i32", l.value as i64),
        DType::F32 | DType::F64 => format!("{}:{}", format_float(l.value), l.dtype),
    }
}

fn format_attr_value(v: &AttrValue, out: &mut String) {
    match v {
        AttrValue::Int(i) => {
            let _ = write!(out, "{i}");
        }
        AttrValue::Float(x) => out.push_str(&format_float(*x)),
        AttrValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        AttrValue::Name(n) => out.push_str(n),
        AttrValue::Tuple(items) => {
            out.push('(');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                format_attr_value(item, out);
            }
            out.push(')');
        }
    }
}

fn format_atom(func: &Func, a: &Atom) -> String {
    match a {
        Atom::Var(v) => func.var_name(*v).to_string(),
        Atom::Lit(l) => format_literal(l),
    }
}

/// Prints one function.
pub fn print_func(func: &Func) -> String {
    let mut out = String::with_capacity(64 + 48 * func.eqns.len());
    let params: Vec<String> = func
        .params
        .iter()
        .map(|&p| format!("{}: {}", func.var_name(p), func.var_type(p)))
        .collect();
    let results: Vec<String> = func.output_types().iter().map(|t| t.to_string()).collect();
    let results = if results.len() == 1 {
        results[0].clone()
    } else {
        format!("({})", results.join(", "))
    };
    let _ = writeln!(
        out,
        "func {}({}) -> {} {{",
        func.name,
        params.join(", "),
        results
    );
    for eqn in &func.eqns {
        let _ = write!(
            out,
            "  {}: {} = {}",
            func.var_name(eqn.out),
            func.var_type(eqn.out),
            eqn.prim.name()
        );
        let attrs = prim_attrs(&eqn.prim);
        if !attrs.is_empty() {
            out.push('[');
            for (i, (name, value)) in attrs.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(name);
                out.push('=');
                format_attr_value(value, &mut out);
            }
            out.push(']');
        }
        for a in &eqn.args {
            out.push(' ');
            out.push_str(&format_atom(func, a));
        }
        out.push('\n');
    }
    let outs: Vec<String> = func.outputs.iter().map(|a| format_atom(func, a)).collect();
    let _ = writeln!(out, "  return {}", outs.join(", "));
    out.push_str("}\n");
    out
}

/// Prints every function of a module, separated by blank lines.
pub fn print_module(module: &Module) -> String {
    let texts: Vec<String> = module.funcs.iter().map(print_func).collect();
    texts.join("\n")
}
