//! Numerical checks of every primitive's derivative rules, in f64 and in f32, on inputs away
//! from kinks (`tests/kinks.rs` at the root checks the kinks):
//!
//! - **jvp** against central finite differences: |jvp - fd| <= 1e-6 (1 + |jvp|), h = 1e-5;
//! - **vjp** (and so every transpose rule on the path) by the adjoint identity
//!   <c, J t> = <J^T c, t>, relative error <= 1e-12;
//! - **hvp** against central differences of `grad`: |hvp - fd| <= 1e-6 (1 + |hvp|), h = 1e-5;
//! - **f32**: the same programs with every `f64` read as `f32`, at inputs, tangents and
//!   cotangents rounded to f32, against the f64 program at the same numbers (whose derivatives
//!   the checks above vouch for; more robust than f32 finite differences): every output of jvp,
//!   vjp and hvp, elementwise, |f32 - f64| <= 1e-4 (1 + |f64|). The worst seen is 1.5e-5 (the
//!   hvp of `atan2` with a rank-0 operand), most are below 1e-6.
//!
//! Each program applies the primitive under test and then a non-linearity, so linear
//! primitives get a real second-order check too. `every_primitive_is_checked` fails when a
//! primitive of `PrimKind::ALL` appears in none of the programs, so a new primitive cannot
//! slip through without all three checks.

use ndarray::{ArrayD, IxDyn};
use traceform_ir::{parse_func, Atom, Builder, ConvDims, DType, Func, Prim, PrimKind, Type};
use traceform_runtime::{eval, Value};
use traceform_transforms::{grad, hvp, jvp, vjp};

/// One program, and the range its inputs are drawn from.
struct Case {
    name: &'static str,
    text: String,
    lo: f64,
    hi: f64,
    /// For `stop_gradient`, whose derivative finite differences of the program cannot see: a
    /// program taking the inputs twice, `(x..., frozen x...)`, differenced in the first half
    /// only, with the stopped values read from the frozen half.
    frozen: Option<String>,
}

fn unary(op: &str, lo: f64, hi: f64) -> Case {
    Case {
        name: "unary",
        text: format!(
            "func f(x: f64[2,3]) -> f64[] {{
  a: f64[2,3] = {op} x
  b: f64[2,3] = sin a
  c: f64[2,3] = mul b x
  r: f64[] = reduce_sum[axes=(0,1)] c
  return r
}}"
        ),
        lo,
        hi,
        frozen: None,
    }
}

fn binary(op: &str, lo: f64, hi: f64) -> [Case; 2] {
    let same = format!(
        "func f(x: f64[4], y: f64[4]) -> f64[] {{
  a: f64[4] = {op} x y
  b: f64[4] = sin a
  c: f64[4] = mul b y
  r: f64[] = reduce_sum[axes=(0)] c
  return r
}}"
    );
    // A rank-0 operand, which the primitive broadcasts implicitly.
    let scalar = format!(
        "func f(x: f64[4], s: f64[]) -> f64[] {{
  a: f64[4] = {op} s x
  b: f64[4] = tanh a
  c: f64[4] = {op} b s
  d: f64[4] = mul c x
  r: f64[] = reduce_sum[axes=(0)] d
  return r
}}"
    );
    [
        Case {
            name: "binary",
            text: same,
            lo,
            hi,
            frozen: None,
        },
        Case {
            name: "binary_scalar",
            text: scalar,
            lo,
            hi,
            frozen: None,
        },
    ]
}

