//! Memory planning: every materialised intermediate (a step's result that is neither a
//! parameter nor an output) gets a live interval over the plan's steps, from the step that
//! makes it to the last step that reads it, and a place in one arena. Places are given in step
//! order by a first-fit free list (freed blocks are merged with their neighbours), so a value
//! reuses the memory of values that died before it was made. An elementwise loop writes its
//! result in place of a value of the same size that it reads only at the element it writes
//! and that dies there (`Kernel::read_in_place`); otherwise a step's result never shares
//! memory with the values the step reads (they die after it).
//!
//! The same rules as `ir::Liveness` (parameters and outputs are not counted; a value nobody
//! reads dies where it is made), applied to the values the plan materialises: values fused into
//! a loop take no memory at all, so the arena is at most the interpreter's peak, rounded up to
//! the arena's 64-byte alignment per value.

use traceform_ir::{Atom, Func, Var};

use crate::plan::{Plan, StepKind};

/// Every buffer starts at a multiple of this many bytes.
pub const ALIGN: usize = 64;

/// Where each value lives during a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// Not materialised (fused into a loop).
    None,
    /// Parameter `i`'s buffer, the caller's.
    Param(usize),
    /// The output array made for output position `i`.
    Output(usize),
    /// At this byte offset of the arena.
    Arena(usize),
}

/// Places of all values, and the arena size.
#[derive(Clone, Debug)]
pub struct MemoryPlan {
    pub places: Vec<Place>,
    pub arena_bytes: usize,
}

