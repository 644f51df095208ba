//! Tracing: build IR by running an ordinary Rust closure over symbolic `Tensor`s.
//!
//! A `Tracer` owns the function being built; a `Tensor` is a handle to one of its values (or
//! to a rank-0 literal). Operators and methods append equations. Binary operations broadcast
//! numpy-style by inserting explicit `broadcast_in_dim`s, exactly as `jax.numpy` does (first to
//! equal rank with leading 1s, then to the common shape), so a traced program matches JAX's
//! jaxpr equation for equation.
//!
//! Errors do not panic: the first failing operation records a `TraceError` with the caller's
//! source location (`#[track_caller]`) and returns a placeholder tensor; `trace` (or
//! `Tracer::finish`) then returns that error. Later failures, which follow from the first, are
//! not recorded.
//!
//! Transformed functions stay traceable through `Tracer::inline`: a transform traces its
//! argument into a closed `Func`, rewrites it graph-to-graph, and inlines the result into the
//! enclosing trace, where it is ordinary equations that an outer transform sees like any other.

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::ops;
use std::panic::Location;
use std::rc::Rc;

use crate::builder::Builder;
use crate::conv::ConvDims;
use crate::func::{Atom, Func, Literal, Loc};
use crate::prim::{Axes, BinaryOp, CompareOp, DotDims, Prim, UnaryOp};
use crate::types::{DType, Shape, Type, TypeId};
use crate::verify::verify_func;
use crate::window::Window;

/// A trace-time error: what went wrong, and where in the caller's Rust source.
#[derive(Clone, Debug)]
pub struct TraceError {
    pub message: String,
    pub location: &'static Location<'static>,
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.location.file(),
            self.location.line(),
            self.location.column(),
            self.message
        )
    }
}

impl std::error::Error for TraceError {}

struct State {
    builder: Builder,
    /// The first error, when it is not one the builder recorded (an operand of another
    /// trace, a broadcast that does not fit).
    error: Option<TraceError>,
    /// Set by `finish`: tensors of a finished trace cannot be used any more.
    finished: bool,
    /// Why tensors of this trace cannot be used, when it is not the usual stale-trace story.
    unusable_because: Option<String>,
    /// The enclosing trace, whose tensors this one may capture.
    parent: Option<Tracer>,
    /// Captured tensors of the enclosing trace, each with the parameter standing for it here.
    captured: Vec<(Tensor, Tensor)>,
    /// Constants (only in a trace without a parent): the data of each, in the order of their
    /// parameters, which follow the inputs. Whoever runs the function binds them.
    constants: Vec<Rc<dyn Any>>,
}

thread_local! {
    /// The traces whose closures are running on this thread, innermost last.
    static ACTIVE: RefCell<Vec<Tracer>> = const { RefCell::new(Vec::new()) };
}

/// Keeps a trace on the `ACTIVE` stack while its closure runs, also through a panic.
struct Active;

impl Active {
    fn enter(tracer: &Tracer) -> Active {
        ACTIVE.with(|a| a.borrow_mut().push(tracer.clone()));
        Active
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        ACTIVE.with(|a| a.borrow_mut().pop());
    }
}

/// The function being traced: a shared handle to a strict `Builder`, which this front end
/// feeds with numpy broadcasting and the caller's Rust location. Cheap to clone.
#[derive(Clone)]
pub struct Tracer(Rc<RefCell<State>>);

/// A symbolic tensor: a value of the function being traced, or a rank-0 literal.
#[derive(Clone)]
pub struct Tensor {
    tracer: Tracer,
    atom: Atom,
    ty: TypeId,
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor({:?}: {})", self.atom, self.ty())
    }
}

impl Tracer {
    pub fn new(name: &str) -> Tracer {
        Tracer(Rc::new(RefCell::new(State {
            builder: Builder::new(name),
            error: None,
            finished: false,
            unusable_because: None,
            parent: None,
            captured: Vec::new(),
            constants: Vec::new(),
        })))
    }

    /// A trace that is finished from the start: its tensors fail, when used, with `why`. What
    /// `constant` returns outside any trace.
    pub fn unusable(why: &str) -> Tracer {
        let t = Tracer::new("unusable");
        {
            let mut st = t.0.borrow_mut();
            st.finished = true;
            st.unusable_because = Some(why.to_string());
        }
        t
    }

    /// The innermost trace whose closure is running on this thread (under `trace` or
    /// `trace_nested`), if any.
    pub fn current() -> Option<Tracer> {
        ACTIVE.with(|a| a.borrow().last().cloned())
    }

    /// The outermost trace this one is nested in (itself if it has no parent).
    fn root(&self) -> Tracer {
        let mut root = self.clone();
        loop {
            let parent = root.0.borrow().parent.clone();
            match parent {
                Some(p) => root = p,
                None => return root,
            }
        }
    }

