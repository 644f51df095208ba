//! Lowering of fused [`Kernel`]s to Cranelift: consecutive kernels share one function
//! `fn(buffers: *const *mut u8)`, their loop nests one after another.
//!
//! The loop nest runs over the kernel's domain after *collapsing* it: size-1 axes are dropped
//! and neighbouring axes merged wherever every load, iota, guard and output index them as one
//! (an elementwise chain over equal shapes becomes one flat loop). The innermost axis is
//! vectorised (F32X4 / F64X2, with a scalar tail) when every node is of the kernel's float
//! dtype or a bool made in the loop from such values (a lane mask), and has a vector form
//! ([`vectorises`]), and every load is contiguous or a broadcast along it. Buffer rows are
//! addressed once per outer index.
//!
//! Transcendentals (and `pow`, `atan2`) are host kernels over tiles (`host.rs`): each node gets
//! a *level* (the number of transcendentals on its longest path from a load), the innermost
//! axis is cut into tiles of `host::TILE` elements, and each tile runs one pass per level:
//! pass `p` computes what it needs from loads, literals and the tiles of transcendentals of
//! level `<= p`, and stores the operands of the transcendentals of level `p + 1` into their
//! tiles; between passes each such tile is handed to its host kernel. The last pass stores the
//! outputs, or folds them into reductions. Tiles live in a scratch area after the arena.
//!
//! Reductions fold in row-major order of the domain: an innermost reduced axis into register
//! accumulators (several vectors, folded into the output once per tile), an innermost kept
//! axis straight into the output elements. A kernel may have several outputs (siblings).
//!
//! Guards (inlined pads and concatenations) select between a value and the padding value (or
//! the next operand); the loads under a guard read a zeroed scratch place where it fails. They
//! are tested once per block of vectors, per vector at the borders and per element in mixed
//! vectors. In a block where every guard holds, a value read one element back through a pad
//! that the loop also computes in place is that vector shifted by a lane (`shifted_twins`).
//!
//! A `cumsum` loop stores its operand, then a pass sums the result in place along the axis.
//!
//! Every operation reproduces the interpreter's kernel: NaN-propagating `max`/`min` with the
//! same choice at ties, XLA's integer division (`x / 0 = -1`, wrapping), saturating
//! float-to-int conversion, `round` half away from zero, `integer_pow` by the same
//! square-and-multiply.

use std::collections::HashMap;

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::types::{F32, F32X4, F64, F64X2, I32, I32X4, I64, I64X2, I8, I8X16};
use cranelift_codegen::ir::{
    AbiParam, ConstantData, Endianness, InstBuilder, MemFlagsData, Type, Value,
};
use cranelift_frontend::{FunctionBuilder, Variable};
use cranelift_module::{FuncId, Module};
use smallvec::SmallVec;
use traceform_ir::{BinaryOp, CompareOp, DType, Prim, UnaryOp, Var};

use crate::host::{self, TILE};
use crate::plan::{Affine, Fill, Kernel, Node, NodeOp, ReduceOp, Scan};

/// Independent vector accumulators per output of a loop reducing its innermost axis (one is
/// bound by the latency of its adds).
const UNROLL: usize = 4;

/// Vector accumulators of such a loop in all, shared by its outputs: eight leave half of
/// the sixteen vector registers to the body (sixteen spilled: Rosenbrock's jvp, four sums,
/// 126 -> 197 µs).
const VECTOR_ACCUMULATORS: usize = 8;

/// Vectors per iteration of an innermost loop that stores (and reduces nothing) there: two
/// halved the time of a loop whose body is a load, a multiply and a store (four were no
/// faster).
const STORE_UNROLL: usize = 2;

/// Cranelift's scalar type of a dtype (`bool` is one byte, 0 or 1).
fn scalar_type(dtype: DType) -> Type {
    match dtype {
        DType::F32 => F32,
        DType::F64 => F64,
        DType::I32 => I32,
        DType::Bool => I8,
    }
}

/// The loop shape after collapsing, and each affine function's offset and per-axis
/// coefficients over it.
struct Collapsed {
    dims: Vec<i64>,
    /// Per affine function (loads and iotas in node order, then the output).
    funcs: Vec<(i64, Vec<i64>)>,
    empty: bool,
}

fn collapse(domain: &[usize], affines: &[&Affine]) -> Collapsed {
    let empty = domain.contains(&0);
    let kept: Vec<usize> = (0..domain.len()).filter(|&d| domain[d] != 1).collect();
    // Runs of kept axes that every function indexes as one.
    let mut runs: Vec<Vec<usize>> = Vec::new();
    for &d in &kept {
        let merge = match runs.last() {
            Some(run) => {
                let prev = *run.last().expect("runs are not empty");
                affines
                    .iter()
                    .all(|a| a.coef[prev] == a.coef[d] * domain[d] as i64)
            }
            None => false,
        };
        match runs.last_mut() {
            Some(run) if merge => run.push(d),
            _ => runs.push(vec![d]),
        }
    }
    let mut dims: Vec<i64> = runs
        .iter()
        .map(|r| r.iter().map(|&d| domain[d] as i64).product())
        .collect();
    let mut funcs: Vec<(i64, Vec<i64>)> = affines
        .iter()
        .map(|a| {
            let coef = runs
                .iter()
                .map(|r| a.coef[*r.last().expect("not empty")])
                .collect();
            (a.offset, coef)
        })
        .collect();
    if dims.is_empty() {
        dims.push(1);
        for f in &mut funcs {
            f.1.push(0);
        }
    }
    Collapsed { dims, funcs, empty }
}

/// True for nodes computed by a host kernel over a tile.
fn is_transcendental(op: &NodeOp) -> bool {
    match op {
        NodeOp::Apply {
            prim: Prim::Unary(u),
            ..
        } => host::unary(*u, DType::F32).is_some(),
        NodeOp::Apply {
            prim: Prim::Binary(b),
            ..
        } => host::binary(*b, DType::F32).is_some(),
        _ => false,
    }
}

/// True for nodes with an F32X4 / F64X2 form (transcendentals are tiles, which are).
fn has_vector_form(op: &NodeOp) -> bool {
    match op {
        NodeOp::Load { .. } | NodeOp::Literal(_) | NodeOp::Pad { .. } => true,
        NodeOp::Iota(_) => false,
        NodeOp::Apply { prim, .. } => match prim {
            Prim::Unary(u) => !matches!(u, UnaryOp::Sign | UnaryOp::Round) || is_transcendental(op),
            Prim::IntegerPow { .. } | Prim::StopGradient | Prim::Binary(_) => true,
            _ => false,
        },
    }
}

/// True when `node` of a float kernel has a vector form in it: a node of the kernel's dtype
/// with one (`has_vector_form`, or a select or a conversion from bool), or a bool node made by
/// comparing two values of the kernel's dtype, or from other such bool nodes (a lane mask,
/// all ones or all zeros, as vector comparisons give it). Loads of bools have none.
fn vectorises(kernel: &Kernel, node: &Node) -> bool {
    let dtype = kernel.out_dtype;
    let arg = |a: &u32| kernel.nodes[*a as usize].dtype;
    match (&node.op, node.dtype) {
        (
            NodeOp::Apply {
                prim: Prim::SelectN,
                args,
            },
            d,
        ) if d == dtype => arg(&args[0]) == DType::Bool,
        (
            NodeOp::Apply {
                prim: Prim::ConvertElementType { .. },
                args,
            },
            d,
        ) if d == dtype => arg(&args[0]) == DType::Bool || arg(&args[0]) == dtype,
        (op, d) if d == dtype => has_vector_form(op),
        (NodeOp::Apply { prim, args }, DType::Bool) => match prim {
            Prim::Compare(_) => args.iter().all(|a| arg(a) == dtype),
            Prim::And | Prim::Or | Prim::Not | Prim::StopGradient => true,
            _ => false,
        },
        (NodeOp::Literal(_) | NodeOp::Pad { .. }, DType::Bool) => true,
        _ => false,
    }
}

/// The nodes a node reads.
fn node_args(op: &NodeOp) -> SmallVec<[u32; 3]> {
    match op {
        NodeOp::Apply { args, .. } => args.clone(),
        NodeOp::Pad { value, fill, .. } => smallvec::smallvec![*value, *fill],
        NodeOp::Load { .. } | NodeOp::Literal(_) | NodeOp::Iota(_) => SmallVec::new(),
    }
}

/// Whether this machine multiplies and adds in one instruction (else Cranelift's `fma`
/// would be a library call, far slower than the two operations it replaces).
fn has_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(target_arch = "aarch64")]
    {
        true
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// A product folded into its reader: `a * b`, or `-(a * b)`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Folded {
    a: u32,
    b: u32,
    negated: bool,
}

/// Per node, `Some(t)` when its value at inner index `i` is node `t`'s at `i - 1` wherever
/// every guard holds, computed the same way: the same operations, with the same products
/// folded, on the same buffers read one element back along the innermost axis (a
/// derivative's stencil: the transpose of a shifted slice is a pad reading its operand one
/// element back, next to the same operand read in place). Neither is a folded product; `t`
/// may come later (`evaluation_order` then computes it first). In a block of vectors where
/// every guard holds, the node is then `t`'s vector shifted by one lane ([`shift_in`])
/// rather than its whole computation again (Rosenbrock's hvp: 181 -> 148 µs).
fn shifted_twins(
    kernel: &Kernel,
    c: &Collapsed,
    func_of: &[usize],
    fused: &[Option<Folded>],
) -> Vec<Option<u32>> {
    let n = kernel.nodes.len();
    let mut twins = vec![None; n];
    let Some(inner) = c.dims.len().checked_sub(1) else {
        return twins;
    };
    // Per node, the first node of equal value where every guard holds (equal literals, loads
    // of one element under different guards, the same operation on such), and the first
    // node of each load and operation.
    let mut canon: Vec<u32> = Vec::with_capacity(n);
    let mut literals: HashMap<(u64, DType), u32> = HashMap::new();
    let mut loads: HashMap<(Var, i64, &[i64]), u32> = HashMap::new();
    let mut applies: HashMap<(&Prim, SmallVec<[u32; 3]>), u32> = HashMap::new();
    for (k, node) in kernel.nodes.iter().enumerate() {
        let first = match &node.op {
            NodeOp::Literal(x) => *literals
                .entry((x.to_bits(), node.dtype))
                .or_insert(k as u32),
            NodeOp::Load { var, .. } => {
                let (offset, coef) = &c.funcs[func_of[k]];
                *loads
                    .entry((*var, *offset, coef.as_slice()))
                    .or_insert(k as u32)
            }
            NodeOp::Apply { prim, args } => {
                let args = args.iter().map(|&a| canon[a as usize]).collect();
                *applies.entry((prim, args)).or_insert(k as u32)
            }
            NodeOp::Pad { .. } | NodeOp::Iota(_) => k as u32,
        };
        canon.push(first);
    }
    // Per node: the first node whose value one element back is this one's (its own first
    // where the value does not change along the axis).
    let mut back: Vec<Option<u32>> = vec![None; n];
    for (k, node) in kernel.nodes.iter().enumerate() {
        back[k] = match &node.op {
            NodeOp::Literal(_) => Some(canon[k]),
            NodeOp::Load { var, .. } => {
                let (offset, coef) = &c.funcs[func_of[k]];
                if coef[inner] == 0 {
                    Some(canon[k])
                } else {
                    loads
                        .get(&(*var, offset + coef[inner], coef.as_slice()))
                        .copied()
                }
            }
            NodeOp::Apply { prim, args } => {
                let moved: Option<SmallVec<[u32; 3]>> =
                    args.iter().map(|&a| back[a as usize]).collect();
                moved
                    .and_then(|m| applies.get(&(prim, m)).copied())
                    .filter(|&t| fused[t as usize].is_some() == fused[k].is_some())
            }
            NodeOp::Pad { .. } | NodeOp::Iota(_) => None,
        };
        if let (Some(t), NodeOp::Apply { .. }) = (back[k], &node.op) {
            let t = t as usize;
            if t != canon[k] as usize && fused[k].is_none() && fused[t].is_none() {
                twins[k] = Some(t as u32);
            }
        }
    }
    twins
}

