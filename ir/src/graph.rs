//! The dataflow graph view of a function, through petgraph (Graphviz export), and dead-code
//! removal. Both are iterative, so graphs of any depth are fine.

use petgraph::dot::{Config, Dot};
use petgraph::graph::{DiGraph, NodeIndex};

use crate::func::{Atom, Eqn, Func, Var};
use crate::print::format_literal;

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
    let mut binder = vec![NodeIndex::end(); func.vars.len()];
    for (i, &p) in func.params.iter().enumerate() {
        binder[p.index()] = g.add_node(Node::Param(i));
    }
    for (i, eqn) in func.eqns.iter().enumerate() {
        let n = g.add_node(Node::Eqn(i));
        for a in &eqn.args {
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

/// Graphviz text for the function: one box per equation, labelled with its result, type and
/// primitive; literal operands are shown in the label.
pub fn to_dot(func: &Func) -> String {
    let g = dataflow_graph(func);
    let labelled = g.map(
        |_, node| match node {
            Node::Param(i) => {
                let p = func.params[*i];
                format!("{}: {}", func.var_name(p), func.var_type(p))
            }
            Node::Eqn(i) => {
                let eqn = &func.eqns[*i];
                let lits: Vec<String> = eqn
                    .args
                    .iter()
                    .filter_map(|a| match a {
                        Atom::Lit(l) => Some(format_literal(l)),
                        Atom::Var(_) => None,
                    })
                    .collect();
                let mut label = format!(
                    "{}: {} = {}",
                    func.var_name(eqn.out),
                    func.var_type(eqn.out),
                    eqn.prim.name()
                );
                if !lits.is_empty() {
                    label.push(' ');
                    label.push_str(&lits.join(" "));
                }
                label
            }
            Node::Return => "return".to_string(),
        },
        |_, _| String::new(),
    );
    let body = format!(
        "{:?}",
        Dot::with_attr_getters(
            &labelled,
            &[Config::EdgeNoLabel],
            &|_, _| String::new(),
            &|_, _| "shape=box".to_string(),
        )
    );
    format!("// {}\n{}", func.name, body)
}

/// Removes equations whose results no output depends on. Parameters are kept.
///
/// Equations are already in topological order, so liveness is one backward sweep (the same
/// reachability `dataflow_graph` would give, without building the graph).
pub fn eliminate_dead_code(func: &Func) -> Func {
    let mut live = vec![false; func.vars.len()];
    for a in &func.outputs {
        if let Atom::Var(v) = a {
            live[v.index()] = true;
        }
    }
    let mut keep = vec![false; func.eqns.len()];
    for (i, eqn) in func.eqns.iter().enumerate().rev() {
        if live[eqn.out.index()] {
            keep[i] = true;
            for a in &eqn.args {
                if let Atom::Var(v) = a {
                    live[v.index()] = true;
                }
            }
        }
    }
    let mut out = Func {
        name: func.name.clone(),
        vars: Vec::new(),
        params: func.params.clone(),
        eqns: Vec::with_capacity(func.eqns.len()),
        outputs: func.outputs.clone(),
        locs: Vec::with_capacity(func.eqns.len()),
    };
    for (i, eqn) in func.eqns.iter().enumerate() {
        if keep[i] {
            out.eqns.push(eqn.clone());
            out.locs.push(func.loc(i));
        }
    }
    compact_vars(&out, &func.vars)
}

/// Keeps only the values `func` binds (their infos read from `vars`), renumbered in binding
/// order.
fn compact_vars(func: &Func, vars: &[crate::func::VarInfo]) -> Func {
    let mut map: Vec<Option<Var>> = vec![None; vars.len()];
    let mut out = Func {
        name: func.name.clone(),
        locs: func.locs.clone(),
        ..Func::default()
    };
    let bind = |v: Var, out: &mut Func, map: &mut Vec<Option<Var>>| {
        let nv = Var(out.vars.len() as u32);
        out.vars.push(vars[v.index()].clone());
        map[v.index()] = Some(nv);
        nv
    };
    for &p in &func.params {
        let nv = bind(p, &mut out, &mut map);
        out.params.push(nv);
    }
    let remap = |a: &Atom, map: &[Option<Var>]| match a {
        Atom::Var(v) => Atom::Var(map[v.index()].expect("verified: defined before use")),
        Atom::Lit(l) => Atom::Lit(*l),
    };
    for eqn in &func.eqns {
        let args = eqn.args.iter().map(|a| remap(a, &map)).collect();
        let nv = bind(eqn.out, &mut out, &mut map);
        out.eqns.push(Eqn {
            out: nv,
            prim: eqn.prim.clone(),
            args,
        });
    }
    out.outputs = func.outputs.iter().map(|a| remap(a, &map)).collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_func;

    #[test]
    fn dead_equations_are_removed() {
        let f = parse_func(
            "func f(x: f32[3]) -> f32[3] {\n  a: f32[3] = sin x\n  b: f32[3] = cos x\n  return b\n}\n",
        )
        .unwrap();
        let g = eliminate_dead_code(&f);
        assert_eq!(g.eqns.len(), 1);
        assert_eq!(g.eqns[0].prim.name(), "cos");
        crate::verify::verify_func(&g).unwrap();
    }

    #[test]
    fn dot_names_every_equation() {
        let f =
            parse_func("func f(x: f32[3]) -> f32[3] {\n  a: f32[3] = mul x 2.0\n  return a\n}\n")
                .unwrap();
        let dot = to_dot(&f);
        assert!(dot.contains("a: f32[3] = mul 2.0:f32"), "{dot}");
        assert!(dot.contains("digraph"), "{dot}");
    }
}
