//! Dense Jacobians and Hessians as `Func -> Func` transforms, unrolled: `jacfwd` runs one jvp
//! per input element, `jacrev` one vjp per output element, `hessian` is `jacfwd(jacrev(f))`.
//! Meant for the small Jacobians of debugging and of second-order methods on few parameters
//! (there is no `vmap`: the program grows with the number of elements).
//!
//! Signatures, for `f(x1..xn) -> (y1..ym)` and `W` the differentiated inputs:
//! - `jacfwd`, `jacrev`: `(x1..xn) -> one block per (float output i, input j in W)`,
//!   output-major, block `(i, j)` of shape `y_i.shape ++ x_j.shape`;
//! - `hessian` (f has one float scalar output): `(x1..xn) -> one block per (j, k) in W x W`,
//!   row-major, of shape `x_j.shape ++ x_k.shape`.

use traceform_ir::{Atom, Builder, CompareOp, DType, Func, Prim, Type};

use crate::util::finish;
use crate::{check_float_output, check_scalar, check_wrt, jvp, vjp, TransformError};

/// Which derivative seeds the columns (forward) or rows (reverse) of the Jacobian.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Forward,
    Reverse,
}

/// The Jacobian by forward mode, one jvp per element of each input in `wrt`.
pub fn jacfwd(func: &Func, wrt: Option<&[usize]>) -> Result<Func, TransformError> {
    jacobian(func, wrt, Mode::Forward, format!("jacfwd_{}", func.name))
}

/// The Jacobian by reverse mode, one vjp per element of each float output.
pub fn jacrev(func: &Func, wrt: Option<&[usize]>) -> Result<Func, TransformError> {
    jacobian(func, wrt, Mode::Reverse, format!("jacrev_{}", func.name))
}

/// The Hessian of a function with one float scalar output, `jacfwd(jacrev(f))`.
pub fn hessian(func: &Func, wrt: Option<&[usize]>) -> Result<Func, TransformError> {
    check_scalar(func, "hessian")?;
    let wrt = check_wrt(func, wrt)?;
    let mut h = jacfwd(&jacrev(func, Some(&wrt))?, Some(&wrt))?;
    h.name = format!("hessian_{}", func.name);
    Ok(h)
}

/// The most equations a Jacobian may unroll to (one derivative per seeded element).
pub const MAX_UNROLLED_EQNS: usize = 10_000_000;

/// A tensor of type `ty` that is 1 at flat position `k` and 0 elsewhere.
fn one_hot(b: &mut Builder, ty: &Type, k: usize) -> Atom {
    let n = ty.num_elements();
    let iota = b.eqn(
        Prim::Iota {
            dtype: DType::I32,
            shape: [n][..].into(),
            dim: 0,
        },
        &[],
    );
    let at = b.lit(k as f64, DType::I32);
    let hot = b.compare(CompareOp::Eq, iota, at);
    let hot = b.convert(hot, ty.dtype);
    b.reshape(hot, &ty.shape)
}

/// Equally shaped tensors (at least one) stacked along a new axis at `position`.
fn stack(b: &mut Builder, parts: &[Atom], position: usize) -> Atom {
    let expanded: Vec<Atom> = parts
        .iter()
        .map(|&p| {
            b.eqn(
                Prim::ExpandDims {
                    dims: [position][..].into(),
                },
                &[p],
            )
        })
        .collect();
    b.eqn(Prim::Concatenate { axis: position }, &expanded)
}

