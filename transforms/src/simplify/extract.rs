//! Extraction: the cheapest node of every class, by a cost model that counts work (FLOPs and
//! memory traffic, not nodes), found by a bottom-up worklist in time linear in the e-graph's
//! size times the number of improvements (egg's own extractor recomputes every class to a
//! fixpoint, which takes minutes on deep chains); then the chosen program, emitted through
//! the builder in dependency order without recursion.

use egg::{Id, Language};
use rustc_hash::FxHashMap;
use smallvec::SmallVec;
use traceform_ir::{Atom, BinaryOp, Builder, Func, Loc, OpClass, Prim, Type, UnaryOp};

use super::lang::{prim_of, Graph, Node};

/// What one equation costs: floating-point operations and bytes read and written.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Work {
    pub flops: f64,
    pub bytes: f64,
}

/// The estimated work of `prim` on operands of types `ins` giving `out`.
pub fn work(prim: &Prim, out: &Type, ins: &[&Type]) -> Work {
    let n = out.num_elements() as f64;
    let read: f64 = ins.iter().map(|t| t.size_bytes() as f64).sum();
    let flops = match prim {
        Prim::Unary(UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Sign) => n,
        Prim::Unary(UnaryOp::Floor | UnaryOp::Ceil | UnaryOp::Round) => n,
        Prim::Unary(_) | Prim::Binary(BinaryOp::Pow | BinaryOp::Atan2) => 10.0 * n,
        Prim::IntegerPow { y } => n * f64::from(y.unsigned_abs().max(1).ilog2() + 1),
        Prim::DotGeneral(_) => {
            let left = ins[0].num_elements() as f64;
            let right = ins[1].num_elements() as f64;
            // 2 * batch * free_l * free_r * contract = 2 * sqrt(out * left * right), every
            // axis being batch, free or contracted.
            2.0 * (n * left * right).sqrt()
        }
        Prim::ReduceWindowSum(w) | Prim::ReduceWindowMax(w) | Prim::ReduceWindowMin(w) => {
            n * w.size() as f64
        }
        Prim::SelectAndGatherAdd { window, .. } => n * window.size() as f64,
        Prim::ReduceWindowSumTranspose { window, .. } => {
            ins[0].num_elements() as f64 * window.size() as f64
        }
        Prim::SelectAndScatterAdd { window, .. } => {
            ins[0].num_elements() as f64 * window.size() as f64
        }
        // 2 · result elements · I · K1..Kk: one multiply-add per kernel tap of its group.
        Prim::ConvGeneralDilated(_) => 2.0 * n * ins[1].shape[1..].iter().product::<usize>() as f64,
        _ => match prim.class() {
            OpClass::Elementwise => n,
            OpClass::Reduction => ins[0].num_elements() as f64,
            OpClass::DataMovement | OpClass::Constant | OpClass::Contraction => 0.0,
        },
    };
    Work {
        flops,
        bytes: read + out.size_bytes() as f64,
    }
}

/// The cost extraction minimises: FLOPs plus 4-byte words moved, plus 1 per equation so that
/// equal work prefers fewer equations. Parameters and literals cost nothing.
pub fn node_cost(eg: &Graph, node: &Node, out: &Type) -> f64 {
    let Node::Op(p, children) = node else {
        return 0.0;
    };
    let ins: SmallVec<[&Type; 3]> = children.iter().map(|&c| &eg[c].data.ty).collect();
    let w = work(prim_of(eg, *p), out, &ins);
    w.flops + w.bytes / 4.0 + 1.0
}

/// The total estimated work of a function.
pub fn func_work(func: &Func) -> Work {
    let mut total = Work::default();
    for eqn in &func.eqns {
        let ins: SmallVec<[&Type; 3]> = func.args(eqn).iter().map(|a| func.atom_type(a)).collect();
        let w = work(func.prim(eqn), func.var_type(eqn.out), &ins);
        total.flops += w.flops;
        total.bytes += w.bytes;
    }
    total
}

