//! Cheap whole-function passes: dead-code removal and common-subexpression elimination by
//! hash-consing. Both are one loop over the equations (never a recursion) and rebuild the
//! function in place by renumbering its values, without copying types, primitives or names
//! more than once. They are the fallback for graphs too big for the e-graph simplifier.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;
use smallvec::SmallVec;

use crate::func::{Atom, Func, Names, PrimId, Var};

/// Removes equations whose results no output depends on. Parameters are kept.
pub fn eliminate_dead_code(func: Func) -> Func {
    let keep = live_equations(&func);
    if keep.iter().all(|&k| k) && func.num_vars() == func.params.len() + func.eqns.len() {
        return func;
    }
    compact(func, &keep, &[])
}

/// For each equation, whether an output depends on it (one backward sweep).
pub fn live_equations(func: &Func) -> Vec<bool> {
    let mut live = vec![false; func.num_vars()];
    for a in &func.outputs {
        if let Atom::Var(v) = a {
            live[v.index()] = true;
        }
    }
    let mut keep = vec![false; func.eqns.len()];
    for (i, eqn) in func.eqns.iter().enumerate().rev() {
        if live[eqn.out.index()] {
            keep[i] = true;
            for a in func.args(eqn) {
                if let Atom::Var(v) = a {
                    live[v.index()] = true;
                }
            }
        }
    }
    keep
}

/// Replaces every equation that repeats an earlier one (the same primitive and attributes
/// on the same operands) by the earlier result, then removes what became dead. All
/// primitives are pure, so this never changes a value.
pub fn eliminate_common_subexpressions(func: Func) -> Func {
    // The table holds equation indices only (4 bytes an entry); keys are compared through
    // the function itself, operands substituted as they go.
    let mut seen: HashTable<u32> = HashTable::with_capacity(func.eqns.len());
    let mut replace: Vec<Option<Var>> = vec![None; func.num_vars()];
    let mut keep = vec![true; func.eqns.len()];
    let mut any = false;
    let key = |i: usize, replace: &[Option<Var>]| -> (PrimId, SmallVec<[Atom; 3]>) {
        let eqn = &func.eqns[i];
        let args = func
            .args(eqn)
            .iter()
            .map(|a| substitute(a, replace))
            .collect();
        (eqn.prim, args)
    };
    for i in 0..func.eqns.len() {
        let k = key(i, &replace);
        let hash = FxBuildHasher.hash_one(&k);
        let found = seen
            .find(hash, |&j| key(j as usize, &replace) == k)
            .copied();
        match found {
            Some(j) => {
                replace[func.eqns[i].out.index()] = Some(func.eqns[j as usize].out);
                keep[i] = false;
                any = true;
            }
            None => {
                seen.insert_unique(hash, i as u32, |&j| {
                    FxBuildHasher.hash_one(key(j as usize, &replace))
                });
            }
        }
    }
    if !any {
        return func;
    }
    eliminate_dead_code(compact(func, &keep, &replace))
}

fn substitute(a: &Atom, replace: &[Option<Var>]) -> Atom {
    match a {
        Atom::Var(v) => replace
            .get(v.index())
            .copied()
            .flatten()
            .map_or(*a, Atom::Var),
        Atom::Lit(_) => *a,
    }
}

/// Rebuilds `func` with only the equations marked in `keep`, operands first replaced as
/// `replace` says, and values renumbered in binding order (parameters, then equations).
fn compact(mut func: Func, keep: &[bool], replace: &[Option<Var>]) -> Func {
    let old_types = std::mem::take(&mut func.var_types);
    let old_operands = std::mem::take(&mut func.operands);
    let old_eqns = std::mem::take(&mut func.eqns);
    let old_names = std::mem::take(&mut func.names);
    let mut map = vec![u32::MAX; old_types.len()];
    let bind = |v: Var, func: &mut Func, map: &mut Vec<u32>| {
        let nv = func.push_var(old_types[v.index()]);
        map[v.index()] = nv.0;
        nv
    };
    let params = std::mem::take(&mut func.params);
    func.params = params
        .iter()
        .map(|&p| bind(p, &mut func, &mut map))
        .collect();
    let mut args: SmallVec<[Atom; 4]> = SmallVec::new();
    for (eqn, _) in old_eqns.iter().zip(keep).filter(|(_, &k)| k) {
        let s = eqn.args_start as usize;
        args.clear();
        for a in &old_operands[s..s + eqn.args_len as usize] {
            args.push(renumber(&substitute(a, replace), &map));
        }
        let out = bind(eqn.out, &mut func, &mut map);
        func.push_eqn(eqn.prim, out, &args, eqn.loc);
    }
    let outputs = std::mem::take(&mut func.outputs);
    func.outputs = outputs
        .iter()
        .map(|a| renumber(&substitute(a, replace), &map))
        .collect();
    if !old_names.is_empty() {
        let mut names = Names::default();
        for (v, name) in old_names.iter() {
            if let Some(&nv) = map.get(v.index()).filter(|&&nv| nv != u32::MAX) {
                names.set(Var(nv), name);
            }
        }
        func.names = names;
    }
    func
}

fn renumber(a: &Atom, map: &[u32]) -> Atom {
    match a {
        Atom::Var(v) => Atom::Var(Var(map[v.index()])),
        Atom::Lit(_) => *a,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_func;
    use crate::print::print_func;
    use crate::verify::verify_func;

    #[test]
    fn dead_equations_are_removed_and_names_kept() {
        let f = parse_func(
            "func f(x: f32[3]) -> f32[3] {\n  a: f32[3] = sin x\n  b: f32[3] = cos x\n  return b\n}\n",
        )
        .unwrap();
        let g = eliminate_dead_code(f);
        verify_func(&g).unwrap();
        assert_eq!(
            print_func(&g),
            "func f(x: f32[3]) -> f32[3] {\n  b: f32[3] = cos x\n  return b\n}\n"
        );
    }

    #[test]
    fn repeated_equations_are_shared() {
        let f = parse_func(
            "func f(x: f32[3]) -> f32[3] {\n  a: f32[3] = sin x\n  b: f32[3] = sin x\n  c: f32[3] = mul a 2.0\n  d: f32[3] = mul b 2.0\n  e: f32[3] = mul b 3.0\n  g: f32[3] = add c d\n  h: f32[3] = add g e\n  return h\n}\n",
        )
        .unwrap();
        let g = eliminate_common_subexpressions(f);
        verify_func(&g).unwrap();
        assert_eq!(
            print_func(&g),
            "func f(x: f32[3]) -> f32[3] {\n  a: f32[3] = sin x\n  c: f32[3] = mul a 2.0:f32\n  e: f32[3] = mul a 3.0:f32\n  g: f32[3] = add c c\n  h: f32[3] = add g e\n  return h\n}\n"
        );
    }
}
