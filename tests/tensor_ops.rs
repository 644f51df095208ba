//! The jax.numpy-style operations on `Tensor` (`ir/src/composite.rs`), `conv2d`
//! (`ir/src/conv.rs`) and number operands: each against a closed form in f64 (1e-12
//! relative), and through `grad`.

// Arguments are written `&[x.clone()]` like the other calls, for readability.
#![allow(clippy::cloned_ref_to_slice_refs)]

use ndarray::{arr0, array, ArrayD, Axis, Ix2};
use traceform::{eval, grad, trace, ConvPadding, DType, Tensor, Type, Value};

type A = ArrayD<f64>;

#[track_caller]
fn close(got: &A, want: &A) {
    assert_eq!(got.shape(), want.shape(), "shapes");
    for (a, b) in got.iter().zip(want) {
        let ok = (a - b).abs() <= 1e-12 * (1.0 + b.abs()) || (a == b);
        assert!(ok, "got {got}, want {want}");
    }
}

/// `f` traced at the types of `xs` and evaluated on them.
#[track_caller]
fn run(f: impl FnOnce(&[Tensor]) -> Vec<Tensor>, xs: &[A]) -> Vec<A> {
    let types: Vec<Type> = xs
        .iter()
        .map(|x| Type::new(DType::F64, x.shape()))
        .collect();
    let func = trace("f", &types, f).unwrap();
    let values: Vec<Value> = xs.iter().map(|x| Value::from(x.clone())).collect();
    eval(&func, &values)
        .unwrap()
        .into_iter()
        .map(|v| v.as_f64().unwrap().clone())
        .collect()
}

#[track_caller]
fn run1(f: impl FnOnce(&Tensor) -> Tensor, x: &A) -> A {
    run(|p| vec![f(&p[0])], std::slice::from_ref(x)).remove(0)
}

/// The error of tracing `f` at the types of `xs`.
fn trace_error(f: impl FnOnce(&[Tensor]) -> Tensor, shapes: &[&[usize]]) -> String {
    let types: Vec<Type> = shapes.iter().map(|s| Type::new(DType::F64, *s)).collect();
    trace("f", &types, f).unwrap_err().to_string()
}

fn m23() -> A {
    array![[1.0, -2.0, 3.5], [0.25, 4.0, -1.0]].into_dyn()
}

fn softmax_rows(x: &A) -> A {
    let mut s = x.mapv(f64::exp);
    for mut row in s.axis_iter_mut(Axis(0)) {
        let total = row.sum();
        row.mapv_inplace(|e| e / total);
    }
    s
}

#[test]
fn mean_over_axes_all_and_keepdims() {
    let x = m23();
    close(&run1(|t| t.mean(&[1]), &x), &x.mean_axis(Axis(1)).unwrap());
    close(&run1(|t| t.mean(&[0]), &x), &x.mean_axis(Axis(0)).unwrap());
    close(
        &run1(Tensor::mean_all, &x),
        &arr0(x.mean().unwrap()).into_dyn(),
    );
    let kept = run1(|t| t.mean_keepdims(&[1]), &x);
    close(&kept, &x.mean_axis(Axis(1)).unwrap().insert_axis(Axis(1)));
    let g = grad(|p: &[Tensor]| p[0].mean_all())(&[x.clone()]).unwrap();
    close(&g[0], &x.mapv(|_| 1.0 / 6.0));
    let e = trace("f", &[Type::new(DType::I32, [3])], |p| p[0].mean_all())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`mean` of i32[3]: cast the tensor to f32 or f64 first"),
        "{e}"
    );
    assert!(e.contains("tests/tensor_ops.rs"), "{e}");
}

