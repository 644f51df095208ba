//! The Rust API of the transforms: `jvp(f)(&xs, &ts)`, `grad(f)(&xs)`, `hvp(f)(&xs, &vs)`,
//! `vjp(f)(&xs)` with a pullback, `value_and_grad`, `jacfwd`, `jacrev`, `hessian`, `linearize`.
//!
//! `f` is an ordinary closure over traced tensors, `Fn(&[Tensor]) -> O` with `O` one tensor or
//! several. A transformed function is a closure generic in its argument type `A: Arg`:
//!
//! - called on concrete arrays (`ArrayD<f64>`, `ArrayD<f32>`, `Value`), it traces `f` at their
//!   types, transforms the graph and evaluates it, returning `Result<Vec<A>, Error>`;
//! - called on `Tensor`s inside another trace, it traces `f` into a closed graph of its own,
//!   transforms it, and inlines the result into the enclosing trace, returning `Vec<Tensor>`
//!   (errors are recorded in that trace and returned by its `finish`).
//!
//! So `jvp(grad(f))` and `grad(|xs| hvp(f)(&xs[..1], &xs[1..])[0].sum_all())` just work, and
//! since each level differentiates its own closed graph there is no perturbation confusion.
//! Results are flat vectors in the order of the signature table of `shared/spec/ir-text.md`.

use std::panic::Location;

use ndarray::ArrayD;
use traceform_ir::{
    innermost_trace, trace, trace_nested, DType, Func, Tensor, TraceError, TraceOutputs, Tracer,
    Type,
};
use traceform_runtime::{eval, EvalError, Value};
use traceform_transforms::{self as tf, TransformError};

/// Everything that can go wrong calling a transformed function.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Trace(#[from] TraceError),
    #[error("{0}")]
    Transform(#[from] TransformError),
    #[error("{0}")]
    Eval(#[from] EvalError),
    /// The arguments do not fit: wrong count, shapes or dtypes.
    #[error("{0}")]
    Input(String),
}

/// A concrete value a transformed function can be called on.
pub trait Concrete: Clone {
    fn to_value(&self) -> Value;
    fn from_value(v: Value) -> Result<Self, Error>;
}

impl Concrete for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
    fn from_value(v: Value) -> Result<Value, Error> {
        Ok(v)
    }
}

macro_rules! concrete_array {
    ($t:ty, $variant:ident) => {
        impl Concrete for ArrayD<$t> {
            fn to_value(&self) -> Value {
                Value::$variant(self.as_standard_layout().into_owned())
            }
            fn from_value(v: Value) -> Result<Self, Error> {
                match v {
                    Value::$variant(a) => Ok(a),
                    other => Err(Error::Input(format!(
                        "an output of type {} cannot be returned as ArrayD<{}>; call with `Value`s instead",
                        other.ty(),
                        stringify!($t)
                    ))),
                }
            }
        }
    };
}

concrete_array!(f32, F32);
concrete_array!(f64, F64);

/// An argument of a transformed function: a concrete value, or a traced `Tensor`.
pub trait Arg: Clone {
    /// What a transformed function returns for these arguments.
    type Out;
    fn arg_type(&self) -> Type;
    /// The trace a call on `xs` and `extra` belongs in: the innermost of their traces, as in
    /// JAX (`None` for concrete values). A tensor of a finished trace is an error.
    fn parent(xs: &[Self], extra: &[Self]) -> Result<Option<Tracer>, Error>;
    /// Tensors of the enclosing trace that the traced function captured, as arguments.
    fn captured(captured: Vec<Tensor>) -> Result<Vec<Self>, Error>;
    /// Runs `func` on `args`: evaluation for concrete values, inlining into the innermost
    /// trace of `args` for tensors (a failure there is reported at `location`).
    fn run(func: &Func, args: &[Self], location: &'static Location<'static>) -> Self::Out;
    /// The result of a failed call with `xs` and `extra`.
    fn fail(
        error: Error,
        xs: &[Self],
        extra: &[Self],
        location: &'static Location<'static>,
    ) -> Self::Out;
}

