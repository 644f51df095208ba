//! Criterion benchmarks of each stage on the workloads: parsing, the transforms (the compile
//! time JAX spends seconds on for the chain's hvp), and the interpreter on the small workloads.

use criterion::{criterion_group, criterion_main, Criterion};
use ndarray::ArrayD;
use traceform_benches::{workload, workload_text};
use traceform_ir::parse_func;
use traceform_runtime::{eval, Value};
use traceform_transforms::{grad, hvp, jvp};

fn parse(c: &mut Criterion) {
    let text = workload_text("chain");
    c.bench_function("parse chain (401 eqns)", |b| {
        b.iter(|| parse_func(&text).unwrap())
    });
}

fn transforms(c: &mut Criterion) {
    for name in ["chain", "mlp", "rosenbrock"] {
        let f = workload(name);
        c.bench_function(&format!("jvp {name}"), |b| {
            b.iter(|| jvp(&f, None).unwrap())
        });
        c.bench_function(&format!("grad {name}"), |b| {
            b.iter(|| grad(&f, None).unwrap())
        });
        c.bench_function(&format!("hvp {name}"), |b| {
            b.iter(|| hvp(&f, None).unwrap())
        });
    }
}

fn interpret(c: &mut Criterion) {
    let f = workload("chain");
    let x = Value::F32(ArrayD::from_elem(vec![16], 0.5f32));
    let g = grad(&f, None).unwrap();
    let h = hvp(&f, None).unwrap();
    c.bench_function("interp eval chain", |b| {
        b.iter(|| eval(&f, std::slice::from_ref(&x)).unwrap())
    });
    c.bench_function("interp grad chain", |b| {
        b.iter(|| eval(&g, std::slice::from_ref(&x)).unwrap())
    });
    c.bench_function("interp hvp chain", |b| {
        b.iter(|| eval(&h, &[x.clone(), x.clone()]).unwrap())
    });
}

criterion_group!(benches, parse, transforms, interpret);
criterion_main!(benches);