#[test]
fn reductions_keep_their_axes_and_reduce_everything() {
    let x = m23();
    let sum = run1(|t| t.sum_keepdims(&[0]), &x);
    close(&sum, &x.sum_axis(Axis(0)).insert_axis(Axis(0)));
    let max = run1(|t| t.reduce_max_keepdims(&[1]), &x);
    close(&max, &array![[3.5], [4.0]].into_dyn());
    let min = run1(|t| t.reduce_min_keepdims(&[1]), &x);
    close(&min, &array![[-2.0], [-1.0]].into_dyn());
    close(&run1(Tensor::max_all, &x), &arr0(4.0).into_dyn());
    close(&run1(Tensor::min_all, &x), &arr0(-2.0).into_dyn());
    // Centering by the row maxima: the keepdims result broadcasts back.
    let centered = run1(|t| t - t.reduce_max_keepdims(&[1]), &x);
    close(
        &centered,
        &array![[-2.5, -5.5, 0.0], [-3.75, 0.0, -5.0]].into_dyn(),
    );
    // The gradient of the largest element picks it out.
    let g = grad(|p: &[Tensor]| p[0].max_all())(&[x.clone()]).unwrap();
    close(&g[0], &array![[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]].into_dyn());
    let g = grad(|p: &[Tensor]| p[0].min_all() * 3.0)(&[x.clone()]).unwrap();
    close(&g[0], &array![[0.0, 3.0, 0.0], [0.0, 0.0, 0.0]].into_dyn());
}

#[test]
fn logsumexp_is_stable_and_its_gradient_is_the_softmax() {
    let x = m23();
    let lse = run1(|t| t.logsumexp(&[1]), &x);
    close(&lse, &x.mapv(f64::exp).sum_axis(Axis(1)).mapv(f64::ln));
    let kept = run1(|t| t.logsumexp_keepdims(&[1]), &x);
    close(&kept, &lse.clone().insert_axis(Axis(1)));
    // Large values: naive exp overflows, the shifted form does not.
    let big: A = array![1000.0, 1001.0].into_dyn();
    let lse = run1(|t| t.logsumexp(&[0]), &big);
    close(
        &lse,
        &arr0(1001.0 + (1.0 + (-1.0f64).exp()).ln()).into_dyn(),
    );
    // All -inf: the shift is 0 (not -inf), so the result is -inf, not NaN.
    let none: A = array![f64::NEG_INFINITY, f64::NEG_INFINITY].into_dyn();
    let lse = run1(|t| t.logsumexp(&[0]), &none);
    assert_eq!(lse[[]], f64::NEG_INFINITY);
    // d/dx sum_rows logsumexp = softmax of each row.
    let g = grad(|p: &[Tensor]| p[0].logsumexp(&[1]).sum_all())(&[x.clone()]).unwrap();
    close(&g[0], &softmax_rows(&x));
}

#[test]
fn softmax_and_log_softmax_match_their_closed_forms() {
    let x = m23();
    let s = softmax_rows(&x);
    close(&run1(|t| t.softmax(1), &x), &s);
    close(&run1(|t| t.log_softmax(1), &x), &s.mapv(f64::ln));
    let big: A = array![[1000.0, 1001.0]].into_dyn();
    let e = (-1.0f64).exp();
    close(
        &run1(|t| t.softmax(1), &big),
        &array![[e / (1.0 + e), 1.0 / (1.0 + e)]].into_dyn(),
    );
    // grad sum(softmax(x) w) = s (w - sum(s w)) per row; grad sum(log_softmax(x) w) =
    // w - s sum(w) per row.
    let w: A = array![[0.5, -1.0, 2.0], [1.0, 0.0, -3.0]].into_dyn();
    let wc = w.clone();
    let g = grad(move |p: &[Tensor]| {
        let wt = traceform::constant(&wc);
        (p[0].softmax(1) * wt).sum_all()
    })(&[x.clone()])
    .unwrap();
    let sw = (&s * &w).sum_axis(Axis(1)).insert_axis(Axis(1));
    close(&g[0], &(&s * &(&w - &sw)));
    let wc = w.clone();
    let g =
        grad(move |p: &[Tensor]| (p[0].log_softmax(1) * traceform::constant(&wc)).sum_all())(&[
            x.clone()
        ])
        .unwrap();
    let wsum = w.sum_axis(Axis(1)).insert_axis(Axis(1));
    close(&g[0], &(&w - &(&s * &wsum)));
}

