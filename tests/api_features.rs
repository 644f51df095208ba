//! The Rust API beyond the transforms themselves: regression tests of reported bugs (stale
//! tensors, transforms whose arguments belong to different traces, empty `wrt`), and the
//! additions a JAX user expects. Values are checked against closed forms (f64: 1e-12
//! relative).

// Arguments are written `&[x.clone()]` like the other calls, for readability.
#![allow(clippy::cloned_ref_to_slice_refs)]

use std::cell::{Cell, RefCell};

use ndarray::{arr0, array, ArrayD, Axis};
use traceform::{
    constant, grad, grad_wrt, hessian_wrt, hvp, jacfwd_wrt, jacrev, jacrev_wrt, jvp,
    linear_transpose_wrt, linearize_wrt, trace, value_and_grad_wrt, vjp, vjp_flat_wrt, vjp_wrt,
    DType, Tensor, Type, Value,
};

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

/// A transform that fails inside a trace stands in with the results it would have had, so the
/// caller's code (which indexes them) runs on to its trace's end, where the error comes out.
#[test]
fn a_transform_failing_inside_a_trace_returns_as_many_results_as_it_would_have() {
    // grad of a non-scalar function, with respect to two inputs: the caller takes result 1.
    let not_scalar = |xs: &[Tensor]| &xs[0] * &xs[1];
    let outer = |xs: &[Tensor]| {
        let gs = grad(not_scalar)(&[xs[0].clone(), xs[0].clone()]);
        assert_eq!(gs.len(), 2);
        assert_eq!(gs[1].shape().as_slice(), &[3]);
        gs[1].sum_all()
    };
    let e = grad(outer)(&[x0()]).unwrap_err().to_string();
    assert!(e.contains("scalar"), "{e}");
    // jvp of a function whose trace fails, with two outputs: two values, two tangents.
    let fails = |xs: &[Tensor]| vec![xs[0].reshape(&[2, 2]), xs[0].clone()];
    let outer = |xs: &[Tensor]| {
        let r = jvp(fails)(&xs[..1], &xs[..1]);
        assert_eq!(r.len(), 4);
        r[3].sum_all()
    };
    let e = grad(outer)(&[x0()]).unwrap_err().to_string();
    assert!(e.contains("reshape"), "{e}");
    // jacrev: one block per (output, input), shaped output ++ input.
    let outer = |xs: &[Tensor]| {
        let r = jacrev(not_scalar)(&[xs[0].clone(), xs[0].clone()]);
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].shape().as_slice(), &[3, 3]);
        r[1].sum_all()
    };
    // jacrev of a product is fine; it is the outer grad of a non-scalar that fails.
    assert!(jvp(outer)(&[x0()], &[x0()]).is_ok());
}

// ---- Reuse: one trace per signature ----

#[test]
fn a_reused_transformed_closure_traces_once_per_signature() {
    let traces = Cell::new(0);
    let g = grad(|xs: &[Tensor]| {
        traces.set(traces.get() + 1);
        f(xs)
    });
    for k in 0..5 {
        let x = x0() * f64::from(k);
        close(
            &g(&[x.clone()]).unwrap()[0],
            &x.mapv(|x| x.sin() + x * x.cos()),
        );
    }
    assert_eq!(traces.get(), 1);
    let longer = v(&[0.1, 0.2, 0.3, 0.4]);
    g(&[longer.clone()]).unwrap();
    g(&[x0()]).unwrap();
    g(&[longer]).unwrap();
    assert_eq!(traces.get(), 2, "one trace per input signature");
}

#[test]
fn a_failed_call_is_not_kept_and_fails_again_the_same_way() {
    let traces = Cell::new(0);
    let first_three = grad(|xs: &[Tensor]| {
        traces.set(traces.get() + 1);
        xs[0].slice(&[0], &[3]).sum_all()
    });
    let e1 = first_three(&[v(&[1.0, 2.0])]).unwrap_err().to_string();
    let e2 = first_three(&[v(&[1.0, 2.0])]).unwrap_err().to_string();
    assert!(e1.contains("`slice`"), "{e1}");
    assert_eq!(e1, e2);
    assert_eq!(traces.get(), 2);
    first_three(&[x0()]).unwrap();
}

