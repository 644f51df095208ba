//! A program of 100,000 chained equations parses, verifies, evaluates, prints, exports to
//! Graphviz and is differentiated (`grad`, `hvp`) on a test thread's default stack: no pass may
//! recurse in the depth of the graph. Timings are printed (run with `--nocapture`).
//!
//! The chain acts on each of the four elements of `x` separately, so its value, gradient and
//! Hessian (diagonal) are also computed here by a plain f64 loop that carries each element's
//! value with its first and second derivatives through the same chain (`reference_chain`).
//! The interpreter's results must agree within 1e-10 relative to `max(1, |reference|)`: the two
//! evaluate the same operations in a different order (`tanh' = (1+y)(1-y)` against `1 - y^2`,
//! products associated differently), and the chain settles to a fixed point of its four-step
//! cycle, whose slope is below 1, so rounding does not grow with its length; the agreement
//! measured is about 1e-15.

// Arguments are written `&[x.clone()]` like the other calls, for readability.
#![allow(clippy::cloned_ref_to_slice_refs)]

use std::time::Instant;

use traceform::ir::{eliminate_dead_code, parse_func, print_func, to_dot, verify_func};
use traceform::runtime::eval;
use traceform::transforms::{grad, hvp};
use traceform::Value;

const N: usize = 100_000;

fn chain_program(n: usize) -> String {
    let mut text = String::from("func chain(x: f64[4]) -> f64[] {\n  v0: f64[4] = sin x\n");
    for i in 1..n - 1 {
        let prev = i - 1;
        match i % 4 {
            0 => text.push_str(&format!("  v{i}: f64[4] = sin v{prev}\n")),
            1 => text.push_str(&format!("  v{i}: f64[4] = mul v{prev} 1.01\n")),
            2 => text.push_str(&format!("  v{i}: f64[4] = tanh v{prev}\n")),
            _ => text.push_str(&format!("  v{i}: f64[4] = add v{prev} x\n")),
        }
    }
    text.push_str(&format!(
        "  v{}: f64[] = reduce_sum[axes=(0)] v{}\n",
        n - 1,
        n - 2
    ));
    text.push_str(&format!("  return v{}\n}}\n", n - 1));
    text
}

/// The chain of `chain_program(n)` at one element `x` of the input: its contribution to the
/// output, and that contribution's first and second derivatives in `x`.
fn reference_chain(n: usize, x: f64) -> (f64, f64, f64) {
    // (u, du, ddu): a value of the chain and its derivatives in x.
    let (mut u, mut du, mut ddu) = (x.sin(), x.cos(), -x.sin());
    for i in 1..n - 1 {
        (u, du, ddu) = match i % 4 {
            0 => (u.sin(), u.cos() * du, u.cos() * ddu - u.sin() * du * du),
            1 => (u * 1.01, du * 1.01, ddu * 1.01),
            2 => {
                let y = u.tanh();
                let d = 1.0 - y * y;
                (y, d * du, d * ddu - 2.0 * y * d * du * du)
            }
            _ => (u + x, du + 1.0, ddu),
        };
    }
    (u, du, ddu)
}

const X: [f64; 4] = [0.1, 0.2, 0.3, 0.4];
const DIRECTION: [f64; 4] = [1.0, -0.5, 0.25, 2.0];
const REFERENCE_RTOL: f64 = 1e-10;

#[track_caller]
fn assert_matches_reference(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= REFERENCE_RTOL * w.abs().max(1.0),
            "{what}: interpreter {got:?}, reference loop {want:?}"
        );
    }
}

fn input(values: [f64; 4]) -> Value {
    Value::F64(ndarray::ArrayD::from_shape_vec(vec![4], values.to_vec()).unwrap())
}

#[test]
fn hundred_thousand_equations() {
    let text = chain_program(N);
    let t = Instant::now();
    let f = parse_func(&text).expect("parses");
    verify_func(&f).expect("verifies");
    let parse_verify = t.elapsed();
    eprintln!(
        "parse + verify of {N} equations: {:.1} ms",
        parse_verify.as_secs_f64() * 1e3
    );
    assert_eq!(f.eqns.len(), N);

    let out = eval(&f, &[input(X)]).expect("evaluates");
    let value: f64 = X.iter().map(|&x| reference_chain(N, x).0).sum();
    assert_matches_reference("value", &out[0].to_f64_vec(), &[value]);

    let printed = print_func(&f);
    assert_eq!(printed.lines().count(), N + 3);
    assert_eq!(parse_func(&printed).unwrap(), f);
    assert!(to_dot(&f).len() > printed.len());
    assert_eq!(eliminate_dead_code(f.clone()).eqns.len(), N);
}

#[test]
fn hundred_thousand_equations_differentiate() {
    let f = parse_func(&chain_program(N)).unwrap();
    let t = Instant::now();
    let g = grad(&f, None).expect("grad");
    eprintln!(
        "grad of {N} equations: {:.1} ms, {} equations",
        t.elapsed().as_secs_f64() * 1e3,
        g.eqns.len()
    );
    verify_func(&g).unwrap();
    let reference: Vec<(f64, f64, f64)> = X.iter().map(|&x| reference_chain(N, x)).collect();
    let out = eval(&g, &[input(X)]).expect("evaluates");
    let gradient: Vec<f64> = reference.iter().map(|r| r.1).collect();
    assert_matches_reference("grad", &out[0].to_f64_vec(), &gradient);
    let t = Instant::now();
    let h = hvp(&f, None).expect("hvp");
    eprintln!(
        "hvp of {N} equations: {:.1} ms, {} equations",
        t.elapsed().as_secs_f64() * 1e3,
        h.eqns.len()
    );
    let out = eval(&h, &[input(X), input(DIRECTION)]).expect("evaluates");
    let hv: Vec<f64> = reference
        .iter()
        .zip(DIRECTION)
        .map(|(r, v)| r.2 * v)
        .collect();
    assert_matches_reference("hvp", &out[0].to_f64_vec(), &hv);
}