fn jacobian(
    func: &Func,
    wrt: Option<&[usize]>,
    mode: Mode,
    name: String,
) -> Result<Func, TransformError> {
    check_float_output(
        func,
        if mode == Mode::Forward {
            "jacfwd"
        } else {
            "jacrev"
        },
    )?;
    let wrt = check_wrt(func, wrt)?;
    let param_types = func.param_types();
    let float_outs = func.float_output_types();
    let derivative = match mode {
        Mode::Forward => jvp(func, Some(&wrt))?,
        Mode::Reverse => vjp(func, Some(&wrt))?,
    };
    let seed_types: Vec<Type> = match mode {
        Mode::Forward => wrt.iter().map(|&j| param_types[j].clone()).collect(),
        Mode::Reverse => float_outs.clone(),
    };
    let seeds: usize = seed_types.iter().map(Type::num_elements).sum();
    let per_seed = derivative.eqns.len() + 8;
    if seeds.saturating_mul(per_seed) > MAX_UNROLLED_EQNS {
        let (word, one, seeded) = match mode {
            Mode::Forward => ("jacfwd", "jvp", "element of the inputs differentiated"),
            Mode::Reverse => ("jacrev", "vjp", "element of the float outputs"),
        };
        return Err(TransformError::TooLarge(format!(
            "{word} of `{}` would unroll one {one} of {per_seed} equations per {seeded} ({seeds}), more than {MAX_UNROLLED_EQNS} equations in all; call {one} once per seed instead",
            func.name
        )));
    }
    let mut b = Builder::new(name);
    let xs: Vec<Atom> = param_types.iter().map(|t| Atom::Var(b.param(t))).collect();
    // blocks[i][j]: the slices of d out_i / d x_j, one per seeded element.
    let mut blocks: Vec<Vec<Vec<Atom>>> = vec![vec![Vec::new(); wrt.len()]; float_outs.len()];
    for (s, seed_ty) in seed_types.iter().enumerate() {
        for k in 0..seed_ty.num_elements() {
            let mut args = xs.clone();
            for (m, ty) in seed_types.iter().enumerate() {
                args.push(if m == s {
                    one_hot(&mut b, ty, k)
                } else {
                    b.zeros(ty)
                });
            }
            let results = b.inline(&derivative, &args);
            for (q, &t) in results[func.outputs.len()..].iter().enumerate() {
                let (i, j) = match mode {
                    Mode::Forward => (q, s),
                    Mode::Reverse => (s, q),
                };
                blocks[i][j].push(t);
            }
        }
    }
    let mut outputs = Vec::new();
    for (i, out_ty) in float_outs.iter().enumerate() {
        for (jj, &jx) in wrt.iter().enumerate() {
            let shape: Vec<usize> = out_ty
                .shape
                .iter()
                .chain(&param_types[jx].shape)
                .copied()
                .collect();
            let block = &blocks[i][jj];
            outputs.push(if block.is_empty() {
                // An empty input or output: an empty Jacobian block.
                b.zeros(&Type::new(out_ty.dtype, &shape))
            } else {
                let axis = match mode {
                    Mode::Forward => out_ty.rank(),
                    Mode::Reverse => 0,
                };
                let stacked = stack(&mut b, block, axis);
                b.reshape(stacked, &shape)
            });
        }
    }
    finish(b, &outputs)
}

#[cfg(test)]
mod tests {
    use traceform_ir::{parse_func, DType};

    use super::*;

    fn types(func: &Func) -> Vec<String> {
        func.output_types().iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn jacobian_blocks_are_output_major_of_shape_output_then_input() {
        // Two float outputs (p: f32[3], s: f32[]) and an i32 one, which has no block.
        let f = parse_func(
            "func f(x: f32[2,3], y: f32[4]) -> (f32[3], f32[], i32[]) {
  a: f32[3] = reduce_sum[axes=(0)] x
  s: f32[] = reduce_sum[axes=(0)] y
  p: f32[3] = mul a s
  i: i32[] = argmax[axis=0] y
  return p, s, i
}",
        )
        .unwrap();
        let want = ["f32[3,2,3]", "f32[3,4]", "f32[2,3]", "f32[4]"];
        assert_eq!(types(&jacfwd(&f, None).unwrap()), want);
        assert_eq!(types(&jacrev(&f, None).unwrap()), want);
        assert_eq!(
            types(&jacfwd(&f, Some(&[1])).unwrap()),
            ["f32[3,4]", "f32[4]"]
        );
        assert_eq!(jacrev(&f, None).unwrap().param_types(), f.param_types());
    }

    #[test]
    fn hessian_blocks_are_row_major_over_pairs_of_inputs() {
        let g = parse_func(
            "func g(x: f64[2,3], y: f64[4]) -> f64[] {
  a: f64[] = reduce_sum[axes=(0,1)] x
  b: f64[] = reduce_sum[axes=(0)] y
  c: f64[] = mul a b
  return c
}",
        )
        .unwrap();
        let h = hessian(&g, None).unwrap();
        assert_eq!(
            types(&h),
            ["f64[2,3,2,3]", "f64[2,3,4]", "f64[4,2,3]", "f64[4,4]"]
        );
        assert_eq!(h.output_types()[0].dtype, DType::F64);
        assert_eq!(types(&hessian(&g, Some(&[1])).unwrap()), ["f64[4,4]"]);
        let e = hessian(
            &parse_func("func v(x: f32[2]) -> f32[2] {\n  return x\n}").unwrap(),
            None,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("`hessian` needs a function with one float scalar output"),
            "{e}"
        );
    }
}