#[test]
fn the_tangent_types_are_part_of_the_signature() {
    let traces = Cell::new(0);
    let j = jvp(|xs: &[Tensor]| {
        traces.set(traces.get() + 1);
        f(xs)
    });
    j(&[x0()], &[x0()]).unwrap();
    j(&[x0()], &[x0()]).unwrap();
    assert_eq!(traces.get(), 1);
    let e = j(&[x0()], &[v(&[1.0])]).unwrap_err().to_string();
    assert!(e.contains("vector 0 has type f64[1]"), "{e}");
}

#[test]
fn vjp_keeps_its_programs_too() {
    let traces = Cell::new(0);
    let at = vjp(|xs: &[Tensor]| {
        traces.set(traces.get() + 1);
        f(xs)
    });
    for k in 1..4 {
        let x = x0() * f64::from(k);
        let (_, pullback) = at(&[x.clone()]).unwrap();
        let ct = pullback.call(&[arr0(2.0).into_dyn()]).unwrap();
        close(&ct[0], &x.mapv(|x| 2.0 * (x.sin() + x * x.cos())));
    }
    assert_eq!(traces.get(), 1);
}

#[test]
fn transformed_closures_of_send_closures_can_be_shared_between_threads() {
    fn is_send_sync<T: Send + Sync>(_: &T) {}
    let g = grad::<_, _, A>(f);
    is_send_sync(&g);
    let gradients: Vec<A> = std::thread::scope(|s| {
        let handles: Vec<_> = (1..3)
            .map(|k| {
                let g = &g;
                s.spawn(move || g(&[x0() * f64::from(k)]).unwrap().remove(0))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    close(&gradients[1], &(x0() * 2.0).mapv(|x| x.sin() + x * x.cos()));
}

// ---- Constants ----

#[test]
fn arrays_captured_by_the_closure_are_constants_not_inputs() {
    // f(w) = sum((a w - y)^2) with a, y captured; grad = 2 a^T (a w - y).
    let a: ArrayD<f64> = array![[1.0, 2.0], [3.0, -1.0], [0.5, 0.0]].into_dyn();
    let y: ArrayD<f64> = v(&[1.0, -2.0, 0.25]);
    let loss = |w: &[Tensor]| {
        (constant(&a).matmul(&w[0]) - constant(&y))
            .powi(2)
            .sum_all()
    };
    let w = v(&[0.3, -0.7]);
    let g = grad(loss)(&[w.clone()]).unwrap();
    assert_eq!(g.len(), 1, "constants are not differentiated");
    let a2 = a.clone().into_dimensionality::<ndarray::Ix2>().unwrap();
    let w1 = w.clone().into_dimensionality::<ndarray::Ix1>().unwrap();
    let y1 = y.clone().into_dimensionality::<ndarray::Ix1>().unwrap();
    let want = a2.t().dot(&(a2.dot(&w1) - &y1)) * 2.0;
    close(&g[0], &want.into_dyn());
}

#[test]
fn i32_labels_captured_beside_f32_parameters() {
    // f(w) = sum(w * labels): the gradient is the labels, as f32.
    let labels: ArrayD<i32> = array![2, 0, 1].into_dyn();
    let f = |p: &[Tensor]| (&p[0] * constant(&labels).cast(DType::F32)).sum_all();
    let w: ArrayD<f32> = array![0.5f32, 1.5, -2.0].into_dyn();
    let g = grad(f)(&[w]).unwrap().remove(0);
    assert_eq!(g, array![2.0f32, 0.0, 1.0].into_dyn());
}

#[test]
fn a_constant_made_inside_a_nested_transform_reaches_the_outermost_program() {
    // The tangent of sum(c y) in the direction t is sum(c t), at t = x: its gradient is c.
    let c = v(&[2.0, -1.0, 0.5]);
    let outer = |xs: &[Tensor]| {
        let tangent = jvp(|ys: &[Tensor]| (&ys[0] * constant(&c)).sum_all());
        tangent(&[xs[0].clone()], &[xs[0].clone()]).remove(1)
    };
    let g = grad(outer)(&[x0()]).unwrap();
    close(&g[0], &c);
}

#[test]
fn a_constant_outside_any_trace_or_in_a_plain_trace_is_an_error() {
    let c = constant(v(&[1.0, 2.0, 3.0]));
    let e = grad(|xs: &[Tensor]| (&xs[0] * &c).sum_all())(&[x0()])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`constant` was called outside a traced closure"),
        "{e}"
    );
    let e = trace("plain", &[Type::new(DType::F64, [3])], |xs| {
        &xs[0] * constant(x0())
    })
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("made 1 constant(s), which `trace` cannot bind"),
        "{e}"
    );
}

#[test]
fn wrt_positions_count_the_inputs_not_the_constants() {
    let c = x0();
    let e = grad_wrt(&[1], |xs: &[Tensor]| (&xs[0] * constant(&c)).sum_all())(&[x0()])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("input position 1 is out of range: the function has 1 input(s)"),
        "{e}"
    );
}

// ---- wrt for every transform ----

/// g(x, y) = sum(x sin y): d/dy = x cos y, d2/dy2 = diag(-x sin y).
fn g(p: &[Tensor]) -> Tensor {
    (&p[0] * p[1].sin()).sum_all()
}

fn xy() -> (A, A) {
    (v(&[1.0, 2.0, -0.5]), v(&[0.3, -1.2, 2.0]))
}

fn diag(d: &A) -> A {
    let d = d.view().into_dimensionality::<ndarray::Ix1>().unwrap();
    ndarray::Array2::from_diag(&d).into_dyn()
}

fn dg_dy(x: &A, y: &A) -> A {
    x * &y.mapv(f64::cos)
}

#[test]
fn reverse_mode_wrt_a_chosen_input() {
    let (x, y) = xy();
    let vg = value_and_grad_wrt(&[1], g)(&[x.clone(), y.clone()]).unwrap();
    assert_eq!(vg.len(), 2);
    close(&vg[0], &arr0((&x * &y.mapv(f64::sin)).sum()).into_dyn());
    close(&vg[1], &dg_dy(&x, &y));
    let (_, pullback) = vjp_wrt(&[1], g)(&[x.clone(), y.clone()]).unwrap();
    let ct = pullback.call(&[arr0(3.0).into_dyn()]).unwrap();
    assert_eq!(ct.len(), 1);
    close(&ct[0], &(dg_dy(&x, &y) * 3.0));
    let flat = vjp_flat_wrt(&[1], g)(&[x.clone(), y.clone()], &[arr0(3.0).into_dyn()]).unwrap();
    assert_eq!(flat.len(), 2);
    close(&flat[1], &ct[0]);
}

#[test]
fn forward_mode_and_jacobians_wrt_a_chosen_input() {
    let (x, y) = xy();
    let (_, lin) = linearize_wrt(&[1], g)(&[x.clone(), y.clone()]).unwrap();
    let t = v(&[1.0, -1.0, 0.5]);
    let jt = lin.call(&[t.clone()]).unwrap().remove(0);
    close(&jt, &arr0((dg_dy(&x, &y) * &t).sum()).into_dyn());
    let elementwise = |p: &[Tensor]| &p[0] * p[1].sin();
    let want = diag(&dg_dy(&x, &y));
    for jac in [
        jacfwd_wrt(&[1], elementwise)(&[x.clone(), y.clone()]).unwrap(),
        jacrev_wrt(&[1], elementwise)(&[x.clone(), y.clone()]).unwrap(),
    ] {
        assert_eq!(jac.len(), 1);
        close(&jac[0], &want);
    }
    let h = hessian_wrt(&[1], g)(&[x.clone(), y.clone()]).unwrap();
    assert_eq!(h.len(), 1);
    close(&h[0], &diag(&(&x * &y.mapv(|y| -y.sin()))));
}

#[test]
fn linear_transpose_wrt_a_chosen_input() {
    // l(x, t) = x * t is linear in t (not in x and t together): its transpose is c -> x * c.
    let (x, c) = xy();
    let l = |p: &[Tensor]| &p[0] * &p[1];
    let lt = linear_transpose_wrt(&[1], l)(&[x.clone(), x.clone()], &[c.clone()]).unwrap();
    assert_eq!(lt.len(), 1);
    close(&lt[0], &(&x * &c));
}

// ---- Views and mixed dtypes ----

#[test]
fn array_views_are_arguments() {
    // f(m) = sum(m * w) for a transposed (non-standard layout) view: the gradient is w.
    let m: ArrayD<f64> = array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]].into_dyn();
    let w: ArrayD<f64> = array![[0.5, -1.0], [2.0, 0.0], [1.0, 3.0]].into_dyn();
    let mt = m.t();
    let weighted = |p: &[Tensor]| (&p[0] * constant(&w)).sum_all();
    let g: Vec<ArrayD<f64>> = grad(weighted)(&[mt.view()]).unwrap();
    close(&g[0], &w);
    // A row of a matrix, as a view, without copying it out first.
    let row = m.index_axis(Axis(0), 1);
    let g = grad(f)(&[row.into_dyn()]).unwrap();
    close(&g[0], &v(&[4.0, 5.0, 6.0]).mapv(|x| x.sin() + x * x.cos()));
}

