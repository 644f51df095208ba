//! Regression tests for the bugs a new user found in the IR, the transforms and the CLI, one
//! test each (numbered as in the report). Each failed before its fix.

use std::path::PathBuf;
use std::process::{Command, Output};

use ndarray::ArrayD;
use traceform::ir::{eliminate_dead_code, parse_func, print_func};
use traceform::transforms::{jvp, transpose_wrt, vjp};
use traceform::{eval, Value};

fn traceform(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_traceform"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn write(name: &str, text: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("traceform-regressions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Runs `dump` on `program` and returns (exit code, stderr).
fn dump(name: &str, program: &str, extra: &[&str]) -> (Option<i32>, String) {
    let p = write(name, program.as_bytes());
    let mut args = vec!["dump", p.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = traceform(&args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn f64s(xs: &[f64]) -> Value {
    Value::F64(ArrayD::from_shape_vec(vec![xs.len()], xs.to_vec()).unwrap())
}

/// Bug 3: The jvp of `integer_pow[y=i32::MIN]` computed `y - 1` in i32 (a panic in debug builds,
/// a wrong power in release). Its derivative at x = 1 is y.
#[test]
fn integer_pow_of_i32_min_differentiates() {
    let f = parse_func(
        "func f(x: f64[2]) -> f64[2] {\n  y: f64[2] = integer_pow[y=-2147483648] x\n  return y\n}\n",
    )
    .unwrap();
    let j = jvp(&f, None).unwrap();
    let outs = eval(&j, &[f64s(&[1.0, -1.0]), f64s(&[1.0, 1.0])]).unwrap();
    assert_eq!(outs[1].to_f64_vec(), vec![-2147483648.0, 2147483648.0]);
}

/// Bug 4: `pad` shape inference overflowed for huge paddings and inferred a small wrong shape.
#[test]
fn huge_pads_are_user_errors() {
    let program = "func f(x: f32[3]) -> f32[3] {\n  y = pad[low=(4294967295), high=(4294967295), interior=(4294967295)] x 0.0\n  return x\n}\n";
    let (code, stderr) = dump("huge_pad.ir", program, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(":2:7: `pad`") && stderr.contains("too large"),
        "{stderr}"
    );
    let program = "func f(x: f32[3]) -> f32[3] {\n  y = pad[low=(9223372036854775807), high=(1)] x 0.0\n  return x\n}\n";
    let (code, stderr) = dump("huger_pad.ir", program, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("too large"), "{stderr}");
}

/// Bug 5: Zero-size tensors with huge other axes verified, then failed at run time (exit 1).
#[test]
fn zero_size_tensors_with_huge_axes_are_user_errors() {
    for (name, eqn) in [
        (
            "bcast",
            "broadcast_in_dim[shape=(0,4294967295,4294967295), dims=()] 1.0",
        ),
        ("zeros", "zeros[dtype=f32, shape=(0,4294967295,4294967295)]"),
    ] {
        let program = format!("func f(x: f32[]) -> f32[] {{\n  y = {eqn}\n  return x\n}}\n");
        let (code, stderr) = dump(&format!("{name}.ir"), &program, &[]);
        assert_eq!(code, Some(2), "{name}: {stderr}");
        assert!(stderr.contains("too large"), "{name}: {stderr}");
    }
    let program = "func f(x: f32[0,4294967295,4294967295]) -> f32[] {\n  return 1.0\n}\n";
    let (code, stderr) = dump("declared.ir", program, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(":1:11: tensor type is too large"),
        "{stderr}"
    );
}

/// Bug 6: The linearity check accepted conversions to i32 and bool.
#[test]
fn conversions_to_integers_are_not_linear() {
    for dtype in ["i32", "bool"] {
        let program = format!(
            "func f(t: f64[3]) -> f64[3] {{\n  i = convert_element_type[dtype={dtype}] t\n  y = convert_element_type[dtype=f64] i\n  return y\n}}\n"
        );
        let (code, stderr) = dump(&format!("to_{dtype}.ir"), &program, &["-t", "transpose"]);
        assert_eq!(code, Some(2), "{dtype}: {stderr}");
        assert!(
            stderr.contains(":2:7: cannot transpose") && stderr.contains("not linear"),
            "{dtype}: {stderr}"
        );
    }
}

/// Bug 7: `transpose` left dead equations: cotangents of non-linear operands, unused primal work.
#[test]
fn transposed_programs_have_no_dead_equations() {
    let linear = parse_func(
        "func f(x: f64[3], t: f64[3]) -> f64[] {\n  s = sin x\n  c = cos x\n  u = mul t s\n  w = add u t\n  r = reduce_sum[axes=(0)] w\n  return r\n}\n",
    )
    .unwrap();
    let sinx = parse_func(
        "func f(x: f64[3]) -> f64[] {\n  a = sin x\n  b = mul a x\n  r = reduce_sum[axes=(0)] b\n  return r\n}\n",
    )
    .unwrap();
    let programs = [
        transpose_wrt(&linear, Some(&[1])).unwrap(),
        vjp(&sinx, None).unwrap(),
        vjp(&jvp(&sinx, None).unwrap(), None).unwrap(),
    ];
    for t in programs {
        let n = t.eqns.len();
        assert_eq!(
            eliminate_dead_code(t.clone()).eqns.len(),
            n,
            "{}",
            print_func(&t)
        );
    }
}

/// Bug 8: `tanh`'s jvp used `1 - y*y`: in f32, relative error up to 8.6e-5 for x in [0.5, 9],
/// against the derivative at the computed `y = tanh(x)`. Now `(1+y)(1-y)` (as JAX), within 2
/// f32 ulps of `1 - y^2` computed in f64 from the same `y`. `logistic` is now
/// `y * logistic(-x)`, within 4 ulps of the exact derivative at `x`; the same review found
/// `expm1' = y + 1`, which cancels to 0 where y is near -1: now `exp(x)`.
#[test]
fn tanh_and_logistic_derivatives_are_accurate_in_f32() {
    let n = 2000;
    let xs: Vec<f32> = (0..n).map(|i| 0.5 + 8.5 * i as f32 / n as f32).collect();
    let ulp = f64::from(f32::EPSILON);
    for prim in ["tanh", "logistic", "expm1"] {
        let f = parse_func(&format!(
            "func f(x: f32[{n}]) -> f32[{n}] {{\n  y = {prim} x\n  return y\n}}\n"
        ))
        .unwrap();
        let j = jvp(&f, None).unwrap();
        let xs: Vec<f32> = match prim {
            "expm1" => xs.iter().map(|x| -3.0 * x).collect(),
            _ => xs.clone(),
        };
        let x = Value::F32(ArrayD::from_shape_vec(vec![n], xs.clone()).unwrap());
        let t = Value::F32(ArrayD::from_elem(vec![n], 1.0f32));
        let outs = eval(&j, &[x, t]).unwrap();
        let (ys, ds) = (outs[0].to_f64_vec(), outs[1].to_f64_vec());
        for ((x, y), got) in xs.iter().zip(ys).zip(ds) {
            let (want, tol) = match prim {
                "tanh" => (1.0 - y * y, 2.0 * ulp),
                "expm1" => (f64::from(*x).exp(), 2.0 * ulp),
                _ => {
                    let s = 1.0 / (1.0 + (-f64::from(*x)).exp());
                    (s * (1.0 - s), 4.0 * ulp)
                }
            };
            if want == 0.0 {
                assert_eq!(got, 0.0, "{prim}'({x})");
                continue;
            }
            let rel = (got - want).abs() / want;
            assert!(
                rel <= tol,
                "{prim}'({x}): got {got}, want {want}, relative error {rel:e}"
            );
        }
    }
}

/// Bug 9: f32 literals printed as their f64 expansion (`0.10000000149011612:f32`).
#[test]
fn f32_literals_print_in_their_shortest_form() {
    let f = parse_func("func f(x: f32[2]) -> f32[2] {\n  y = mul x 0.1\n  return y\n}\n").unwrap();
    assert!(
        print_func(&f).contains("mul x 0.1:f32"),
        "{}",
        print_func(&f)
    );
}

/// Bug 11: Messages: a huge token was echoed whole; a comment-only file without a trailing newline
/// reported end of file at 1:1; values too large were called "must be non-negative".
#[test]
fn messages_quote_little_and_say_what_is_wrong() {
    let huge = "a".repeat(10 << 20);
    let (code, stderr) = dump(
        "huge_token.ir",
        &format!("func f(x: f32[]) -> f32[] {{\n  y = sin {huge}\n  return y\n}}\n"),
        &[],
    );
    assert_eq!(code, Some(2));
    assert!(stderr.len() < 300, "{} bytes of stderr", stderr.len());
    assert!(
        stderr.contains("undefined name `aaaa") && stderr.contains("..."),
        "{stderr}"
    );

    let (code, stderr) = dump("comment_only.ir", "# nothing here", &[]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains(":1:15: expected `func`, found end of file"),
        "{stderr}"
    );

    let (code, stderr) = dump(
        "too_large.ir",
        "func f(x: f32[3]) -> f32[] {\n  y = reduce_sum[axes=(4294967296)] x\n  return y\n}\n",
        &[],
    );
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("is too large: 4294967296") && !stderr.contains("non-negative"),
        "{stderr}"
    );
}

/// Bug 12: `dump f.ir -t grad` without `--stage` printed the untransformed program.
#[test]
fn dump_with_transforms_prints_the_last_stage() {
    let program =
        "func f(x: f32[3]) -> f32[] {\n  s = sin x\n  r = reduce_sum[axes=(0)] s\n  return r\n}\n";
    let p = write("last_stage.ir", program.as_bytes());
    let out = traceform(&["dump", p.to_str().unwrap(), "-t", "grad"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout.starts_with("func grad_f(x0: f32[3]) -> f32[3]"),
        "{stdout}"
    );
    assert!(stdout.contains("cos"), "{stdout}");
}
