//! A program of 100,000 chained equations parses, verifies, evaluates, prints, exports to
//! Graphviz and is differentiated (`grad`, `hvp`) on a test thread's default stack: no pass may
//! recurse in the depth of the graph. Timings are printed (run with `--nocapture`).

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

    let x = Value::F64(ndarray::ArrayD::from_shape_vec(vec![4], vec![0.1, 0.2, 0.3, 0.4]).unwrap());
    let out = eval(&f, &[x]).expect("evaluates");
    assert!(out[0].to_f64_vec()[0].is_finite());

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
    let x = Value::F64(ndarray::ArrayD::from_shape_vec(vec![4], vec![0.1, 0.2, 0.3, 0.4]).unwrap());
    let out = eval(&g, &[x.clone()]).expect("evaluates");
    assert!(out[0].to_f64_vec().iter().all(|v| v.is_finite()));
    let t = Instant::now();
    let h = hvp(&f, None).expect("hvp");
    eprintln!(
        "hvp of {N} equations: {:.1} ms, {} equations",
        t.elapsed().as_secs_f64() * 1e3,
        h.eqns.len()
    );
    let out = eval(&h, &[x.clone(), x]).expect("evaluates");
    assert!(out[0].to_f64_vec().iter().all(|v| v.is_finite()));
}