#[test]
fn f32_parameters_beside_i32_inputs_through_values() {
    let w: ArrayD<f32> = array![0.5f32, 1.5, -2.0].into_dyn();
    let labels = array![2, 0, 1];
    let f = |p: &[Tensor]| (&p[0] * p[1].cast(DType::F32)).sum_all();
    let g = grad_wrt(&[0], f)(&[Value::from(w), Value::from(&labels)]).unwrap();
    assert_eq!(g[0], Value::from(array![2.0f32, 0.0, 1.0]));
}

// ---- The snippets of README.md's tour, kept compiling and correct ----

#[test]
fn readme_reuse() -> Result<(), traceform::Error> {
    let x = x0();
    let step = grad(f);
    for _ in 0..100 {
        let g = step(&[x.clone()])?;
        close(&g[0], &x.mapv(|x| x.sin() + x * x.cos()));
    }
    Ok(())
}

#[test]
fn readme_constants_and_labels() -> Result<(), traceform::Error> {
    use ndarray::Array2;

    let inputs: Array2<f32> = array![[0.5, -1.0], [1.5, 0.25], [-0.5, 2.0], [1.0, 1.0]];
    let labels = array![0, 2, 1, 2]; // the i32 class of each row
    let loss = |p: &[Tensor]| {
        let (w, b) = (&p[0], &p[1]); // f32[2,3], f32[3]
        let logits = constant(&inputs).matmul(w) + b; // f32[4,3]
        let classes = logits.tracer().iota(DType::I32, &[4, 3], 1);
        let one_hot = classes
            .eq(constant(&labels).reshape(&[4, 1]))
            .cast(DType::F32);
        -(one_hot * logits.log_softmax(1)).sum(&[1]).mean_all()
    };
    let (mut w, mut b) = (
        ArrayD::<f32>::zeros(vec![2, 3]),
        ArrayD::<f32>::zeros(vec![3]),
    );
    let step = grad(loss);
    for _ in 0..200 {
        let g = step(&[w.clone(), b.clone()])?;
        w = &w - &(&g[0] * 0.5);
        b = &b - &(&g[1] * 0.5);
    }

    // At zero parameters the loss is ln 3; training separates the classes.
    let value = traceform::value_and_grad(loss);
    let zeros = |shape: Vec<usize>| ArrayD::<f32>::zeros(shape);
    let start = value(&[zeros(vec![2, 3]), zeros(vec![3])])?;
    assert!((start[0][[]] - 3f32.ln()).abs() < 1e-6, "{}", start[0]);
    let end = value(&[w.clone(), b.clone()])?;
    assert!(end[0][[]] < 0.2, "the loss fell to {}", end[0]);
    let w2 = w.into_dimensionality::<ndarray::Ix2>().unwrap();
    let logits = inputs.dot(&w2) + &b;
    for (row, &label) in logits.rows().into_iter().zip(&labels) {
        let best = (0..3).max_by(|&i, &j| row[i].total_cmp(&row[j])).unwrap();
        assert_eq!(best as i32, label, "{logits}");
    }
    Ok(())
}

