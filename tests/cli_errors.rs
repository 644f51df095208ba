//! Bad input, tried as a careless user would: each class gives exit status 2 and one
//! `error:` line on stderr, with `file:line:col` where there is a place, and never a panic.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn traceform(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_traceform"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("traceform-cli-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn write(name: &str, text: &[u8]) -> PathBuf {
    let p = scratch(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Asserts exit 2 and exactly one stderr line, starting `error: ` and containing `expect`.
#[track_caller]
fn assert_user_error(out: &Output, expect: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(
        lines[0].contains(expect),
        "expected {expect:?} in: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Writes `program` to a file and runs `dump` on it; expects an error at `line:col`.
#[track_caller]
fn program_error(name: &str, program: &str, line_col: &str, expect: &str) {
    let p = write(&format!("{name}.ir"), program.as_bytes());
    let out = traceform(&["dump", p.to_str().unwrap()]);
    assert_user_error(&out, &format!("{}:{line_col}: ", p.display()));
    assert_user_error(&out, expect);
}

const HEADER: &str = "func f(x: f32[3], m: f32[2,3]) -> f32[3] {\n";

fn body(eqns: &str, ret: &str) -> String {
    format!("{HEADER}{eqns}  return {ret}\n}}\n")
}

#[test]
fn syntax_errors() {
    program_error(
        "missing_eq",
        &body("  y: f32[3] sin x\n", "y"),
        "2:13",
        "expected `=`",
    );
    program_error(
        "bad_char",
        &body("  y: f32[3] = sin x @\n", "y"),
        "2:21",
        "unexpected character `@`",
    );
    program_error(
        "no_return",
        &format!("{HEADER}  y: f32[3] = sin x\n}}\n"),
        "3:1",
        "expected `return`",
    );
    program_error(
        "bad_type",
        &body("  y: f16[3] = sin x\n", "y"),
        "2:6",
        "expected a dtype",
    );
    program_error(
        "unclosed_attr",
        &body("  y: f32[] = reduce_sum[axes=(0 x\n", "y"),
        "2:33",
        "expected `,` or `)`",
    );
    program_error(
        "two_eqns_one_line",
        "func f(x: f32[]) -> f32[] {\n  y = sin x z = cos x\n  return y\n}\n",
        "2:15",
        "expected an operand (a name or a number), found `=`",
    );
}

#[test]
fn unknown_primitives_and_attributes() {
    program_error(
        "unknown_prim",
        &body("  y: f32[3] = sine x\n", "y"),
        "2:15",
        "unknown primitive `sine`",
    );
    program_error(
        "unknown_attr",
        &body("  y: f32[] = reduce_sum[axis=(0)] x\n", "y"),
        "2:14",
        "needs the attribute `axes`",
    );
    program_error(
        "extra_attr",
        &body("  y: f32[3] = sin[y=2] x\n", "y"),
        "2:19",
        "`sin` has no attribute `y`",
    );
    program_error(
        "attr_type",
        &body("  y: f32[3] = integer_pow[y=(2)] x\n", "y"),
        "2:27",
        "must be an integer",
    );
    program_error(
        "negative_axis",
        &body("  y: f32[] = reduce_sum[axes=(-1)] x\n", "y"),
        "2:25",
        "non-negative",
    );
}

#[test]
fn windowed_reduction_attributes() {
    program_error(
        "window_padding_not_pairs",
        &body(
            "  y = reduce_window_max[window_dimensions=(2), padding=(1,1)] x\n",
            "x",
        ),
        "2:48",
        "attribute `padding` of `reduce_window_max` must hold one (lo,hi) pair of integers per axis",
    );
    program_error(
        "window_missing_dimensions",
        &body("  y = reduce_window_sum[window_strides=(1)] x\n", "x"),
        "2:7",
        "`reduce_window_sum` needs the attribute `window_dimensions`",
    );
    program_error(
        "window_rank",
        &body("  y = reduce_window_min[window_dimensions=(2,2)] x\n", "x"),
        "2:7",
        "`reduce_window_min`: window_dimensions has 2 entries but the operand has rank 1",
    );
    program_error(
        "window_zero_stride",
        &body(
            "  y = reduce_window_sum[window_dimensions=(2), window_strides=(0)] x\n",
            "x",
        ),
        "2:7",
        "window_strides (0) must be positive",
    );
    program_error(
        "window_cropped_away",
        &body(
            "  y = reduce_window_sum[window_dimensions=(1), padding=((-2,-2))] x\n",
            "x",
        ),
        "2:7",
        "padded by (-2,-2) would have negative size -1",
    );
    program_error(
        "window_select_prim",
        &body(
            "  y = select_and_gather_add[select_prim=gt, window_dimensions=(2)] x x\n",
            "x",
        ),
        "2:29",
        "attribute `select_prim` must be `ge` or `le`, found `gt`",
    );
}

#[test]
fn undefined_and_redefined_names() {
    program_error(
        "undefined",
        &body("  y: f32[3] = sin z\n", "y"),
        "2:19",
        "undefined name `z`",
    );
    program_error(
        "redefined",
        &body("  y: f32[3] = sin x\n  y: f32[3] = cos x\n", "y"),
        "3:3",
        "`y` is already defined at 2:3",
    );
    program_error(
        "param_twice",
        "func f(x: f32[], x: f32[]) -> f32[] {\n  return x\n}\n",
        "1:18",
        "`x` is already defined",
    );
    program_error(
        "use_before_def",
        &body("  y: f32[3] = add x z\n  z: f32[3] = sin x\n", "y"),
        "2:21",
        "undefined name `z`",
    );
    program_error(
        "undefined_return",
        &body("", "q"),
        "2:10",
        "undefined name `q`",
    );
    program_error(
        "keyword_name",
        &body("  true: f32[3] = sin x\n", "x"),
        "2:3",
        "expected a value name, found keyword `true`",
    );
    program_error(
        "number_name",
        &body("  inf: f32[3] = sin x\n", "x"),
        "2:3",
        "found number `inf`",
    );
}

#[test]
fn shape_and_dtype_mismatches() {
    program_error(
        "shape",
        &body("  y: f32[3] = add x m\n", "y"),
        "2:15",
        "`add`: operand shapes f32[3] and f32[2,3] differ",
    );
    program_error(
        "dtype",
        &body(
            "  c: i32[3] = convert_element_type[dtype=i32] x\n  y: f32[3] = add x c\n",
            "y",
        ),
        "3:15",
        "different dtypes",
    );
    program_error(
        "declared",
        &body("  y: f32[4] = sin x\n", "y"),
        "2:6",
        "`y` is declared f32[4] but `sin` gives f32[3]",
    );
    program_error(
        "declared_dtype",
        &body("  y: f64[3] = sin x\n", "y"),
        "2:6",
        "declared f64[3]",
    );
    program_error(
        "return_type",
        &body("  y: f32[] = reduce_sum[axes=(0)] x\n", "y"),
        "3:10",
        "returned value has type f32[]",
    );
    program_error(
        "return_count",
        &body("", "x, x"),
        "2:3",
        "declares 1 result(s) but `return` gives 2",
    );
    program_error(
        "int_literal",
        &body(
            "  c: i32[3] = convert_element_type[dtype=i32] x\n  d: i32[3] = mul c 2.5\n",
            "x",
        ),
        "3:21",
        "not an i32",
    );
    program_error(
        "dot",
        &body(
            "  d: f32[] = dot_general[contract=((0),(0)), batch=((),())] x m\n",
            "x",
        ),
        "2:14",
        "`dot_general`: lhs f32[3] axis 0 has size 3 but rhs f32[2,3] axis 0 has size 2",
    );
}

#[test]
fn axes_and_permutations_out_of_range() {
    program_error(
        "axes",
        &body("  y: f32[] = reduce_sum[axes=(1)] x\n", "x"),
        "2:14",
        "axis 1 out of range for rank 1",
    );
    program_error(
        "repeat_axes",
        &body("  y: f32[] = reduce_sum[axes=(0,0)] m\n", "x"),
        "2:14",
        "repeats axis 0",
    );
    program_error(
        "perm",
        &body("  y: f32[3,2] = transpose[perm=(1,2)] m\n", "x"),
        "2:17",
        "axis 2 out of range",
    );
    program_error(
        "perm_len",
        &body("  y: f32[3,2] = transpose[perm=(1)] m\n", "x"),
        "2:17",
        "perm has 1 entries but the operand has rank 2",
    );
    program_error(
        "bcast",
        &body(
            "  y: f32[3,4] = broadcast_in_dim[shape=(3,4), dims=(1)] x\n",
            "x",
        ),
        "2:17",
        "has size 3 but result axis 1",
    );
    program_error(
        "iota_dim",
        &body("  y: f32[3] = iota[dtype=f32, shape=(3), dim=1]\n", "x"),
        "2:15",
        "dim 1 out of range",
    );
}

#[test]
fn slices_out_of_bounds() {
    program_error(
        "slice_limit",
        &body("  y: f32[3] = slice[start=(1), limit=(4)] x\n", "x"),
        "2:15",
        "out of bounds on axis 0",
    );
    program_error(
        "slice_order",
        &body("  y: f32[3] = slice[start=(2), limit=(1)] x\n", "x"),
        "2:15",
        "need 0 <= start <= limit <= 3",
    );
    program_error(
        "slice_stride",
        &body(
            "  y: f32[3] = slice[start=(0), limit=(3), strides=(0)] x\n",
            "x",
        ),
        "2:15",
        "strides (0) must be positive",
    );
    program_error(
        "pad_negative",
        &body("  y: f32[1] = pad[low=(-3), high=(-1)] x 0.0\n", "x"),
        "2:15",
        "negative size",
    );
}

#[test]
fn convolution_attributes_and_shapes() {
    let conv = |attrs: &str, w: &str| {
        format!(
            "func f(x: f32[2,4,5], w: {w}) -> f32[2,4,5] {{\n  y = conv_general_dilated[{attrs}] x w\n  return x\n}}\n"
        )
    };
    let kernel = "f32[4,4,2]";
    program_error(
        "conv_padding_form",
        &conv("window_strides=(1), padding=(1,1)", kernel),
        "2:48",
        "attribute `padding` of `conv_general_dilated` must be a tuple of (lo,hi) pairs",
    );
    program_error(
        "conv_padding_pair",
        &conv("window_strides=(1), padding=((1,1,0))", kernel),
        "2:48",
        "found a tuple of 3 items",
    );
    program_error(
        "conv_no_strides",
        &conv("padding=((0,0))", kernel),
        "2:7",
        "`conv_general_dilated` needs the attribute `window_strides`",
    );
    program_error(
        "conv_unknown_attr",
        &conv("window_strides=(1), padding=((0,0)), groups=2", kernel),
        "2:65",
        "`conv_general_dilated` has no attribute `groups`",
    );
    program_error(
        "conv_groups",
        &conv(
            "window_strides=(1), padding=((0,0)), feature_group_count=3",
            "f32[4,2,2]",
        ),
        "2:7",
        "`conv_general_dilated`: lhs f32[2,4,5] has 4 features but rhs f32[4,2,2] takes 2 per group times feature_group_count 3",
    );
    program_error(
        "conv_negative_size",
        &conv("window_strides=(1), padding=((-3,-3))", kernel),
        "2:7",
        "`conv_general_dilated`: spatial axis 0: padding (-3,-3) leaves a negative size -1",
    );
    program_error(
        "conv_rank",
        &conv("window_strides=(1,1), padding=((0,0),(0,0))", kernel),
        "2:7",
        "window_strides (1,1) has 2 entries but the operands f32[2,4,5] and f32[4,4,2] have 1 spatial axes",
    );
    program_error(
        "conv_zero_stride",
        &conv("window_strides=(0), padding=((0,0))", kernel),
        "2:7",
        "strides and dilations must be at least 1",
    );
}

fn corpus(case: &str, file: &str) -> String {
    common::data_dir()
        .join("conformance")
        .join(case)
        .join(file)
        .display()
        .to_string()
}

#[test]
fn npy_inputs_of_the_wrong_shape_dtype_or_number() {
    let f = corpus("add", "f.ir");
    let x4 = corpus("add", "x0.npy");
    let x23 = corpus("sin", "x0.npy");
    let f32_input = common::data_dir()
        .join("conformance/f32_tanh_mlp/x0.npy")
        .display()
        .to_string();
    assert_user_error(
        &traceform(&["run", &f, &x4, &x23]),
        "input 1 (`x1`) must be f64[4], but the file holds f64[2,3]",
    );
    assert_user_error(
        &traceform(&["run", &f, &x4, &f32_input]),
        "must be f64[4], but the file holds f32[4,3]",
    );
    assert_user_error(
        &traceform(&["run", &f, &x4]),
        "takes 2 input(s) (x0: f64[4], x1: f64[4]), given 1",
    );
    assert_user_error(&traceform(&["run", &f, &x4, &x4, &x4]), "given 3");
    assert_user_error(&traceform(&["bench", &f, &x4]), "given 1");
}

#[test]
fn missing_empty_and_binary_files() {
    let missing = scratch("does-not-exist.ir");
    assert_user_error(
        &traceform(&["dump", missing.to_str().unwrap()]),
        "cannot read",
    );
    let empty = write("empty.ir", b"");
    assert_user_error(
        &traceform(&["dump", empty.to_str().unwrap()]),
        ":1:1: expected `func`, found end of file",
    );
    let binary = write("binary.ir", &[0x7f, b'E', b'L', b'F', 0xff, 0xfe, 0, 1, 2]);
    assert_user_error(
        &traceform(&["dump", binary.to_str().unwrap()]),
        ":1:1: not a text file",
    );
    let f = corpus("sin", "f.ir");
    let missing_npy = scratch("missing.npy");
    assert_user_error(
        &traceform(&["run", &f, missing_npy.to_str().unwrap()]),
        "missing.npy: cannot open",
    );
    let bad_npy = write("bad.npy", b"this is not numpy");
    assert_user_error(
        &traceform(&["run", &f, bad_npy.to_str().unwrap()]),
        "bad.npy: not a valid .npy file",
    );
    let empty_npy = write("empty.npy", b"");
    assert_user_error(
        &traceform(&["run", &f, empty_npy.to_str().unwrap()]),
        "empty.npy: not a valid .npy file",
    );
}

#[test]
fn usage_errors() {
    let f = corpus("sin", "f.ir");
    let x = corpus("sin", "x0.npy");
    let out = traceform(&["run", &f, "-t", "grid", &x]);
    assert_user_error(&out, "unknown transform `grid`");
    let out = traceform(&["run", &f, "-t", "grad:a", &x]);
    assert_user_error(&out, "`a` is not an input position");
    let out = traceform(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: "));
    let out = traceform(&["dump", &f, "--stage", "nowhere"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn good_input_still_works() {
    let dir = scratch("out");
    let out = traceform(&[
        "run",
        &corpus("sin", "f.ir"),
        "--out",
        dir.to_str().unwrap(),
        &corpus("sin", "x0.npy"),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = common::load(&dir.join("out0.npy"));
    let want = common::load(Path::new(&corpus("sin", "ref_eval_0.npy")));
    assert_eq!(common::mismatch(&got, &want, (1e-7, 1e-9)), None);
    let dot = traceform(&["dump", &corpus("sin", "f.ir"), "--format", "dot"]);
    assert_eq!(dot.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&dot.stdout).contains("digraph"));
    // The compiled stage prints the JIT's fusion plan (text only).
    let plan = traceform(&[
        "dump",
        &corpus("sin", "f.ir"),
        "-t",
        "grad",
        "--stage",
        "compiled",
    ]);
    assert_eq!(plan.status.code(), Some(0));
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(text.starts_with("step 0: loop over"), "{text}");
    assert!(text.contains("arena: "), "{text}");
    assert_user_error(
        &traceform(&[
            "dump",
            &corpus("sin", "f.ir"),
            "--stage",
            "compiled",
            "--format",
            "dot",
        ]),
        "as text only",
    );
    // The clif stage prints the Cranelift IR of each compiled function.
    let clif = traceform(&[
        "dump",
        &corpus("sin", "f.ir"),
        "-t",
        "grad",
        "--stage",
        "clif",
    ]);
    assert_eq!(clif.status.code(), Some(0));
    let text = String::from_utf8_lossy(&clif.stdout);
    assert!(text.starts_with("; loops0: steps 0..1"), "{text}");
    assert!(
        text.contains("function u0:") && text.contains("return"),
        "{text}"
    );
    assert_user_error(
        &traceform(&[
            "dump",
            &corpus("sin", "f.ir"),
            "--stage",
            "clif",
            "--format",
            "dot",
        ]),
        "as text only",
    );
}

#[test]
fn transforms_that_do_not_apply() {
    let multi = corpus("multi_output", "f.ir");
    assert_user_error(
        &traceform(&["dump", &multi, "-t", "grad", "--stage", "transformed"]),
        "`grad` needs a function with one float scalar output",
    );
    assert_user_error(
        &traceform(&["dump", &multi, "-t", "hvp", "--stage", "transformed"]),
        "`hvp` needs a function with one float scalar output",
    );
    // A Jacobian of a million inputs would unroll a million jvps: refused before building.
    let wide = write(
        "wide.ir",
        b"func wide(x: f32[1000000]) -> f32[] {\n  s: f32[1000000] = sin x\n  r: f32[] = reduce_sum[axes=(0)] s\n  return r\n}\n",
    );
    let wide = wide.to_str().unwrap();
    assert_user_error(
        &traceform(&["dump", wide, "-t", "jacfwd", "--stage", "transformed"]),
        "jacfwd of `wide` would unroll one jvp of",
    );
    assert_user_error(
        &traceform(&["dump", wide, "-t", "hessian", "--stage", "transformed"]),
        "per element of the inputs differentiated (1000000), more than 10000000 equations",
    );
    let sin = corpus("sin", "f.ir");
    assert_user_error(
        &traceform(&["dump", &sin, "-t", "grad:3", "--stage", "transformed"]),
        "input position 3 is out of range: `sin` has 1 input(s)",
    );
    assert_user_error(
        &traceform(&["dump", &sin, "-t", "jvp:0,0", "--stage", "transformed"]),
        "input position 0 is given twice",
    );
    assert_user_error(
        &traceform(&["dump", &sin, "-t", "jvp", "-t", "outputs:2"]),
        "output position 2 is out of range: `jvp_sin` has 2 output(s)",
    );
    assert_user_error(
        &traceform(&["dump", &sin, "-t", "outputs:0,0"]),
        "output position 0 is given twice",
    );
    assert_user_error(
        &traceform(&["dump", &sin, "-t", "outputs"]),
        "`-t outputs` needs output positions",
    );
    // A tangent whose shape differs from its input's.
    let x = corpus("sin", "x0.npy");
    let wrong = corpus("add", "x0.npy");
    assert_user_error(
        &traceform(&["run", &sin, "-t", "jvp", &x, &wrong]),
        "input 1 (`x1`) must be f64[2,3], but the file holds f64[4]",
    );
    // Transposing a function that is not linear names the equation and its place.
    transpose_error(
        "nonlinear.ir",
        "func f(a: f32[3], t: f32[3]) -> f32[3] {\n  u: f32[3] = mul t a\n  v: f32[3] = sin u\n  return v\n}\n",
        "transpose:1",
        ":3:15: cannot transpose: `v = sin u`: `sin` is not linear in operand 1",
    );
    transpose_error(
        "affine.ir",
        "func f(t: f32[3]) -> f32[3] {\n  u: f32[3] = add t 1.0\n  return u\n}\n",
        "transpose",
        "affine, not linear",
    );
    transpose_error(
        "bilinear.ir",
        "func f(t: f32[3]) -> f32[3] {\n  u: f32[3] = mul t t\n  return u\n}\n",
        "transpose",
        ":2:15: cannot transpose: `u = mul t t`: `mul` multiplies two values that both depend on the linear inputs",
    );
}

/// Writes `program`, dumps it with `-t transform`, and expects a user error containing `expect`
/// (after the file's path).
#[track_caller]
fn transpose_error(name: &str, program: &str, transform: &str, expect: &str) {
    let p = write(name, program.as_bytes());
    let path = p.to_str().unwrap();
    let out = traceform(&["dump", path, "-t", transform, "--stage", "transformed"]);
    assert_user_error(&out, &format!("error: {path}"));
    assert_user_error(&out, expect);
}

#[test]
fn programs_that_ask_for_too_much_memory() {
    let p = write(
        "huge.ir",
        b"func f(x: f32[]) -> f32[] {\n  a: f32[100000,100000,100] = broadcast_in_dim[shape=(100000,100000,100), dims=()] x\n  b: f32[] = reduce_sum[axes=(0,1,2)] a\n  return b\n}\n",
    );
    let x = write_scalar_f32("scalar.npy");
    let out = traceform(&["run", p.to_str().unwrap(), x.to_str().unwrap()]);
    assert_user_error(
        &out,
        "`a` (`broadcast_in_dim`) has type f32[100000,100000,100], which needs 4000000000000 bytes",
    );
    let p = write(
        "overflow.ir",
        b"func f(x: f32[]) -> f32[] {\n  a: f32[4294967295,4294967295,4294967295] = broadcast_in_dim[shape=(4294967295,4294967295,4294967295), dims=()] x\n  b: f32[] = reduce_sum[axes=(0,1,2)] a\n  return b\n}\n",
    );
    let out = traceform(&["dump", p.to_str().unwrap()]);
    assert_user_error(&out, "tensor type is too large");
}

/// A rank-0 f32 `.npy` file holding 1.0.
fn write_scalar_f32(name: &str) -> PathBuf {
    let p = scratch(name);
    traceform::npy::write_npy(&p, &traceform::Value::F32(ndarray::arr0(1.0f32).into_dyn()))
        .unwrap();
    p
}

/// Every bad input above that reaches a backend gives the same exit status and message on the
/// JIT as on the interpreter.
#[test]
fn bad_inputs_behave_the_same_on_both_backends() {
    let f = corpus("add", "f.ir");
    let x4 = corpus("add", "x0.npy");
    let x23 = corpus("sin", "x0.npy");
    let sin = corpus("sin", "f.ir");
    let huge = write(
        "huge-both.ir",
        b"func f(x: f32[]) -> f32[] {\n  a: f32[100000,100000,100] = broadcast_in_dim[shape=(100000,100000,100), dims=()] x\n  b: f32[] = reduce_sum[axes=(0,1,2)] a\n  return b\n}\n",
    );
    let scalar = write_scalar_f32("scalar-both.npy");
    let missing = scratch("missing-both.npy");
    let cases: Vec<Vec<&str>> = vec![
        vec!["run", &f, &x4, &x23],
        vec!["run", &f, &x4],
        vec!["bench", &f, &x4],
        vec!["run", &sin, "-t", "jvp", &x23, &x4],
        vec!["run", &sin, missing.to_str().unwrap()],
        vec!["run", huge.to_str().unwrap(), scalar.to_str().unwrap()],
    ];
    for args in cases {
        let run = |backend: &str| {
            let mut a = args.clone();
            a.insert(1, backend);
            a.insert(1, "--backend");
            traceform(&a)
        };
        let (interp, jit) = (run("interp"), run("jit"));
        assert_eq!(interp.status.code(), Some(2), "{args:?}");
        assert_eq!(jit.status.code(), interp.status.code(), "{args:?}");
        let first = |o: &Output| {
            let e = String::from_utf8_lossy(&o.stderr).to_string();
            e.split(", which needs").next().unwrap_or("").to_string()
        };
        assert_eq!(first(&jit), first(&interp), "{args:?}");
    }
}
