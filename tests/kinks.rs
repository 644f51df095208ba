//! The derivative conventions at kinks (`shared/spec/ir-text.md`, "Derivative conventions",
//! which are jax.lax's), evaluated exactly at the kinks, which the corpus and the generated
//! tests stay away from: `abs'(±0) = 1`; `max`/`min` split the derivative 0.5/0.5 on a tie;
//! `reduce_max`/`reduce_min` split it equally among the tied extrema; `sqrt'(0) = inf`;
//! `pow`'s derivative in the base is 0 where the exponent is 0 and in the exponent reads
//! `log(0)` as 0; `round` rounds halves away from zero with zero derivative; `floor`, `ceil`
//! and `sign` have zero derivative (at integers and at ±0 too); `integer_pow[y=0]` has zero
//! derivative, even at 0 (jax.lax's rule returns zeros for `y = 0`).
//!
//! Each program is written once with `DT` for its float dtype and checked in f32 and in f64,
//! through the text IR: `jvp` (values and tangents), `vjp` with a given cotangent, and, for a
//! scalar variant, `grad` and `hvp`. The expected values are exact in both dtypes (chosen so
//! that every rule's arithmetic is exact, except a division by 3 for a three-way tie), so the
//! tolerance is 2 ulp of the dtype relative to the expected value: `|got - want| <= 2 eps
//! |want|` (`eps` = 2^-23 for f32, 2^-52 for f64), which is exactness for expected zeros;
//! an expected infinity must be that infinity.

use ndarray::{ArrayD, IxDyn};
use traceform::ir::Type;
use traceform::transforms::{grad, hvp, jvp, vjp};
use traceform::{eval, parse_func, DType, Func, Value};

const DTYPES: [DType; 2] = [DType::F32, DType::F64];

const INF: f64 = f64::INFINITY;

/// A program with vector outputs, checked by `jvp` and `vjp` at one point.
struct FirstOrder<'a> {
    /// The program, `DT` standing for the float dtype.
    text: &'a str,
    x: &'a [&'a [f64]],
    /// The expected outputs of the program at `x`.
    y: &'a [&'a [f64]],
    /// One tangent per input (every input is differentiated).
    t: &'a [&'a [f64]],
    /// The expected output tangents.
    jvp: &'a [&'a [f64]],
    /// One cotangent per output.
    ct: &'a [&'a [f64]],
    /// The expected input cotangents.
    vjp: &'a [&'a [f64]],
}

/// A program with one scalar output, checked by `grad` and `hvp` at one point.
struct SecondOrder<'a> {
    text: &'a str,
    wrt: Option<&'a [usize]>,
    x: &'a [&'a [f64]],
    /// The expected gradient, one per input in `wrt`.
    grad: &'a [&'a [f64]],
    /// One vector per input in `wrt`.
    v: &'a [&'a [f64]],
    /// The expected Hessian-vector products.
    hvp: &'a [&'a [f64]],
}

fn program(text: &str, dtype: DType) -> Func {
    let text = text.replace("DT", &dtype.to_string());
    parse_func(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn value(ty: &Type, data: &[f64]) -> Value {
    assert_eq!(ty.num_elements(), data.len(), "test data for {ty}");
    let shape = IxDyn(&ty.shape);
    match ty.dtype {
        DType::F32 => Value::F32(
            ArrayD::from_shape_vec(shape, data.iter().map(|&x| x as f32).collect()).unwrap(),
        ),
        DType::F64 => Value::F64(ArrayD::from_shape_vec(shape, data.to_vec()).unwrap()),
        other => panic!("no test data of dtype {other}"),
    }
}

/// `data` as values of the types of `func`'s parameters at `positions`.
fn values(func: &Func, positions: &[usize], data: &[&[f64]]) -> Vec<Value> {
    let types = func.param_types();
    assert_eq!(positions.len(), data.len(), "one array per input");
    positions
        .iter()
        .zip(data)
        .map(|(&i, d)| value(&types[i], d))
        .collect()
}

#[track_caller]
fn assert_exact(what: &str, dtype: DType, got: &[Value], want: &[&[f64]]) {
    assert_eq!(got.len(), want.len(), "{what} ({dtype}): number of results");
    let eps = match dtype {
        DType::F32 => f64::from(f32::EPSILON),
        _ => f64::EPSILON,
    };
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.dtype(), dtype, "{what}: result {k}");
        let g = g.to_f64_vec();
        let ok = g.len() == w.len()
            && g.iter().zip(w.iter()).all(|(&g, &w)| {
                if w.is_finite() {
                    (g - w).abs() <= 2.0 * eps * w.abs()
                } else {
                    g == w
                }
            });
        assert!(ok, "{what} ({dtype}), result {k}: got {g:?}, want {w:?}");
    }
}