/// The cheapest node of each class reachable from `roots`, by tree cost (a shared operand is
/// counted once per use, which is what makes sharing-preserving choices win ties rarely; the
/// emitted program still shares every class).
fn choose_with_costs(eg: &Graph) -> FxHashMap<Id, (f64, Node)> {
    let classes: Vec<Id> = eg.classes().map(|c| c.id).collect();
    let mut parents: FxHashMap<Id, Vec<(Id, usize)>> = FxHashMap::default();
    for &c in &classes {
        for (k, node) in eg[c].nodes.iter().enumerate() {
            for &child in node.children() {
                parents.entry(eg.find(child)).or_default().push((c, k));
            }
        }
    }
    let mut best: FxHashMap<Id, (f64, usize)> = FxHashMap::default();
    let mut work: Vec<Id> = Vec::new();
    let cost_of = |best: &FxHashMap<Id, (f64, usize)>, c: Id, k: usize| -> Option<f64> {
        let node = &eg[c].nodes[k];
        let mut total = node_cost(eg, node, &eg[c].data.ty);
        for &child in node.children() {
            total += best.get(&eg.find(child))?.0;
        }
        Some(total)
    };
    for &c in &classes {
        for (k, node) in eg[c].nodes.iter().enumerate() {
            if node.children().is_empty() {
                let cost = cost_of(&best, c, k).expect("a leaf has no children");
                if best.get(&c).is_none_or(|&(b, _)| cost < b) {
                    best.insert(c, (cost, k));
                    work.push(c);
                }
            }
        }
    }
    while let Some(c) = work.pop() {
        for &(p, k) in parents.get(&c).map(Vec::as_slice).unwrap_or(&[]) {
            let Some(cost) = cost_of(&best, p, k) else {
                continue;
            };
            if best.get(&p).is_none_or(|&(b, _)| cost < b) {
                best.insert(p, (cost, k));
                work.push(p);
            }
        }
    }
    best.into_iter()
        .map(|(c, (cost, k))| (c, (cost, eg[c].nodes[k].clone())))
        .collect()
}

/// The cheapest node of each class (`choose_with_costs`), then improved for sharing: tree
/// costs count a shared operand once per use, so they cannot see that `t * (b*k)` is cheaper
/// than `(t*b) * k` when `b*k` is computed anyway. Visiting the chosen program's classes from
/// the outputs down, a class switches to another of its nodes when that node, counting
/// operands the program computes anyway (for other users) as free, costs less than the
/// current node and what only it uses (a few levels deep), and adds no more equations than it
/// removes; a switch that would make a cycle is skipped. Programs of more than
/// `SHARING_LIMIT` classes keep the first choice.
pub fn choose_shared(eg: &Graph, roots: &[Id]) -> FxHashMap<Id, Node> {
    const SHARING_LIMIT: usize = 20_000;
    let mut choice: FxHashMap<Id, Node> = choose_with_costs(eg)
        .into_iter()
        .map(|(c, (_, n))| (c, n))
        .collect();
    let program = order(eg, &choice, roots, &FxHashMap::default());
    if program.len() > SHARING_LIMIT {
        return choice;
    }
    let mut uses = use_counts(eg, &choice, &program, roots);
    for &c in program.iter().rev() {
        if !uses.contains_key(&c) {
            continue; // no longer in the program
        }
        let cost_of = |n: &Node| node_cost(eg, n, &eg[c].data.ty);
        let current = &choice[&c];
        // The current node and what only it uses, a few levels down.
        let mut exclusive: SmallVec<[Id; 8]> = SmallVec::new();
        let mut frontier: SmallVec<[Id; 8]> = SmallVec::from_elem(c, 1);
        let mut paid = cost_of(current);
        for _ in 0..3 {
            let mut next: SmallVec<[Id; 8]> = SmallVec::new();
            for &p in &frontier {
                let kids: SmallVec<[Id; 3]> =
                    choice[&p].children().iter().map(|&k| eg.find(k)).collect();
                for &k in &kids {
                    let from_p = kids.iter().filter(|&&x| x == k).count();
                    let only_p = uses.get(&k).copied().unwrap_or(0) == from_p;
                    if only_p && !exclusive.contains(&k) {
                        exclusive.push(k);
                        next.push(k);
                        paid += node_cost(eg, &choice[&k], &eg[k].data.ty);
                    }
                }
            }
            frontier = next;
        }
        let mut better: Option<(f64, Node)> = None;
        for n in &eg[c].nodes {
            if n == current {
                continue;
            }
            let mut cost = cost_of(n);
            let mut added = 1;
            for &k in n.children() {
                let k = eg.find(k);
                if uses.contains_key(&k) && !exclusive.contains(&k) {
                    continue;
                }
                // An operand not computed anyway adds the part of its chosen tree that is
                // new, as long as that is a few equations.
                match fresh(eg, &choice, &uses, &exclusive, k) {
                    Some((new, new_cost)) => {
                        cost += new_cost;
                        added += new;
                    }
                    None => cost = f64::INFINITY,
                }
            }
            let fewer = added <= exclusive.len() + 1;
            if fewer && cost + 1e-9 < paid && better.as_ref().is_none_or(|(b, _)| cost < *b) {
                better = Some((cost, n.clone()));
            }
        }
        let Some((_, n)) = better else { continue };
        if reaches(eg, &choice, &n, c) {
            continue;
        }
        // Release what the old node used (and what only that used), acquire the new node's
        // operands (and what they use, when they are new to the program).
        let old = choice.insert(c, n).expect("chosen");
        let mut stack: Vec<Id> = old.children().iter().map(|&k| eg.find(k)).collect();
        while let Some(k) = stack.pop() {
            let count = uses.get_mut(&k).expect("in the program");
            *count -= 1;
            if *count == 0 {
                uses.remove(&k);
                stack.extend(choice[&k].children().iter().map(|&j| eg.find(j)));
            }
        }
        let mut stack: Vec<Id> = choice[&c].children().iter().map(|&k| eg.find(k)).collect();
        while let Some(k) = stack.pop() {
            match uses.get_mut(&k) {
                Some(count) => *count += 1,
                None => {
                    uses.insert(k, 1);
                    stack.extend(choice[&k].children().iter().map(|&j| eg.find(j)));
                }
            }
        }
    }
    choice
}