/// The order the nodes are computed in: node order, unless a shifted node comes before its
/// twin (`shifted_twins`); then an order where every node follows its operands and its
/// twin. (No cycle: a node cannot read its own value one element back.)
fn evaluation_order(kernel: &Kernel, twins: &[Option<u32>]) -> Vec<usize> {
    let n = kernel.nodes.len();
    if twins
        .iter()
        .enumerate()
        .all(|(k, t)| t.is_none_or(|t| (t as usize) < k))
    {
        return (0..n).collect();
    }
    let deps = |k: usize| {
        let mut d = node_args(&kernel.nodes[k].op);
        d.extend(twins[k]);
        d
    };
    // Depth first with an explicit stack: (node, its next operand to visit).
    let mut seen = vec![false; n];
    let mut order = Vec::with_capacity(n);
    for root in 0..n {
        if seen[root] {
            continue;
        }
        seen[root] = true;
        let mut stack = vec![(root, 0)];
        while let Some((k, next)) = stack.last_mut() {
            let d = deps(*k);
            if let Some(&a) = d.get(*next) {
                *next += 1;
                if !seen[a as usize] {
                    seen[a as usize] = true;
                    stack.push((a as usize, 0));
                }
            } else {
                order.push(*k);
                stack.pop();
            }
        }
    }
    order
}

/// Lanes `[w - 1, 2w - 1)` of `prev` followed by `cur`: `cur` one lane later, its first lane
/// `prev`'s last (one `palignr`).
fn shift_in(b: &mut FunctionBuilder, prev: Value, cur: Value) -> Value {
    let ty = b.func.dfg.value_type(cur);
    let lane = ty.lane_bits() / 8;
    let flags = MemFlagsData::new().with_endianness(Endianness::Little);
    let p = b.ins().bitcast(I8X16, flags, prev);
    let c = b.ins().bitcast(I8X16, flags, cur);
    let mask: Vec<u8> = (0..16).map(|x| (16 - lane + x) as u8).collect();
    let mask = b.func.dfg.immediates.push(ConstantData::from(mask));
    let v = b.ins().shuffle(p, c, mask);
    b.ins().bitcast(ty, flags, v)
}

/// The float products (`mul`, `integer_pow[y=2]`, and `neg` of one) that fold into a fused
/// multiply-add: those read once, by an `add` or `sub` (which folds one product of its two
/// operands), or only as a summed output (folded into the accumulator). Per node: the
/// product's factors (a product under a folded `neg` is marked too: nothing reads it).
///
/// A fused multiply-add rounds once where the two operations round twice, so results may
/// differ from the interpreter's in the last bit; it takes one slot of the multipliers
/// where the pair took the adders too, which a derivative's loop keeps busiest.
fn fused_products(
    kernel: &Kernel,
    outs: &[(usize, Option<ReduceOp>)],
    contract: bool,
) -> Vec<Option<Folded>> {
    let n = kernel.nodes.len();
    let mut fused = vec![None; n];
    if !contract || !has_fma() {
        return fused;
    }
    let mut uses = vec![0u32; n];
    for node in &kernel.nodes {
        for a in node_args(&node.op) {
            uses[a as usize] += 1;
        }
    }
    for &(k, _) in outs {
        uses[k] += 1;
    }
    let product = |k: u32| -> Option<Folded> {
        let node = &kernel.nodes[k as usize];
        if !node.dtype.is_float() || uses[k as usize] != 1 {
            return None;
        }
        let literal_two =
            |a: u32| matches!(kernel.nodes[a as usize].op, NodeOp::Literal(x) if x == 2.0);
        let (a, b) = match &node.op {
            // (`x * 2` is `x + x`, on the adders.)
            NodeOp::Apply {
                prim: Prim::Binary(BinaryOp::Mul),
                args,
            } if !literal_two(args[0]) && !literal_two(args[1]) => (args[0], args[1]),
            NodeOp::Apply {
                prim: Prim::IntegerPow { y: 2 },
                args,
            } => (args[0], args[0]),
            _ => return None,
        };
        Some(Folded {
            a,
            b,
            negated: false,
        })
    };
    // A product, or the negation of one: (the node's fold, the product under a `neg`).
    let term = |k: u32| -> Option<(Folded, Option<u32>)> {
        let node = &kernel.nodes[k as usize];
        match &node.op {
            NodeOp::Apply {
                prim: Prim::Unary(UnaryOp::Neg),
                args,
            } if node.dtype.is_float() && uses[k as usize] == 1 => {
                let p = product(args[0])?;
                Some((Folded { negated: true, ..p }, Some(args[0])))
            }
            _ => Some((product(k)?, None)),
        }
    };
    let fold = |fused: &mut Vec<Option<Folded>>, k: u32| -> bool {
        let Some((f, inner)) = term(k) else {
            return false;
        };
        fused[k as usize] = Some(f);
        if let Some(p) = inner {
            fused[p as usize] = Some(Folded {
                negated: false,
                ..f
            });
        }
        true
    };
    for node in &kernel.nodes {
        if let NodeOp::Apply {
            prim: Prim::Binary(BinaryOp::Add | BinaryOp::Sub),
            args,
        } = &node.op
        {
            if !node.dtype.is_float() || args[0] == args[1] {
                continue;
            }
            let _ = fold(&mut fused, args[1]) || fold(&mut fused, args[0]);
        }
    }
    for &(k, reduce) in outs {
        if reduce == Some(ReduceOp::Sum) {
            fold(&mut fused, k as u32);
        }
    }
    fused
}

/// What an output receives: a value, or a product its sum's accumulator folds in.
#[derive(Clone, Copy)]
enum Root {
    Value(Value),
    Product(Value, Value),
}

/// Per affine function at the current outer index: its value, and for buffers (loads and the
/// output) the address of the row.
struct Outer {
    idx: Vec<Value>,
    rows: Vec<Option<Value>>,
}

/// One value a loop stores or folds: its node, its affine function, buffer, reduction and
/// number of elements.
struct OutSpec {
    node: usize,
    f: usize,
    base: Value,
    reduce: Option<ReduceOp>,
    len: usize,
}

/// Where in the innermost loop a body computes: inner index `i`, index `j` in the tile,
/// `width` lanes, and whether each guard holds there.
#[derive(Clone, Copy)]
struct Lane<'a> {
    i: Value,
    j: Value,
    width: u32,
    valid: &'a [Value],
}

/// What the emitter needs while building one kernel's function.
struct Emitter<'k> {
    kernel: &'k Kernel,
    c: Collapsed,
    /// Per guard, per axis: its index into `c.funcs`.
    guard_fns: Vec<Vec<usize>>,
    /// A zeroed place guarded loads read where their guard fails.
    safe: Value,
    /// Per affine function that addresses a buffer: the buffer's base and element size.
    buffer_of_func: Vec<Option<(Value, usize)>>,
    /// What the loop stores: the root, then sibling reductions.
    outs: Vec<OutSpec>,
    /// Per node: index into `c.funcs` (loads and iotas).
    func_of: Vec<usize>,
    /// Per node: its pass level.
    level: Vec<usize>,
    passes: usize,
    /// Vector lanes (1: scalar).
    width: u32,
    /// Per node: base pointer of its buffer (loads), tile addresses (transcendentals).
    base: Vec<Option<Value>>,
    tile: Vec<Option<(Value, Option<Value>)>>,
    host: Vec<Option<cranelift_codegen::ir::FuncRef>>,
    flags: MemFlagsData,
    /// The indices `lo..hi` of the outermost collapsed axis this function runs (a cut loop).
    range: Option<(Value, Value)>,
    /// Per node: the flags of its loads that move along the innermost axis. A parameter's
    /// buffer is never written, so its loads may move: Cranelift then places each at its
    /// first use, where a loop unrolled for several accumulators would otherwise hold every
    /// copy's loads at once and spill. (Loads whose address does not change in the innermost
    /// loop keep `flags`: hoisted, one could run before a loop of no iterations, from an
    /// array that may be empty.)
    load_flags: Vec<MemFlagsData>,
    /// Fused multiply-adds: per node, `Some` for a product folded into its one reader (an
    /// add, a subtract or a sum's accumulator), with the product's two factors.
    fused: Vec<Option<Folded>>,
    /// Per node: the earlier node it is one lane behind, where every guard holds
    /// ([`shifted_twins`]; only in vector loops of one pass with guards).
    twins: Vec<Option<u32>>,
    /// The order nodes are computed in (`evaluation_order`).
    order: Vec<usize>,
}

/// A kernel's affine functions in the order `Collapsed::funcs` lists them.
struct Functions<'k> {
    affines: Vec<&'k Affine>,
    /// Per node: index into `affines` (loads and iotas; `usize::MAX` for others).
    func_of: Vec<usize>,
    /// Per guard, per axis: index into `affines`.
    guard_fns: Vec<Vec<usize>>,
    /// The outputs' (root, then siblings) indices into `affines`.
    out_fns: Vec<usize>,
}