    /// A constant of type `ty` whose value is `data`, opaque here: a parameter of the
    /// outermost trace (whose runner binds `data` to it), captured into this one like any
    /// tensor of an enclosing trace. So a constant made at any depth of nested transforms is
    /// one input of the function finally run, and is never differentiated.
    #[track_caller]
    pub fn constant(&self, ty: Type, data: Rc<dyn Any>) -> Tensor {
        let root = self.root();
        let param = root.param(ty.clone());
        root.0.borrow_mut().constants.push(data);
        match self.lift(&param) {
            Ok(t) => t,
            Err(why) => self.fail(format!("`constant`: {why}"), Location::caller(), ty),
        }
    }

    /// The data of the constants made in this trace, in parameter order (after the inputs).
    pub fn take_constants(&self) -> Vec<Rc<dyn Any>> {
        std::mem::take(&mut self.0.borrow_mut().constants)
    }

    /// A trace nested in `parent`: tensors of `parent` (or of its own ancestors) used here are
    /// captured as extra parameters, after the ordinary ones (closure conversion). The caller
    /// passes the captured tensors back in when it inlines the result into `parent`.
    pub fn nested(name: &str, parent: &Tracer) -> Tracer {
        let t = Tracer::new(name);
        t.0.borrow_mut().parent = Some(parent.clone());
        t
    }

    /// True if `other` is nested (at any depth) in this trace.
    pub fn is_ancestor_of(&self, other: &Tracer) -> bool {
        let mut cur = other.0.borrow().parent.clone();
        while let Some(p) = cur {
            if p.same(self) {
                return true;
            }
            cur = p.0.borrow().parent.clone();
        }
        false
    }

    /// True once `finish` has run: its tensors are stale.
    pub fn is_finished(&self) -> bool {
        self.0.borrow().finished
    }

    /// The tensors of the enclosing trace captured so far, in parameter order.
    pub fn captured(&self) -> Vec<Tensor> {
        self.0
            .borrow()
            .captured
            .iter()
            .map(|(outer, _)| outer.clone())
            .collect()
    }

    fn tensor(&self, atom: Atom) -> Tensor {
        let ty = {
            let mut st = self.0.borrow_mut();
            let ty = st.builder.ty(&atom).clone();
            st.builder.intern_type(&ty)
        };
        Tensor {
            tracer: self.clone(),
            atom,
            ty,
        }
    }

    /// `t` as a tensor of this trace: itself, or the parameter capturing it from an ancestor.
    /// `Err` says why it cannot be used here.
    fn lift(&self, t: &Tensor) -> Result<Tensor, String> {
        if t.tracer.is_finished() {
            let why = t.tracer.0.borrow().unusable_because.clone();
            return Err(why.unwrap_or_else(|| "a tensor of a trace that has already finished was used (a `Tensor` kept from an earlier trace, or captured by a closure that outlived it); pass it as an input instead".into()));
        }
        if t.tracer.same(self) {
            return Ok(t.clone());
        }
        if let Atom::Lit(l) = t.atom {
            return Ok(self.literal(l.value, l.dtype));
        }
        let parent = self.0.borrow().parent.clone().ok_or_else(|| {
            "an operand belongs to another trace that does not enclose this one".to_string()
        })?;
        let outer = parent.lift(t)?;
        let existing = self
            .0
            .borrow()
            .captured
            .iter()
            .find(|(o, _)| o.atom == outer.atom)
            .map(|(_, inner)| inner.clone());
        if let Some(inner) = existing {
            return Ok(inner);
        }
        let inner = self.param(outer.ty());
        self.0.borrow_mut().captured.push((outer, inner.clone()));
        Ok(inner)
    }

