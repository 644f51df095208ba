//! The case traceform was started for: the directional derivative of AlexNet's loss along a
//! perturbation of its weights, by true forward mode (`jvp`) and by the double-vjp trick a
//! PyTorch user falls back on, with the memory each holds.
//!
//! AlexNet (torchvision's layers: 5 convolutions, 3 max pools, 3 dense layers, 61.1M weights)
//! with random weights, a batch of 8 random 3x224x224 images and one-hot labels, and the mean
//! softmax cross-entropy as `f`. `t` is a random direction in weight space (one tangent per
//! weight array). Three programs compute `<grad f, t>`:
//!
//! - `jvp`: forward mode, which holds f's memory plus one tangent per live value;
//! - the double-vjp trick: `vjp` of `f`'s pullback with respect to its cotangent, applied to
//!   `t`. Kept whole (as a tape-based framework runs it) it also returns `f` and the
//!   gradients, and holds the backward pass's residuals; keeping only its last output
//!   (`select_outputs`, JAX's `pull_t(t)`), the pipeline removes the dead backward pass and
//!   schedules what is left, and it holds no more than the jvp;
//! - `grad`, then the inner product with `t` outside the program.
//!
//! Each program is traced, transformed, simplified, compiled by the JIT (the default backend)
//! and run once; the table shows its size, the most memory its intermediate values held at once
//! (the JIT's arena, `peak_bytes`: inputs and outputs not counted, as XLA's "temp"), and its
//! time, beside JAX 0.10.2's jax.jit figures for the same programs on the same kind of machine
//! (`shared/workloads/README.md`).
//!
//! Run: `cargo run --release --example alexnet_jvp`

use std::time::Instant;

use ndarray::{ArrayD, IxDyn};
use traceform::ir::ConvPadding;
use traceform::transforms::{self as tf, Limits};
use traceform::{trace, DType, Func, Tensor, Type, Value};

const BATCH: usize = 8;
const CLASSES: usize = 1000;

/// The shapes of the 16 weight arrays, in torchvision's order (weight, bias per layer).
const WEIGHTS: [&[usize]; 16] = [
    &[64, 3, 11, 11],
    &[64],
    &[192, 64, 5, 5],
    &[192],
    &[384, 192, 3, 3],
    &[384],
    &[256, 384, 3, 3],
    &[256],
    &[256, 256, 3, 3],
    &[256],
    &[9216, 4096],
    &[4096],
    &[4096, 4096],
    &[4096],
    &[4096, CLASSES],
    &[CLASSES],
];

fn conv_relu(x: &Tensor, w: &Tensor, b: &Tensor, stride: usize, pad: i64) -> Tensor {
    let padding = ConvPadding::Pairs([(pad, pad), (pad, pad)][..].into());
    let y = x.conv2d(w, [stride, stride], padding);
    (&y + b.broadcast_in_dim(&y.shape(), &[1])).max(0.0)
}

fn max_pool(x: &Tensor) -> Tensor {
    x.max_pool(&[3, 3], &[2, 2], &[(0, 0), (0, 0)])
}

fn dense(x: &Tensor, w: &Tensor, b: &Tensor) -> Tensor {
    let y = x.matmul(w);
    &y + b.broadcast_in_dim(&y.shape(), &[1])
}

/// `f(weights..., images, labels)`: the mean softmax cross-entropy of AlexNet.
fn alexnet_loss(xs: &[Tensor]) -> Tensor {
    let (w, images, labels) = (&xs[..16], &xs[16], &xs[17]);
    let h = max_pool(&conv_relu(images, &w[0], &w[1], 4, 2));
    let h = max_pool(&conv_relu(&h, &w[2], &w[3], 1, 2));
    let h = conv_relu(&h, &w[4], &w[5], 1, 1);
    let h = conv_relu(&h, &w[6], &w[7], 1, 1);
    let h = max_pool(&conv_relu(&h, &w[8], &w[9], 1, 1));
    let h = h.reshape(&[BATCH, 9216]);
    let h = dense(&h, &w[10], &w[11]).max(0.0);
    let h = dense(&h, &w[12], &w[13]).max(0.0);
    let z = dense(&h, &w[14], &w[15]);
    -(labels * z.log_softmax(1)).sum(&[1]).mean_all()
}

/// A small deterministic generator of normal samples (xorshift64* and Box-Muller), so the
/// example needs no data and no extra crate.
struct Normal(u64);

impl Normal {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        (bits as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn sample(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }

    fn array(&mut self, shape: &[usize], scale: f32) -> Value {
        let n = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|_| self.sample() * scale).collect();
        Value::from(ArrayD::from_shape_vec(IxDyn(shape), data).expect("shape and data agree"))
    }
}

