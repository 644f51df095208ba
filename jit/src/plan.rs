//! The fusion plan: which equations become one compiled loop, which a GEMM call and which an
//! explicit runtime-kernel call, and which values are materialised in memory.
//!
//! A value is *inlined* (never materialised) when its equation is fusible (a concatenation,
//! or a pad without interior padding, into one reader only), it is not an output, every
//! equation reading it can take a fused operand (see [`accepts_fused_operand`]), and one
//! equation reads it or it is cheap to recompute ([`CHEAP_OPS`]). Each equation whose result is not inlined is a step; a fused step
//! ([`Kernel`]) computes its root and everything inlined into it in one loop nest over the
//! root's shape (a reduction's or a pad's: its operand's). Broadcasts, slices, reverses,
//! transposes, squeezes, expand_dims and reshapes are not loops of their own: they become index
//! arithmetic ([`IndexMap`]) on the loads of the fused loop; inlined pads and concatenations
//! become guards. A `cumsum` ends a loop storing its operand, then sums along its axis
//! ([`Scan`]).
//! Consecutive independent loops of one shape then merge into one with several results
//! ([`can_merge`]).
//!
//! Everything here is a loop over the equations, forwards or backwards: nothing recurses in the
//! depth of the graph.

use std::fmt::Write as _;

use smallvec::SmallVec;
use std::collections::{HashMap, HashSet};

use traceform_ir::{
    Atom, BinaryOp, DType, Def, DefUse, Func, Namer, OpClass, Prim, PrimKind, Type, UnaryOp, Var,
};

/// An affine function of the loop index of a kernel: `offset + sum_d coef[d] * i_d`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Affine {
    pub offset: i64,
    pub coef: Vec<i64>,
}

impl Affine {
    fn constant(offset: i64, rank: usize) -> Affine {
        Affine {
            offset,
            coef: vec![0; rank],
        }
    }
}

/// The multi-index of a value (one [`Affine`] per axis) as a function of the loop index of
/// the kernel it is read in.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IndexMap {
    pub axes: Vec<Affine>,
}

impl From<Vec<Affine>> for IndexMap {
    fn from(axes: Vec<Affine>) -> IndexMap {
        IndexMap { axes }
    }
}

impl IndexMap {
    /// The identity over a loop of rank `rank`.
    fn identity(rank: usize) -> IndexMap {
        let axes = (0..rank)
            .map(|d| {
                let mut a = Affine::constant(0, rank);
                a.coef[d] = 1;
                a
            })
            .collect();
        IndexMap { axes }
    }

    /// The element offset in a row-major buffer of `shape` (an affine function of the loop
    /// index too).
    fn row_major_offset(&self, shape: &[usize], rank: usize) -> Affine {
        let mut out = Affine::constant(0, rank);
        let mut stride = 1i64;
        for (k, a) in self.axes.iter().enumerate().rev() {
            out.offset += stride * a.offset;
            for (o, c) in out.coef.iter_mut().zip(&a.coef) {
                *o += stride * c;
            }
            stride *= shape[k] as i64;
        }
        out
    }
}

/// One node of a fused kernel's expression, in topological order.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeOp {
    /// An element of materialised value `var`, at element offset `at` of its row-major buffer;
    /// under a guard, read only where the guard holds (elsewhere from a safe zeroed place).
    Load {
        var: Var,
        at: Affine,
        guard: Option<u32>,
    },
    /// An inlined `pad` (no interior padding): `value` where guard `guard` holds (the element
    /// lands inside the operand), else `fill`.
    Pad { value: u32, fill: u32, guard: u32 },
    /// A constant.
    Literal(f64),
    /// The loop-index-dependent value of an `iota` (before conversion to its dtype).
    Iota(Affine),
    /// An elementwise primitive applied to earlier nodes.
    Apply {
        prim: Prim,
        args: SmallVec<[u32; 3]>,
    },
}

/// Where an inlined pad's operand is read: every axis `(index, lo, hi)` has
/// `lo <= index < hi`, and the enclosing guard (if any) holds too.
#[derive(Clone, Debug, PartialEq)]
pub struct Guard {
    pub axes: Vec<(Affine, i64, i64)>,
    pub parent: Option<u32>,
}

/// A node and its element type.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub op: NodeOp,
    pub dtype: DType,
}

/// How a reducing kernel combines elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    Sum,
    Max,
    Min,
}

/// A fused loop: the root's value computed for every index of `domain`, stored into `out` (at
/// the row-major position), folded into `out` at `reduce.1` by `reduce.0`, or (`pad`) stored
/// at `scatter.0` into an `out` filled with `scatter.1`.
#[derive(Clone, Debug, PartialEq)]
pub struct Kernel {
    /// The equations computed, in program order (the root last).
    pub eqns: Vec<u32>,
    pub domain: Vec<usize>,
    pub nodes: Vec<Node>,
    pub out: Var,
    pub out_dtype: DType,
    /// Elements of `out`.
    pub out_len: usize,
    pub reduce: Option<(ReduceOp, Affine)>,
    /// For `pad`: where each element of the domain (the operand's part that lands inside the
    /// result) is stored, the rest of `out` being filled first.
    pub scatter: Option<(Affine, Fill)>,
    /// For `cumsum`: after the loop has stored its operand into `out`, a pass summing `out`
    /// along the scanned axis in place.
    pub scan: Option<Scan>,
    /// The guards of inlined pads and concatenations.
    pub guards: Vec<Guard>,
    /// The node whose value is stored into (or folded into) `out`.
    pub root: u32,
    /// Reductions over the same domain merged into this loop, each into its own result.
    pub siblings: Vec<Sibling>,
}

impl Kernel {
    /// The materialised values this loop reads only at the element it writes: every output
    /// (the root and the siblings) is stored, not folded, at the element's row-major
    /// position, and every load of these values is unguarded and at that position too. The
    /// loop may write each of its results over a different one of them that dies here:
    /// codegen computes every node of a group of elements (loads first) before the last pass
    /// stores that group's outputs, and no other element of them is read.
    pub fn read_in_place(&self) -> Vec<Var> {
        let rank = self.domain.len();
        let here = IndexMap::identity(rank).row_major_offset(&self.domain, rank);
        let elementwise = self.reduce.is_none()
            && self.scatter.is_none()
            && self.domain.iter().product::<usize>() == self.out_len
            && self
                .siblings
                .iter()
                .all(|s| s.reduce.is_none() && s.at == here && s.len == self.out_len);
        if !elementwise {
            return Vec::new();
        }
        let (mut direct, mut other) = (Vec::new(), Vec::new());
        for n in &self.nodes {
            if let NodeOp::Load { var, at, guard } = &n.op {
                if guard.is_none() && *at == here {
                    direct.push(*var);
                } else {
                    other.push(*var);
                }
            }
        }
        direct.retain(|v| !other.contains(v));
        direct.sort_unstable();
        direct.dedup();
        direct
    }
}

