//! Memory planning: every materialised intermediate (a step's result that is neither a
//! parameter nor an output) gets a live interval over the plan's steps, from the step that
//! makes it to the last step that reads it, and a place in one arena. Places are given in step
//! order by a first-fit free list (freed blocks are merged with their neighbours), so a value
//! reuses the memory of values that died before it was made; with at most 2048 blocks, greedy
//! placements (largest first, largest size x lifetime first, longest-lived first, and largest
//! first with sizes shaken by a fixed pseudo-random sequence; each block at the lowest offset
//! clear of the placed blocks it is live with) are tried too, and the smallest arena wins. An elementwise loop writes its
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

/// Values that share one block (a result written in place of an operand joins its group),
/// live from the step that makes the first to the step where the last dies (inclusive).
struct Group {
    size: usize,
    first: usize,
    last: usize,
}

/// Above this many blocks only first-fit runs (a greedy placement is quadratic in them).
const GREEDY_LIMIT: usize = 2048;

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
        // Every materialised intermediate joins a group: its own, or (in place) the group of
        // a same-sized operand that dies at the step making it.
        let mut group_of = vec![None::<usize>; func.num_vars()];
        let mut groups: Vec<Group> = Vec::new();
        for (s, step) in plan.steps.iter().enumerate() {
            let mut dying = match &step.kind {
                StepKind::Kernel(k) => k.read_in_place(),
                _ => Vec::new(),
            };
            dying.retain(|d| group_of[d.index()].is_some() && last_read[d.index()] == Some(s));
            for out in std::iter::once(step.out).chain(step.also.iter().copied()) {
                if places[out.index()] != Place::None || group_of[out.index()].is_some() {
                    continue;
                }
                let bytes = func.var_type(out).size_bytes();
                let death = last_read[out.index()].unwrap_or(s).max(s);
                let fits = |d: &Var| func.var_type(*d).size_bytes() == bytes;
                let g = match dying.iter().position(fits) {
                    Some(k) => group_of[dying.remove(k).index()].expect("retained"),
                    None => {
                        groups.push(Group {
                            size: round_up(bytes),
                            first: s,
                            last: s,
                        });
                        groups.len() - 1
                    }
                };
                groups[g].last = groups[g].last.max(death);
                group_of[out.index()] = Some(g);
            }
        }
        let first_fit = first_fit(&groups, plan.steps.len());
        let mut offsets = first_fit;
        if groups.len() <= GREEDY_LIMIT {
            let shaken = (1..=shaken_tries(groups.len())).map(Order::Shaken);
            for order in Order::FIXED.into_iter().chain(shaken) {
                let greedy = greedy(&groups, order);
                if arena_end(&groups, &greedy) < arena_end(&groups, &offsets) {
                    offsets = greedy;
                }
            }
        }
        for (v, g) in group_of.iter().enumerate() {
            if let Some(g) = g {
                places[v] = Place::Arena(offsets[*g]);
            }
        }
        MemoryPlan {
            places,
            arena_bytes: arena_end(&groups, &offsets),
        }
    }
}

fn arena_end(groups: &[Group], offsets: &[usize]) -> usize {
    groups
        .iter()
        .zip(offsets)
        .map(|(g, &at)| at + g.size)
        .max()
        .unwrap_or(0)
}

/// Blocks placed in step order by a first-fit free list, freed after their last step.
fn first_fit(groups: &[Group], steps: usize) -> Vec<usize> {
    let mut starts: Vec<Vec<usize>> = vec![Vec::new(); steps];
    let mut ends: Vec<Vec<usize>> = vec![Vec::new(); steps];
    for (i, g) in groups.iter().enumerate() {
        starts[g.first].push(i);
        ends[g.last].push(i);
    }
    let mut offsets = vec![0; groups.len()];
    let mut free = FreeList::default();
    for s in 0..steps {
        for &i in &starts[s] {
            offsets[i] = free.take(groups[i].size);
        }
        for &i in &ends[s] {
            free.give(offsets[i], groups[i].size);
        }
    }
    offsets
}

/// The orders blocks are placed in by `greedy`.
#[derive(Clone, Copy, Debug)]
enum Order {
    /// Largest first (Pisarchyk and Lee, 2020).
    Size,
    /// Largest size times lifetime first.
    Area,
    /// Longest-lived first (they go to the bottom, out of the way of short-lived blocks).
    Lifetime,
    /// Largest first, each size scaled by a pseudo-random factor in [1/2, 3/2) drawn from
    /// this seed (a fixed sequence: placements stay deterministic).
    Shaken(u64),
}

impl Order {
    const FIXED: [Order; 3] = [Order::Size, Order::Area, Order::Lifetime];
}

/// Shaken orders tried after the fixed ones, fewer for many blocks (each try is quadratic).
fn shaken_tries(blocks: usize) -> u64 {
    (1_000_000 / blocks.max(1).pow(2)).min(32) as u64
}

/// Greedy placement: blocks in `order`, each at the lowest offset where it overlaps no block
/// already placed whose steps overlap its own. Avoids the holes first-fit leaves when a small
/// long-lived block lands between large short-lived ones.
fn greedy(groups: &[Group], order: Order) -> Vec<usize> {
    let mut ranked: Vec<usize> = (0..groups.len()).collect();
    let life = |g: &Group| g.last - g.first + 1;
    ranked.sort_by_key(|&i| {
        let g = &groups[i];
        let key = match order {
            Order::Size => (g.size, 0),
            Order::Area => (g.size.saturating_mul(life(g)), g.size),
            Order::Lifetime => (life(g), g.size),
            Order::Shaken(seed) => {
                // splitmix64 of (seed, block): a factor in [512, 1536) / 1024.
                let mut z = seed
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    .wrapping_add(i as u64)
                    .wrapping_add(0x9E37_79B9_7F4A_7C15);
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^= z >> 31;
                let factor = 512 + (z % 1024) as usize;
                (g.size.saturating_mul(factor), g.size)
            }
        };
        (std::cmp::Reverse(key), g.first, i)
    });
    let order = ranked;
    let mut offsets = vec![0; groups.len()];
    let mut placed: Vec<usize> = Vec::with_capacity(groups.len());
    for &i in &order {
        let g = &groups[i];
        let mut taken: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&j| groups[j].first <= g.last && g.first <= groups[j].last)
            .map(|&j| (offsets[j], offsets[j] + groups[j].size))
            .collect();
        taken.sort_unstable();
        let mut at = 0;
        for (lo, hi) in taken {
            if lo >= at + g.size {
                break;
            }
            at = at.max(hi);
        }
        offsets[i] = at;
        placed.push(i);
    }
    offsets
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
    fn greedy_placement_avoids_the_hole_first_fit_leaves() {
        // a dies; the small long-lived b sits right after it, so first-fit has only a hole of
        // 1 for d (size 2) once c takes a's start. Largest first puts d where a was.
        let g = |size, first, last| Group { size, first, last };
        let groups = [g(2, 0, 1), g(1, 1, 4), g(1, 2, 4), g(2, 3, 4)];
        assert_eq!(arena_end(&groups, &first_fit(&groups, 5)), 5);
        assert_eq!(arena_end(&groups, &greedy(&groups, Order::Size)), 4);
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
