//! Criterion benchmarks of the workloads as `bench` runs them: each of `rosenbrock`, `mlp` and
//! `chain`, for eval, grad, jvp and hvp with respect to the inputs `meta.json` lists, through
//! the whole pipeline (transform, simplify, JIT compile: "compile") and then the compiled
//! program alone ("run"), on inputs of 0.5 (the timing does not depend on the values). The
//! side-by-side figures against jax.jit come from `shared/workloads/jax_compare.py`
//! (`docs/benchmarks.md`); these are for tracking our own changes.

use criterion::{criterion_group, criterion_main, Criterion};
use traceform::jit::compile;
use traceform_benches::workload;
use traceform_ir::Func;
use traceform_runtime::Value;
use traceform_transforms::{grad, hvp, jvp, simplify, Limits};

/// The `wrt` list of a workload's `meta.json`.
fn wrt(name: &str) -> Vec<usize> {
    match name {
        "mlp" => vec![0, 1, 2, 3],
        _ => vec![0],
    }
}

fn program(f: &Func, transform: &str, wrt: &[usize]) -> Func {
    let g = match transform {
        "eval" => f.clone(),
        "grad" => grad(f, Some(wrt)).unwrap(),
        "jvp" => jvp(f, Some(wrt)).unwrap(),
        _ => hvp(f, Some(wrt)).unwrap(),
    };
    simplify(&g, &Limits::for_size(g.eqns.len())).0
}

fn workloads(c: &mut Criterion) {
    for name in ["rosenbrock", "mlp", "chain"] {
        let f = workload(name);
        let w = wrt(name);
        for transform in ["eval", "grad", "jvp", "hvp"] {
            c.bench_function(&format!("{name} {transform} compile"), |b| {
                b.iter(|| compile(&program(&f, transform, &w)).unwrap())
            });
            let p = program(&f, transform, &w);
            let exe = compile(&p).unwrap();
            let inputs: Vec<Value> = p
                .param_types()
                .iter()
                .map(|t| Value::full(t, 0.5))
                .collect();
            c.bench_function(&format!("{name} {transform} run"), |b| {
                b.iter(|| exe.run(&inputs).unwrap())
            });
        }
    }
}

criterion_group!(benches, workloads);
criterion_main!(benches);