fn check_first_order(name: &str, case: &FirstOrder) {
    for dtype in DTYPES {
        let f = program(case.text, dtype);
        let all: Vec<usize> = (0..f.params.len()).collect();
        let m = f.outputs.len();

        let mut args = values(&f, &all, case.x);
        args.extend(values(&f, &all, case.t));
        let out = eval(&jvp(&f, None).unwrap(), &args).unwrap();
        assert_exact(&format!("{name}: values"), dtype, &out[..m], case.y);
        assert_exact(&format!("{name}: jvp"), dtype, &out[m..], case.jvp);

        let mut args = values(&f, &all, case.x);
        let output_types = f.output_types();
        assert_eq!(case.ct.len(), m, "{name}: one cotangent per output");
        args.extend(output_types.iter().zip(case.ct).map(|(ty, c)| value(ty, c)));
        let out = eval(&vjp(&f, None).unwrap(), &args).unwrap();
        assert_exact(&format!("{name}: vjp values"), dtype, &out[..m], case.y);
        assert_exact(&format!("{name}: vjp"), dtype, &out[m..], case.vjp);
    }
}

fn check_second_order(name: &str, case: &SecondOrder) {
    for dtype in DTYPES {
        let f = program(case.text, dtype);
        let all: Vec<usize> = (0..f.params.len()).collect();
        let wrt: Vec<usize> = case.wrt.map_or(all.clone(), <[usize]>::to_vec);

        let x = values(&f, &all, case.x);
        let g = eval(&grad(&f, case.wrt).unwrap(), &x).unwrap();
        assert_exact(&format!("{name}: grad"), dtype, &g, case.grad);

        let mut args = x;
        args.extend(values(&f, &wrt, case.v));
        let hv = eval(&hvp(&f, case.wrt).unwrap(), &args).unwrap();
        assert_exact(&format!("{name}: hvp"), dtype, &hv, case.hvp);
    }
}

#[test]
fn abs_has_derivative_one_at_plus_and_minus_zero() {
    check_first_order(
        "abs",
        &FirstOrder {
            text: "func f(x: DT[3]) -> DT[3] {
  a: DT[3] = abs x
  return a
}",
            x: &[&[0.0, -0.0, -3.0]],
            y: &[&[0.0, 0.0, 3.0]],
            t: &[&[1.0, 2.0, 4.0]],
            jvp: &[&[1.0, 2.0, -4.0]],
            ct: &[&[1.0, 2.0, 4.0]],
            vjp: &[&[1.0, 2.0, -4.0]],
        },
    );
    // f = sum(|x| x): f' = abs'(x) x + |x|, f'' = 2 abs'(x).
    check_second_order(
        "abs",
        &SecondOrder {
            text: "func f(x: DT[3]) -> DT[] {
  a: DT[3] = abs x
  b: DT[3] = mul a x
  r: DT[] = reduce_sum[axes=(0)] b
  return r
}",
            wrt: None,
            x: &[&[0.0, -0.0, -3.0]],
            grad: &[&[0.0, 0.0, 6.0]],
            v: &[&[1.0, 2.0, 4.0]],
            hvp: &[&[2.0, 4.0, -8.0]],
        },
    );
}

