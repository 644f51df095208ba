//! Hand-written programs, one feature each, compiled and compared with the interpreter.

use ndarray::{s, ArrayD};
use traceform_ir::{parse_func, Func};
use traceform_runtime::{eval, Value, ValueRef};

fn inputs_for(f: &Func) -> Vec<Value> {
    f.param_types()
        .iter()
        .enumerate()
        .map(|(p, ty)| {
            let n = ty.num_elements();
            let xs: Vec<f64> = (0..n)
                .map(|i| ((i * 7 + p * 3) % 11) as f64 * 0.37 - 1.6)
                .collect();
            let shape = ty.shape.to_vec();
            match ty.dtype {
                traceform_ir::DType::F32 => Value::F32(
                    ArrayD::from_shape_vec(shape, xs.iter().map(|&x| x as f32).collect()).unwrap(),
                ),
                traceform_ir::DType::F64 => Value::F64(ArrayD::from_shape_vec(shape, xs).unwrap()),
                traceform_ir::DType::I32 => Value::I32(
                    ArrayD::from_shape_vec(shape, xs.iter().map(|&x| (x * 3.0) as i32).collect())
                        .unwrap(),
                ),
                traceform_ir::DType::Bool => Value::Bool(
                    ArrayD::from_shape_vec(shape, xs.iter().map(|&x| x > 0.0).collect()).unwrap(),
                ),
            }
        })
        .collect()
}

/// Compiles `src`, runs it and the interpreter on the same inputs, and checks they agree
/// (bit for bit unless `tol` allows a relative difference).
fn check(src: &str, tol: f64) -> traceform_jit::Executable {
    let f = parse_func(src).unwrap();
    let inputs = inputs_for(&f);
    let want = eval(&f, &inputs).unwrap();
    let exe = traceform_jit::compile(&f).unwrap_or_else(|e| panic!("{e}"));
    let got = exe.run(&inputs).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.len(), want.len());
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.ty(), w.ty(), "output {k}");
        for (i, (a, b)) in g.to_f64_vec().iter().zip(w.to_f64_vec()).enumerate() {
            let ok =
                (a.is_nan() && b.is_nan()) || *a == b || (a - b).abs() <= tol * b.abs().max(1e-30);
            assert!(
                ok,
                "output {k} element {i}: jit {a}, interpreter {b}\n{}",
                exe.describe()
            );
        }
    }
    exe
}

#[test]
fn elementwise_chain() {
    check("func f(x: f32[10], y: f32[10]) -> f32[10] {\n  a: f32[10] = mul x y\n  b: f32[10] = sub a 1.5\n  c: f32[10] = max b x\n  d: f32[10] = integer_pow[y=3] c\n  return d\n}\n", 0.0);
}

#[test]
fn transcendentals_in_tiles() {
    // 1e-6: f32 exp is a polynomial within 1 ulp of the interpreter's.
    check("func f(x: f32[1100]) -> (f32[1100], f64[7]) {\n  a: f32[1100] = exp x\n  b: f32[1100] = mul a x\n  c: f32[1100] = log1p b\n  d: f32[1100] = pow c 1.5\n  e: f32[1100] = add d a\n  g: f64[7] = iota[dtype=f64, shape=(7), dim=0]\n  h: f64[7] = tanh g\n  return e, h\n}\n", 1e-5);
}

#[test]
fn reductions() {
    check("func f(x: f32[3,5,7]) -> (f32[], f32[5], f32[3,7], f32[3]) {\n  a: f32[3,5,7] = sin x\n  s: f32[] = reduce_sum[axes=(0,1,2)] a\n  m: f32[5] = reduce_max[axes=(0,2)] x\n  n: f32[3,7] = reduce_min[axes=(1)] x\n  q: f32[3] = reduce_sum[axes=(1,2)] x\n  return s, m, n, q\n}\n", 1e-5);
}

#[test]
fn index_arithmetic() {
    check("func f(x: f64[4,6], y: f64[6]) -> f64[6,4] {\n  a: f64[6,4] = transpose[perm=(1,0)] x\n  b: f64[6,4] = broadcast_in_dim[shape=(6,4), dims=(0)] y\n  c: f64[6,4] = rev[dims=(0)] b\n  d: f64[6,4] = add a c\n  e: f64[3,2] = slice[start=(0,1), limit=(6,4), strides=(2,2)] d\n  g: f64[6] = reshape[shape=(6)] e\n  h: f64[1,6] = expand_dims[dims=(0)] g\n  k: f64[6] = squeeze[dims=(0)] h\n  m: f64[6,4] = broadcast_in_dim[shape=(6,4), dims=(0)] k\n  n: f64[6,4] = mul m d\n  return n\n}\n", 0.0);
}

