//! The Rust API beyond the transforms themselves: regression tests of reported bugs (stale
//! tensors, transforms whose arguments belong to different traces, empty `wrt`), and the
//! additions a JAX user expects. Values are checked against closed forms (f64: 1e-12
//! relative).

// Arguments are written `&[x.clone()]` like the other calls, for readability.
#![allow(clippy::cloned_ref_to_slice_refs)]

use std::cell::RefCell;

use ndarray::ArrayD;
use traceform::{grad, grad_wrt, hvp, jvp, trace, DType, Tensor, Type};

type A = ArrayD<f64>;

fn v(xs: &[f64]) -> A {
    ArrayD::from_shape_vec(vec![xs.len()], xs.to_vec()).unwrap()
}

#[track_caller]
fn close(got: &A, want: &A) {
    assert_eq!(got.shape(), want.shape(), "shapes");
    for (a, b) in got.iter().zip(want) {
        assert!(
            (a - b).abs() <= 1e-12 * (1.0 + b.abs()),
            "got {got}, want {want}"
        );
    }
}

fn x0() -> A {
    v(&[0.3, -1.2, 2.0])
}

/// f(x) = sum(x sin x), whose Hessian is diag(2 cos x - x sin x).
fn f(xs: &[Tensor]) -> Tensor {
    (&xs[0] * xs[0].sin()).sum_all()
}

/// A tensor of a trace that has finished: what a closure keeps when it stores a `Tensor`.
fn stale_tensor() -> Tensor {
    let kept = RefCell::new(None);
    trace("earlier", &[Type::new(DType::F64, [3])], |xs| {
        *kept.borrow_mut() = Some(xs[0].clone());
        xs[0].sin()
    })
    .unwrap();
    kept.into_inner().unwrap()
}

const STALE: &str = "a tensor of a trace that has already finished was used";

#[test]
fn bug_1_a_stale_tensor_added_to_a_gradient_is_an_error() {
    let stale = stale_tensor();
    let e = grad(|xs: &[Tensor]| xs[0].powi(2).sum_all() + stale.sum_all())(&[x0()])
        .unwrap_err()
        .to_string();
    assert!(e.contains(STALE), "{e}");
}

#[test]
fn bug_1_a_stale_tensor_returned_from_jvp_is_an_error() {
    let stale = stale_tensor();
    let e = jvp(|_: &[Tensor]| stale.sin())(&[x0()], &[x0()])
        .unwrap_err()
        .to_string();
    assert!(e.contains(STALE), "{e}");
}

#[test]
fn bug_1_a_tensor_of_a_trace_that_failed_early_is_stale_too() {
    // A trace that returned nothing ends with an error; its tensors are stale all the same.
    let kept = RefCell::new(None);
    let failed = trace("empty", &[Type::new(DType::F64, [3])], |xs| {
        *kept.borrow_mut() = Some(xs[0].clone());
        Vec::new()
    });
    assert!(failed.is_err());
    let stale = kept.into_inner().unwrap();
    let e = grad(|xs: &[Tensor]| (&xs[0] * &stale).sum_all())(&[x0()])
        .unwrap_err()
        .to_string();
    assert!(e.contains(STALE), "{e}");
}

#[test]
fn bug_2_a_transform_whose_first_argument_is_of_an_outer_trace() {
    // hvp's point xo belongs to the outer trace, its vector to the inner one: the call goes in
    // the innermost trace, as in JAX. Inner: grad_v sum(H(xo) v) = diag H(xo); outer: the
    // gradient of sum(2 cos x - x sin x) is -3 sin x - x cos x.
    let outer = |xs: &[Tensor]| {
        let xo = xs[0].clone();
        let inner = grad(move |vs: &[Tensor]| hvp(f)(&[xo.clone()], &[vs[0].clone()])[0].sum_all());
        inner(&[xs[0].clone()])[0].sum_all()
    };
    let x = x0();
    let g = grad(outer)(&[x.clone()]).unwrap();
    close(&g[0], &x.mapv(|x| -3.0 * x.sin() - x * x.cos()));
}

#[test]
fn bug_2_the_later_argument_may_be_the_outer_one_too() {
    let outer = |xs: &[Tensor]| {
        let xo = xs[0].clone();
        let inner = grad(move |vs: &[Tensor]| hvp(f)(&[vs[0].clone()], &[xo.clone()])[0].sum_all());
        inner(&[xs[0].clone()])[0].sum_all()
    };
    // d/dx sum_v(H(v) x) at v = x: grad_v sum(h(v) x) = h'(v) x, then summed and
    // differentiated in x: d/dx sum(h'(x) x) = h''(x) x + h'(x).
    let x = x0();
    let g = grad(outer)(&[x.clone()]).unwrap();
    let h1 = |x: f64| -3.0 * x.sin() - x * x.cos();
    let h2 = |x: f64| -4.0 * x.cos() + x * x.sin();
    close(&g[0], &x.mapv(|x| h2(x) * x + h1(x)));
}

#[test]
fn bug_11_an_empty_wrt_says_so() {
    let e = grad_wrt(&[], f)(&[x0()]).unwrap_err().to_string();
    assert!(e.contains("no input positions given"), "{e}");
    assert!(!e.contains("no float input"), "{e}");
}

#[test]
fn bug_1_a_stale_tensor_passed_to_a_nested_transform_is_an_error() {
    let stale = stale_tensor();
    let outer = |xs: &[Tensor]| jvp(f)(&[stale.clone()], &[xs[0].clone()])[0].clone();
    let e = grad(outer)(&[x0()]).unwrap_err().to_string();
    assert!(e.contains(STALE), "{e}");
    assert!(e.contains("tests/api_features.rs"), "{e}");
}
