//! Newton-CG: minimize a function with Newton steps solved by conjugate gradients on
//! Hessian-vector products, the classic use of second-order AD.
//!
//! Each step traces the objective, differentiates the graph (`grad`, then `linearize` of it,
//! which is the Hessian as a reusable linear map: the forward-over-reverse `hvp` with its
//! residuals computed once per step), and runs it with the reference interpreter. Two problems:
//! the Rosenbrock function in 100 dimensions, and a small tanh MLP fitted to sin(3x).
//!
//! Run: `cargo run --example newton_cg`

use ndarray::{Array1, ArrayD, IxDyn};
use traceform::{grad_wrt, linearize, print_func, trace, value_and_grad, DType, Tensor, Type};

type Arr = ArrayD<f64>;

fn dot(a: &Arr, b: &Arr) -> f64 {
    (a * b).sum()
}

/// Solves H p = -g approximately by conjugate gradients, stopping at negative curvature.
fn conjugate_gradient(hess: impl Fn(&Arr) -> Arr, g: &Arr, max_iters: usize) -> (Arr, usize) {
    let mut p = Arr::zeros(g.raw_dim());
    let mut r = -g;
    let mut d = r.clone();
    let tol = 1e-3_f64.min(dot(g, g).sqrt()) * dot(g, g).sqrt();
    for k in 0..max_iters {
        let hd = hess(&d);
        let curvature = dot(&d, &hd);
        if curvature <= 0.0 {
            return (if k == 0 { -g } else { p }, k);
        }
        let rr = dot(&r, &r);
        let alpha = rr / curvature;
        p = p + &d * alpha;
        r = r - &hd * alpha;
        if dot(&r, &r).sqrt() < tol {
            return (p, k + 1);
        }
        let beta = dot(&r, &r) / rr;
        d = &r + &d * beta;
    }
    (p, max_iters)
}

/// Minimizes `f` over its first input (the others are data), printing progress; returns the
/// final value of `f`.
fn newton_cg<F>(name: &str, f: F, x0: Arr, data: Vec<Arr>, steps: usize) -> f64
where
    F: Fn(&[Tensor]) -> Tensor + Copy,
{
    println!("== Newton-CG on {name} ({} parameters)", x0.len());
    let with = |x: &Arr| {
        let mut args = vec![x.clone()];
        args.extend(data.iter().cloned());
        args
    };
    let grad_f = move |xs: &[Tensor]| grad_wrt(&[0], f)(xs);
    let mut x = x0;
    let mut value = f64::INFINITY;
    for step in 0..steps {
        let vg = value_and_grad(f)(&with(&x)).expect("value_and_grad");
        let g = vg[1].clone();
        value = vg[0].sum();
        let gnorm = dot(&g, &g).sqrt();
        println!("step {step:2}  f = {value:<14.6e} |grad| = {gnorm:.3e}");
        if gnorm < 1e-8 {
            break;
        }
        // The Hessian at x as a linear map: linearize the gradient, reuse it for every CG step.
        let (_, hessian_at_x) = linearize(grad_f)(&with(&x)).expect("linearize");
        let hess = |v: &Arr| {
            let mut ts = vec![v.clone()];
            ts.extend(data.iter().map(|d| Arr::zeros(d.raw_dim())));
            hessian_at_x.call(&ts).expect("hvp").remove(0)
        };
        let (p, cg_iters) = conjugate_gradient(hess, &g, 50);
        // Backtracking line search (Armijo).
        let mut t = 1.0;
        let slope = dot(&g, &p);
        loop {
            let trial = &x + &(&p * t);
            let ft = value_and_grad(f)(&with(&trial)).expect("f")[0].sum();
            if ft <= value + 1e-4 * t * slope || t < 1e-10 {
                x = trial;
                break;
            }
            t *= 0.5;
        }
        println!("         {cg_iters:2} CG iterations, step length {t}");
    }
    value
}

fn rosenbrock(xs: &[Tensor]) -> Tensor {
    let x = &xs[0];
    let n = x.shape()[0];
    let head = x.slice(&[1], &[n]);
    let tail = x.slice(&[0], &[n - 1]);
    (100.0 * (head - tail.powi(2)).powi(2) + (1.0 - x.slice(&[0], &[n - 1])).powi(2)).sum_all()
}

const HIDDEN: usize = 8;

/// Mean squared error of a 1-8-1 tanh network whose parameters are packed in `xs[0]`.
fn mlp_loss(xs: &[Tensor]) -> Tensor {
    let (p, inputs, targets) = (&xs[0], &xs[1], &xs[2]);
    let h = HIDDEN;
    let w1 = p.slice(&[0], &[h]).reshape(&[1, h]);
    let b1 = p.slice(&[h], &[2 * h]);
    let w2 = p.slice(&[2 * h], &[3 * h]).reshape(&[h, 1]);
    let b2 = p.slice(&[3 * h], &[3 * h + 1]);
    let hidden = (inputs.matmul(&w1) + b1).tanh();
    let out = hidden.matmul(&w2) + b2;
    let err = out - targets;
    (&err * &err).sum_all() / (inputs.shape()[0] as f64)
}

fn main() {
    let f64s = |shape: &[usize]| Type::new(DType::F64, shape);
    let n = 100;
    let traced = trace("rosenbrock", &[f64s(&[n])], rosenbrock).expect("traces");
    let g = traceform::transforms::grad(&traced, None).expect("differentiates");
    println!("The traced Rosenbrock function and its gradient, as the IR the transforms produce:");
    print!("{}\n{}", print_func(&traced), print_func(&g));

    // SciPy's tutorial starting point, tiled to n dimensions.
    let start = [1.3, 0.7, 0.8, 1.9, 1.2];
    let x0 = Array1::from_shape_fn(n, |i| start[i % 5]).into_dyn();
    let rosen = newton_cg("Rosenbrock", rosenbrock, x0, vec![], 60);

    let m = 32;
    let inputs = Array1::linspace(-1.0, 1.0, m)
        .into_shape_with_order(IxDyn(&[m, 1]))
        .unwrap();
    let targets = inputs.mapv(|x: f64| (3.0 * x).sin());
    let params =
        Array1::from_shape_fn(3 * HIDDEN + 1, |i| 0.5 * ((i as f64) * 1.7).sin()).into_dyn();
    let mlp = newton_cg(
        "a 1-8-1 tanh MLP fitting sin(3x)",
        mlp_loss,
        params,
        vec![inputs, targets],
        25,
    );
    println!("final: Rosenbrock f = {rosen:.3e} (minimum 0), MLP mean squared error = {mlp:.3e}");
    if rosen > 1e-12 || mlp > 1e-3 {
        eprintln!("error: Newton-CG did not converge");
        std::process::exit(1);
    }
}
