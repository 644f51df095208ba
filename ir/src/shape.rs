//! Shape and dtype rules: the result type of each primitive from its operand types, or an
//! error that names the primitive, the operand and the shapes. All arithmetic on sizes is
//! checked: a result too large to index (more than `MAX_ELEMENTS` elements over its non-zero
//! axes, or an axis past `u32::MAX`) is an error, never a wrapped-around small shape.

use crate::prim::{DotDims, Prim};
use crate::types::{DType, Shape, Type, MAX_ELEMENTS};
use crate::window;

/// Why an equation's operands do not fit its primitive. The message is complete on its own
/// ("`add`: operand 2 has type f32[3] but operand 1 has f32[4] ...").
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TypeError {
    pub message: String,
}

fn fail<T>(prim: &Prim, message: impl AsRef<str>) -> Result<T, TypeError> {
    Err(TypeError {
        message: format!("`{}`: {}", prim.name(), message.as_ref()),
    })
}

fn shape_str(shape: &[usize]) -> String {
    Type::new(DType::F32, shape).to_string()[3..].to_string()
}

fn tuple_str(xs: &[usize]) -> String {
    let inner: Vec<String> = xs.iter().map(|x| x.to_string()).collect();
    format!("({})", inner.join(","))
}

/// Checks that `axes` are distinct and below `rank`.
fn check_axes(prim: &Prim, what: &str, axes: &[usize], rank: usize) -> Result<(), TypeError> {
    for (i, &a) in axes.iter().enumerate() {
        if a >= rank {
            return fail(
                prim,
                format!(
                    "{what} {} has axis {a} out of range for rank {rank}",
                    tuple_str(axes)
                ),
            );
        }
        if axes[..i].contains(&a) {
            return fail(prim, format!("{what} {} repeats axis {a}", tuple_str(axes)));
        }
    }
    Ok(())
}

fn check_len(prim: &Prim, what: &str, len: usize, rank: usize) -> Result<(), TypeError> {
    if len != rank {
        return fail(
            prim,
            format!("{what} has {len} entries but the operand has rank {rank}"),
        );
    }
    Ok(())
}

/// Which operand's shape an elementwise binary operation has (0 or 1): equal shapes, or one
/// operand rank 0.
fn elementwise_shape(prim: &Prim, a: &Type, b: &Type) -> Result<usize, TypeError> {
    if a.dtype != b.dtype {
        return fail(
            prim,
            format!("operands have different dtypes: {a} and {b} (use convert_element_type)"),
        );
    }
    if a.shape == b.shape || b.rank() == 0 {
        Ok(0)
    } else if a.rank() == 0 {
        Ok(1)
    } else {
        fail(
            prim,
            format!(
                "operand shapes {a} and {b} differ; only rank-0 operands broadcast implicitly (use broadcast_in_dim)"
            ),
        )
    }
}

fn require_float(prim: &Prim, operand: usize, t: &Type) -> Result<(), TypeError> {
    if !t.dtype.is_float() {
        return fail(
            prim,
            format!("operand {operand} must be f32 or f64, found {t}"),
        );
    }
    Ok(())
}

fn require_numeric(prim: &Prim, operand: usize, t: &Type) -> Result<(), TypeError> {
    if !t.dtype.is_numeric() {
        return fail(
            prim,
            format!("operand {operand} must be numeric, found {t}"),
        );
    }
    Ok(())
}

/// The result type of `prim` applied to operands of types `args`.
pub fn infer_type(prim: &Prim, args: &[&Type]) -> Result<Type, TypeError> {
    Ok(match infer(prim, args)? {
        Inferred::Operand(k) => args[k].clone(),
        Inferred::New(ty) => ty,
    })
}

/// A result type: the type of operand `k` (elementwise primitives, most of a program), or a
/// new one. Builders reuse the operand's interned type without hashing or copying it.
pub(crate) enum Inferred {
    Operand(usize),
    New(Type),
}

/// `infer_type`, saying when the result has an operand's type.
pub(crate) fn infer(prim: &Prim, args: &[&Type]) -> Result<Inferred, TypeError> {
    let ty = match infer_unchecked(prim, args)? {
        Inferred::New(ty) => ty,
        same => return Ok(same),
    };
    if ty.shape.iter().any(|&d| d > u32::MAX as usize) || !Type::fits(&ty.shape) {
        return fail(
            prim,
            format!(
                "the result {ty} is too large (at most {MAX_ELEMENTS} elements, axes below 2^32)"
            ),
        );
    }
    Ok(Inferred::New(ty))
}