fn functions<'k>(kernel: &'k Kernel, row_major: &'k Affine) -> Functions<'k> {
    let mut affines: Vec<&Affine> = Vec::new();
    let mut func_of = vec![usize::MAX; kernel.nodes.len()];
    for (i, node) in kernel.nodes.iter().enumerate() {
        if let NodeOp::Load { at: a, .. } | NodeOp::Iota(a) = &node.op {
            func_of[i] = affines.len();
            affines.push(a);
        }
    }
    let mut guard_fns: Vec<Vec<usize>> = Vec::new();
    for g in &kernel.guards {
        guard_fns.push(
            g.axes
                .iter()
                .map(|(a, _, _)| {
                    affines.push(a);
                    affines.len() - 1
                })
                .collect(),
        );
    }
    let out_affine = match (&kernel.reduce, &kernel.scatter) {
        (Some((_, at)), _) | (None, Some((at, _))) => at,
        (None, None) => row_major,
    };
    affines.push(out_affine);
    let mut out_fns = vec![affines.len() - 1];
    for sib in &kernel.siblings {
        affines.push(&sib.at);
        out_fns.push(affines.len() - 1);
    }
    Functions {
        affines,
        func_of,
        guard_fns,
        out_fns,
    }
}

/// Loops of at least this much work are cut in two blocks for two threads
/// (`traceform_runtime::par`): elements, each transcendental counting `TRANSCENDENTAL_WORK`
/// times more per element (a flat loop of 2^17 elements takes about 20 µs on one core;
/// handing a block to the helper costs a few µs when it is awake).
const PARALLEL_FROM: usize = 1 << 17;

/// The work of a transcendental per element, against one for the rest of a loop.
const TRANSCENDENTAL_WORK: usize = 8;

/// At most this many bytes of partial results per parallel loop.
const PARTIAL_LIMIT: usize = 1 << 18;

/// How a loop is cut for two threads: its outermost collapsed axis (the only one, for a flat
/// loop) of `len` indices, at `cut`. Outputs folded over that axis (listed in `partial`, 0
/// the root and `k + 1` sibling `k`) get a second buffer for the second block, filled with
/// the fold's identity and folded into the first afterwards; every other output is written
/// at disjoint elements by the two blocks. A cut loop's function is `fn(table, lo, hi)`, and
/// its reductions' outputs are filled by the caller (`fill_identity`), not by the loop.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    pub len: i64,
    pub cut: i64,
    pub partial: Vec<usize>,
}

/// The cut of a loop worth running on two threads, if any.
pub fn split(kernel: &Kernel) -> Option<Split> {
    let elements: usize = kernel.domain.iter().product();
    let transcendentals = kernel
        .nodes
        .iter()
        .filter(|n| is_transcendental(&n.op))
        .count();
    let work = elements.saturating_mul(1 + TRANSCENDENTAL_WORK * transcendentals);
    let folds_bools = kernel.out_dtype == DType::Bool
        && (kernel.reduce.is_some() || kernel.siblings.iter().any(|s| s.reduce.is_some()));
    if work < PARALLEL_FROM || kernel.scatter.is_some() || kernel.scan.is_some() || folds_bools {
        return None;
    }
    let row_major = row_major_affine(&kernel.domain);
    let f = functions(kernel, &row_major);
    let c = collapse(&kernel.domain, &f.affines);
    if c.empty {
        return None;
    }
    let len = c.dims[0];
    // A flat loop is cut at a multiple of the unrolled vector (both blocks' lengths are then
    // what the code expects modulo the vector width).
    let cut = if c.dims.len() == 1 {
        (len / 2 + 63) / 64 * 64
    } else {
        len / 2
    };
    if cut <= 0 || cut >= len {
        return None;
    }
    let reduces = std::iter::once(kernel.reduce.as_ref().map(|(op, _)| *op))
        .chain(kernel.siblings.iter().map(|s| s.reduce));
    let lens = std::iter::once(kernel.out_len).chain(kernel.siblings.iter().map(|s| s.len));
    let mut partial = Vec::new();
    let mut partial_bytes = 0;
    for (o, (reduce, out_len)) in reduces.zip(lens).enumerate() {
        if c.funcs[f.out_fns[o]].1[0] != 0 {
            continue;
        }
        // An output stored, not folded, at elements both blocks would write: not cut.
        reduce?;
        partial.push(o);
        partial_bytes += (out_len * kernel.out_dtype.size_bytes()).next_multiple_of(64);
    }
    (partial_bytes <= PARTIAL_LIMIT).then_some(Split { len, cut, partial })
}

/// Bytes of partial results a cut loop needs (each output 64-byte aligned).
pub fn partial_bytes(kernel: &Kernel, split: &Split) -> usize {
    split
        .partial
        .iter()
        .map(|&o| {
            let len = if o == 0 {
                kernel.out_len
            } else {
                kernel.siblings[o - 1].len
            };
            (len * kernel.out_dtype.size_bytes()).next_multiple_of(64)
        })
        .sum()
}

/// The identity of a fold, as the value it fills an output with.
pub fn identity_value(op: ReduceOp, dtype: DType) -> f64 {
    match (op, dtype) {
        (ReduceOp::Sum, _) => 0.0,
        (ReduceOp::Max, DType::I32) => f64::from(i32::MIN),
        (ReduceOp::Min, DType::I32) => f64::from(i32::MAX),
        (ReduceOp::Max, _) => f64::NEG_INFINITY,
        (ReduceOp::Min, _) => f64::INFINITY,
    }
}

/// Where compiled code finds things: each materialised value's index in the buffer table,
/// the table index of the scratch (tiles), and the module's id of each host kernel.
pub struct Layout<'a> {
    pub slot: &'a dyn Fn(Var) -> usize,
    /// Whether a value is a parameter: the caller's array, which compiled code never writes.
    pub param: &'a dyn Fn(Var) -> bool,
    /// Whether products may fold into fused multiply-adds (`fused_products`).
    pub contract: bool,
    pub scratch_slot: usize,
    pub host_ids: &'a dyn Fn(&'static str) -> FuncId,
}

/// Compiles `kernels` (consecutive steps) into the one function `id` of `module`, their loops
/// one after another.
pub fn compile_segment<M: Module>(
    module: &mut M,
    ctx: &mut cranelift_codegen::Context,
    fctx: &mut cranelift_frontend::FunctionBuilderContext,
    id: FuncId,
    kernels: &[&Kernel],
    layout: &Layout<'_>,
) -> Result<(), String> {
    let ptr_ty = module.target_config().pointer_type();
    ctx.func.signature.params.push(AbiParam::new(ptr_ty));
    ctx.func.name = cranelift_codegen::ir::UserFuncName::user(0, id.as_u32());
    let mut b = FunctionBuilder::new(&mut ctx.func, fctx);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let table = b.block_params(entry)[0];
    for kernel in kernels {
        emit_kernel(module, &mut b, table, kernel, layout, None)?;
    }
    b.ins().return_(&[]);
    b.seal_all_blocks();
    b.finalize(module.target_config());
    Ok(())
}

/// Compiles the loop of `kernel`, cut as `split` says, into the one function `id` of
/// `module`: `fn(table, lo, hi)` runs indices `lo..hi` of the cut axis.
pub fn compile_parallel<M: Module>(
    module: &mut M,
    ctx: &mut cranelift_codegen::Context,
    fctx: &mut cranelift_frontend::FunctionBuilderContext,
    id: FuncId,
    kernel: &Kernel,
    layout: &Layout<'_>,
) -> Result<(), String> {
    let ptr_ty = module.target_config().pointer_type();
    ctx.func.signature.params.push(AbiParam::new(ptr_ty));
    ctx.func.signature.params.push(AbiParam::new(I64));
    ctx.func.signature.params.push(AbiParam::new(I64));
    ctx.func.name = cranelift_codegen::ir::UserFuncName::user(0, id.as_u32());
    let mut b = FunctionBuilder::new(&mut ctx.func, fctx);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let params = b.block_params(entry).to_vec();
    emit_kernel(
        module,
        &mut b,
        params[0],
        kernel,
        layout,
        Some((params[1], params[2])),
    )?;
    b.ins().return_(&[]);
    b.seal_all_blocks();
    b.finalize(module.target_config());
    Ok(())
}

