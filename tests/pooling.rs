//! The pooling API (`Tensor::max_pool`, `Tensor::avg_pool` with both divisors, and the
//! `reduce_window_*` tracing methods) through jvp, grad and hvp, against closed forms computed
//! here with plain loops over the windows (f64, tolerance 1e-12 relative).

// Arguments are written `&[x.clone()]` like the other calls, for readability.
#![allow(clippy::cloned_ref_to_slice_refs)]

use ndarray::{ArrayD, IxDyn};
use traceform::{grad, hvp, jvp, AvgPoolDivisor, Tensor, Window};

type A = ArrayD<f64>;

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

/// A [1, 2, 5, 5] input with distinct values (no ties).
fn input(seed: f64) -> A {
    ArrayD::from_shape_fn(IxDyn(&[1, 2, 5, 5]), |i| {
        let k = (i[1] * 25 + i[2] * 5 + i[3]) as f64;
        (k * 0.731 + seed).sin() * 2.0
    })
}

/// The 2-D windows of size 3, stride 2, padding (1, 1) on both spatial axes of a 5x5 plane:
/// for each output (3x3), the (row, column) positions of x it covers.
fn windows() -> Vec<Vec<(usize, usize)>> {
    let mut all = Vec::new();
    for oy in 0..3i64 {
        for ox in 0..3i64 {
            let mut w = Vec::new();
            for ky in 0..3 {
                for kx in 0..3 {
                    let (r, c) = (oy * 2 - 1 + ky, ox * 2 - 1 + kx);
                    if (0..5).contains(&r) && (0..5).contains(&c) {
                        w.push((r as usize, c as usize));
                    }
                }
            }
            all.push(w);
        }
    }
    all
}

const WINDOW: [usize; 2] = [3, 3];
const STRIDES: [usize; 2] = [2, 2];
const PADDING: [(i64, i64); 2] = [(1, 1), (1, 1)];

#[test]
fn max_pool_grad_jvp_and_hvp_match_the_selected_elements() {
    // f(x) = sum(max_pool(x)^2): grad = 2 m at each window's maximum (summed over windows
    // sharing it), jvp = sum 2 m t[argmax], H v = 2 v[argmax] scattered back.
    let f = |xs: &[Tensor]| {
        let m = xs[0].max_pool(&WINDOW, &STRIDES, &PADDING);
        (&m * &m).sum_all()
    };
    let (x, t) = (input(0.1), input(2.0));
    let (mut g, mut hv, mut dir) = (A::zeros(x.raw_dim()), A::zeros(x.raw_dim()), 0.0);
    for c in 0..2 {
        for w in windows() {
            let &(r, col) = w
                .iter()
                .reduce(|a, b| {
                    if x[[0, c, b.0, b.1]] > x[[0, c, a.0, a.1]] {
                        b
                    } else {
                        a
                    }
                })
                .unwrap();
            let m = x[[0, c, r, col]];
            g[[0, c, r, col]] += 2.0 * m;
            hv[[0, c, r, col]] += 2.0 * t[[0, c, r, col]];
            dir += 2.0 * m * t[[0, c, r, col]];
        }
    }
    close(&grad(f)(&[x.clone()]).unwrap()[0], &g);
    close(
        &jvp(f)(&[x.clone()], &[t.clone()]).unwrap()[1],
        &ndarray::arr0(dir).into_dyn(),
    );
    close(&hvp(f)(&[x.clone()], &[t.clone()]).unwrap()[0], &hv);
}

#[test]
fn avg_pool_with_and_without_counting_padding() {
    // f(x) = sum(avg^2), avg[y] = sum over the window / d(y): grad[j] = sum over windows
    // covering j of 2 avg / d, H v[j] = sum over them of 2 (sum of v over the window) / d^2.
    let (x, v) = (input(0.3), input(1.1));
    for divisor in [AvgPoolDivisor::WindowSize, AvgPoolDivisor::CoveredElements] {
        let f = move |xs: &[Tensor]| {
            let a = xs[0].avg_pool(&WINDOW, &STRIDES, &PADDING, divisor);
            (&a * &a).sum_all()
        };
        let (mut g, mut hv, mut dir) = (A::zeros(x.raw_dim()), A::zeros(x.raw_dim()), 0.0);
        for c in 0..2 {
            for w in windows() {
                let d = match divisor {
                    AvgPoolDivisor::WindowSize => 9.0,
                    AvgPoolDivisor::CoveredElements => w.len() as f64,
                };
                let avg: f64 = w.iter().map(|&(r, k)| x[[0, c, r, k]]).sum::<f64>() / d;
                let v_sum: f64 = w.iter().map(|&(r, k)| v[[0, c, r, k]]).sum();
                for &(r, k) in &w {
                    g[[0, c, r, k]] += 2.0 * avg / d;
                    hv[[0, c, r, k]] += 2.0 * v_sum / (d * d);
                }
                dir += 2.0 * avg * v_sum / d;
            }
        }
        close(&grad(f)(&[x.clone()]).unwrap()[0], &g);
        let j = jvp(f)(&[x.clone()], &[v.clone()]).unwrap();
        close(&j[1], &ndarray::arr0(dir).into_dyn());
        close(&hvp(f)(&[x.clone()], &[v.clone()]).unwrap()[0], &hv);
    }
}

#[test]
fn reduce_window_methods_trace_the_primitives() {
    // Windowed min, max and sum over one axis with window dilation 2: windows (x[i], x[i + 2]).
    let f = |xs: &[Tensor]| {
        let w = Window::new(&[2], &[1]).with_window_dilation(&[2]);
        let lo = xs[0].reduce_window_min(&w);
        let hi = xs[0].reduce_window_max(&w);
        let s = xs[0].reduce_window_sum(&w);
        // Base dilation 2 and padding (1, 0): x[i] sits at position 2i + 1 of 10, and the
        // windows of two at stride 1 cover it twice, x[4] (at position 9) once.
        let holes = Window::new(&[2], &[1])
            .with_base_dilation(&[2])
            .with_padding(&[(1, 0)]);
        let d = xs[0].reduce_window_sum(&holes);
        (&lo * &hi + &s).sum_all() + d.sum_all()
    };
    let x = ArrayD::from_shape_vec(IxDyn(&[5]), vec![1.0, 4.0, 3.0, 2.0, 5.0]).unwrap();
    // Windows (x0, x2), (x1, x3), (x2, x4): lo*hi = x0 x2 + x1 x3 + x2 x4, plus the sums.
    // The last term adds 2, 2, 2, 2, 1.
    let want = [
        3.0 + 1.0 + 2.0,
        2.0 + 1.0 + 2.0,
        1.0 + 5.0 + 1.0 + 1.0 + 2.0,
        4.0 + 1.0 + 2.0,
        3.0 + 1.0 + 1.0,
    ];
    close(
        &grad(f)(&[x]).unwrap()[0],
        &ArrayD::from_shape_vec(IxDyn(&[5]), want.to_vec()).unwrap(),
    );
}

#[test]
fn pooling_a_tensor_without_spatial_axes_is_an_error() {
    let f = |xs: &[Tensor]| {
        xs[0]
            .max_pool(&[2, 2], &[1, 1], &[(0, 0), (0, 0)])
            .sum_all()
    };
    let x = ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![0.0; 6]).unwrap();
    let e = grad(f)(&[x]).unwrap_err().to_string();
    assert!(
        e.contains("`max_pool`: x is f64[2,3] (N, C, spatial...)"),
        "{e}"
    );
    assert!(
        e.contains("tests/pooling.rs"),
        "the user's line is named: {e}"
    );
}
