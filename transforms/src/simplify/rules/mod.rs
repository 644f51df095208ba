//! Rewrite rules: each a named function from one e-node (and the e-graph, to look at its
//! operands' classes) to what its class also equals. Rules add equalities that hold for every
//! value up to float rounding (the identities and cancellations bitwise, up to the sign of a
//! zero; factoring and constant folding round differently), with the exceptions
//! `docs/simplify.md` lists (a product with a *structural* zero is zero, see `lang.rs`). None is an inverse
//! of another, and none is associativity or commutativity: the rule set cannot blow up.
//!
//! - `identities.rs`: zeros and ones, negations, selects of one value.
//! - `shapes.rs`: transposes, reshapes, broadcasts, reductions and slices that cancel or fuse.
//! - `broadcast.rs`: a broadcast scalar operand of an elementwise op becomes the scalar.
//! - `dots.rs`: transposes folded into `dot_general`.
//! - `factor.rs`: `a*b + a*c = a*(b+c)`, and the same through `dot_general` and `reduce_sum`.

mod broadcast;
mod dots;
mod factor;
pub mod identities;
mod shapes;

use egg::Id;
use smallvec::SmallVec;
use traceform_ir::{Literal, Prim, Type};

use super::lang::{prim_of, Graph, Node};

/// What a matched class also equals: an existing class, a literal, or a primitive applied to
/// such expressions (at most a few nodes).
#[derive(Clone, Debug)]
pub enum Rhs {
    Class(Id),
    Lit(Literal),
    Op(Prim, Vec<Rhs>),
}

/// A named rule: given a class and one of its nodes, what the class also equals.
pub struct Rule {
    pub name: &'static str,
    pub apply: fn(&Graph, Id, &Node) -> Option<Rhs>,
}

/// Every rule, in the order they are tried.
pub fn all() -> Vec<Rule> {
    let mut rules = Vec::new();
    rules.extend(identities::rules());
    rules.extend(shapes::rules());
    rules.extend(broadcast::rules());
    rules.extend(dots::rules());
    rules.extend(factor::rules());
    rules
}

/// The primitive and operands of an `Op` node.
pub fn op<'g>(eg: &'g Graph, node: &'g Node) -> Option<(&'g Prim, &'g [Id])> {
    match node {
        Node::Op(p, children) => Some((prim_of(eg, *p), children)),
        Node::Param(_) | Node::Lit(_) => None,
    }
}

/// The `Op` nodes of class `id` whose primitive `want` accepts.
pub fn ops_in<'g>(
    eg: &'g Graph,
    id: Id,
    want: impl Fn(&Prim) -> bool + 'g,
) -> impl Iterator<Item = (&'g Prim, &'g [Id])> + 'g {
    eg[id]
        .nodes
        .iter()
        .filter_map(move |n| op(eg, n))
        .filter(move |(p, _)| want(p))
}

pub fn ty(eg: &Graph, id: Id) -> &Type {
    &eg[id].data.ty
}

/// True when every element of class `id` is `value`.
pub fn is_fill(eg: &Graph, id: Id, value: f64) -> bool {
    eg[id].data.fill == Some(value)
}

/// True when class `id` is zero: a structural zero, or filled with 0 (+0 or -0).
pub fn is_zero(eg: &Graph, id: Id) -> bool {
    eg[id].data.structural_zero || eg[id].data.fill == Some(0.0)
}

/// The class `id` as an expression.
pub fn class(id: Id) -> Rhs {
    Rhs::Class(id)
}

/// `prim` applied to classes.
pub fn apply(prim: Prim, args: &[Id]) -> Rhs {
    Rhs::Op(prim, args.iter().map(|&a| Rhs::Class(a)).collect())
}

/// Adds `rhs` to the e-graph; `None` if some node would not type-check (a rule's guard
/// missed a case: the rewrite is dropped, never applied wrongly).
pub fn add(eg: &mut Graph, rhs: &Rhs) -> Option<Id> {
    match rhs {
        Rhs::Class(id) => Some(*id),
        Rhs::Lit(l) => Some(eg.add(Node::Lit(*l))),
        Rhs::Op(prim, args) => {
            let mut children: SmallVec<[Id; 3]> = SmallVec::new();
            for a in args {
                children.push(add(eg, a)?);
            }
            {
                let types: SmallVec<[&Type; 3]> = children.iter().map(|&c| ty(eg, c)).collect();
                traceform_ir::infer_type(prim, &types).ok()?;
            }
            let p = eg.analysis.prims.intern(prim);
            Some(eg.add(Node::Op(p, children)))
        }
    }
}

#[cfg(test)]
pub mod testing {
    //! One-line rule tests: a program, simplified, prints as expected.
    use traceform_ir::{parse_func, print_func};

    use crate::simplify::{simplify, Limits};

    /// `text` (one function) simplified and printed, parameters with their names and every
    /// equation with a derived one (`v<k>`), so tests read the structure.
    pub fn simplified_text(text: &str) -> String {
        let f = parse_func(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let (mut g, _) = simplify(&f, &Limits::for_size(f.eqns.len()));
        traceform_ir::verify_func(&g).unwrap();
        let params: Vec<_> = g
            .params
            .iter()
            .map(|&p| (p, g.names.get(p).unwrap().to_string()))
            .collect();
        g.names = Default::default();
        for (p, name) in params {
            g.names.set(p, &name);
        }
        print_func(&g)
    }

    /// The equations of `body` (a function of `x: f32[3]`, `y: f32[3]`, `s: f32[]`) after
    /// simplification, one per line, without the signature.
    pub fn simplified(body: &str) -> String {
        let text = format!(
            "func f(x: f32[3], y: f32[3], s: f32[]) -> f32[3] {{\n{}\n}}\n",
            body.replace("; ", "\n")
        );
        simplified_text(&text)
            .lines()
            .skip(1)
            .filter(|l| *l != "}")
            .map(str::trim)
            .collect::<Vec<_>>()
            .join("; ")
    }
}
