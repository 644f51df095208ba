//! `linearize(f)` and `vjp(f)`: the outputs of `f` at a point and a linear map there (the
//! tangent map, or the pullback) that reuses the residuals of the forward pass on every call.
//! Like the other transformed closures, they keep their programs per input signature.

use std::marker::PhantomData;
use std::sync::Arc;

use traceform_ir::{Func, Tensor, TraceOutputs, Type};
use traceform_runtime::{Value, ValueRef};
use traceform_transforms as tf;

use crate::api::{list, positions, trace_at, Cache, Error, Runnable, Signature};
use crate::args::Concrete;

/// Which linear map a `Linearizing` makes.
#[derive(Clone, Copy)]
enum MapKind {
    /// `linearize`: input tangents (one per differentiated input) to output tangents.
    Tangent,
    /// `vjp`: output cotangents (one per float output) to input cotangents.
    Pullback,
}

impl MapKind {
    fn what(self) -> &'static str {
        match self {
            MapKind::Tangent => "the linearized function",
            MapKind::Pullback => "the pullback",
        }
    }
}

/// The programs of a linearization at one signature.
pub(crate) struct LinearProgram {
    /// `(inputs..., constants...) -> (outputs..., residuals...)`.
    primal: Runnable,
    n_outputs: usize,
    /// `(residuals..., arguments...) -> results`.
    map: Runnable,
    arg_types: Vec<Type>,
    constants: Vec<Value>,
    what: &'static str,
}

/// `f` with the linear map it makes at each point, and its programs per signature.
struct Linearizing<F> {
    f: F,
    kind: MapKind,
    wrt: Option<Vec<usize>>,
    programs: Cache<LinearProgram>,
}

impl<F, O> Linearizing<F>
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
{
    fn at<V: Concrete>(&self, xs: &[V]) -> AtPoint<V> {
        let values: Vec<ValueRef<'_>> = xs.iter().map(Concrete::value).collect();
        let (program, outputs, residuals) =
            run_primal(&self.programs, &values, &|sig| self.prepare(sig))?;
        let ys = outputs
            .into_iter()
            .map(V::from_value)
            .collect::<Result<_, _>>()?;
        let map = LinearMap {
            program,
            residuals,
            _arguments: PhantomData,
        };
        Ok((ys, map))
    }

    fn prepare(&self, sig: &Signature) -> Result<LinearProgram, Error> {
        let traced = trace_at(&self.f, sig.inputs(), None)?;
        let func = &traced.func;
        let wrt = positions(&traced, self.wrt.as_deref())?;
        let j = tf::jvp(func, Some(&wrt))?;
        let lin = tf::linearize_jvp(&j, func.params.len(), func.outputs.len())?;
        let n_outputs = lin.n_outputs;
        let (map, arg_types) = match self.kind {
            MapKind::Tangent => {
                let types = func.param_types();
                (lin.linear, wrt.iter().map(|&i| types[i].clone()).collect())
            }
            MapKind::Pullback => (
                tf::transpose(&lin.linear, lin.n_residuals())?,
                func.float_output_types(),
            ),
        };
        Ok(LinearProgram {
            primal: Runnable::new(crate::api::simplified(lin.primal)),
            n_outputs,
            map: Runnable::new(crate::api::simplified(map)),
            arg_types,
            constants: traced.constants,
            what: self.kind.what(),
        })
    }
}

