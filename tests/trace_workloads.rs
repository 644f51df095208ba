//! Tracing a Rust closure builds the same IR as the text of the workloads in
//! `shared/workloads` (copied to `tests/data/workloads`), equation for equation, and shape
//! errors while tracing are `Err`s that carry the caller's source location.

mod common;

use traceform::ir::{parse_func, print_func, trace, DType, Func, Tensor, Type};

fn workload(name: &str) -> Func {
    let p = common::data_dir().join("workloads").join(name).join("f.ir");
    parse_func(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[track_caller]
fn assert_same(traced: &Func, text: &Func) {
    assert_eq!(print_func(traced), print_func(text));
    assert_eq!(traced, text);
}

fn f32s(shape: &[usize]) -> Type {
    Type::new(DType::F32, shape)
}

#[test]
fn rosenbrock_traces_to_the_workload_ir() {
    const N: usize = 1_000_000;
    let traced = trace("rosenbrock", &[f32s(&[N])], |xs| {
        let x = &xs[0];
        let head = x.slice(&[1], &[N]);
        let tail = x.slice(&[0], &[N - 1]);
        let a = 100.0 * (head - tail.powi(2)).powi(2);
        let b = (1.0 - x.slice(&[0], &[N - 1])).powi(2);
        (a + b).sum(&[0])
    })
    .unwrap();
    assert_same(&traced, &workload("rosenbrock"));
}

/// `log_softmax` as jax.nn writes it: shift by the stopped max, subtract the log-sum-exp.
fn log_softmax(z: &Tensor) -> Tensor {
    let batch = z.shape()[0];
    let m = z.reduce_max(&[1]);
    let m = z.lit(f64::NEG_INFINITY).max(&m);
    let m = m.broadcast_in_dim(&[batch, 1], &[0]).stop_gradient();
    let shifted = z - m;
    let lse = shifted
        .exp()
        .sum(&[1])
        .broadcast_in_dim(&[batch, 1], &[0])
        .log();
    shifted - lse
}

#[test]
fn mlp_traces_to_the_workload_ir() {
    let types = [
        f32s(&[784, 256]),
        f32s(&[256]),
        f32s(&[256, 10]),
        f32s(&[10]),
        f32s(&[128, 784]),
        f32s(&[128, 10]),
    ];
    let traced = trace("mlp", &types, |p| {
        let (w1, b1, w2, b2, x, y) = (&p[0], &p[1], &p[2], &p[3], &p[4], &p[5]);
        let h = (x.matmul(w1) + b1).tanh();
        let z = h.matmul(w2) + b2;
        let per_example = (y * log_softmax(&z)).sum(&[1]);
        -(per_example.sum(&[0]) / 128.0)
    })
    .unwrap();
    assert_same(&traced, &workload("mlp"));
}

#[test]
fn chain_traces_to_the_workload_ir() {
    let traced = trace("chain", &[f32s(&[16])], |xs| {
        let mut y = xs[0].clone();
        for _ in 0..50 {
            y = y.sin() * 1.01 + y.tanh() * 0.5 - &y * &y * 0.01;
        }
        y.sum(&[0])
    })
    .unwrap();
    assert_same(&traced, &workload("chain"));
}

#[test]
fn trace_errors_name_the_primitive_shapes_and_callers_line() {
    // Each closure records the line of its failing call, so the test survives reformatting.
    let line = std::cell::Cell::new(0);
    let err = trace("bad", &[f32s(&[3, 4]), f32s(&[5])], |xs| {
        let ok = xs[0].tanh();
        line.set(line!() + 1);
        let bad = ok.matmul(&xs[1]);
        bad.sum_all()
    })
    .unwrap_err();
    assert_eq!(err.location.file(), file!());
    assert_eq!(err.location.line(), line.get());
    let text = err.to_string();
    assert!(text.contains("`dot_general`"), "{text}");
    assert!(
        text.contains("f32[3,4]") && text.contains("f32[5]"),
        "{text}"
    );
    assert!(
        text.starts_with(&format!("{}:{}:", file!(), line.get())),
        "{text}"
    );

    let err = trace("bad", &[f32s(&[3])], |xs| {
        line.set(line!() + 1);
        xs[0].sum(&[1])
    })
    .unwrap_err();
    assert_eq!(err.location.line(), line.get());
    assert!(
        err.message.contains("axis 1 out of range for rank 1"),
        "{err}"
    );

    let err = trace("bad", &[f32s(&[3]), f32s(&[4])], |xs| {
        line.set(line!() + 1);
        &xs[0] + &xs[1]
    })
    .unwrap_err();
    assert_eq!(err.location.line(), line.get());
    assert!(
        err.message.contains("cannot broadcast shapes [3] and [4]"),
        "{err}"
    );
}