/// Emits the loops of one kernel at the builder's current block, leaving it in the block
/// after them.
fn emit_kernel<M: Module>(
    module: &mut M,
    b: &mut FunctionBuilder,
    table: Value,
    kernel: &Kernel,
    layout: &Layout<'_>,
    range: Option<(Value, Value)>,
) -> Result<(), String> {
    let (slot, scratch_slot, host_ids) = (layout.slot, layout.scratch_slot, layout.host_ids);
    let ptr_ty = module.target_config().pointer_type();
    let n = kernel.nodes.len();
    let row_major = row_major_affine(&kernel.domain);
    let Functions {
        affines,
        func_of,
        guard_fns,
        out_fns,
    } = functions(kernel, &row_major);
    let c = collapse(&kernel.domain, &affines);
    let mut level = vec![0usize; n];
    for (i, node) in kernel.nodes.iter().enumerate() {
        let l = node_args(&node.op)
            .iter()
            .map(|&a| level[a as usize])
            .max()
            .unwrap_or(0);
        level[i] = l + usize::from(is_transcendental(&node.op));
    }
    let out_nodes: Vec<usize> = std::iter::once(kernel.root as usize)
        .chain(kernel.siblings.iter().map(|s| s.node as usize))
        .collect();
    let passes = out_nodes.iter().map(|&o| level[o]).max().unwrap_or(0) + 1;
    let inner = c.dims.len() - 1;
    let float = kernel.out_dtype.is_float() && kernel.nodes.iter().all(|nd| vectorises(kernel, nd));
    let contiguous = c.funcs.iter().all(|f| f.1[inner] == 0 || f.1[inner] == 1);
    let width = match kernel.out_dtype {
        DType::F32 if float && contiguous => 4,
        DType::F64 if float && contiguous => 2,
        _ => 1,
    };
    let flags = MemFlagsData::new().with_notrap();
    let load_ptr = |b: &mut FunctionBuilder, v: Var| {
        b.ins().load(
            ptr_ty,
            flags,
            table,
            (slot(v) * ptr_ty.bytes() as usize) as i32,
        )
    };
    let mut base = vec![None; n];
    let mut tile = vec![None; n];
    // Tiles live in the scratch buffer (the table's last entry), not on the stack: a loop with
    // many transcendentals would otherwise need a frame of megabytes.
    let scratch = b.ins().load(
        ptr_ty,
        flags,
        table,
        (scratch_slot * ptr_ty.bytes() as usize) as i32,
    );
    // The first bytes of the scratch stay zero: where guarded loads read when off bounds.
    let mut scratch_used = SAFE_BYTES;
    let mut host_refs = vec![None; n];
    for (i, node) in kernel.nodes.iter().enumerate() {
        match &node.op {
            NodeOp::Load { var, .. } => base[i] = Some(load_ptr(b, *var)),
            op if is_transcendental(op) => {
                let size = TILE * node.dtype.size_bytes();
                let mut make = || {
                    let at = b.ins().iadd_imm_s(scratch, scratch_used as i64);
                    scratch_used += size;
                    at
                };
                let a = make();
                let binary = matches!(op, NodeOp::Apply { args, .. } if args.len() == 2);
                let second = if binary { Some(make()) } else { None };
                tile[i] = Some((a, second));
                let hf = match op {
                    NodeOp::Apply {
                        prim: Prim::Unary(u),
                        ..
                    } => host::unary(*u, node.dtype),
                    NodeOp::Apply {
                        prim: Prim::Binary(bo),
                        ..
                    } => host::binary(*bo, node.dtype),
                    _ => None,
                }
                .ok_or("a transcendental without a host kernel")?;
                let fid = host_ids(hf.name);
                host_refs[i] = Some(module.declare_func_in_func(fid, b.func));
            }
            _ => {}
        }
    }
    let out_base = load_ptr(b, kernel.out);
    let mut outs = vec![OutSpec {
        node: kernel.root as usize,
        f: out_fns[0],
        base: out_base,
        reduce: kernel.reduce.as_ref().map(|(op, _)| *op),
        len: kernel.out_len,
    }];
    for (k, sib) in kernel.siblings.iter().enumerate() {
        outs.push(OutSpec {
            node: sib.node as usize,
            f: out_fns[k + 1],
            base: load_ptr(b, sib.out),
            reduce: sib.reduce,
            len: sib.len,
        });
    }
    let mut buffer_of_func = vec![None; c.funcs.len()];
    for (k, node) in kernel.nodes.iter().enumerate() {
        if let (NodeOp::Load { .. }, Some(bk)) = (&node.op, base[k]) {
            buffer_of_func[func_of[k]] = Some((bk, node.dtype.size_bytes()));
        }
    }
    for o in &outs {
        buffer_of_func[o.f] = Some((o.base, kernel.out_dtype.size_bytes()));
    }
    let outs_nodes: Vec<(usize, Option<ReduceOp>)> =
        outs.iter().map(|o| (o.node, o.reduce)).collect();
    let fused = fused_products(kernel, &outs_nodes, layout.contract);
    let twins = if passes == 1 && width > 1 && !kernel.guards.is_empty() {
        shifted_twins(kernel, &c, &func_of, &fused)
    } else {
        vec![None; kernel.nodes.len()]
    };
    let order = evaluation_order(kernel, &twins);
    let e = Emitter {
        kernel,
        c,
        guard_fns,
        safe: scratch,
        buffer_of_func,
        outs,
        func_of,
        level,
        passes,
        width,
        base,
        tile,
        host: host_refs,
        flags,
        range,
        fused,
        twins,
        order,
        load_flags: kernel
            .nodes
            .iter()
            .map(|nd| match &nd.op {
                NodeOp::Load { var, .. } if (layout.param)(*var) => {
                    flags.with_readonly().with_can_move()
                }
                _ => flags,
            })
            .collect(),
    };
    // A cut loop's caller fills its reductions' outputs (both blocks write into them).
    for (o, out) in e.outs.iter().enumerate().filter(|_| range.is_none()) {
        let init = match (&out.reduce, &kernel.scatter) {
            (Some(op), _) => Some(e.identity(b, *op, 1)),
            (None, Some((_, Fill::Literal(x)))) if o == 0 => {
                Some(e.constant(b, kernel.out_dtype, *x, 1))
            }
            (None, Some((_, Fill::Var(v)))) if o == 0 => {
                let p = load_ptr(b, *v);
                Some(b.ins().load(scalar_type(kernel.out_dtype), flags, p, 0))
            }
            _ => None,
        };
        if let Some(init) = init {
            // The fill: vector stores, then a scalar tail.
            let end = b.ins().iconst(I64, out.len as i64);
            let zero = b.ins().iconst(I64, 0);
            let out_base = out.base;
            let size = kernel.out_dtype.size_bytes() as i64;
            let lanes = match kernel.out_dtype {
                DType::F32 => 4,
                DType::F64 => 2,
                DType::I32 | DType::Bool => 1,
            };
            let mut rest = zero;
            if lanes > 1 {
                let vt = e.vector_type(kernel.out_dtype, lanes);
                let wide = b.ins().splat(vt, init);
                let v = counted_loop(b, zero, end, i64::from(lanes), &mut |b, j| {
                    let off = b.ins().imul_imm_s(j, size);
                    let addr = b.ins().iadd(out_base, off);
                    b.ins().store(flags, wide, addr, 0);
                });
                rest = b.use_var(v);
            }
            counted_loop(b, rest, end, 1, &mut |b, j| {
                let off = b.ins().imul_imm_s(j, size);
                let addr = b.ins().iadd(out_base, off);
                b.ins().store(flags, init, addr, 0);
            });
        }
    }
    if !e.c.empty {
        e.emit_nest(b, 0, &[]);
    }
    if let Some(scan) = &kernel.scan {
        emit_scan(b, out_base, kernel.out_dtype, scan, flags);
    }
    Ok(())
}

/// The pass of a `cumsum` loop, after it has stored its operand into `out`: each row along
/// the scanned axis adds the row before it (after it, from the end) in place, as the
/// interpreter does, with vectors over the contiguous elements within a row and a scalar
/// tail.
fn emit_scan(b: &mut FunctionBuilder, out: Value, dtype: DType, scan: &Scan, flags: MemFlagsData) {
    if scan.outer == 0 || scan.inner == 0 || scan.len < 2 {
        return;
    }
    let size = dtype.size_bytes() as i64;
    let row = scan.inner as i64 * size;
    let lanes: i64 = match dtype {
        DType::F32 => 4,
        DType::F64 => 2,
        DType::I32 | DType::Bool => 1,
    };
    let add = |b: &mut FunctionBuilder, x: Value, y: Value| {
        if dtype.is_float() {
            b.ins().fadd(x, y)
        } else {
            b.ins().iadd(x, y)
        }
    };
    let zero = b.ins().iconst(I64, 0);
    let one = b.ins().iconst(I64, 1);
    let outer_end = b.ins().iconst(I64, scan.outer as i64);
    let len = b.ins().iconst(I64, scan.len as i64);
    let inner = b.ins().iconst(I64, scan.inner as i64);
    counted_loop(b, zero, outer_end, 1, &mut |b, o| {
        let block = b.ins().imul_imm_s(o, scan.len as i64 * row);
        let block = b.ins().iadd(out, block);
        counted_loop(b, one, len, 1, &mut |b, k| {
            // Row `k` (forward) or `len - 1 - k` (reverse), and its neighbour already summed.
            let (at, before) = if scan.reverse {
                let neg = b.ins().ineg(k);
                (b.ins().iadd_imm_s(neg, scan.len as i64 - 1), row)
            } else {
                (k, -row)
            };
            let cur = b.ins().imul_imm_s(at, row);
            let cur = b.ins().iadd(block, cur);
            let mut rest = zero;
            let each = |b: &mut FunctionBuilder, j: Value, ty: Type| {
                let at = b.ins().imul_imm_s(j, size);
                let at = b.ins().iadd(cur, at);
                let x = b.ins().load(ty, flags, at, 0);
                let next = b.ins().iadd_imm_s(at, before);
                let y = b.ins().load(ty, flags, next, 0);
                let sum = add(b, x, y);
                b.ins().store(flags, sum, at, 0);
            };
            if lanes > 1 && scan.inner as i64 >= lanes {
                let ty = match dtype {
                    DType::F32 => F32X4,
                    _ => F64X2,
                };
                let v = counted_loop(b, zero, inner, lanes, &mut |b, j| each(b, j, ty));
                rest = b.use_var(v);
            }
            counted_loop(b, rest, inner, 1, &mut |b, j| {
                each(b, j, scalar_type(dtype))
            });
        });
    });
}

/// Zeroed bytes at the start of the scratch.
const SAFE_BYTES: usize = 64;

/// Bytes of scratch a kernel needs (the zeroed place, then its tiles).
pub fn scratch_bytes(kernel: &Kernel) -> usize {
    SAFE_BYTES
        + kernel
            .nodes
            .iter()
            .filter(|n| is_transcendental(&n.op))
            .map(|n| {
                let tiles = match &n.op {
                    NodeOp::Apply { args, .. } => args.len(),
                    _ => 1,
                };
                tiles * TILE * n.dtype.size_bytes()
            })
            .sum::<usize>()
}

/// The row-major element offset over `domain` as an affine function of its index.
fn row_major_affine(domain: &[usize]) -> Affine {
    let mut coef = vec![0i64; domain.len()];
    let mut stride = 1i64;
    for d in (0..domain.len()).rev() {
        coef[d] = stride;
        stride *= domain[d] as i64;
    }
    Affine { offset: 0, coef }
}

/// Vectors per block whose guards are tested once.
const GUARD_BLOCK: i64 = 64;

/// `for i in (start..end).step_by(step)` while `i + step <= end`; returns the variable
/// holding the first index not run (for a tail loop).
///
/// The loop is tested at its bottom (one test before it, for a loop that runs no
/// iteration): each iteration then ends in one conditional branch back, where a test at the
/// top costs a taken jump back as well. A loop whose body is one vector store ran at half
/// the speed with the test on top.
fn counted_loop(
    b: &mut FunctionBuilder,
    start: Value,
    end: Value,
    step: i64,
    body: &mut dyn FnMut(&mut FunctionBuilder, Value),
) -> Variable {
    let var = b.declare_var(I64);
    b.def_var(var, start);
    let body_block = b.create_block();
    let exit = b.create_block();
    let first = b.ins().iadd_imm_s(start, step);
    let any = b.ins().icmp(IntCC::SignedLessThanOrEqual, first, end);
    b.ins().brif(any, body_block, &[], exit, &[]);
    b.switch_to_block(body_block);
    let i = b.use_var(var);
    body(b, i);
    let next = b.ins().iadd_imm_s(i, step);
    b.def_var(var, next);
    let after = b.ins().iadd_imm_s(next, step);
    let again = b.ins().icmp(IntCC::SignedLessThanOrEqual, after, end);
    b.ins().brif(again, body_block, &[], exit, &[]);
    b.switch_to_block(exit);
    var
}