/// How many equations the chosen tree of class `k` adds to the program (its classes that are
/// not in it, or only as what is being replaced, `exclusive`), and their cost; `None` past a
/// few.
fn fresh(
    eg: &Graph,
    choice: &FxHashMap<Id, Node>,
    uses: &FxHashMap<Id, usize>,
    exclusive: &[Id],
    k: Id,
) -> Option<(usize, f64)> {
    let mut cost = 0.0;
    let mut seen: SmallVec<[Id; 8]> = SmallVec::new();
    let mut stack: SmallVec<[Id; 8]> = SmallVec::from_elem(k, 1);
    while let Some(c) = stack.pop() {
        if (uses.contains_key(&c) && !exclusive.contains(&c)) || seen.contains(&c) {
            continue;
        }
        let node = &choice[&c];
        if matches!(node, Node::Param(_) | Node::Lit(_)) {
            continue;
        }
        seen.push(c);
        if seen.len() > 4 {
            return None;
        }
        cost += node_cost(eg, node, &eg[c].data.ty);
        stack.extend(node.children().iter().map(|&j| eg.find(j)));
    }
    Some((seen.len(), cost))
}

/// How many chosen nodes of `program` (and outputs) use each class of it.
fn use_counts(
    eg: &Graph,
    choice: &FxHashMap<Id, Node>,
    program: &[Id],
    roots: &[Id],
) -> FxHashMap<Id, usize> {
    let mut uses: FxHashMap<Id, usize> = program.iter().map(|&c| (c, 0)).collect();
    for &c in program {
        for &k in choice[&c].children() {
            *uses.entry(eg.find(k)).or_default() += 1;
        }
    }
    for &r in roots {
        *uses.entry(eg.find(r)).or_default() += 1;
    }
    uses
}

/// Whether class `target` is reachable from the operands of `node` through the chosen nodes.
fn reaches(eg: &Graph, choice: &FxHashMap<Id, Node>, node: &Node, target: Id) -> bool {
    let mut seen: FxHashMap<Id, ()> = FxHashMap::default();
    let mut stack: Vec<Id> = node.children().iter().map(|&k| eg.find(k)).collect();
    while let Some(c) = stack.pop() {
        if c == target {
            return true;
        }
        if seen.insert(c, ()).is_some() {
            continue;
        }
        stack.extend(choice[&c].children().iter().map(|&k| eg.find(k)));
    }
    false
}