/// A cumulative sum along one axis of a row-major result viewed as `[outer, len, inner]`:
/// element `k` of the axis becomes `out[k] + out[k - 1]` (from the end when `reverse`), in
/// the interpreter's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scan {
    pub outer: usize,
    pub len: usize,
    pub inner: usize,
    pub reverse: bool,
}

/// A result computed by another kernel's loop: node `node`'s value stored (or folded by
/// `reduce`) into `out` (of `len` elements) at `at`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sibling {
    pub node: u32,
    pub out: Var,
    pub len: usize,
    pub reduce: Option<ReduceOp>,
    pub at: Affine,
}

/// The value a scattering kernel fills its output with first.
#[derive(Clone, Debug, PartialEq)]
pub enum Fill {
    Literal(f64),
    /// A materialised rank-0 value.
    Var(Var),
}

/// What one step of the plan does.
#[derive(Clone, Debug, PartialEq)]
pub enum StepKind {
    /// A compiled fused loop.
    Kernel(Box<Kernel>),
    /// `dot_general` of floats through the runtime's GEMM (`traceform_runtime::Gemm`).
    Gemm { eqn: u32 },
    /// An explicit call of the runtime's kernel for the equation (see `docs/jit.md`).
    Runtime { eqn: u32 },
    /// Float `conv_general_dilated`s of one lhs, with one attribute set and kernels of one
    /// shape (a jvp's `conv(x, w)` and `conv(x, dw)`), through the runtime's
    /// `conv_general_dilated_into`: the lhs is gathered once, and each result is written
    /// straight into its buffer. The first equation is the step's `out`, the others `also`.
    Convolutions { eqns: Vec<u32> },
}

/// One step and the equation whose result it materialises.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub kind: StepKind,
    pub out: Var,
    /// Further results of the step (sibling reductions merged into its loop).
    pub also: Vec<Var>,
    /// Materialised values the step reads.
    pub reads: Vec<Var>,
}

/// The whole plan: steps in program order.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Per value: materialised (a parameter, or the result of a step).
    pub materialised: Vec<bool>,
}

/// How the JIT computes a primitive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lowering {
    /// Arithmetic inside a fused loop.
    Loop,
    /// Index arithmetic on the loads of a fused loop (or a copying loop of its own).
    IndexMap,
    /// The end of a fused loop, folding its elements.
    Reduction,
    /// The end of a fused loop over the operand, storing each element at its place in a
    /// result filled with the padding value first.
    Scatter,
    /// The end of a fused loop storing the operand, then a compiled pass summing the result
    /// in place along one axis (`cumsum`).
    Scan,
    /// The runtime's GEMM, `traceform_runtime::Gemm` (floats; i32 and literal operands go to
    /// the runtime kernel); a product of at most `TINY_PRODUCT` multiply-adds is a fused
    /// loop instead (`is_tiny_product`).
    Gemm,
    /// An explicit call of the runtime's kernel (`traceform_runtime::apply`), listed in
    /// `docs/jit.md`.
    RuntimeKernel,
}

/// How the JIT computes each primitive: the table of `docs/jit.md`.
pub fn lowering(kind: PrimKind) -> Lowering {
    match kind {
        PrimKind::Neg
        | PrimKind::Sin
        | PrimKind::Cos
        | PrimKind::Tan
        | PrimKind::Tanh
        | PrimKind::Exp
        | PrimKind::Log
        | PrimKind::Log1p
        | PrimKind::Expm1
        | PrimKind::Sqrt
        | PrimKind::Rsqrt
        | PrimKind::Abs
        | PrimKind::Sign
        | PrimKind::Logistic
        | PrimKind::Erf
        | PrimKind::Floor
        | PrimKind::Ceil
        | PrimKind::Round
        | PrimKind::IntegerPow
        | PrimKind::StopGradient
        | PrimKind::Add
        | PrimKind::Sub
        | PrimKind::Mul
        | PrimKind::Div
        | PrimKind::Pow
        | PrimKind::Max
        | PrimKind::Min
        | PrimKind::Atan2
        | PrimKind::Lt
        | PrimKind::Le
        | PrimKind::Gt
        | PrimKind::Ge
        | PrimKind::Eq
        | PrimKind::Ne
        | PrimKind::And
        | PrimKind::Or
        | PrimKind::Not
        | PrimKind::SelectN
        | PrimKind::ConvertElementType
        | PrimKind::Iota
        | PrimKind::Zeros => Lowering::Loop,
        PrimKind::BroadcastInDim
        | PrimKind::Reshape
        | PrimKind::Transpose
        | PrimKind::Squeeze
        | PrimKind::ExpandDims
        | PrimKind::Rev
        | PrimKind::Slice
        | PrimKind::Concatenate => Lowering::IndexMap,
        PrimKind::ReduceSum | PrimKind::ReduceMax | PrimKind::ReduceMin => Lowering::Reduction,
        PrimKind::DotGeneral => Lowering::Gemm,
        PrimKind::Pad => Lowering::Scatter,
        PrimKind::Cumsum => Lowering::Scan,
        PrimKind::Argmax
        | PrimKind::Argmin
        | PrimKind::ConvGeneralDilated
        | PrimKind::ReduceWindowSum
        | PrimKind::ReduceWindowMax
        | PrimKind::ReduceWindowMin
        | PrimKind::ReduceWindowSumTranspose
        | PrimKind::SelectAndGatherAdd
        | PrimKind::SelectAndScatterAdd => Lowering::RuntimeKernel,
    }
}

/// True when `prim` may be computed inside a fused loop (as arithmetic or as index arithmetic).
pub fn is_fusible(prim: &Prim) -> bool {
    matches!(lowering(prim.kind()), Lowering::Loop | Lowering::IndexMap)
}

/// The reduction a fused kernel can end in, if `prim` is one.
fn reduce_op(prim: &Prim) -> Option<ReduceOp> {
    if lowering(prim.kind()) != Lowering::Reduction {
        return None;
    }
    match prim {
        Prim::ReduceSum { .. } => Some(ReduceOp::Sum),
        Prim::ReduceMax { .. } => Some(ReduceOp::Max),
        Prim::ReduceMin { .. } => Some(ReduceOp::Min),
        _ => None,
    }
}

