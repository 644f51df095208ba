//! `conv_gflops`: the throughput of the interpreter's `conv_general_dilated` kernel (im2col +
//! GEMM) on one AlexNet-sized layer, lhs `f32[8,64,27,27]`, rhs `f32[192,64,5,5]`, padding 2,
//! stride 1 (AlexNet's second convolution), forward and through `vjp` (both transposed
//! convolutions), beside bare calls of the runtime's GEMM of the same sizes. Prints the best
//! of several runs in GFLOP/s, counting 2 FLOPs per multiply-add of the direct definition.
//!
//! ```text
//! cargo run --release -p traceform-benches --bin conv_gflops [-- RUNS [forward]]
//! ```

use std::time::Instant;

use ndarray::{ArrayD, IxDyn};
use traceform_ir::parse_func;
use traceform_runtime::{eval, Value};
use traceform_transforms::vjp;

const PROGRAM: &str = "func layer(x: f32[8,64,27,27], w: f32[192,64,5,5]) -> f32[8,192,27,27] {
  y: f32[8,192,27,27] = conv_general_dilated[window_strides=(1,1), padding=((2,2),(2,2))] x w
  return y
}";

/// Deterministic values in [-1, 1).
fn values(shape: &[usize], seed: u64) -> Value {
    let mut state = seed;
    let data = (0..shape.iter().product::<usize>())
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    Value::F32(ArrayD::from_shape_vec(IxDyn(shape), data).expect("sizes agree"))
}

/// The best wall time of `runs` evaluations, in seconds.
fn best_of(runs: usize, f: &traceform_ir::Func, inputs: &[Value]) -> f64 {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            let out = eval(f, inputs).expect("evaluates");
            std::hint::black_box(out);
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let f = parse_func(PROGRAM).expect("parses");
    let (x, w) = (values(&[8, 64, 27, 27], 1), values(&[192, 64, 5, 5], 2));
    let flops = 2.0 * (8 * 192 * 27 * 27) as f64 * (64 * 5 * 5) as f64;
    let forward = best_of(runs, &f, &[x.clone(), w.clone()]);
    println!(
        "forward: {:.1} ms, {:.1} GFLOP/s ({:.2} GFLOP)",
        forward * 1e3,
        flops / forward / 1e9,
        flops / 1e9
    );
    // The same multiply-adds as eight bare calls of the runtime's GEMM ([192,1600] by
    // [1600,729]): the ceiling the column gathering is measured against.
    let a = ndarray::Array2::<f32>::from_elem((192, 1600), 0.5);
    let b = ndarray::Array2::<f32>::from_elem((1600, 729), 0.25);
    let mut c = ndarray::Array2::<f32>::zeros((192, 729));
    let gemm = (0..runs)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..8 {
                traceform_runtime::mat_mul(a.view(), b.view(), c.view_mut());
            }
            std::hint::black_box(&c);
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    println!(
        "bare GEMM, same shape: {:.1} ms, {:.1} GFLOP/s",
        gemm * 1e3,
        flops / gemm / 1e9
    );
    if std::env::args().nth(2).as_deref() == Some("forward") {
        return;
    }
    let back = vjp(&f, None).expect("vjp");
    let c = values(&[8, 192, 27, 27], 3);
    // The forward convolution again, then one transposed convolution per operand.
    let total = best_of(runs, &back, &[x, w, c]);
    println!(
        "vjp (forward + both transposes): {:.1} ms, {:.1} GFLOP/s",
        total * 1e3,
        3.0 * flops / total / 1e9
    );
}