/// `a @ b` for stacks of matrices with the same batch shape [2].
fn batched(a: &A, b: &A) -> A {
    let mut out = Vec::new();
    for i in 0..a.shape()[0] {
        let ai = a
            .index_axis(Axis(0), i)
            .into_dimensionality::<Ix2>()
            .unwrap();
        let bi = b
            .index_axis(Axis(0), i)
            .into_dimensionality::<Ix2>()
            .unwrap();
        out.push(ai.dot(&bi).insert_axis(Axis(0)));
    }
    let views: Vec<_> = out.iter().map(|o| o.view()).collect();
    ndarray::concatenate(Axis(0), &views).unwrap().into_dyn()
}

fn counting(shape: &[usize], scale: f64) -> A {
    let n: usize = shape.iter().product();
    ArrayD::from_shape_vec(shape, (0..n).map(|k| (k as f64 - 3.0) * scale).collect()).unwrap()
}

#[test]
fn matmul_batches_like_jnp_matmul() {
    let a = counting(&[2, 3, 4], 0.5);
    let b = counting(&[4, 5], 0.25);
    let b2 = ndarray::stack(Axis(0), &[b.view(), b.view()]).unwrap();
    let ab = run(|p| vec![p[0].matmul(&p[1])], &[a.clone(), b.clone()]).remove(0);
    assert_eq!(ab.shape(), &[2, 3, 5]);
    close(&ab, &batched(&a, &b2));
    // Both batched, broadcasting [2,1] against [3]: [2,1,3,4] @ [3,4,2] -> [2,3,3,2].
    let a = counting(&[2, 1, 3, 4], 0.5);
    let c = counting(&[3, 4, 2], 0.125);
    let ac = run(|p| vec![p[0].matmul(&p[1])], &[a.clone(), c.clone()]).remove(0);
    assert_eq!(ac.shape(), &[2, 3, 3, 2]);
    for i in 0..2 {
        for j in 0..3 {
            let ai = a.index_axis(Axis(0), i).index_axis(Axis(0), 0).to_owned();
            let cj = c.index_axis(Axis(0), j).to_owned();
            let want = ai
                .into_dimensionality::<Ix2>()
                .unwrap()
                .dot(&cj.into_dimensionality::<Ix2>().unwrap());
            let got = ac.index_axis(Axis(0), i).index_axis(Axis(0), j).to_owned();
            close(&got, &want.into_dyn());
        }
    }
    // Vectors: a row on the left, a column on the right, their axis dropped.
    let v4 = counting(&[4], 1.0);
    let stack = counting(&[2, 4, 5], 0.5);
    let vs = run(|p| vec![p[0].matmul(&p[1])], &[v4.clone(), stack.clone()]).remove(0);
    assert_eq!(vs.shape(), &[2, 5]);
    let sv = run(
        |p| vec![p[0].matmul(&p[1])],
        &[counting(&[2, 3, 4], 1.0), v4.clone()],
    )
    .remove(0);
    assert_eq!(sv.shape(), &[2, 3]);
    let vv = run(|p| vec![p[0].matmul(&p[1])], &[v4.clone(), v4.clone()]).remove(0);
    close(&vv, &arr0((&v4 * &v4).sum()).into_dyn());
}

#[test]
fn matmul_gradients_sum_over_the_broadcast_batch() {
    // d sum(a @ b) / d b[k, m] = sum over the batch and rows of a[., ., k].
    let a = counting(&[2, 3, 4], 0.5);
    let b = counting(&[4, 5], 0.25);
    let g = grad(|p: &[Tensor]| p[0].matmul(&p[1]).sum_all())(&[a.clone(), b.clone()]).unwrap();
    let col = a.sum_axis(Axis(0)).sum_axis(Axis(0));
    let want = ArrayD::from_shape_fn(vec![4, 5], |i| col[i[0]]);
    close(&g[1], &want);
    let row = b.sum_axis(Axis(1));
    close(&g[0], &ArrayD::from_shape_fn(vec![2, 3, 4], |i| row[i[2]]));
}