#[test]
fn sqrt_has_infinite_derivative_at_zero() {
    check_first_order(
        "sqrt",
        &FirstOrder {
            text: "func f(x: DT[2]) -> DT[2] {
  a: DT[2] = sqrt x
  return a
}",
            x: &[&[0.0, 4.0]],
            y: &[&[0.0, 2.0]],
            t: &[&[1.0, 2.0]],
            jvp: &[&[INF, 0.5]],
            ct: &[&[1.0, 2.0]],
            vjp: &[&[INF, 0.5]],
        },
    );
    // grad only: the second derivative at 0 is not a convention (inf/0 arithmetic).
    for dtype in DTYPES {
        let f = program(
            "func f(x: DT[2]) -> DT[] {
  a: DT[2] = sqrt x
  r: DT[] = reduce_sum[axes=(0)] a
  return r
}",
            dtype,
        );
        let g = eval(&grad(&f, None).unwrap(), &values(&f, &[0], &[&[0.0, 4.0]])).unwrap();
        assert_exact("sqrt: grad", dtype, &g, &[&[INF, 0.25]]);
    }
}

#[test]
fn max_and_min_split_ties_half_and_half() {
    // r = max(x, y) + 3 min(x, y): a tie gives each operand 0.5 + 1.5 = 2, where a max or min
    // that sent everything to one side would give 1 and 3, or 4 and 0.
    check_first_order(
        "max/min",
        &FirstOrder {
            text: "func f(x: DT[4], y: DT[4]) -> DT[4] {
  m: DT[4] = max x y
  n: DT[4] = min x y
  k: DT[4] = mul n 3.0
  r: DT[4] = add m k
  return r
}",
            x: &[&[1.0, 2.0, 0.0, -1.0], &[1.0, 1.0, 0.5, -1.0]],
            y: &[&[4.0, 5.0, 0.5, -4.0]],
            t: &[&[1.0, 2.0, 3.0, 4.0], &[10.0, 20.0, 30.0, 40.0]],
            jvp: &[&[22.0, 62.0, 39.0, 88.0]],
            ct: &[&[1.0, 2.0, 3.0, 4.0]],
            vjp: &[&[2.0, 2.0, 9.0, 8.0], &[2.0, 6.0, 3.0, 8.0]],
        },
    );
    // Against a literal (relu as lax.max, 0.5 at 0) and against itself (0.5 + 0.5 = 1).
    check_first_order(
        "max with a literal, min with itself",
        &FirstOrder {
            text: "func f(x: DT[3]) -> DT[3] {
  a: DT[3] = max x 0.0
  b: DT[3] = min x x
  c: DT[3] = add a b
  return c
}",
            x: &[&[0.0, 2.0, -1.0]],
            y: &[&[0.0, 4.0, -1.0]],
            t: &[&[1.0, 1.0, 1.0]],
            jvp: &[&[1.5, 2.0, 1.0]],
            ct: &[&[2.0, 2.0, 2.0]],
            vjp: &[&[3.0, 4.0, 2.0]],
        },
    );
    // f = sum(max(x, y)^2) with weights w = (d max/dx, d max/dy):
    // grad = 2 m w, H v = 2 (w . v) w; at the tie w = (0.5, 0.5).
    check_second_order(
        "max",
        &SecondOrder {
            text: "func f(x: DT[3], y: DT[3]) -> DT[] {
  m: DT[3] = max x y
  s: DT[3] = mul m m
  r: DT[] = reduce_sum[axes=(0)] s
  return r
}",
            wrt: None,
            x: &[&[1.0, 2.0, 0.0], &[1.0, 1.0, 0.5]],
            grad: &[&[1.0, 4.0, 0.0], &[1.0, 0.0, 1.0]],
            v: &[&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]],
            hvp: &[&[5.5, 4.0, 0.0], &[5.5, 0.0, 60.0]],
        },
    );
}