    fn same(&self, other: &Tracer) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }

    /// Adds a parameter of type `ty`.
    pub fn param(&self, ty: Type) -> Tensor {
        let v = self.0.borrow_mut().builder.param(&ty);
        self.tensor(Atom::Var(v))
    }

    /// A rank-0 literal (rounded to `dtype`).
    pub fn literal(&self, value: f64, dtype: DType) -> Tensor {
        self.tensor(Atom::Lit(Literal::new(value, dtype)))
    }

    /// A zero tensor of type `ty`: a literal for a scalar, else a broadcast literal.
    #[track_caller]
    pub fn zeros(&self, ty: &Type) -> Tensor {
        let zero = self.literal(0.0, ty.dtype);
        if ty.rank() == 0 {
            zero
        } else {
            zero.broadcast_in_dim(&ty.shape, &[])
        }
    }

    /// Records an error at `location` unless an earlier one is already recorded, and returns a
    /// placeholder tensor of type `ty` so that tracing can go on.
    pub fn fail(&self, message: String, location: &'static Location<'static>, ty: Type) -> Tensor {
        {
            let mut st = self.0.borrow_mut();
            if st.error.is_none() && !st.builder.has_error() {
                st.error = Some(TraceError { message, location });
            }
        }
        let placeholder = self.literal(0.0, ty.dtype);
        Tensor {
            ty: self.0.borrow_mut().builder.intern_type(&ty),
            ..placeholder
        }
    }

    /// True once an operation has failed.
    pub fn has_error(&self) -> bool {
        let st = self.0.borrow();
        st.error.is_some() || st.builder.has_error()
    }

    /// Appends `prim args` and returns its result. The core of every tensor method.
    #[track_caller]
    pub fn emit(&self, prim: Prim, args: &[&Tensor]) -> Tensor {
        let location = Location::caller();
        let placeholder = args.first().map_or(Type::scalar(DType::F32), |t| t.ty());
        let mut atoms: Vec<Atom> = Vec::with_capacity(args.len());
        for t in args {
            match self.lift(t) {
                Ok(t) => atoms.push(t.atom),
                Err(why) => {
                    return self.fail(format!("`{}`: {why}", prim.name()), location, placeholder)
                }
            }
        }
        if self.has_error() {
            return self.fail(String::new(), location, placeholder);
        }
        let result = {
            let mut st = self.0.borrow_mut();
            st.builder.set_loc(Loc::Rust(location));
            st.builder.try_eqn(prim, &atoms)
        };
        match result {
            Ok(v) => self.tensor(Atom::Var(v)),
            Err(e) => self.fail(e.message, location, placeholder),
        }
    }

    /// `iota`: counts 0, 1, 2, ... along `dim` of a tensor of `shape`.
    #[track_caller]
    pub fn iota(&self, dtype: DType, shape: &[usize], dim: usize) -> Tensor {
        self.emit(
            Prim::Iota {
                dtype,
                shape: shape.into(),
                dim,
            },
            &[],
        )
    }

    /// Emits the equations of `func` into this trace with `args` bound to its parameters, and
    /// returns its outputs. This is how a transformed function is traced again. The copied
    /// equations keep the locations they carry (the user's lines they came from).
    #[track_caller]
    pub fn inline(&self, func: &Func, args: &[Tensor]) -> Vec<Tensor> {
        self.inline_at(func, args, Location::caller())
    }

    /// `inline`, reporting a failure at `location` (the user's call of a transformed
    /// function, rather than the library's call of `inline`).
    pub fn inline_at(
        &self,
        func: &Func,
        args: &[Tensor],
        location: &'static Location<'static>,
    ) -> Vec<Tensor> {
        let types: Vec<Type> = args.iter().map(Tensor::ty).collect();
        let outputs_on_error = |t: Tensor| func.outputs.iter().map(|_| t.clone()).collect();
        if types != func.param_types() {
            let want: Vec<String> = func.param_types().iter().map(|t| t.to_string()).collect();
            let got: Vec<String> = types.iter().map(|t| t.to_string()).collect();
            let t = self.fail(
                format!(
                    "`{}` takes ({}) but was given ({})",
                    func.name,
                    want.join(", "),
                    got.join(", ")
                ),
                location,
                Type::scalar(DType::F32),
            );
            return outputs_on_error(t);
        }
        let mut atoms = Vec::with_capacity(args.len());
        for t in args {
            match self.lift(t) {
                Ok(t) => atoms.push(t.atom),
                Err(why) => {
                    let t = self.fail(why, location, Type::scalar(DType::F32));
                    return outputs_on_error(t);
                }
            }
        }
        let outs = self.0.borrow_mut().builder.inline(func, &atoms);
        outs.into_iter().map(|a| self.tensor(a)).collect()
    }

    /// Ends the trace: the function returning `outputs`, or the first error recorded. Either
    /// way the trace is finished: its tensors cannot be used any more.
    #[track_caller]
    pub fn finish(self, outputs: &[Tensor]) -> Result<Func, TraceError> {
        let result = self.build(outputs, Location::caller());
        self.0.borrow_mut().finished = true;
        result
    }

    /// The function returning `outputs` (lifted into this trace first), or the first error.
    fn build(
        &self,
        outputs: &[Tensor],
        location: &'static Location<'static>,
    ) -> Result<Func, TraceError> {
        if let Some(e) = self.0.borrow_mut().error.take() {
            return Err(e);
        }
        if outputs.is_empty() {
            return Err(TraceError {
                message: "a traced function must return at least one tensor".into(),
                location,
            });
        }
        let mut atoms = Vec::with_capacity(outputs.len());
        for t in outputs {
            match self.lift(t) {
                Ok(t) => atoms.push(t.atom),
                Err(why) => {
                    return Err(TraceError {
                        message: format!("a returned tensor cannot be used: {why}"),
                        location,
                    })
                }
            }
        }
        let builder = std::mem::take(&mut self.0.borrow_mut().builder);
        let func = builder.finish(&atoms).map_err(|e| TraceError {
            message: e.message,
            location: match e.loc {
                Loc::Rust(l) => l,
                _ => location,
            },
        })?;
        // Verify between passes in tests and debug builds (a traced function is correct by
        // construction: every equation went through the shape rules).
        if cfg!(debug_assertions) {
            verify_func(&func).map_err(|e| TraceError {
                message: format!("internal: traced function does not verify: {e}"),
                location,
            })?;
        }
        Ok(func)
    }
}

/// What a traced closure may return: one tensor, or several.
pub trait TraceOutputs {
    fn into_tensors(self) -> Vec<Tensor>;
}

impl TraceOutputs for Tensor {
    fn into_tensors(self) -> Vec<Tensor> {
        vec![self]
    }
}

impl TraceOutputs for Vec<Tensor> {
    fn into_tensors(self) -> Vec<Tensor> {
        self
    }
}

