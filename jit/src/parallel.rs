//! Big fused loops on two threads: a loop whose domain has at least `codegen::PARALLEL_FROM`
//! elements is compiled on its own as `fn(table, lo, hi)` and cut in two blocks along its
//! outermost collapsed axis (`codegen::split`), which the calling thread and the runtime's
//! helper thread claim (`traceform_runtime::par::blocks`).
//!
//! The first block runs on the executable's buffer table. The second runs on a copy whose
//! scratch (tiles of transcendentals, the zeroed place of guarded loads) is a second scratch
//! area, and whose outputs folded over the cut axis are partial buffers; after both blocks
//! the partial results are folded into the outputs, in block order. Every other output is
//! written at disjoint elements by the two blocks. Which thread runs a block does not change
//! what it computes, so results do not depend on the timing; they differ from a one-block
//! loop only in the order of a fold over the cut axis.

use traceform_ir::DType;
use traceform_runtime::par;

use crate::codegen::{identity_value, Split};
use crate::plan::ReduceOp;

/// A compiled cut loop: `fn(table, lo, hi)` over indices `lo..hi` of the cut axis.
pub type ParallelFn = unsafe extern "C" fn(*const *mut u8, i64, i64);

/// An output of a cut loop that the caller prepares.
#[derive(Clone, Debug)]
pub struct Output {
    /// Its index in the buffer table.
    pub slot: usize,
    pub len: usize,
    pub op: ReduceOp,
    /// Where the second block's partial result lives, from the start of the partial area
    /// (`None`: the blocks fold into disjoint elements of the output itself).
    pub partial: Option<usize>,
}

/// One cut loop, as the executable runs it.
pub struct Parallel {
    pub f: ParallelFn,
    pub split: Split,
    pub dtype: DType,
    /// Every folding output (they are filled with the fold's identity before the blocks).
    pub outputs: Vec<Output>,
}

/// Where a call's second block finds its own places.
pub struct SecondBlock {
    /// The table index of the scratch.
    pub scratch_slot: usize,
    pub scratch: *mut u8,
    /// The start of the partial area.
    pub partials: *mut u8,
}

impl Parallel {
    /// Runs both blocks and folds the partial results.
    ///
    /// # Safety
    /// `table` holds the buffers of every value the loop reads and writes; `second`'s
    /// places are the executable's second scratch (as large as the first) and a partial area
    /// with room for every partial output, neither used by anything else during the call.
    pub unsafe fn run(&self, table: &[*mut u8], second: &SecondBlock) {
        let mut other = table.to_vec();
        other[second.scratch_slot] = second.scratch;
        for out in &self.outputs {
            // SAFETY: the caller's contract: the output's buffer holds `len` elements.
            unsafe { fill(table[out.slot], out.len, self.dtype, out.op) };
            if let Some(at) = out.partial {
                // SAFETY: the partial area has room for this output at `at`.
                let p = unsafe { second.partials.add(at) };
                // SAFETY: as above.
                unsafe { fill(p, out.len, self.dtype, out.op) };
                other[out.slot] = p;
            }
        }
        // Raw pointers are not `Sync`; the addresses are, and the blocks only use them under
        // this function's contract.
        let tables = [table.as_ptr() as usize, other.as_ptr() as usize];
        let Split { len, cut, .. } = self.split;
        let bounds = [(0, cut), (cut, len)];
        par::blocks(2, &|i| {
            // SAFETY: the loop reads and writes only the table's buffers, the blocks write
            // disjoint elements (or their own partial buffers) and use their own scratch.
            unsafe { (self.f)(tables[i] as *const *mut u8, bounds[i].0, bounds[i].1) }
        });
        for out in &self.outputs {
            if let Some(at) = out.partial {
                // SAFETY: both buffers hold `len` elements; the blocks are done.
                unsafe {
                    fold(
                        table[out.slot],
                        second.partials.add(at),
                        out.len,
                        self.dtype,
                        out.op,
                    )
                };
            }
        }
    }
}

/// Fills `len` elements of `dtype` at `p` with the identity of `op`.
///
/// # Safety
/// `p` points to `len` writable elements of `dtype`, aligned.
unsafe fn fill(p: *mut u8, len: usize, dtype: DType, op: ReduceOp) {
    let x = identity_value(op, dtype);
    // SAFETY: the caller's contract.
    unsafe {
        match dtype {
            DType::F32 => std::slice::from_raw_parts_mut(p as *mut f32, len).fill(x as f32),
            DType::F64 => std::slice::from_raw_parts_mut(p as *mut f64, len).fill(x),
            DType::I32 => std::slice::from_raw_parts_mut(p as *mut i32, len).fill(x as i32),
            DType::Bool => std::slice::from_raw_parts_mut(p, len).fill(u8::from(x > 0.0)),
        }
    }
}

/// `out[j] = op(out[j], part[j])` for `len` elements of `dtype`, as the interpreter's `add`,
/// `max` and `min` compute (NaN-propagating, the first operand kept at ties).
///
/// # Safety
/// `out` and `part` point to `len` elements of `dtype` each, aligned, not overlapping;
/// `out`'s writable.
unsafe fn fold(out: *mut u8, part: *const u8, len: usize, dtype: DType, op: ReduceOp) {
    fn each<T: Copy>(out: *mut u8, part: *const u8, len: usize, f: impl Fn(T, T) -> T) {
        // SAFETY: `fold`'s contract.
        let (out, part) = unsafe {
            (
                std::slice::from_raw_parts_mut(out as *mut T, len),
                std::slice::from_raw_parts(part as *const T, len),
            )
        };
        for (o, &p) in out.iter_mut().zip(part) {
            *o = f(*o, p);
        }
    }
    fn pick<T: PartialOrd + Copy>(op: ReduceOp, a: T, b: T) -> T {
        // `a != a` is NaN (floats only; integers compare equal to themselves).
        #[allow(clippy::eq_op)]
        let nan = |x: T| x != x;
        let better = |x: T, y: T| match op {
            ReduceOp::Max => x > y,
            _ => x < y,
        };
        if nan(a) || better(a, b) {
            a
        } else if nan(b) || better(b, a) {
            b
        } else {
            a
        }
    }
    match (dtype, op) {
        (DType::F32, ReduceOp::Sum) => each(out, part, len, |a: f32, b| a + b),
        (DType::F64, ReduceOp::Sum) => each(out, part, len, |a: f64, b| a + b),
        (DType::I32, ReduceOp::Sum) => each(out, part, len, |a: i32, b| a.wrapping_add(b)),
        (DType::Bool, ReduceOp::Sum) => each(out, part, len, |a: u8, b| a.wrapping_add(b)),
        (DType::F32, _) => each(out, part, len, |a: f32, b| pick(op, a, b)),
        (DType::F64, _) => each(out, part, len, |a: f64, b| pick(op, a, b)),
        (DType::I32, _) => each(out, part, len, |a: i32, b| pick(op, a, b)),
        (DType::Bool, _) => each(out, part, len, |a: u8, b| pick(op, a, b)),
    }
}