#[test]
fn reduce_max_and_reduce_min_split_ties_equally() {
    // reduce_max over rows with a two-way and a three-way tie; reduce_min over both axes of y
    // with a three-way tie: each output's tangent is the mean of its tied elements' tangents.
    check_first_order(
        "reduce_max/reduce_min",
        &FirstOrder {
            text: "func f(x: DT[2,3], y: DT[2,3]) -> (DT[2], DT[]) {
  a: DT[2] = reduce_max[axes=(1)] x
  b: DT[] = reduce_min[axes=(0,1)] y
  return a, b
}",
            x: &[
                &[1.0, 3.0, 3.0, 2.0, 2.0, 2.0],
                &[1.0, 3.0, 1.0, 2.0, 1.0, 5.0],
            ],
            y: &[&[3.0, 2.0], &[1.0]],
            t: &[
                &[1.0, 2.0, 4.0, 3.0, 6.0, 9.0],
                &[3.0, 100.0, 6.0, 100.0, 9.0, 100.0],
            ],
            jvp: &[&[3.0, 6.0], &[6.0]],
            ct: &[&[2.0, 3.0], &[3.0]],
            vjp: &[
                &[0.0, 1.0, 1.0, 1.0, 1.0, 1.0],
                &[1.0, 0.0, 1.0, 0.0, 1.0, 0.0],
            ],
        },
    );
    // f = sum(reduce_max(x, rows)^2): grad = 2 y mask / count, H v = 2 mean(tied v) mask / count.
    check_second_order(
        "reduce_max",
        &SecondOrder {
            text: "func f(x: DT[2,3]) -> DT[] {
  a: DT[2] = reduce_max[axes=(1)] x
  b: DT[2] = mul a a
  r: DT[] = reduce_sum[axes=(0)] b
  return r
}",
            wrt: None,
            x: &[&[1.0, 3.0, 3.0, 2.0, 2.0, 2.0]],
            grad: &[&[0.0, 3.0, 3.0, 4.0 / 3.0, 4.0 / 3.0, 4.0 / 3.0]],
            v: &[&[1.0, 2.0, 4.0, 3.0, 6.0, 9.0]],
            hvp: &[&[0.0, 3.0, 3.0, 4.0, 4.0, 4.0]],
        },
    );
}

#[test]
fn pow_at_a_zero_base() {
    // d/da a^b = b a^(b-1), but 0 where b = 0 (not 0 * 0^-1 = NaN); d/db = log(a) a^b with
    // log(0) read as 0 (not -inf * 0 = NaN); 0^0.5 has an infinite slope in a.
    check_first_order(
        "pow",
        &FirstOrder {
            text: "func f(a: DT[5], b: DT[5]) -> DT[5] {
  y: DT[5] = pow a b
  return y
}",
            x: &[&[0.0, 0.0, 0.0, 0.0, 1.0], &[0.0, 1.0, 2.0, 0.5, 3.0]],
            y: &[&[1.0, 0.0, 0.0, 0.0, 1.0]],
            t: &[&[1.0; 5], &[1.0; 5]],
            jvp: &[&[0.0, 1.0, 0.0, INF, 3.0]],
            ct: &[&[1.0, 2.0, 3.0, 4.0, 5.0]],
            vjp: &[&[0.0, 2.0, 0.0, INF, 15.0], &[0.0; 5]],
        },
    );
    // In the base only: f = sum(a^b), f'' = b (b-1) a^(b-2), read at b - 1 = 0 as the
    // derivative of a^0, which is 0.
    check_second_order(
        "pow",
        &SecondOrder {
            text: "func f(a: DT[4], b: DT[4]) -> DT[] {
  y: DT[4] = pow a b
  r: DT[] = reduce_sum[axes=(0)] y
  return r
}",
            wrt: Some(&[0]),
            x: &[&[0.0, 0.0, 0.0, 1.0], &[0.0, 1.0, 2.0, 3.0]],
            grad: &[&[0.0, 1.0, 0.0, 3.0]],
            v: &[&[1.0, 2.0, 3.0, 4.0]],
            hvp: &[&[0.0, 0.0, 6.0, 24.0]],
        },
    );
}

