//! The per-call overhead of the Rust API: a reused `grad(f)` closure on a 3-element f64 input
//! (traced and transformed on its first call, evaluated on the interpreter for its next
//! calls, then compiled and run by the JIT) beside running the same gradient program directly
//! (on the interpreter and compiled), and beside a fresh closure per call (trace, transform
//! and evaluate every time). Run with `cargo bench -p traceform-benches --bench api_overhead`.

use criterion::{criterion_group, criterion_main, Criterion};
use ndarray::{array, ArrayD};
use traceform::{grad, Tensor, Value};
use traceform_ir::{trace, DType, Type};
use traceform_runtime::eval;

/// f(x) = sum(x sin x), the README's function.
fn f(xs: &[Tensor]) -> Tensor {
    (&xs[0] * xs[0].sin()).sum_all()
}

fn tiny_grad(c: &mut Criterion) {
    let x: ArrayD<f64> = array![0.3, -1.2, 2.0].into_dyn();
    let x_value = Value::from(x.clone());
    let program = trace("f", &[Type::new(DType::F64, [3])], f).unwrap();
    // The program a transformed closure runs: the gradient, simplified.
    let g_program = traceform_transforms::grad(&program, None).unwrap();
    let g_program = traceform_transforms::simplify(
        &g_program,
        &traceform_transforms::Limits::for_size(g_program.eqns.len()),
    )
    .0;
    let compiled = traceform::jit::compile(&g_program).unwrap();
    let mut group = c.benchmark_group("tiny grad");
    group.bench_function("eval of the grad program", |b| {
        b.iter(|| eval(&g_program, &[&x_value]).unwrap())
    });
    group.bench_function("run of the compiled grad program", |b| {
        b.iter(|| compiled.run(&[&x_value]).unwrap())
    });
    let g = grad(f);
    group.bench_function("reused grad(f) on ArrayD", |b| {
        b.iter(|| g(std::slice::from_ref(&x)).unwrap())
    });
    let g_views = grad(f);
    group.bench_function("reused grad(f) on ArrayViewD", |b| {
        b.iter(|| g_views(&[x.view()]).unwrap())
    });
    let g_values = grad(f);
    group.bench_function("reused grad(f) on Value", |b| {
        b.iter(|| g_values(std::slice::from_ref(&x_value)).unwrap())
    });
    group.bench_function("fresh grad(f) per call", |b| {
        b.iter(|| grad(f)(std::slice::from_ref(&x)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, tiny_grad);
criterion_main!(benches);
