//! Shape and dtype rules: the result type of each primitive from its operand types, or an
//! error that names the primitive, the operand and the shapes.

use crate::prim::{DotDims, Prim};
use crate::types::{DType, Type};

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
    Type::new(DType::F32, shape.to_vec()).to_string()[3..].to_string()
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

/// The shape of an elementwise binary operation: equal shapes, or one operand rank 0.
fn elementwise_shape(prim: &Prim, a: &Type, b: &Type) -> Result<Vec<usize>, TypeError> {
    if a.dtype != b.dtype {
        return fail(
            prim,
            format!("operands have different dtypes: {a} and {b} (use convert_element_type)"),
        );
    }
    if a.shape == b.shape || b.rank() == 0 {
        Ok(a.shape.clone())
    } else if a.rank() == 0 {
        Ok(b.shape.clone())
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
pub fn infer_type(prim: &Prim, args: &[Type]) -> Result<Type, TypeError> {
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
            Ok(x.clone())
        }
        Prim::IntegerPow { .. } => {
            require_float(prim, 1, &args[0])?;
            Ok(args[0].clone())
        }
        Prim::StopGradient => Ok(args[0].clone()),
        Prim::Binary(op) => {
            let shape = elementwise_shape(prim, &args[0], &args[1])?;
            let dtype = args[0].dtype;
            if !(dtype.is_float() || op.accepts_int() && dtype == DType::I32) {
                return fail(prim, format!("is not defined on {dtype}"));
            }
            Ok(Type::new(dtype, shape))
        }
        Prim::Compare(_) => {
            let shape = elementwise_shape(prim, &args[0], &args[1])?;
            Ok(Type::new(DType::Bool, shape))
        }
        Prim::And | Prim::Or => {
            let shape = elementwise_shape(prim, &args[0], &args[1])?;
            if args[0].dtype != DType::Bool {
                return fail(prim, format!("operands must be bool, found {}", args[0]));
            }
            Ok(Type::new(DType::Bool, shape))
        }
        Prim::Not => {
            if args[0].dtype != DType::Bool {
                return fail(prim, format!("operand 1 must be bool, found {}", args[0]));
            }
            Ok(args[0].clone())
        }
        Prim::SelectN => {
            let (p, a, b) = (&args[0], &args[1], &args[2]);
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
            Ok(a.clone())
        }
        Prim::ConvertElementType { dtype } => Ok(args[0].with_dtype(*dtype)),
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
            Ok(Type::new(*dtype, shape.clone()))
        }
        Prim::ReduceSum { axes } | Prim::ReduceMax { axes } | Prim::ReduceMin { axes } => {
            let x = &args[0];
            require_numeric(prim, 1, x)?;
            check_axes(prim, "axes", axes, x.rank())?;
            let shape = (0..x.rank())
                .filter(|d| !axes.contains(d))
                .map(|d| x.shape[d])
                .collect::<Vec<_>>();
            Ok(Type::new(x.dtype, shape))
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
            Ok(Type::new(DType::I32, shape))
        }
        Prim::Cumsum { axis, .. } => {
            let x = &args[0];
            require_numeric(prim, 1, x)?;
            check_axes(prim, "axis", &[*axis], x.rank())?;
            Ok(x.clone())
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
            Ok(Type::new(x.dtype, shape.clone()))
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
            Ok(Type::new(x.dtype, shape.clone()))
        }
        Prim::Transpose { perm } => {
            let x = &args[0];
            check_len(prim, "perm", perm.len(), x.rank())?;
            check_axes(prim, "perm", perm, x.rank())?;
            Ok(Type::new(
                x.dtype,
                perm.iter().map(|&p| x.shape[p]).collect::<Vec<_>>(),
            ))
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
                .collect::<Vec<_>>();
            Ok(Type::new(x.dtype, shape))
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
                .collect::<Vec<_>>();
            Ok(Type::new(x.dtype, shape))
        }
        Prim::Rev { dims } => {
            check_axes(prim, "dims", dims, args[0].rank())?;
            Ok(args[0].clone())
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
            let mut shape = Vec::with_capacity(x.rank());
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
            Ok(Type::new(x.dtype, shape))
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
            let mut shape = Vec::with_capacity(x.rank());
            for d in 0..x.rank() {
                let n = x.shape[d] as i64;
                let size = low[d] + high[d] + n + (n - 1).max(0) * interior[d] as i64;
                if size < 0 {
                    return fail(
                        prim,
                        format!("axis {d} of {x} would have negative size {size}"),
                    );
                }
                shape.push(size as usize);
            }
            Ok(Type::new(x.dtype, shape))
        }
        Prim::Concatenate { axis } => {
            let first = &args[0];
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
                shape[*axis] += t.shape[*axis];
            }
            Ok(Type::new(first.dtype, shape))
        }
        Prim::DotGeneral(dims) => dot_general_type(prim, dims, &args[0], &args[1]),
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
    let mut shape: Vec<usize> = lb.iter().map(|&d| x.shape[d]).collect();
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