impl<const N: usize> TraceOutputs for [Tensor; N] {
    fn into_tensors(self) -> Vec<Tensor> {
        self.into()
    }
}

impl TraceOutputs for (Tensor, Tensor) {
    fn into_tensors(self) -> Vec<Tensor> {
        vec![self.0, self.1]
    }
}

impl TraceOutputs for (Tensor, Tensor, Tensor) {
    fn into_tensors(self) -> Vec<Tensor> {
        vec![self.0, self.1, self.2]
    }
}

/// Traces `f` over parameters of the given types into a function named `name`. A closure
/// that makes constants needs `trace_nested`, which returns their data.
#[track_caller]
pub fn trace<O: TraceOutputs>(
    name: &str,
    inputs: &[Type],
    f: impl FnOnce(&[Tensor]) -> O,
) -> Result<Func, TraceError> {
    let traced = trace_nested(name, None, inputs, f)?;
    if !traced.constants.is_empty() {
        return Err(TraceError {
            message: format!(
                "`{name}` made {} constant(s), which `trace` cannot bind: call it through a transform (`grad`, `jvp`, ...) or `trace_nested`",
                traced.constants.len()
            ),
            location: Location::caller(),
        });
    }
    Ok(traced.func)
}

/// What `trace_nested` made: the function, and what its caller binds after the inputs.
pub struct Nested {
    pub func: Func,
    /// Tensors of the enclosing trace the closure used, in parameter order.
    pub captured: Vec<Tensor>,
    /// The data of the closure's constants, in parameter order (empty in a nested trace,
    /// whose constants are parameters of the outermost trace, captured).
    pub constants: Vec<Rc<dyn Any>>,
}

/// Traces `f` in a trace nested in `parent` (when given): tensors of `parent` that `f` uses
/// become extra parameters after `inputs`, and so do constants when there is no parent.
/// While `f` runs, the new trace is `Tracer::current()`.
#[track_caller]
pub fn trace_nested<O: TraceOutputs>(
    name: &str,
    parent: Option<&Tracer>,
    inputs: &[Type],
    f: impl FnOnce(&[Tensor]) -> O,
) -> Result<Nested, TraceError> {
    let tracer = match parent {
        Some(p) => Tracer::nested(name, p),
        None => Tracer::new(name),
    };
    let params: Vec<Tensor> = inputs.iter().map(|t| tracer.param(t.clone())).collect();
    let outputs = {
        let _active = Active::enter(&tracer);
        f(&params).into_tensors()
    };
    drop(params);
    let handle = tracer.clone();
    let func = tracer.finish(&outputs)?;
    Ok(Nested {
        func,
        captured: handle.captured(),
        constants: handle.take_constants(),
    })
}

/// Something that can stand as an operand next to a tensor: another tensor, or a Rust number
/// (which becomes a rank-0 literal of the tensor's dtype).
pub trait IntoOperand {
    fn into_operand(self, like: &Tensor) -> Tensor;
    /// The tensor, if this operand is one.
    fn as_tensor(&self) -> Option<&Tensor> {
        None
    }
    /// The dtype of a Rust number's own type (f64, f32, i32), for when no tensor operand gives
    /// one.
    fn number_dtype(&self) -> Option<DType> {
        None
    }
}

impl IntoOperand for Tensor {
    fn into_operand(self, _: &Tensor) -> Tensor {
        self
    }
    fn as_tensor(&self) -> Option<&Tensor> {
        Some(self)
    }
}

impl IntoOperand for &Tensor {
    fn into_operand(self, _: &Tensor) -> Tensor {
        self.clone()
    }
    fn as_tensor(&self) -> Option<&Tensor> {
        Some(self)
    }
}

macro_rules! number_operand {
    ($t:ty, $dtype:ident) => {
        impl IntoOperand for $t {
            #[track_caller]
            fn into_operand(self, like: &Tensor) -> Tensor {
                like.lit(f64::from(self))
            }
            fn number_dtype(&self) -> Option<DType> {
                Some(DType::$dtype)
            }
        }
    };
}

number_operand!(f64, F64);
number_operand!(f32, F32);
number_operand!(i32, I32);

/// The trace an operation on `operands` (at least one) belongs in: the most deeply nested of
/// theirs (a nested trace can capture its ancestors' tensors, not the other way round).
fn innermost(operands: &[&Tensor]) -> Tracer {
    innermost_trace(operands.iter().copied()).expect("at least one operand")
}

/// The most deeply nested of the traces of `tensors`, `None` if there are none. Tensors of
/// traces that do not enclose it are left for `lift` to report when they are used.
pub fn innermost_trace<'a>(tensors: impl IntoIterator<Item = &'a Tensor>) -> Option<Tracer> {
    let mut tensors = tensors.into_iter();
    let mut best = tensors.next()?.tracer.clone();
    for t in tensors {
        if best.is_ancestor_of(&t.tracer) {
            best = t.tracer.clone();
        }
    }
    Some(best)
}

pub(crate) fn shape_text(shape: &[usize]) -> String {
    let s: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", s.join(","))
}

