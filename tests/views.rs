//! Issue 7: arrays and views are evaluated where they are, so views in layouts other than
//! row-major reach the kernels and the JIT as they are. They must give what their row-major
//! copies give: through reused transformed closures (a transposed matrix, `.t()`, and a strided
//! vector, `s![..;2]`), on the interpreter (their first calls) and compiled (later ones); and for
//! every program and transform of the conformance corpus, evaluated by the interpreter with
//! every input transposed, strided or reversed, element for element equal (to the rounding of
//! a GEMM whose kernels depend on its operands' strides, see `layout_tolerance`).

mod common;

use common::{corpus_pairs, mismatch};
use ndarray::{s, Array1, Array2, ArrayD, ArrayViewD, Axis, Slice};
use traceform::{grad, hvp, jvp, value_and_grad, Tensor, Value, ValueRef};

/// A function reading its inputs through many kernels: a matrix-vector product, cumsum,
/// softmax, elementwise chains and reductions over each axis. `m: f64[4,3]`, `v: f64[3]`.
fn f(p: &[Tensor]) -> Tensor {
    let (m, v) = (&p[0], &p[1]);
    let h = m.matmul(v).tanh();
    (h.cumsum(0, false) * &h).sum_all()
        + m.softmax(1).powi(2).sum_all()
        + (m.sin() * m).sum(&[0]).sum_all()
        + m.reduce_max(&[1]).exp().sum_all()
        + v.logsumexp(&[0])
}

/// Calls of a reused closure: it moves to the JIT after sixteen (`Runnable` in `src/api.rs`).
const CALLS: usize = 20;

#[track_caller]
fn close(got: &[ArrayD<f64>], want: &[ArrayD<f64>], call: usize) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.shape(), w.shape(), "call {call}");
        assert!(
            g.is_standard_layout(),
            "call {call}: a result in another layout"
        );
        for (a, b) in g.iter().zip(w) {
            assert!(
                (a - b).abs() <= 1e-12 * (1.0 + b.abs()),
                "call {call}: got {g}, want {w}"
            );
        }
    }
}

#[test]
fn transposed_and_strided_views_give_what_their_copies_give_on_both_backends() {
    let stored_m = Array2::from_shape_fn((3, 4), |(i, j)| (i * 4 + j) as f64 * 0.3 - 1.7);
    let stored_v = Array1::from_shape_fn(6, |i| 0.5 - i as f64 * 0.4);
    let (stored_tm, stored_tv) = (stored_m.mapv(f64::cos), stored_v.mapv(f64::sin));
    // m: f64[4,3] transposed, v: f64[3] every other element; their tangents alike.
    let views = [stored_m.t().into_dyn(), stored_v.slice(s![..;2]).into_dyn()];
    let tangent_views = [
        stored_tm.t().into_dyn(),
        stored_tv.slice(s![..;2]).into_dyn(),
    ];
    assert!(views
        .iter()
        .chain(&tangent_views)
        .all(|v| !v.is_standard_layout()));
    let standard = |vs: &[ArrayViewD<'_, f64>]| -> Vec<ArrayD<f64>> {
        vs.iter()
            .map(|v| v.as_standard_layout().into_owned())
            .collect()
    };
    let (copies, tangents) = (standard(&views), standard(&tangent_views));
    assert!(copies
        .iter()
        .chain(&tangents)
        .all(|c| c.is_standard_layout()));

    let want_grad = grad(f)(&copies).unwrap();
    let want_jvp = jvp(f)(&copies, &tangents).unwrap();
    let want_hvp = hvp(f)(&copies, &tangents).unwrap();
    let want_value_and_grad = value_and_grad(f)(&copies).unwrap();
    let (g, j, h, vg) = (grad(f), jvp(f), hvp(f), value_and_grad(f));
    for call in 0..CALLS {
        close(&g(&views).unwrap(), &want_grad, call);
        close(&j(&views, &tangent_views).unwrap(), &want_jvp, call);
        close(&h(&views, &tangent_views).unwrap(), &want_hvp, call);
        close(&vg(&views).unwrap(), &want_value_and_grad, call);
    }
}

/// How an input is stored and viewed.
#[derive(Clone, Copy, Debug)]
enum Layout {
    /// Stored with its axes reversed, viewed transposed back (column-major).
    Transposed,
    /// Stored with every element twice along the last axis, viewed with step 2.
    Strided,
    /// Stored with the first axis reversed, viewed reversed back (a negative stride).
    Reversed,
}