/// True when the primitive is elementwise (result element i depends on operand elements i
/// only), rank-0 operands broadcasting.
pub fn is_elementwise(prim: &Prim) -> bool {
    match prim {
        Prim::Unary(_)
        | Prim::IntegerPow { .. }
        | Prim::StopGradient
        | Prim::Binary(_)
        | Prim::Compare(_)
        | Prim::And
        | Prim::Or
        | Prim::Not
        | Prim::SelectN
        | Prim::ConvertElementType { .. } => true,
        Prim::Iota { .. }
        | Prim::ReduceSum { .. }
        | Prim::ReduceMax { .. }
        | Prim::ReduceMin { .. }
        | Prim::Argmax { .. }
        | Prim::Argmin { .. }
        | Prim::Cumsum { .. }
        | Prim::BroadcastInDim { .. }
        | Prim::Reshape { .. }
        | Prim::Transpose { .. }
        | Prim::Squeeze { .. }
        | Prim::ExpandDims { .. }
        | Prim::Rev { .. }
        | Prim::Slice { .. }
        | Prim::Pad { .. }
        | Prim::Concatenate { .. }
        | Prim::DotGeneral(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prim::{BinaryOp, UnaryOp};

    fn f32s(shape: &[usize]) -> Type {
        Type::new(DType::F32, shape.to_vec())
    }

    #[test]
    fn add_broadcasts_rank_zero_only() {
        let add = Prim::Binary(BinaryOp::Add);
        assert_eq!(
            infer_type(&add, &[f32s(&[3]), f32s(&[])]).unwrap(),
            f32s(&[3])
        );
        let e = infer_type(&add, &[f32s(&[3]), f32s(&[4])]).unwrap_err();
        assert!(e.message.contains("f32[3] and f32[4]"), "{}", e.message);
    }

    #[test]
    fn dot_general_orders_batch_then_free() {
        let p = Prim::DotGeneral(DotDims {
            contract: (vec![1, 3], vec![2, 0]),
            batch: (vec![0], vec![1]),
        });
        let t = infer_type(&p, &[f32s(&[2, 3, 4, 5]), f32s(&[5, 2, 3, 6])]).unwrap();
        assert_eq!(t, f32s(&[2, 4, 6]));
    }

    #[test]
    fn pad_with_negative_low_and_interior() {
        let p = Prim::Pad {
            low: vec![1, -1],
            high: vec![2, 1],
            interior: vec![1, 0],
        };
        let t = infer_type(&p, &[f32s(&[3, 4]), f32s(&[])]).unwrap();
        assert_eq!(t, f32s(&[8, 4]));
    }

    #[test]
    fn unary_rejects_bool() {
        let e = infer_type(&Prim::Unary(UnaryOp::Sin), &[Type::scalar(DType::Bool)]).unwrap_err();
        assert!(e.message.starts_with("`sin`"), "{}", e.message);
    }
}