fn program(name: &'static str, text: &str, lo: f64, hi: f64) -> Case {
    Case {
        name,
        text: text.to_string(),
        lo,
        hi,
        frozen: None,
    }
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for op in [
        "neg", "sin", "cos", "tanh", "exp", "abs", "sign", "logistic", "erf", "floor", "ceil",
        "round", "expm1",
    ] {
        cases.push(unary(op, -1.9, 1.9));
    }
    for op in ["log", "log1p", "sqrt", "rsqrt"] {
        cases.push(unary(op, 0.4, 2.0));
    }
    cases.push(unary("tan", -1.0, 1.0));
    for y in [-2, 0, 1, 3] {
        cases.push(unary(&format!("integer_pow[y={y}]"), 0.4, 2.0));
    }
    let mut stopped = unary("stop_gradient", -1.0, 1.0);
    stopped.frozen = Some(
        "func f(x: f64[2,3], k: f64[2,3]) -> f64[] {
  b: f64[2,3] = sin k
  c: f64[2,3] = mul b x
  r: f64[] = reduce_sum[axes=(0,1)] c
  return r
}"
        .into(),
    );
    cases.push(stopped);
    cases.push(unary("convert_element_type[dtype=f64]", -1.0, 1.0));
    for op in ["add", "sub", "mul", "max", "min", "atan2"] {
        cases.extend(binary(op, -1.9, 1.9));
    }
    for op in ["div", "pow"] {
        cases.extend(binary(op, 0.4, 2.0));
    }
    cases.push(program(
        "compare_select_logic",
        "func f(x: f64[5], y: f64[5]) -> f64[] {
  p: bool[5] = lt x y
  q: bool[5] = ge x 0.1
  r: bool[5] = not q
  s: bool[5] = and p r
  t: bool[5] = or s q
  u: bool[5] = eq x x
  v: bool[5] = ne x y
  w: bool[5] = le x y
  z: bool[5] = gt y 0.0
  a1: bool[5] = and t u
  a2: bool[5] = and v w
  a3: bool[5] = or a1 a2
  a4: bool[5] = and a3 z
  m: f64[5] = mul x y
  n: f64[5] = sin x
  sel: f64[5] = select_n a4 n m
  k: bool[] = lt 0.0 1.0
  sel2: f64[5] = select_n k m sel
  o: f64[5] = mul sel2 x
  out: f64[] = reduce_sum[axes=(0)] o
  return out
}",
        -1.9,
        1.9,
    ));
    cases.push(program(
        "iota_convert_argmax",
        "func f(x: f64[3,4]) -> f64[] {
  i: f64[3,4] = iota[dtype=f64, shape=(3,4), dim=1]
  a: f64[3,4] = mul x i
  m: i32[3] = argmax[axis=1] x
  n: i32[3] = argmin[axis=1] x
  k: i32[3] = add m n
  kf: f64[3] = convert_element_type[dtype=f64] k
  kb: f64[3,4] = broadcast_in_dim[shape=(3,4), dims=(0)] kf
  xi: i32[3,4] = convert_element_type[dtype=i32] x
  xf: f64[3,4] = convert_element_type[dtype=f64] xi
  z: f64[3,4] = zeros[dtype=f64, shape=(3,4)]
  b0: f64[3,4] = mul a kb
  b: f64[3,4] = add b0 z
  c: f64[3,4] = add b xf
  d: f64[3,4] = sin c
  r: f64[] = reduce_sum[axes=(0,1)] d
  return r
}",
        -1.9,
        1.9,
    ));
    cases.push(program(
        "reductions",
        "func f(x: f64[2,3,4]) -> f64[] {
  a: f64[3] = reduce_max[axes=(0,2)] x
  b: f64[2,4] = reduce_min[axes=(1)] x
  c: f64[2] = reduce_sum[axes=(1)] b
  d: f64[] = reduce_sum[axes=(0)] a
  e: f64[] = reduce_sum[axes=(0)] c
  f: f64[] = mul d e
  g: f64[] = sin f
  return g
}",
        -1.9,
        1.9,
    ));
    cases.push(program(
        "cumsum",
        "func f(x: f64[3,4]) -> f64[] {
  a: f64[3,4] = cumsum[axis=0] x
  b: f64[3,4] = cumsum[axis=1, reverse=true] x
  c: f64[3,4] = mul a b
  d: f64[3,4] = sin c
  r: f64[] = reduce_sum[axes=(0,1)] d
  return r
}",
        -1.0,
        1.0,
    ));
    cases.push(program(
        "shapes",
        "func f(x: f64[2,1,3]) -> f64[] {
  a: f64[2,3] = squeeze[dims=(1)] x
  b: f64[3,2] = transpose[perm=(1,0)] a
  c: f64[6] = reshape[shape=(6)] b
  d: f64[6] = rev[dims=(0)] c
  e: f64[1,6,1] = expand_dims[dims=(0,2)] d
  f: f64[4,6,5] = broadcast_in_dim[shape=(4,6,5), dims=(0,1,2)] e
  g: f64[4,6,5] = sin f
  h: f64[6] = reshape[shape=(6)] x
  i: f64[4,6,5] = broadcast_in_dim[shape=(4,6,5), dims=(1)] h
  j: f64[4,6,5] = mul g i
  r: f64[] = reduce_sum[axes=(0,1,2)] j
  return r
}",
        -1.9,
        1.9,
    ));
    cases.push(program(
        "slice_pad_concatenate",
        "func f(x: f64[5,6], v: f64[]) -> f64[] {
  a: f64[2,2] = slice[start=(1,0), limit=(5,6), strides=(2,3)] x
  b: f64[2,2] = slice[start=(0,1), limit=(2,3)] x
  c: f64[2,2] = mul a b
  p: f64[6,2] = pad[low=(1,-1), high=(2,1), interior=(1,0)] c v
  q: f64[6,2] = sin p
  w: f64[5,2] = slice[start=(0,0), limit=(5,2)] x
  k: f64[11,2] = concatenate[axis=0] q w
  m: f64[11,2] = mul k k
  r: f64[] = reduce_sum[axes=(0,1)] m
  return r
}",
        -1.9,
        1.9,
    ));
    cases.push(program(
        "dot_general",
        "func f(x: f64[2,3,4,5], y: f64[5,2,3,6], z: f64[4,6]) -> f64[] {
  a: f64[2,4,6] = dot_general[contract=((1,3),(2,0)), batch=((0),(1))] x y
  b: f64[2,4,6] = tanh a
  c: f64[2,6,6] = dot_general[contract=((1),(0)), batch=((),())] b z
  d: f64[2,6,6] = sin c
  r: f64[] = reduce_sum[axes=(0,1,2)] d
  return r
}",
        -0.5,
        0.5,
    ));
    // Windowed reductions: strides, negative padding, base and window dilation, one to three
    // axes. Every max/min window reads at least one element of x (an empty one is -inf).
    cases.push(program(
        "reduce_window_sum",
        "func f(x: f64[4,5,6], y: f64[7]) -> f64[] {
  a = reduce_window_sum[window_dimensions=(2,3,2), window_strides=(1,2,3), padding=((1,-1),(2,1),(-1,2)), base_dilation=(2,1,1), window_dilation=(1,2,2)] x
  b = sin a
  c = mul b a
  r = reduce_sum[axes=(0,1,2)] c
  p = reduce_window_sum[window_dimensions=(3), padding=((2,-1)), window_strides=(2)] y
  q = mul p p
  s = reduce_sum[axes=(0)] q
  out = add r s
  return out
}",
        -1.9,
        1.9,
    ));
    cases.push(program(
        "reduce_window_max",
        "func f(x: f64[5,6], y: f64[7]) -> f64[] {
  a = reduce_window_max[window_dimensions=(2,3), window_strides=(2,1), padding=((1,0),(-1,1)), base_dilation=(1,2), window_dilation=(2,1)] x
  b = sin a
  c = mul b a
  r = reduce_sum[axes=(0,1)] c
  p = reduce_window_max[window_dimensions=(3), window_strides=(2), padding=((1,1))] y
  q = mul p p
  s = reduce_sum[axes=(0)] q
  out = add r s
  return out
}",
        -1.9,
        1.9,
    ));
    cases.push(program(
        "reduce_window_min",
        "func f(x: f64[3,4,5]) -> f64[] {
  a = reduce_window_min[window_dimensions=(2,2,3), window_strides=(1,2,2), padding=((0,0),(1,0),(0,-1)), window_dilation=(1,2,1)] x
  b = sin a
  c = mul b a
  r = reduce_sum[axes=(0,1,2)] c
  return r
}",
        -1.9,
        1.9,
    ));
    // The derivative primitives themselves: the windowed sum's transpose (linear), and the
    // gather and scatter (x selects; t and the scattered values are linear).
    cases.push(program(
        "reduce_window_sum_transpose",
        "func f(c: f64[3,4]) -> f64[] {
  a = reduce_window_sum_transpose[shape=(4,5), window_dimensions=(2,3), window_strides=(1,2), padding=((0,1),(-1,2)), base_dilation=(1,2), window_dilation=(2,1)] c
  b = sin a
  d = mul b a
  r = reduce_sum[axes=(0,1)] d
  return r
}",
        -1.9,
        1.9,
    ));
    // (x selects; t and the scattered values are linear.)
    cases.push(program(
        "select_and_gather_scatter",
        "func f(x: f64[4,6], t: f64[4,6]) -> f64[] {
  g = select_and_gather_add[select_prim=ge, window_dimensions=(2,2), window_strides=(2,1), padding=((0,0),(1,0)), base_dilation=(1,1), window_dilation=(1,1)] t x
  h = sin g
  k = mul h g
  s = select_and_scatter_add[select_prim=le, window_dimensions=(2,2), window_strides=(2,1), padding=((0,0),(1,0))] k x
  a = sin s
  b = mul a t
  r = reduce_sum[axes=(0,1)] b
  return r
}",
        -1.9,
        1.9,
    ));
    cases.extend(conv_cases());
    cases
}

