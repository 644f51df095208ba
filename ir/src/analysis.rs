//! Analyses over a function that later stages share: one live-interval analysis (which the
//! interpreter frees by, and from which the static peak-memory estimate, `bench`'s
//! `peak_bytes` and the JIT's memory planner are all computed), and a def-use index.
//!
//! The memory accounting has one definition: the bytes of equation results alive at once
//! when equations run in order, each result allocated when its equation runs and freed right
//! after the last equation that reads it. Parameters and outputs are not counted (the caller
//! owns them); a result nobody reads is freed as soon as it is made. This is the measure by
//! which forward mode must hold no tape.

use crate::func::{Atom, Func, Var};

/// Where a value is bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Def {
    /// Parameter `i`.
    Param(u32),
    /// The result of equation `k`.
    Eqn(u32),
    /// Not bound (never in a verified function's operands).
    None,
}

/// When each value is alive, as equation indices.
#[derive(Clone, Debug)]
pub struct Liveness {
    /// Per value: the index of the last equation that reads it, or `None` if none does.
    pub last_use: Vec<Option<u32>>,
    /// Per value: returned by the function.
    pub is_output: Vec<bool>,
    /// Per value: a parameter.
    pub is_param: Vec<bool>,
    /// The counted values that die right after equation `k`:
    /// `deaths[death_starts[k]..death_starts[k + 1]]`, each listed once.
    death_starts: Vec<u32>,
    deaths: Vec<Var>,
}

impl Liveness {
    pub fn new(func: &Func) -> Liveness {
        let n = func.num_vars();
        let mut last_use = vec![None; n];
        for (k, eqn) in func.eqns.iter().enumerate() {
            for a in func.args(eqn) {
                if let Atom::Var(v) = a {
                    last_use[v.index()] = Some(k as u32);
                }
            }
        }
        let mut is_output = vec![false; n];
        for a in &func.outputs {
            if let Atom::Var(v) = a {
                is_output[v.index()] = true;
            }
        }
        let mut is_param = vec![false; n];
        for p in &func.params {
            is_param[p.index()] = true;
        }
        let mut live = Liveness {
            last_use,
            is_output,
            is_param,
            death_starts: Vec::with_capacity(func.eqns.len() + 1),
            deaths: Vec::new(),
        };
        for (k, eqn) in func.eqns.iter().enumerate() {
            live.death_starts.push(live.deaths.len() as u32);
            for a in func.args(eqn) {
                if let Atom::Var(v) = a {
                    let dies_here = live.last_use[v.index()] == Some(k as u32);
                    if dies_here
                        && live.counted(*v)
                        && !live.deaths[live.death_starts[k] as usize..].contains(v)
                    {
                        live.deaths.push(*v);
                    }
                }
            }
            if live.last_use[eqn.out.index()].is_none() && live.counted(eqn.out) {
                live.deaths.push(eqn.out);
            }
        }
        live.death_starts.push(live.deaths.len() as u32);
        live
    }

    /// True for values the accounting counts: equation results that are not outputs.
    pub fn counted(&self, v: Var) -> bool {
        !self.is_param[v.index()] && !self.is_output[v.index()]
    }

    /// The counted values freed right after equation `k` (including its own result when
    /// nobody reads it).
    pub fn deaths_after(&self, k: usize) -> &[Var] {
        &self.deaths[self.death_starts[k] as usize..self.death_starts[k + 1] as usize]
    }

    /// The peak of live bytes of counted values (see the module doc).
    pub fn peak_bytes(&self, func: &Func) -> usize {
        let (mut live, mut peak) = (0usize, 0usize);
        for (k, eqn) in func.eqns.iter().enumerate() {
            if self.counted(eqn.out) {
                live += func.var_type(eqn.out).size_bytes();
                peak = peak.max(live);
            }
            for &v in self.deaths_after(k) {
                live -= func.var_type(v).size_bytes();
            }
        }
        peak
    }
}

/// The peak of live bytes of equation results (see the module doc).
pub fn peak_live_bytes(func: &Func) -> usize {
    Liveness::new(func).peak_bytes(func)
}

/// For each value, where it is bound and which equations read it.
#[derive(Clone, Debug)]
pub struct DefUse {
    pub def: Vec<Def>,
    use_starts: Vec<u32>,
    uses: Vec<u32>,
}

impl DefUse {
    pub fn new(func: &Func) -> DefUse {
        let n = func.num_vars();
        let mut def = vec![Def::None; n];
        for (i, p) in func.params.iter().enumerate() {
            def[p.index()] = Def::Param(i as u32);
        }
        let mut counts = vec![0u32; n + 1];
        for (k, eqn) in func.eqns.iter().enumerate() {
            def[eqn.out.index()] = Def::Eqn(k as u32);
            for a in func.args(eqn) {
                if let Atom::Var(v) = a {
                    counts[v.index() + 1] += 1;
                }
            }
        }
        for i in 1..=n {
            counts[i] += counts[i - 1];
        }
        let mut fill = counts.clone();
        let mut uses = vec![0u32; counts[n] as usize];
        for (k, eqn) in func.eqns.iter().enumerate() {
            for a in func.args(eqn) {
                if let Atom::Var(v) = a {
                    uses[fill[v.index()] as usize] = k as u32;
                    fill[v.index()] += 1;
                }
            }
        }
        DefUse {
            def,
            use_starts: counts,
            uses,
        }
    }

    /// The equations that read `v`, in order (an equation reading it twice appears twice).
    pub fn uses(&self, v: Var) -> &[u32] {
        &self.uses[self.use_starts[v.index()] as usize..self.use_starts[v.index() + 1] as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_func;

    #[test]
    fn a_chain_holds_two_values_at_a_time() {
        let f = parse_func(
            "func f(x: f32[10]) -> f32[] {\n  a: f32[10] = sin x\n  b: f32[10] = cos a\n  c: f32[10] = exp b\n  d: f32[] = reduce_sum[axes=(0)] c\n  return d\n}\n",
        )
        .unwrap();
        assert_eq!(peak_live_bytes(&f), 80);
    }

    #[test]
    fn outputs_and_parameters_are_not_counted() {
        let f = parse_func(
            "func f(x: f32[10]) -> (f32[10], f32[]) {\n  a: f32[10] = sin x\n  b: f32[10] = cos x\n  c: f32[10] = mul a b\n  d: f32[] = reduce_sum[axes=(0)] c\n  u: f32[10] = neg x\n  return c, d\n}\n",
        )
        .unwrap();
        let live = Liveness::new(&f);
        // a and b live together; c and d are outputs; u dies on arrival.
        assert_eq!(live.peak_bytes(&f), 80);
        assert_eq!(live.deaths_after(2).len(), 2);
        assert_eq!(live.deaths_after(4), &[f.eqns[4].out]);
    }

    #[test]
    fn def_use_lists_every_reader() {
        let f = parse_func(
            "func f(x: f32[3]) -> f32[3] {\n  a: f32[3] = sin x\n  b: f32[3] = mul a a\n  c: f32[3] = add b x\n  return c\n}\n",
        )
        .unwrap();
        let du = DefUse::new(&f);
        assert_eq!(du.uses(f.params[0]), &[0, 2]);
        assert_eq!(du.uses(f.eqns[0].out), &[1, 1]);
        assert_eq!(du.def[f.eqns[2].out.index()], Def::Eqn(2));
        assert!(du.uses(f.eqns[2].out).is_empty());
    }
}
