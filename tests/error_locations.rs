//! Errors in a transform of a transform name the user's place, never the library's: every
//! equation a transform emits carries the location of the equation it came from.
//!
//! Text: for each stacking of two transforms, a transposition that must fail after them
//! names the `file:line:col` of the user's `sin`. Rust: for each stacking of two transforms
//! of a closure, a shape error and a non-linear transposition name the user's Rust line.

// Arguments are written `&[x.clone()]` like the other calls, for readability.
#![allow(clippy::cloned_ref_to_slice_refs)]

use std::process::Command;

use ndarray::ArrayD;
use traceform::{grad, hvp, jvp, linear_transpose, vjp_flat, Tensor};

const PROGRAM: &str = "# sin of x, summed\nfunc f(x: f32[3]) -> f32[] {\n  s: f32[3] = sin x\n  r: f32[] = reduce_sum[axes=(0)] s\n  return r\n}\n";

/// Where `sin` stands in `PROGRAM`.
const SIN_AT: &str = "3:15";

fn dump_error(path: &std::path::Path, transforms: &[&str]) -> String {
    let mut args = vec!["dump".to_string(), path.display().to_string()];
    for t in transforms {
        args.push("-t".into());
        args.push(t.to_string());
    }
    let out = Command::new(env!("CARGO_BIN_EXE_traceform"))
        .args(&args)
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{transforms:?}: {stderr}");
    stderr
}

#[test]
fn text_locations_survive_every_stacking_of_two_transforms() {
    let dir = std::env::temp_dir().join(format!("traceform-locations-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sinx.ir");
    std::fs::write(&path, PROGRAM).unwrap();
    let want = format!("{}:{SIN_AT}: cannot transpose", path.display());
    let firsts = ["jvp", "vjp", "grad", "hvp", "jacfwd", "jacrev", "hessian"];
    let mut stackings: Vec<Vec<&str>> = firsts.iter().map(|a| vec![*a, "transpose"]).collect();
    for a in firsts {
        for b in ["jvp", "vjp", "jacfwd", "jacrev"] {
            stackings.push(vec![a, b, "transpose"]);
        }
    }
    for transforms in &stackings {
        let stderr = dump_error(&path, transforms);
        assert!(
            stderr.starts_with(&format!("error: {want}")),
            "{transforms:?} should name {want}: {stderr}"
        );
        assert!(
            !stderr.contains("transforms/src"),
            "{transforms:?}: {stderr}"
        );
    }
}

type A = ArrayD<f64>;

fn x() -> A {
    ArrayD::from_shape_vec(vec![3], vec![0.3, -1.2, 2.0]).unwrap()
}

/// The line of the closure below that makes a shape error.
const BAD_LINE: u32 = line!() + 4;

fn bad(xs: &[Tensor]) -> Tensor {
    let s = xs[0].sin();
    let oops = s.reshape(&[2, 2]);
    oops.sum_all()
}

#[track_caller]
fn assert_names_bad_line(e: impl std::fmt::Display, what: &str) {
    let e = e.to_string();
    assert!(
        e.contains(&format!("tests/error_locations.rs:{BAD_LINE}:")),
        "{what}: {e}"
    );
}

#[test]
fn rust_locations_survive_every_stacking_of_two_transforms() {
    let (x, t) = (x(), x());
    let inner_grad = |xs: &[Tensor]| grad(bad)(xs).remove(0).sum_all();
    // The last output is the tangent (a failed call returns placeholders for every result).
    let inner_jvp = |xs: &[Tensor]| jvp(bad)(&xs[..1], &xs[..1]).pop().unwrap();
    let inner_hvp = |xs: &[Tensor]| hvp(bad)(&xs[..1], &xs[..1]).remove(0).sum_all();
    let inner_vjp = |xs: &[Tensor]| {
        let ct = xs[0].tracer().literal(1.0, xs[0].dtype());
        vjp_flat(bad)(&xs[..1], &[ct]).pop().unwrap().sum_all()
    };
    assert_names_bad_line(grad(inner_grad)(&[x.clone()]).unwrap_err(), "grad∘grad");
    assert_names_bad_line(grad(inner_jvp)(&[x.clone()]).unwrap_err(), "grad∘jvp");
    assert_names_bad_line(grad(inner_hvp)(&[x.clone()]).unwrap_err(), "grad∘hvp");
    assert_names_bad_line(grad(inner_vjp)(&[x.clone()]).unwrap_err(), "grad∘vjp");
    assert_names_bad_line(
        jvp(inner_grad)(&[x.clone()], &[t.clone()]).unwrap_err(),
        "jvp∘grad",
    );
    assert_names_bad_line(
        jvp(inner_jvp)(&[x.clone()], &[t.clone()]).unwrap_err(),
        "jvp∘jvp",
    );
    assert_names_bad_line(
        hvp(inner_grad)(&[x.clone()], &[t.clone()]).unwrap_err(),
        "hvp∘grad",
    );
    assert_names_bad_line(
        vjp_flat(inner_jvp)(&[x.clone()], &[ndarray::arr0(1.0).into_dyn()]).unwrap_err(),
        "vjp∘jvp",
    );
}

/// The line of the non-linear equation below.
const SIN_LINE: u32 = line!() + 3;

fn not_linear(xs: &[Tensor]) -> Tensor {
    (xs[0].sin() * 2.0).sum_all()
}

#[test]
fn a_transposition_after_two_transforms_names_the_users_line() {
    let (x, t) = (x(), x());
    let want = format!("tests/error_locations.rs:{SIN_LINE}:");
    // jvp(jvp(f)) is not linear in x: transposing it fails at the user's `sin`.
    let inner = |xs: &[Tensor]| jvp(not_linear)(&xs[..1], &xs[1..]);
    let jj = |xs: &[Tensor]| jvp(inner)(&xs[..2], &xs[2..]).remove(3);
    let e = linear_transpose(jj)(
        &[x.clone(), t.clone(), x.clone(), t.clone()],
        &[ndarray::arr0(1.0).into_dyn()],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("cannot transpose") && e.contains(&want), "{e}");
    let gj = |xs: &[Tensor]| jvp(grad(not_linear))(&xs[..1], &xs[1..]).remove(1);
    let e = linear_transpose(gj)(&[x.clone(), t.clone()], &[x.clone()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot transpose") && e.contains(&want), "{e}");
}