macro_rules! arg_for_concrete {
    ($t:ty) => {
        impl Arg for $t {
            type Out = Result<Vec<$t>, Error>;
            fn arg_type(&self) -> Type {
                self.to_value().ty()
            }
            fn parent(_: &[Self], _: &[Self]) -> Result<Option<Tracer>, Error> {
                Ok(None)
            }
            fn captured(captured: Vec<Tensor>) -> Result<Vec<Self>, Error> {
                if captured.is_empty() {
                    Ok(vec![])
                } else {
                    Err(Error::Input(
                        "a function called on concrete values cannot use tensors of another trace"
                            .into(),
                    ))
                }
            }
            fn run(func: &Func, args: &[Self], _: &'static Location<'static>) -> Self::Out {
                let values: Vec<Value> = args.iter().map(Concrete::to_value).collect();
                let refs: Vec<&Value> = values.iter().collect();
                eval(func, &refs)?
                    .into_iter()
                    .map(<$t as Concrete>::from_value)
                    .collect()
            }
            fn fail(
                error: Error,
                _: &[Self],
                _: &[Self],
                _: &'static Location<'static>,
            ) -> Self::Out {
                Err(error)
            }
        }
    };
}

arg_for_concrete!(Value);
arg_for_concrete!(ArrayD<f32>);
arg_for_concrete!(ArrayD<f64>);

impl Arg for Tensor {
    type Out = Vec<Tensor>;
    fn arg_type(&self) -> Type {
        self.ty().clone()
    }
    fn parent(xs: &[Tensor], extra: &[Tensor]) -> Result<Option<Tracer>, Error> {
        if xs.iter().chain(extra).any(|t| t.tracer().is_finished()) {
            return Err(Error::Input(
                "a tensor of a trace that has already finished was used as an argument (a `Tensor` kept from an earlier trace); pass it as an input instead".into(),
            ));
        }
        Ok(innermost_trace(xs.iter().chain(extra)))
    }
    fn captured(captured: Vec<Tensor>) -> Result<Vec<Tensor>, Error> {
        Ok(captured)
    }
    fn run(func: &Func, args: &[Tensor], location: &'static Location<'static>) -> Vec<Tensor> {
        match innermost_trace(args) {
            Some(tracer) => tracer.inline_at(func, args, location),
            None => vec![],
        }
    }
    /// Records the error in the innermost live trace of the arguments, whose `finish`
    /// returns it.
    fn fail(
        error: Error,
        xs: &[Tensor],
        extra: &[Tensor],
        location: &'static Location<'static>,
    ) -> Vec<Tensor> {
        let live = xs.iter().chain(extra).filter(|t| !t.tracer().is_finished());
        match innermost_trace(live) {
            Some(tracer) => {
                vec![tracer.fail(error.to_string(), location, Type::scalar(DType::F32))]
            }
            None => vec![],
        }
    }
}

fn types_of<A: Arg>(args: &[A]) -> Vec<Type> {
    args.iter().map(Arg::arg_type).collect()
}

/// `f` traced at `types`, nested in `parent` when the arguments are traced.
struct Traced {
    func: Func,
    /// The positions of the float inputs among `types` (captured values are never
    /// differentiated).
    float_inputs: Vec<usize>,
    captured: Vec<Tensor>,
}

fn trace_at<F, O>(f: &F, types: &[Type], parent: Option<&Tracer>) -> Result<Traced, Error>
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
{
    let (func, captured) = trace_nested("f", parent, types, |xs| f(xs))?;
    let float_inputs = (0..types.len())
        .filter(|&i| types[i].dtype.is_float())
        .collect();
    Ok(Traced {
        func,
        float_inputs,
        captured,
    })
}

/// Checks that `vs` have the types of the inputs at positions `wrt` of `xs`.
fn check_tangents(
    what: &str,
    x_types: &[Type],
    wrt: &[usize],
    v_types: &[Type],
) -> Result<(), Error> {
    if v_types.len() != wrt.len() {
        return Err(Error::Input(format!(
            "{what}: expected {} vector(s), one per differentiated input, given {}",
            wrt.len(),
            v_types.len()
        )));
    }
    for (k, (&i, v)) in wrt.iter().zip(v_types).enumerate() {
        if &x_types[i] != v {
            return Err(Error::Input(format!(
                "{what}: vector {k} has type {v} but input {i} has type {}",
                x_types[i]
            )));
        }
    }
    Ok(())
}

