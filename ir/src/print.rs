//! The canonical printer of the text IR. Deterministic: the same function always prints to
//! the same text, every binder with its type and every literal with its dtype (floats in the
//! shortest form that reads back to the same value in that dtype: `0.1:f32`), so that
//! `parse(print(f)) == f`.
//!
//! Names are derived here: a value named in parsed text keeps its name (the function's side
//! table); any other value is `x<i>` for parameter `i` and `v<k>` for the result of equation
//! `k`, with a `_<j>` suffix in the rare case that collides with a parsed name. Printing
//! streams to any `io::Write` and formats each distinct type and primitive once, so a function
//! of millions of equations prints without building its text in memory.

use std::io::{self, Write};

use rustc_hash::FxHashSet;

use crate::attrs::{prim_attrs, AttrValue};
use crate::func::{Atom, Func, Literal, Module, Var};
use crate::intern::Id;
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

/// A literal as the text IR writes it. An f32 literal is printed in the shortest form that
/// rounds back to the same f32 (`0.1:f32`, not its f64 expansion).
pub fn format_literal(l: &Literal) -> String {
    let mut out = Vec::new();
    write_literal(l, &mut out).expect("writing to a Vec cannot fail");
    String::from_utf8(out).expect("literals are ASCII")
}

/// Writes a literal as `format_literal` formats it.
pub fn write_literal(l: &Literal, out: &mut impl Write) -> io::Result<()> {
    match l.dtype {
        DType::Bool => out.write_all(if l.value != 0.0 { b"true" } else { b"false" }),
        DType::I32 => write!(out, "{}:i32", l.value as i64),
        DType::F32 if l.value.is_finite() => write!(out, "{:?}:f32", l.value as f32),
        DType::F32 | DType::F64 if l.value.is_finite() => write!(out, "{:?}:{}", l.value, l.dtype),
        DType::F32 | DType::F64 => write!(out, "{}:{}", format_float(l.value), l.dtype),
    }
}

