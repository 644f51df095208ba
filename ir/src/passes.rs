//! Cheap whole-function passes: dead-code removal, common-subexpression elimination by
//! hash-consing, and scheduling for memory. Each is a loop over the equations (never a
//! recursion in the graph's depth) and rebuilds the function in place by renumbering its
//! values, without copying types, primitives or names more than once. The first two are the
//! fallback for graphs too big for the e-graph simplifier; the scheduler runs after it.

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

/// Reorders the equations so that each is computed as late as its users allow, when that
/// lowers the peak of live memory (`peak_live_bytes`); otherwise returns `func` unchanged.
/// Dead equations are dropped either way.
///
/// The candidate orders are the program order with every equation sunk as late as its users
/// allow (`sunk_order`), depth-first post-orders from the outputs (taken first to last, and
/// last to first) that visit, among an equation's operands, the one defined latest first or the
/// one with the biggest cone of work behind it (Sethi and Ullman's rule), and greedy list
/// schedules that always run next the ready equation that frees the most bytes for the fewest
/// it allocates; the one with the lowest peak wins, if it is lower than the
/// program order's. Derivative programs need it: a transform emits the
/// whole primal sweep before the sweep that uses its residuals (a transposed backward pass,
/// the double-vjp trick), so in program order every residual is alive at once; in this order
/// each residual is computed next to its use and dies there, as in forward mode.
pub fn schedule_for_memory(func: Func) -> Func {
    let func = eliminate_dead_code(func);
    let mut best: Option<(usize, Func)> = None;
    let mut peak_of_func = None;
    // From the first output and from the last: a jvp program, say, wants its tangent output's
    // sweep to pull in the primal values one at a time.
    let producers = Producers::new(&func);
    let n = func.eqns.len();
    for candidate in 0..8 {
        let order = match candidate {
            0 => sunk_order(&producers, n, true),
            1 => sunk_order(&producers, n, false),
            2 => late_first_order(&func, &producers, false, false),
            3 => late_first_order(&func, &producers, true, false),
            4 => late_first_order(&func, &producers, false, true),
            5 => late_first_order(&func, &producers, true, true),
            6 => greedy_order(&func, false),
            _ => greedy_order(&func, true),
        };
        if order.iter().enumerate().all(|(k, &i)| k == i as usize) {
            continue;
        }
        let current = *peak_of_func.get_or_insert_with(|| crate::analysis::peak_live_bytes(&func));
        let reordered = compact_in_order(func.clone(), &order, &[]);
        let peak = crate::analysis::peak_live_bytes(&reordered);
        if peak < best.as_ref().map_or(current, |b| b.0) {
            best = Some((peak, reordered));
        }
    }
    best.map_or(func, |(_, f)| f)
}

/// Who computes what, for the schedulers: per value its defining equation (`NONE` for
/// parameters), per equation the equations computing its operands (distinct, ascending).
struct Producers {
    def: Vec<u32>,
    starts: Vec<u32>,
    list: Vec<u32>,
}

const NONE: u32 = u32::MAX;

impl Producers {
    fn new(func: &Func) -> Producers {
        let mut def = vec![NONE; func.num_vars()];
        for (i, eqn) in func.eqns.iter().enumerate() {
            def[eqn.out.index()] = i as u32;
        }
        let mut starts = Vec::with_capacity(func.eqns.len() + 1);
        let mut list = Vec::new();
        for eqn in &func.eqns {
            starts.push(list.len() as u32);
            let from = list.len();
            list.extend(func.args(eqn).iter().filter_map(|a| match a {
                Atom::Var(v) => Some(def[v.index()]).filter(|&d| d != NONE),
                Atom::Lit(_) => None,
            }));
            list[from..].sort_unstable();
            let mut kept = from;
            for k in from..list.len() {
                if k == from || list[k] != list[kept - 1] {
                    list[kept] = list[k];
                    kept += 1;
                }
            }
            list.truncate(kept);
        }
        starts.push(list.len() as u32);
        Producers { def, starts, list }
    }

    fn of(&self, e: usize) -> &[u32] {
        &self.list[self.starts[e] as usize..self.starts[e + 1] as usize]
    }

    /// The equation computing `a`, if an equation does.
    fn defining(&self, a: &Atom) -> Option<u32> {
        match a {
            Atom::Var(v) => Some(self.def[v.index()]).filter(|&d| d != NONE),
            Atom::Lit(_) => None,
        }
    }
}