/// `conv_general_dilated` with respect to both operands, covering every attribute: strides,
/// negative padding, lhs and rhs dilation, feature and batch groups, 1, 2 and 3 spatial axes.
/// Each convolution is followed by `sin`, so the hvp sees the transposed convolutions
/// differentiated again.
fn conv_cases() -> Vec<Case> {
    let conv = |name, params: &str, attrs: &str, out: &str| {
        let axes: Vec<String> = (0..out.split(',').count()).map(|d| d.to_string()).collect();
        program(
            name,
            &format!(
                "func f({params}) -> f64[] {{
  a: f64[{out}] = conv_general_dilated[{attrs}] x w
  b: f64[{out}] = sin a
  r: f64[] = reduce_sum[axes=({})] b
  return r
}}",
                axes.join(",")
            ),
            -1.0,
            1.0,
        )
    };
    vec![
        conv(
            "conv1d_feature_groups_rhs_dilation_negative_padding",
            "x: f64[2,4,7], w: f64[6,2,3]",
            "window_strides=(2), padding=((-1,2)), rhs_dilation=(2), feature_group_count=2",
            "2,6,2",
        ),
        conv(
            "conv2d_batch_groups_lhs_dilation_strides",
            "x: f64[4,3,4,5], w: f64[6,3,2,3]",
            "window_strides=(1,2), padding=((1,-1),(2,1)), lhs_dilation=(2,1), rhs_dilation=(1,1), feature_group_count=1, batch_group_count=2",
            "2,6,6,3",
        ),
        conv(
            "conv2d_feature_groups_both_dilations",
            "x: f64[2,6,5,4], w: f64[3,2,2,2]",
            "window_strides=(2,1), padding=((2,0),(0,-1)), lhs_dilation=(1,2), rhs_dilation=(2,2), feature_group_count=3",
            "2,3,3,4",
        ),
        conv(
            "conv3d_every_attribute",
            "x: f64[1,2,4,3,5], w: f64[2,2,2,2,3]",
            "window_strides=(1,1,2), padding=((0,1),(1,0),(-1,1)), lhs_dilation=(1,2,1), rhs_dilation=(2,1,1)",
            "1,2,3,5,2",
        ),
    ]
}