/// True when equation `consumer` may read the result of equation `producer` without it being
/// materialised. A reshape reads its operand from memory (its index arithmetic is that of a
/// row-major buffer). A consumer with more elements than the producer (a broadcast, or a
/// rank-0 operand of an elementwise primitive) would recompute the producer's arithmetic for
/// every copy, so only constants are inlined there.
fn accepts_fused_operand(func: &Func, consumer: u32, producer: usize) -> bool {
    let eqn = &func.eqns[consumer as usize];
    let prim = func.prim(eqn);
    let made = &func.eqns[producer];
    match lowering(prim.kind()) {
        // A pad reads each element of its operand once; its padding value is filled in.
        Lowering::Scatter => return func.args(eqn)[1] != Atom::Var(made.out),
        Lowering::Reduction | Lowering::Scan | Lowering::Loop => {}
        Lowering::IndexMap => match prim {
            Prim::Reshape { .. } => return false,
            // Each element of each operand lands at one place of the result.
            Prim::Concatenate { .. } => return true,
            _ => {}
        },
        Lowering::Gemm | Lowering::RuntimeKernel => return false,
    }
    let grows = func.var_type(eqn.out).num_elements() > func.var_type(made.out).num_elements();
    !grows || func.prim(made).class() == OpClass::Constant
}

impl Plan {
    /// Plans `func` (verified).
    pub fn new(func: &Func) -> Plan {
        let n = func.eqns.len();
        let def_use = DefUse::new(func);
        let mut is_output = vec![false; func.num_vars()];
        for a in &func.outputs {
            if let Atom::Var(v) = a {
                is_output[v.index()] = true;
            }
        }
        // inlined[k]: equation k is computed inside the loops of its readers, never stored.
        // A value read by one equation is inlined whenever that reader can take it; one read
        // by several is inlined (recomputed by each) only when it is cheap: at most
        // `CHEAP_OPS` arithmetic operations including what is inlined into it, and no
        // transcendental. Decided in program order: a cost counts the operands' decisions.
        let mut inlined = vec![false; n];
        let mut cost = vec![0usize; n];
        for (k, eqn) in func.eqns.iter().enumerate() {
            let prim = func.prim(eqn);
            let uses = def_use.uses(eqn.out);
            let own = match lowering(prim.kind()) {
                Lowering::IndexMap => 0,
                _ if is_transcendental_prim(prim) => CHEAP_OPS + 1,
                _ => 1,
            };
            cost[k] = own
                + func
                    .args(eqn)
                    .iter()
                    .filter_map(|a| match def_use.def[a.as_var()?.index()] {
                        Def::Eqn(p) if inlined[p as usize] => Some(cost[p as usize]),
                        _ => None,
                    })
                    .sum::<usize>();
            let guardable = is_guarded_read(prim);
            if is_output[eqn.out.index()] || uses.is_empty() || !(is_fusible(prim) || guardable) {
                continue;
            }
            if guardable {
                // A pad or a concatenation is inlined into its one reader only (never
                // recomputed).
                cost[k] = CHEAP_OPS + 1;
            }
            let one_reader = uses.iter().all(|&u| u == uses[0]);
            inlined[k] = uses.iter().all(|&u| accepts_fused_operand(func, u, k))
                && (one_reader || cost[k] <= CHEAP_OPS);
        }
        let inl = Inlining {
            inlined,
            def: def_use.def,
        };
        let mut materialised = vec![false; func.num_vars()];
        for p in &func.params {
            materialised[p.index()] = true;
        }
        let mut steps = Vec::new();
        for k in 0..n {
            if inl.inlined[k] {
                continue;
            }
            let eqn = &func.eqns[k];
            materialised[eqn.out.index()] = true;
            let prim = func.prim(eqn);
            let kind = if is_fusible(prim)
                || matches!(
                    lowering(prim.kind()),
                    Lowering::Reduction | Lowering::Scatter | Lowering::Scan
                )
                || is_tiny_product(func, k)
            {
                StepKind::Kernel(Box::new(build_kernel(func, k as u32, &inl)))
            } else if matches!(prim, Prim::DotGeneral(_))
                && func.var_type(eqn.out).dtype.is_float()
                && func.args(eqn).iter().all(|a| a.as_var().is_some())
            {
                StepKind::Gemm { eqn: k as u32 }
            } else if matches!(prim, Prim::ConvGeneralDilated(_))
                && func.var_type(eqn.out).dtype.is_float()
                && func.args(eqn).iter().all(|a| a.as_var().is_some())
            {
                StepKind::Convolutions {
                    eqns: vec![k as u32],
                }
            } else {
                StepKind::Runtime { eqn: k as u32 }
            };
            let mut reads = Vec::new();
            match &kind {
                StepKind::Kernel(kernel) => {
                    for node in &kernel.nodes {
                        if let NodeOp::Load { var, .. } = node.op {
                            reads.push(var);
                        }
                    }
                    if let Some((_, Fill::Var(v))) = &kernel.scatter {
                        reads.push(*v);
                    }
                }
                StepKind::Gemm { .. }
                | StepKind::Runtime { .. }
                | StepKind::Convolutions { .. } => {
                    reads.extend(func.args(eqn).iter().filter_map(Atom::as_var));
                }
            }
            reads.sort_unstable();
            reads.dedup();
            let step = Step {
                kind,
                out: eqn.out,
                also: Vec::new(),
                reads,
            };
            match steps.last_mut() {
                Some(prev) if can_merge(prev, &step) => merge(prev, step),
                _ => steps.push(step),
            }
        }
        share_convolution_gathers(func, &mut steps);
        Plan {
            steps,
            materialised,
        }
    }