fn infer_unchecked(prim: &Prim, args: &[&Type]) -> Result<Inferred, TypeError> {
    use Inferred::{New, Operand};
    if let Some(n) = prim.arity() {
        if args.len() != n {
            return fail(prim, format!("takes {n} operand(s), found {}", args.len()));
        }
    } else if args.is_empty() {
        return fail(prim, "takes at least one operand, found none");
    }
    match prim {
        Prim::Unary(op) => {
            let x = &args[0];
            if !(x.dtype.is_float() || op.accepts_int() && x.dtype == DType::I32) {
                return fail(prim, format!("operand 1 must be a float, found {x}"));
            }
            Ok(Operand(0))
        }
        Prim::IntegerPow { .. } => {
            require_float(prim, 1, args[0])?;
            Ok(Operand(0))
        }
        Prim::StopGradient => Ok(Operand(0)),
        Prim::Binary(op) => {
            let k = elementwise_shape(prim, args[0], args[1])?;
            let dtype = args[0].dtype;
            if !(dtype.is_float() || op.accepts_int() && dtype == DType::I32) {
                return fail(prim, format!("is not defined on {dtype}"));
            }
            Ok(Operand(k))
        }
        Prim::Compare(_) => {
            let k = elementwise_shape(prim, args[0], args[1])?;
            Ok(New(Type::new(DType::Bool, &args[k].shape)))
        }
        Prim::And | Prim::Or => {
            let k = elementwise_shape(prim, args[0], args[1])?;
            if args[0].dtype != DType::Bool {
                return fail(prim, format!("operands must be bool, found {}", args[0]));
            }
            Ok(Operand(k))
        }
        Prim::Not => {
            if args[0].dtype != DType::Bool {
                return fail(prim, format!("operand 1 must be bool, found {}", args[0]));
            }
            Ok(Operand(0))
        }
        Prim::SelectN => {
            let (p, a, b) = (args[0], args[1], args[2]);
            if p.dtype != DType::Bool {
                return fail(
                    prim,
                    format!("predicate (operand 1) must be bool, found {p}"),
                );
            }
            if a != b {
                return fail(
                    prim,
                    format!("cases must have the same type, found {a} and {b}"),
                );
            }
            if p.rank() != 0 && p.shape != a.shape {
                return fail(
                    prim,
                    format!(
                        "predicate {p} must be rank 0 or have the cases' shape {}",
                        shape_str(&a.shape)
                    ),
                );
            }
            Ok(Operand(1))
        }
        Prim::ConvertElementType { dtype } => Ok(New(args[0].with_dtype(*dtype))),
        Prim::Iota { dtype, shape, dim } => {
            if !dtype.is_numeric() {
                return fail(prim, format!("dtype must be numeric, found {dtype}"));
            }
            if *dim >= shape.len() {
                return fail(
                    prim,
                    format!("dim {dim} out of range for shape {}", tuple_str(shape)),
                );
            }
            Ok(New(Type::new(*dtype, shape)))
        }
        Prim::Zeros { dtype, shape } => Ok(New(Type::new(*dtype, shape))),
        Prim::ReduceSum { axes } | Prim::ReduceMax { axes } | Prim::ReduceMin { axes } => {
            let x = &args[0];
            require_numeric(prim, 1, x)?;
            check_axes(prim, "axes", axes, x.rank())?;
            let shape = (0..x.rank())
                .filter(|d| !axes.contains(d))
                .map(|d| x.shape[d])
                .collect::<Shape>();
            Ok(New(Type::new(x.dtype, shape)))
        }
        Prim::Argmax { axis } | Prim::Argmin { axis } => {
            let x = &args[0];
            require_numeric(prim, 1, x)?;
            check_axes(prim, "axis", &[*axis], x.rank())?;
            if x.shape[*axis] == 0 {
                return fail(prim, format!("axis {axis} of {x} is empty"));
            }
            let mut shape = x.shape.clone();
            shape.remove(*axis);
            Ok(New(Type::new(DType::I32, shape)))
        }
        Prim::Cumsum { axis, .. } => {
            let x = &args[0];
            require_numeric(prim, 1, x)?;
            check_axes(prim, "axis", &[*axis], x.rank())?;
            Ok(Operand(0))
        }
        Prim::BroadcastInDim { shape, dims } => {
            let x = &args[0];
            check_len(prim, "dims", dims.len(), x.rank())?;
            check_axes(prim, "dims", dims, shape.len())?;
            for (i, &d) in dims.iter().enumerate() {
                if i > 0 && dims[i - 1] >= d {
                    return fail(
                        prim,
                        format!("dims {} must be strictly increasing", tuple_str(dims)),
                    );
                }
                if x.shape[i] != 1 && x.shape[i] != shape[d] {
                    return fail(
                        prim,
                        format!(
                            "operand {x} axis {i} has size {} but result axis {d} of {} has size {} (must be equal, or 1)",
                            x.shape[i],
                            tuple_str(shape),
                            shape[d]
                        ),
                    );
                }
            }
            Ok(New(Type::new(x.dtype, shape)))
        }
        Prim::Reshape { shape } => {
            let x = &args[0];
            let n: Option<usize> = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
            if n != Some(x.num_elements()) {
                return fail(
                    prim,
                    format!(
                        "cannot reshape {x} ({} elements) to {}",
                        x.num_elements(),
                        tuple_str(shape)
                    ),
                );
            }
            Ok(New(Type::new(x.dtype, shape)))
        }
        Prim::Transpose { perm } => {
            let x = &args[0];
            check_len(prim, "perm", perm.len(), x.rank())?;
            check_axes(prim, "perm", perm, x.rank())?;
            Ok(New(Type::new(
                x.dtype,
                perm.iter().map(|&p| x.shape[p]).collect::<Shape>(),
            )))
        }
        Prim::Squeeze { dims } => {
            let x = &args[0];
            check_axes(prim, "dims", dims, x.rank())?;
            if let Some(&d) = dims.iter().find(|&&d| x.shape[d] != 1) {
                return fail(
                    prim,
                    format!("axis {d} of {x} has size {}, not 1", x.shape[d]),
                );
            }
            let shape = (0..x.rank())
                .filter(|d| !dims.contains(d))
                .map(|d| x.shape[d])
                .collect::<Shape>();
            Ok(New(Type::new(x.dtype, shape)))
        }
        Prim::ExpandDims { dims } => {
            let x = &args[0];
            let rank = x.rank() + dims.len();
            check_axes(prim, "dims", dims, rank)?;
            let mut rest = x.shape.iter();
            let shape = (0..rank)
                .map(|d| {
                    if dims.contains(&d) {
                        1
                    } else {
                        *rest.next().unwrap_or(&1)
                    }
                })
                .collect::<Shape>();
            Ok(New(Type::new(x.dtype, shape)))
        }
        Prim::Rev { dims } => {
            check_axes(prim, "dims", dims, args[0].rank())?;
            Ok(Operand(0))
        }
        Prim::Slice {
            start,
            limit,
            strides,
        } => {
            let x = &args[0];
            check_len(prim, "start", start.len(), x.rank())?;
            check_len(prim, "limit", limit.len(), x.rank())?;
            check_len(prim, "strides", strides.len(), x.rank())?;
            let mut shape = Shape::with_capacity(x.rank());
            for d in 0..x.rank() {
                if !(start[d] <= limit[d] && limit[d] <= x.shape[d]) {
                    return fail(
                        prim,
                        format!(
                            "window start={} limit={} is out of bounds on axis {d} of {x} (need 0 <= start <= limit <= {})",
                            tuple_str(start),
                            tuple_str(limit),
                            x.shape[d]
                        ),
                    );
                }
                if strides[d] == 0 {
                    return fail(
                        prim,
                        format!("strides {} must be positive", tuple_str(strides)),
                    );
                }
                shape.push((limit[d] - start[d]).div_ceil(strides[d]));
            }
            Ok(New(Type::new(x.dtype, shape)))
        }
        Prim::Pad {
            low,
            high,
            interior,
        } => {
            let (x, v) = (&args[0], &args[1]);
            if v.rank() != 0 || v.dtype != x.dtype {
                return fail(
                    prim,
                    format!(
                        "padding value (operand 2) must be a rank-0 {}, found {v}",
                        x.dtype
                    ),
                );
            }
            check_len(prim, "low", low.len(), x.rank())?;
            check_len(prim, "high", high.len(), x.rank())?;
            check_len(prim, "interior", interior.len(), x.rank())?;
            let limit = i64::from(u32::MAX);
            let huge = low
                .iter()
                .chain(high.iter())
                .any(|p| p.unsigned_abs() > limit as u64)
                || interior.iter().any(|&i| i as u64 > limit as u64);
            if huge {
                return fail(
                    prim,
                    format!("low, high and interior must be at most {limit} in magnitude"),
                );
            }
            let mut shape = Shape::with_capacity(x.rank());
            for d in 0..x.rank() {
                // i128 cannot overflow here: every term is below 2^64 in magnitude.
                let n = x.shape[d] as i128;
                let size = i128::from(low[d])
                    + i128::from(high[d])
                    + n
                    + (n - 1).max(0) * interior[d] as i128;
                if size < 0 {
                    return fail(
                        prim,
                        format!("axis {d} of {x} would have negative size {size}"),
                    );
                }
                if size > i128::from(u32::MAX) {
                    return fail(
                        prim,
                        format!("axis {d} of {x} would have size {size}, which is too large"),
                    );
                }
                shape.push(size as usize);
            }
            Ok(New(Type::new(x.dtype, shape)))
        }
        Prim::Concatenate { axis } => {
            let first = args[0];
            check_axes(prim, "axis", &[*axis], first.rank())?;
            let mut shape = first.shape.clone();
            shape[*axis] = 0;
            for (i, t) in args.iter().enumerate() {
                let same_rest = t.rank() == first.rank()
                    && (0..t.rank()).all(|d| d == *axis || t.shape[d] == first.shape[d]);
                if t.dtype != first.dtype || !same_rest {
                    return fail(
                        prim,
                        format!(
                            "operand {} has type {t}, which does not fit operand 1's {first} outside axis {axis}",
                            i + 1
                        ),
                    );
                }
                shape[*axis] = shape[*axis].saturating_add(t.shape[*axis]);
            }
            Ok(New(Type::new(first.dtype, shape)))
        }
        Prim::DotGeneral(dims) => dot_general_type(prim, dims, args[0], args[1]).map(New),
        Prim::ReduceWindowSum(w) | Prim::ReduceWindowMax(w) | Prim::ReduceWindowMin(w) => {
            window::reduce_window_type(w, args[0])
                .map(New)
                .or_else(|m| fail(prim, m))
        }
        Prim::ReduceWindowSumTranspose { shape, window } => {
            window::sum_transpose_type(window, shape, args[0])
                .map(New)
                .or_else(|m| fail(prim, m))
        }
        Prim::SelectAndGatherAdd { window, .. } => window::gather_type(window, args[0], args[1])
            .map(New)
            .or_else(|m| fail(prim, m)),
        Prim::SelectAndScatterAdd { window, .. } => window::scatter_type(window, args[0], args[1])
            .map(|_| Operand(1))
            .or_else(|m| fail(prim, m)),
        Prim::ConvGeneralDilated(dims) => match dims.output_type(args[0], args[1]) {
            Ok(ty) => Ok(New(ty)),
            Err(message) => fail(prim, message),
        },
    }
}

