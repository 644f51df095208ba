//! The dataflow graph view of a function, through petgraph, and its Graphviz export (nodes
//! coloured by `OpClass`). Iterative, so graphs of any depth are fine.

use petgraph::dot::{Config, Dot};
use petgraph::graph::{DiGraph, NodeIndex};

use crate::func::{Atom, Func};
use crate::prim::OpClass;
use crate::print::{format_literal, Namer};

/// A node of the dataflow graph: a parameter, an equation, or the function's return.
#[derive(Clone, Debug)]
pub enum Node {
    Param(usize),
    Eqn(usize),
    Return,
}

/// The dataflow graph: an edge from the node that binds a value to each node that reads it.
/// Node `i` is parameter `i`, then the equations in order, then `Return`.
pub fn dataflow_graph(func: &Func) -> DiGraph<Node, ()> {
    let mut g = DiGraph::with_capacity(func.params.len() + func.eqns.len() + 1, 0);
    let mut binder = vec![NodeIndex::end(); func.num_vars()];
    for (i, &p) in func.params.iter().enumerate() {
        binder[p.index()] = g.add_node(Node::Param(i));
    }
    for (i, eqn) in func.eqns.iter().enumerate() {
        let n = g.add_node(Node::Eqn(i));
        for a in func.args(eqn) {
            if let Atom::Var(v) = a {
                g.add_edge(binder[v.index()], n, ());
            }
        }
        binder[eqn.out.index()] = n;
    }
    let ret = g.add_node(Node::Return);
    for a in &func.outputs {
        if let Atom::Var(v) = a {
            g.add_edge(binder[v.index()], ret, ());
        }
    }
    g
}

fn class_colour(class: OpClass) -> &'static str {
    match class {
        OpClass::Elementwise => "white",
        OpClass::Reduction => "lightblue",
        OpClass::DataMovement => "lightgrey",
        OpClass::Contraction => "gold",
        OpClass::Constant => "palegreen",
    }
}

/// Graphviz text for the function: one box per equation, labelled with its result, type and
/// primitive, filled by its class; literal operands are shown in the label.
pub fn to_dot(func: &Func) -> String {
    let g = dataflow_graph(func);
    let namer = Namer::new(func);
    let labelled = g.map(
        |_, node| match node {
            Node::Param(i) => {
                let p = func.params[*i];
                (format!("{}: {}", namer.name(p), func.var_type(p)), "white")
            }
            Node::Eqn(i) => {
                let eqn = &func.eqns[*i];
                let prim = func.prim(eqn);
                let mut label = format!(
                    "{}: {} = {}",
                    namer.name(eqn.out),
                    func.var_type(eqn.out),
                    prim.name()
                );
                for a in func.args(eqn) {
                    if let Atom::Lit(l) = a {
                        label.push(' ');
                        label.push_str(&format_literal(l));
                    }
                }
                (label, class_colour(prim.class()))
            }
            Node::Return => ("return".to_string(), "white"),
        },
        |_, _| String::new(),
    );
    let body = format!(
        "{:?}",
        Dot::with_attr_getters(
            &labelled,
            &[Config::EdgeNoLabel, Config::NodeNoLabel],
            &|_, _| String::new(),
            &|_, (_, (label, colour))| format!(
                "label = {label:?} shape=box style=filled fillcolor={colour}"
            ),
        )
    );
    format!("// {}\n{}", func.name, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_func;

    #[test]
    fn dot_names_every_equation_and_colours_it() {
        let f = parse_func(
            "func f(x: f32[3]) -> f32[] {\n  a: f32[3] = mul x 2.0\n  s: f32[] = reduce_sum[axes=(0)] a\n  return s\n}\n",
        )
        .unwrap();
        let dot = to_dot(&f);
        assert!(dot.contains("a: f32[3] = mul 2.0:f32"), "{dot}");
        assert!(dot.contains("fillcolor=lightblue"), "{dot}");
        assert!(dot.contains("digraph"), "{dot}");
    }
}