/// Every equation moved as late as its users allow: a topological sort of the reversed graph
/// (users before what they read) that places an equation as soon as its last user is placed
/// (a stack of the ready ones), reversed. A residual computed in one sweep thus lands just
/// before its first use in the next.
fn sunk_order(producers: &Producers, n: usize, earliest_nearest: bool) -> Vec<u32> {
    let mut users = vec![0u32; n];
    for &d in &producers.list {
        users[d as usize] += 1;
    }
    // Popped last-pushed first. Of the producers an equation frees at once, the one pushed
    // last lands nearest to it: the earliest in program order, or the latest.
    let mut ready: Vec<u32> = (0..n as u32).filter(|&e| users[e as usize] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(e) = ready.pop() {
        order.push(e);
        let mut freed: SmallVec<[u32; 4]> = producers.of(e as usize).into();
        if earliest_nearest {
            freed.reverse();
        }
        for d in freed {
            users[d as usize] -= 1;
            if users[d as usize] == 0 {
                ready.push(d);
            }
        }
    }
    order.reverse();
    order
}

/// The post-order of `schedule_for_memory` (equation indices), with an explicit stack, from
/// the outputs in order or in reverse.
fn late_first_order(
    func: &Func,
    producers: &Producers,
    outputs_reversed: bool,
    by_cone: bool,
) -> Vec<u32> {
    // ln(1 + the equations behind each one, counted as a tree): Sethi and Ullman's rule of
    // evaluating the bigger operand first, so its temporaries are gone before the smaller
    // one's result has to be held. Logarithms, since shared values make tree sizes explode.
    let cone: Option<Vec<f64>> = by_cone.then(|| {
        let mut cone = vec![0.0f64; func.eqns.len()];
        for (i, eqn) in func.eqns.iter().enumerate() {
            let logs: SmallVec<[f64; 4]> = func
                .args(eqn)
                .iter()
                .filter_map(|a| producers.defining(a))
                .map(|d| cone[d as usize])
                .collect();
            let top = logs.iter().copied().fold(0.0f64, f64::max);
            let sum: f64 = (-top).exp() + logs.iter().map(|l| (l - top).exp()).sum::<f64>();
            cone[i] = top + sum.ln();
        }
        cone
    });
    // 0: not reached, 1: operands being visited, 2: emitted.
    let mut state = vec![0u8; func.eqns.len()];
    let mut order = Vec::with_capacity(func.eqns.len());
    // (equation, whether its operands have been pushed)
    let mut stack: Vec<(u32, bool)> = Vec::new();
    let mut operands: SmallVec<[u32; 4]> = SmallVec::new();
    // The stack pops the last pushed first.
    let outputs: Vec<u32> = func
        .outputs
        .iter()
        .filter_map(|a| producers.defining(a))
        .collect();
    if outputs_reversed {
        stack.extend(outputs.iter().map(|&d| (d, false)));
    } else {
        stack.extend(outputs.iter().rev().map(|&d| (d, false)));
    }
    while let Some((e, expanded)) = stack.pop() {
        let st = &mut state[e as usize];
        if expanded {
            if *st != 2 {
                *st = 2;
                order.push(e);
            }
            continue;
        }
        if *st != 0 {
            continue;
        }
        *st = 1;
        stack.push((e, true));
        operands.clear();
        operands.extend(
            producers
                .of(e as usize)
                .iter()
                .copied()
                .filter(|&d| state[d as usize] == 0),
        );
        // Pushed in increasing order (as `Producers` lists them), so the latest-defined
        // operand (or the one with the biggest cone of work behind it) is visited first.
        if let Some(cone) = &cone {
            operands.sort_by(|&a, &b| {
                cone[a as usize]
                    .total_cmp(&cone[b as usize])
                    .then(a.cmp(&b))
            });
        }
        stack.extend(operands.iter().map(|&d| (d, false)));
    }
    order
}

/// The greedy list schedule of `schedule_for_memory`: among the equations whose operands are
/// all computed, the one with the highest `bytes it frees - bytes it allocates` runs next
/// (ties: the earliest in program order, or the latest). Scores only rise as other readers of an operand
/// run, so an equation is re-queued when it becomes the last reader of one.
fn greedy_order(func: &Func, latest_first: bool) -> Vec<u32> {
    use std::collections::BinaryHeap;

    use crate::analysis::{Def, DefUse};

    let du = DefUse::new(func);
    let live = crate::analysis::Liveness::new(func);
    let n = func.eqns.len();
    let bytes = |v: Var| func.var_type(v).size_bytes() as i64;
    // Distinct variable operands of each equation.
    let vars_of = |e: usize| -> SmallVec<[Var; 4]> {
        let mut vs: SmallVec<[Var; 4]> = func
            .args(&func.eqns[e])
            .iter()
            .filter_map(|a| match a {
                Atom::Var(v) => Some(*v),
                Atom::Lit(_) => None,
            })
            .collect();
        vs.sort_unstable();
        vs.dedup();
        vs
    };
    // Per value: how many distinct equations still to run read it.
    let mut readers_left = vec![0u32; func.num_vars()];
    let mut waiting = vec![0u32; n];
    for (e, w) in waiting.iter_mut().enumerate() {
        for v in vars_of(e) {
            readers_left[v.index()] += 1;
            if matches!(du.def[v.index()], Def::Eqn(_)) {
                *w += 1;
            }
        }
    }
    let score = |e: usize, readers_left: &[u32]| -> i64 {
        let out = func.eqns[e].out;
        let allocated = if live.counted(out) { bytes(out) } else { 0 };
        let freed: i64 = vars_of(e)
            .into_iter()
            .filter(|&v| live.counted(v) && readers_left[v.index()] == 1)
            .map(bytes)
            .sum();
        freed - allocated
    };
    // Max-heap on (score, tie-break key).
    let key = |e: usize| if latest_first { e as i64 } else { -(e as i64) };
    let mut ready: BinaryHeap<(i64, i64)> = BinaryHeap::new();
    for (e, _) in waiting.iter().enumerate().filter(|(_, &w)| w == 0) {
        ready.push((score(e, &readers_left), key(e)));
    }
    let mut done = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while let Some((s, k)) = ready.pop() {
        let e = k.unsigned_abs() as usize;
        if done[e] || s != score(e, &readers_left) {
            continue; // run already, or queued again with its newer score
        }
        done[e] = true;
        order.push(e as u32);
        for v in vars_of(e) {
            readers_left[v.index()] -= 1;
            if readers_left[v.index()] == 1 {
                // Its one reader left now frees it: queue that reader again if it is ready.
                let last = du.uses(v).iter().map(|&r| r as usize).find(|&r| !done[r]);
                if let Some(r) = last.filter(|&r| waiting[r] == 0) {
                    ready.push((score(r, &readers_left), key(r)));
                }
            }
        }
        let mut previous = None;
        for &r in du.uses(func.eqns[e].out) {
            // An equation reading the result twice is listed twice, next to itself.
            if previous.replace(r) == Some(r) {
                continue;
            }
            let r = r as usize;
            waiting[r] -= 1;
            if waiting[r] == 0 {
                ready.push((score(r, &readers_left), key(r)));
            }
        }
    }
    order
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
fn compact(func: Func, keep: &[bool], replace: &[Option<Var>]) -> Func {
    let order: Vec<u32> = (0..func.eqns.len() as u32)
        .filter(|&i| keep[i as usize])
        .collect();
    compact_in_order(func, &order, replace)
}

/// `compact` with the kept equations given in the order to emit them (operands before users).
fn compact_in_order(mut func: Func, order: &[u32], replace: &[Option<Var>]) -> Func {
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
    for eqn in order.iter().map(|&i| &old_eqns[i as usize]) {
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
    fn residuals_are_computed_next_to_their_use_when_that_holds_less() {
        // Two residuals computed up front and used one after the other: in program order
        // both are alive together; scheduled, each is made just before its use.
        let f = parse_func(
            "func f(x: f32[4]) -> f32[4] {\n  a: f32[4] = sin x\n  b: f32[4] = cos x\n  c: f32[4] = mul x a\n  d: f32[4] = mul c b\n  return d\n}\n",
        )
        .unwrap();
        let before = crate::analysis::peak_live_bytes(&f);
        let g = schedule_for_memory(f);
        verify_func(&g).unwrap();
        assert_eq!(
            print_func(&g),
            "func f(x: f32[4]) -> f32[4] {\n  a: f32[4] = sin x\n  c: f32[4] = mul x a\n  b: f32[4] = cos x\n  d: f32[4] = mul c b\n  return d\n}\n"
        );
        assert!(crate::analysis::peak_live_bytes(&g) < before);
        // Already best: unchanged.
        let again = print_func(&g);
        assert_eq!(print_func(&schedule_for_memory(g)), again);
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