/// Traces `f` at the types of `xs`, lets `build` transform it, and runs the result on
/// `xs ++ captured ++ extra`, or fails.
fn call<A, F, O>(
    f: &F,
    xs: &[A],
    extra: &[A],
    location: &'static Location<'static>,
    build: impl FnOnce(&Traced) -> Result<Func, Error>,
) -> A::Out
where
    A: Arg,
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
{
    let prepared = (|| {
        let parent = A::parent(xs, extra)?;
        let traced = trace_at(f, &types_of(xs), parent.as_ref())?;
        let func = build(&traced)?;
        let mut args = xs.to_vec();
        args.extend(A::captured(traced.captured)?);
        args.extend_from_slice(extra);
        Ok((func, args))
    })();
    match prepared {
        Ok((func, args)) => A::run(&func, &args, location),
        Err(e) => A::fail(e, xs, extra, location),
    }
}

/// The positions to differentiate: `wrt` if given (checked), else every float input.
fn positions(traced: &Traced, wrt: Option<&[usize]>) -> Result<Vec<usize>, Error> {
    Ok(tf::check_wrt(
        &traced.func,
        Some(wrt.unwrap_or(&traced.float_inputs)),
    )?)
}

/// Forward mode: `jvp(f)(&xs, &ts)` is `(f(xs)..., tangent of each float output...)`, with
/// one tangent per float input of `f`.
#[track_caller]
pub fn jvp<F, O, A>(f: F) -> impl Fn(&[A], &[A]) -> A::Out
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
    A: Arg,
{
    with_vectors_impl(f, None, WithVectors::Jvp)
}

/// `jvp` with respect to the inputs at positions `wrt` only.
#[track_caller]
pub fn jvp_wrt<F, O, A>(wrt: &[usize], f: F) -> impl Fn(&[A], &[A]) -> A::Out
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
    A: Arg,
{
    with_vectors_impl(f, Some(wrt.to_vec()), WithVectors::Jvp)
}

/// A transform of `traceform_transforms` with a `wrt` argument.
type Transform = fn(&Func, Option<&[usize]>) -> Result<Func, TransformError>;

/// The two transforms that take one vector per differentiated input.
#[derive(Clone, Copy)]
enum WithVectors {
    Jvp,
    Hvp,
}

#[track_caller]
fn with_vectors_impl<F, O, A>(
    f: F,
    wrt: Option<Vec<usize>>,
    kind: WithVectors,
) -> impl Fn(&[A], &[A]) -> A::Out
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
    A: Arg,
{
    let location = Location::caller();
    move |xs: &[A], vs: &[A]| {
        call(&f, xs, vs, location, |traced| {
            let w = positions(traced, wrt.as_deref())?;
            let (name, transform): (&str, Transform) = match kind {
                WithVectors::Jvp => ("jvp", tf::jvp),
                WithVectors::Hvp => ("hvp", tf::hvp),
            };
            check_tangents(name, &types_of(xs), &w, &types_of(vs))?;
            Ok(transform(&traced.func, Some(&w))?)
        })
    }
}

/// Reverse mode as one function of the spec's signature: `vjp_flat(f)(&xs, &cts)` is
/// `(f(xs)..., cotangent of each float input...)`, with one cotangent per float output.
#[track_caller]
pub fn vjp_flat<F, O, A>(f: F) -> impl Fn(&[A], &[A]) -> A::Out
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
    A: Arg,
{
    let location = Location::caller();
    move |xs: &[A], cts: &[A]| {
        call(&f, xs, cts, location, |traced| {
            let float_outs: Vec<Type> = traced
                .func
                .output_types()
                .into_iter()
                .filter(|t| t.dtype.is_float())
                .collect();
            let ct_types = types_of(cts);
            if ct_types != float_outs {
                return Err(Error::Input(format!(
                    "vjp: the cotangents must have the types of the float outputs ({}), given ({})",
                    list(&float_outs),
                    list(&ct_types)
                )));
            }
            let w = positions(traced, None)?;
            Ok(tf::vjp(&traced.func, Some(&w))?)
        })
    }
}