#[test]
fn integers_and_bools() {
    check("func f(x: i32[9], y: i32[9], z: f32[9]) -> (i32[9], bool[9], f32[9], i32[], i32[9]) {\n  a: i32[9] = div x y\n  b: bool[9] = lt x y\n  c: bool[9] = gt z 0.0\n  d: bool[9] = and b c\n  m: f32[9] = round z\n  e: f32[9] = select_n d z m\n  g: i32[] = reduce_max[axes=(0)] a\n  h: i32[9] = convert_element_type[dtype=i32] z\n  k: i32[9] = sign h\n  n: f32[9] = add e m\n  return a, d, n, g, k\n}\n", 0.0);
}

#[test]
fn gemm_and_runtime_calls() {
    check("func f(x: f32[2,3,4], y: f32[4,2,5], z: f64[3,4], w: f64[5,4]) -> (f32[2,3,5], f64[3,5], f32[2,4,3], i32[2,4]) {\n  a: f32[2,3,5] = dot_general[contract=((2),(0)), batch=((0),(1))] x y\n  b: f64[3,5] = dot_general[contract=((1),(1)), batch=((),())] z w\n  c: f32[2,4,3] = transpose[perm=(0,2,1)] x\n  d: f32[2,4,3] = cumsum[axis=2, reverse=true] c\n  e: i32[2,4] = argmax[axis=2] d\n  return a, b, d, e\n}\n", 1e-6);
}

/// Products of at most 256 multiply-adds are fused loops (summing over the contracted axes):
/// two contracted axes in any order, batch axes anywhere, an empty contraction, both dtypes;
/// and the same products just above the bound through the GEMM.
#[test]
fn tiny_products_are_loops() {
    let tiny = "func f(x: f32[3,2,4], y: f32[4,5,3], z: f64[2,0], w: f64[0,3], u: f64[4,2,3], v: f64[3,4,2]) -> (f32[2,5], f64[2,3], f64[2,4,4]) {\n  a: f32[2,5] = dot_general[contract=((0,2),(2,0)), batch=((),())] x y\n  b: f64[2,3] = dot_general[contract=((1),(0)), batch=((),())] z w\n  c: f64[2,4,4] = dot_general[contract=((2),(0)), batch=((1),(2))] u v\n  return a, b, c\n}\n";
    // (Element 7 of `a` sums twelve products to 0.0159 in another order than the
    // interpreter: 1.2e-7 apart, 7.5e-6 of the sum.)
    let exe = check(tiny, 1e-5);
    let plan = exe.describe();
    assert!(!plan.contains("gemm"), "{plan}");
    assert_eq!(plan.matches("(reducing)").count(), 3, "{plan}");
    let large = "func f(x: f32[9,3,10], y: f32[10,3,9]) -> f32[3,9,9] {\n  a: f32[3,9,9] = dot_general[contract=((2),(0)), batch=((1),(1))] x y\n  return a\n}\n";
    let plan = check(large, 1e-6).describe();
    assert!(plan.contains("gemm"), "{plan}");
}

#[test]
fn empty_and_scalar_shapes() {
    check("func f(x: f32[0,3], y: f32[]) -> (f32[3], f32[0,3], f32[], f32[]) {\n  a: f32[3] = reduce_sum[axes=(0)] x\n  b: f32[0,3] = exp x\n  c: f32[] = exp y\n  d: f32[] = add c 1.0\n  return a, b, d, y\n}\n", 0.0);
}

#[test]
fn wrong_inputs_are_errors() {
    let f = parse_func("func f(x: f32[2]) -> f32[2] {\n  return x\n}\n").unwrap();
    let exe = traceform_jit::compile(&f).unwrap();
    let bad = Value::F32(ArrayD::zeros(vec![3]));
    assert_eq!(
        exe.run(&[bad]).unwrap_err().to_string(),
        "input 0 (`x`) must be f32[2], given f32[3]"
    );
    assert_eq!(
        exe.run::<Value>(&[]).unwrap_err().to_string(),
        "`f` takes 1 input(s), given 0"
    );
}