#[test]
fn readme_wrt() -> Result<(), traceform::Error> {
    let (x, y) = xy();
    let g = |p: &[Tensor]| (&p[0] * p[1].sin()).sum_all();
    let dy = grad_wrt(&[1], g)(&[x.clone(), y.clone()])?; // [x cos y]
    let (value, pullback) = vjp_wrt(&[1], g)(&[x.clone(), y.clone()])?;
    let dy_again = pullback.call(&[arr0(1.0).into_dyn()])?; // [x cos y]
    let h_yy = hessian_wrt(&[1], g)(&[x.clone(), y.clone()])?; // [diag(-x sin y)]

    close(&value[0], &arr0((&x * &y.mapv(f64::sin)).sum()).into_dyn());
    close(&dy[0], &dg_dy(&x, &y));
    close(&dy_again[0], &dy[0]);
    close(&h_yy[0], &diag(&(&x * &y.mapv(|y| -y.sin()))));
    Ok(())
}

#[test]
fn readme_views_and_values() -> Result<(), traceform::Error> {
    use ndarray::{Array1, Array2};

    let batch: Array2<f64> = array![[0.1, 0.2, 0.3], [0.3, -1.2, 2.0]];
    let g_row = grad(f)(&[batch.row(1).into_dyn()])?; // Vec<ArrayD<f64>>

    let w: Array1<f32> = array![0.5, 1.5, -2.0];
    let counts = array![2, 0, 1]; // i32
    let weighted = |p: &[Tensor]| (&p[0] * p[1].cast(DType::F32)).sum_all();
    let g_w = grad_wrt(&[0], weighted)(&[Value::from(w), Value::from(counts)])?;

    close(&g_row[0], &x0().mapv(|x| x.sin() + x * x.cos()));
    assert_eq!(g_w[0], Value::from(array![2.0f32, 0.0, 1.0]));
    Ok(())
}

