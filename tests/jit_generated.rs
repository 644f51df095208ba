//! Differential test of the JIT against the interpreter on random well-typed programs
//! (`tests/common/gen.rs`, every primitive of the spec the generator makes, odd shapes, size-0
//! and size-1 axes, f32 and f64, i32 and bool outputs, non-finite literals): each program `f`,
//! `jvp(f)` and `vjp(f)` (and `hvp(f)` for a scalar output), each simplified as `run` does, is
//! compiled and run on random inputs, and must agree with the interpreter element by element.
//!
//! Tolerance: elementwise work computes what the interpreter computes, bit for bit
//! (transcendentals call the same functions); only reductions (several accumulators, another
//! summation order) and `dot_general` (matrixmultiply instead of ndarray's product) round
//! differently. So: equal, or both NaN, or both finite and within `rtol * (1 + M)`, with M the
//! largest finite magnitude of the inputs and outputs, rtol 1e-9 for all-f64 programs and 1e-4
//! when any f32 is involved.

mod common;

use common::gen::{self, max_abs, random_values, show, GenConfig, OpSet, Program, Rng};
use proptest::prelude::*;
use proptest::test_runner::{RngSeed, TestCaseError, TestError, TestRunner};
use traceform::transforms::{hvp, jvp, simplify, vjp, Limits};
use traceform::{eval, parse_func, print_func, Func};

type Check = Result<(), TestCaseError>;

fn agree(what: &str, g: &Func, seed: u64) -> Check {
    let (s, _) = simplify(g, &Limits::for_size(g.eqns.len()));
    let xs = random_values(&s.param_types(), &mut Rng::new(seed), -2.0, 2.0);
    let want = eval(&s, &xs)
        .map_err(|e| TestCaseError::fail(format!("{what}: eval: {e}\n{}", print_func(&s))))?;
    let exe = traceform::jit::compile(&s)
        .map_err(|e| TestCaseError::fail(format!("{what}: compile: {e}\n{}", print_func(&s))))?;
    let got = exe
        .run(&xs)
        .map_err(|e| TestCaseError::fail(format!("{what}: run: {e}\n{}", print_func(&s))))?;
    let rtol = if print_func(&s).contains("f32") {
        1e-4
    } else {
        1e-9
    };
    let m = max_abs(&want).max(max_abs(&xs));
    let scale = if m.is_finite() { 1.0 + m } else { 1.0 };
    prop_assert_eq!(got.len(), want.len());
    for (k, (w, g2)) in want.iter().zip(&got).enumerate() {
        prop_assert_eq!(w.ty(), g2.ty());
        for (i, (a, b)) in w.to_f64_vec().iter().zip(g2.to_f64_vec()).enumerate() {
            let ok = (a.is_nan() && b.is_nan())
                || *a == b
                || (a.is_finite() && b.is_finite() && (a - b).abs() <= rtol * scale);
            prop_assert!(
                ok,
                "{what}: output {k} element {i}: interpreter {a}, jit {b}\n{}\ninputs:\n{}\nplan:\n{}",
                print_func(&s),
                show(&xs),
                exe.describe()
            );
        }
    }
    Ok(())
}

fn prop_jit(p: &Program, seed: u64) -> Check {
    let f = parse_func(&p.text()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    agree("f", &f, seed)?;
    let fail = |e: traceform::transforms::TransformError| TestCaseError::fail(e.to_string());
    agree("jvp", &jvp(&f, None).map_err(fail)?, seed)?;
    if f.output_types().iter().any(|t| t.dtype.is_float()) {
        agree("vjp", &vjp(&f, None).map_err(fail)?, seed)?;
    }
    let os = f.output_types();
    if os.len() == 1 && os[0].shape.is_empty() && os[0].dtype.is_float() {
        agree("hvp", &hvp(&f, None).map_err(fail)?, seed)?;
    }
    Ok(())
}

fn check(cfg: GenConfig, cases: u32, seed: u64) {
    let config = ProptestConfig {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed),
        max_global_rejects: cases * 4,
        ..ProptestConfig::default()
    };
    let mut runner = TestRunner::new(config);
    match runner.run(&gen::programs_with_seed(cfg), |(p, s)| prop_jit(&p, s)) {
        Ok(()) => {}
        Err(TestError::Fail(why, (p, s))) => {
            panic!("jit: {why}\nprogram (input seed {s}):\n{}", p.text())
        }
        Err(e) => panic!("jit: {e}"),
    }
}

#[test]
fn the_jit_agrees_with_the_interpreter_on_random_programs() {
    check(GenConfig::new(OpSet::all()).int_outputs(), 200, 21);
}

#[test]
fn the_jit_agrees_with_the_interpreter_on_random_scalar_programs() {
    check(GenConfig::new(OpSet::finite()).scalar(true), 100, 22);
}