/// A deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
        lo + (hi - lo) * (bits as f64 / (1u64 << 53) as f64)
    }

    fn array(&mut self, ty: &Type, lo: f64, hi: f64) -> ArrayD<f64> {
        let n = ty.num_elements();
        let data = (0..n).map(|_| self.uniform(lo, hi)).collect();
        ArrayD::from_shape_vec(IxDyn(&ty.shape), data).unwrap()
    }
}

fn values(xs: &[ArrayD<f64>]) -> Vec<Value> {
    xs.iter().map(|x| Value::F64(x.clone())).collect()
}

fn run(f: &Func, xs: &[ArrayD<f64>]) -> Vec<ArrayD<f64>> {
    eval(f, &values(xs))
        .unwrap()
        .into_iter()
        .map(|v| v.as_f64().expect("f64 output").clone())
        .collect()
}

fn dot(a: &[ArrayD<f64>], b: &[ArrayD<f64>]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x * y).sum()).sum()
}

fn axpy(x: &[ArrayD<f64>], h: f64, t: &[ArrayD<f64>]) -> Vec<ArrayD<f64>> {
    x.iter().zip(t).map(|(x, t)| x + &(t * h)).collect()
}

const H: f64 = 1e-5;
const FD_TOL: f64 = 1e-6;

#[track_caller]
fn assert_close(what: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= FD_TOL * (1.0 + got.abs()),
        "{what}: derivative {got} vs finite difference {want}"
    );
}