/// Views as inputs: a row-major view into the middle of an array (read where it is), a
/// transposed and a strided one (copied once into row-major order), read by a fused loop, a
/// GEMM, runtime kernel calls and returned as they are: the outputs are those of the
/// interpreter on row-major copies, in standard layout.
#[test]
fn views_in_any_layout_are_inputs() {
    let f = parse_func("func f(x: f32[12,16], y: f32[4], z: f32[2,12]) -> (f32[12,16], f32[4], f32[2,16], f32[12,16], f32[2], f32[4]) {\n  a: f32[12,16] = mul x 2.0\n  b: f32[4] = cumsum[axis=0, reverse=false] y\n  c: f32[2,16] = dot_general[contract=((1),(0)), batch=((),())] z x\n  d: f32[2] = reduce_window_max[window_dimensions=(3), window_strides=(1), padding=((0,0))] y\n  return a, b, c, x, d, y\n}\n").unwrap();
    let numbers = |n: usize| {
        (0..n)
            .map(|i| (i * 7 % 11) as f32 - 5.0)
            .collect::<Vec<_>>()
    };
    let stored_x = ArrayD::from_shape_vec(vec![16, 12], numbers(192)).unwrap();
    let stored_y = ArrayD::from_shape_vec(vec![8], numbers(8)).unwrap();
    let stored_z = ArrayD::from_shape_vec(vec![4, 12], numbers(48)).unwrap();
    let views = [
        ValueRef::from(stored_x.t()),
        ValueRef::from(stored_y.slice(s![..;2])),
        ValueRef::from(stored_z.slice(s![1..3, ..])),
    ];
    let layouts: Vec<bool> = views.iter().map(ValueRef::is_standard_layout).collect();
    assert_eq!(layouts, [false, false, true]);
    let copies: Vec<Value> = views.iter().map(ValueRef::to_owned).collect();
    let want = eval(&f, &copies).unwrap();
    let exe = traceform_jit::compile(&f).unwrap();
    let lines = exe.describe();
    assert!(
        lines.contains("gemm") && lines.contains("runtime kernel"),
        "{lines}"
    );
    for got in [exe.run(&views).unwrap(), exe.run(&copies).unwrap()] {
        assert_eq!(got, want);
        for out in &got {
            assert!(out.view().is_standard_layout(), "{}", out.ty());
        }
    }
}

#[test]
fn pads_are_scattering_loops() {
    let exe = check("func f(x: f32[4,5], v: f32[]) -> (f32[6,12], f32[2,4], f32[0,3], f32[9,5]) {\n  e: f32[4,5] = exp x\n  a: f32[6,12] = pad[low=(1,-1), high=(1,4), interior=(0,1)] e v\n  b: f32[2,4] = pad[low=(-3,-5), high=(1,0), interior=(0,1)] x 9.0\n  c: f32[0,3] = pad[low=(-4,0), high=(0,-2)] x 9.0\n  d: f32[9,5] = pad[low=(2,0), high=(3,0)] x 0.0\n  return a, b, c, d\n}\n", 0.0);
    let plan = exe.describe();
    assert!(!plan.contains("runtime kernel"), "{plan}");
    assert!(
        plan.contains("[e=exp a=pad]"),
        "exp fuses into the pad: {plan}"
    );
}

/// A value read both in place and one element back through a pad (the shape of a
/// derivative's stencil, as in Rosenbrock's hvp) is computed once: where a block's guards
/// hold, the shifted copy is the in-place vector shifted by a lane (a `shuffle` in the
/// Cranelift IR), also two steps back, in both dtypes.
#[test]
fn shifted_pads_reuse_the_value_read_in_place() {
    for (dtype, tol) in [("f32", 1e-6), ("f64", 1e-14)] {
        let one_back = format!("func f(x: {dtype}[1000], y: {dtype}[1000]) -> {dtype}[1000] {{\n  a: {dtype}[999] = slice[start=(0), limit=(999)] x\n  b: {dtype}[999] = slice[start=(1), limit=(1000)] y\n  c: {dtype}[999] = mul a a\n  d: {dtype}[999] = add c 1.5\n  e: {dtype}[999] = mul b b\n  g: {dtype}[999] = add e 2.0\n  h: {dtype}[999] = mul d g\n  p: {dtype}[1000] = pad[low=(0), high=(1), interior=(0)] h 0.0\n  q: {dtype}[1000] = pad[low=(1), high=(0), interior=(0)] h 0.0\n  r: {dtype}[1000] = add p q\n  return r\n}}\n");
        let two_back = format!("func f(x: {dtype}[701]) -> {dtype}[701] {{\n  a: {dtype}[699] = slice[start=(0), limit=(699)] x\n  b: {dtype}[699] = slice[start=(2), limit=(701)] x\n  c: {dtype}[699] = sub a b\n  d: {dtype}[699] = mul c c\n  h: {dtype}[699] = max d 0.25\n  p: {dtype}[701] = pad[low=(0), high=(2), interior=(0)] h 0.0\n  q: {dtype}[701] = pad[low=(1), high=(1), interior=(0)] h 0.0\n  t: {dtype}[701] = pad[low=(2), high=(0), interior=(0)] h 0.0\n  u: {dtype}[701] = add p q\n  r: {dtype}[701] = add u t\n  return r\n}}\n");
        for src in [one_back, two_back] {
            check(&src, tol);
            let f = parse_func(&src).unwrap();
            let (_, clif) = traceform_jit::compile_with_clif(&f).unwrap();
            assert!(
                clif.contains("shuffle"),
                "no shifted value in {dtype}:\n{clif}"
            );
        }
    }
}