fn round_up(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

impl MemoryPlan {
    pub fn new(func: &Func, plan: &Plan) -> MemoryPlan {
        let mut places = vec![Place::None; func.num_vars()];
        for (i, p) in func.params.iter().enumerate() {
            places[p.index()] = Place::Param(i);
        }
        for (i, a) in func.outputs.iter().enumerate() {
            if let Atom::Var(v) = a {
                if places[v.index()] == Place::None {
                    places[v.index()] = Place::Output(i);
                }
            }
        }
        let mut last_read = vec![None::<usize>; func.num_vars()];
        for (s, step) in plan.steps.iter().enumerate() {
            for v in &step.reads {
                last_read[v.index()] = Some(s);
            }
        }
        // deaths[s]: arena values whose last read (or, unread, whose making) is step s.
        let mut deaths: Vec<Vec<usize>> = vec![Vec::new(); plan.steps.len()];
        let mut free = FreeList::default();
        let mut sizes = vec![0usize; func.num_vars()];
        for (s, step) in plan.steps.iter().enumerate() {
            // In place: each result takes the block of a same-sized operand dying here.
            if let StepKind::Kernel(k) = &step.kind {
                let mut dying = k.read_in_place();
                dying.retain(|d| {
                    matches!(places[d.index()], Place::Arena(_))
                        && last_read[d.index()] == Some(s)
                        && deaths[s].contains(&d.index())
                });
                for out in std::iter::once(step.out).chain(step.also.iter().copied()) {
                    let bytes = func.var_type(out).size_bytes();
                    let fits = |d: &Var| func.var_type(*d).size_bytes() == bytes;
                    let Some(k) = dying.iter().position(fits) else {
                        continue;
                    };
                    if places[out.index()] != Place::None {
                        continue;
                    }
                    let d = dying.remove(k);
                    places[out.index()] = places[d.index()].clone();
                    sizes[out.index()] = sizes[d.index()];
                    deaths[s].retain(|&x| x != d.index());
                    deaths[last_read[out.index()].unwrap_or(s).max(s)].push(out.index());
                }
            }
            for out in std::iter::once(&step.out).chain(&step.also) {
                let v = out.index();
                if places[v] == Place::None {
                    let size = round_up(func.var_type(*out).size_bytes());
                    places[v] = Place::Arena(free.take(size));
                    sizes[v] = size;
                    deaths[last_read[v].unwrap_or(s).max(s)].push(v);
                }
            }
            for &d in &deaths[s] {
                if let Place::Arena(at) = places[d] {
                    free.give(at, sizes[d]);
                }
            }
        }
        MemoryPlan {
            places,
            arena_bytes: free.end,
        }
    }
}

/// Free blocks of the arena, sorted by offset, and the arena's current end.
#[derive(Default)]
struct FreeList {
    blocks: Vec<(usize, usize)>,
    end: usize,
}

impl FreeList {
    /// The offset of a block of `size` bytes: the first free block that fits, else the end
    /// (growing a free block that ends at the end, if there is one).
    fn take(&mut self, size: usize) -> usize {
        if size == 0 {
            return 0;
        }
        if let Some(i) = self.blocks.iter().position(|&(_, len)| len >= size) {
            let (at, len) = self.blocks[i];
            if len == size {
                self.blocks.remove(i);
            } else {
                self.blocks[i] = (at + size, len - size);
            }
            return at;
        }
        if let Some(&(at, len)) = self.blocks.last() {
            if at + len == self.end {
                self.blocks.pop();
                self.end = at + size;
                return at;
            }
        }
        let at = self.end;
        self.end += size;
        at
    }

    /// Returns a block, merging it with free neighbours.
    fn give(&mut self, at: usize, size: usize) {
        if size == 0 {
            return;
        }
        let i = self.blocks.partition_point(|&(b, _)| b < at);
        self.blocks.insert(i, (at, size));
        if i + 1 < self.blocks.len() && at + size == self.blocks[i + 1].0 {
            self.blocks[i].1 += self.blocks[i + 1].1;
            self.blocks.remove(i + 1);
        }
        if i > 0 && self.blocks[i - 1].0 + self.blocks[i - 1].1 == at {
            self.blocks[i - 1].1 += self.blocks[i].1;
            self.blocks.remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use traceform_ir::parse_func;

    #[test]
    fn dead_buffers_are_reused() {
        let f = parse_func(
            "func f(x: f32[16]) -> f32[] {\n  a: f32[16] = exp x\n  s: f32[] = reduce_sum[axes=(0)] a\n  m: f32[16] = mul a s\n  b: f32[16] = exp m\n  t: f32[] = reduce_sum[axes=(0)] b\n  c: f32[16] = mul b t\n  u: f32[] = reduce_sum[axes=(0)] c\n  w: f32[] = add u 1.0\n  return w\n}\n",
        )
        .unwrap();
        let plan = Plan::new(&f);
        let mem = MemoryPlan::new(&f, &plan);
        // Steps: a, s, b (a, s, b live together), t (reuses a), u (reuses s); m and c are fused
        // (b, an exp, is read twice and is too costly to recompute).
        assert_eq!(mem.arena_bytes, 3 * 64, "{:?}", mem.places);
    }

    #[test]
    fn elementwise_results_are_written_in_place() {
        // b (exp of a*s) reads a only at its own element, and a dies there: b takes a's
        // buffer. c reads b at a shifted position (a slice): no sharing.
        let f = parse_func(
            "func f(x: f32[16]) -> f32[] {\n  a: f32[16] = exp x\n  s: f32[] = reduce_sum[axes=(0)] a\n  m: f32[16] = mul a s\n  b: f32[16] = exp m\n  t: f32[] = reduce_sum[axes=(0)] b\n  r: f32[15] = slice[start=(1), limit=(16)] b\n  c: f32[15] = exp r\n  u: f32[] = reduce_sum[axes=(0)] c\n  k: f32[15] = mul c u\n  v: f32[] = reduce_sum[axes=(0)] k\n  w: f32[] = add v t\n  return w\n}\n",
        )
        .unwrap();
        let plan = Plan::new(&f);
        let mem = MemoryPlan::new(&f, &plan);
        let place = |name: &str| {
            let v = (0..f.num_vars())
                .map(|i| traceform_ir::Var(i as u32))
                .find(|&v| f.var_name(v) == name)
                .unwrap();
            mem.places[v.index()].clone()
        };
        assert_eq!(place("b"), place("a"), "{}", plan.describe(&f));
        assert_ne!(place("c"), place("b"), "{}", plan.describe(&f));
    }

    #[test]
    fn the_free_list_merges_neighbours() {
        let mut fl = FreeList::default();
        let a = fl.take(64);
        let b = fl.take(64);
        let c = fl.take(64);
        fl.give(a, 64);
        fl.give(c, 64);
        fl.give(b, 64);
        assert_eq!(fl.blocks, vec![(0, 192)]);
        assert_eq!(fl.take(128), 0);
    }
}
