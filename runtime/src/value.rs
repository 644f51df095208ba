//! Runtime values: dense ndarray tensors of one of the IR's dtypes, owned (`Value`) or
//! borrowed (`ValueRef`, a view in any layout), and `AsValueRef`, what the interpreter and the
//! JIT take as inputs.

use ndarray::{Array, ArrayD, ArrayView, ArrayViewD, Dimension, IxDyn};
use traceform_ir::{DType, Literal, Type};

/// A tensor value. The arrays the runtime makes are in standard (row-major) layout.
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

    /// The value borrowed as a view.
    pub fn view(&self) -> ValueRef<'_> {
        match self {
            Value::F32(a) => ValueRef::F32(a.view()),
            Value::F64(a) => ValueRef::F64(a.view()),
            Value::I32(a) => ValueRef::I32(a.view()),
            Value::Bool(a) => ValueRef::Bool(a.view()),
        }
    }

    /// The value in standard layout: itself when it is, else a copy.
    pub(crate) fn into_standard_layout(self) -> Value {
        let standard = match &self {
            Value::F32(a) => a.is_standard_layout(),
            Value::F64(a) => a.is_standard_layout(),
            Value::I32(a) => a.is_standard_layout(),
            Value::Bool(a) => a.is_standard_layout(),
        };
        if standard {
            self
        } else {
            self.view().to_owned()
        }
    }
}

/// A borrowed tensor value: a view of an array of one of the four dtypes, in any layout
/// (transposed, strided, reversed). The interpreter and the JIT read their inputs through
/// these, so arrays and views are evaluated where they are, without a copy.
#[derive(Clone, Debug)]
pub enum ValueRef<'a> {
    F32(ArrayViewD<'a, f32>),
    F64(ArrayViewD<'a, f64>),
    I32(ArrayViewD<'a, i32>),
    Bool(ArrayViewD<'a, bool>),
}

impl ValueRef<'_> {
    pub fn dtype(&self) -> DType {
        match self {
            ValueRef::F32(_) => DType::F32,
            ValueRef::F64(_) => DType::F64,
            ValueRef::I32(_) => DType::I32,
            ValueRef::Bool(_) => DType::Bool,
        }
    }

    pub fn shape(&self) -> &[usize] {
        match self {
            ValueRef::F32(a) => a.shape(),
            ValueRef::F64(a) => a.shape(),
            ValueRef::I32(a) => a.shape(),
            ValueRef::Bool(a) => a.shape(),
        }
    }

    pub fn ty(&self) -> Type {
        Type::new(self.dtype(), self.shape())
    }

    /// Whether the elements are contiguous in row-major order (then the view's first element
    /// starts a dense row-major buffer).
    pub fn is_standard_layout(&self) -> bool {
        match self {
            ValueRef::F32(a) => a.is_standard_layout(),
            ValueRef::F64(a) => a.is_standard_layout(),
            ValueRef::I32(a) => a.is_standard_layout(),
            ValueRef::Bool(a) => a.is_standard_layout(),
        }
    }

    /// The same view, borrowed for a shorter lifetime (views are invariant in theirs, so
    /// this is how a `ValueRef<'a>` becomes a `ValueRef<'_>`).
    pub fn view(&self) -> ValueRef<'_> {
        match self {
            ValueRef::F32(a) => ValueRef::F32(a.view()),
            ValueRef::F64(a) => ValueRef::F64(a.view()),
            ValueRef::I32(a) => ValueRef::I32(a.view()),
            ValueRef::Bool(a) => ValueRef::Bool(a.view()),
        }
    }

    /// An owned copy, in standard layout.
    pub fn to_owned(&self) -> Value {
        match self {
            ValueRef::F32(a) => Value::F32(a.as_standard_layout().into_owned()),
            ValueRef::F64(a) => Value::F64(a.as_standard_layout().into_owned()),
            ValueRef::I32(a) => Value::I32(a.as_standard_layout().into_owned()),
            ValueRef::Bool(a) => Value::Bool(a.as_standard_layout().into_owned()),
        }
    }
}

impl<'a> From<&'a Value> for ValueRef<'a> {
    fn from(v: &'a Value) -> ValueRef<'a> {
        v.view()
    }
}

/// What `eval`, `check_inputs` and the JIT's `Executable::run` take as inputs: `Value`s,
/// `ValueRef`s (views of arrays, read in place), or references to either, so `&[Value]`,
/// `&[&Value]` and `&[ValueRef]` all work.
pub trait AsValueRef {
    /// The value, borrowed.
    fn as_value_ref(&self) -> ValueRef<'_>;
}

impl AsValueRef for Value {
    fn as_value_ref(&self) -> ValueRef<'_> {
        self.view()
    }
}

impl AsValueRef for ValueRef<'_> {
    fn as_value_ref(&self) -> ValueRef<'_> {
        self.view()
    }
}

impl<V: AsValueRef> AsValueRef for &V {
    fn as_value_ref(&self) -> ValueRef<'_> {
        (**self).as_value_ref()
    }
}

/// `Value::from` an array of any dimension, owned (moved in), borrowed or viewed (copied into
/// standard layout), so mixed arguments read `[Value::from(w), Value::from(&labels)]`; and
/// `ValueRef::from` a borrowed array or a view (no copy).
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

        impl<'a, D: Dimension> From<ArrayView<'a, $t, D>> for ValueRef<'a> {
            fn from(a: ArrayView<'a, $t, D>) -> ValueRef<'a> {
                ValueRef::$variant(a.into_dyn())
            }
        }

        impl<'a, D: Dimension> From<&'a Array<$t, D>> for ValueRef<'a> {
            fn from(a: &'a Array<$t, D>) -> ValueRef<'a> {
                ValueRef::$variant(a.view().into_dyn())
            }
        }
    };
}

value_from_arrays!(f32, F32);
value_from_arrays!(f64, F64);
value_from_arrays!(i32, I32);
value_from_arrays!(bool, Bool);