impl Emitter<'_> {
    /// The type of a node's value: bools in vectors are lane masks of the lanes' width.
    fn vector_type(&self, dtype: DType, width: u32) -> Type {
        match (dtype, width) {
            (DType::F32, 4) => F32X4,
            (DType::F64, 2) => F64X2,
            (DType::Bool, 4) => I32X4,
            (DType::Bool, 2) => I64X2,
            _ => scalar_type(dtype),
        }
    }

    fn constant(&self, b: &mut FunctionBuilder, dtype: DType, x: f64, width: u32) -> Value {
        let s = match dtype {
            DType::F32 => b.ins().f32const(x as f32),
            DType::F64 => b.ins().f64const(x),
            DType::I32 => b.ins().iconst(I32, i64::from(x as i32)),
            DType::Bool if width > 1 => {
                let lane = self.vector_type(dtype, width).lane_type();
                b.ins().iconst(lane, -i64::from(x != 0.0))
            }
            DType::Bool => b.ins().iconst(I8, i64::from(x != 0.0)),
        };
        if width > 1 {
            b.ins().splat(self.vector_type(dtype, width), s)
        } else {
            s
        }
    }

    fn identity(&self, b: &mut FunctionBuilder, op: ReduceOp, width: u32) -> Value {
        let dtype = self.kernel.out_dtype;
        self.constant(b, dtype, identity_value(op, dtype), width)
    }

    /// The loops over the outer axes `level..`, then the innermost axis.
    fn emit_nest(&self, b: &mut FunctionBuilder, level: usize, index: &[Value]) {
        let inner = self.c.dims.len() - 1;
        if level == inner {
            // Offsets of every affine function at this outer index.
            let outer: Vec<Value> = self
                .c
                .funcs
                .iter()
                .map(|(offset, coef)| {
                    let mut acc = b.ins().iconst(I64, *offset);
                    for (d, &i) in index.iter().enumerate() {
                        if coef[d] != 0 {
                            let t = b.ins().imul_imm_s(i, coef[d]);
                            acc = b.ins().iadd(acc, t);
                        }
                    }
                    acc
                })
                .collect();
            // The address of each buffer's row at this outer index, computed once here so
            // that the inner loop's addresses are `row + i * stride` (an addressing mode).
            let rows: Vec<Option<Value>> = self
                .buffer_of_func
                .iter()
                .zip(&outer)
                .map(|(buffer, &off)| {
                    buffer.map(|(base, size)| {
                        let bytes = b.ins().imul_imm_s(off, size as i64);
                        b.ins().iadd(base, bytes)
                    })
                })
                .collect();
            self.emit_inner(b, &Outer { idx: outer, rows });
            return;
        }
        let (start, end) = match self.range {
            Some(range) if level == 0 => range,
            _ => (
                b.ins().iconst(I64, 0),
                b.ins().iconst(I64, self.c.dims[level]),
            ),
        };
        counted_loop(b, start, end, 1, &mut |b, i| {
            let mut idx = index.to_vec();
            idx.push(i);
            self.emit_nest(b, level + 1, &idx);
        });
    }

    /// The innermost axis: tiles (when there are transcendentals), passes, vector and tail
    /// loops, and the reduction's fold.
    fn emit_inner(&self, b: &mut FunctionBuilder, outer: &Outer) {
        let inner = self.c.dims.len() - 1;
        let n = self.c.dims[inner];
        let (start, end) = match self.range {
            Some(range) if inner == 0 => range,
            _ => (b.ins().iconst(I64, 0), b.ins().iconst(I64, n)),
        };
        if self.passes == 1 || n <= TILE as i64 {
            // One tile: the whole axis (or block).
            let len = b.ins().isub(end, start);
            self.emit_tile(b, outer, start, len);
            return;
        }
        // Tiles of TILE elements, the last one shorter: one copy of the code.
        let c0 = b.declare_var(I64);
        b.def_var(c0, start);
        let header = b.create_block();
        let body = b.create_block();
        let exit = b.create_block();
        b.ins().jump(header, &[]);
        b.switch_to_block(header);
        let at = b.use_var(c0);
        let go = b.ins().icmp(IntCC::SignedLessThan, at, end);
        b.ins().brif(go, body, &[], exit, &[]);
        b.switch_to_block(body);
        let left = b.ins().isub(end, at);
        let tile = b.ins().iconst(I64, TILE as i64);
        let len = b.ins().smin(left, tile);
        self.emit_tile(b, outer, at, len);
        let next = b.ins().iadd_imm_s(at, TILE as i64);
        b.def_var(c0, next);
        b.ins().jump(header, &[]);
        b.switch_to_block(exit);
    }

    /// One tile `[c0, c0 + len)` of the innermost axis: every pass, host calls between them.
    fn emit_tile(&self, b: &mut FunctionBuilder, outer: &Outer, c0: Value, len: Value) {
        let n = self.kernel.nodes.len();
        let inner = self.c.dims.len() - 1;
        let reduce_inner: Vec<bool> = self
            .outs
            .iter()
            .map(|o| o.reduce.is_some() && self.c.funcs[o.f].1[inner] == 0)
            .collect();
        // An innermost reduced axis: up to UNROLL independent vector accumulators and a
        // scalar one for the tail, per output; fewer when several outputs share the loop.
        // (Each copy of the body reads its own loads where it needs them: see `load_flags`.)
        let unroll = if reduce_inner.iter().all(|&r| r) && self.width > 1 {
            (VECTOR_ACCUMULATORS / self.outs.len()).clamp(1, UNROLL)
        } else if reduce_inner.iter().all(|&r| !r)
            && self.width > 1
            && self.c.dims[inner] >= crate::plan::SHORT_LOOP as i64
        {
            // (Not in short loops: a second copy of the body there costs compile time and
            // saves nothing measurable.)
            STORE_UNROLL
        } else {
            1
        };
        let acc_vars: Vec<Option<(Vec<Variable>, Variable)>> = self
            .outs
            .iter()
            .zip(&reduce_inner)
            .map(|(o, &ri)| {
                let op = o.reduce.filter(|_| ri)?;
                let vt = self.vector_type(self.kernel.out_dtype, self.width);
                let st = scalar_type(self.kernel.out_dtype);
                let vs: Vec<Variable> = (0..unroll).map(|_| b.declare_var(vt)).collect();
                let s = b.declare_var(st);
                let iv = self.identity(b, op, self.width);
                for &v in &vs {
                    b.def_var(v, iv);
                }
                if !self.kernel.guards.is_empty() {
                    // Vectors whose guards differ lane by lane run element by element.
                    let is = self.identity(b, op, 1);
                    b.def_var(s, is);
                }
                Some((vs, s))
            })
            .collect();
        for pass in 0..self.passes {
            let last = pass + 1 == self.passes;
            // What this pass computes: the operands of the next level's transcendentals, or
            // the root.
            let mut need = vec![false; n];
            let targets: Vec<usize> = if last {
                self.outs.iter().map(|o| o.node).collect()
            } else {
                (0..n)
                    .filter(|&i| {
                        is_transcendental(&self.kernel.nodes[i].op) && self.level[i] == pass + 1
                    })
                    .collect()
            };
            for &t in &targets {
                if last {
                    need[t] = true;
                } else if let NodeOp::Apply { args, .. } = &self.kernel.nodes[t].op {
                    for &a in args {
                        need[a as usize] = true;
                    }
                }
            }
            // Marks what the marked nodes read, except below `leaves`.
            let close = |mut need: Vec<bool>, leaves: &[bool]| {
                for i in (0..n).rev() {
                    if !need[i] || leaves[i] {
                        continue;
                    }
                    let node = &self.kernel.nodes[i];
                    let from_tile = is_transcendental(&node.op) && self.level[i] <= pass;
                    if !from_tile {
                        for a in node_args(&node.op) {
                            need[a as usize] = true;
                        }
                    }
                }
                need
            };
            let unmarked = need.clone();
            let need = close(need, &vec![false; n]);
            // Where every guard of a block holds: the nodes shifted in from their twins
            // (`shifted_twins`), `(node, twin)`, and what is computed then. A node stays
            // shifted while it and its twin are still computed.
            let mut shifted: Vec<(usize, usize)> = (0..n)
                .filter_map(|k| Some((k, self.twins[k]? as usize)))
                .filter(|&(k, _)| need[k])
                .collect();
            // (Set in the loop while `shifted` holds anything.)
            let mut need_inside = Vec::new();
            while !shifted.is_empty() {
                let mut leaves = vec![false; n];
                for &(k, _) in &shifted {
                    leaves[k] = true;
                }
                need_inside = close(unmarked.clone(), &leaves);
                let before = shifted.len();
                shifted.retain(|&(k, t)| need_inside[k] && need_inside[t]);
                if shifted.len() == before {
                    break;
                }
            }
            if shifted.is_empty() {
                need_inside = need.clone();
            }
            let zero = b.ins().iconst(I64, 0);
            let element =
                |b: &mut FunctionBuilder,
                 j: Value,
                 width: u32,
                 lane_group: usize,
                 valid: &[Value],
                 (need, shift): (&[bool], &[(usize, usize, Value)])| {
                    let i = b.ins().iadd(c0, j);
                    let lane = Lane { i, j, width, valid };
                    let vals = self.emit_nodes(b, outer, (need, pass), &lane, shift);
                    if !last {
                        for &t in &targets {
                            let (ta, tb) = self.tile[t].expect("a tile");
                            let NodeOp::Apply { args, .. } = &self.kernel.nodes[t].op else {
                                unreachable!("transcendentals are applications")
                            };
                            let size = self.kernel.nodes[t].dtype.size_bytes() as i64;
                            let off = b.ins().imul_imm_s(j, size);
                            let a_addr = b.ins().iadd(ta, off);
                            let va = vals[args[0] as usize].expect("needed");
                            b.ins().store(self.flags, va, a_addr, 0);
                            if let Some(tb) = tb {
                                let b_addr = b.ins().iadd(tb, off);
                                let vb = vals[args[1] as usize].expect("needed");
                                b.ins().store(self.flags, vb, b_addr, 0);
                            }
                        }
                        return vals;
                    }
                    for (o, out) in self.outs.iter().enumerate() {
                        let value = match self.fused[out.node] {
                            Some(f) => {
                                let (x, y) = self.factors(b, &vals, f, false);
                                Root::Product(x, y)
                            }
                            None => Root::Value(vals[out.node].expect("outputs are computed")),
                        };
                        let acc =
                            acc_vars[o]
                                .as_ref()
                                .map(|(vs, s)| if width > 1 { vs[lane_group] } else { *s });
                        self.emit_result(b, outer, o, value, (i, width), acc);
                    }
                    vals
                };
            // Guards (inlined pads, concatenations): scalar elements test them one by one; a
            // vector of elements runs as a vector when every guard holds or fails for all its
            // lanes, else element by element.
            let plain = (need.as_slice(), &[][..]);
            let body = |b: &mut FunctionBuilder, j: Value, width: u32, lane_group: usize| {
                if self.kernel.guards.is_empty() {
                    element(b, j, width, lane_group, &[], plain);
                    return;
                }
                let i = b.ins().iadd(c0, j);
                if width == 1 {
                    let valid = self.scalar_guards(b, outer, i);
                    element(b, j, 1, lane_group, &valid, plain);
                    return;
                }
                let (mixed, valid) = self.vector_guards(b, outer, i, width);
                let by_element = b.create_block();
                let whole = b.create_block();
                let after = b.create_block();
                b.ins().brif(mixed, by_element, &[], whole, &[]);
                b.switch_to_block(by_element);
                for u in 0..width {
                    let ju = b.ins().iadd_imm_s(j, i64::from(u));
                    let iu = b.ins().iadd(c0, ju);
                    let valid = self.scalar_guards(b, outer, iu);
                    element(b, ju, 1, lane_group, &valid, plain);
                }
                b.ins().jump(after, &[]);
                b.switch_to_block(whole);
                element(b, j, width, lane_group, &valid, plain);
                b.ins().jump(after, &[]);
                b.switch_to_block(after);
            };
            // Which loops can run at all, from the static length of the axis (every tile but
            // the last is a multiple of the vector width).
            let n_inner = self.c.dims[inner];
            let w64 = i64::from(self.width);
            let mut rest = zero;
            let guarded = !self.kernel.guards.is_empty();
            if guarded && self.width > 1 && n_inner >= w64 * GUARD_BLOCK {
                // Guards tested once per block of vectors: a block where every guard holds
                // or fails throughout runs plain vector code; the others test each vector.
                let w = self.width;
                let span = w64 * GUARD_BLOCK;
                let v = counted_loop(b, rest, len, span, &mut |b, j| {
                    let i = b.ins().iadd(c0, j);
                    let (mixed, valid) = self.vector_guards(b, outer, i, span as u32);
                    let end = b.ins().iadd_imm_s(j, span);
                    let each = b.create_block();
                    let whole = b.create_block();
                    let after = b.create_block();
                    b.ins().brif(mixed, each, &[], whole, &[]);
                    // Where every guard holds (the common case, inside the arrays) the guards
                    // are constants, and the guarded selects fold away.
                    b.switch_to_block(whole);
                    let mut every = valid[0];
                    for &v in &valid[1..] {
                        every = b.ins().band(every, v);
                    }
                    let inside = b.create_block();
                    let partly = b.create_block();
                    b.ins().brif(every, inside, &[], partly, &[]);
                    b.switch_to_block(inside);
                    let yes: Vec<Value> = valid.iter().map(|_| b.ins().iconst(I8, 1)).collect();
                    // Each shifted node carries its twin's previous vector, first one whose
                    // last lane is the node's first (the node computed in full once).
                    let carries: Vec<Variable> = shifted
                        .iter()
                        .map(|&(k, _)| {
                            let ty = self.vector_type(self.kernel.nodes[k].dtype, w);
                            b.declare_var(ty)
                        })
                        .collect();
                    if !shifted.is_empty() {
                        let mut first = vec![false; n];
                        for &(k, _) in &shifted {
                            first[k] = true;
                        }
                        let first = close(first, &vec![false; n]);
                        let i = b.ins().iadd(c0, j);
                        let lane = Lane {
                            i,
                            j,
                            width: w,
                            valid: &yes,
                        };
                        let vals = self.emit_nodes(b, outer, (&first, pass), &lane, &[]);
                        for (&(k, _), &carry) in shifted.iter().zip(&carries) {
                            let v = vals[k].expect("computed");
                            let x = b.ins().extractlane(v, 0);
                            let ty = b.func.dfg.value_type(v);
                            let v = b.ins().splat(ty, x);
                            b.def_var(carry, v);
                        }
                    }
                    // Two vectors per iteration (a block is an even number of vectors).
                    counted_loop(b, j, end, 2 * w64, &mut |b, jj| {
                        let mut shift: Vec<(usize, usize, Value)> = shifted
                            .iter()
                            .zip(&carries)
                            .map(|(&(k, t), &carry)| (k, t, b.use_var(carry)))
                            .collect();
                        let inside = (need_inside.as_slice(), shift.as_slice());
                        let vals = element(b, jj, w, 0, &yes, inside);
                        for s in &mut shift {
                            s.2 = vals[s.1].expect("a twin is computed");
                        }
                        let next = b.ins().iadd_imm_s(jj, w64);
                        let inside = (need_inside.as_slice(), shift.as_slice());
                        let vals = element(b, next, w, 0, &yes, inside);
                        for (&(_, t), &carry) in shifted.iter().zip(&carries) {
                            b.def_var(carry, vals[t].expect("a twin is computed"));
                        }
                    });
                    b.ins().jump(after, &[]);
                    b.switch_to_block(partly);
                    counted_loop(b, j, end, w64, &mut |b, jj| {
                        element(b, jj, w, 0, &valid, plain);
                    });
                    b.ins().jump(after, &[]);
                    b.switch_to_block(each);
                    counted_loop(b, j, end, w64, &mut |b, jj| body(b, jj, w, 0));
                    b.ins().jump(after, &[]);
                    b.switch_to_block(after);
                });
                rest = b.use_var(v);
            }
            if !guarded && self.width > 1 && unroll > 1 && last && n_inner >= w64 * unroll as i64 {
                let w = self.width;
                let step = i64::from(w) * unroll as i64;
                let v = counted_loop(b, rest, len, step, &mut |b, j| {
                    for u in 0..unroll {
                        let ju = b.ins().iadd_imm_s(j, i64::from(w) * u as i64);
                        body(b, ju, w, u);
                    }
                });
                rest = b.use_var(v);
            }
            if self.width > 1 && n_inner >= w64 {
                let w = self.width;
                let v = counted_loop(b, rest, len, i64::from(w), &mut |b, j| body(b, j, w, 0));
                rest = b.use_var(v);
            }
            if last && self.kernel.guards.is_empty() {
                // The scalar accumulators start here, so that they hold no register
                // through the vector loops (which, without guards, never use them).
                for (o, acc) in acc_vars.iter().enumerate() {
                    if let Some((_, s)) = acc {
                        let op = self.outs[o].reduce.expect("reducing");
                        let is = self.identity(b, op, 1);
                        b.def_var(*s, is);
                    }
                }
            }
            if self.width == 1 || n_inner % w64 != 0 {
                counted_loop(b, rest, len, 1, &mut |b, j| body(b, j, 1, 0));
            }
            if !last {
                for &t in &targets {
                    let (ta, tb) = self.tile[t].expect("a tile");
                    let f = self.host[t].expect("a host kernel");
                    match tb {
                        Some(tb) => b.ins().call(f, &[ta, tb, len]),
                        None => b.ins().call(f, &[ta, len]),
                    };
                }
            }
        }
        for (o, acc_var) in acc_vars.into_iter().enumerate() {
            let Some((vs, s)) = acc_var else {
                continue;
            };
            let out = &self.outs[o];
            let op = out.reduce.expect("reducing");
            let mut acc = b.use_var(s);
            let mut vec = b.use_var(vs[0]);
            for &v in &vs[1..] {
                let other = b.use_var(v);
                vec = self.combine(b, op, vec, other, self.width);
            }
            if self.width > 1 {
                for lane in 0..self.width {
                    let x = b.ins().extractlane(vec, lane as u8);
                    acc = self.combine(b, op, acc, x, 1);
                }
            }
            let addr = self.address(b, outer, out.base, self.kernel.out_dtype, out.f, None);
            let old = b
                .ins()
                .load(scalar_type(self.kernel.out_dtype), self.flags, addr, 0);
            let new = self.combine(b, op, old, acc, 1);
            b.ins().store(self.flags, new, addr, 0);
        }
    }

    /// Whether each guard holds at inner index `i` (I8 flags).
    fn scalar_guards(&self, b: &mut FunctionBuilder, outer: &Outer, i: Value) -> Vec<Value> {
        let inner = self.c.dims.len() - 1;
        let mut valid: Vec<Value> = Vec::with_capacity(self.kernel.guards.len());
        for (g, guard) in self.kernel.guards.iter().enumerate() {
            let mut ok = match guard.parent {
                Some(p) => valid[p as usize],
                None => b.ins().iconst(I8, 1),
            };
            for (axis, &(_, lo, hi)) in guard.axes.iter().enumerate() {
                let f = self.guard_fns[g][axis];
                let t = b.ins().imul_imm_s(i, self.c.funcs[f].1[inner]);
                let v = b.ins().iadd(outer.idx[f], t);
                let above = b.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, v, lo);
                let below = b.ins().icmp_imm_s(IntCC::SignedLessThan, v, hi);
                let inside = b.ins().band(above, below);
                ok = b.ins().band(ok, inside);
            }
            valid.push(ok);
        }
        valid
    }

    /// For the `width` lanes from inner index `i`: whether some guard holds for some lanes
    /// only, and whether each guard holds (for all lanes, when none is mixed).
    fn vector_guards(
        &self,
        b: &mut FunctionBuilder,
        outer: &Outer,
        i: Value,
        width: u32,
    ) -> (Value, Vec<Value>) {
        let inner = self.c.dims.len() - 1;
        let mut mixed = b.ins().iconst(I8, 0);
        let mut valid: Vec<Value> = Vec::with_capacity(self.kernel.guards.len());
        for (g, guard) in self.kernel.guards.iter().enumerate() {
            let mut all = b.ins().iconst(I8, 1);
            let mut none = b.ins().iconst(I8, 0);
            for (axis, &(_, lo, hi)) in guard.axes.iter().enumerate() {
                let f = self.guard_fns[g][axis];
                let coef = self.c.funcs[f].1[inner];
                let t = b.ins().imul_imm_s(i, coef);
                let first = b.ins().iadd(outer.idx[f], t);
                let last = b.ins().iadd_imm_s(first, coef * (i64::from(width) - 1));
                let low = b.ins().smin(first, last);
                let high = b.ins().smax(first, last);
                let above = b.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, low, lo);
                let below = b.ins().icmp_imm_s(IntCC::SignedLessThan, high, hi);
                let inside = b.ins().band(above, below);
                all = b.ins().band(all, inside);
                let before = b.ins().icmp_imm_s(IntCC::SignedLessThan, high, lo);
                let after = b.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, low, hi);
                let outside = b.ins().bor(before, after);
                none = b.ins().bor(none, outside);
            }
            let uniform = b.ins().bor(all, none);
            let not_uniform = b.ins().bxor_imm_s(uniform, 1);
            mixed = b.ins().bor(mixed, not_uniform);
            let ok = match guard.parent {
                Some(p) => b.ins().band(all, valid[p as usize]),
                None => all,
            };
            valid.push(ok);
        }
        (mixed, valid)
    }

    /// The address of element `outer + i * coef` of function `f`'s buffer.
    fn address(
        &self,
        b: &mut FunctionBuilder,
        outer: &Outer,
        base: Value,
        dtype: DType,
        f: usize,
        i: Option<Value>,
    ) -> Value {
        let inner = self.c.dims.len() - 1;
        let coef = self.c.funcs[f].1[inner];
        if let Some(row) = outer.rows[f] {
            return match (i, coef != 0) {
                (Some(i), true) => {
                    let bytes = b.ins().imul_imm_s(i, coef * dtype.size_bytes() as i64);
                    b.ins().iadd(row, bytes)
                }
                _ => row,
            };
        }
        let mut off = outer.idx[f];
        if let (Some(i), true) = (i, coef != 0) {
            let t = b.ins().imul_imm_s(i, coef);
            off = b.ins().iadd(off, t);
        }
        let bytes = b.ins().imul_imm_s(off, dtype.size_bytes() as i64);
        b.ins().iadd(base, bytes)
    }

    /// Stores the root at index `i`, or folds it into the reduction.
    fn emit_result(
        &self,
        b: &mut FunctionBuilder,
        outer: &Outer,
        o: usize,
        root: Root,
        (i, width): (Value, u32),
        acc: Option<Variable>,
    ) {
        let out = &self.outs[o];
        let (out_fn, base) = (out.f, out.base);
        let dtype = self.kernel.out_dtype;
        let fold = |b: &mut FunctionBuilder, op: ReduceOp, old: Value| match root {
            Root::Value(v) => self.combine(b, op, old, v, width),
            Root::Product(x, y) => b.ins().fma(x, y, old),
        };
        match (out.reduce, acc) {
            (Some(op), Some(var)) => {
                let old = b.use_var(var);
                let new = fold(b, op, old);
                b.def_var(var, new);
            }
            (Some(op), None) => {
                let addr = self.address(b, outer, base, dtype, out_fn, Some(i));
                let ty = self.vector_type(dtype, width);
                let old = b.ins().load(ty, self.flags, addr, 0);
                let new = fold(b, op, old);
                b.ins().store(self.flags, new, addr, 0);
            }
            (None, _) => {
                let Root::Value(root) = root else {
                    unreachable!("only summed outputs fold their product")
                };
                let addr = self.address(b, outer, base, dtype, out_fn, Some(i));
                b.ins().store(self.flags, root, addr, 0);
            }
        }
    }

    fn combine(
        &self,
        b: &mut FunctionBuilder,
        op: ReduceOp,
        acc: Value,
        x: Value,
        width: u32,
    ) -> Value {
        let dtype = self.kernel.out_dtype;
        let bin = match op {
            ReduceOp::Sum => BinaryOp::Add,
            ReduceOp::Max => BinaryOp::Max,
            ReduceOp::Min => BinaryOp::Min,
        };
        binary(b, bin, dtype, acc, x, width)
    }

    /// The two factors of a folded product, the first negated when the product is (or,
    /// with `flip`, when it is not): Cranelift turns `fma` of a `fneg` into `vfnmadd`.
    fn factors(
        &self,
        b: &mut FunctionBuilder,
        vals: &[Option<Value>],
        f: Folded,
        flip: bool,
    ) -> (Value, Value) {
        let val = |a: u32| vals[a as usize].expect("factors are computed");
        let a = if f.negated != flip {
            b.ins().fneg(val(f.a))
        } else {
            val(f.a)
        };
        (a, val(f.b))
    }

    /// Computes the `need`ed nodes of pass `pass` at `lane`; each `(node, twin, previous)` of
    /// `shifted` as `previous` (its twin's vector one step back) shifted into the twin's.
    fn emit_nodes(
        &self,
        b: &mut FunctionBuilder,
        outer: &Outer,
        (need, pass): (&[bool], usize),
        lane: &Lane<'_>,
        shifted: &[(usize, usize, Value)],
    ) -> Vec<Option<Value>> {
        let Lane { i, j, width, valid } = *lane;
        let mut vals: Vec<Option<Value>> = vec![None; need.len()];
        for &k in &self.order {
            let node = &self.kernel.nodes[k];
            if !need[k] {
                continue;
            }
            if let Some(&(_, t, prev)) = shifted.iter().find(|s| s.0 == k) {
                let cur = vals[t].expect("a twin comes first");
                vals[k] = Some(shift_in(b, prev, cur));
                continue;
            }
            let ty = self.vector_type(node.dtype, width);
            let v = match &node.op {
                NodeOp::Load { guard, .. } => {
                    let f = self.func_of[k];
                    let inner = self.c.dims.len() - 1;
                    let base = self.base[k].expect("a load has a base");
                    let mut addr = self.address(b, outer, base, node.dtype, f, Some(i));
                    if let Some(g) = guard {
                        addr = b.ins().select(valid[*g as usize], addr, self.safe);
                    }
                    if width > 1 && self.c.funcs[f].1[inner] == 0 {
                        let s = b.ins().load(scalar_type(node.dtype), self.flags, addr, 0);
                        b.ins().splat(ty, s)
                    } else if self.c.funcs[f].1[inner] != 0 {
                        // (Its address changes along the innermost loop: it never leaves it.)
                        b.ins().load(ty, self.load_flags[k], addr, 0)
                    } else {
                        b.ins().load(ty, self.flags, addr, 0)
                    }
                }
                NodeOp::Literal(x) => self.constant(b, node.dtype, *x, width),
                NodeOp::Pad { value, fill, guard } => {
                    let v = vals[*value as usize].expect("operands come first");
                    let f = vals[*fill as usize].expect("operands come first");
                    b.ins().select(valid[*guard as usize], v, f)
                }
                NodeOp::Iota(_) => {
                    let f = self.func_of[k];
                    let inner = self.c.dims.len() - 1;
                    let t = b.ins().imul_imm_s(i, self.c.funcs[f].1[inner]);
                    let idx = b.ins().iadd(outer.idx[f], t);
                    match node.dtype {
                        DType::F32 => b.ins().fcvt_from_sint(F32, idx),
                        DType::F64 => b.ins().fcvt_from_sint(F64, idx),
                        _ => b.ins().ireduce(I32, idx),
                    }
                }
                op if is_transcendental(op) && self.level[k] <= pass => {
                    let (ta, _) = self.tile[k].expect("a tile");
                    let off = b.ins().imul_imm_s(j, node.dtype.size_bytes() as i64);
                    let addr = b.ins().iadd(ta, off);
                    b.ins().load(ty, self.flags, addr, 0)
                }
                // A product folded into its reader, which computes it.
                NodeOp::Apply { .. } if self.fused[k].is_some() => continue,
                NodeOp::Apply {
                    prim: Prim::Binary(op @ (BinaryOp::Add | BinaryOp::Sub)),
                    args,
                } if args.iter().any(|&a| self.fused[a as usize].is_some()) => {
                    let val = |a: u32| vals[a as usize].expect("operands come first");
                    let (x, y) = (args[0], args[1]);
                    let sub = *op == BinaryOp::Sub;
                    match (self.fused[y as usize], self.fused[x as usize]) {
                        // x ± p*q
                        (Some(f), _) => {
                            let (p, q) = self.factors(b, &vals, f, sub);
                            b.ins().fma(p, q, val(x))
                        }
                        // p*q ± y
                        (None, Some(f)) => {
                            let (p, q) = self.factors(b, &vals, f, false);
                            let y = if sub { b.ins().fneg(val(y)) } else { val(y) };
                            b.ins().fma(p, q, y)
                        }
                        (None, None) => unreachable!("one operand is a folded product"),
                    }
                }
                NodeOp::Apply { prim, args } => {
                    let xs: Vec<Value> = args
                        .iter()
                        .map(|&a| vals[a as usize].expect("operands come first"))
                        .collect();
                    let dts: Vec<DType> = args
                        .iter()
                        .map(|&a| self.kernel.nodes[a as usize].dtype)
                        .collect();
                    let is_two = |a: u32| matches!(self.kernel.nodes[a as usize].op, NodeOp::Literal(x) if x == 2.0);
                    match (prim, node.dtype.is_float()) {
                        // `x * 2` as `x + x`: the same value (exact either way, also for
                        // infinities, NaN and -0), on the adders, which a derivative's loop
                        // leaves idler than the multipliers.
                        (Prim::Binary(BinaryOp::Mul), true) if is_two(args[1]) => {
                            b.ins().fadd(xs[0], xs[0])
                        }
                        (Prim::Binary(BinaryOp::Mul), true) if is_two(args[0]) => {
                            b.ins().fadd(xs[1], xs[1])
                        }
                        _ => apply(b, prim, &xs, &dts, node.dtype, width),
                    }
                }
            };
            vals[k] = Some(v);
        }
        vals
    }
}

