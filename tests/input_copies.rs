//! Issue 7: a transformed closure reads its array and view arguments where they are (it used
//! to copy each into an owned `Value` on every call). A counting allocator measures what each
//! call of a reused closure allocates on 4 MB inputs, on the interpreter (its first calls) and
//! on the JIT (once compiled): bookkeeping and the outputs, never a copy of an input. (This
//! file holds one test, so no other test allocates while it counts.)

use ndarray::ArrayD;
use traceform::{grad, jvp, Tensor};

#[path = "common/counting.rs"]
mod counting;
use counting::allocated_by;

const N: usize = 1_000_000;
const INPUT_BYTES: usize = N * 4;

/// Calls a transformed closure this many times: a program of a few elements moves to the JIT
/// after sixteen calls, one of a million after one (`Runnable` in `src/api.rs`), so these
/// calls run on both backends.
const CALLS: usize = 24;

/// `jvp` of a sum returns two scalars, so all a call allocates is bookkeeping or a copy: less
/// than one input on every call, the first (which traces, transforms and simplifies) and the
/// one that compiles included, on arrays and on views alike.
fn jvp_of_a_sum_allocates_no_copy(x: &ArrayD<f32>, t: &ArrayD<f32>) {
    let want = [x.sum(), t.sum()];
    let on_arrays = jvp(|p: &[Tensor]| p[0].sum_all());
    let on_views = jvp(|p: &[Tensor]| p[0].sum_all());
    for call in 0..CALLS {
        let (outs, bytes) =
            allocated_by(|| on_arrays(std::slice::from_ref(x), std::slice::from_ref(t)).unwrap());
        let (view_outs, view_bytes) = allocated_by(|| on_views(&[x.view()], &[t.view()]).unwrap());
        eprintln!("jvp of a sum, call {call}: {bytes} bytes on arrays, {view_bytes} on views");
        for (what, outs, bytes) in [("arrays", outs, bytes), ("views", view_outs, view_bytes)] {
            assert!(
                bytes < INPUT_BYTES,
                "call {call} on {what} allocated {bytes} bytes, inputs of {INPUT_BYTES} bytes"
            );
            for (out, want) in outs.iter().zip(want) {
                let got = out.first().copied().unwrap_or(f32::NAN);
                assert!((got - want).abs() <= 1e-3 * want.abs(), "{got} != {want}");
            }
        }
    }
}

/// `grad` of `sum(sin x)` returns `cos x`, one input's size: a call allocates that output and
/// bookkeeping (under a quarter of an input), not another copy.
fn grad_allocates_its_output_and_no_copy(x: &ArrayD<f32>) {
    let want = x.mapv(f32::cos);
    let g = grad(|p: &[Tensor]| p[0].sin().sum_all());
    for call in 0..CALLS {
        let (outs, bytes) = allocated_by(|| g(&[x.view()]).unwrap());
        eprintln!("grad of sum(sin x), call {call}: {bytes} bytes");
        let beyond_output = bytes.saturating_sub(INPUT_BYTES);
        assert!(
            beyond_output < INPUT_BYTES / 4,
            "call {call} allocated {bytes} bytes: {beyond_output} besides its {INPUT_BYTES}-byte output"
        );
        let worst = outs[0]
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst <= 1e-6, "call {call}: off by {worst}");
    }
}

#[test]
fn reused_closures_read_arrays_and_views_without_copying_them() {
    let x = ArrayD::from_shape_fn(vec![N], |i| (i[0] % 100) as f32 * 0.01);
    let t = ArrayD::from_shape_fn(vec![N], |i| (i[0] % 7) as f32 - 3.0);
    jvp_of_a_sum_allocates_no_copy(&x, &t);
    grad_allocates_its_output_and_no_copy(&x);
}
