//! The simplifier: equality saturation with egg over the IR, then extraction of the cheapest
//! equivalent program. It removes what the derivative transforms leave behind (multiplies by
//! a broadcast 1.0, `integer_pow[y=1]`, structural zeros added in, duplicates, sums of
//! products with a common factor) and never changes a value beyond float rounding, with the
//! exceptions `docs/simplify.md` lists.
//!
//! 1. **Into the e-graph** (`into_egraph`): parameters, literals and equations are added in
//!    program order, so hash-consing shares every repeated computation (CSE for free) and
//!    nothing recurses. The analysis (`lang.rs`) types every class, folds constants and tracks
//!    structural zeros.
//! 2. **Saturation** (`saturate`): every rule (`rules/`) is tried on every node, the results
//!    unioned, the e-graph rebuilt; until nothing changes or a limit (iterations, nodes,
//!    time, all set from the input's size: `Limits::for_size`) is reached. The stop reason is
//!    reported.
//! 3. **Extraction** (`extract.rs`): the cheapest node of each class by a cost model of FLOPs
//!    and memory traffic, then the program emitted in dependency order.
//! 4. **Scheduling** (`traceform_ir::schedule_for_memory`): the equations reordered so that
//!    each is computed as late as its users allow, when that lowers the peak of live memory.
//!
//! A function bigger than the e-graph is allowed to grow to (`Limits::max_eqns`) is passed
//! through the cheap passes instead (common subexpressions, dead code), so simplification
//! never stalls. Output is deterministic: egg's `deterministic` feature orders its tables by
//! insertion, and the rules and extraction iterate in that order.

mod extract;
mod lang;
mod rules;

use std::fmt;
use std::time::{Duration, Instant};

use egg::Id;
use rustc_hash::FxHashMap;
use smallvec::SmallVec;
use traceform_ir::{eliminate_common_subexpressions, schedule_for_memory, Atom, Func};

pub use extract::{func_work, work, Work};
use lang::{Facts, Graph, Node};
pub use rules::{all as all_rules, Rule};

/// Bounds on one simplification.
#[derive(Clone, Debug)]
pub struct Limits {
    pub iterations: usize,
    pub nodes: usize,
    pub time: Duration,
    /// Functions with more equations than this get the cheap passes only.
    pub max_eqns: usize,
}

impl Limits {
    /// Limits scaled to a function of `eqns` equations: 12 iterations, the e-graph may grow
    /// to 5 times the input (at least 50,000 nodes), 100 ms plus 20 µs per equation.
    pub fn for_size(eqns: usize) -> Limits {
        Limits {
            iterations: 12,
            nodes: (5 * eqns).max(50_000),
            time: Duration::from_millis(100) + Duration::from_micros(20 * eqns as u64),
            max_eqns: 200_000,
        }
    }
}

/// Why saturation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// No rule found anything new: the result is the best the rules can reach.
    Saturated,
    IterationLimit,
    NodeLimit,
    TimeLimit,
    /// The function is bigger than `Limits::max_eqns`: only CSE and dead-code removal ran.
    TooLarge,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StopReason::Saturated => "saturated",
            StopReason::IterationLimit => "iteration limit",
            StopReason::NodeLimit => "node limit",
            StopReason::TimeLimit => "time limit",
            StopReason::TooLarge => "too large for the e-graph: cse and dead code only",
        })
    }
}

/// What one simplification did.
#[derive(Clone, Debug)]
pub struct Report {
    pub eqns_before: usize,
    pub eqns_after: usize,
    pub work_before: Work,
    pub work_after: Work,
    pub stop: StopReason,
    pub iterations: usize,
    pub egraph_nodes: usize,
    pub time: Duration,
    /// How often each rule added an equality, by name, in rule order.
    pub rules_fired: Vec<(&'static str, usize)>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "eqns: {} -> {}", self.eqns_before, self.eqns_after)?;
        writeln!(
            f,
            "flops: {:.0} -> {:.0}",
            self.work_before.flops, self.work_after.flops
        )?;
        writeln!(
            f,
            "bytes: {:.0} -> {:.0}",
            self.work_before.bytes, self.work_after.bytes
        )?;
        writeln!(f, "stop: {}", self.stop)?;
        writeln!(f, "iterations: {}", self.iterations)?;
        writeln!(f, "egraph_nodes: {}", self.egraph_nodes)?;
        writeln!(f, "time_ms: {:.3}", self.time.as_secs_f64() * 1e3)?;
        let fired: Vec<String> = self
            .rules_fired
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| format!("{name} {n}"))
            .collect();
        write!(f, "rules: {}", fired.join(", "))
    }
}