/// A float constant of `dtype`, splatted to `width` lanes.
fn fconst(b: &mut FunctionBuilder, dtype: DType, x: f64, width: u32) -> Value {
    let s = match dtype {
        DType::F32 => b.ins().f32const(x as f32),
        _ => b.ins().f64const(x),
    };
    match (dtype, width) {
        (DType::F32, 4) => b.ins().splat(F32X4, s),
        (DType::F64, 2) => b.ins().splat(F64X2, s),
        _ => s,
    }
}

/// `c ? x : y` for scalars (`c` an I8) and lane masks (`c` from a vector comparison).
fn pick(b: &mut FunctionBuilder, c: Value, x: Value, y: Value, width: u32) -> Value {
    if width > 1 {
        let ty = b.func.dfg.value_type(x);
        let mask = b.ins().bitcast(
            ty,
            MemFlagsData::new().with_endianness(Endianness::Little),
            c,
        );
        b.ins().bitselect(mask, x, y)
    } else {
        b.ins().select(c, x, y)
    }
}

/// A binary operation on values of `dtype`.
fn binary(
    b: &mut FunctionBuilder,
    op: BinaryOp,
    dtype: DType,
    x: Value,
    y: Value,
    width: u32,
) -> Value {
    if dtype == DType::I32 {
        return match op {
            BinaryOp::Add => b.ins().iadd(x, y),
            BinaryOp::Sub => b.ins().isub(x, y),
            BinaryOp::Mul => b.ins().imul(x, y),
            BinaryOp::Max => b.ins().smax(x, y),
            BinaryOp::Min => b.ins().smin(x, y),
            // XLA: x / 0 = -1, and i32::MIN / -1 wraps to i32::MIN (x / 1).
            BinaryOp::Div | BinaryOp::Pow | BinaryOp::Atan2 => {
                let zero = b.ins().icmp_imm_s(IntCC::Equal, y, 0);
                let min = b.ins().icmp_imm_s(IntCC::Equal, x, i64::from(i32::MIN));
                let neg1 = b.ins().icmp_imm_s(IntCC::Equal, y, -1);
                let overflow = b.ins().band(min, neg1);
                let bad = b.ins().bor(zero, overflow);
                let one = b.ins().iconst(I32, 1);
                let safe = b.ins().select(bad, one, y);
                let q = b.ins().sdiv(x, safe);
                let m1 = b.ins().iconst(I32, -1);
                b.ins().select(zero, m1, q)
            }
        };
    }
    match op {
        BinaryOp::Add => b.ins().fadd(x, y),
        BinaryOp::Sub => b.ins().fsub(x, y),
        BinaryOp::Mul => b.ins().fmul(x, y),
        BinaryOp::Div => b.ins().fdiv(x, y),
        // The interpreter's max_nan / min_nan: x if x is NaN or wins, else y if y is NaN or
        // wins, else x (ties keep the first operand).
        BinaryOp::Max | BinaryOp::Min => {
            let wins = if op == BinaryOp::Max {
                FloatCC::GreaterThan
            } else {
                FloatCC::LessThan
            };
            let x_nan = b.ins().fcmp(FloatCC::Unordered, x, x);
            let x_wins = b.ins().fcmp(wins, x, y);
            let keep_x = b.ins().bor(x_nan, x_wins);
            let y_nan = b.ins().fcmp(FloatCC::Unordered, y, y);
            let y_wins = b.ins().fcmp(wins, y, x);
            let take_y = b.ins().bor(y_nan, y_wins);
            let not_x = b.ins().bnot(keep_x);
            let choose_y = b.ins().band(not_x, take_y);
            pick(b, choose_y, y, x, width)
        }
        BinaryOp::Pow | BinaryOp::Atan2 => unreachable!("host kernels"),
    }
}

