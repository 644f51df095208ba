//! The graph IR: a function of typed values and equations, in the style of a jaxpr, stored
//! compactly in the style of Cranelift's entity tables.
//!
//! Values are `Var`s, dense `u32` indices, each bound once: by a parameter or by one
//! equation. A value's type is a `TypeId` into the function's type table; an equation is a
//! `PrimId` into its primitive table (attributes included), its result, a range of the flat
//! operand pool, and the source location it came from. Names are not stored per value: the
//! printer derives them (`x0`, `v3`), except for values whose names came from parsed text,
//! which a side table keeps so that `parse(print(f)) == f` prints the user's names back.
//!
//! Equations are kept in an order where every operand is bound before it is used (a
//! topological order), so every pass is a loop over `eqns`, never a recursion.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::panic::Location;

use crate::intern::{Id, Table};
use crate::prim::Prim;
use crate::types::{DType, Type, TypeId, TypeTable};

/// A value of a function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Var(pub u32);

impl Var {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A primitive (with its attributes) interned in a function's primitive table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PrimId(u32);

impl Id for PrimId {
    fn from_index(i: usize) -> PrimId {
        PrimId(i as u32)
    }
    fn index(self) -> usize {
        self.0 as usize
    }
}

/// The distinct primitives of one function.
pub type PrimTable = Table<PrimId, Prim>;

/// A rank-0 constant written inline as an operand (`2.0:f32`, `true`). The value is stored
/// as f64, already rounded to its dtype (an f32 literal holds an f32-representable value).
/// Equality, ordering and hashing are bitwise, so NaN equals itself and 0.0 differs from -0.0.
#[derive(Clone, Copy, Debug)]
pub struct Literal {
    pub value: f64,
    pub dtype: DType,
}

impl Literal {
    /// A literal of `dtype`, rounding `value` to it (f32 rounding, i32 truncation with
    /// saturation, bool != 0).
    pub fn new(value: f64, dtype: DType) -> Literal {
        let value = match dtype {
            DType::F32 => value as f32 as f64,
            DType::F64 => value,
            DType::I32 => value as i32 as f64,
            DType::Bool => f64::from(u8::from(value != 0.0)),
        };
        Literal { value, dtype }
    }

