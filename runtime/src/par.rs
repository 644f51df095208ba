//! Two-way parallelism for large steps: the GEMM's halves, the JIT's big fused loops,
//! im2col and pooling.
//!
//! One helper thread (a private rayon pool of one thread, started by the first call that
//! uses it) and the calling thread claim numbered blocks of work until none is left. The
//! caller never waits for the helper to start: on a machine whose other core is busy it
//! computes every block itself, about as fast as one thread would (waiting for a second
//! thread, as `rayon::join` does, was slower than one thread there). The helper sleeps
//! between calls (rayon's workers park after a few rounds of yielding): nothing spins after
//! a call returns.
//!
//! A block's work must not depend on which thread runs it; then results do not depend on
//! the timing. Callers give each block its own output (or its own partial result).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

/// The helper thread's pool; `None` on a machine with one core (or if no thread can be
/// started).
fn helper() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cores > 1)
            .then(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .thread_name(|_| "traceform-helper".into())
                    .build()
                    .ok()
            })
            .flatten()
    })
    .as_ref()
}

/// Whether a second thread can take blocks (false on a one-core machine).
pub fn available() -> bool {
    helper().is_some()
}

/// Blocks shared by the caller and the helper.
struct Claims {
    /// The next block to claim.
    next: AtomicUsize,
    /// Whether the caller has stopped waiting (`closed`), whether the helper is inside its
    /// loop (`busy`), and whether a block panicked on the helper.
    state: Mutex<State>,
    /// Signalled when the helper leaves its loop.
    idle: Condvar,
}

#[derive(Default)]
struct State {
    closed: bool,
    busy: bool,
    panicked: bool,
}

/// Waits, also when unwinding, until the helper is out of its loop and will not enter it:
/// after this no thread runs a block.
struct Close<'a>(&'a Claims, usize);

impl Drop for Close<'_> {
    fn drop(&mut self) {
        self.0.next.fetch_max(self.1, Ordering::Relaxed);
        let mut state = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        state.closed = true;
        while state.busy {
            state = self.0.idle.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Runs `work(0)`, ..., `work(blocks - 1)`, each exactly once, on this thread and the helper;
/// returns when all are done.
///
/// # Panics
/// If a block panics (after every block started has finished).
pub fn blocks(blocks: usize, work: &(dyn Fn(usize) + Sync)) {
    let pool = match helper() {
        Some(pool) if blocks > 1 => pool,
        _ => return (0..blocks).for_each(work),
    };
    // SAFETY: only the lifetime is extended. The helper calls `work` only inside its claim
    // loop, and this function does not return (nor unwind) before `Close` has seen the
    // helper leave that loop or promise never to enter it.
    let theirs_work: &'static (dyn Fn(usize) + Sync) = unsafe { std::mem::transmute(work) };
    let claims = Arc::new(Claims {
        next: AtomicUsize::new(0),
        state: Mutex::new(State::default()),
        idle: Condvar::new(),
    });
    let theirs = Arc::clone(&claims);
    pool.spawn(move || {
        {
            let mut state = theirs.state.lock().unwrap_or_else(|e| e.into_inner());
            if state.closed {
                return;
            }
            state.busy = true;
        }
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| loop {
            let i = theirs.next.fetch_add(1, Ordering::Relaxed);
            if i >= blocks {
                break;
            }
            theirs_work(i);
        }));
        let mut state = theirs.state.lock().unwrap_or_else(|e| e.into_inner());
        state.busy = false;
        state.panicked |= run.is_err();
        theirs.idle.notify_all();
    });
    {
        let _close = Close(&claims, blocks);
        loop {
            let i = claims.next.fetch_add(1, Ordering::Relaxed);
            if i >= blocks {
                break;
            }
            work(i);
        }
    }
    let panicked = claims.state.lock().map_or(true, |s| s.panicked);
    assert!(
        !panicked,
        "a block of parallel work panicked on the helper thread"
    );
}

/// Block `i` of `0..n` cut into `blocks` nearly equal ranges (the first `n % blocks` one
/// longer), in order.
pub fn range(n: usize, blocks: usize, i: usize) -> std::ops::Range<usize> {
    let (size, longer) = (n / blocks, n % blocks);
    let start = i * size + i.min(longer);
    start..start + size + usize::from(i < longer)
}

/// `data` cut before each of `cuts` (ascending offsets into it): the parts for `parts`.
pub fn cut<T>(data: &mut [T], cuts: impl IntoIterator<Item = usize>) -> Vec<&mut [T]> {
    let (mut parts, mut rest, mut at) = (Vec::new(), data, 0);
    for cut in cuts {
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(cut - at);
        parts.push(head);
        (rest, at) = (tail, cut);
    }
    parts.push(rest);
    parts
}

/// Runs `work(i, parts[i])` for every part, as `blocks` does: each block owns its part (of
/// one output, cut with `split_at_mut`), so blocks cannot write the same element.
pub fn parts<T: Send>(parts: Vec<&mut [T]>, work: &(dyn Fn(usize, &mut [T]) + Sync)) {
    // A block takes its part out of its own lock, which no other block touches.
    let parts: Vec<Mutex<&mut [T]>> = parts.into_iter().map(Mutex::new).collect();
    blocks(parts.len(), &|i| {
        let mut part = parts[i].lock().unwrap_or_else(|e| e.into_inner());
        work(i, &mut part);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_block_runs_once() {
        for n in [0, 1, 2, 3, 17] {
            let counts: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
            blocks(n, &|i| {
                counts[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 1), "{n}");
        }
    }

    #[test]
    fn threads_sharing_the_helper_each_finish_their_own_blocks() {
        std::thread::scope(|scope| {
            for t in 0..4 {
                scope.spawn(move || {
                    for _ in 0..50 {
                        let sums: Vec<AtomicUsize> = (0..3).map(|_| AtomicUsize::new(0)).collect();
                        blocks(3, &|i| {
                            sums[i].fetch_add(t + i, Ordering::Relaxed);
                        });
                        for (i, s) in sums.iter().enumerate() {
                            assert_eq!(s.load(Ordering::Relaxed), t + i);
                        }
                    }
                });
            }
        });
    }

    #[test]
    fn ranges_cover_in_order_without_overlap() {
        for n in [0, 1, 5, 16, 17] {
            for blocks in 1..6 {
                let all: Vec<usize> = (0..blocks).flat_map(|i| range(n, blocks, i)).collect();
                assert_eq!(all, (0..n).collect::<Vec<_>>(), "{n} in {blocks}");
            }
        }
    }

    #[test]
    fn each_part_is_handed_to_its_block() {
        let mut data = vec![0usize; 10];
        parts(cut(&mut data, [3, 3, 7]), &|i, part| part.fill(i + 1));
        assert_eq!(data, [1, 1, 1, 3, 3, 3, 3, 4, 4, 4]);
    }
}