/// The program is one compiled function: it calls the loops' functions and, for a GEMM and a
/// runtime kernel, `tf_step` (declared as the import `u0:0`), and returns its status.
#[test]
fn the_program_is_one_function_calling_every_step() {
    let src = "func f(x: f32[8,16], w: f32[16,5]) -> (f32[8,5], i32[8]) {\n  a: f32[8,16] = exp x\n  p: f32[8,5] = dot_general[contract=((1),(0)), batch=((),())] a w\n  q: f32[8,5] = mul p 2.0\n  m: i32[8] = argmax[axis=1] q\n  return q, m\n}\n";
    check(src, 1e-6);
    let f = parse_func(src).unwrap();
    let (_, clif) = traceform_jit::compile_with_clif(&f).unwrap();
    let program = clif
        .split("; program: every step in order")
        .nth(1)
        .unwrap_or_else(|| panic!("no program in:\n{clif}"));
    let host_calls = program.matches("= call fn0(").count();
    assert_eq!(host_calls, 2, "GEMM and argmax through tf_step:\n{program}");
    assert!(
        program.matches("call fn").count() >= 4,
        "and the loops:\n{program}"
    );
}

#[test]
fn runtime_kernel_calls_agree() {
    let exe = check("func f(x: f32[3,4], y: i32[2,4]) -> (i32[3], i32[4], f32[]) {\n  b: i32[3] = argmin[axis=1] x\n  e: i32[4] = argmax[axis=0] y\n  g: f32[] = dot_general[contract=((),()), batch=((),())] 2.0 3.0\n  return b, e, g\n}\n", 0.0);
    let plan = exe.describe();
    for name in ["argmin", "argmax", "dot_general"] {
        assert!(plan.contains("runtime kernel -> "), "{plan}");
        assert!(plan.contains(name), "{name}: {plan}");
    }
}

/// A concatenation is guarded reads in its reader's loop (or a loop of its own): along the
/// innermost axis (vectors that straddle a border run element by element) and an outer one,
/// of three operands, one of them empty, with fused operands and a fused reduction; i32 and
/// bool too. Copies only, so bit for bit.
#[test]
fn concatenations_are_loops() {
    let exe = check("func f(x: f32[3,5], y: f32[3,6], z: f32[3,0], w: f64[2,3], v: i32[4], v2: i32[1], b: bool[2]) -> (f32[3,11], f32[3], f64[4,3], i32[9], bool[4], f32[6,5]) {\n  e: f32[3,5] = exp x\n  c: f32[3,11] = concatenate[axis=1] e z y\n  n: f32[3,11] = neg c\n  s: f32[3] = reduce_sum[axes=(1)] c\n  d: f64[4,3] = concatenate[axis=0] w w\n  u: i32[5] = concatenate[axis=0] v v2\n  i: i32[9] = concatenate[axis=0] u v\n  k: bool[4] = concatenate[axis=0] b b\n  t: f32[6,5] = concatenate[axis=0] x x\n  return n, s, d, i, k, t\n}\n", 1e-6);
    let plan = exe.describe();
    assert!(!plan.contains("runtime kernel"), "{plan}");
    // The concatenation feeding `neg` and `reduce_sum` twice is made once, by a loop.
    assert!(plan.contains("c=concatenate"), "{plan}");
    // Long rows: blocks of vectors inside one operand, vectors across the border.
    check("func f(x: f32[2,37], y: f32[2,70]) -> f32[2,107] {\n  a: f32[2,37] = mul x 2.0\n  c: f32[2,107] = concatenate[axis=1] a y\n  return c\n}\n", 0.0);
}

/// `cumsum` is a loop storing its (fused) operand, then a compiled pass along the axis in the
/// interpreter's order: bit for bit, along every axis, reversed, f32, f64 and i32, over
/// size-1 and size-0 axes.
#[test]
fn cumsums_are_loops() {
    let exe = check("func f(x: f32[3,4,5], y: f64[7], z: i32[2,3], e: f32[0,3], o: f32[1,9]) -> (f32[3,4,5], f32[3,4,5], f32[3,4,5], f64[7], i32[2,3], f32[0,3], f32[1,9], f32[1,9]) {\n  s: f32[3,4,5] = sin x\n  a: f32[3,4,5] = cumsum[axis=0, reverse=false] s\n  b: f32[3,4,5] = cumsum[axis=1, reverse=true] x\n  c: f32[3,4,5] = cumsum[axis=2, reverse=false] x\n  d: f64[7] = cumsum[axis=0, reverse=true] y\n  g: i32[2,3] = cumsum[axis=1, reverse=false] z\n  h: f32[0,3] = cumsum[axis=0, reverse=false] e\n  i: f32[1,9] = cumsum[axis=0, reverse=true] o\n  j: f32[1,9] = cumsum[axis=1, reverse=true] o\n  return a, b, c, d, g, h, i, j\n}\n", 0.0);
    let plan = exe.describe();
    assert!(!plan.contains("runtime kernel"), "{plan}");
    assert!(
        plan.contains("s=sin a=cumsum"),
        "the operand fuses into the loop: {plan}"
    );
}