impl Tensor {
    /// The type (looked up in the trace's type table).
    pub fn ty(&self) -> Type {
        let st = self.tracer.0.borrow();
        if st.finished {
            // The table went with the finished function; the atom still knows a literal's.
            return match self.atom {
                Atom::Lit(l) => Type::scalar(l.dtype),
                Atom::Var(_) => Type::scalar(DType::F32),
            };
        }
        st.builder.func().types().get(self.ty).clone()
    }

    pub fn shape(&self) -> Shape {
        self.ty().shape
    }

    pub fn dtype(&self) -> DType {
        self.ty().dtype
    }

    pub fn rank(&self) -> usize {
        self.ty().rank()
    }

    /// The IR operand this tensor stands for.
    pub fn atom(&self) -> Atom {
        self.atom
    }

    /// The trace this tensor belongs to.
    pub fn tracer(&self) -> Tracer {
        self.tracer.clone()
    }

    /// A rank-0 literal of this tensor's dtype. A value the dtype cannot hold exactly (2.5 for
    /// an i32 tensor, 2 for a bool one) is an error, not a silent rounding.
    #[track_caller]
    pub fn lit(&self, value: f64) -> Tensor {
        let dtype = self.dtype();
        let fits = match dtype {
            DType::I32 => {
                value.fract() == 0.0 && (f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&value)
            }
            DType::Bool => value == 0.0 || value == 1.0,
            DType::F32 | DType::F64 => true,
        };
        if fits {
            self.tracer.literal(value, dtype)
        } else {
            self.tracer.fail(
                format!(
                    "the literal {value} cannot be a {dtype} operand of {}",
                    self.ty()
                ),
                Location::caller(),
                Type::scalar(dtype),
            )
        }
    }

    #[track_caller]
    fn unary(&self, op: UnaryOp) -> Tensor {
        self.tracer.emit(Prim::Unary(op), &[self])
    }

    #[track_caller]
    fn prim1(&self, prim: Prim) -> Tensor {
        self.tracer.emit(prim, &[self])
    }

    /// Broadcasts two operands to a common shape numpy-style, inserting `broadcast_in_dim`
    /// as jax.numpy does. Rank-0 operands are left alone: the IR broadcasts them implicitly.
    #[track_caller]
    fn broadcast_pair(&self, other: &Tensor, what: &str) -> Option<(Tensor, Tensor)> {
        let (a, b) = (&self.shape()[..], &other.shape()[..]);
        if a == b || a.is_empty() || b.is_empty() {
            return Some((self.clone(), other.clone()));
        }
        let rank = a.len().max(b.len());
        let pad = |s: &[usize]| -> Vec<usize> {
            let mut p = vec![1; rank - s.len()];
            p.extend_from_slice(s);
            p
        };
        let (pa, pb) = (pad(a), pad(b));
        let mut result = Vec::with_capacity(rank);
        for (x, y) in pa.iter().zip(&pb) {
            if x == y || *y == 1 {
                result.push(*x);
            } else if *x == 1 {
                result.push(*y);
            } else {
                self.tracer.fail(
                    format!(
                        "`{what}`: cannot broadcast shapes {} and {} together",
                        shape_text(a),
                        shape_text(b)
                    ),
                    Location::caller(),
                    self.ty(),
                );
                return None;
            }
        }
        let expand = |t: &Tensor, padded: &[usize]| -> Tensor {
            let mut t = t.clone();
            if t.rank() < rank {
                let dims: Vec<usize> = (rank - t.rank()..rank).collect();
                t = t.broadcast_in_dim(padded, &dims);
            }
            if padded != result.as_slice() {
                let dims: Vec<usize> = (0..rank).collect();
                t = t.broadcast_in_dim(&result, &dims);
            }
            t
        };
        Some((expand(self, &pa), expand(other, &pb)))
    }

    #[track_caller]
    fn elementwise(&self, prim: Prim, other: impl IntoOperand) -> Tensor {
        let other = other.into_operand(self);
        match self.broadcast_pair(&other, prim.name()) {
            Some((a, b)) => innermost(&[&a, &b]).emit(prim, &[&a, &b]),
            None => self.clone(),
        }
    }

    #[track_caller]
    fn binary(&self, op: BinaryOp, other: impl IntoOperand) -> Tensor {
        self.elementwise(Prim::Binary(op), other)
    }

    #[track_caller]
    fn compare(&self, op: CompareOp, other: impl IntoOperand) -> Tensor {
        self.elementwise(Prim::Compare(op), other)
    }

