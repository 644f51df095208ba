//! Partial evaluation: split a jvp program into its primal part and the part that is linear
//! in the tangents.
//!
//! Every value is classified in one forward pass: `Linear` if it depends on a tangent input,
//! `Const` if it depends on no input at all (literal zeros, iotas), `Known` otherwise. The
//! primal function computes the `Known` values and returns the primal outputs followed by the
//! residuals: the `Known` values the linear part reads. The linear function takes the residuals
//! and the tangents; `Const` equations are copied into both parts so no constant is ever
//! stored as a residual.

use std::collections::HashMap;

use traceform_ir::{eliminate_dead_code, verify_func, Atom, Func, FuncBuilder, Loc, Var};

use crate::TransformError;

/// How a value depends on the inputs of a jvp program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Depends on no input.
    Const,
    /// Depends on primal inputs only.
    Known,
    /// Depends on a tangent (linear) input.
    Linear,
}

/// Classifies every value of `func`, whose parameters from `first_linear` on are linear.
pub fn classify(func: &Func, first_linear: usize) -> Vec<Kind> {
    let mut kind = vec![Kind::Const; func.vars.len()];
    for (i, &p) in func.params.iter().enumerate() {
        kind[p.index()] = if i >= first_linear {
            Kind::Linear
        } else {
            Kind::Known
        };
    }
    for eqn in &func.eqns {
        let mut k = Kind::Const;
        for a in &eqn.args {
            if let Atom::Var(v) = a {
                k = match (k, kind[v.index()]) {
                    (Kind::Linear, _) | (_, Kind::Linear) => Kind::Linear,
                    (Kind::Known, _) | (_, Kind::Known) => Kind::Known,
                    _ => Kind::Const,
                };
            }
        }
        kind[eqn.out.index()] = k;
    }
    kind
}

/// A jvp program split in two.
#[derive(Clone, Debug)]
pub struct Linearized {
    /// `(x1..xn) -> (y1..ym, residuals...)`.
    pub primal: Func,
    /// `(residuals..., tangents...) -> (output tangents...)`.
    pub linear: Func,
    /// How many primal outputs come before the residuals in `primal`.
    pub n_outputs: usize,
}

impl Linearized {
    pub fn n_residuals(&self) -> usize {
        self.primal.outputs.len() - self.n_outputs
    }
}

/// Copies equations into a builder, renaming values.
struct Copier {
    builder: FuncBuilder,
    map: HashMap<Var, Var>,
}

impl Copier {
    fn new(name: String) -> Copier {
        Copier {
            builder: FuncBuilder::new(name),
            map: HashMap::new(),
        }
    }

    fn atom(&self, a: &Atom) -> Atom {
        match a {
            Atom::Var(v) => Atom::Var(self.map[v]),
            Atom::Lit(l) => Atom::Lit(*l),
        }
    }

    fn param(&mut self, old: Var, func: &Func) {
        let v = self.builder.param(func.var_type(old).clone());
        self.map.insert(old, v);
    }

    fn eqn(&mut self, func: &Func, i: usize) -> Result<(), TransformError> {
        let eqn = &func.eqns[i];
        let args = eqn.args.iter().map(|a| self.atom(a)).collect();
        let v = self
            .builder
            .eqn(eqn.prim.clone(), args, Loc::Unknown)
            .map_err(|e| TransformError::Internal(e.message))?;
        self.map.insert(eqn.out, v);
        Ok(())
    }

    fn finish(self, outputs: Vec<Atom>) -> Result<Func, TransformError> {
        let f = eliminate_dead_code(&self.builder.finish(outputs));
        if cfg!(debug_assertions) {
            verify_func(&f).map_err(|e| TransformError::Internal(e.message))?;
        }
        Ok(f)
    }
}

/// Splits `jvp`, whose first `n_primal_in` parameters are primal and the rest tangents, and
/// whose first `n_primal_out` outputs are primal and the rest tangents.
pub fn linearize_jvp(
    jvp: &Func,
    n_primal_in: usize,
    n_primal_out: usize,
) -> Result<Linearized, TransformError> {
    let kind = classify(jvp, n_primal_in);
    let mut primal = Copier::new(format!("{}_primal", jvp.name));
    let mut linear = Copier::new(format!("{}_linear", jvp.name));
    for &p in &jvp.params[..n_primal_in] {
        primal.param(p, jvp);
    }
    // Residuals: known values the linear part reads, in order of first use.
    let mut residuals: Vec<Var> = Vec::new();
    let mut is_residual = vec![false; jvp.vars.len()];
    let mut note = |a: &Atom, residuals: &mut Vec<Var>| {
        if let Atom::Var(v) = a {
            if kind[v.index()] == Kind::Known && !is_residual[v.index()] {
                is_residual[v.index()] = true;
                residuals.push(*v);
            }
        }
    };
    for eqn in &jvp.eqns {
        if kind[eqn.out.index()] == Kind::Linear {
            for a in &eqn.args {
                note(a, &mut residuals);
            }
        }
    }
    for a in &jvp.outputs[n_primal_out..] {
        note(a, &mut residuals);
    }
    for &r in &residuals {
        linear.param(r, jvp);
    }
    for &p in &jvp.params[n_primal_in..] {
        linear.param(p, jvp);
    }
    for (i, eqn) in jvp.eqns.iter().enumerate() {
        match kind[eqn.out.index()] {
            Kind::Const => {
                primal.eqn(jvp, i)?;
                linear.eqn(jvp, i)?;
            }
            Kind::Known => primal.eqn(jvp, i)?,
            Kind::Linear => linear.eqn(jvp, i)?,
        }
    }
    let mut primal_outputs = Vec::new();
    for a in &jvp.outputs[..n_primal_out] {
        if a.as_var().is_some_and(|v| kind[v.index()] == Kind::Linear) {
            return Err(TransformError::Internal(
                "a primal output depends on a tangent".into(),
            ));
        }
        primal_outputs.push(primal.atom(a));
    }
    primal_outputs.extend(residuals.iter().map(|r| primal.atom(&Atom::Var(*r))));
    let linear_outputs = jvp.outputs[n_primal_out..]
        .iter()
        .map(|a| linear.atom(a))
        .collect();
    Ok(Linearized {
        primal: primal.finish(primal_outputs)?,
        linear: linear.finish(linear_outputs)?,
        n_outputs: n_primal_out,
    })
}
