//! The Rust API: transforms of ordinary closures, their composition to any depth, and their
//! errors. Values are checked against closed forms in f64 (tolerance 1e-12 relative).

// Arguments are written `&[x.clone()]` like the other calls, for readability.
#![allow(clippy::cloned_ref_to_slice_refs)]

use ndarray::{arr0, array, ArrayD};
use traceform::{
    grad, grad_wrt, hessian, hvp, jacfwd, jacrev, jvp, jvp_wrt, linear_transpose, linearize,
    value_and_grad, vjp, vjp_flat, Tensor,
};

type A = ArrayD<f64>;

fn v(xs: &[f64]) -> A {
    ArrayD::from_shape_vec(vec![xs.len()], xs.to_vec()).unwrap()
}

/// f(x) = sum(x sin x); grad = sin x + x cos x; H = diag(2 cos x - x sin x).
fn f(xs: &[Tensor]) -> Tensor {
    (&xs[0] * xs[0].sin()).sum_all()
}

fn grad_f(x: &A) -> A {
    x.mapv(|x| x.sin() + x * x.cos())
}

fn hess_diag(x: &A) -> A {
    x.mapv(|x| 2.0 * x.cos() - x * x.sin())
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

fn dot(a: &A, b: &A) -> f64 {
    (a * b).sum()
}

fn x0() -> A {
    v(&[0.3, -1.2, 2.0])
}

#[test]
fn jvp_of_a_closure() {
    let (x, t) = (x0(), v(&[1.0, 0.5, -2.0]));
    let out = jvp(f)(&[x.clone()], &[t.clone()]).unwrap();
    close(&out[1], &arr0(dot(&grad_f(&x), &t)).into_dyn());
}

#[test]
fn jvp_of_jvp() {
    let (x, t, u, w) = (
        x0(),
        v(&[1.0, 0.5, -2.0]),
        v(&[0.2, 0.1, 0.7]),
        v(&[-1.0, 0.3, 0.4]),
    );
    let jf = |xs: &[Tensor]| jvp(f)(&xs[..1], &xs[1..]);
    let out = jvp(jf)(&[x.clone(), t.clone()], &[u.clone(), w.clone()]).unwrap();
    assert_eq!(out.len(), 4);
    let second = (&t * &hess_diag(&x) * &u).sum() + dot(&grad_f(&x), &w);
    close(&out[2], &arr0(dot(&grad_f(&x), &u)).into_dyn());
    close(&out[3], &arr0(second).into_dyn());
}

#[test]
fn jvp_of_grad_is_forward_over_reverse_hvp() {
    let (x, t) = (x0(), v(&[1.0, 0.5, -2.0]));
    let out = jvp(grad(f))(&[x.clone()], &[t.clone()]).unwrap();
    close(&out[0], &grad_f(&x));
    close(&out[1], &(hess_diag(&x) * &t));
    // hvp is built as jvp(grad), so it is checked against the closed form, not against `out`.
    let hv = hvp(f)(&[x.clone()], &[t.clone()]).unwrap();
    close(&hv[0], &(hess_diag(&x) * &t));
}

#[test]
fn vjp_of_jvp() {
    let (x, t) = (x0(), v(&[1.0, 0.5, -2.0]));
    let jf = |xs: &[Tensor]| jvp(f)(&xs[..1], &xs[1..]);
    let (outs, pullback) = vjp(jf)(&[x.clone(), t.clone()]).unwrap();
    close(&outs[1], &arr0(dot(&grad_f(&x), &t)).into_dyn());
    let (c1, c2) = (0.7, -1.3);
    let cts = pullback
        .call(&[arr0(c1).into_dyn(), arr0(c2).into_dyn()])
        .unwrap();
    close(&cts[0], &(grad_f(&x) * c1 + hess_diag(&x) * &t * c2));
    close(&cts[1], &(grad_f(&x) * c2));
    // The same through the flat form, traced.
    let flat = vjp_flat(jf)(
        &[x.clone(), t.clone()],
        &[arr0(c1).into_dyn(), arr0(c2).into_dyn()],
    )
    .unwrap();
    close(&flat[2], &cts[0]);
    close(&flat[3], &cts[1]);
}

#[test]
fn grad_inside_grad_has_no_perturbation_confusion() {
    // d/dx [x * d/dy (x + y) at y = 1] at x = 1 is 1 (perturbation confusion would give 2).
    let outer = |xs: &[Tensor]| {
        let x = &xs[0];
        let inner = grad(|ys: &[Tensor]| x + &ys[0]);
        let dy: Tensor = inner(&[x.lit(1.0)]).remove(0);
        x * dy
    };
    let d = grad(outer)(&[arr0(1.0f64).into_dyn()]).unwrap();
    close(&d[0], &arr0(1.0f64).into_dyn());
}

#[test]
fn grad_of_a_function_of_hvp_is_a_third_derivative() {
    // sum(H(x) v) = sum((2 cos x - x sin x) v); its gradient is (-3 sin x - x cos x) v.
    let (x, dir) = (x0(), v(&[1.0, 0.5, -2.0]));
    let g = grad_wrt(&[0], |p: &[Tensor]| {
        hvp(f)(&p[..1], &p[1..]).remove(0).sum_all()
    });
    let out = g(&[x.clone(), dir.clone()]).unwrap();
    close(&out[0], &(x.mapv(|x| -3.0 * x.sin() - x * x.cos()) * &dir));
}

/// f2(x) = S Q with S = sum(x sin x), Q = sum(x^2): a Hessian with off-diagonal terms,
/// H_ij = δ_ij (S''_i Q + 2 S) + 2 S'_i x_j + 2 x_i S'_j, where S'_i = sin x_i + x_i cos x_i
/// and S''_i = 2 cos x_i - x_i sin x_i.
fn f2(xs: &[Tensor]) -> Tensor {
    let x = &xs[0];
    (x * x.sin()).sum_all() * x.powi(2).sum_all()
}

fn hessian_f2(x: &A) -> A {
    let n = x.len();
    let s: f64 = x.iter().map(|x| x * x.sin()).sum();
    let q: f64 = x.iter().map(|x| x * x).sum();
    let (ds, dds) = (grad_f(x), hess_diag(x));
    ArrayD::from_shape_fn(vec![n, n], |ij| {
        let (i, j) = (ij[0], ij[1]);
        let diagonal = if i == j { dds[i] * q + 2.0 * s } else { 0.0 };
        diagonal + 2.0 * ds[i] * x[j] + 2.0 * x[i] * ds[j]
    })
}

fn unit(n: usize, k: usize) -> A {
    ArrayD::from_shape_fn(vec![n], |i| if i[0] == k { 1.0 } else { 0.0 })
}

#[test]
fn hessian_jacrev_of_grad_and_hvp_match_the_closed_form() {
    let x = x0();
    let want = hessian_f2(&x);
    let h = hessian(f2)(&[x.clone()]).unwrap().remove(0);
    close(&h, &want);
    let hr = jacrev(grad(f2))(&[x.clone()]).unwrap().remove(0);
    close(&hr, &want);
    for k in 0..3 {
        let hv = hvp(f2)(&[x.clone()], &[unit(3, k)]).unwrap().remove(0);
        let column = want.index_axis(ndarray::Axis(1), k).to_owned();
        close(&hv, &column);
    }
}

#[test]
fn hessian_of_a_quadratic_form_with_a_non_symmetric_matrix_is_a_plus_a_transpose() {
    // f(x) = x^T A x with A_ij = 3i + j, built inside the trace: H = A + A^T for every x,
    // which a Hessian that symmetrised or transposed A wrongly would miss.
    let quadratic = |xs: &[Tensor]| {
        let x = &xs[0];
        let tracer = x.tracer();
        let rows = tracer.iota(traceform::DType::F64, &[3, 3], 0);
        let cols = tracer.iota(traceform::DType::F64, &[3, 3], 1);
        let a = rows * 3.0 + cols;
        (x * &a.matmul(x)).sum_all()
    };
    let want = ArrayD::from_shape_fn(vec![3, 3], |ij| {
        (3 * ij[0] + ij[1] + 3 * ij[1] + ij[0]) as f64
    });
    let x = x0();
    close(&hessian(quadratic)(&[x.clone()]).unwrap().remove(0), &want);
    // And its gradient (A + A^T) x.
    let g = grad(quadratic)(&[x.clone()]).unwrap().remove(0);
    let ax = ArrayD::from_shape_fn(vec![3], |i| (0..3).map(|j| want[[i[0], j]] * x[j]).sum());
    close(&g, &ax);
}

#[test]
fn hessian_blocks_of_two_inputs() {
    // f(x, y) = sum(x^2 y): H_xx = diag(2y), H_xy = H_yx = diag(2x), H_yy = 0, row-major blocks.
    let f3 = |p: &[Tensor]| (p[0].powi(2) * &p[1]).sum_all();
    let (x, y) = (v(&[1.5, -2.0]), v(&[0.25, 3.0]));
    let diag =
        |d: &A| ArrayD::from_shape_fn(vec![2, 2], |ij| if ij[0] == ij[1] { d[ij[0]] } else { 0.0 });
    let h = hessian(f3)(&[x.clone(), y.clone()]).unwrap();
    assert_eq!(h.len(), 4);
    close(&h[0], &diag(&(&y * 2.0)));
    close(&h[1], &diag(&(&x * 2.0)));
    close(&h[2], &diag(&(&x * 2.0)));
    close(&h[3], &ArrayD::zeros(vec![2, 2]));
}

#[test]
fn jacobians_of_a_vector_function() {
    // g(x, y) = (x * y, sum(x)): blocks d(xy)/dx = diag(y), d(xy)/dy = diag(x),
    // d(sum x)/dx = ones, d(sum x)/dy = zeros.
    let g = |p: &[Tensor]| vec![&p[0] * &p[1], p[0].sum_all()];
    let (x, y) = (v(&[1.0, 2.0]), v(&[3.0, -4.0]));
    for jac in [
        jacfwd(g)(&[x.clone(), y.clone()]).unwrap(),
        jacrev(g)(&[x.clone(), y.clone()]).unwrap(),
    ] {
        assert_eq!(jac.len(), 4);
        close(&jac[0], &array![[3.0, 0.0], [0.0, -4.0]].into_dyn());
        close(&jac[1], &array![[1.0, 0.0], [0.0, 2.0]].into_dyn());
        close(&jac[2], &v(&[1.0, 1.0]));
        close(&jac[3], &v(&[0.0, 0.0]));
    }
}

#[test]
fn value_and_grad_linearize_and_f32() {
    let x = x0();
    let vg = value_and_grad(f)(&[x.clone()]).unwrap();
    close(&vg[1], &grad_f(&x));
    let (ys, lin) = linearize(f)(&[x.clone()]).unwrap();
    close(&ys[0], &vg[0]);
    for t in [v(&[1.0, 0.0, 0.0]), v(&[0.5, -1.0, 2.0])] {
        let jt = lin.call(&[t.clone()]).unwrap().remove(0);
        close(&jt, &arr0(dot(&grad_f(&x), &t)).into_dyn());
    }
    let x32: ArrayD<f32> = x.mapv(|x| x as f32);
    let g32 = grad(f)(&[x32]).unwrap().remove(0);
    for (a, b) in g32.iter().zip(grad_f(&x).iter()) {
        assert!((f64::from(*a) - b).abs() < 1e-5, "{g32}");
    }
}

#[test]
fn jvp_with_respect_to_a_subset() {
    let g = |p: &[Tensor]| (&p[0] * &p[1]).sum_all();
    let (x, y, t) = (v(&[1.0, 2.0]), v(&[3.0, -4.0]), v(&[1.0, 1.0]));
    let out = jvp_wrt(&[1], g)(&[x.clone(), y.clone()], &[t]).unwrap();
    close(&out[1], &arr0(3.0).into_dyn());
}

#[test]
fn errors_are_results_that_say_what_is_wrong() {
    let x = x0();
    let not_scalar = |p: &[Tensor]| p[0].sin();
    let e = grad(not_scalar)(&[x.clone()]).unwrap_err().to_string();
    assert!(
        e.contains("one float scalar output") && e.contains("f64[3]"),
        "{e}"
    );
    let e = hvp(not_scalar)(&[x.clone()], &[x.clone()])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`hvp` needs a function with one float scalar output"),
        "{e}"
    );
    let e = grad_wrt(&[3], f)(&[x.clone()]).unwrap_err().to_string();
    assert!(e.contains("input position 3 is out of range"), "{e}");
    let e = jvp(f)(&[x.clone()], &[v(&[1.0, 2.0])])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("vector 0 has type f64[2] but input 0 has type f64[3]"),
        "{e}"
    );
    let e = jvp(f)(&[x.clone()], &[]).unwrap_err().to_string();
    assert!(e.contains("expected 1 vector(s)"), "{e}");
    let bad_shapes = |p: &[Tensor]| (&p[0] + &p[0].slice(&[0], &[2])).sum_all();
    let e = grad(bad_shapes)(&[x.clone()]).unwrap_err().to_string();
    assert!(
        e.contains("cannot broadcast shapes [3] and [2]") && e.contains("tests/api.rs"),
        "{e}"
    );
}