fn list(types: &[Type]) -> String {
    types
        .iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The gradient of a function with one float scalar output: one gradient per float input.
#[track_caller]
pub fn grad<F, O, A>(f: F) -> impl Fn(&[A]) -> A::Out
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
    A: Arg,
{
    reverse_impl(f, None, false)
}

/// `grad` with respect to the inputs at positions `wrt` only.
#[track_caller]
pub fn grad_wrt<F, O, A>(wrt: &[usize], f: F) -> impl Fn(&[A]) -> A::Out
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
    A: Arg,
{
    reverse_impl(f, Some(wrt.to_vec()), false)
}

/// `(f(xs), gradients...)` in one pass.
#[track_caller]
pub fn value_and_grad<F, O, A>(f: F) -> impl Fn(&[A]) -> A::Out
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
    A: Arg,
{
    reverse_impl(f, None, true)
}

#[track_caller]
fn reverse_impl<F, O, A>(f: F, wrt: Option<Vec<usize>>, with_value: bool) -> impl Fn(&[A]) -> A::Out
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
    A: Arg,
{
    let location = Location::caller();
    move |xs: &[A]| {
        call(&f, xs, &[], location, |traced| {
            let w = positions(traced, wrt.as_deref())?;
            Ok(if with_value {
                tf::value_and_grad(&traced.func, Some(&w))?
            } else {
                tf::grad(&traced.func, Some(&w))?
            })
        })
    }
}

/// Hessian-vector products, forward-over-reverse: `hvp(f)(&xs, &vs)` is one H·v per float
/// input.
#[track_caller]
pub fn hvp<F, O, A>(f: F) -> impl Fn(&[A], &[A]) -> A::Out
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
    A: Arg,
{
    with_vectors_impl(f, None, WithVectors::Hvp)
}

/// `hvp` with respect to the inputs at positions `wrt` only.
#[track_caller]
pub fn hvp_wrt<F, O, A>(wrt: &[usize], f: F) -> impl Fn(&[A], &[A]) -> A::Out
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
    A: Arg,
{
    with_vectors_impl(f, Some(wrt.to_vec()), WithVectors::Hvp)
}

/// The transpose of a function linear in its float inputs: `linear_transpose(f)(&xs, &cts)`
/// gives one cotangent per float input of `f`, for one cotangent per output (`xs` supplies the
/// types, and the values of any non-float inputs). A function that is not linear is an `Err`
/// naming the equation that breaks linearity.
#[track_caller]
pub fn linear_transpose<F, O, A>(f: F) -> impl Fn(&[A], &[A]) -> A::Out
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
    A: Arg,
{
    let location = Location::caller();
    move |xs: &[A], cts: &[A]| {
        call(&f, xs, cts, location, |traced| {
            let func = &traced.func;
            let linear = positions(traced, None)?;
            let transposed = tf::transpose_wrt(func, Some(&linear))?;
            let out_types = func.output_types();
            let ct_types = types_of(cts);
            if ct_types != out_types {
                return Err(Error::Input(format!(
                    "linear_transpose: the cotangents must have the output types ({}), given ({})",
                    list(&out_types),
                    list(&ct_types)
                )));
            }
            // Called as (xs..., captured..., cts...): pass the transposed function the inputs it
            // is not linear in, then the cotangents.
            let mut types = func.param_types();
            types.extend(ct_types);
            let n = func.params.len();
            Ok(trace("linear_transpose_f", &types, |p| {
                let mut args: Vec<Tensor> = (0..n)
                    .filter(|i| !linear.contains(i))
                    .map(|i| p[i].clone())
                    .collect();
                args.extend(p[n..].iter().cloned());
                p[0].tracer().inline(&transposed, &args)
            })?)
        })
    }
}

/// The Jacobian by forward mode, one jvp per input element: `jacfwd(f)(&xs)` gives, for each
/// float output `i` and each float input `j` (output-major), an array of shape
/// `out_i.shape ++ x_j.shape`.
#[track_caller]
pub fn jacfwd<F, O, A>(f: F) -> impl Fn(&[A]) -> A::Out
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
    A: Arg,
{
    let location = Location::caller();
    move |xs: &[A]| {
        call(&f, xs, &[], location, |traced| {
            Ok(tf::jacfwd(&traced.func, Some(&positions(traced, None)?))?)
        })
    }
}

/// The Jacobian by reverse mode, one vjp per output element; same layout as `jacfwd`.
#[track_caller]
pub fn jacrev<F, O, A>(f: F) -> impl Fn(&[A]) -> A::Out
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
    A: Arg,
{
    let location = Location::caller();
    move |xs: &[A]| {
        call(&f, xs, &[], location, |traced| {
            Ok(tf::jacrev(&traced.func, Some(&positions(traced, None)?))?)
        })
    }
}

/// The Hessian of a scalar function, `jacfwd(jacrev(f))`: for inputs `j, k` (row-major), an
/// array of shape `x_j.shape ++ x_k.shape`.
#[track_caller]
pub fn hessian<F, O, A>(f: F) -> impl Fn(&[A]) -> A::Out
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
    A: Arg,
{
    jacfwd(jacrev::<_, _, Tensor>(f))
}

/// A linear map at a fixed point, with the residuals of the forward pass computed once and
/// reused on every call: the tangent map of `linearize`, or the pullback of `vjp`.
pub struct LinearMap<V: Concrete> {
    func: Func,
    residuals: Vec<Value>,
    arg_types: Vec<Type>,
    what: &'static str,
    _marker: std::marker::PhantomData<V>,
}

/// The tangent map of `linearize`: input tangents (one per float input) to output tangents.
pub type LinearFn<V> = LinearMap<V>;

/// The pullback of `vjp`: output cotangents (one per float output) to input cotangents.
pub type Pullback<V> = LinearMap<V>;

impl<V: Concrete> LinearMap<V> {
    /// Applies the map.
    pub fn call(&self, args: &[V]) -> Result<Vec<V>, Error> {
        let values: Vec<Value> = args.iter().map(Concrete::to_value).collect();
        let given: Vec<Type> = values.iter().map(Value::ty).collect();
        if given != self.arg_types {
            return Err(Error::Input(format!(
                "{} takes ({}), given ({})",
                self.what,
                list(&self.arg_types),
                list(&given)
            )));
        }
        let mut all: Vec<&Value> = self.residuals.iter().collect();
        all.extend(values.iter());
        eval(&self.func, &all)?
            .into_iter()
            .map(V::from_value)
            .collect()
    }

    /// The map as IR: `(residuals..., arguments...) -> results`.
    pub fn func(&self) -> &Func {
        &self.func
    }
}

/// The outputs of `f` at a point, and a linear map there.
pub type AtPoint<V> = Result<(Vec<V>, LinearMap<V>), Error>;

/// `f` traced at `xs`, linearized with respect to its float inputs, and its primal part run:
/// the outputs and a linear map whose IR `make` chooses from the linearization.
fn at_point<F, O, V>(
    f: &F,
    xs: &[V],
    what: &'static str,
    make: impl FnOnce(&Func, &[usize], tf::Linearized) -> Result<(Func, Vec<Type>), Error>,
) -> AtPoint<V>
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
    V: Concrete,
{
    let values: Vec<Value> = xs.iter().map(Concrete::to_value).collect();
    let types: Vec<Type> = values.iter().map(Value::ty).collect();
    let traced = trace_at(f, &types, None)?;
    let func = traced.func;
    let wrt = tf::check_wrt(&func, Some(&traced.float_inputs))?;
    let j = tf::jvp(&func, Some(&wrt))?;
    let lin = tf::linearize_jvp(&j, func.params.len(), func.outputs.len())?;
    let refs: Vec<&Value> = values.iter().collect();
    let mut outs = eval(&lin.primal, &refs)?;
    let residuals = outs.split_off(lin.n_outputs);
    let ys = outs
        .into_iter()
        .map(V::from_value)
        .collect::<Result<_, _>>()?;
    let (map, arg_types) = make(&func, &wrt, lin)?;
    Ok((
        ys,
        LinearMap {
            func: map,
            residuals,
            arg_types,
            what,
            _marker: std::marker::PhantomData,
        },
    ))
}

/// `linearize(f)(&xs)` is `(f(xs), the linear map t -> J t)`; the map reuses the residuals.
pub fn linearize<F, O, V>(f: F) -> impl Fn(&[V]) -> AtPoint<V>
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
    V: Concrete,
{
    move |xs: &[V]| {
        at_point(&f, xs, "the linearized function", |func, wrt, lin| {
            let types = func.param_types();
            Ok((lin.linear, wrt.iter().map(|&i| types[i].clone()).collect()))
        })
    }
}

/// Reverse mode: `vjp(f)(&xs)` is `(f(xs), pullback)`; `pullback.call(&cts)` gives one
/// cotangent per float input, reusing the residuals of the forward pass.
pub fn vjp<F, O, V>(f: F) -> impl Fn(&[V]) -> AtPoint<V>
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
    V: Concrete,
{
    move |xs: &[V]| {
        at_point(&f, xs, "the pullback", |func, _, lin| {
            let transposed = tf::transpose(&lin.linear, lin.n_residuals())?;
            let cotangents = func
                .output_types()
                .into_iter()
                .filter(|t| t.dtype.is_float())
                .collect();
            Ok((transposed, cotangents))
        })
    }
}