    #[track_caller]
    pub fn sin(&self) -> Tensor {
        self.unary(UnaryOp::Sin)
    }
    #[track_caller]
    pub fn cos(&self) -> Tensor {
        self.unary(UnaryOp::Cos)
    }
    #[track_caller]
    pub fn tan(&self) -> Tensor {
        self.unary(UnaryOp::Tan)
    }
    #[track_caller]
    pub fn tanh(&self) -> Tensor {
        self.unary(UnaryOp::Tanh)
    }
    #[track_caller]
    pub fn exp(&self) -> Tensor {
        self.unary(UnaryOp::Exp)
    }
    #[track_caller]
    pub fn log(&self) -> Tensor {
        self.unary(UnaryOp::Log)
    }
    #[track_caller]
    pub fn log1p(&self) -> Tensor {
        self.unary(UnaryOp::Log1p)
    }
    #[track_caller]
    pub fn expm1(&self) -> Tensor {
        self.unary(UnaryOp::Expm1)
    }
    #[track_caller]
    pub fn sqrt(&self) -> Tensor {
        self.unary(UnaryOp::Sqrt)
    }
    #[track_caller]
    pub fn rsqrt(&self) -> Tensor {
        self.unary(UnaryOp::Rsqrt)
    }
    #[track_caller]
    pub fn abs(&self) -> Tensor {
        self.unary(UnaryOp::Abs)
    }
    #[track_caller]
    pub fn sign(&self) -> Tensor {
        self.unary(UnaryOp::Sign)
    }
    #[track_caller]
    pub fn logistic(&self) -> Tensor {
        self.unary(UnaryOp::Logistic)
    }
    #[track_caller]
    pub fn erf(&self) -> Tensor {
        self.unary(UnaryOp::Erf)
    }
    #[track_caller]
    pub fn floor(&self) -> Tensor {
        self.unary(UnaryOp::Floor)
    }
    #[track_caller]
    pub fn ceil(&self) -> Tensor {
        self.unary(UnaryOp::Ceil)
    }
    #[track_caller]
    pub fn round(&self) -> Tensor {
        self.unary(UnaryOp::Round)
    }
    /// `integer_pow[y]`.
    #[track_caller]
    pub fn powi(&self, y: i32) -> Tensor {
        self.prim1(Prim::IntegerPow { y })
    }
    #[track_caller]
    pub fn stop_gradient(&self) -> Tensor {
        self.prim1(Prim::StopGradient)
    }

    #[track_caller]
    pub fn pow(&self, y: impl IntoOperand) -> Tensor {
        self.binary(BinaryOp::Pow, y)
    }
    #[track_caller]
    pub fn max(&self, y: impl IntoOperand) -> Tensor {
        self.binary(BinaryOp::Max, y)
    }
    #[track_caller]
    pub fn min(&self, y: impl IntoOperand) -> Tensor {
        self.binary(BinaryOp::Min, y)
    }
    #[track_caller]
    pub fn atan2(&self, x: impl IntoOperand) -> Tensor {
        self.binary(BinaryOp::Atan2, x)
    }

    #[track_caller]
    pub fn lt(&self, y: impl IntoOperand) -> Tensor {
        self.compare(CompareOp::Lt, y)
    }
    #[track_caller]
    pub fn le(&self, y: impl IntoOperand) -> Tensor {
        self.compare(CompareOp::Le, y)
    }
    #[track_caller]
    pub fn gt(&self, y: impl IntoOperand) -> Tensor {
        self.compare(CompareOp::Gt, y)
    }
    #[track_caller]
    pub fn ge(&self, y: impl IntoOperand) -> Tensor {
        self.compare(CompareOp::Ge, y)
    }
    #[track_caller]
    pub fn eq(&self, y: impl IntoOperand) -> Tensor {
        self.compare(CompareOp::Eq, y)
    }
    #[track_caller]
    pub fn ne(&self, y: impl IntoOperand) -> Tensor {
        self.compare(CompareOp::Ne, y)
    }

    #[track_caller]
    pub fn and(&self, y: &Tensor) -> Tensor {
        self.elementwise(Prim::And, y)
    }
    #[track_caller]
    pub fn or(&self, y: &Tensor) -> Tensor {
        self.elementwise(Prim::Or, y)
    }
    #[track_caller]
    pub fn not(&self) -> Tensor {
        self.prim1(Prim::Not)
    }

    /// `on_true` where `self` (a bool predicate) holds, else `on_false`, like jax.lax.select:
    /// emits `select_n self on_false on_true`.
    #[track_caller]
    pub fn select(&self, on_true: &Tensor, on_false: &Tensor) -> Tensor {
        innermost(&[self, on_false, on_true]).emit(Prim::SelectN, &[self, on_false, on_true])
    }

    /// `convert_element_type`.
    #[track_caller]
    pub fn cast(&self, dtype: DType) -> Tensor {
        self.prim1(Prim::ConvertElementType { dtype })
    }

    /// `reduce_sum` over `axes`.
    #[track_caller]
    pub fn sum(&self, axes: &[usize]) -> Tensor {
        self.prim1(Prim::ReduceSum { axes: axes.into() })
    }
    /// `reduce_sum` over every axis.
    #[track_caller]
    pub fn sum_all(&self) -> Tensor {
        self.sum(&(0..self.rank()).collect::<Vec<_>>())
    }
    #[track_caller]
    pub fn reduce_max(&self, axes: &[usize]) -> Tensor {
        self.prim1(Prim::ReduceMax { axes: axes.into() })
    }
    #[track_caller]
    pub fn reduce_min(&self, axes: &[usize]) -> Tensor {
        self.prim1(Prim::ReduceMin { axes: axes.into() })
    }
    #[track_caller]
    pub fn argmax(&self, axis: usize) -> Tensor {
        self.prim1(Prim::Argmax { axis })
    }
    #[track_caller]
    pub fn argmin(&self, axis: usize) -> Tensor {
        self.prim1(Prim::Argmin { axis })
    }
    #[track_caller]
    pub fn cumsum(&self, axis: usize, reverse: bool) -> Tensor {
        self.prim1(Prim::Cumsum { axis, reverse })
    }