/// The program for the signature of `values` (built on the first call), its outputs at
/// `values` and the residuals. Not generic, so it is compiled with traceform, not in the
/// caller's crate.
#[allow(clippy::type_complexity)]
fn run_primal(
    programs: &Cache<LinearProgram>,
    values: &[ValueRef<'_>],
    prepare: &dyn Fn(&Signature) -> Result<LinearProgram, Error>,
) -> Result<(Arc<LinearProgram>, Vec<Value>, Vec<Value>), Error> {
    let program = programs.get_or_build(Signature::of(values, &[]), prepare)?;
    let mut args: Vec<ValueRef<'_>> = values.iter().map(ValueRef::view).collect();
    args.extend(program.constants.iter().map(Value::view));
    let mut outputs = program.primal.run(&args)?;
    let residuals = outputs.split_off(program.n_outputs);
    Ok((program, outputs, residuals))
}

/// The map of `program` at `residuals` applied to `values`, after checking their types.
fn apply_map(
    program: &LinearProgram,
    residuals: &[Value],
    values: &[ValueRef<'_>],
) -> Result<Vec<Value>, Error> {
    let given: Vec<Type> = values.iter().map(|v| v.ty()).collect();
    if given != program.arg_types {
        return Err(Error::Input(format!(
            "{} takes ({}), given ({})",
            program.what,
            list(&program.arg_types),
            list(&given)
        )));
    }
    let mut all: Vec<ValueRef<'_>> = residuals.iter().map(Value::view).collect();
    all.extend(values.iter().map(ValueRef::view));
    program.map.run(&all)
}

/// A linear map at a fixed point, with the residuals of the forward pass computed once and
/// reused on every call: the tangent map of `linearize`, or the pullback of `vjp`. Called on
/// arguments of type `V`, it returns `V::Owned`s.
pub struct LinearMap<V: Concrete> {
    program: Arc<LinearProgram>,
    residuals: Vec<Value>,
    _arguments: PhantomData<fn(&V)>,
}

/// The tangent map of `linearize`: input tangents (one per float input) to output tangents.
pub type LinearFn<V> = LinearMap<V>;

/// The pullback of `vjp`: output cotangents (one per float output) to input cotangents.
pub type Pullback<V> = LinearMap<V>;

impl<V: Concrete> LinearMap<V> {
    /// Applies the map.
    pub fn call(&self, args: &[V]) -> Result<Vec<V::Owned>, Error> {
        let values: Vec<ValueRef<'_>> = args.iter().map(Concrete::value).collect();
        apply_map(&self.program, &self.residuals, &values)?
            .into_iter()
            .map(V::from_value)
            .collect()
    }

    /// The map as IR: `(residuals..., arguments...) -> results`.
    pub fn func(&self) -> &Func {
        self.program.map.func()
    }
}

/// The outputs of `f` at a point, and a linear map there.
pub type AtPoint<V> = Result<(Vec<<V as Concrete>::Owned>, LinearMap<V>), Error>;

fn linearizing<F, O, V>(f: F, kind: MapKind, wrt: Option<&[usize]>) -> impl Fn(&[V]) -> AtPoint<V>
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
    V: Concrete,
{
    let l = Linearizing {
        f,
        kind,
        wrt: wrt.map(<[usize]>::to_vec),
        programs: Cache::new(),
    };
    move |xs: &[V]| l.at(xs)
}

/// `linearize(f)(&xs)` is `(f(xs), the linear map t -> J t)`; the map reuses the residuals.
pub fn linearize<F, O, V>(f: F) -> impl Fn(&[V]) -> AtPoint<V>
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
    V: Concrete,
{
    linearizing(f, MapKind::Tangent, None)
}

/// `linearize` with respect to the inputs at positions `wrt` only: one tangent per position.
pub fn linearize_wrt<F, O, V>(wrt: &[usize], f: F) -> impl Fn(&[V]) -> AtPoint<V>
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
    V: Concrete,
{
    linearizing(f, MapKind::Tangent, Some(wrt))
}

/// Reverse mode: `vjp(f)(&xs)` is `(f(xs), pullback)`; `pullback.call(&cts)` gives one
/// cotangent per float input, reusing the residuals of the forward pass.
pub fn vjp<F, O, V>(f: F) -> impl Fn(&[V]) -> AtPoint<V>
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
    V: Concrete,
{
    linearizing(f, MapKind::Pullback, None)
}

/// `vjp` whose pullback gives the cotangents of the inputs at positions `wrt` only.
pub fn vjp_wrt<F, O, V>(wrt: &[usize], f: F) -> impl Fn(&[V]) -> AtPoint<V>
where
    F: Fn(&[Tensor]) -> O,
    O: TraceOutputs,
    V: Concrete,
{
    linearizing(f, MapKind::Pullback, Some(wrt))
}
