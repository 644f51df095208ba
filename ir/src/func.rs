//! The graph IR: a function of typed values and equations, in the style of a jaxpr.
//!
//! Values are `Var`s, dense `u32` indices into `Func::vars`, each bound once: by a parameter
//! or by one equation. Equations are kept in an order where every operand is bound before it
//! is used (a topological order), so every pass is a loop over `eqns`, never a recursion.

use std::fmt;
use std::panic::Location;

use crate::prim::Prim;
use crate::shape::{infer_type, TypeError};
use crate::types::{DType, Type};

/// A value of a function: an index into `Func::vars`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Var(pub u32);

impl Var {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A rank-0 constant written inline as an operand (`2.0:f32`, `true`). The value is stored
/// as f64, already rounded to its dtype (an f32 literal holds an f32-representable value).
#[derive(Clone, Copy, Debug)]
pub struct Literal {
    pub value: f64,
    pub dtype: DType,
}

impl Literal {
    /// A literal of `dtype`, rounding `value` to it (f32 rounding, i32 truncation, bool != 0).
    pub fn new(value: f64, dtype: DType) -> Literal {
        let value = match dtype {
            DType::F32 => value as f32 as f64,
            DType::F64 => value,
            DType::I32 => value as i32 as f64,
            DType::Bool => f64::from(u8::from(value != 0.0)),
        };
        Literal { value, dtype }
    }
}

impl PartialEq for Literal {
    /// Bitwise, so that NaN literals compare equal to themselves and 0.0 differs from -0.0.
    fn eq(&self, other: &Literal) -> bool {
        self.dtype == other.dtype && self.value.to_bits() == other.value.to_bits()
    }
}

/// An operand: a value or an inline literal.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Atom {
    Var(Var),
    Lit(Literal),
}

impl Atom {
    pub fn as_var(&self) -> Option<Var> {
        match self {
            Atom::Var(v) => Some(*v),
            Atom::Lit(_) => None,
        }
    }
}

/// One equation: `out = prim args`.
#[derive(Clone, Debug, PartialEq)]
pub struct Eqn {
    pub out: Var,
    pub prim: Prim,
    pub args: Vec<Atom>,
}

/// The name and type of a value.
#[derive(Clone, Debug, PartialEq)]
pub struct VarInfo {
    pub name: String,
    pub ty: Type,
}

/// Where an equation came from, for error messages. Not part of a function's identity.
#[derive(Clone, Copy, Debug, Default)]
pub enum Loc {
    #[default]
    Unknown,
    /// Line and column (1-based) in the text IR.
    Text { line: u32, col: u32 },
    /// The Rust source location of the traced call.
    Rust(&'static Location<'static>),
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loc::Unknown => f.write_str("<unknown>"),
            Loc::Text { line, col } => write!(f, "{line}:{col}"),
            Loc::Rust(l) => write!(f, "{}:{}:{}", l.file(), l.line(), l.column()),
        }
    }
}

/// A function: parameters, equations in dependency order, and the returned atoms.
#[derive(Clone, Debug, Default)]
pub struct Func {
    pub name: String,
    pub vars: Vec<VarInfo>,
    pub params: Vec<Var>,
    pub eqns: Vec<Eqn>,
    pub outputs: Vec<Atom>,
    /// One entry per equation (may be empty when unknown).
    pub locs: Vec<Loc>,
}

impl PartialEq for Func {
    /// Structural equality; source locations are ignored.
    fn eq(&self, other: &Func) -> bool {
        self.name == other.name
            && self.vars == other.vars
            && self.params == other.params
            && self.eqns == other.eqns
            && self.outputs == other.outputs
    }
}

impl Func {
    /// The type of an operand.
    pub fn atom_type(&self, atom: &Atom) -> Type {
        match atom {
            Atom::Var(v) => self.vars[v.index()].ty.clone(),
            Atom::Lit(l) => Type::scalar(l.dtype),
        }
    }

    pub fn var_type(&self, v: Var) -> &Type {
        &self.vars[v.index()].ty
    }

    pub fn var_name(&self, v: Var) -> &str {
        &self.vars[v.index()].name
    }

    pub fn param_types(&self) -> Vec<Type> {
        self.params
            .iter()
            .map(|&p| self.var_type(p).clone())
            .collect()
    }

    pub fn output_types(&self) -> Vec<Type> {
        self.outputs.iter().map(|a| self.atom_type(a)).collect()
    }

    /// Where equation `i` came from.
    pub fn loc(&self, i: usize) -> Loc {
        self.locs.get(i).copied().unwrap_or_default()
    }

    /// For each value, the index of the last equation that reads it (`usize::MAX` for values
    /// never read by an equation). Outputs are not counted: callers keep those themselves.
    pub fn last_uses(&self) -> Vec<usize> {
        let mut last = vec![usize::MAX; self.vars.len()];
        for (i, eqn) in self.eqns.iter().enumerate() {
            for a in &eqn.args {
                if let Atom::Var(v) = a {
                    last[v.index()] = i;
                }
            }
        }
        last
    }
}

/// A module: one or more functions; the first is the entry point.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Module {
    pub funcs: Vec<Func>,
}

impl Module {
    pub fn entry(&self) -> Option<&Func> {
        self.funcs.first()
    }
}

/// Builds a `Func` equation by equation, inferring each result type. Fresh names are
/// `x0, x1, ...` for parameters and `v0, v1, ...` for equation results, as in the corpus.
#[derive(Clone, Debug, Default)]
pub struct FuncBuilder {
    func: Func,
}

impl FuncBuilder {
    pub fn new(name: impl Into<String>) -> FuncBuilder {
        FuncBuilder {
            func: Func {
                name: name.into(),
                ..Func::default()
            },
        }
    }

    /// The function built so far.
    pub fn func(&self) -> &Func {
        &self.func
    }

    fn new_var(&mut self, name: String, ty: Type) -> Var {
        let v = Var(self.func.vars.len() as u32);
        self.func.vars.push(VarInfo { name, ty });
        v
    }

    /// Adds a parameter named `x<i>`.
    pub fn param(&mut self, ty: Type) -> Var {
        let name = format!("x{}", self.func.params.len());
        self.param_named(name, ty)
    }

    pub fn param_named(&mut self, name: String, ty: Type) -> Var {
        let v = self.new_var(name, ty);
        self.func.params.push(v);
        v
    }

    /// Appends `v<k> = prim args`, with the type the shape rule infers.
    pub fn eqn(&mut self, prim: Prim, args: Vec<Atom>, loc: Loc) -> Result<Var, TypeError> {
        let name = format!("v{}", self.func.eqns.len());
        self.eqn_named(name, prim, args, loc)
    }

    pub fn eqn_named(
        &mut self,
        name: String,
        prim: Prim,
        args: Vec<Atom>,
        loc: Loc,
    ) -> Result<Var, TypeError> {
        let arg_types: Vec<Type> = args.iter().map(|a| self.func.atom_type(a)).collect();
        let ty = infer_type(&prim, &arg_types)?;
        let out = self.new_var(name, ty);
        self.func.eqns.push(Eqn { out, prim, args });
        self.func.locs.push(loc);
        Ok(out)
    }

    pub fn atom_type(&self, a: &Atom) -> Type {
        self.func.atom_type(a)
    }

    pub fn finish(mut self, outputs: Vec<Atom>) -> Func {
        self.func.outputs = outputs;
        self.func
    }
}
