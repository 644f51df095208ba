//! Two-way parallelism for large steps: the GEMM's halves, the JIT's big fused loops,
//! im2col and pooling.
//!
//! One helper thread (started by the first call that needs it) and the calling thread claim
//! numbered blocks of work until none is left. The caller never waits for the helper to
//! start: on a machine whose other core is busy it computes every block itself, about as
//! fast as one thread would (waiting for a second thread, as `rayon::join` does, was slower
//! than one thread there).
//!
//! After a call the helper spins for `SPIN` looking for the next one, then sleeps on a
//! condition variable. Waking a sleeping thread took longer than a 90 µs block on these
//! virtual machines (Rosenbrock's loop cut in two ran no faster than in one), so back-to-back
//! steps and calls need the spin; after it nothing runs between calls.
//!
//! One call at a time is posted to the helper: a call made while another thread's call holds
//! it runs all its blocks on its own thread. A block's work must not depend on which thread
//! runs it; then results do not depend on the timing. Callers give each block its own output
//! (or its own partial result).

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long the helper looks for the next call before it sleeps.
const SPIN: Duration = Duration::from_micros(200);

/// One call's blocks, on the caller's stack while the call lasts.
struct Task<'a> {
    blocks: usize,
    work: &'a (dyn Fn(usize) + Sync),
    /// The next block to claim.
    next: AtomicUsize,
    /// `TAKEN` once the helper has taken the task, `DONE` once it has left it for good.
    helper: AtomicU8,
    panicked: AtomicBool,
}

const TAKEN: u8 = 1;
const DONE: u8 = 2;

/// What the caller and the helper share.
struct Helper {
    /// The posted task (null: none). Whoever swaps it out owns the right to run it: the
    /// helper, or the caller taking it back.
    task: AtomicPtr<Task<'static>>,
    sleeping: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

/// The helper; `None` on a machine with one core (or if no thread can be started).
fn helper() -> Option<&'static Helper> {
    static HELPER: OnceLock<Option<&'static Helper>> = OnceLock::new();
    *HELPER.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if cores < 2 {
            return None;
        }
        let h: &'static Helper = Box::leak(Box::new(Helper {
            task: AtomicPtr::new(std::ptr::null_mut()),
            sleeping: AtomicBool::new(false),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("traceform-helper".into())
            .spawn(move || serve(h))
            .ok()
            .map(|_| h)
    })
}

/// The helper's loop: take a posted task, run blocks, spin, sleep.
fn serve(h: &'static Helper) {
    loop {
        let mut idle_since = Instant::now();
        let task = loop {
            let p = h.task.swap(std::ptr::null_mut(), Ordering::AcqRel);
            if !p.is_null() {
                break p;
            }
            if idle_since.elapsed() < SPIN {
                std::hint::spin_loop();
                continue;
            }
            let guard = h.lock.lock().unwrap_or_else(|e| e.into_inner());
            h.sleeping.store(true, Ordering::SeqCst);
            if h.task.load(Ordering::SeqCst).is_null() {
                drop(h.wake.wait(guard).unwrap_or_else(|e| e.into_inner()));
            }
            h.sleeping.store(false, Ordering::SeqCst);
            idle_since = Instant::now();
        };
        // SAFETY: the caller keeps the task alive until it sees `DONE` (`blocks`).
        let task = unsafe { &*task };
        task.helper.store(TAKEN, Ordering::Release);
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| claim(task)));
        if run.is_err() {
            task.panicked.store(true, Ordering::Relaxed);
        }
        // The last touch of the task.
        task.helper.store(DONE, Ordering::Release);
    }
}

/// Runs blocks of `task` until none is left.
fn claim(task: &Task<'_>) {
    loop {
        let i = task.next.fetch_add(1, Ordering::Relaxed);
        if i >= task.blocks {
            break;
        }
        (task.work)(i);
    }
}

/// Whether a second thread can take blocks (false on a one-core machine).
pub fn available() -> bool {
    helper().is_some()
}

/// Takes the task back from the helper, or waits until the helper has left it; also when
/// unwinding. After this no other thread touches the task.
struct Close<'a, 't>(&'a Helper, &'a Task<'t>);

impl Drop for Close<'_, '_> {
    fn drop(&mut self) {
        let (h, task) = (self.0, self.1);
        // No block is claimed from here on.
        task.next.fetch_max(task.blocks, Ordering::Relaxed);
        let mine = task as *const Task<'_> as *mut Task<'static>;
        if h.task
            .compare_exchange(
                mine,
                std::ptr::null_mut(),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            return;
        }
        // The helper has taken it: it is finishing a block at most (yielding after a while,
        // in case it shares this core).
        let mut spins = 0u32;
        while task.helper.load(Ordering::Acquire) != DONE {
            spins += 1;
            if spins < 1 << 12 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// Runs `work(0)`, ..., `work(blocks - 1)`, each exactly once, on this thread and the helper;
/// returns when all are done.
///
/// # Panics
/// If a block panics (after every block started has finished).
pub fn blocks(blocks: usize, work: &(dyn Fn(usize) + Sync)) {
    let h = match helper() {
        Some(h) if blocks > 1 => h,
        _ => return (0..blocks).for_each(work),
    };
    let task = Task {
        blocks,
        work,
        next: AtomicUsize::new(0),
        helper: AtomicU8::new(0),
        panicked: AtomicBool::new(false),
    };
    let mine = &task as *const Task<'_> as *mut Task<'static>;
    // Posted only if no other call holds the helper.
    let posted = h
        .task
        .compare_exchange(
            std::ptr::null_mut(),
            mine,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_ok();
    if !posted {
        return (0..blocks).for_each(work);
    }
    if h.sleeping.load(Ordering::SeqCst) {
        let _guard = h.lock.lock().unwrap_or_else(|e| e.into_inner());
        h.wake.notify_one();
    }
    {
        let _close = Close(h, &task);
        claim(&task);
    }
    assert!(
        !task.panicked.load(Ordering::Relaxed),
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