#[test]
fn matmul_errors_name_the_shapes_and_the_line() {
    let e = trace_error(|p| p[0].matmul(&p[1]).sum_all(), &[&[2, 3, 4], &[3, 4, 5]]);
    assert!(
        e.contains(
            "`matmul`: the batch shapes [2] and [3] of f64[2,3,4] and f64[3,4,5] do not broadcast"
        ),
        "{e}"
    );
    assert!(e.contains("tests/tensor_ops.rs"), "{e}");
    let e = trace_error(|p| p[0].matmul(&p[1]).sum_all(), &[&[], &[3]]);
    assert!(
        e.contains("`matmul`: operands must have rank 1 or more"),
        "{e}"
    );
}

#[test]
fn where_broadcasts_and_takes_number_branches() {
    let x: A = array![-1.5, 0.5, 2.0].into_dyn();
    close(
        &run1(|t| t.gt(0.0).where_(t, 0.0), &x),
        &array![0.0, 0.5, 2.0].into_dyn(),
    );
    close(
        &run1(|t| t.gt(0.0).where_(1.0, -1.0), &x),
        &array![-1.0, 1.0, 1.0].into_dyn(),
    );
    // A [3] predicate against a [2,3] branch and a number.
    let m = counting(&[2, 3], 1.0);
    let got = run(
        |p| vec![p[0].gt(0.0).where_(&p[1], -7.0)],
        &[x.clone(), m.clone()],
    )
    .remove(0);
    close(
        &got,
        &array![[-7.0, -2.0, -1.0], [-7.0, 1.0, 2.0]].into_dyn(),
    );
    // relu's gradient is the indicator of x > 0.
    let g = grad(|p: &[Tensor]| p[0].gt(0.0).where_(&p[0], 0.0).sum_all())(&[x.clone()]).unwrap();
    close(&g[0], &array![0.0, 1.0, 1.0].into_dyn());
    let e = trace_error(|p| p[0].gt(0.0).where_(&p[1], 0.0).sum_all(), &[&[3], &[4]]);
    assert!(e.contains("`where`: cannot broadcast"), "{e}");
}

#[test]
fn f32_numbers_are_operands() {
    let x: ArrayD<f32> = array![1.0f32, -2.0, 4.0].into_dyn();
    let f = |p: &[Tensor]| {
        let y = (&p[0] * 2.0f32 + 1.0f32) / 4.0f32 - 0.5f32;
        let z = &y * 3.0f32 - (&p[0] * &p[0] + 2.0f32).powi(-1) + (-&y + 1.0f32);
        z.sum_all()
    };
    // y = x / 2, z = 2 y + 1 - 1 / (2 + x^2): dz/dx = 1 + 2x / (2 + x^2)^2.
    let g = grad(f)(&[x.clone()]).unwrap().remove(0);
    for (got, x) in g.iter().zip(&x) {
        let x = f64::from(*x);
        let want = 1.0 + 2.0 * x / (2.0 + x * x).powi(2);
        assert!((f64::from(*got) - want).abs() < 1e-6, "{g}");
    }
    // On an f64 tensor an f32 number is a literal of the tensor's dtype.
    let d = run1(|t| t * 0.5f32 - 0.25f32, &array![1.0, 3.0].into_dyn());
    close(&d, &array![0.25, 1.25].into_dyn());
}

/// The 2-d cross-correlation of one NCHW image with one OIHW kernel, at stride 1 over the
/// image padded by `pad` zeros on every side: the closed form `conv2d` is checked against.
fn correlate(x: &A, w: &A, pad: usize) -> A {
    let (n, c, h, wd) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
    let (o, kh, kw) = (w.shape()[0], w.shape()[2], w.shape()[3]);
    let (oh, ow) = (h + 2 * pad + 1 - kh, wd + 2 * pad + 1 - kw);
    ArrayD::from_shape_fn(vec![n, o, oh, ow], |i| {
        let mut s = 0.0;
        for ci in 0..c {
            for a in 0..kh {
                for b in 0..kw {
                    let (r, q) = (i[2] + a, i[3] + b);
                    if r >= pad && q >= pad && r - pad < h && q - pad < wd {
                        s += x[[i[0], ci, r - pad, q - pad]] * w[[i[1], ci, a, b]];
                    }
                }
            }
        }
        s
    })
}