/// Convolutions of one lhs with one attribute set (a jvp's `conv(h, w)` and `conv(h, dw)`)
/// share one step, which gathers the lhs once; each result equals the interpreter's bit for
/// bit. `b` reads another lhs and stays a step of its own; `c` moves up into `a`'s step,
/// since what it reads is there before it.
#[test]
fn convolutions_of_one_lhs_share_a_gather() {
    let conv = "conv_general_dilated[window_strides=(1,2), padding=((1,1),(0,2)), lhs_dilation=(1,1), rhs_dilation=(1,1), feature_group_count=1, batch_group_count=1]";
    let src = format!(
        "func f(x: f32[2,3,7,9], y: f32[2,3,7,9], w: f32[4,3,3,2], v: f32[4,3,3,2]) -> (f32[2,4,7,5], f32[2,4,7,5], f32[2,4,7,5]) {{\n  a: f32[2,4,7,5] = {conv} x w\n  b: f32[2,4,7,5] = {conv} y w\n  c: f32[2,4,7,5] = {conv} x v\n  return a, b, c\n}}\n"
    );
    let exe = check(&src, 0.0);
    let plan = exe.describe();
    assert!(
        plan.contains("convolutions of one gathered lhs -> a, c: f32[2,4,7,5], f32[2,4,7,5]"),
        "{plan}"
    );
    assert!(plan.contains("convolution -> b"), "{plan}");
}

/// `docs/jit.md` lists exactly the primitives the JIT computes by a runtime-kernel call.
#[test]
fn the_docs_list_every_runtime_kernel_call() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/jit.md")).unwrap();
    let section = doc
        .split("## Runtime kernel calls")
        .nth(1)
        .expect("docs/jit.md has a `## Runtime kernel calls` section");
    let section = section.split("\n## ").next().unwrap();
    let mut listed: Vec<String> = section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect();
    listed.sort();
    let mut calls: Vec<String> = traceform_ir::PrimKind::ALL
        .iter()
        .filter(|&&k| traceform_jit::lowering(k) == traceform_jit::Lowering::RuntimeKernel)
        .map(|k| k.name().to_string())
        .collect();
    calls.sort();
    assert_eq!(listed, calls);
}

#[test]
fn long_reductions_use_several_accumulators() {
    check("func f(x: f32[3,1001], y: f64[999]) -> (f32[3], f32[], f64[], f64[], f32[3]) {\n  a: f32[3,1001] = mul x x\n  s: f32[3] = reduce_sum[axes=(1)] a\n  t: f32[] = reduce_sum[axes=(0,1)] x\n  u: f64[] = reduce_max[axes=(0)] y\n  w: f64[999] = exp y\n  v: f64[] = reduce_min[axes=(0)] w\n  m: f32[3] = reduce_max[axes=(1)] x\n  return s, t, u, v, m\n}\n", 1e-5);
}

/// The accuracy figures of docs/jit.md: every transcendental, in both float dtypes, on 4099
/// points spread over [-60, 60] plus the special values, equals the interpreter bit for bit
/// (NaN compared as NaN), except the f32 polynomials `exp`, `tanh`, `logistic`, `log` and
/// `log1p`, within 1, 2, 4, 1 and 2 ulps (`host.rs` measures those on millions of points).
#[test]
fn transcendentals_equal_the_interpreter_bit_for_bit() {
    let mut xs: Vec<f64> = (0..4090)
        .map(|i| -60.0 + 120.0 * i as f64 / 4089.0)
        .collect();
    xs.extend([
        0.0,
        -0.0,
        1e-30,
        -1e-30,
        0.5,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        1.0,
    ]);
    let n = xs.len();
    for (t, value) in [
        (
            "f32",
            Value::F32(
                ArrayD::from_shape_vec(vec![n], xs.iter().map(|&x| x as f32).collect()).unwrap(),
            ),
        ),
        (
            "f64",
            Value::F64(ArrayD::from_shape_vec(vec![n], xs.clone()).unwrap()),
        ),
    ] {
        for op in [
            "sin", "cos", "tan", "tanh", "exp", "log", "log1p", "expm1", "logistic", "erf", "sqrt",
            "rsqrt",
        ] {
            let src = format!(
                "func f(x: {t}[{n}]) -> {t}[{n}] {{\n  a: {t}[{n}] = {op} x\n  return a\n}}\n"
            );
            let ulps = match (t, op) {
                ("f32", "exp") => 1,
                ("f32", "tanh") => 2,
                ("f32", "logistic") => 4,
                ("f32", "log") => 1,
                ("f32", "log1p") => 2,
                ("f64", "exp") => 1,
                ("f64", "logistic") => 4,
                ("f64", "log") => 1,
                ("f64", "log1p") => 2,
                ("f64", "expm1") => 2,
                ("f64", "tanh") => 3,
                ("f32", "expm1") => 1,
                (_, "sin") | (_, "cos") | ("f32", "tan") => 1,
                ("f64", "tan") => 3,
                ("f64", "erf") => 2,
                ("f32", "erf") => 1,
                _ => 0,
            };
            within_ulps(&src, std::slice::from_ref(&value), op, ulps);
        }
        for op in ["pow", "atan2"] {
            let src = format!("func f(x: {t}[{n}], y: {t}[{n}]) -> {t}[{n}] {{\n  r: {t}[{n}] = rev[dims=(0)] y\n  a: {t}[{n}] = {op} x r\n  return a\n}}\n");
            let ulps = match (t, op) {
                ("f32", "atan2") => 1,
                ("f64", "atan2") => 3,
                _ => 0,
            };
            within_ulps(&src, &[value.clone(), value.clone()], op, ulps);
        }
    }
}