/// An elementwise primitive (not a transcendental) on `xs` of dtypes `dts`, giving `dtype`.
fn apply(
    b: &mut FunctionBuilder,
    prim: &Prim,
    xs: &[Value],
    dts: &[DType],
    dtype: DType,
    width: u32,
) -> Value {
    match prim {
        Prim::Unary(op) => unary(b, *op, dts[0], xs[0], width),
        Prim::IntegerPow { y } => integer_pow(b, dtype, xs[0], *y, width),
        Prim::StopGradient => xs[0],
        Prim::Binary(op) => binary(b, *op, dtype, xs[0], xs[1], width),
        Prim::Compare(op) => {
            if dts[0].is_float() {
                let cc = match op {
                    CompareOp::Lt => FloatCC::LessThan,
                    CompareOp::Le => FloatCC::LessThanOrEqual,
                    CompareOp::Gt => FloatCC::GreaterThan,
                    CompareOp::Ge => FloatCC::GreaterThanOrEqual,
                    CompareOp::Eq => FloatCC::Equal,
                    CompareOp::Ne => FloatCC::NotEqual,
                };
                b.ins().fcmp(cc, xs[0], xs[1])
            } else {
                let signed = dts[0] == DType::I32;
                let cc = match (op, signed) {
                    (CompareOp::Lt, true) => IntCC::SignedLessThan,
                    (CompareOp::Le, true) => IntCC::SignedLessThanOrEqual,
                    (CompareOp::Gt, true) => IntCC::SignedGreaterThan,
                    (CompareOp::Ge, true) => IntCC::SignedGreaterThanOrEqual,
                    (CompareOp::Lt, false) => IntCC::UnsignedLessThan,
                    (CompareOp::Le, false) => IntCC::UnsignedLessThanOrEqual,
                    (CompareOp::Gt, false) => IntCC::UnsignedGreaterThan,
                    (CompareOp::Ge, false) => IntCC::UnsignedGreaterThanOrEqual,
                    (CompareOp::Eq, _) => IntCC::Equal,
                    (CompareOp::Ne, _) => IntCC::NotEqual,
                };
                b.ins().icmp(cc, xs[0], xs[1])
            }
        }
        Prim::And => b.ins().band(xs[0], xs[1]),
        Prim::Or => b.ins().bor(xs[0], xs[1]),
        // Vectors of bools are lane masks (`vectorises`).
        Prim::Not if width > 1 => b.ins().bnot(xs[0]),
        Prim::Not => b.ins().bxor_imm_s(xs[0], 1),
        Prim::SelectN => pick(b, xs[0], xs[2], xs[1], width),
        Prim::ConvertElementType { dtype: to } if width > 1 && dts[0] == DType::Bool => {
            // A mask's lanes are all ones or zeros: `and` with 1.0 gives 1.0 or 0.0.
            let ty = b.func.dfg.value_type(xs[0]);
            let lanes = if ty == I32X4 { F32X4 } else { F64X2 };
            let mask = b.ins().bitcast(
                lanes,
                MemFlagsData::new().with_endianness(Endianness::Little),
                xs[0],
            );
            let one = fconst(b, *to, 1.0, width);
            b.ins().band(mask, one)
        }
        Prim::ConvertElementType { dtype: to } => convert(b, xs[0], dts[0], *to),
        _ => unreachable!("only elementwise primitives are nodes"),
    }
}