fn check_case(case: &Case, seed: u64) {
    let f = parse_func(&case.text).unwrap_or_else(|e| panic!("{}: {e}\n{}", case.name, case.text));
    let mut rng = Rng(seed);
    let types = f.param_types();
    let x: Vec<ArrayD<f64>> = types
        .iter()
        .map(|t| rng.array(t, case.lo, case.hi))
        .collect();
    let t: Vec<ArrayD<f64>> = types.iter().map(|t| rng.array(t, -1.0, 1.0)).collect();
    let label = format!(
        "{} ({})",
        case.name,
        case.text.lines().nth(1).unwrap_or("").trim()
    );

    // The function finite differences see, and its gradient w.r.t. the perturbed inputs.
    let n = types.len();
    let (fd_f, fd_grad, frozen_args) = match &case.frozen {
        None => (f.clone(), grad(&f, None).unwrap(), vec![]),
        Some(text) => {
            let g = parse_func(text).unwrap();
            let wrt: Vec<usize> = (0..n).collect();
            let gg = grad(&g, Some(&wrt)).unwrap();
            (g, gg, x.clone())
        }
    };
    let at = |h: f64| {
        let mut a = axpy(&x, h, &t);
        a.extend(frozen_args.iter().cloned());
        a
    };

    // jvp against central differences.
    let jf = jvp(&f, None).unwrap();
    let mut args = x.clone();
    args.extend(t.iter().cloned());
    let jout = run(&jf, &args);
    let plus = run(&fd_f, &at(H));
    let minus = run(&fd_f, &at(-H));
    let fd = (&plus[0] - &minus[0]) / (2.0 * H);
    let tangent = &jout[1];
    for (a, b) in tangent.iter().zip(fd.iter()) {
        assert_close(&format!("jvp of {label}"), *a, *b);
    }

    // vjp: the adjoint identity <c, J t> = <J^T c, t>.
    let vf = vjp(&f, None).unwrap();
    let c = vec![rng.array(&f.output_types()[0], -1.0, 1.0)];
    let mut args = x.clone();
    args.extend(c.iter().cloned());
    let vout = run(&vf, &args);
    let lhs = dot(&c, &jout[1..]);
    let rhs = dot(&vout[1..], &t);
    assert!(
        (lhs - rhs).abs() <= 1e-12 * (1.0 + lhs.abs()),
        "adjoint identity of {label}: <c, Jt> = {lhs}, <J^T c, t> = {rhs}"
    );

    // hvp against central differences of grad.
    let hf = hvp(&f, None).unwrap();
    let mut args = x.clone();
    args.extend(t.iter().cloned());
    let hv = run(&hf, &args);
    let gp = run(&fd_grad, &at(H));
    let gm = run(&fd_grad, &at(-H));
    for (k, hk) in hv.iter().enumerate() {
        let fd = (&gp[k] - &gm[k]) / (2.0 * H);
        for (a, b) in hk.iter().zip(fd.iter()) {
            assert_close(&format!("hvp of {label}, input {k}"), *a, *b);
        }
    }
}

/// The largest ratio `|f32 - f64| / (1 + |f64|)` seen over one case's outputs.
fn f32_error(got: &[Value], want: &[Value]) -> f64 {
    assert_eq!(got.len(), want.len());
    let mut worst: f64 = 0.0;
    for (g, w) in got.iter().zip(want) {
        assert!(g.as_f32().is_some(), "an f32 program returns f32 values");
        for (a, b) in g.to_f64_vec().iter().zip(w.to_f64_vec()) {
            worst = worst.max((a - b).abs() / (1.0 + b.abs()));
        }
    }
    worst
}

fn to_f32(xs: &[ArrayD<f64>]) -> Vec<Value> {
    xs.iter()
        .map(|x| Value::F32(x.mapv(|v| v as f32)))
        .collect()
}