/// Runs `src` on both backends; every output element within `max_ulps` of the interpreter's.
fn within_ulps(src: &str, inputs: &[Value], op: &str, max_ulps: i64) {
    let f = parse_func(src).unwrap();
    let want = eval(&f, inputs).unwrap();
    let got = traceform_jit::compile(&f).unwrap().run(inputs).unwrap();
    // Floats ordered as integers (NaN as one value), so a difference counts ulps.
    let keys = |v: &Value| -> Vec<i64> {
        match v {
            Value::F32(a) => a
                .iter()
                .map(|x| {
                    let i = if x.is_nan() {
                        i32::MAX
                    } else {
                        x.to_bits() as i32
                    };
                    i64::from(if i < 0 { i32::MIN - i } else { i })
                })
                .collect(),
            Value::F64(a) => a
                .iter()
                .map(|x| {
                    let i = if x.is_nan() {
                        i64::MAX
                    } else {
                        x.to_bits() as i64
                    };
                    if i < 0 {
                        i64::MIN - i
                    } else {
                        i
                    }
                })
                .collect(),
            _ => unreachable!(),
        }
    };
    let worst = keys(&got[0])
        .iter()
        .zip(keys(&want[0]))
        .map(|(a, b)| a.abs_diff(b))
        .max()
        .unwrap_or(0);
    assert!(worst <= max_ulps as u64, "{op}: {worst} ulps\n{src}");
}

/// A loop with hundreds of transcendentals (one tile each, in the heap scratch, not on the
/// stack) runs on a test thread's stack.
#[test]
fn long_fused_chains_of_transcendentals() {
    let mut src = String::from("func f(x: f32[700]) -> f32[700] {\n  v0: f32[700] = sin x\n");
    for i in 1..400 {
        let op = ["sin", "tanh", "cos", "logistic"][i % 4];
        src.push_str(&format!("  v{i}: f32[700] = {op} v{}\n", i - 1));
    }
    src.push_str("  return v399\n}\n");
    // 1e-5: f32 tanh and logistic are polynomials within a few ulps of the interpreter's.
    let exe = check(&src, 1e-5);
    assert!(
        exe.describe().starts_with("step 0: loop over [700]"),
        "one loop"
    );
    assert_eq!(exe.plan().steps.len(), 1);
}

/// Pads without interior padding are read through guards inside their reader's loop: never
/// materialised, never read out of bounds, vectorised away from the borders.
#[test]
fn pads_fuse_into_their_readers() {
    let exe = check("func f(x: f32[999], y: f32[3,7], v: f32[]) -> (f32[1000], f32[], f32[5,6], f32[4,9]) {\n  a: f32[999] = exp x\n  p: f32[1000] = pad[low=(0), high=(1)] a 0.0\n  q: f32[1000] = pad[low=(1), high=(0)] x 0.0\n  s: f32[1000] = add p q\n  r: f32[1002] = pad[low=(2), high=(1)] x v\n  t: f32[] = reduce_sum[axes=(0)] r\n  u: f32[5,6] = pad[low=(1,-2), high=(1,1)] y 2.0\n  w: f32[5,6] = mul u u\n  g: f32[3,8] = pad[low=(0,-1), high=(0,2)] y v\n  h: f32[4,9] = pad[low=(1,0), high=(0,1)] g 0.5\n  k: f32[4,9] = neg h\n  return s, t, w, k\n}\n", 1e-5);
    let plan = exe.describe();
    assert_eq!(
        plan.matches("step ").count(),
        4,
        "one loop per output: {plan}"
    );
}