fn unary(b: &mut FunctionBuilder, op: UnaryOp, dtype: DType, x: Value, width: u32) -> Value {
    if dtype == DType::I32 {
        return match op {
            UnaryOp::Abs => b.ins().iabs(x),
            UnaryOp::Sign => {
                let one = b.ins().iconst(I32, 1);
                let m1 = b.ins().iconst(I32, -1);
                let zero = b.ins().iconst(I32, 0);
                let pos = b.ins().icmp_imm_s(IntCC::SignedGreaterThan, x, 0);
                let neg = b.ins().icmp_imm_s(IntCC::SignedLessThan, x, 0);
                let r = b.ins().select(neg, m1, zero);
                b.ins().select(pos, one, r)
            }
            _ => b.ins().ineg(x),
        };
    }
    match op {
        UnaryOp::Neg => b.ins().fneg(x),
        UnaryOp::Abs => b.ins().fabs(x),
        UnaryOp::Sqrt => b.ins().sqrt(x),
        UnaryOp::Rsqrt => {
            let one = fconst(b, dtype, 1.0, width);
            let s = b.ins().sqrt(x);
            b.ins().fdiv(one, s)
        }
        UnaryOp::Floor => b.ins().floor(x),
        UnaryOp::Ceil => b.ins().ceil(x),
        // Half away from zero: trunc, then one more step away from zero if the dropped
        // fraction is at least a half (x - trunc(x) is exact).
        UnaryOp::Round => {
            let t = b.ins().trunc(x);
            let d = b.ins().fsub(x, t);
            let ad = b.ins().fabs(d);
            let half = fconst(b, dtype, 0.5, 1);
            let up = b.ins().fcmp(FloatCC::GreaterThanOrEqual, ad, half);
            let one = fconst(b, dtype, 1.0, 1);
            let step = b.ins().fcopysign(one, x);
            let away = b.ins().fadd(t, step);
            b.ins().select(up, away, t)
        }
        // -1, 0 or 1; zeros keep their sign and NaN stays NaN.
        UnaryOp::Sign => {
            let zero = fconst(b, dtype, 0.0, 1);
            let one = fconst(b, dtype, 1.0, 1);
            let m1 = fconst(b, dtype, -1.0, 1);
            let pos = b.ins().fcmp(FloatCC::GreaterThan, x, zero);
            let neg = b.ins().fcmp(FloatCC::LessThan, x, zero);
            let r = b.ins().select(neg, m1, x);
            b.ins().select(pos, one, r)
        }
        UnaryOp::Sin
        | UnaryOp::Cos
        | UnaryOp::Tan
        | UnaryOp::Tanh
        | UnaryOp::Exp
        | UnaryOp::Log
        | UnaryOp::Log1p
        | UnaryOp::Expm1
        | UnaryOp::Logistic
        | UnaryOp::Erf => unreachable!("host kernels"),
    }
}

/// The interpreter's `integer_pow`: the small powers as written there, else
/// square-and-multiply, then the reciprocal for a negative power.
fn integer_pow(b: &mut FunctionBuilder, dtype: DType, x: Value, y: i32, width: u32) -> Value {
    match y {
        1 => return x,
        2 => return b.ins().fmul(x, x),
        3 => {
            let sq = b.ins().fmul(x, x);
            return b.ins().fmul(x, sq);
        }
        -1 => {
            let one = fconst(b, dtype, 1.0, width);
            return b.ins().fdiv(one, x);
        }
        -2 => {
            let one = fconst(b, dtype, 1.0, width);
            let sq = b.ins().fmul(x, x);
            return b.ins().fdiv(one, sq);
        }
        _ => {}
    }
    let (mut base, mut n) = (x, y.unsigned_abs());
    let mut acc: Option<Value> = None;
    while n > 0 {
        if n & 1 == 1 {
            acc = Some(match acc {
                Some(a) => b.ins().fmul(a, base),
                None => base,
            });
        }
        n >>= 1;
        if n > 0 {
            base = b.ins().fmul(base, base);
        }
    }
    let acc = match acc {
        Some(a) => a,
        None => fconst(b, dtype, 1.0, width),
    };
    if y < 0 {
        let one = fconst(b, dtype, 1.0, width);
        b.ins().fdiv(one, acc)
    } else {
        acc
    }
}

/// `convert_element_type` from `from` to `to`, as the interpreter converts.
fn convert(b: &mut FunctionBuilder, x: Value, from: DType, to: DType) -> Value {
    match (from, to) {
        (a, c) if a == c => x,
        (DType::F32, DType::F64) => b.ins().fpromote(F64, x),
        (DType::F64, DType::F32) => b.ins().fdemote(F32, x),
        (DType::F32 | DType::F64, DType::I32) => b.ins().fcvt_to_sint_sat(I32, x),
        (DType::F32 | DType::F64, DType::Bool) => {
            let zero = fconst(b, from, 0.0, 1);
            b.ins().fcmp(FloatCC::NotEqual, x, zero)
        }
        (DType::I32, DType::F32 | DType::F64) => b.ins().fcvt_from_sint(scalar_type(to), x),
        (DType::I32, DType::Bool) => b.ins().icmp_imm_s(IntCC::NotEqual, x, 0),
        (DType::Bool, DType::I32) => b.ins().uextend(I32, x),
        (DType::Bool, DType::F32 | DType::F64) => {
            let w = b.ins().uextend(I32, x);
            b.ins().fcvt_from_sint(scalar_type(to), w)
        }
        _ => unreachable!("every pair of dtypes is listed"),
    }
}