fn simplified(func: Func) -> Func {
    let limits = Limits::for_size(func.eqns.len());
    tf::simplify(&func, &limits).0
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// A program run once: its outputs, size, peak and time.
struct Run {
    outputs: Vec<Value>,
    eqns: usize,
    peak: usize,
    ms: f64,
}

fn run(func: &Func, inputs: &[&Value]) -> Result<Run, Box<dyn std::error::Error>> {
    let exe = traceform::jit::compile(func)?;
    let start = Instant::now();
    let outputs = exe.run(inputs)?;
    Ok(Run {
        outputs,
        eqns: func.eqns.len(),
        peak: exe.peak_bytes(),
        ms: start.elapsed().as_secs_f64() * 1e3,
    })
}

fn scalar(v: &Value) -> f64 {
    v.to_f64_vec()[0]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Inputs: weights scaled as He initialisation, images, one-hot labels, and a direction.
    let mut rng = Normal(0x5EED_A1E7_0000_0001);
    let mut weights = Vec::new();
    for shape in WEIGHTS {
        let fan_in: usize = if shape.len() == 1 {
            1
        } else if shape.len() == 2 {
            shape[0]
        } else {
            shape[1..].iter().product()
        };
        let scale = if shape.len() == 1 {
            0.01
        } else {
            (2.0 / fan_in as f32).sqrt()
        };
        weights.push(rng.array(shape, scale));
    }
    let images = rng.array(&[BATCH, 3, 224, 224], 1.0);
    let mut labels = ArrayD::<f32>::zeros(IxDyn(&[BATCH, CLASSES]));
    for b in 0..BATCH {
        labels[[b, (b * 97) % CLASSES]] = 1.0;
    }
    let labels = Value::from(labels);
    let direction: Vec<Value> = WEIGHTS.iter().map(|s| rng.array(s, 1.0)).collect();
    let zero = Value::from(ndarray::arr0(0.0f32).into_dyn());

    // Trace f once; every program is a transform of this graph.
    let mut types: Vec<Type> = WEIGHTS.iter().map(|s| Type::new(DType::F32, s)).collect();
    types.push(Type::new(DType::F32, [BATCH, 3, 224, 224]));
    types.push(Type::new(DType::F32, [BATCH, CLASSES]));
    let f = trace("alexnet", &types, alexnet_loss)?;
    let wrt: Vec<usize> = (0..16).collect();

    let jvp = simplified(tf::jvp(&f, Some(&wrt))?);
    let grad = simplified(tf::grad(&f, Some(&wrt))?);
    // vjp(f): (x..., ybar) -> (f, grads...); its vjp with respect to ybar (input 18) takes
    // cotangents for (f, grads...): 0 for f, the direction for the gradients.
    let double_vjp_whole = simplified(tf::vjp(&tf::vjp(&f, Some(&wrt))?, Some(&[18]))?);
    let last = double_vjp_whole.outputs.len() - 1;
    let double_vjp = simplified(tf::select_outputs(&double_vjp_whole, &[last])?);
    let eval = simplified(f.clone());

    let mut xs: Vec<&Value> = weights.iter().collect();
    xs.push(&images);
    xs.push(&labels);
    let with_direction: Vec<&Value> = xs.iter().copied().chain(&direction).collect();
    let mut double_vjp_inputs = xs.clone();
    double_vjp_inputs.push(&zero); // ybar: the first vjp's cotangent (JAX: zeros_like(y))
    double_vjp_inputs.push(&zero); // the cotangent of f's value
    double_vjp_inputs.extend(&direction); // the cotangents of the gradients

    println!("AlexNet, batch {BATCH}, 61.1M weights: <grad f, t> three ways\n");
    let e = run(&eval, &xs)?;
    let j = run(&jvp, &with_direction)?;
    let dv = run(&double_vjp, &double_vjp_inputs)?;
    let dvw = run(&double_vjp_whole, &double_vjp_inputs)?;
    let g = run(&grad, &xs)?;

    let by_jvp = scalar(&j.outputs[1]);
    let by_double_vjp = scalar(&dv.outputs[0]);
    let by_double_vjp_whole = scalar(dvw.outputs.last().expect("one output at least"));
    let by_grad: f64 = g
        .outputs
        .iter()
        .zip(&direction)
        .map(|(g, t)| {
            let (g, t) = (g.to_f64_vec(), t.to_f64_vec());
            g.iter().zip(&t).map(|(a, b)| a * b).sum::<f64>()
        })
        .sum();
    println!("f = {:.6}", scalar(&e.outputs[0]));
    println!("<grad f, t> by jvp:                {by_jvp:.6}");
    println!("            by the double-vjp:     {by_double_vjp:.6} (whole program: {by_double_vjp_whole:.6})");
    println!("            by grad, then dot t:   {by_grad:.6}");
    let rel = |a: f64, b: f64| (a - b).abs() / b.abs().max(1e-30);
    let worst = rel(by_double_vjp, by_jvp)
        .max(rel(by_double_vjp_whole, by_jvp))
        .max(rel(by_grad, by_jvp));
    println!("largest relative difference: {worst:.1e} (f32 sums over 61.1M terms)\n");

    println!("| program | equations | peak MiB | time ms | JAX XLA temp MiB | JAX eager MiB |");
    println!("|---|---|---|---|---|---|");
    let row = |name: &str, r: &Run, xla: &str, eager: &str| {
        println!(
            "| {name} | {} | {:.1} | {:.0} | {xla} | {eager} |",
            r.eqns,
            mib(r.peak),
            r.ms
        );
    };
    row("eval", &e, "21.1", "17");
    row("jvp", &j, "42.3", "28");
    row("double-vjp, last output", &dv, "42.3", "421");
    row("double-vjp, whole", &dvw, "-", "-");
    row("grad", &g, "74.1", "403");
    println!(
        "\njvp / eval memory: {:.2}x; double-vjp (last output) / jvp: {:.2}x",
        j.peak as f64 / e.peak as f64,
        dv.peak as f64 / j.peak as f64
    );
    if worst > 1e-3 {
        return Err(format!("the three derivatives disagree: {worst:.1e}").into());
    }
    Ok(())
}