/// The f32 copy of `case` (every `f64` of its text read as `f32`) at f32 inputs, against the
/// f64 program at the same inputs: jvp (values and tangents), vjp with an f32 cotangent and hvp,
/// elementwise. Returns the worst error seen, which must be within `F32_TOL`.
fn check_case_f32(case: &Case, seed: u64) -> f64 {
    let f64_func = parse_func(&case.text).unwrap();
    let text = case.text.replace("f64", "f32");
    let f32_func = parse_func(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", case.name));
    let mut rng = Rng(seed);
    // Inputs rounded to f32 first, so both programs see the same numbers.
    let mut draw =
        |ty: &Type, lo: f64, hi: f64| rng.array(ty, lo, hi).mapv(|v| f64::from(v as f32));
    let types = f64_func.param_types();
    let x: Vec<ArrayD<f64>> = types.iter().map(|t| draw(t, case.lo, case.hi)).collect();
    let t: Vec<ArrayD<f64>> = types.iter().map(|t| draw(t, -1.0, 1.0)).collect();
    let c = vec![draw(&f64_func.output_types()[0], -1.0, 1.0)];
    let label = format!(
        "{} ({})",
        case.name,
        case.text.lines().nth(1).unwrap_or("").trim()
    );
    let mut worst: f64 = 0.0;
    for (what, transform, extra) in [
        ("jvp", jvp as fn(&Func, Option<&[usize]>) -> _, &t),
        ("vjp", vjp, &c),
        ("hvp", hvp, &t),
    ] {
        let mut args = x.clone();
        args.extend(extra.iter().cloned());
        let want = eval(&transform(&f64_func, None).unwrap(), &values(&args)).unwrap();
        let got = eval(&transform(&f32_func, None).unwrap(), &to_f32(&args)).unwrap();
        let error = f32_error(&got, &want);
        assert!(
            error <= F32_TOL,
            "f32 {what} of {label}: |f32 - f64| / (1 + |f64|) = {error:e} > {F32_TOL:e}"
        );
        worst = worst.max(error);
    }
    worst
}

/// Tolerance of the f32 pass: |f32 - f64| <= F32_TOL (1 + |f64|), elementwise.
const F32_TOL: f64 = 1e-4;

#[test]
fn jvp_vjp_and_hvp_of_every_primitive_in_f32_agree_with_f64() {
    let mut worst: f64 = 0.0;
    for (i, case) in cases().iter().enumerate() {
        for seed in 1..=3u64 {
            worst = worst.max(check_case_f32(case, seed * 7919 + i as u64));
        }
    }
    eprintln!("f32 pass: worst |f32 - f64| / (1 + |f64|) = {worst:e}");
}

#[test]
fn jvp_vjp_and_hvp_of_every_primitive_agree_with_finite_differences() {
    for (i, case) in cases().iter().enumerate() {
        for seed in 1..=3u64 {
            check_case(case, seed * 7919 + i as u64);
        }
    }
}

#[test]
fn every_primitive_is_checked() {
    let used: std::collections::BTreeSet<PrimKind> = cases()
        .iter()
        .flat_map(|c| {
            let f = parse_func(&c.text).unwrap_or_else(|e| panic!("{e}\n{}", c.text));
            f.eqns.iter().map(|e| f.prim(e).kind()).collect::<Vec<_>>()
        })
        .collect();
    let missing: Vec<&str> = PrimKind::ALL
        .iter()
        .filter(|k| !used.contains(*k))
        .map(|k| k.name())
        .collect();
    assert!(
        missing.is_empty(),
        "primitives without derivative checks: {missing:?}"
    );
}

/// `PrimKind::class` describes every primitive in the checked programs: elementwise results
/// have the shape of their largest operand, constants have no operands, reductions do not
/// raise the rank, contractions are `dot_general`, data movement keeps the element type.
#[test]
fn op_classes_describe_every_primitive() {
    use traceform_ir::OpClass;
    let mut seen = std::collections::BTreeSet::new();
    for c in cases() {
        let f = parse_func(&c.text).unwrap();
        for e in &f.eqns {
            let prim = f.prim(e);
            let args = f.args(e);
            let out = f.var_type(e.out);
            let largest = args.iter().map(|a| f.atom_type(a)).max_by_key(|t| t.rank());
            match prim.class() {
                OpClass::Elementwise => {
                    assert_eq!(out.shape, largest.unwrap().shape, "{}", prim.name())
                }
                OpClass::Constant => assert!(args.is_empty(), "{}", prim.name()),
                OpClass::Reduction => {
                    assert!(out.rank() <= largest.unwrap().rank(), "{}", prim.name())
                }
                OpClass::Contraction => assert!(
                    matches!(prim.name(), "dot_general" | "conv_general_dilated"),
                    "{}",
                    prim.name()
                ),
                OpClass::DataMovement => {
                    assert_eq!(out.dtype, f.atom_type(&args[0]).dtype, "{}", prim.name())
                }
            }
            seen.insert(prim.class());
        }
    }
    assert_eq!(seen.len(), 5, "every class appears: {seen:?}");
}

/// Runs `transform(f)` on f64 arrays of the given shapes and returns its outputs.
fn run_shaped(f: &Func, args: &[(&[usize], Vec<f64>)]) -> Vec<Vec<f64>> {
    let xs: Vec<ArrayD<f64>> = args
        .iter()
        .map(|(shape, data)| ArrayD::from_shape_vec(IxDyn(shape), data.clone()).unwrap())
        .collect();
    run(f, &xs)
        .into_iter()
        .map(|a| a.iter().copied().collect())
        .collect()
}

/// The tie rule of `shared/spec/ir-text.md`: a max (min) window sends its derivative to exactly
/// one element, the first extremum in row-major window order, never split. Checked against
/// values worked out by hand, through jvp (the gather), grad (the scatter) and the vjp of the
/// jvp, in windows along one axis and along two.
#[test]
fn pooling_ties_go_to_the_first_extremum_in_row_major_window_order() {
    // One axis: x = [1, 3, 3, 2, 3, 3], windows of 3 at stride 1 select x[1], x[1], x[2], x[4].
    let one_axis = parse_func(
        "func f(x: f64[6]) -> f64[] {
  m = reduce_window_max[window_dimensions=(3)] x
  r = reduce_sum[axes=(0)] m
  return r
}",
    )
    .unwrap();
    let x1: (&[usize], Vec<f64>) = (&[6], vec![1.0, 3.0, 3.0, 2.0, 3.0, 3.0]);
    let g = run_shaped(&grad(&one_axis, None).unwrap(), std::slice::from_ref(&x1));
    assert_eq!(g[0], [0.0, 2.0, 1.0, 0.0, 1.0, 0.0]);
    let t1: (&[usize], Vec<f64>) = (&[6], vec![10.0, 20.0, 30.0, 40.0, 50.0, 60.0]);
    let j = run_shaped(&jvp(&one_axis, None).unwrap(), &[x1.clone(), t1]);
    assert_eq!(j[1], [20.0 + 20.0 + 30.0 + 50.0]);

    // Two axes: in the top-left 2x2 window the 5s at (0,1) and (1,0) tie; row-major order
    // selects (0,1) (column-major would select (1,0)). The all-zero window selects its first
    // element. Min pooling of the negation selects the same elements.
    let grid: (&[usize], Vec<f64>) = (&[3, 3], vec![0.0, 5.0, 0.0, 5.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    let want_grad = [0.0, 2.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0];
    let iota: (&[usize], Vec<f64>) = (&[3, 3], (1..=9).map(f64::from).collect());
    for (op, sign) in [("reduce_window_max", 1.0), ("reduce_window_min", -1.0)] {
        let f = parse_func(&format!(
            "func f(x: f64[3,3]) -> f64[] {{
  m = {op}[window_dimensions=(2,2)] x
  r = reduce_sum[axes=(0,1)] m
  return r
}}"
        ))
        .unwrap();
        let x: (&[usize], Vec<f64>) = (grid.0, grid.1.iter().map(|v| sign * v).collect());
        let g = run_shaped(&grad(&f, None).unwrap(), std::slice::from_ref(&x));
        assert_eq!(g[0], want_grad, "{op}");
        // jvp with t = 1..9: the selected elements (0,1), (0,1), (1,0), (1,1) carry 2, 2, 4, 5.
        let j = run_shaped(&jvp(&f, None).unwrap(), &[x.clone(), iota.clone()]);
        assert_eq!(j[1], [2.0 + 2.0 + 4.0 + 5.0], "{op}");
        // The vjp of the jvp: the transpose of the gather is the scatter.
        let jf = jvp(&f, None).unwrap();
        let vj = vjp(&jf, None).unwrap();
        let out = run_shaped(
            &vj,
            &[x.clone(), iota.clone(), (&[], vec![0.0]), (&[], vec![1.0])],
        );
        assert_eq!(out[2], [0.0; 9], "{op}: the selection has no derivative");
        assert_eq!(out[3], want_grad, "{op}");
        // hvp: the selection is fixed, so sum-of-max is piecewise linear: H v = 0.
        let h = run_shaped(&hvp(&f, None).unwrap(), &[x, iota.clone()]);
        assert_eq!(h[0], [0.0; 9], "{op}");
    }
}

