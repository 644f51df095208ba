//! The Rust API of the transforms: `jvp(f)(&xs, &ts)`, `grad(f)(&xs)`, `hvp(f)(&xs, &vs)`,
//! `vjp(f)(&xs)` with a pullback, `value_and_grad`, `jacfwd`, `jacrev`, `hessian`,
//! `linearize`, `linear_transpose`, each also `_wrt` a chosen list of input positions.
//!
//! `f` is an ordinary closure over traced tensors, `Fn(&[Tensor]) -> O` with `O` one tensor or
//! several. A transformed function is a closure generic in its argument type `A: Arg`:
//!
//! - called on concrete values (`ArrayD<f64>`, `ArrayD<f32>`, their views, `Value`), it traces
//!   `f` at their types, transforms the graph and evaluates it on the arguments where they
//!   are (no copy; only the JIT copies a view that is not row-major, once), returning
//!   `Result<Vec<_>, Error>`. The transformed program is kept, one per input signature (the
//!   types of the arguments), so a closure reused in a loop traces and transforms once: later
//!   calls only evaluate. Constants the closure made (`constant(&data)`) are read when it is
//!   traced and bound as extra inputs of the program at every call.
//! - called on `Tensor`s inside another trace, it traces `f` into a closed graph of its own,
//!   nested in the innermost trace of its arguments (as in JAX), transforms it, and inlines the
//!   result there, returning `Vec<Tensor>` (errors are recorded in that trace and returned by
//!   its `finish`).
//!
//! So `jvp(grad(f))` and `grad(|xs| hvp(f)(&xs[..1], &xs[1..])[0].sum_all())` just work, and
//! since each level differentiates its own closed graph there is no perturbation confusion.
//! Results are flat vectors in the order of the signature table of `shared/spec/ir-text.md`.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::panic::Location;
use std::rc::Rc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use traceform_ir::{
    innermost_trace, trace, trace_nested, DType, Func, Tensor, TraceError, TraceOutputs, Tracer,
    Type,
};
use traceform_runtime::{EvalError, Value, ValueRef};
use traceform_transforms::{self as tf, TransformError};

use crate::args::Arg;

