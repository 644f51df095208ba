//! Partial evaluation: split a jvp program into its primal part and the part that is linear
//! in the tangents.
//!
//! Every value is classified in one forward pass: `Linear` if it depends on a tangent input,
//! `Const` if it depends on no input at all (literal zeros, iotas), `Known` otherwise. The
//! primal function computes the `Known` values and returns the primal outputs followed by the
//! residuals: the `Known` values the linear part reads. The linear function takes the residuals
//! and the tangents; `Const` equations are copied into both parts so no constant is ever
//! stored as a residual.

use traceform_ir::{eliminate_dead_code, Atom, Builder, Func, Var};

use crate::util::{finish, lookup};
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
    let mut kind = vec![Kind::Const; func.num_vars()];
    for (i, &p) in func.params.iter().enumerate() {
        kind[p.index()] = if i >= first_linear {
            Kind::Linear
        } else {
            Kind::Known
        };
    }
    for eqn in &func.eqns {
        let mut k = Kind::Const;
        for a in func.args(eqn) {
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

/// One side of the split: a builder and where each value of the jvp program went.
struct Side {
    b: Builder,
    env: Vec<Option<Atom>>,
}

impl Side {
    fn new(name: String, n: usize) -> Side {
        Side {
            b: Builder::new(name),
            env: vec![None; n],
        }
    }

    fn param(&mut self, old: Var, func: &Func) {
        self.env[old.index()] = Some(Atom::Var(self.b.param(func.var_type(old))));
    }

    fn copy(&mut self, func: &Func, i: usize) {
        let eqn = &func.eqns[i];
        let args: Vec<Atom> = func
            .args(eqn)
            .iter()
            .map(|a| lookup(&self.env, a))
            .collect();
        self.env[eqn.out.index()] = Some(Atom::Var(self.b.copy_eqn(func, eqn, &args)));
    }

    fn finish(self, outputs: &[Atom]) -> Result<Func, TransformError> {
        let outputs: Vec<Atom> = outputs.iter().map(|a| lookup(&self.env, a)).collect();
        Ok(eliminate_dead_code(finish(self.b, &outputs)?))
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
    let mut primal = Side::new(format!("{}_primal", jvp.name), jvp.num_vars());
    let mut linear = Side::new(format!("{}_linear", jvp.name), jvp.num_vars());
    primal.b.reserve(jvp.eqns.len() / 2);
    linear.b.reserve(jvp.eqns.len() / 2);
    for &p in &jvp.params[..n_primal_in] {
        primal.param(p, jvp);
    }
    // Residuals: known values the linear part reads, in order of first use.
    let mut residuals: Vec<Var> = Vec::new();
    let mut is_residual = vec![false; jvp.num_vars()];
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
            for a in jvp.args(eqn) {
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
                primal.copy(jvp, i);
                linear.copy(jvp, i);
            }
            Kind::Known => primal.copy(jvp, i),
            Kind::Linear => linear.copy(jvp, i),
        }
    }
    let mut primal_outputs = Vec::new();
    for a in &jvp.outputs[..n_primal_out] {
        if a.as_var().is_some_and(|v| kind[v.index()] == Kind::Linear) {
            return Err(TransformError::Internal {
                message: "a primal output depends on a tangent".into(),
                loc: traceform_ir::Loc::Unknown,
            });
        }
        primal_outputs.push(*a);
    }
    if jvp.outputs.len() == n_primal_out {
        return Err(TransformError::NoFloatOutput(format!(
            "`{}` has no float output to linearize",
            jvp.name
        )));
    }
    primal_outputs.extend(residuals.iter().map(|&r| Atom::Var(r)));
    Ok(Linearized {
        primal: primal.finish(&primal_outputs)?,
        linear: linear.finish(&jvp.outputs[n_primal_out..])?,
        n_outputs: n_primal_out,
    })
}

#[cfg(test)]
mod tests {
    use traceform_ir::parse_func;

    use super::*;

    /// A jvp-shaped program: primal `x`, tangent `t`; `i`, `c` are constants, `k`, `m` known,
    /// `l`, `s` linear.
    const JVP_LIKE: &str = "func j(x: f32[3], t: f32[3]) -> (f32[3], f32[3]) {
  i: f32[3] = iota[dtype=f32, shape=(3), dim=0]
  c: f32[3] = mul i 2.0
  k: f32[3] = sin x
  m: f32[3] = mul k c
  l: f32[3] = mul t k
  s: f32[3] = add l c
  return m, s
}";

    #[test]
    fn classify_tells_constants_known_and_linear_values_apart() {
        let f = parse_func(JVP_LIKE).unwrap();
        let kind = classify(&f, 1);
        let vars = f.params.iter().copied().chain(f.eqns.iter().map(|e| e.out));
        let got: Vec<(String, Kind)> = vars.map(|v| (f.var_name(v), kind[v.index()])).collect();
        let want = [
            ("x", Kind::Known),
            ("t", Kind::Linear),
            ("i", Kind::Const),
            ("c", Kind::Const),
            ("k", Kind::Known),
            ("m", Kind::Known),
            ("l", Kind::Linear),
            ("s", Kind::Linear),
        ];
        let want: Vec<(String, Kind)> = want.iter().map(|(n, k)| (n.to_string(), *k)).collect();
        assert_eq!(got, want);
        // With no linear parameter nothing is linear.
        assert!(!classify(&f, 2).contains(&Kind::Linear));
    }

    #[test]
    fn linearize_stores_known_values_as_residuals_and_copies_constants() {
        let f = parse_func(JVP_LIKE).unwrap();
        let lin = linearize_jvp(&f, 1, 1).unwrap();
        // `k` is the one residual; `c` is recomputed in the linear part, not stored.
        assert_eq!(lin.n_residuals(), 1);
        assert_eq!(lin.primal.outputs.len(), 2);
        assert_eq!(lin.linear.params.len(), 2, "the residual, then the tangent");
        let prims: Vec<&str> = lin
            .linear
            .eqns
            .iter()
            .map(|e| lin.linear.prim(e).name())
            .collect();
        assert_eq!(prims, ["iota", "mul", "mul", "add"]);
        // An output that depends on a tangent cannot be a primal output.
        let e = linearize_jvp(&f, 1, 2).unwrap_err();
        assert!(
            e.to_string()
                .contains("a primal output depends on a tangent"),
            "{e}"
        );
    }
}