/// `func` simplified, and what was done.
pub fn simplify(func: &Func, limits: &Limits) -> (Func, Report) {
    let start = Instant::now();
    let eqns_before = func.eqns.len();
    let work_before = func_work(func);
    let rules = all_rules();
    let mut report = Report {
        eqns_before,
        eqns_after: eqns_before,
        work_before,
        work_after: work_before,
        stop: StopReason::TooLarge,
        iterations: 0,
        egraph_nodes: 0,
        time: Duration::ZERO,
        rules_fired: rules.iter().map(|r| (r.name, 0)).collect(),
    };
    let out = if eqns_before > limits.max_eqns {
        // CSE removes what it makes dead. No scheduling either: at this size its candidate
        // orders cost more than the rest of the pipeline.
        eliminate_common_subexpressions(func.clone())
    } else {
        let (mut eg, roots, named, eqn_classes) = into_egraph(func);
        let (stop, iterations) = saturate(&mut eg, &rules, limits, &mut report.rules_fired);
        report.stop = stop;
        report.iterations = iterations;
        report.egraph_nodes = eg.total_size();
        let choice = extract::choose_shared(&eg, &roots);
        // A class keeps the name of the first named value it holds.
        let mut names: FxHashMap<Id, &str> = FxHashMap::default();
        for (class, var) in named {
            if let Some(name) = func.names.get(var) {
                names.entry(eg.find(class)).or_insert(name);
            }
        }
        // Each class is emitted where its first equation stood: the transforms' order (which
        // interleaves a sweep with the one it feeds) survives simplification.
        let mut positions: FxHashMap<Id, u32> = FxHashMap::default();
        for (i, &c) in eqn_classes.iter().enumerate() {
            positions.entry(eg.find(c)).or_insert(i as u32);
        }
        let emitted = extract::emit(&eg, &choice, func, &roots, &names, &positions);
        // Last, the order: each value computed as late as its users allow, when that holds
        // less (a transform emits whole sweeps, keeping every residual of one alive for the
        // next).
        schedule_for_memory(emitted)
    };
    report.eqns_after = out.eqns.len();
    report.work_after = func_work(&out);
    report.time = start.elapsed();
    (out, report)
}

/// The e-graph of `func` (equations added in program order, so shared by hash-consing), the
/// classes of its outputs, the class of each equation result that has a parsed name, and the
/// class of each equation, in program order.
type Inserted = (Graph, Vec<Id>, Vec<(Id, traceform_ir::Var)>, Vec<Id>);

fn into_egraph(func: &Func) -> Inserted {
    let facts = Facts {
        param_types: func.param_types(),
        prims: Default::default(),
    };
    let mut eg = Graph::new(facts);
    let mut class: Vec<Option<Id>> = vec![None; func.num_vars()];
    let mut eqn_classes = Vec::with_capacity(func.eqns.len());
    for (i, p) in func.params.iter().enumerate() {
        class[p.index()] = Some(eg.add(Node::Param(i as u32)));
    }
    let atom = |eg: &mut Graph, class: &[Option<Id>], a: &Atom| match a {
        Atom::Var(v) => class[v.index()].expect("verified: defined before use"),
        Atom::Lit(l) => eg.add(Node::Lit(*l)),
    };
    for eqn in &func.eqns {
        let children: SmallVec<[Id; 3]> = func
            .args(eqn)
            .iter()
            .map(|a| atom(&mut eg, &class, a))
            .collect();
        let p = eg.analysis.prims.intern(func.prim(eqn));
        let id = eg.add(Node::Op(p, children));
        if matches!(eg[id].data.loc, traceform_ir::Loc::Unknown) {
            let mut data = eg[id].data.clone();
            data.loc = eqn.loc;
            eg.set_analysis_data(id, data);
        }
        class[eqn.out.index()] = Some(id);
        eqn_classes.push(id);
    }
    let roots = func
        .outputs
        .iter()
        .map(|a| atom(&mut eg, &class, a))
        .collect();
    let named = func
        .eqns
        .iter()
        .filter(|e| func.names.get(e.out).is_some())
        .filter_map(|e| Some((class[e.out.index()]?, e.out)))
        .collect();
    eg.rebuild();
    (eg, roots, named, eqn_classes)
}

/// Applies every rule to every node until nothing changes or a limit is reached; returns why
/// it stopped and how many iterations ran. Rewrites whose result would not have the matched
/// class's type are dropped (a rule's guard missed a case; never applied).
fn saturate(
    eg: &mut Graph,
    rules: &[Rule],
    limits: &Limits,
    fired: &mut [(&'static str, usize)],
) -> (StopReason, usize) {
    let start = Instant::now();
    for iteration in 0..limits.iterations {
        let mut matches: Vec<(Id, usize, rules::Rhs)> = Vec::new();
        for c in eg.classes() {
            for node in &c.nodes {
                for (k, rule) in rules.iter().enumerate() {
                    if let Some(rhs) = (rule.apply)(eg, c.id, node) {
                        matches.push((c.id, k, rhs));
                    }
                }
            }
        }
        let mut changed = false;
        for (id, k, rhs) in matches {
            let Some(new) = rules::add(eg, &rhs) else {
                debug_assert!(false, "rule `{}` built an ill-typed node", rules[k].name);
                continue;
            };
            if eg[new].data.ty != eg[id].data.ty {
                debug_assert!(false, "rule `{}` changed a type", rules[k].name);
                continue;
            }
            if eg.union(id, new) {
                changed = true;
                fired[k].1 += 1;
            }
            if eg.total_size() > limits.nodes {
                eg.rebuild();
                return (StopReason::NodeLimit, iteration + 1);
            }
        }
        eg.rebuild();
        if !changed {
            return (StopReason::Saturated, iteration + 1);
        }
        if start.elapsed() > limits.time {
            return (StopReason::TimeLimit, iteration + 1);
        }
    }
    (StopReason::IterationLimit, limits.iterations)
}