    fn key(&self) -> (DType, u64) {
        (self.dtype, self.value.to_bits())
    }
}

impl PartialEq for Literal {
    fn eq(&self, other: &Literal) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Literal {}

impl Hash for Literal {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl PartialOrd for Literal {
    fn partial_cmp(&self, other: &Literal) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Literal {
    fn cmp(&self, other: &Literal) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

/// An operand: a value or an inline literal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
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

/// Where an equation came from, for error messages. Transforms copy it from the equation
/// each emitted equation derives from (as JAX carries `source_info`), so an error in a
/// transform of a transform still names the user's line. Not part of a function's identity.
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

/// One equation: `out = prim args`. 32 bytes; its operands live in the function's pool.
#[derive(Clone, Copy, Debug)]
pub struct Eqn {
    pub prim: PrimId,
    pub out: Var,
    pub(crate) args_start: u32,
    pub(crate) args_len: u32,
    pub loc: Loc,
}

/// Names that came from parsed text, by value, in one string buffer. Values without an
/// entry get a derived name when printed.
#[derive(Clone, Debug, Default)]
pub struct Names {
    pub(crate) text: String,
    /// Per value index: `(start, end)` in `text`; `(0, 0)` for none.
    pub(crate) spans: Vec<(u32, u32)>,
}

impl Names {
    pub fn get(&self, v: Var) -> Option<&str> {
        match self.spans.get(v.index()) {
            Some(&(s, e)) if e > s => Some(&self.text[s as usize..e as usize]),
            _ => None,
        }
    }

    pub fn set(&mut self, v: Var, name: &str) {
        if self.spans.len() <= v.index() {
            self.spans.resize(v.index() + 1, (0, 0));
        }
        let start = self.text.len() as u32;
        self.text.push_str(name);
        self.spans[v.index()] = (start, self.text.len() as u32);
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Every name held, for collision checks.
    pub fn iter(&self) -> impl Iterator<Item = (Var, &str)> {
        (0..self.spans.len()).filter_map(|i| {
            let v = Var(i as u32);
            self.get(v).map(|n| (v, n))
        })
    }
}

/// A function: parameters, equations in dependency order, and the returned atoms.
#[derive(Clone, Debug, Default)]
pub struct Func {
    pub name: String,
    pub params: Vec<Var>,
    pub eqns: Vec<Eqn>,
    pub outputs: Vec<Atom>,
    /// Names from parsed text (see `Names`).
    pub names: Names,
    pub(crate) types: TypeTable,
    pub(crate) prims: PrimTable,
    pub(crate) var_types: Vec<TypeId>,
    pub(crate) operands: Vec<Atom>,
}

impl Func {
    /// An empty function (what builders start from).
    pub(crate) fn empty(name: String) -> Func {
        Func {
            name,
            ..Func::default()
        }
    }

    /// Room for about `eqns` more equations (and, for parsed text, their names).
    pub(crate) fn reserve(&mut self, eqns: usize) {
        self.eqns.reserve(eqns);
        self.var_types.reserve(eqns);
        self.operands.reserve(2 * eqns);
        self.names.spans.reserve(eqns);
        self.names.text.reserve(8 * eqns);
    }

    /// Adds a value of type `ty` (not yet bound).
    pub(crate) fn push_var(&mut self, ty: TypeId) -> Var {
        let v = Var(self.var_types.len() as u32);
        self.var_types.push(ty);
        v
    }

    /// Appends an equation binding `out`.
    pub(crate) fn push_eqn(&mut self, prim: PrimId, out: Var, args: &[Atom], loc: Loc) {
        let args_start = self.operands.len() as u32;
        self.operands.extend_from_slice(args);
        self.eqns.push(Eqn {
            prim,
            out,
            args_start,
            args_len: args.len() as u32,
            loc,
        });
    }

    pub(crate) fn types_mut(&mut self) -> &mut TypeTable {
        &mut self.types
    }

    pub(crate) fn prims_mut(&mut self) -> &mut PrimTable {
        &mut self.prims
    }

    /// How many values the function has (bound or not).
    pub fn num_vars(&self) -> usize {
        self.var_types.len()
    }

    /// How many operand slots all equations use together.
    pub fn num_operands(&self) -> usize {
        self.operands.len()
    }

    /// The operands of an equation.
    pub fn args(&self, eqn: &Eqn) -> &[Atom] {
        let s = eqn.args_start as usize;
        &self.operands[s..s + eqn.args_len as usize]
    }

    /// The primitive of an equation.
    pub fn prim(&self, eqn: &Eqn) -> &Prim {
        self.prims.get(eqn.prim)
    }

    pub fn types(&self) -> &TypeTable {
        &self.types
    }

    pub fn prims(&self) -> &PrimTable {
        &self.prims
    }

    pub fn var_type_id(&self, v: Var) -> TypeId {
        self.var_types[v.index()]
    }

    pub fn var_type(&self, v: Var) -> &Type {
        self.types.get(self.var_types[v.index()])
    }

    /// The type of an operand.
    pub fn atom_type(&self, atom: &Atom) -> &Type {
        match atom {
            Atom::Var(v) => self.var_type(*v),
            Atom::Lit(l) => Type::scalar_ref(l.dtype),
        }
    }

    pub fn param_types(&self) -> Vec<Type> {
        self.params
            .iter()
            .map(|&p| self.var_type(p).clone())
            .collect()
    }

    pub fn output_types(&self) -> Vec<Type> {
        self.outputs
            .iter()
            .map(|a| self.atom_type(a).clone())
            .collect()
    }

    /// The types of the float outputs: what tangents and cotangents of the outputs are.
    pub fn float_output_types(&self) -> Vec<Type> {
        self.outputs
            .iter()
            .map(|a| self.atom_type(a))
            .filter(|t| t.dtype.is_float())
            .cloned()
            .collect()
    }

    /// The name the printer gives `v` (computed over the whole function: use for messages,
    /// not in loops).
    pub fn var_name(&self, v: Var) -> String {
        crate::print::Namer::new(self).name(v)
    }

    /// The heap and inline bytes this function occupies (a measurement for the docs).
    pub fn size_bytes(&self) -> usize {
        use std::mem::size_of;
        self.name.capacity()
            + self.params.capacity() * size_of::<Var>()
            + self.eqns.capacity() * size_of::<Eqn>()
            + self.outputs.capacity() * size_of::<Atom>()
            + self.var_types.capacity() * size_of::<TypeId>()
            + self.operands.capacity() * size_of::<Atom>()
            + self.names.text.capacity()
            + self.names.spans.capacity() * size_of::<(u32, u32)>()
            + self.types.len() * (size_of::<Type>() + 16)
            + self.prims.len() * (size_of::<Prim>() + 16)
    }

    /// Each value's position in binding order (parameters first, then equation results), or
    /// `u32::MAX` for values that are never bound.
    fn binding_order(&self) -> Vec<u32> {
        let mut order = vec![u32::MAX; self.num_vars()];
        let bound = self.params.iter().copied();
        for (k, v) in bound.chain(self.eqns.iter().map(|e| e.out)).enumerate() {
            order[v.index()] = k as u32;
        }
        order
    }
}

impl PartialEq for Func {
    /// Structural equality up to the numbering and naming of values: the same signature, the
    /// same equations over values bound in the same order, the same outputs. Source
    /// locations and names are not part of a function's identity.
    fn eq(&self, other: &Func) -> bool {
        if self.name != other.name
            || self.params.len() != other.params.len()
            || self.eqns.len() != other.eqns.len()
            || self.outputs.len() != other.outputs.len()
        {
            return false;
        }
        let (oa, ob) = (self.binding_order(), other.binding_order());
        let same_atom = |a: &Atom, b: &Atom| match (a, b) {
            (Atom::Var(x), Atom::Var(y)) => {
                oa.get(x.index()) == ob.get(y.index()) && oa.get(x.index()) != Some(&u32::MAX)
            }
            (Atom::Lit(x), Atom::Lit(y)) => x == y,
            _ => false,
        };
        let same_var = |x: Var, y: Var| {
            oa[x.index()] == ob[y.index()] && self.var_type(x) == other.var_type(y)
        };
        self.params
            .iter()
            .zip(&other.params)
            .all(|(&x, &y)| same_var(x, y))
            && self.eqns.iter().zip(&other.eqns).all(|(e, f)| {
                self.prim(e) == other.prim(f)
                    && same_var(e.out, f.out)
                    && self.args(e).len() == other.args(f).len()
                    && self
                        .args(e)
                        .iter()
                        .zip(other.args(f))
                        .all(|(a, b)| same_atom(a, b))
            })
            && self
                .outputs
                .iter()
                .zip(&other.outputs)
                .all(|(a, b)| same_atom(a, b))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_equation_is_32_bytes() {
        assert_eq!(std::mem::size_of::<Eqn>(), 32);
        assert_eq!(std::mem::size_of::<Atom>(), 16);
    }

    #[test]
    fn literals_compare_bitwise() {
        let nan = Literal::new(f64::NAN, DType::F64);
        assert_eq!(nan, nan);
        assert_ne!(
            Literal::new(0.0, DType::F32),
            Literal::new(-0.0, DType::F32)
        );
        assert_ne!(Literal::new(1.0, DType::F32), Literal::new(1.0, DType::F64));
    }

    #[test]
    fn names_side_table() {
        let mut n = Names::default();
        n.set(Var(3), "alpha");
        n.set(Var(1), "b");
        assert_eq!(n.get(Var(3)), Some("alpha"));
        assert_eq!(n.get(Var(1)), Some("b"));
        assert_eq!(n.get(Var(0)), None);
        assert_eq!(n.get(Var(9)), None);
    }
}