/// Reductions over the same domain run in one loop, each into its own result (sums, maxima,
/// over different axes, with transcendentals and guards in either).
#[test]
fn sibling_reductions_share_one_loop() {
    let exe = check("func f(x: f32[3,1001], y: f32[3,1000]) -> (f32[3], f32[1001], f32[], f32[3]) {\n  a: f32[3,1001] = mul x x\n  s: f32[3] = reduce_sum[axes=(1)] a\n  e: f32[3,1001] = exp x\n  m: f32[1001] = reduce_max[axes=(0)] e\n  p: f32[3,1001] = pad[low=(0,1), high=(0,0)] y 0.5\n  q: f32[3,1001] = sub p x\n  t: f32[] = reduce_sum[axes=(0,1)] q\n  u: f32[3] = reduce_min[axes=(1)] x\n  return s, m, t, u\n}\n", 1e-5);
    let plan = exe.describe();
    assert_eq!(plan.matches("step ").count(), 1, "{plan}");
    assert!(
        plan.contains("-> s, m, t, u: f32[3], f32[1001], f32[], f32[3]"),
        "{plan}"
    );
}

/// Loops over at least 2^17 elements run in two blocks on two threads (`parallel.rs`): flat
/// and nested loops, folds over the cut axis (partial results: sums, NaN-propagating maxima,
/// integer sums) and over other axes, transcendentals (each block has its own tiles), guards
/// (inlined pads) and several outputs per loop. Sums may differ from the interpreter's in
/// the order of the cut axis only (and already did in the order of their accumulators); an
/// f32 sum of 3e5 elements is off the exact sum by 2e-5 (interpreter) and 3e-5 (JIT)
/// relative, so the tolerance is 1e-4.
#[test]
fn big_loops_run_in_two_blocks() {
    let src = "func f(x: f32[300001], y: f64[700,300], z: i32[400003], w: f32[513,301]) -> (f32[300001], f32[], f64[], f64[700], i32[], f32[301], f32[513], f32[300002], f64[300]) {
  a: f32[300001] = exp x
  b: f32[300001] = tanh a
  c: f32[300001] = mul b x
  s1: f32[300000] = slice[start=(1), limit=(300001)] x
  s0: f32[300000] = slice[start=(0), limit=(300000)] x
  d: f32[300000] = integer_pow[y=2] s0
  e: f32[300000] = sub s1 d
  g: f32[300000] = mul e e
  t: f32[] = reduce_sum[axes=(0)] g
  l: f64[700,300] = log y
  m: f64[] = reduce_max[axes=(0,1)] l
  n: f64[700] = reduce_min[axes=(1)] y
  o: f64[300] = reduce_sum[axes=(0)] y
  zs: i32[] = reduce_sum[axes=(0)] z
  ew: f32[513,301] = exp w
  mw: f32[301] = reduce_max[axes=(0)] ew
  sw: f32[513] = reduce_sum[axes=(1)] w
  p: f32[300002] = pad[low=(1), high=(0)] c 0.5
  q: f32[300002] = sin p
  return c, t, m, n, zs, mw, sw, q, o
}
";
    let exe = check(src, 1e-4);
    let plan = exe.describe();
    assert!(plan.matches("runs on two threads").count() >= 5, "{plan}");
    assert!(plan.contains("partial results"), "{plan}");
}