/// The array whose view in `layout` (`view`) has the elements of `a`.
fn store<T: Clone>(a: &ArrayD<T>, layout: Layout) -> ArrayD<T> {
    match layout {
        Layout::Transposed => a.t().as_standard_layout().into_owned(),
        Layout::Strided if a.ndim() > 0 => {
            let last = a.ndim() - 1;
            let mut shape = a.shape().to_vec();
            shape[last] *= 2;
            ArrayD::from_shape_fn(shape, |mut index| {
                index[last] /= 2;
                a[index].clone()
            })
        }
        Layout::Reversed if a.ndim() > 0 => {
            let mut reversed = a.view();
            reversed.invert_axis(Axis(0));
            reversed.as_standard_layout().into_owned()
        }
        Layout::Strided | Layout::Reversed => a.clone(),
    }
}

/// `stored`, made by `store`, viewed in `layout`: the elements of the original array.
fn view<T>(stored: &ArrayD<T>, layout: Layout) -> ArrayViewD<'_, T> {
    match layout {
        Layout::Transposed => stored.t(),
        Layout::Strided if stored.ndim() > 0 => {
            let last = stored.ndim() - 1;
            stored.slice_each_axis(|ax| {
                let step = if ax.axis.index() == last { 2 } else { 1 };
                Slice::new(0, None, step)
            })
        }
        Layout::Reversed if stored.ndim() > 0 => {
            let mut v = stored.view();
            v.invert_axis(Axis(0));
            v
        }
        Layout::Strided | Layout::Reversed => stored.view(),
    }
}

macro_rules! each_dtype {
    ($value:expr, $a:ident => $e:expr) => {
        match $value {
            Value::F32($a) => Value::F32($e),
            Value::F64($a) => Value::F64($e),
            Value::I32($a) => Value::I32($e),
            Value::Bool($a) => Value::Bool($e),
        }
    };
}

fn view_value(stored: &Value, layout: Layout) -> ValueRef<'_> {
    match stored {
        Value::F32(a) => ValueRef::F32(view(a, layout)),
        Value::F64(a) => ValueRef::F64(view(a, layout)),
        Value::I32(a) => ValueRef::I32(view(a, layout)),
        Value::Bool(a) => ValueRef::Bool(view(a, layout)),
    }
}

/// Equal to the last bits of the output's scale: the GEMM library picks its kernels (and so
/// the order it sums a product's terms in) by the operands' strides, so a product of a
/// transposed view can round differently from the product of its row-major copy, and an hvp's
/// sums of such products cancel (on the corpus only the f32 convolution case differs, by at
/// most 2.4e-7, within 2e-6 of its outputs' largest magnitude). Everything else is bit for
/// bit.
fn layout_tolerance(want: &Value) -> (f64, f64) {
    let scale = want.to_f64_vec().iter().fold(0.0f64, |m, x| m.max(x.abs()));
    match want {
        Value::F32(_) => (0.0, 2e-6 * scale),
        Value::F64(_) => (0.0, 1e-14 * scale),
        Value::I32(_) | Value::Bool(_) => (0.0, 0.0),
    }
}

#[test]
fn every_corpus_pair_evaluates_alike_on_inputs_in_other_layouts() {
    let pairs = corpus_pairs();
    let mut failures = Vec::new();
    for layout in [Layout::Transposed, Layout::Strided, Layout::Reversed] {
        let mut non_standard = 0;
        for pair in &pairs {
            let want = traceform::eval(&pair.program, &pair.inputs).unwrap();
            let stored: Vec<Value> = pair
                .inputs
                .iter()
                .map(|v| each_dtype!(v, a => store(a, layout)))
                .collect();
            let views: Vec<ValueRef<'_>> = stored.iter().map(|v| view_value(v, layout)).collect();
            for (v, original) in views.iter().zip(&pair.inputs) {
                assert_eq!(&v.to_owned(), original, "{} {layout:?}", pair.label());
                non_standard += usize::from(!v.is_standard_layout());
            }
            let got = traceform::eval(&pair.program, &views).unwrap();
            let differs = got.iter().zip(&want).enumerate().find_map(|(k, (g, w))| {
                mismatch(g, w, layout_tolerance(w)).map(|m| format!("out{k}: {m}"))
            });
            if let Some(m) = differs {
                failures.push(format!("{} {layout:?}: {m}", pair.label()));
            }
        }
        // Most inputs have an axis to transpose, stride or reverse.
        assert!(
            non_standard > pairs.len(),
            "{layout:?}: {non_standard} inputs"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