#[test]
fn conv2d_valid_and_same_match_the_cross_correlation() {
    let x = counting(&[2, 3, 5, 5], 0.125);
    let w = counting(&[4, 3, 3, 3], -0.0625);
    let valid = run(
        |p| vec![p[0].conv2d(&p[1], [1, 1], ConvPadding::Valid)],
        &[x.clone(), w.clone()],
    );
    close(&valid[0], &correlate(&x, &w, 0));
    let same = run(
        |p| vec![p[0].conv2d(&p[1], [1, 1], ConvPadding::Same)],
        &[x.clone(), w.clone()],
    );
    close(&same[0], &correlate(&x, &w, 1));
    // Stride 2 keeps every other position of the stride-1 result, ceil(5/2) = 3 of them.
    let strided = run(
        |p| vec![p[0].conv2d(&p[1], [2, 2], ConvPadding::Same)],
        &[x.clone(), w.clone()],
    );
    let every_other = correlate(&x, &w, 1).slice_move(ndarray::s![.., .., ..;2, ..;2]);
    close(&strided[0], &every_other.into_dyn());
    let pairs = run(
        |p| {
            let padding = ConvPadding::Pairs([(1, 1), (1, 1)][..].into());
            vec![p[0].conv2d(&p[1], [1, 1], padding)]
        },
        &[x.clone(), w.clone()],
    );
    close(&pairs[0], &same[0]);
}

#[test]
fn conv2d_gradients_are_window_sums() {
    // d sum(conv2d(x, w)) / d w[o, c, a, b] = the sum of x[., c] over the window offset (a, b).
    let x = counting(&[2, 2, 4, 5], 0.25);
    let w = counting(&[3, 2, 2, 3], 0.5);
    let f = |p: &[Tensor]| p[0].conv2d(&p[1], [1, 1], ConvPadding::Valid).sum_all();
    let g = grad(f)(&[x.clone(), w.clone()]).unwrap();
    let want = ArrayD::from_shape_fn(vec![3, 2, 2, 3], |i| {
        x.slice(ndarray::s![.., i[1], i[2]..i[2] + 3, i[3]..i[3] + 3])
            .sum()
    });
    close(&g[1], &want);
    // And d / d x[n, c, r, q] = the sum of w[., c] over the taps that read (r, q).
    let want_x = ArrayD::from_shape_fn(vec![2, 2, 4, 5], |i| {
        let mut s = 0.0;
        for a in 0..2 {
            for b in 0..3 {
                let (r, q) = (i[2] as i64 - a as i64, i[3] as i64 - b as i64);
                if (0..3).contains(&r) && (0..3).contains(&q) {
                    s += w.slice(ndarray::s![.., i[1], a, b]).sum();
                }
            }
        }
        s
    });
    close(&g[0], &want_x);
}

#[test]
fn conv_errors_name_the_shapes_and_the_line() {
    let e = trace_error(
        |p| p[0].conv2d(&p[1], [1, 1], ConvPadding::Valid).sum_all(),
        &[&[1, 3, 4, 4], &[2, 2, 3, 3]],
    );
    assert!(
        e.contains("`conv_general_dilated`: lhs f64[1,3,4,4] has 3 features but rhs f64[2,2,3,3]"),
        "{e}"
    );
    assert!(e.contains("tests/tensor_ops.rs"), "{e}");
    // A kernel of the wrong rank is a shape error too, not a panic of the padding helper.
    let e = trace_error(
        |p| p[0].conv2d(&p[1], [1, 1], ConvPadding::Same).sum_all(),
        &[&[1, 3, 4, 4], &[2]],
    );
    assert!(e.contains("must have one rank of at least 3"), "{e}");
}