/// A random valid convolution of small f64 operands: groups of either kind, dilations, strides
/// and paddings (negative ones too) over 1 to 3 spatial axes.
fn random_conv(rng: &mut Rng) -> (Vec<usize>, Vec<usize>, ConvDims) {
    let mut below = |n: usize| (rng.uniform(0.0, n as f64) as usize).min(n - 1);
    loop {
        let k = 1 + below(3);
        let (g, b) = match below(3) {
            0 => (1, 1),
            1 => (2 + below(2), 1),
            _ => (1, 2 + below(2)),
        };
        let i = 1 + below(2);
        let mut lhs = vec![b * (1 + below(2)), g * i];
        let mut rhs = vec![g * b * (1 + below(2)), i];
        let mut dims = ConvDims::new(&[], &[]);
        for _ in 0..k {
            lhs.push(1 + below(5));
            rhs.push(1 + below(3));
            dims.window_strides.push(1 + below(3));
            dims.lhs_dilation.push(1 + below(3));
            dims.rhs_dilation.push(1 + below(3));
            dims.padding
                .push((below(6) as i64 - 2, below(6) as i64 - 2));
        }
        dims.feature_group_count = g;
        dims.batch_group_count = b;
        let ty = |s: &[usize]| Type::new(DType::F64, s);
        if let Ok(out) = dims.output_type(&ty(&lhs), &ty(&rhs)) {
            if out.num_elements() > 0 {
                return (lhs, rhs, dims);
            }
        }
    }
}