#[test]
fn integer_pow_zero_has_zero_derivative_at_zero() {
    // x^0 = 1 everywhere, so its derivative is 0, at 0 too (not 0 * 0^-1 = NaN), as jax.lax's
    // integer_pow rule; the other exponents at 0 as their formula says.
    check_first_order(
        "integer_pow",
        &FirstOrder {
            text: "func f(x: DT[2]) -> (DT[2], DT[2], DT[2], DT[2]) {
  a: DT[2] = integer_pow[y=0] x
  b: DT[2] = integer_pow[y=1] x
  c: DT[2] = integer_pow[y=2] x
  d: DT[2] = integer_pow[y=-2] x
  return a, b, c, d
}",
            x: &[&[0.0, 2.0]],
            y: &[&[1.0, 1.0], &[0.0, 2.0], &[0.0, 4.0], &[INF, 0.25]],
            t: &[&[1.0, 1.0]],
            jvp: &[&[0.0, 0.0], &[1.0, 1.0], &[0.0, 4.0], &[-INF, -0.25]],
            ct: &[&[1.0, 1.0], &[1.0, 1.0], &[1.0, 1.0], &[1.0, 1.0]],
            vjp: &[&[-INF, 4.75]],
        },
    );
    check_second_order(
        "integer_pow",
        &SecondOrder {
            text: "func f(x: DT[2]) -> DT[] {
  a: DT[2] = integer_pow[y=0] x
  b: DT[2] = integer_pow[y=3] x
  c: DT[2] = add a b
  r: DT[] = reduce_sum[axes=(0)] c
  return r
}",
            wrt: None,
            x: &[&[0.0, 2.0]],
            grad: &[&[0.0, 12.0]],
            v: &[&[1.0, 1.0]],
            hvp: &[&[0.0, 12.0]],
        },
    );
}

#[test]
fn round_rounds_halves_away_from_zero_with_zero_derivative() {
    // y = round(x) x: y' = round(x) (the round's own derivative is 0), y'' = 0.
    check_first_order(
        "round",
        &FirstOrder {
            text: "func f(x: DT[5]) -> DT[5] {
  r: DT[5] = round x
  y: DT[5] = mul r x
  return y
}",
            x: &[&[0.5, -0.5, 1.5, 2.5, -2.5]],
            y: &[&[0.5, 0.5, 3.0, 7.5, 7.5]],
            t: &[&[1.0, 1.0, 1.0, 1.0, 2.0]],
            jvp: &[&[1.0, -1.0, 2.0, 3.0, -6.0]],
            ct: &[&[1.0, 2.0, 3.0, 4.0, 5.0]],
            vjp: &[&[1.0, -2.0, 6.0, 12.0, -15.0]],
        },
    );
    check_second_order(
        "round",
        &SecondOrder {
            text: "func f(x: DT[5]) -> DT[] {
  r: DT[5] = round x
  y: DT[5] = mul r x
  s: DT[] = reduce_sum[axes=(0)] y
  return s
}",
            wrt: None,
            x: &[&[0.5, -0.5, 1.5, 2.5, -2.5]],
            grad: &[&[1.0, -1.0, 2.0, 3.0, -3.0]],
            v: &[&[1.0, 2.0, 3.0, 4.0, 5.0]],
            hvp: &[&[0.0; 5]],
        },
    );
}

#[test]
fn floor_ceil_and_sign_have_zero_derivative_at_their_jumps() {
    // e = floor x + ceil x + sign x, y = e x: y' = e, y'' = 0, at integers and at ±0.
    let vector = "func f(x: DT[5]) -> DT[5] {
  a: DT[5] = floor x
  b: DT[5] = ceil x
  c: DT[5] = sign x
  d: DT[5] = add a b
  e: DT[5] = add d c
  y: DT[5] = mul e x
  return y
}";
    check_first_order(
        "floor/ceil/sign",
        &FirstOrder {
            text: vector,
            x: &[&[0.0, -0.0, 1.0, -2.0, 0.5]],
            y: &[&[0.0, 0.0, 3.0, 10.0, 1.0]],
            t: &[&[1.0; 5]],
            jvp: &[&[0.0, 0.0, 3.0, -5.0, 2.0]],
            ct: &[&[1.0, 2.0, 3.0, 4.0, 5.0]],
            vjp: &[&[0.0, 0.0, 9.0, -20.0, 10.0]],
        },
    );
    let scalar = vector.replace("-> DT[5]", "-> DT[]").replace(
        "  return y",
        "  s: DT[] = reduce_sum[axes=(0)] y\n  return s",
    );
    check_second_order(
        "floor/ceil/sign",
        &SecondOrder {
            text: &scalar,
            wrt: None,
            x: &[&[0.0, -0.0, 1.0, -2.0, 0.5]],
            grad: &[&[0.0, 0.0, 3.0, -5.0, 2.0]],
            v: &[&[1.0, 2.0, 3.0, 4.0, 5.0]],
            hvp: &[&[0.0; 5]],
        },
    );
}
