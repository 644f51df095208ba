//! Runtime values: dense ndarray tensors of one of the IR's dtypes.

use ndarray::{Array, ArrayD, ArrayView, Dimension, IxDyn};
use traceform_ir::{DType, Literal, Type};

/// A tensor value. Arrays are kept in standard (row-major) layout.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    F32(ArrayD<f32>),
    F64(ArrayD<f64>),
    I32(ArrayD<i32>),
    Bool(ArrayD<bool>),
}

impl Value {
    pub fn dtype(&self) -> DType {
        match self {
            Value::F32(_) => DType::F32,
            Value::F64(_) => DType::F64,
            Value::I32(_) => DType::I32,
            Value::Bool(_) => DType::Bool,
        }
    }

    pub fn shape(&self) -> &[usize] {
        match self {
            Value::F32(a) => a.shape(),
            Value::F64(a) => a.shape(),
            Value::I32(a) => a.shape(),
            Value::Bool(a) => a.shape(),
        }
    }

    pub fn ty(&self) -> Type {
        Type::new(self.dtype(), self.shape())
    }

    /// Bytes of the dense buffer.
    pub fn size_bytes(&self) -> usize {
        self.shape().iter().product::<usize>() * self.dtype().size_bytes()
    }

    /// A rank-0 value holding a literal.
    pub fn from_literal(l: &Literal) -> Value {
        let shape = IxDyn(&[]);
        match l.dtype {
            DType::F32 => Value::F32(ArrayD::from_elem(shape, l.value as f32)),
            DType::F64 => Value::F64(ArrayD::from_elem(shape, l.value)),
            DType::I32 => Value::I32(ArrayD::from_elem(shape, l.value as i32)),
            DType::Bool => Value::Bool(ArrayD::from_elem(shape, l.value != 0.0)),
        }
    }

    /// A value of type `ty` filled with `x` (converted to the dtype).
    pub fn full(ty: &Type, x: f64) -> Value {
        let shape = IxDyn(&ty.shape);
        match ty.dtype {
            DType::F32 => Value::F32(ArrayD::from_elem(shape, x as f32)),
            DType::F64 => Value::F64(ArrayD::from_elem(shape, x)),
            DType::I32 => Value::I32(ArrayD::from_elem(shape, x as i32)),
            DType::Bool => Value::Bool(ArrayD::from_elem(shape, x != 0.0)),
        }
    }

    /// The elements converted to f64, in row-major order (for comparisons in tests).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match self {
            Value::F32(a) => a.iter().map(|&x| f64::from(x)).collect(),
            Value::F64(a) => a.iter().copied().collect(),
            Value::I32(a) => a.iter().map(|&x| f64::from(x)).collect(),
            Value::Bool(a) => a.iter().map(|&x| f64::from(u8::from(x))).collect(),
        }
    }

    /// The f64 array, if this is one.
    pub fn as_f64(&self) -> Option<&ArrayD<f64>> {
        match self {
            Value::F64(a) => Some(a),
            _ => None,
        }
    }

    /// The f32 array, if this is one.
    pub fn as_f32(&self) -> Option<&ArrayD<f32>> {
        match self {
            Value::F32(a) => Some(a),
            _ => None,
        }
    }
}

/// `Value::from` an array of any dimension, owned (moved in), borrowed or viewed (copied into
/// standard layout), so mixed arguments read `[Value::from(w), Value::from(&labels)]`.
macro_rules! value_from_arrays {
    ($t:ty, $variant:ident) => {
        impl<D: Dimension> From<Array<$t, D>> for Value {
            fn from(a: Array<$t, D>) -> Value {
                if a.is_standard_layout() {
                    Value::$variant(a.into_dyn())
                } else {
                    Value::from(a.view())
                }
            }
        }

        impl<D: Dimension> From<&Array<$t, D>> for Value {
            fn from(a: &Array<$t, D>) -> Value {
                Value::from(a.view())
            }
        }

        impl<D: Dimension> From<ArrayView<'_, $t, D>> for Value {
            fn from(a: ArrayView<'_, $t, D>) -> Value {
                Value::$variant(a.as_standard_layout().into_owned().into_dyn())
            }
        }
    };
}

value_from_arrays!(f32, F32);
value_from_arrays!(f64, F64);
value_from_arrays!(i32, I32);
value_from_arrays!(bool, Bool);