/// The transposes of `conv_general_dilated` with respect to each operand, the other held
/// fixed, satisfy the adjoint identity <c, J t> = <J^T c, t> on 300 random convolutions.
#[test]
fn conv_transposes_satisfy_the_adjoint_identity_on_random_configurations() {
    let mut rng = Rng(0xc0ffee);
    for case in 0..300 {
        let (lhs, rhs, dims) = random_conv(&mut rng);
        let mut b = Builder::new("conv");
        let x = Atom::Var(b.param(&Type::new(DType::F64, &lhs)));
        let w = Atom::Var(b.param(&Type::new(DType::F64, &rhs)));
        let y = b.eqn(Prim::ConvGeneralDilated(Box::new(dims.clone())), &[x, w]);
        let f = b.finish(&[y]).unwrap();
        let inputs: Vec<ArrayD<f64>> = f
            .param_types()
            .iter()
            .map(|t| rng.array(t, -1.0, 1.0))
            .collect();
        let c = rng.array(&f.output_types()[0], -1.0, 1.0);
        for operand in 0..2 {
            let wrt = [operand];
            let t = rng.array(&f.param_types()[operand], -1.0, 1.0);
            let mut args = inputs.clone();
            args.push(t.clone());
            let jt = run(&jvp(&f, Some(&wrt)).unwrap(), &args).remove(1);
            let mut args = inputs.clone();
            args.push(c.clone());
            let jc = run(&vjp(&f, Some(&wrt)).unwrap(), &args).remove(1);
            let (lhs_dot, rhs_dot) = ((&c * &jt).sum(), (&jc * &t).sum());
            assert!(
                (lhs_dot - rhs_dot).abs() <= 1e-12 * (1.0 + lhs_dot.abs()),
                "case {case}, operand {operand}: {lhs:?} * {rhs:?} with {dims:?}: \
                 <c, Jt> = {lhs_dot}, <J^T c, t> = {rhs_dot}"
            );
        }
    }
}

/// Convolutions with nothing to sum or nothing to produce (an empty batch, lhs axis, kernel
/// axis, feature list, or result axis) transform and run, and their derivatives are zeros.
#[test]
fn empty_convolutions_have_zero_derivatives() {
    let attrs = "window_strides=(1), padding=((0,0))";
    for (x, w, out) in [
        ("f64[0,2,4]", "f64[3,2,2]", "f64[0,3,3]"),
        ("f64[1,2,0]", "f64[3,2,2]", "f64[1,3,0]"),
        ("f64[1,2,4]", "f64[3,2,0]", "f64[1,3,5]"),
        ("f64[1,0,4]", "f64[3,0,2]", "f64[1,3,3]"),
        ("f64[1,2,1]", "f64[3,2,2]", "f64[1,3,0]"),
    ] {
        let text = format!(
            "func f(x: {x}, w: {w}) -> f64[] {{
  a: {out} = conv_general_dilated[{attrs}] x w
  b: {out} = cos a
  r: f64[] = reduce_sum[axes=(0,1,2)] b
  return r
}}"
        );
        let f = parse_func(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let mut rng = Rng(3);
        let xs: Vec<ArrayD<f64>> = f
            .param_types()
            .iter()
            .map(|t| rng.array(t, -1.0, 1.0))
            .collect();
        let g = run(&grad(&f, None).unwrap(), &xs);
        assert!(
            g.iter().all(|a| a.iter().all(|&v| v == 0.0)),
            "{text}: {g:?}"
        );
        let mut args = xs.clone();
        args.extend(xs.iter().cloned());
        let h = run(&hvp(&f, None).unwrap(), &args);
        assert!(h.iter().all(|a| a.iter().all(|&v| v == 0.0)), "{text}");
    }
}