    #[track_caller]
    pub fn broadcast_in_dim(&self, shape: &[usize], dims: &[usize]) -> Tensor {
        self.prim1(Prim::BroadcastInDim {
            shape: shape.into(),
            dims: dims.into(),
        })
    }
    /// numpy-style broadcast to `shape` (trailing axes aligned).
    #[track_caller]
    pub fn broadcast_to(&self, shape: &[usize]) -> Tensor {
        let r = self.rank();
        if shape.len() < r {
            return self.tracer.fail(
                format!(
                    "`broadcast_in_dim`: cannot broadcast {} to the lower-rank shape {}",
                    self.ty(),
                    shape_text(shape)
                ),
                Location::caller(),
                self.ty(),
            );
        }
        let dims: Vec<usize> = (shape.len() - r..shape.len()).collect();
        self.broadcast_in_dim(shape, &dims)
    }
    #[track_caller]
    pub fn reshape(&self, shape: &[usize]) -> Tensor {
        self.prim1(Prim::Reshape {
            shape: shape.into(),
        })
    }
    #[track_caller]
    pub fn transpose(&self, perm: &[usize]) -> Tensor {
        self.prim1(Prim::Transpose { perm: perm.into() })
    }
    /// Reverses the axis order (the matrix transpose for rank 2).
    #[track_caller]
    pub fn t(&self) -> Tensor {
        self.transpose(&(0..self.rank()).rev().collect::<Vec<_>>())
    }
    #[track_caller]
    pub fn squeeze(&self, dims: &[usize]) -> Tensor {
        self.prim1(Prim::Squeeze { dims: dims.into() })
    }
    #[track_caller]
    pub fn expand_dims(&self, dims: &[usize]) -> Tensor {
        self.prim1(Prim::ExpandDims { dims: dims.into() })
    }
    #[track_caller]
    pub fn rev(&self, dims: &[usize]) -> Tensor {
        self.prim1(Prim::Rev { dims: dims.into() })
    }
    #[track_caller]
    pub fn slice(&self, start: &[usize], limit: &[usize]) -> Tensor {
        self.slice_strided(start, limit, &vec![1; start.len()])
    }
    #[track_caller]
    pub fn slice_strided(&self, start: &[usize], limit: &[usize], strides: &[usize]) -> Tensor {
        self.prim1(Prim::Slice {
            start: start.into(),
            limit: limit.into(),
            strides: strides.into(),
        })
    }
    #[track_caller]
    pub fn pad(
        &self,
        value: impl IntoOperand,
        low: &[i64],
        high: &[i64],
        interior: &[usize],
    ) -> Tensor {
        let v = value.into_operand(self);
        innermost(&[self, &v]).emit(
            Prim::Pad {
                low: low.into(),
                high: high.into(),
                interior: interior.into(),
            },
            &[self, &v],
        )
    }
    /// `reduce_window_sum` over `window` (one entry per axis of `self`; see `Window` for
    /// strides, padding and dilations).
    #[track_caller]
    pub fn reduce_window_sum(&self, window: &Window) -> Tensor {
        self.prim1(Prim::ReduceWindowSum(Box::new(window.clone())))
    }
    /// `reduce_window_max` over `window`; its derivative goes to the first maximum of each
    /// window.
    #[track_caller]
    pub fn reduce_window_max(&self, window: &Window) -> Tensor {
        self.prim1(Prim::ReduceWindowMax(Box::new(window.clone())))
    }
    /// `reduce_window_min` over `window`; its derivative goes to the first minimum of each
    /// window.
    #[track_caller]
    pub fn reduce_window_min(&self, window: &Window) -> Tensor {
        self.prim1(Prim::ReduceWindowMin(Box::new(window.clone())))
    }
    /// `concatenate` of `self` followed by `rest`, along `axis`.
    #[track_caller]
    pub fn concatenate(&self, rest: &[Tensor], axis: usize) -> Tensor {
        let mut refs: Vec<&Tensor> = vec![self];
        refs.extend(rest);
        innermost(&refs).emit(Prim::Concatenate { axis }, &refs)
    }
    #[track_caller]
    pub fn dot_general(
        &self,
        other: &Tensor,
        contract: (&[usize], &[usize]),
        batch: (&[usize], &[usize]),
    ) -> Tensor {
        innermost(&[self, other]).emit(
            Prim::DotGeneral(DotDims {
                contract: (Axes::from_slice(contract.0), Axes::from_slice(contract.1)),
                batch: (Axes::from_slice(batch.0), Axes::from_slice(batch.1)),
            }),
            &[self, other],
        )
    }
    /// `conv_general_dilated[dims] self kernel`: `self` is `[N, C, S..]`, `kernel` `[O, I, K..]`
    /// (see `ConvDims`; `conv2d` is the common case).
    #[track_caller]
    pub fn conv_general_dilated(&self, kernel: &Tensor, dims: ConvDims) -> Tensor {
        innermost(&[self, kernel]).emit(Prim::ConvGeneralDilated(Box::new(dims)), &[self, kernel])
    }
}