/// The classes reachable from `roots` through the chosen nodes, children before parents, in
/// the source program's order where it says: a class holding an equation of the source comes
/// at that equation's position (`positions`), one the rules made at its latest child's. So
/// simplifying does not regroup a program's sweeps (a jvp's primal and tangent work stay
/// interleaved, and the primal values die as the transform planned).
fn order(
    eg: &Graph,
    choice: &FxHashMap<Id, Node>,
    roots: &[Id],
    positions: &FxHashMap<Id, u32>,
) -> Vec<Id> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    // Reachable classes, and how many distinct chosen children each waits for.
    let mut index: FxHashMap<Id, usize> = FxHashMap::default();
    let mut classes: Vec<Id> = Vec::new();
    let mut stack: Vec<Id> = roots.iter().map(|&r| eg.find(r)).collect();
    while let Some(c) = stack.pop() {
        if index.contains_key(&c) {
            continue;
        }
        index.insert(c, classes.len());
        classes.push(c);
        stack.extend(choice[&c].children().iter().map(|&ch| eg.find(ch)));
    }
    let n = classes.len();
    let mut waiting = vec![0u32; n];
    let mut parents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, &c) in classes.iter().enumerate() {
        let mut children: SmallVec<[usize; 3]> = choice[&c]
            .children()
            .iter()
            .map(|&ch| index[&eg.find(ch)])
            .collect();
        children.sort_unstable();
        children.dedup();
        waiting[i] = children.len() as u32;
        for ch in children {
            parents[ch].push(i);
        }
    }
    let mut key = vec![0u32; n];
    let mut ready: BinaryHeap<Reverse<(u32, usize)>> = BinaryHeap::new();
    for i in (0..n).filter(|&i| waiting[i] == 0) {
        key[i] = positions.get(&classes[i]).copied().unwrap_or(0);
        ready.push(Reverse((key[i], i)));
    }
    let mut out = Vec::with_capacity(n);
    while let Some(Reverse((_, i))) = ready.pop() {
        out.push(classes[i]);
        for &p in &parents[i] {
            waiting[p] -= 1;
            if waiting[p] == 0 {
                let latest_child = choice[&classes[p]]
                    .children()
                    .iter()
                    .map(|&ch| key[index[&eg.find(ch)]])
                    .max()
                    .unwrap_or(0);
                key[p] = positions.get(&classes[p]).copied().unwrap_or(latest_child);
                ready.push(Reverse((key[p], p)));
            }
        }
    }
    out
}

/// Emits the chosen program: the parameters of `source` (with their names), then one
/// equation per chosen class in dependency order (`order`), each with its class's source location and
/// the parsed name `names` gives it.
pub fn emit(
    eg: &Graph,
    choice: &FxHashMap<Id, Node>,
    source: &Func,
    roots: &[Id],
    names: &FxHashMap<Id, &str>,
    positions: &FxHashMap<Id, u32>,
) -> Func {
    let mut b = Builder::new(source.name.clone());
    let params: Vec<Atom> = source
        .params
        .iter()
        .map(|&p| {
            let v = b.param(source.var_type(p));
            if let Some(name) = source.names.get(p) {
                b.set_name(v, name);
            }
            Atom::Var(v)
        })
        .collect();
    let mut atom: FxHashMap<Id, Atom> = FxHashMap::default();
    for c in order(eg, choice, roots, positions) {
        let a = match &choice[&c] {
            Node::Param(i) => params[*i as usize],
            Node::Lit(l) => Atom::Lit(*l),
            Node::Op(p, children) => {
                let args: SmallVec<[Atom; 3]> =
                    children.iter().map(|&ch| atom[&eg.find(ch)]).collect();
                b.set_loc(eg[c].data.loc);
                let out = b.eqn(prim_of(eg, *p).clone(), &args);
                if let (Atom::Var(v), Some(name)) = (out, names.get(&c)) {
                    b.set_name(v, name);
                }
                out
            }
        };
        atom.insert(c, a);
    }
    b.set_loc(Loc::Unknown);
    let outputs: Vec<Atom> = roots.iter().map(|&r| atom[&eg.find(r)]).collect();
    b.finish(&outputs)
        .expect("every class's chosen node type-checks: the analysis typed it")
}