/// The free (neither contracted nor batch) axes of one dot_general operand, in order.
pub fn dot_free_axes(rank: usize, contract: &[usize], batch: &[usize]) -> Vec<usize> {
    (0..rank)
        .filter(|d| !contract.contains(d) && !batch.contains(d))
        .collect()
}

fn dot_general_type(prim: &Prim, dims: &DotDims, x: &Type, y: &Type) -> Result<Type, TypeError> {
    if x.dtype != y.dtype {
        return fail(prim, format!("operands have different dtypes: {x} and {y}"));
    }
    require_numeric(prim, 1, x)?;
    let (lc, rc) = &dims.contract;
    let (lb, rb) = &dims.batch;
    if lc.len() != rc.len() {
        return fail(
            prim,
            format!(
                "contract lists {} and {} have different lengths",
                tuple_str(lc),
                tuple_str(rc)
            ),
        );
    }
    if lb.len() != rb.len() {
        return fail(
            prim,
            format!(
                "batch lists {} and {} have different lengths",
                tuple_str(lb),
                tuple_str(rb)
            ),
        );
    }
    let lhs_all: Vec<usize> = lc.iter().chain(lb).copied().collect();
    let rhs_all: Vec<usize> = rc.iter().chain(rb).copied().collect();
    check_axes(prim, "lhs contract+batch axes", &lhs_all, x.rank())?;
    check_axes(prim, "rhs contract+batch axes", &rhs_all, y.rank())?;
    for (a, b) in lc.iter().zip(rc).chain(lb.iter().zip(rb)) {
        if x.shape[*a] != y.shape[*b] {
            return fail(
                prim,
                format!(
                    "lhs {x} axis {a} has size {} but rhs {y} axis {b} has size {}",
                    x.shape[*a], y.shape[*b]
                ),
            );
        }
    }
    let mut shape: Shape = lb.iter().map(|&d| x.shape[d]).collect();
    shape.extend(dot_free_axes(x.rank(), lc, lb).iter().map(|&d| x.shape[d]));
    shape.extend(dot_free_axes(y.rank(), rc, rb).iter().map(|&d| y.shape[d]));
    Ok(Type::new(x.dtype, shape))
}