    /// The plan as text: one line per step, naming the equations it computes.
    pub fn describe(&self, func: &Func) -> String {
        let mut s = String::new();
        let namer = Namer::new(func);
        for (i, step) in self.steps.iter().enumerate() {
            let mut out = namer.name(step.out);
            let mut ty = func.var_type(step.out).to_string();
            for v in &step.also {
                out.push_str(&format!(", {}", namer.name(*v)));
                ty.push_str(&format!(", {}", func.var_type(*v)));
            }
            let names = |eqns: &[u32]| {
                eqns.iter()
                    .map(|&k| {
                        let e = &func.eqns[k as usize];
                        format!("{}={}", namer.name(e.out), func.prim(e).name())
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let _ = match &step.kind {
                StepKind::Kernel(k) => writeln!(
                    s,
                    "step {i}: loop over {:?}{} -> {out}: {ty} [{}]",
                    k.domain,
                    if k.reduce.is_some() {
                        " (reducing)"
                    } else {
                        ""
                    },
                    names(&k.eqns)
                ),
                StepKind::Gemm { eqn } => {
                    writeln!(s, "step {i}: gemm -> {out}: {ty} [{}]", names(&[*eqn]))
                }
                StepKind::Runtime { eqn } => writeln!(
                    s,
                    "step {i}: runtime kernel -> {out}: {ty} [{}]",
                    names(&[*eqn])
                ),
                StepKind::Convolutions { eqns } => writeln!(
                    s,
                    "step {i}: convolution{} -> {out}: {ty} [{}]",
                    if eqns.len() > 1 {
                        "s of one gathered lhs"
                    } else {
                        ""
                    },
                    names(eqns)
                ),
            };
        }
        s
    }
}

/// Moves each convolution step into the first earlier one that reads the same lhs with the
/// same attributes and a kernel of the same shape, when every value it reads is made before
/// that step (so the lhs is gathered once for both). A jvp convolves each activation with the
/// weights and with their tangent: `conv(h, w)` then `conv(h', w)`, then `conv(h, dw)`.
fn share_convolution_gathers(func: &Func, steps: &mut Vec<Step>) {
    // made_at[v]: the step making value v (`None` for parameters: before every step).
    let mut made_at = vec![None; func.num_vars()];
    for (i, step) in steps.iter().enumerate() {
        for v in std::iter::once(step.out).chain(step.also.iter().copied()) {
            made_at[v.index()] = Some(i);
        }
    }
    let key = |step: &Step| -> Option<(Var, Prim, Type)> {
        let StepKind::Convolutions { eqns } = &step.kind else {
            return None;
        };
        let e = &func.eqns[eqns[0] as usize];
        let args = func.args(e);
        let (lhs, rhs) = (args[0].as_var()?, args[1].as_var()?);
        Some((lhs, func.prim(e).clone(), func.var_type(rhs).clone()))
    };
    let mut moved = vec![false; steps.len()];
    // The convolution steps kept so far, by lhs.
    let mut by_lhs: HashMap<Var, Vec<usize>> = HashMap::new();
    for j in 0..steps.len() {
        let Some(want) = key(&steps[j]) else {
            continue;
        };
        let ready = |i: usize| {
            steps[j]
                .reads
                .iter()
                .all(|v| made_at[v.index()].is_none_or(|m| m < i))
        };
        let earlier = by_lhs.entry(want.0).or_default();
        let Some(i) = earlier
            .iter()
            .copied()
            .find(|&i| key(&steps[i]).as_ref() == Some(&want) && ready(i))
        else {
            earlier.push(j);
            continue;
        };
        moved[j] = true;
        let (out, reads, StepKind::Convolutions { eqns }) =
            (steps[j].out, steps[j].reads.clone(), steps[j].kind.clone())
        else {
            unreachable!("a convolution step")
        };
        let into = &mut steps[i];
        into.also.push(out);
        into.reads.extend(reads);
        into.reads.sort_unstable();
        into.reads.dedup();
        if let StepKind::Convolutions { eqns: first } = &mut into.kind {
            first.extend(eqns);
        }
    }
    let mut index = 0;
    steps.retain(|_| {
        index += 1;
        !moved[index - 1]
    });
}

/// True when `next` can run in `prev`'s loop: both reduce, or neither reduces and they read a
/// value in common (read once; and each result may then be written in place of a different
/// operand that dies there, see `Kernel::read_in_place`), or the loops are short (where a
/// loop's fixed costs dominate), over the same domain and dtype, neither ends in a pad, and
/// `next` does not read what `prev` makes.
fn can_merge(prev: &Step, next: &Step) -> bool {
    let (StepKind::Kernel(a), StepKind::Kernel(b)) = (&prev.kind, &next.kind) else {
        return false;
    };
    let short = a.domain.iter().product::<usize>() < SHORT_LOOP;
    let both_reduce = a.reduce.is_some() && b.reduce.is_some();
    let both_store = a.reduce.is_none()
        && b.reduce.is_none()
        && a.siblings.iter().all(|s| s.reduce.is_none())
        && next.reads.iter().any(|v| prev.reads.contains(v));
    (short || both_reduce || both_store)
        && a.scatter.is_none()
        && b.scatter.is_none()
        && a.scan.is_none()
        && b.scan.is_none()
        && a.domain == b.domain
        && a.out_dtype == b.out_dtype
        && b.siblings.is_empty()
        && !next.reads.contains(&prev.out)
        && !prev.also.iter().any(|v| next.reads.contains(v))
        && a.nodes.len() + b.nodes.len() <= MERGED_NODES
}

/// The most nodes a loop with merged siblings may have.
const MERGED_NODES: usize = 256;

/// Loops over fewer elements than this merge with any independent neighbour of their shape.
pub const SHORT_LOOP: usize = 4096;

/// Float products of at most this many multiply-adds (about 6x6x6, the runtime GEMM's own
/// plain-loop bound) are loops of their own, summing over the contracted axes, inline in
/// the program rather than calls.
const TINY_PRODUCT: usize = 256;

/// Whether equation `k` is a tiny float `dot_general` of two materialised values: a loop over
/// its result's axes then the contracted ones, the product of the two loads summed.
fn is_tiny_product(func: &Func, k: usize) -> bool {
    let eqn = &func.eqns[k];
    let Prim::DotGeneral(dims) = func.prim(eqn) else {
        return false;
    };
    let lhs = &func.atom_type(&func.args(eqn)[0]).shape;
    let contracted: usize = dims.contract.0.iter().map(|&a| lhs[a]).product();
    func.var_type(eqn.out).dtype.is_float()
        && func.args(eqn).iter().all(|a| a.as_var().is_some())
        && func.var_type(eqn.out).num_elements() * contracted <= TINY_PRODUCT
}

/// Appends `next`'s loop to `prev`'s: its nodes and guards renumbered, nodes equal to one of
/// `prev`'s shared (the two loops often read and compute the same things), its root a
/// sibling.
fn merge(prev: &mut Step, next: Step) {
    let (StepKind::Kernel(a), StepKind::Kernel(b)) = (&mut prev.kind, next.kind) else {
        unreachable!("can_merge checked both are loops")
    };
    let dg = a.guards.len() as u32;
    let mut existing: HashMap<String, u32> = a
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (format!("{n:?}"), i as u32))
        .collect();
    let mut renumber: Vec<u32> = Vec::with_capacity(b.nodes.len());
    for mut node in b.nodes {
        match &mut node.op {
            NodeOp::Apply { args, .. } => args.iter_mut().for_each(|x| *x = renumber[*x as usize]),
            NodeOp::Pad { value, fill, guard } => {
                *value = renumber[*value as usize];
                *fill = renumber[*fill as usize];
                *guard += dg;
            }
            NodeOp::Load { guard, .. } => {
                if let Some(g) = guard {
                    *g += dg;
                }
            }
            NodeOp::Literal(_) | NodeOp::Iota(_) => {}
        }
        let key = format!("{node:?}");
        let id = match existing.get(&key) {
            Some(&id) => id,
            None => {
                a.nodes.push(node);
                let id = (a.nodes.len() - 1) as u32;
                existing.insert(key, id);
                id
            }
        };
        renumber.push(id);
    }
    for mut g in b.guards {
        if let Some(p) = &mut g.parent {
            *p += dg;
        }
        a.guards.push(g);
    }
    let rank = b.domain.len();
    let (reduce, at) = match b.reduce {
        Some((op, at)) => (Some(op), at),
        None => (
            None,
            IndexMap::identity(rank).row_major_offset(&b.domain, rank),
        ),
    };
    a.siblings.push(Sibling {
        node: renumber[b.root as usize],
        out: b.out,
        len: b.out_len,
        reduce,
        at,
    });
    a.eqns.extend(b.eqns);
    a.eqns.sort_unstable();
    a.eqns.dedup();
    prev.also.push(next.out);
    prev.reads.extend(next.reads);
    prev.reads.sort_unstable();
    prev.reads.dedup();
}

/// The index map of operand `slot` of equation `eqn`, read at `map` (the map of the
/// equation's own result), as a function of a loop of rank `rank`.
fn operand_map(func: &Func, eqn: u32, slot: usize, map: &IndexMap, rank: usize) -> IndexMap {
    let e = &func.eqns[eqn as usize];
    let operand_shape = &func.atom_type(&func.args(e)[slot]).shape;
    if operand_shape.is_empty() {
        return IndexMap { axes: Vec::new() };
    }
    let zero = || Affine::constant(0, rank);
    let axes = match func.prim(e) {
        // A tiny product read over its loop (`build_kernel`): the result's axes (batch, the
        // lhs's free ones, the rhs's free ones), then the contracted ones.
        Prim::DotGeneral(dims) => {
            let (batch, contract) = if slot == 0 {
                (&dims.batch.0, &dims.contract.0)
            } else {
                (&dims.batch.1, &dims.contract.1)
            };
            let lhs_rank = func.atom_type(&func.args(e)[0]).shape.len();
            let lhs_free = lhs_rank - dims.batch.0.len() - dims.contract.0.len();
            let out_rank = func.var_type(e.out).shape.len();
            let mut free = if slot == 0 {
                dims.batch.0.len()
            } else {
                dims.batch.0.len() + lhs_free
            };
            (0..operand_shape.len())
                .map(|a| {
                    if let Some(i) = batch.iter().position(|&b| b == a) {
                        map.axes[i].clone()
                    } else if let Some(j) = contract.iter().position(|&c| c == a) {
                        map.axes[out_rank + j].clone()
                    } else {
                        free += 1;
                        map.axes[free - 1].clone()
                    }
                })
                .collect()
        }
        Prim::BroadcastInDim { dims, .. } => dims
            .iter()
            .enumerate()
            .map(|(k, &d)| {
                if operand_shape[k] == 1 {
                    zero()
                } else {
                    map.axes[d].clone()
                }
            })
            .collect(),
        Prim::Slice { start, strides, .. } => map
            .axes
            .iter()
            .enumerate()
            .map(|(k, a)| Affine {
                offset: start[k] as i64 + strides[k] as i64 * a.offset,
                coef: a.coef.iter().map(|c| c * strides[k] as i64).collect(),
            })
            .collect(),
        Prim::Rev { dims } => map
            .axes
            .iter()
            .enumerate()
            .map(|(k, a)| {
                if dims.contains(&k) {
                    Affine {
                        offset: operand_shape[k] as i64 - 1 - a.offset,
                        coef: a.coef.iter().map(|c| -c).collect(),
                    }
                } else {
                    a.clone()
                }
            })
            .collect(),
        Prim::Transpose { perm } => {
            let mut axes = vec![zero(); operand_shape.len()];
            for (d, &p) in perm.iter().enumerate() {
                axes[p] = map.axes[d].clone();
            }
            axes
        }
        Prim::Squeeze { dims } => {
            let mut kept = map.axes.iter();
            (0..operand_shape.len())
                .map(|k| {
                    if dims.contains(&k) {
                        zero()
                    } else {
                        kept.next().cloned().unwrap_or_else(zero)
                    }
                })
                .collect()
        }
        // Operand `slot` of a concatenation starts where the earlier ones end.
        Prim::Concatenate { axis } => {
            let start: i64 = func.args(e)[..slot]
                .iter()
                .map(|a| func.atom_type(a).shape[*axis] as i64)
                .sum();
            let mut axes = map.axes.clone();
            axes[*axis].offset -= start;
            axes
        }
        // An inlined pad (no interior padding): operand element `j` is result element
        // `low + j`. (A pad ending a loop maps its operand itself: `pad_root_map`.)
        Prim::Pad { low, .. } => map
            .axes
            .iter()
            .zip(low)
            .map(|(a, &l)| Affine {
                offset: a.offset - l,
                coef: a.coef.clone(),
            })
            .collect(),
        Prim::ExpandDims { dims } => map
            .axes
            .iter()
            .enumerate()
            .filter(|(d, _)| !dims.contains(d))
            .map(|(_, a)| a.clone())
            .collect(),
        // Elementwise (an operand of the result's shape) and reductions (the loop runs over
        // the operand's shape).
        _ => map.axes.clone(),
    };
    IndexMap { axes }
}

/// What the walk building a kernel's nodes does next.
enum Task {
    /// Make sure equation `k` has a node at this map and guard context (operands first).
    Visit(u32, IndexMap, u32),
    /// Make equation `k`'s node at this map and guard context (its operands' nodes exist).
    Make(u32, IndexMap, u32),
}

/// The fused kernel whose step computes equation `root`: a walk down from the root through the
/// inlined equations (an explicit stack, not recursion), one node per equation and index map
/// (an equation read at two different places of the loop is two nodes).
fn build_kernel(func: &Func, root: u32, inl: &Inlining) -> Kernel {
    let root_eqn = &func.eqns[root as usize];
    let root_prim = func.prim(root_eqn);
    let out_ty = func.var_type(root_eqn.out);
    let reduce = reduce_op(root_prim);
    let operand_ty = || func.atom_type(&func.args(root_eqn)[0]);
    let domain: Vec<usize> = match root_prim {
        _ if reduce.is_some() => operand_ty().shape.to_vec(),
        // A tiny product: the result's axes, then the contracted ones (in the lhs's order).
        Prim::DotGeneral(dims) => out_ty
            .shape
            .iter()
            .copied()
            .chain(dims.contract.0.iter().map(|&a| operand_ty().shape[a]))
            .collect(),
        Prim::Pad { low, interior, .. } => {
            pad_window(low, interior, &operand_ty().shape, &out_ty.shape)
                .iter()
                .map(|&(_, extent)| extent as usize)
                .collect()
        }
        _ => out_ty.shape.to_vec(),
    };
    let rank = domain.len();
    let ends_in_operand =
        reduce.is_some() || matches!(root_prim, Prim::Pad { .. } | Prim::Cumsum { .. });
    // The map of operand `slot` of equation `k` read at `map`.
    let child_map = |k: u32, slot: usize, map: &IndexMap| -> IndexMap {
        match root_prim {
            Prim::Pad { low, interior, .. } if k == root => {
                pad_window(low, interior, &operand_ty().shape, &out_ty.shape)
                    .iter()
                    .zip(&map.axes)
                    .map(|(&(first, _), a)| Affine {
                        offset: first + a.offset,
                        coef: a.coef.clone(),
                    })
                    .collect::<Vec<_>>()
                    .into()
            }
            _ => operand_map(func, k, slot, map, rank),
        }
    };
    let mut nodes: Vec<Node> = Vec::new();
    // Keyed by equation, map and guard context (0: none; g + 1: guard g).
    type Key = (u32, IndexMap, u32);
    let mut made: HashMap<Key, u32> = HashMap::new();
    let mut guards: Vec<Guard> = Vec::new();
    // Keyed by equation, operand slot, map and guard context.
    let mut guard_ids: HashMap<(u32, usize, IndexMap, u32), u32> = HashMap::new();
    let mut eqns = vec![root];
    // The guard context operand `slot` of equation `k` (at `map`, in context `ctx`) is read in:
    // an inlined pad's operand is guarded by the pad's window, a concatenation's operand by
    // its range along the axis.
    let mut child_ctx = |k: u32, slot: usize, map: &IndexMap, ctx: u32| -> u32 {
        let eqn = &func.eqns[k as usize];
        let axes = match func.prim(eqn) {
            Prim::Pad { low, .. } if k != root && slot == 0 => {
                let operand = &func.atom_type(&func.args(eqn)[0]).shape;
                let out = &func.var_type(eqn.out).shape;
                (0..out.len())
                    .map(|a| {
                        let lo = low[a].max(0);
                        let hi = (low[a] + operand[a] as i64).min(out[a] as i64);
                        (map.axes[a].clone(), lo, hi)
                    })
                    .collect()
            }
            Prim::Concatenate { axis } => {
                let extent = |a: &Atom| func.atom_type(a).shape[*axis] as i64;
                let args = func.args(eqn);
                let lo: i64 = args[..slot].iter().map(extent).sum();
                vec![(map.axes[*axis].clone(), lo, lo + extent(&args[slot]))]
            }
            _ => return ctx,
        };
        let key = (k, slot, map.clone(), ctx);
        if let Some(&g) = guard_ids.get(&key) {
            return g + 1;
        }
        guards.push(Guard {
            axes,
            parent: ctx.checked_sub(1),
        });
        let g = (guards.len() - 1) as u32;
        guard_ids.insert(key, g);
        g + 1
    };
    // The node of operand `slot` of equation `k` read at `map` in context `ctx` (its own
    // context `inner`), if it exists.
    let operand_node = |k: u32,
                        slot: usize,
                        map: &IndexMap,
                        inner: u32,
                        nodes: &mut Vec<Node>,
                        made: &HashMap<Key, u32>|
     -> u32 {
        let eqn = &func.eqns[k as usize];
        match &func.args(eqn)[slot] {
            Atom::Lit(l) => {
                nodes.push(Node {
                    op: NodeOp::Literal(l.value),
                    dtype: l.dtype,
                });
                (nodes.len() - 1) as u32
            }
            Atom::Var(v) => {
                let at_map = child_map(k, slot, map);
                if let Some(p) = inl.inlined_producer(*v) {
                    return *made
                        .get(&(p, at_map, inner))
                        .expect("operands are made before their readers");
                }
                let at = match func.prim(eqn) {
                    Prim::Reshape { .. } => {
                        map.row_major_offset(&func.var_type(eqn.out).shape, rank)
                    }
                    _ => at_map.row_major_offset(&func.var_type(*v).shape, rank),
                };
                nodes.push(Node {
                    op: NodeOp::Load {
                        var: *v,
                        at,
                        guard: inner.checked_sub(1),
                    },
                    dtype: func.var_type(*v).dtype,
                });
                (nodes.len() - 1) as u32
            }
        }
    };
    // The value the loop computes: the root's, or (reductions, pads) its operand's.
    let mut stack = vec![Task::Visit(root, IndexMap::identity(rank), 0)];
    let mut started: HashSet<Key> = HashSet::new();
    let mut top_node = None;
    while let Some(task) = stack.pop() {
        match task {
            Task::Visit(k, map, ctx) => {
                // Each equation, map and context is walked once (in a DAG, a second path
                // finds it made, or started by a reader that is still being made).
                if !started.insert((k, map.clone(), ctx)) {
                    continue;
                }
                let eqn = &func.eqns[k as usize];
                let slots = if k == root && ends_in_operand {
                    1
                } else {
                    func.args(eqn).len()
                };
                stack.push(Task::Make(k, map.clone(), ctx));
                for slot in 0..slots {
                    if let Atom::Var(v) = &func.args(eqn)[slot] {
                        if let Some(p) = inl.inlined_producer(*v) {
                            let at_map = child_map(k, slot, &map);
                            let inner = child_ctx(k, slot, &map, ctx);
                            if !made.contains_key(&(p, at_map.clone(), inner)) {
                                stack.push(Task::Visit(p, at_map, inner));
                            }
                        }
                    }
                }
            }
            Task::Make(k, map, ctx) => {
                if made.contains_key(&(k, map.clone(), ctx)) {
                    continue;
                }
                let eqn = &func.eqns[k as usize];
                let prim = func.prim(eqn);
                let dtype = func.var_type(eqn.out).dtype;
                let id = if k == root && ends_in_operand {
                    let id = operand_node(k, 0, &map, ctx, &mut nodes, &made);
                    top_node = Some(id);
                    id
                } else {
                    match prim {
                        Prim::Iota { dim, .. } => {
                            nodes.push(Node {
                                op: NodeOp::Iota(map.axes[*dim].clone()),
                                dtype,
                            });
                            (nodes.len() - 1) as u32
                        }
                        Prim::Zeros { .. } => {
                            nodes.push(Node {
                                op: NodeOp::Literal(0.0),
                                dtype,
                            });
                            (nodes.len() - 1) as u32
                        }
                        // A chain of selects, from the last operand to the first; every
                        // operand is guarded (off its range, its loads would leave its
                        // buffer), and no element of the result falls outside them all.
                        Prim::Concatenate { .. } => {
                            nodes.push(Node {
                                op: NodeOp::Literal(0.0),
                                dtype,
                            });
                            let mut fill = (nodes.len() - 1) as u32;
                            for slot in (0..func.args(eqn).len()).rev() {
                                let inner = child_ctx(k, slot, &map, ctx);
                                let value = operand_node(k, slot, &map, inner, &mut nodes, &made);
                                fill = push_guarded(&mut nodes, value, fill, inner, dtype);
                            }
                            fill
                        }
                        Prim::Pad { .. } => {
                            let inner = child_ctx(k, 0, &map, ctx);
                            let value = operand_node(k, 0, &map, inner, &mut nodes, &made);
                            let fill = operand_node(k, 1, &map, ctx, &mut nodes, &made);
                            push_guarded(&mut nodes, value, fill, inner, dtype)
                        }
                        // A tiny product (the root): the summed product of the operands.
                        Prim::DotGeneral(_) => {
                            let args = (0..2)
                                .map(|slot| operand_node(k, slot, &map, ctx, &mut nodes, &made))
                                .collect();
                            nodes.push(Node {
                                op: NodeOp::Apply {
                                    prim: Prim::Binary(BinaryOp::Mul),
                                    args,
                                },
                                dtype,
                            });
                            (nodes.len() - 1) as u32
                        }
                        _ if prim.class() == OpClass::DataMovement => {
                            operand_node(k, 0, &map, ctx, &mut nodes, &made)
                        }
                        _ => {
                            let args = (0..func.args(eqn).len())
                                .map(|slot| operand_node(k, slot, &map, ctx, &mut nodes, &made))
                                .collect();
                            nodes.push(Node {
                                op: NodeOp::Apply {
                                    prim: prim.clone(),
                                    args,
                                },
                                dtype,
                            });
                            (nodes.len() - 1) as u32
                        }
                    }
                };
                if k != root {
                    eqns.push(k);
                }
                made.insert((k, map, ctx), id);
            }
        }
    }
    // The computed value must be the last node (codegen stores or folds the last node).
    let last = match top_node {
        Some(id) => id,
        None => *made
            .get(&(root, IndexMap::identity(rank), 0))
            .expect("the root is made"),
    };
    if last as usize != nodes.len() - 1 {
        nodes.push(Node {
            op: NodeOp::Apply {
                prim: Prim::StopGradient,
                args: smallvec::smallvec![last],
            },
            dtype: nodes[last as usize].dtype,
        });
    }
    eqns.sort_unstable();
    eqns.dedup();
    let mut kernel = Kernel {
        eqns,
        domain,
        nodes,
        out: root_eqn.out,
        out_dtype: out_ty.dtype,
        out_len: out_ty.num_elements(),
        reduce: None,
        scatter: None,
        scan: None,
        guards,
        root: 0,
        siblings: Vec::new(),
    };
    kernel.root = (kernel.nodes.len() - 1) as u32;
    match root_prim {
        Prim::DotGeneral(_) => {
            // Summed over the contracted axes, after the result's.
            let out_rank = out_ty.shape.len();
            let mut out_at = Affine::constant(0, rank);
            let mut stride = 1i64;
            for d in (0..out_rank).rev() {
                out_at.coef[d] = stride;
                stride *= kernel.domain[d] as i64;
            }
            kernel.reduce = Some((ReduceOp::Sum, out_at));
        }
        Prim::ReduceSum { axes } | Prim::ReduceMax { axes } | Prim::ReduceMin { axes } => {
            let mut out_at = Affine::constant(0, rank);
            let mut stride = 1i64;
            for d in (0..rank).rev() {
                if !axes.contains(&d) {
                    out_at.coef[d] = stride;
                    stride *= kernel.domain[d] as i64;
                }
            }
            kernel.reduce = reduce.map(|op| (op, out_at));
        }
        Prim::Pad { low, interior, .. } => {
            let window = pad_window(low, interior, &operand_ty().shape, &out_ty.shape);
            let placed = IndexMap {
                axes: window
                    .iter()
                    .enumerate()
                    .map(|(k, &(first, _))| {
                        let step = interior[k] as i64 + 1;
                        let mut a = Affine::constant(low[k] + first * step, rank);
                        a.coef[k] = step;
                        a
                    })
                    .collect(),
            };
            let fill = match &func.args(root_eqn)[1] {
                Atom::Lit(l) => Fill::Literal(l.value),
                Atom::Var(v) => Fill::Var(*v),
            };
            kernel.scatter = Some((placed.row_major_offset(&out_ty.shape, rank), fill));
        }
        Prim::Cumsum { axis, reverse } => {
            let shape = &out_ty.shape;
            kernel.scan = Some(Scan {
                outer: shape[..*axis].iter().product(),
                len: shape[*axis],
                inner: shape[*axis + 1..].iter().product(),
                reverse: *reverse,
            });
        }
        _ => {}
    }
    kernel
}

/// Appends the node selecting `value` where guard context `inner` (a guard's index plus one)
/// holds, else `fill`; its index.
fn push_guarded(nodes: &mut Vec<Node>, value: u32, fill: u32, inner: u32, dtype: DType) -> u32 {
    nodes.push(Node {
        op: NodeOp::Pad {
            value,
            fill,
            guard: inner - 1,
        },
        dtype,
    });
    (nodes.len() - 1) as u32
}

/// Per axis of a pad's operand: the first element that lands inside the result, and how many
/// do (operand element `i` lands at `low + i * (interior + 1)`; negative padding crops).
fn pad_window(
    low: &[i64],
    interior: &[usize],
    operand_shape: &[usize],
    out_shape: &[usize],
) -> Vec<(i64, i64)> {
    (0..operand_shape.len())
        .map(|d| {
            let step = interior[d] as i64 + 1;
            let (n, size) = (operand_shape[d] as i64, out_shape[d] as i64);
            let first = if low[d] < 0 {
                (-low[d] + step - 1) / step
            } else {
                0
            };
            let last = if n == 0 {
                -1
            } else {
                (n - 1).min((size - 1 - low[d]).div_euclid(step))
            };
            (first, (last - first + 1).max(0))
        })
        .collect()
}

/// Which equations are inlined; per value, the equation defining it.
struct Inlining {
    inlined: Vec<bool>,
    def: Vec<Def>,
}

impl Inlining {
    /// The equation producing `v`, if it is inlined into its readers.
    fn inlined_producer(&self, v: Var) -> Option<u32> {
        match self.def[v.index()] {
            Def::Eqn(k) => self.inlined[k as usize].then_some(k),
            Def::Param(_) | Def::None => None,
        }
    }
}

/// True for a primitive a reader's loop computes as guarded reads: a pad without interior
/// padding, and a concatenation.
fn is_guarded_read(prim: &Prim) -> bool {
    matches!(prim, Prim::Pad { interior, .. } if interior.iter().all(|&i| i == 0))
        || matches!(prim, Prim::Concatenate { .. })
}

/// True for primitives computed by host kernels over tiles (never recomputed per reader).
fn is_transcendental_prim(prim: &Prim) -> bool {
    matches!(
        prim,
        Prim::Unary(
            UnaryOp::Sin
                | UnaryOp::Cos
                | UnaryOp::Tan
                | UnaryOp::Tanh
                | UnaryOp::Exp
                | UnaryOp::Log
                | UnaryOp::Log1p
                | UnaryOp::Expm1
                | UnaryOp::Logistic
                | UnaryOp::Erf
        ) | Prim::Binary(BinaryOp::Pow | BinaryOp::Atan2)
    )
}

/// The most arithmetic operations a value read by several equations may cost to be recomputed
/// by each of them instead of stored.
const CHEAP_OPS: usize = 6;

#[cfg(test)]
mod tests {
    use super::*;
    use traceform_ir::parse_func;

    fn plan(src: &str) -> (Func, Plan) {
        let f = parse_func(src).unwrap();
        let p = Plan::new(&f);
        (f, p)
    }

    #[test]
    fn an_elementwise_chain_is_one_loop() {
        let (f, p) = plan(
            "func f(x: f32[8], y: f32[8]) -> f32[8] {\n  a: f32[8] = mul x y\n  b: f32[8] = exp a\n  c: f32[8] = add b 1.0\n  return c\n}\n",
        );
        assert_eq!(p.steps.len(), 1);
        assert_eq!(
            p.describe(&f),
            "step 0: loop over [8] -> c: f32[8] [a=mul b=exp c=add]\n"
        );
        let StepKind::Kernel(k) = &p.steps[0].kind else {
            panic!("a kernel")
        };
        // x, y, mul, exp, the literal, add.
        assert_eq!(k.nodes.len(), 6);
        assert!(!p.materialised[f.eqns[0].out.index()]);
    }

    #[test]
    fn rosenbrock_is_one_reducing_loop() {
        let (f, p) = plan(
            "func r(x: f32[10]) -> f32[] {\n  a: f32[9] = slice[start=(1), limit=(10)] x\n  b: f32[9] = slice[start=(0), limit=(9)] x\n  c: f32[9] = integer_pow[y=2] b\n  d: f32[9] = sub a c\n  e: f32[] = reduce_sum[axes=(0)] d\n  return e\n}\n",
        );
        assert_eq!(
            p.describe(&f),
            "step 0: loop over [9] (reducing) -> e: f32[] [a=slice b=slice c=integer_pow d=sub e=reduce_sum]\n"
        );
        let StepKind::Kernel(k) = &p.steps[0].kind else {
            panic!("a kernel")
        };
        let loads: Vec<&Affine> = k
            .nodes
            .iter()
            .filter_map(|n| match &n.op {
                NodeOp::Load { at, .. } => Some(at),
                _ => None,
            })
            .collect();
        // b = x[0..9] (read by integer_pow, first), a = x[1..10]: both loads of x itself.
        assert_eq!(loads[0].offset, 0);
        assert_eq!(loads[1].offset, 1);
        assert_eq!(loads[0].coef, vec![1]);
    }

    #[test]
    fn shared_values_outputs_and_library_calls_are_materialised() {
        let (f, p) = plan(
            "func f(x: f32[8,8], y: f32[4]) -> (f32[8,8], i32[]) {\n  a: f32[8,8] = exp x\n  b: f32[8,8] = dot_general[contract=((1),(0)), batch=((),())] a a\n  c: i32[] = argmax[axis=0] y\n  d: i32[] = neg c\n  e: f32[8,8] = transpose[perm=(1,0)] b\n  return e, d\n}\n",
        );
        assert_eq!(
            p.describe(&f),
            "step 0: loop over [8, 8] -> a: f32[8,8] [a=exp]\n\
             step 1: gemm -> b: f32[8,8] [b=dot_general]\n\
             step 2: runtime kernel -> c: i32[] [c=argmax]\n\
             step 3: loop over [] -> d: i32[] [d=neg]\n\
             step 4: loop over [8, 8] -> e: f32[8,8] [e=transpose]\n"
        );
    }

    #[test]
    fn tiny_products_are_loops_summing_over_the_contracted_axes() {
        let (f, p) = plan(
            "func f(x: f32[2,3,4], y: f32[2,4,3]) -> f32[2,3,3] {\n  b: f32[2,3,3] = dot_general[contract=((2),(1)), batch=((0),(0))] x y\n  return b\n}\n",
        );
        assert_eq!(
            p.describe(&f),
            "step 0: loop over [2, 3, 3, 4] (reducing) -> b: f32[2,3,3] [b=dot_general]\n"
        );
    }

    #[test]
    fn expanding_broadcasts_do_not_recompute_arithmetic() {
        let (f, p) = plan(
            "func f(x: f32[4]) -> f32[4,3] {\n  a: f32[4] = exp x\n  b: f32[4,3] = broadcast_in_dim[shape=(4,3), dims=(0)] a\n  c: f32[4,3] = iota[dtype=f32, shape=(4,3), dim=1]\n  d: f32[4,3] = add b c\n  return d\n}\n",
        );
        assert_eq!(
            p.describe(&f),
            "step 0: loop over [4] -> a: f32[4] [a=exp]\n\
             step 1: loop over [4, 3] -> d: f32[4,3] [b=broadcast_in_dim c=iota d=add]\n"
        );
    }

    #[test]
    fn views_of_parameters_are_loads_wherever_they_are_read() {
        // s is read by two equations (two results of one loop: short independent loops
        // merge); it is never a step itself.
        let (f, p) = plan(
            "func f(x: f32[10]) -> (f32[9], f32[9]) {\n  s: f32[9] = slice[start=(1), limit=(10)] x\n  a: f32[9] = exp s\n  b: f32[9] = neg s\n  return a, b\n}\n",
        );
        assert_eq!(
            p.describe(&f),
            "step 0: loop over [9] -> a, b: f32[9], f32[9] [s=slice a=exp b=neg]\n"
        );
        assert!(!p.materialised[f.eqns[0].out.index()]);
    }

    #[test]
    fn a_value_read_twice_by_one_equation_is_inlined_once() {
        let (_, p) = plan(
            "func f(x: f32[4]) -> f32[4] {\n  a: f32[4] = sin x\n  b: f32[4] = mul a a\n  return b\n}\n",
        );
        let StepKind::Kernel(k) = &p.steps[0].kind else {
            panic!("a kernel")
        };
        assert_eq!(k.nodes.len(), 3, "x, sin, mul: {:?}", k.nodes);
    }
}