macro_rules! binary_operator {
    ($trait:ident, $method:ident, $op:expr) => {
        impl ops::$trait<Tensor> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: Tensor) -> Tensor {
                self.binary($op, rhs)
            }
        }
        impl ops::$trait<&Tensor> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: &Tensor) -> Tensor {
                self.binary($op, rhs)
            }
        }
        impl ops::$trait<Tensor> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: Tensor) -> Tensor {
                self.binary($op, rhs)
            }
        }
        impl ops::$trait<&Tensor> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: &Tensor) -> Tensor {
                self.binary($op, rhs)
            }
        }
        impl<N: Number> ops::$trait<N> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: N) -> Tensor {
                self.binary($op, rhs)
            }
        }
        impl<N: Number> ops::$trait<N> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: N) -> Tensor {
                self.binary($op, rhs)
            }
        }
        impl ops::$trait<Tensor> for f64 {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: Tensor) -> Tensor {
                rhs.lit(self).binary($op, &rhs)
            }
        }
        impl ops::$trait<&Tensor> for f64 {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: &Tensor) -> Tensor {
                rhs.lit(self).binary($op, rhs)
            }
        }
    };
}

/// A Rust number that can stand on the right of an arithmetic operator with a tensor
/// (`x * 2.0`, `x * 2.0f32`): it becomes a literal of the tensor's dtype, like a weakly typed
/// Python scalar in JAX. One generic impl per operator (rather than one per number type)
/// keeps `(x * 2.0).sin()` inferable. On the left only f64 is accepted (`2.0 * x`): a
/// second left-hand impl would make `(2.0 * x).sin()` ambiguous to Rust's inference, so
/// write `x * 2.0f32`.
pub trait Number: IntoOperand + Copy {}

impl Number for f64 {}
impl Number for f32 {}

binary_operator!(Add, add, BinaryOp::Add);
binary_operator!(Sub, sub, BinaryOp::Sub);
binary_operator!(Mul, mul, BinaryOp::Mul);
binary_operator!(Div, div, BinaryOp::Div);

impl ops::Neg for Tensor {
    type Output = Tensor;
    #[track_caller]
    fn neg(self) -> Tensor {
        self.unary(UnaryOp::Neg)
    }
}

impl ops::Neg for &Tensor {
    type Output = Tensor;
    #[track_caller]
    fn neg(self) -> Tensor {
        self.unary(UnaryOp::Neg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::print::print_func;

    #[test]
    fn traces_broadcasting_like_jax() {
        let f = trace(
            "f",
            &[
                Type::new(DType::F32, vec![2, 3]),
                Type::new(DType::F32, vec![3]),
            ],
            |xs| (&xs[0] + &xs[1]).sum_all(),
        )
        .unwrap();
        let text = print_func(&f);
        assert!(
            text.contains("broadcast_in_dim[shape=(1,3), dims=(1)] x1"),
            "{text}"
        );
        assert!(
            text.contains("broadcast_in_dim[shape=(2,3), dims=(0,1)] v0"),
            "{text}"
        );
    }

    #[test]
    fn shape_errors_are_errs_with_the_callers_location() {
        let line = std::cell::Cell::new(0);
        let e = trace(
            "f",
            &[
                Type::new(DType::F32, vec![3]),
                Type::new(DType::F32, vec![4]),
            ],
            |xs| {
                let y = xs[0].sin();
                line.set(line!() + 1);
                let z = xs[0].dot_general(&xs[1], (&[0], &[0]), (&[], &[]));
                y.sum_all() + z
            },
        )
        .unwrap_err();
        assert_eq!(e.location.line(), line.get(), "{e}");
        assert!(e.location.file().ends_with("trace.rs"), "{e}");
        assert!(e.message.contains("dot_general"), "{e}");
        assert!(
            e.message.contains("f32[3]") && e.message.contains("f32[4]"),
            "{e}"
        );
    }

    #[test]
    fn fractional_literals_for_integer_tensors_are_errors() {
        let line = std::cell::Cell::new(0);
        let e = trace("f", &[Type::new(DType::I32, vec![3])], |xs| {
            line.set(line!() + 1);
            &xs[0] * 2.5
        })
        .unwrap_err();
        assert_eq!(e.location.line(), line.get(), "{e}");
        assert!(
            e.message.contains("2.5 cannot be a i32 operand of i32[3]"),
            "{e}"
        );
    }

    #[test]
    fn operator_errors_point_at_the_operator() {
        let line = std::cell::Cell::new(0);
        let e = trace(
            "f",
            &[
                Type::new(DType::F32, vec![3]),
                Type::new(DType::F32, vec![4]),
            ],
            |xs| {
                line.set(line!() + 1);
                &xs[0] * &xs[1]
            },
        )
        .unwrap_err();
        assert_eq!(e.location.line(), line.get(), "{e}");
        assert!(e.message.contains("`mul`"), "{e}");
    }
}