/// Everything that can go wrong calling a transformed function.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Trace(#[from] TraceError),
    #[error("{0}")]
    Transform(#[from] TransformError),
    #[error("{0}")]
    Eval(#[from] EvalError),
    #[error("{0}")]
    Jit(#[from] traceform_jit::JitError),
    /// The arguments do not fit: wrong count, shapes or dtypes.
    #[error("{0}")]
    Input(String),
}

// ---- Tracing ----

/// `f` traced at `types`, nested in `parent` when the arguments are traced.
pub(crate) struct Traced {
    pub(crate) func: Func,
    /// How many of the parameters are `f`'s inputs; the captured tensors (nested) or the
    /// constants (outermost) follow them and are never differentiated.
    pub(crate) n_inputs: usize,
    pub(crate) captured: Vec<Tensor>,
    pub(crate) constants: Vec<Value>,
}

pub(crate) fn trace_at<F, O>(
    f: &F,
    types: &[Type],
    parent: Option<&Tracer>,
) -> Result<Traced, Error>
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
{
    trace_recording_outputs(f, types, parent, &RefCell::new(None))
}

/// `trace_at`, also leaving the types of `f`'s outputs in `outputs`, even when the trace fails
/// (then they say what shape of result a failed transform stands in for).
fn trace_recording_outputs<F, O>(
    f: &F,
    types: &[Type],
    parent: Option<&Tracer>,
    outputs: &RefCell<Option<Vec<Type>>>,
) -> Result<Traced, Error>
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
{
    let nested = trace_nested("f", parent, types, |xs| {
        let ys = f(xs).into_tensors();
        *outputs.borrow_mut() = Some(ys.iter().map(Tensor::ty).collect());
        ys
    })?;
    let constants = nested
        .constants
        .into_iter()
        .map(constant_value)
        .collect::<Result<_, _>>()?;
    Ok(Traced {
        func: nested.func,
        n_inputs: types.len(),
        captured: nested.captured,
        constants,
    })
}

/// The `Value` a constant holds (moved out when nothing else holds it).
fn constant_value(data: Rc<dyn Any>) -> Result<Value, Error> {
    match data.downcast::<Value>() {
        Ok(v) => Ok(Rc::try_unwrap(v).unwrap_or_else(|v| (*v).clone())),
        Err(_) => Err(Error::Input(
            "a constant holds data that is not a `Value`: make constants with `traceform::constant`"
                .into(),
        )),
    }
}

pub(crate) fn types_of(args: &[Tensor]) -> Vec<Type> {
    args.iter().map(Tensor::ty).collect()
}

/// The positions to differentiate: `wrt` if given (checked against `f`'s own inputs), else
/// every float input.
pub(crate) fn positions(traced: &Traced, wrt: Option<&[usize]>) -> Result<Vec<usize>, Error> {
    let n = traced.n_inputs;
    let floats: Vec<usize> = (0..n)
        .filter(|&i| traced.func.var_type(traced.func.params[i]).dtype.is_float())
        .collect();
    if let Some(&i) = wrt.into_iter().flatten().find(|&&i| i >= n) {
        return Err(TransformError::Wrt(format!(
            "input position {i} is out of range: the function has {n} input(s)"
        ))
        .into());
    }
    Ok(tf::check_wrt(&traced.func, Some(wrt.unwrap_or(&floats)))?)
}

// ---- Programs kept per signature ----

/// The types of the arguments of one call: the inputs, then the extra arguments (tangents,
/// cotangents, vectors).
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct Signature {
    n_inputs: usize,
    types: Vec<Type>,
}

impl Signature {
    pub(crate) fn of(xs: &[ValueRef<'_>], extra: &[ValueRef<'_>]) -> Signature {
        Signature {
            n_inputs: xs.len(),
            types: xs
                .iter()
                .map(ValueRef::ty)
                .chain(extra.iter().map(ValueRef::ty))
                .collect(),
        }
    }

    pub(crate) fn inputs(&self) -> &[Type] {
        &self.types[..self.n_inputs]
    }

    pub(crate) fn extra(&self) -> &[Type] {
        &self.types[self.n_inputs..]
    }
}

/// Programs by signature. The lock is not held while a program is built, so the traced
/// closure may call other transformed closures (or, by a detour, this one).
pub(crate) struct Cache<P>(Mutex<HashMap<Signature, Arc<P>>>);

impl<P> Cache<P> {
    pub(crate) fn new() -> Cache<P> {
        Cache(Mutex::new(HashMap::new()))
    }

    pub(crate) fn get_or_build(
        &self,
        sig: Signature,
        build: &dyn Fn(&Signature) -> Result<P, Error>,
    ) -> Result<Arc<P>, Error> {
        let lock = || self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = lock().get(&sig) {
            return Ok(Arc::clone(p));
        }
        let p = Arc::new(build(&sig)?);
        lock().insert(sig, Arc::clone(&p));
        Ok(p)
    }
}

static SIMPLIFY: AtomicBool = AtomicBool::new(true);

/// Whether programs built from now on for concrete arguments are simplified (the default:
/// yes). Programs inlined into a trace are not, since the outermost program is. Turning it off
/// shows the derivative programs as the transforms emit them, and is a way to rule the
/// simplifier out when chasing a difference; programs already built keep their form.
pub fn set_simplify(on: bool) {
    SIMPLIFY.store(on, Ordering::Relaxed);
}

/// `func` through the simplifier, if it is on.
pub(crate) fn simplified(func: Func) -> Func {
    if !SIMPLIFY.load(Ordering::Relaxed) {
        return func;
    }
    tf::simplify(&func, &tf::Limits::for_size(func.eqns.len())).0
}

/// A transformed program ready for concrete values: the function, and the constants it binds
/// after the inputs.
struct Program {
    code: Runnable,
    constants: Vec<Value>,
}

/// What a transformed closure runs on concrete values, once per signature. Its first calls
/// run on the interpreter; once it has been called `compile_after` times it is compiled with
/// the JIT (`traceform_jit`), which runs every later call: after one call for programs that
/// touch at least `LARGE_PROGRAM` elements, after `SMALL_PROGRAM_CALLS` for smaller ones
/// (whose calls take microseconds on either backend, so a compile of a few milliseconds pays
/// off only over many calls). A closure called a few times (Newton-CG's linear map at each new
/// point) never pays the compile time; one called in a loop pays it once. The interpreter and
/// the JIT agree (the JIT's tests), so which one ran a call changes only rounding in sums.
pub(crate) struct Runnable {
    func: Func,
    calls: AtomicUsize,
    compile_after: usize,
    compiled: OnceLock<Result<traceform_jit::Executable, traceform_jit::JitError>>,
}

/// Programs whose equations make at least this many elements in all are compiled on their
/// second call.
const LARGE_PROGRAM: usize = 100_000;

/// Smaller programs are compiled after this many calls.
const SMALL_PROGRAM_CALLS: usize = 16;

impl Runnable {
    pub(crate) fn new(func: Func) -> Runnable {
        let elements: usize = func
            .eqns
            .iter()
            .map(|e| func.var_type(e.out).num_elements())
            .fold(0, usize::saturating_add);
        let compile_after = if elements >= LARGE_PROGRAM {
            1
        } else {
            SMALL_PROGRAM_CALLS
        };
        Runnable {
            func,
            calls: AtomicUsize::new(0),
            compile_after,
            compiled: OnceLock::new(),
        }
    }

    /// Runs on `args`, read where they are.
    pub(crate) fn run(&self, args: &[ValueRef<'_>]) -> Result<Vec<Value>, Error> {
        if self.compiled.get().is_none()
            && self.calls.fetch_add(1, Ordering::Relaxed) < self.compile_after
        {
            return Ok(traceform_runtime::eval(&self.func, args)?);
        }
        match self
            .compiled
            .get_or_init(|| traceform_jit::compile(&self.func))
        {
            Ok(exe) => Ok(exe.run(args)?),
            Err(e) => Err(e.clone().into()),
        }
    }

    pub(crate) fn func(&self) -> &Func {
        &self.func
    }
}

/// Which transform a `Transformed` applies.
#[derive(Clone, Copy)]
enum Kind {
    Jvp,
    Hvp,
    VjpFlat,
    Grad,
    ValueAndGrad,
    Jacfwd,
    Jacrev,
    Hessian,
    LinearTranspose,
}

/// A transformed closure: `f`, the transform and its `wrt`, and the programs built so far, one
/// per signature. What the closures `grad(f)`, `jvp(f)`, ... hold.
pub struct Transformed<F> {
    f: F,
    kind: Kind,
    wrt: Option<Vec<usize>>,
    /// Where the user made the transformed closure: failures inside a trace are reported here.
    location: &'static Location<'static>,
    programs: Cache<Program>,
}

impl<F, O> Transformed<F>
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
{
    #[track_caller]
    fn new(f: F, kind: Kind, wrt: Option<&[usize]>) -> Transformed<F> {
        Transformed {
            f,
            kind,
            wrt: wrt.map(<[usize]>::to_vec),
            location: Location::caller(),
            programs: Cache::new(),
        }
    }

    /// Evaluates the program for the signature of `xs` and `extra`, built on the first call.
    pub(crate) fn call_concrete(
        &self,
        xs: &[ValueRef<'_>],
        extra: &[ValueRef<'_>],
    ) -> Result<Vec<Value>, Error> {
        run_program(&self.programs, xs, extra, &|sig| self.prepare(sig))
    }

    fn prepare(&self, sig: &Signature) -> Result<Program, Error> {
        let traced = trace_at(&self.f, sig.inputs(), None)?;
        let func = build(self.kind, self.wrt.as_deref(), &traced, sig.extra())?;
        Ok(Program {
            code: Runnable::new(simplified(func)),
            constants: traced.constants,
        })
    }

    /// Inlines the transformed `f` into the innermost trace of `xs` and `extra`.
    pub(crate) fn call_traced(&self, xs: &[Tensor], extra: &[Tensor]) -> Vec<Tensor> {
        let f_outputs = RefCell::new(None);
        match self.inline(xs, extra, &f_outputs) {
            Ok(outputs) => outputs,
            Err(e) => {
                let types = result_types(
                    self.kind,
                    self.wrt.as_deref(),
                    &types_of(xs),
                    f_outputs.into_inner().as_deref(),
                );
                fail_in_trace(e, xs, extra, self.location, &types)
            }
        }
    }

    fn inline(
        &self,
        xs: &[Tensor],
        extra: &[Tensor],
        f_outputs: &RefCell<Option<Vec<Type>>>,
    ) -> Result<Vec<Tensor>, Error> {
        let parent = enclosing_trace(xs, extra)?;
        let traced = trace_recording_outputs(&self.f, &types_of(xs), Some(&parent), f_outputs)?;
        let func = build(self.kind, self.wrt.as_deref(), &traced, &types_of(extra))?;
        let mut args = xs.to_vec();
        args.extend(traced.captured);
        args.extend_from_slice(extra);
        Ok(parent.inline_at(&func, &args, self.location))
    }
}

/// The body of `call_concrete`. Not generic, so it is compiled (and optimised) with
/// traceform, not in the caller's crate at the caller's optimisation level: the generic layer
/// a user's crate instantiates stays a few lines.
fn run_program(
    programs: &Cache<Program>,
    xs: &[ValueRef<'_>],
    extra: &[ValueRef<'_>],
    prepare: &dyn Fn(&Signature) -> Result<Program, Error>,
) -> Result<Vec<Value>, Error> {
    let program = programs.get_or_build(Signature::of(xs, extra), prepare)?;
    let mut args: Vec<ValueRef<'_>> = Vec::with_capacity(xs.len() + extra.len() + 4);
    args.extend(xs.iter().map(ValueRef::view));
    args.extend(program.constants.iter().map(Value::view));
    args.extend(extra.iter().map(ValueRef::view));
    program.code.run(&args)
}

const STALE_ARGUMENT: &str = "a tensor of a trace that has already finished was used as an argument (a `Tensor` kept from an earlier trace); pass it as an input instead";

/// The trace a call on tensors goes in: the innermost trace of its arguments, as in JAX (or,
/// with no arguments, the trace running the caller).
fn enclosing_trace(xs: &[Tensor], extra: &[Tensor]) -> Result<Tracer, Error> {
    if xs.iter().chain(extra).any(|t| t.tracer().is_finished()) {
        return Err(Error::Input(STALE_ARGUMENT.into()));
    }
    innermost_trace(xs.iter().chain(extra))
        .or_else(Tracer::current)
        .ok_or_else(|| {
            Error::Input("a transformed function was called on no tensors outside any trace".into())
        })
}

/// Records `error` in the innermost live trace of the arguments (or the caller's), whose
/// `finish` returns it, and returns placeholders of `types`, so that the caller's code goes on
/// (indexing the results as it would have) until its trace finishes with the error.
fn fail_in_trace(
    error: Error,
    xs: &[Tensor],
    extra: &[Tensor],
    location: &'static Location<'static>,
    types: &[Type],
) -> Vec<Tensor> {
    let live = xs.iter().chain(extra).filter(|t| !t.tracer().is_finished());
    match innermost_trace(live).or_else(Tracer::current) {
        Some(tracer) => {
            let message = error.to_string();
            types
                .iter()
                .map(|ty| tracer.fail(message.clone(), location, ty.clone()))
                .collect()
        }
        None => vec![],
    }
}

/// The types the transform `kind` would have returned, by the signature table of
/// `docs/transforms.md`, for inputs of `x_types` and a function with outputs of `f_outputs`
/// (one float scalar when tracing it never got that far). Positions in `wrt` that do not
/// exist are left out.
fn result_types(
    kind: Kind,
    wrt: Option<&[usize]>,
    x_types: &[Type],
    f_outputs: Option<&[Type]>,
) -> Vec<Type> {
    let scalar = [Type::scalar(DType::F32)];
    let ys = f_outputs.unwrap_or(&scalar);
    let float_ys: Vec<&Type> = ys.iter().filter(|t| t.dtype.is_float()).collect();
    let w: Vec<&Type> = match wrt {
        Some(wrt) => wrt.iter().filter_map(|&i| x_types.get(i)).collect(),
        None => x_types.iter().filter(|t| t.dtype.is_float()).collect(),
    };
    let block = |a: &Type, b: &Type| {
        let mut shape = a.shape.clone();
        shape.extend_from_slice(&b.shape);
        Type::new(a.dtype, shape)
    };
    let mut out: Vec<Type> = Vec::new();
    match kind {
        Kind::Jvp => {
            out.extend(ys.iter().cloned());
            out.extend(float_ys.into_iter().cloned());
        }
        Kind::VjpFlat | Kind::ValueAndGrad => {
            out.extend(ys.iter().cloned());
            out.extend(w.into_iter().cloned());
        }
        Kind::Hvp | Kind::Grad | Kind::LinearTranspose => out.extend(w.into_iter().cloned()),
        Kind::Jacfwd | Kind::Jacrev => {
            for y in &float_ys {
                out.extend(w.iter().map(|x| block(y, x)));
            }
        }
        Kind::Hessian => {
            for a in &w {
                out.extend(w.iter().map(|b| block(a, b)));
            }
        }
    }
    out
}

// ---- Building the transformed programs ----

/// The transformed function of `traced`, called as `(inputs..., captured or constants...,
/// extra...)`, after checking that the extra arguments have the types it needs.
fn build(
    kind: Kind,
    wrt: Option<&[usize]>,
    traced: &Traced,
    extra: &[Type],
) -> Result<Func, Error> {
    let func = &traced.func;
    let w = positions(traced, wrt)?;
    let param_types = func.param_types();
    Ok(match kind {
        Kind::Jvp => {
            check_tangents("jvp", &param_types, &w, extra)?;
            tf::jvp(func, Some(&w))?
        }
        Kind::Hvp => {
            check_tangents("hvp", &param_types, &w, extra)?;
            tf::hvp(func, Some(&w))?
        }
        Kind::VjpFlat => {
            check_cotangents("vjp", "float outputs", &func.float_output_types(), extra)?;
            tf::vjp(func, Some(&w))?
        }
        Kind::Grad => tf::grad(func, Some(&w))?,
        Kind::ValueAndGrad => tf::value_and_grad(func, Some(&w))?,
        Kind::Jacfwd => tf::jacfwd(func, Some(&w))?,
        Kind::Jacrev => tf::jacrev(func, Some(&w))?,
        Kind::Hessian => tf::hessian(func, Some(&w))?,
        Kind::LinearTranspose => {
            check_cotangents("linear_transpose", "outputs", &func.output_types(), extra)?;
            linear_transpose_program(func, &w, extra)?
        }
    })
}

/// Checks that `vs` have the types of the inputs at positions `wrt`.
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

/// Checks that the cotangents have the types `want` (of the outputs described by `which`).
fn check_cotangents(what: &str, which: &str, want: &[Type], given: &[Type]) -> Result<(), Error> {
    if given != want {
        return Err(Error::Input(format!(
            "{what}: the cotangents must have the types of the {which} ({}), given ({})",
            list(want),
            list(given)
        )));
    }
    Ok(())
}

pub(crate) fn list(types: &[Type]) -> String {
    types
        .iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `(all parameters..., cotangents...) -> one cotangent per input in linear`: the transpose
/// takes the parameters it is not linear in first, so pick them out.
fn linear_transpose_program(
    func: &Func,
    linear: &[usize],
    ct_types: &[Type],
) -> Result<Func, Error> {
    let transposed = tf::transpose_wrt(func, Some(linear))?;
    let mut types = func.param_types();
    types.extend_from_slice(ct_types);
    let n = func.params.len();
    Ok(trace("linear_transpose_f", &types, |p| {
        let mut args: Vec<Tensor> = (0..n)
            .filter(|i| !linear.contains(i))
            .map(|i| p[i].clone())
            .collect();
        args.extend(p[n..].iter().cloned());
        p[0].tracer().inline(&transposed, &args)
    })?)
}

// ---- The transforms ----

/// The closure of a transform taking inputs only.
fn with_inputs<F, O, A>(t: Transformed<F>) -> impl Fn(&[A]) -> A::Out
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
    A: Arg,
{
    move |xs: &[A]| A::call(&t, xs, &[])
}

/// The closure of a transform taking inputs and one vector per differentiated input or
/// output.
fn with_vectors<F, O, A>(t: Transformed<F>) -> impl Fn(&[A], &[A]) -> A::Out
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
    A: Arg,
{
    move |xs: &[A], vs: &[A]| A::call(&t, xs, vs)
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
    with_vectors(Transformed::new(f, Kind::Jvp, None))
}

/// `jvp` with respect to the inputs at positions `wrt` only: one tangent per position.
#[track_caller]
pub fn jvp_wrt<F, O, A>(wrt: &[usize], f: F) -> impl Fn(&[A], &[A]) -> A::Out
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
    A: Arg,
{
    with_vectors(Transformed::new(f, Kind::Jvp, Some(wrt)))
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
    with_vectors(Transformed::new(f, Kind::VjpFlat, None))
}

/// `vjp_flat` returning the cotangents of the inputs at positions `wrt` only.
#[track_caller]
pub fn vjp_flat_wrt<F, O, A>(wrt: &[usize], f: F) -> impl Fn(&[A], &[A]) -> A::Out
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
    A: Arg,
{
    with_vectors(Transformed::new(f, Kind::VjpFlat, Some(wrt)))
}

/// The gradient of a function with one float scalar output: one gradient per float input.
#[track_caller]
pub fn grad<F, O, A>(f: F) -> impl Fn(&[A]) -> A::Out
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
    A: Arg,
{
    with_inputs(Transformed::new(f, Kind::Grad, None))
}

/// `grad` with respect to the inputs at positions `wrt` only.
#[track_caller]
pub fn grad_wrt<F, O, A>(wrt: &[usize], f: F) -> impl Fn(&[A]) -> A::Out
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
    A: Arg,
{
    with_inputs(Transformed::new(f, Kind::Grad, Some(wrt)))
}

/// `(f(xs), gradients...)` in one pass.
#[track_caller]
pub fn value_and_grad<F, O, A>(f: F) -> impl Fn(&[A]) -> A::Out
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
    A: Arg,
{
    with_inputs(Transformed::new(f, Kind::ValueAndGrad, None))
}

/// `value_and_grad` with respect to the inputs at positions `wrt` only.
#[track_caller]
pub fn value_and_grad_wrt<F, O, A>(wrt: &[usize], f: F) -> impl Fn(&[A]) -> A::Out
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
    A: Arg,
{
    with_inputs(Transformed::new(f, Kind::ValueAndGrad, Some(wrt)))
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
    with_vectors(Transformed::new(f, Kind::Hvp, None))
}

/// `hvp` with respect to the inputs at positions `wrt` only.
#[track_caller]
pub fn hvp_wrt<F, O, A>(wrt: &[usize], f: F) -> impl Fn(&[A], &[A]) -> A::Out
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
    A: Arg,
{
    with_vectors(Transformed::new(f, Kind::Hvp, Some(wrt)))
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
    with_vectors(Transformed::new(f, Kind::LinearTranspose, None))
}

/// `linear_transpose` of a function linear in the inputs at positions `wrt` (the others, float
/// or not, are fixed at the values `xs` gives).
#[track_caller]
pub fn linear_transpose_wrt<F, O, A>(wrt: &[usize], f: F) -> impl Fn(&[A], &[A]) -> A::Out
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
    A: Arg,
{
    with_vectors(Transformed::new(f, Kind::LinearTranspose, Some(wrt)))
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
    with_inputs(Transformed::new(f, Kind::Jacfwd, None))
}

/// `jacfwd` with respect to the inputs at positions `wrt` only (blocks for those inputs).
#[track_caller]
pub fn jacfwd_wrt<F, O, A>(wrt: &[usize], f: F) -> impl Fn(&[A]) -> A::Out
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
    A: Arg,
{
    with_inputs(Transformed::new(f, Kind::Jacfwd, Some(wrt)))
}

/// The Jacobian by reverse mode, one vjp per output element; same layout as `jacfwd`.
#[track_caller]
pub fn jacrev<F, O, A>(f: F) -> impl Fn(&[A]) -> A::Out
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
    A: Arg,
{
    with_inputs(Transformed::new(f, Kind::Jacrev, None))
}

/// `jacrev` with respect to the inputs at positions `wrt` only.
#[track_caller]
pub fn jacrev_wrt<F, O, A>(wrt: &[usize], f: F) -> impl Fn(&[A]) -> A::Out
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
    A: Arg,
{
    with_inputs(Transformed::new(f, Kind::Jacrev, Some(wrt)))
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
    with_inputs(Transformed::new(f, Kind::Hessian, None))
}

/// `hessian` with respect to the inputs at positions `wrt` only (blocks for pairs of them).
#[track_caller]
pub fn hessian_wrt<F, O, A>(wrt: &[usize], f: F) -> impl Fn(&[A]) -> A::Out
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
    A: Arg,
{
    with_inputs(Transformed::new(f, Kind::Hessian, Some(wrt)))
}