#[test]
fn readme_ops() -> Result<(), traceform::Error> {
    let ops = |p: &[Tensor]| {
        let x = &p[0]; // f64[2,3]
        let centered = x - x.mean_keepdims(&[1]);
        let relu = x.gt(0.0).where_(x, 0.0);
        centered.powi(2).mean_all()
            + x.logsumexp(&[1]).sum_all()
            + relu.max_all()
            + (x.softmax(1) * 2.0f32).sum_all()
    };
    let stacked = |p: &[Tensor]| p[0].matmul(&p[1]).sum_all(); // [8,3,4] @ [4,5] -> [8,3,5]

    let x: A = array![[0.5, -1.0, 2.0], [1.5, 0.25, -0.5]].into_dyn();
    let value = traceform::value_and_grad(ops)(&[x.clone()])?;
    let mut want = 0.0;
    for row in x.rows() {
        let mean = row.sum() / 3.0;
        want += row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 6.0;
        want += row.iter().map(|v| v.exp()).sum::<f64>().ln();
    }
    want += 2.0 + 2.0 * 2.0; // the largest relu, and two rows of softmax summing to 1, doubled
    close(&value[0], &arr0(want).into_dyn());
    let a = ArrayD::from_elem(vec![8, 3, 4], 0.5);
    let b = ArrayD::from_elem(vec![4, 5], 0.25);
    let g = grad(stacked)(&[a, b])?;
    close(&g[1], &ArrayD::from_elem(vec![4, 5], 8.0 * 3.0 * 0.5));
    Ok(())
}

#[test]
fn readme_conv() -> Result<(), traceform::Error> {
    use traceform::ConvPadding;
    let layer = |p: &[Tensor]| {
        // x: [2,3,8,8], w: [4,3,3,3]
        let y = p[0].conv2d(&p[1], [1, 1], ConvPadding::Same); // [2,4,8,8]
        y.gt(0.0).where_(&y, 0.0).mean_all()
    };
    let x = ArrayD::from_elem(vec![2, 3, 8, 8], 0.5);
    let w = ArrayD::from_elem(vec![4, 3, 3, 3], 0.25);
    let g = grad(layer)(&[x, w])?;
    // Every result is positive, so d mean / d w[o, c, a, b] is 0.5 times the number of result
    // positions at which tap (a, b) reads the image (7 or 8 per axis, SAME padding by 1),
    // times the 2 images, over the 2·4·64 results.
    let inside = |a: usize| if a == 1 { 8.0 } else { 7.0 };
    let want = ArrayD::from_shape_fn(vec![4, 3, 3, 3], |i| {
        2.0 * 0.5 * inside(i[2]) * inside(i[3]) / (2.0 * 4.0 * 64.0)
    });
    close(&g[1], &want);
    Ok(())
}

/// The API simplifies the programs it runs (as `run` does), and `set_simplify(false)` runs them
/// as the transforms emit them: the same values either way.
#[test]
fn simplification_is_on_by_default_and_can_be_turned_off() {
    let f = |xs: &[Tensor]| (&xs[0] * xs[0].sin()).sum_all();
    let x = ndarray::array![0.3, -1.2, 2.0].into_dyn();
    let v = ndarray::array![1.0, 0.5, -2.0].into_dyn();
    let on = traceform::hvp(f)(&[x.clone()], &[v.clone()]).unwrap();
    traceform::set_simplify(false);
    let off = traceform::hvp(f)(&[x.clone()], &[v.clone()]).unwrap();
    traceform::set_simplify(true);
    let want = x.mapv(|x: f64| 2.0 * x.cos() - x * x.sin()) * &v;
    for got in [&on[0], &off[0]] {
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()), "{got} vs {want}");
        }
    }
}