fn format_attr_value(v: &AttrValue, out: &mut String) {
    match v {
        AttrValue::Int(i) => out.push_str(&i.to_string()),
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

/// How a value is named when printed.
#[derive(Clone, Copy, Debug)]
enum Name {
    /// Its own name, from parsed text.
    Own,
    /// `x<i>`: parameter `i`.
    Param(u32),
    /// `v<k>`: the result of equation `k`.
    Value(u32),
    /// A derived name that collided with a parsed one: entry `j` of `Namer::renamed`.
    Renamed(u32),
    /// Not bound (only in functions that do not verify).
    Unbound,
}

/// The printed name of every value of one function.
pub struct Namer<'f> {
    func: &'f Func,
    names: Vec<Name>,
    renamed: Vec<String>,
}

impl<'f> Namer<'f> {
    pub fn new(func: &'f Func) -> Namer<'f> {
        let mut names = vec![Name::Unbound; func.num_vars()];
        let params = func.params.iter().enumerate();
        for (i, &p) in params {
            names[p.index()] = Name::Param(i as u32);
        }
        for (k, eqn) in func.eqns.iter().enumerate() {
            names[eqn.out.index()] = Name::Value(k as u32);
        }
        let mut namer = Namer {
            func,
            names,
            renamed: Vec::new(),
        };
        if !func.names.is_empty() {
            namer.keep_parsed_names();
        }
        namer
    }

    /// Parsed names win; a derived name equal to one of them gets a `_<j>` suffix.
    fn keep_parsed_names(&mut self) {
        for (v, _) in self.func.names.iter() {
            if v.index() < self.names.len() {
                self.names[v.index()] = Name::Own;
            }
        }
        let derived = |n: &Name| matches!(n, Name::Param(_) | Name::Value(_));
        if !self.names.iter().any(derived) {
            return;
        }
        let taken: FxHashSet<&str> = self.func.names.iter().map(|(_, n)| n).collect();
        for i in 0..self.names.len() {
            let derived = match self.names[i] {
                Name::Param(_) | Name::Value(_) => self.name(Var(i as u32)),
                _ => continue,
            };
            if taken.contains(derived.as_str()) {
                let free = (1..)
                    .map(|j| format!("{derived}_{j}"))
                    .find(|c| !taken.contains(c.as_str()))
                    .expect("an unbounded search finds a free name");
                self.names[i] = Name::Renamed(self.renamed.len() as u32);
                self.renamed.push(free);
            }
        }
    }

    /// Writes the name of `v`.
    pub fn write(&self, v: Var, out: &mut impl Write) -> io::Result<()> {
        match self.names.get(v.index()).copied().unwrap_or(Name::Unbound) {
            Name::Own => out.write_all(self.func.names.get(v).unwrap_or("?").as_bytes()),
            Name::Param(i) => write_numbered(b'x', i, out),
            Name::Value(k) => write_numbered(b'v', k, out),
            Name::Renamed(j) => out.write_all(self.renamed[j as usize].as_bytes()),
            Name::Unbound => write!(out, "_unbound{}", v.0),
        }
    }

    /// The name of `v`.
    pub fn name(&self, v: Var) -> String {
        let mut buf = Vec::new();
        let _ = self.write(v, &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }

    fn write_atom(&self, a: &Atom, out: &mut impl Write) -> io::Result<()> {
        match a {
            Atom::Var(v) => self.write(*v, out),
            Atom::Lit(l) => write_literal(l, out),
        }
    }
}

/// Writes `prefix` followed by the decimal digits of `n` (the printer's hot path: one
/// `write_all` instead of the formatting machinery).
fn write_numbered(prefix: u8, mut n: u32, out: &mut impl Write) -> io::Result<()> {
    let mut buf = [0u8; 11];
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    at -= 1;
    buf[at] = prefix;
    out.write_all(&buf[at..])
}

/// The text of a primitive with its attributes (`reduce_sum[axes=(0)]`).
pub fn format_prim(prim: &crate::prim::Prim) -> String {
    let mut out = String::from(prim.name());
    let attrs = prim_attrs(prim);
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
    out
}

/// Writes one function.
pub fn write_func(func: &Func, out: &mut impl Write) -> io::Result<()> {
    let namer = Namer::new(func);
    let type_text: Vec<String> = (0..func.types().len())
        .map(|i| func.types().get(Id::from_index(i)).to_string())
        .collect();
    let prim_text: Vec<String> = (0..func.prims().len())
        .map(|i| format_prim(func.prims().get(Id::from_index(i))))
        .collect();
    write!(out, "func {}(", func.name)?;
    for (i, &p) in func.params.iter().enumerate() {
        if i > 0 {
            out.write_all(b", ")?;
        }
        namer.write(p, out)?;
        write!(out, ": {}", type_text[func.var_type_id(p).index()])?;
    }
    out.write_all(b") -> ")?;
    let results: Vec<String> = func.output_types().iter().map(|t| t.to_string()).collect();
    if results.len() == 1 {
        out.write_all(results[0].as_bytes())?;
    } else {
        write!(out, "({})", results.join(", "))?;
    }
    out.write_all(b" {\n")?;
    for eqn in &func.eqns {
        out.write_all(b"  ")?;
        namer.write(eqn.out, out)?;
        out.write_all(b": ")?;
        out.write_all(type_text[func.var_type_id(eqn.out).index()].as_bytes())?;
        out.write_all(b" = ")?;
        out.write_all(prim_text[eqn.prim.index()].as_bytes())?;
        for a in func.args(eqn) {
            out.write_all(b" ")?;
            namer.write_atom(a, out)?;
        }
        out.write_all(b"\n")?;
    }
    out.write_all(b"  return ")?;
    for (i, a) in func.outputs.iter().enumerate() {
        if i > 0 {
            out.write_all(b", ")?;
        }
        namer.write_atom(a, out)?;
    }
    out.write_all(b"\n}\n")
}

/// Prints one function.
pub fn print_func(func: &Func) -> String {
    let mut buf = Vec::with_capacity(64 + 48 * func.eqns.len());
    write_func(func, &mut buf).expect("writing to a Vec cannot fail");
    String::from_utf8(buf).expect("the printer writes UTF-8")
}

/// Prints every function of a module, separated by blank lines.
pub fn print_module(module: &Module) -> String {
    let texts: Vec<String> = module.funcs.iter().map(print_func).collect();
    texts.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_func;

    #[test]
    fn f32_literals_print_shortest() {
        assert_eq!(format_literal(&Literal::new(0.1, DType::F32)), "0.1:f32");
        assert_eq!(format_literal(&Literal::new(0.1, DType::F64)), "0.1:f64");
        assert_eq!(
            format_literal(&Literal::new(1e-45, DType::F32)),
            "1e-45:f32"
        );
        assert_eq!(format_literal(&Literal::new(-0.0, DType::F32)), "-0.0:f32");
        assert_eq!(
            format_literal(&Literal::new(f64::NAN, DType::F32)),
            "nan:f32"
        );
        for x in [0.1, 1.0 / 3.0, 3.4e38, 1.17549435e-38, 16777217.0] {
            let l = Literal::new(x, DType::F32);
            let text = format_literal(&l);
            let back: f64 = text.trim_end_matches(":f32").parse().unwrap();
            assert_eq!(Literal::new(back, DType::F32), l, "{text}");
        }
    }

    #[test]
    fn derived_names_step_around_parsed_ones() {
        let f =
            parse_func("func f(v1: f32[2]) -> f32[2] {\n  x0: f32[2] = sin v1\n  return x0\n}\n")
                .unwrap();
        // A copy without its names prints derived ones; a parsed name is kept.
        let mut g = f.clone();
        g.names = Default::default();
        assert_eq!(
            print_func(&g),
            "func f(x0: f32[2]) -> f32[2] {\n  v0: f32[2] = sin x0\n  return v0\n}\n"
        );
        assert_eq!(
            print_func(&f),
            "func f(v1: f32[2]) -> f32[2] {\n  x0: f32[2] = sin v1\n  return x0\n}\n"
        );
        let mut h = g.clone();
        h.names.set(h.params[0], "v0");
        assert_eq!(
            print_func(&h),
            "func f(v0: f32[2]) -> f32[2] {\n  v0_1: f32[2] = sin v0\n  return v0_1\n}\n"
        );
        assert_eq!(parse_func(&print_func(&h)).unwrap(), h);
    }
}