/// A product (or its negation) read once by an add, a subtract or a sum folds into a fused
/// multiply-add where the machine has one: `z - x*y` rounds once, exactly as
/// `(-x).mul_add(y, z)`, `-(y*z) - x` as `(-y).mul_add(z, -x)`, and a sum of products
/// accumulates by multiply-adds. A program that mixes float precisions keeps every
/// rounding as written, and equals the interpreter bit for bit.
#[test]
fn products_fold_into_multiply_adds() {
    let n = 1001;
    let src = format!("func f(x: f32[{n}], y: f32[{n}], z: f32[{n}]) -> (f32[{n}], f32[], f32[{n}]) {{\n  a: f32[{n}] = mul x y\n  b: f32[{n}] = sub z a\n  c: f32[{n}] = mul b x\n  d: f32[] = reduce_sum[axes=(0)] c\n  p: f32[{n}] = mul y z\n  q: f32[{n}] = neg p\n  r: f32[{n}] = sub q x\n  return b, d, r\n}}\n");
    let f = parse_func(&src).unwrap();
    let col = |k: usize| -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 37 + k * 11) % 101) as f32 / 7.3 - 6.1)
            .collect()
    };
    let (x, y, z) = (col(0), col(1), col(2));
    let value = |v: &[f32]| Value::F32(ArrayD::from_shape_vec(vec![n], v.to_vec()).unwrap());
    let inputs = [value(&x), value(&y), value(&z)];
    let (exe, clif) = traceform_jit::compile_with_clif(&f).unwrap();
    let got = exe.run(&inputs).unwrap();
    let want = eval(&f, &inputs).unwrap();
    let fma = cfg!(target_arch = "aarch64") || {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("fma")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    };
    assert_eq!(clif.contains(" fma "), fma, "{clif}");
    let (b, r) = (got[0].to_f64_vec(), got[2].to_f64_vec());
    for i in 0..n {
        let (expected_b, expected_r) = if fma {
            ((-x[i]).mul_add(y[i], z[i]), (-y[i]).mul_add(z[i], -x[i]))
        } else {
            (z[i] - x[i] * y[i], -(y[i] * z[i]) - x[i])
        };
        assert_eq!(b[i] as f32, expected_b, "b, element {i}");
        assert_eq!(r[i] as f32, expected_r, "r, element {i}");
    }
    // The sum: within 1e-5 of the interpreter's, relative to the sum of magnitudes.
    let magnitude: f64 = (0..n).map(|i| (b[i] * f64::from(x[i])).abs()).sum();
    let (d, d_want) = (got[1].to_f64_vec()[0], want[1].to_f64_vec()[0]);
    assert!(
        (d - d_want).abs() <= 1e-5 * magnitude,
        "{d} against {d_want}"
    );

    let mixed = "func f(x: f32[1001], y: f32[1001], z: f64[1001]) -> f64[1001] {\n  a: f32[1001] = mul x y\n  b: f32[1001] = add a x\n  c: f64[1001] = convert_element_type[dtype=f64] b\n  d: f64[1001] = mul c z\n  e: f64[1001] = add d z\n  return e\n}\n";
    let (_, clif) = traceform_jit::compile_with_clif(&parse_func(mixed).unwrap()).unwrap();
    assert!(!clif.contains(" fma "), "{clif}");
    check(mixed, 0.0);
}

/// Comparisons, their `and`/`or`/`not`, selects and conversions from bool vectorise in a float
/// loop (lane masks), with the scalar code's results bit for bit: ReLU's derivative as a jvp
/// writes it (`gt`, `eq`, converted, scaled), a select, at NaN, ±0 and ±inf, in f32 and f64,
/// over lengths that leave scalar tails.
#[test]
fn comparisons_and_selects_vectorise_as_lane_masks() {
    for (t, n) in [("f32", 1003), ("f64", 501)] {
        let src = format!("func f(x: {t}[{n}], v: {t}[{n}]) -> ({t}[{n}], {t}[{n}]) {{\n  g: bool[{n}] = gt x 0.0:{t}\n  e: bool[{n}] = eq x 0.0:{t}\n  a: {t}[{n}] = convert_element_type[dtype={t}] g\n  b: {t}[{n}] = convert_element_type[dtype={t}] e\n  c: {t}[{n}] = mul b 0.5:{t}\n  d: {t}[{n}] = add a c\n  r: {t}[{n}] = mul v d\n  l: bool[{n}] = lt v x\n  m: bool[{n}] = not l\n  o: bool[{n}] = or m e\n  q: bool[{n}] = and o true\n  s: {t}[{n}] = select_n q x v\n  return r, s\n}}\n");
        let f = parse_func(&src).unwrap();
        let specials = [
            0.0,
            -0.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e-300,
        ];
        let col = |k: usize| -> Vec<f64> {
            (0..n)
                .map(|i| {
                    if (i + k) % 7 == 0 {
                        specials[(i / 7 + k) % specials.len()]
                    } else {
                        ((i * 37 + k * 11) % 101) as f64 / 7.3 - 6.1
                    }
                })
                .collect()
        };
        let value = |v: Vec<f64>| match t {
            "f32" => Value::F32(
                ArrayD::from_shape_vec(vec![n], v.iter().map(|&x| x as f32).collect()).unwrap(),
            ),
            _ => Value::F64(ArrayD::from_shape_vec(vec![n], v).unwrap()),
        };
        let inputs = [value(col(0)), value(col(3))];
        let (exe, clif) = traceform_jit::compile_with_clif(&f).unwrap();
        let lanes = if t == "f32" { "f32x4" } else { "f64x2" };
        // A mask read as lanes of floats: by the select, and by the conversion's `and`.
        assert!(clif.contains(&format!("bitcast.{lanes} little")), "{clif}");
        assert!(clif.contains("bitselect"), "{clif}");
        let got = exe.run(&inputs).unwrap();
        let want = eval(&f, &inputs).unwrap();
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            for (i, (a, b)) in g.to_f64_vec().iter().zip(w.to_f64_vec()).enumerate() {
                assert!(
                    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                    "{t} output {k} element {i}: jit {a}, interpreter {b}"
                );
            }
        }
    }
}