#[test]
fn errors_inside_a_trace_surface_at_its_end() {
    let x = x0();
    // An inner grad of a vector function fails; the outer call reports it.
    let outer = |p: &[Tensor]| grad(|q: &[Tensor]| q[0].sin())(p).remove(0).sum_all();
    let e = grad(outer)(&[x]).unwrap_err().to_string();
    assert!(e.contains("one float scalar output"), "{e}");
}

#[test]
fn linear_transpose_of_a_linear_and_a_non_linear_function() {
    // l(t) = 2 * cumsum(t); its transpose is c -> 2 * reverse cumsum(c).
    let l = |p: &[Tensor]| p[0].cumsum(0, false) * 2.0;
    let c = v(&[1.0, 2.0, 3.0]);
    let lt = linear_transpose(l)(&[x0()], &[c]).unwrap();
    close(&lt[0], &v(&[12.0, 10.0, 6.0]));
    let e = linear_transpose(f)(&[x0()], &[arr0(1.0f64).into_dyn()])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cannot transpose") && e.contains("`sin` is not linear"),
        "{e}"
    );
    assert!(
        e.contains("tests/api.rs"),
        "the traced location is named: {e}"
    );
}

/// The snippet of README.md's tour, kept compiling and correct.
#[test]
fn readme_tour() -> Result<(), traceform::Error> {
    let f = |xs: &[Tensor]| (&xs[0] * xs[0].sin()).sum_all();
    let x: ArrayD<f64> = array![0.3, -1.2, 2.0].into_dyn();
    let t: ArrayD<f64> = array![1.0, 0.5, -2.0].into_dyn();

    let g = grad(f)(&[x.clone()])?;
    let y_and_dy = jvp(f)(&[x.clone()], &[t.clone()])?;
    let hv = hvp(f)(&[x.clone()], &[t.clone()])?;
    let same = jvp(grad(f))(&[x.clone()], &[t.clone()])?;

    // Against the closed forms, not against each other (hvp is jvp of grad by construction).
    close(&g[0], &grad_f(&x));
    close(&y_and_dy[1], &arr0(dot(&grad_f(&x), &t)).into_dyn());
    close(&hv[0], &(hess_diag(&x) * &t));
    close(&same[0], &grad_f(&x));
    close(&same[1], &(hess_diag(&x) * &t));
    Ok(())
}

/// A transformed closure's first calls run on the interpreter, later ones on the JIT (after one
/// call for a large program, after sixteen for a small one): every call gives the closed form.
#[test]
fn calls_in_a_loop_move_to_the_jit_and_agree() {
    let g = grad(f);
    let small = v(&[0.3, -1.2, 2.0]);
    for _ in 0..20 {
        close(&g(&[small.clone()]).unwrap()[0], &grad_f(&small));
    }
    let large: A = ArrayD::from_shape_fn(vec![200_000], |i| (i[0] as f64 * 1e-4).sin() * 3.0);
    for _ in 0..3 {
        close(&g(&[large.clone()]).unwrap()[0], &grad_f(&large));
    }
}
