//! What a transformed function can be called on, and constants.
//!
//! - `Concrete`: arrays, views and `Value`s. A call evaluates the transformed program on them
//!   where they are (`Concrete::value` is a `ValueRef`, a view): no input is copied, except
//!   that the JIT copies a view in another layout than row-major (transposed, strided) into
//!   row-major order, once per call; the interpreter reads every layout in place. Results
//!   are owned (`ArrayD<T>` for `ArrayD<T>` and `ArrayViewD<T>` arguments, `Value` for
//!   `Value`s, which is how f32 parameters travel beside i32 labels).
//! - `Arg`: a concrete value or a traced `Tensor`; the transformed closures are generic in it.
//! - `constant(data)`: an array captured by a closure, as a tensor of the trace running it.

use std::rc::Rc;

use ndarray::{ArrayD, ArrayViewD};
use traceform_ir::{Tensor, TraceOutputs, Tracer};
use traceform_runtime::{Value, ValueRef};

use crate::api::{Error, Transformed};

/// A concrete value a transformed function can be called on.
pub trait Concrete {
    /// What results are returned as: the array type itself, or the owned array for a view.
    type Owned;
    /// The value, borrowed (a view of the array, never a copy).
    fn value(&self) -> ValueRef<'_>;
    fn from_value(v: Value) -> Result<Self::Owned, Error>;
}

impl Concrete for Value {
    type Owned = Value;
    fn value(&self) -> ValueRef<'_> {
        self.view()
    }
    fn from_value(v: Value) -> Result<Value, Error> {
        Ok(v)
    }
}

macro_rules! concrete_array {
    ($t:ty, $variant:ident) => {
        impl Concrete for ArrayD<$t> {
            type Owned = ArrayD<$t>;
            fn value(&self) -> ValueRef<'_> {
                ValueRef::from(self.view())
            }
            fn from_value(v: Value) -> Result<Self, Error> {
                owned_array!(v, $t, $variant)
            }
        }

        impl Concrete for ArrayViewD<'_, $t> {
            type Owned = ArrayD<$t>;
            fn value(&self) -> ValueRef<'_> {
                ValueRef::from(self.view())
            }
            fn from_value(v: Value) -> Result<ArrayD<$t>, Error> {
                owned_array!(v, $t, $variant)
            }
        }
    };
}

/// The array in `v`, or an error saying to call with `Value`s.
macro_rules! owned_array {
    ($v:expr, $t:ty, $variant:ident) => {
        match $v {
            Value::$variant(a) => Ok(a),
            other => Err(Error::Input(format!(
                "an output of type {} cannot be returned as ArrayD<{}>; call with `Value`s instead",
                other.ty(),
                stringify!($t)
            ))),
        }
    };
}

concrete_array!(f32, F32);
concrete_array!(f64, F64);

/// An argument of a transformed function: a concrete value (`Concrete`), or a traced `Tensor`.
pub trait Arg: Clone {
    /// What a transformed function returns for these arguments: `Result<Vec<_>, Error>` for
    /// concrete values, `Vec<Tensor>` for tensors (errors go to the enclosing trace).
    type Out;
    /// Calls `t` on `xs` and `extra` (the tangents, cotangents or vectors of the transforms
    /// that take them).
    #[doc(hidden)]
    fn call<F, O>(t: &Transformed<F>, xs: &[Self], extra: &[Self]) -> Self::Out
    where
        F: Fn(&[Tensor]) -> O,
        O: TraceOutputs;
}

impl<V: Concrete + Clone> Arg for V {
    type Out = Result<Vec<V::Owned>, Error>;
    fn call<F, O>(t: &Transformed<F>, xs: &[V], extra: &[V]) -> Self::Out
    where
        F: Fn(&[Tensor]) -> O,
        O: TraceOutputs,
    {
        let xs: Vec<ValueRef<'_>> = xs.iter().map(Concrete::value).collect();
        let extra: Vec<ValueRef<'_>> = extra.iter().map(Concrete::value).collect();
        t.call_concrete(&xs, &extra)?
            .into_iter()
            .map(V::from_value)
            .collect()
    }
}

impl Arg for Tensor {
    type Out = Vec<Tensor>;
    fn call<F, O>(t: &Transformed<F>, xs: &[Tensor], extra: &[Tensor]) -> Vec<Tensor>
    where
        F: Fn(&[Tensor]) -> O,
        O: TraceOutputs,
    {
        t.call_traced(xs, extra)
    }
}

/// `data` as a tensor of the trace running the current closure: a constant, which is never
/// differentiated. Capture data (labels, inputs, fixed weights) in the closure you transform
/// and write `constant(&labels)` inside it; it need not be passed as an input.
///
/// The value is read when the closure is traced, which a transformed closure does once per
/// input signature (see `Transformed`), like JAX's constants. Data a `Fn` closure captures
/// cannot change between calls (the borrow rules see to it) except through interior mutability
/// (`RefCell`, `Cell`): such data must be an input, or the closure transformed again.
///
/// Called outside any traced closure, it returns a tensor that is an error to use.
#[track_caller]
pub fn constant(data: impl Into<Value>) -> Tensor {
    let value: Value = data.into();
    match Tracer::current() {
        Some(tracer) => tracer.constant(value.ty(), Rc::new(value)),
        None => Tracer::unusable(
            "`constant` was called outside a traced closure; call it inside the closure you transform",
        )
        .literal(0.0, value.dtype()),
    }
}
