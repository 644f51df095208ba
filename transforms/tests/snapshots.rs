//! Snapshots of what the transforms emit for a few small functions, so that any change in the
//! derivative IR shows up as a reviewable diff. Regenerate with `UPDATE_EXPECT=1 cargo test`.

use expect_test::{expect, Expect};
use traceform_ir::{parse_func, print_func};
use traceform_transforms::{grad, hvp, jvp, simplify, transpose, vjp, Limits};

const SIN_TIMES_X: &str = "func f(x: f32[3]) -> f32[] {
  a: f32[3] = sin x
  b: f32[3] = mul a x
  c: f32[] = reduce_sum[axes=(0)] b
  return c
}";

const MATMUL_TANH: &str = "func g(w: f32[2,3], x: f32[3]) -> f32[2] {
  a: f32[2] = dot_general[contract=((1),(0)), batch=((),())] w x
  b: f32[2] = tanh a
  return b
}";

fn check(text: &str, transform: impl Fn(&traceform_ir::Func) -> traceform_ir::Func, want: Expect) {
    let f = parse_func(text).unwrap();
    want.assert_eq(&print_func(&transform(&f)));
}

#[test]
fn jvp_of_sin_times_x() {
    check(
        SIN_TIMES_X,
        |f| jvp(f, None).unwrap(),
        expect![[r#"
            func jvp_f(x0: f32[3], x1: f32[3]) -> (f32[], f32[]) {
              v0: f32[3] = sin x0
              v1: f32[3] = cos x0
              v2: f32[3] = mul x1 v1
              v3: f32[3] = mul v0 x0
              v4: f32[3] = mul v2 x0
              v5: f32[3] = mul x1 v0
              v6: f32[3] = add v4 v5
              v7: f32[] = reduce_sum[axes=(0)] v3
              v8: f32[] = reduce_sum[axes=(0)] v6
              return v7, v8
            }
        "#]],
    );
}

#[test]
fn grad_of_sin_times_x() {
    check(
        SIN_TIMES_X,
        |f| grad(f, None).unwrap(),
        expect![[r#"
            func grad_f(x0: f32[3]) -> f32[3] {
              v0: f32[3] = sin x0
              v1: f32[3] = cos x0
              v2: f32[3] = broadcast_in_dim[shape=(3), dims=()] 1.0:f32
              v3: f32[3] = mul v2 v0
              v4: f32[3] = mul v2 x0
              v5: f32[3] = mul v4 v1
              v6: f32[3] = add v5 v3
              return v6
            }
        "#]],
    );
}

#[test]
fn hvp_of_sin_times_x() {
    check(
        SIN_TIMES_X,
        |f| hvp(f, None).unwrap(),
        expect![[r#"
            func hvp_f(x0: f32[3], x1: f32[3]) -> f32[3] {
              v0: f32[3] = cos x0
              v1: f32[3] = sin x0
              v2: f32[3] = neg v1
              v3: f32[3] = mul x1 v2
              v4: f32[3] = mul x1 v0
              v5: f32[3] = mul v3 x0
              v6: f32[3] = add v4 v5
              v7: f32[3] = cos x0
              v8: f32[3] = mul x1 v7
              v9: f32[3] = add v6 v8
              return v9
            }
        "#]],
    );
}

#[test]
fn vjp_of_matmul_tanh_with_respect_to_w() {
    check(
        MATMUL_TANH,
        |f| vjp(f, Some(&[0])).unwrap(),
        expect![[r#"
            func vjp_g(x0: f32[2,3], x1: f32[3], x2: f32[2]) -> (f32[2], f32[2,3]) {
              v0: f32[2] = dot_general[contract=((1),(0)), batch=((),())] x0 x1
              v1: f32[2] = tanh v0
              v2: f32[2] = add 1.0:f32 v1
              v3: f32[2] = sub 1.0:f32 v1
              v4: f32[2] = mul v2 v3
              v5: f32[2] = mul x2 v4
              v6: f32[2,3] = dot_general[contract=((),()), batch=((),())] v5 x1
              return v1, v6
            }
        "#]],
    );
}

#[test]
fn transpose_of_a_linear_function() {
    let text = "func lin(a: f32[2,3], t: f32[3]) -> f32[2] {
  u: f32[3] = mul t 2.0
  v: f32[2] = dot_general[contract=((1),(0)), batch=((),())] a u
  w: f32[2] = neg v
  return w
}";
    check(
        text,
        |f| transpose(f, 1).unwrap(),
        expect![[r#"
        func transpose_lin(x0: f32[2,3], x1: f32[2]) -> f32[3] {
          v0: f32[2] = neg x1
          v1: f32[3] = dot_general[contract=((0),(0)), batch=((),())] v0 x0
          v2: f32[3] = mul v1 2.0:f32
          return v2
        }
    "#]],
    );
}

#[test]
fn simplified_hvp_of_sin_times_x() {
    // The multiplies by a broadcast 1.0 and the recomputed `cos` are gone; the derivative
    // `2 cos x - x sin x` times the vector is what is left.
    check(
        SIN_TIMES_X,
        |f| {
            let h = hvp(f, None).unwrap();
            simplify(&h, &Limits::for_size(h.eqns.len())).0
        },
        expect![[r#"
            func hvp_f(x0: f32[3], x1: f32[3]) -> f32[3] {
              v0: f32[3] = cos x0
              v1: f32[3] = mul v0 2.0:f32
              v2: f32[3] = mul x1 v1
              v3: f32[3] = sin x0
              v4: f32[3] = mul x1 v3
              v5: f32[3] = mul v4 x0
              v6: f32[3] = sub v2 v5
              return v6
            }
        "#]],
    );
}