/// The dtype a literal without `:DTYPE` takes in an equation: the dtype of the first
/// non-literal operand that is not a `select_n` predicate, or `fallback` if there is none.
pub fn literal_dtype(prim: &Prim, operand_dtypes: &[Option<DType>], fallback: DType) -> DType {
    let skip = usize::from(matches!(prim, Prim::SelectN));
    operand_dtypes
        .iter()
        .skip(skip)
        .flatten()
        .copied()
        .next()
        .unwrap_or(fallback)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prim::{BinaryOp, UnaryOp};

    fn f32s(shape: &[usize]) -> Type {
        Type::new(DType::F32, shape)
    }

    #[test]
    fn add_broadcasts_rank_zero_only() {
        let add = Prim::Binary(BinaryOp::Add);
        assert_eq!(
            infer_type(&add, &[&f32s(&[3]), &f32s(&[])]).unwrap(),
            f32s(&[3])
        );
        let e = infer_type(&add, &[&f32s(&[3]), &f32s(&[4])]).unwrap_err();
        assert!(e.message.contains("f32[3] and f32[4]"), "{}", e.message);
    }

    #[test]
    fn dot_general_orders_batch_then_free() {
        let p = Prim::DotGeneral(DotDims {
            contract: ([1, 3][..].into(), [2, 0][..].into()),
            batch: ([0][..].into(), [1][..].into()),
        });
        let t = infer_type(&p, &[&f32s(&[2, 3, 4, 5]), &f32s(&[5, 2, 3, 6])]).unwrap();
        assert_eq!(t, f32s(&[2, 4, 6]));
    }

    #[test]
    fn pad_with_negative_low_and_interior() {
        let p = Prim::Pad {
            low: [1, -1][..].into(),
            high: [2, 1][..].into(),
            interior: [1, 0][..].into(),
        };
        let t = infer_type(&p, &[&f32s(&[3, 4]), &f32s(&[])]).unwrap();
        assert_eq!(t, f32s(&[8, 4]));
    }

    #[test]
    fn huge_pads_and_broadcasts_are_errors_not_wraparounds() {
        let p = Prim::Pad {
            low: [4294967295][..].into(),
            high: [4294967295][..].into(),
            interior: [4294967295][..].into(),
        };
        let e = infer_type(&p, &[&f32s(&[3]), &f32s(&[])]).unwrap_err();
        assert!(e.message.contains("too large"), "{}", e.message);
        let b = Prim::BroadcastInDim {
            shape: [0, 4294967295, 4294967295][..].into(),
            dims: [][..].into(),
        };
        let e = infer_type(&b, &[&f32s(&[])]).unwrap_err();
        assert!(e.message.contains("too large"), "{}", e.message);
    }

    #[test]
    fn unary_rejects_bool() {
        let e = infer_type(&Prim::Unary(UnaryOp::Sin), &[&Type::scalar(DType::Bool)]).unwrap_err();
        assert!(e.message.starts_with("`sin`"), "{}", e.message);
    }
}
