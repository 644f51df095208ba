//! Criterion benchmarks of each stage on the workloads: parsing, the transforms (the compile
//! time JAX spends seconds on for the chain's hvp), and the interpreter on the small workloads.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ndarray::ArrayD;
use traceform_benches::{chain_text, workload, workload_text};
use traceform_ir::{eliminate_common_subexpressions, parse_func, write_func};
use traceform_runtime::{eval, Value};
use traceform_transforms::{grad, hvp, jvp, simplify, Limits};

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

/// The simplifier on the workloads' derivative programs (JAX spends 1.5 s compiling the
/// chain's hvp, XLA's simplification included).
fn simplifier(c: &mut Criterion) {
    for name in ["chain", "mlp", "rosenbrock"] {
        let f = workload(name);
        for (what, g) in [
            ("grad", grad(&f, None).unwrap()),
            ("hvp", hvp(&f, None).unwrap()),
        ] {
            let limits = Limits::for_size(g.eqns.len());
            c.bench_function(&format!("simplify {what} {name}"), |b| {
                b.iter(|| simplify(&g, &limits))
            });
        }
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

/// Throughput on a generated chain of 10^5 equations, in input equations per second: what
/// the IR's representation costs at scale.
fn large(c: &mut Criterion) {
    let n = 100_000;
    let text = chain_text(n);
    let f = parse_func(&text).unwrap();
    let mut group = c.benchmark_group("chain 1e5");
    group.sample_size(10);
    group.throughput(Throughput::Elements(n));
    group.bench_function("parse", |b| b.iter(|| parse_func(&text).unwrap()));
    group.bench_function("print", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(text.len());
            write_func(&f, &mut out).unwrap();
            out
        })
    });
    group.bench_function("cse", |b| {
        b.iter(|| eliminate_common_subexpressions(f.clone()))
    });
    group.bench_function("jvp", |b| b.iter(|| jvp(&f, None).unwrap()));
    group.bench_function("grad", |b| b.iter(|| grad(&f, None).unwrap()));
    group.bench_function("hvp", |b| b.iter(|| hvp(&f, None).unwrap()));
    group.finish();
}

criterion_group!(benches, parse, transforms, simplifier, interpret, large);
criterion_main!(benches);
