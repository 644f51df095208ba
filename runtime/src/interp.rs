//! The reference interpreter: one loop over the equations (no recursion), each operand looked
//! up in an environment indexed by value, each value dropped right after its last use as the
//! IR's live-interval analysis (`traceform_ir::Liveness`) says. The peak it reports is
//! measured on the values it actually holds, by the same accounting as the static estimate.
//! Inputs are read where they are, as views in any layout: evaluating never copies one.

use traceform_ir::{Atom, Func, Liveness, Type};

use crate::kernels::{apply, KernelError};
use crate::value::{AsValueRef, Value, ValueRef};

/// Why a function could not be evaluated.
#[derive(Clone, Debug, thiserror::Error)]
pub enum EvalError {
    /// The caller's inputs do not fit the signature.
    #[error("{0}")]
    Input(String),
    /// A kernel rejected verified operands: a bug in traceform.
    #[error("internal error in equation {eqn} (`{name}`): {source}")]
    Kernel {
        eqn: usize,
        name: String,
        source: KernelError,
    },
}

/// What one evaluation measured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvalStats {
    /// The most bytes of intermediate values live at once (inputs and outputs excluded).
    pub peak_bytes: usize,
}

/// Checks that `inputs` match the parameter types of `func`.
pub fn check_inputs<V: AsValueRef>(func: &Func, inputs: &[V]) -> Result<(), EvalError> {
    if inputs.len() != func.params.len() {
        return Err(EvalError::Input(format!(
            "`{}` takes {} input(s), given {}",
            func.name,
            func.params.len(),
            inputs.len()
        )));
    }
    for (i, (v, &p)) in inputs.iter().zip(&func.params).enumerate() {
        let v = v.as_value_ref();
        let want = func.var_type(p);
        if v.dtype() != want.dtype || v.shape() != &want.shape[..] {
            return Err(EvalError::Input(format!(
                "input {i} (`{}`) must be {want}, given {}",
                func.var_name(p),
                v.ty()
            )));
        }
    }
    Ok(())
}

/// Evaluates `func` on `inputs`, which it reads in place (`&[Value]`, `&[&Value]` and
/// `&[ValueRef]` all work; views in any layout, never copied). The outputs are in standard
/// layout.
pub fn eval<V: AsValueRef>(func: &Func, inputs: &[V]) -> Result<Vec<Value>, EvalError> {
    eval_with_stats(func, inputs).map(|(outs, _)| outs)
}

/// The largest single value the interpreter will allocate (16 GiB): a program asking for more
/// is refused before anything runs, instead of aborting on allocation failure.
pub const MAX_VALUE_BYTES: usize = 1 << 34;

/// A value in the environment: an input, borrowed, or a result the interpreter owns.
enum Slot<'a> {
    Empty,
    Input(ValueRef<'a>),
    Owned(Value),
}

impl Slot<'_> {
    fn get(&self) -> ValueRef<'_> {
        match self {
            Slot::Input(v) => v.view(),
            Slot::Owned(v) => v.view(),
            Slot::Empty => unreachable!("verified: defined before use, freed after last use"),
        }
    }
}

/// Evaluates `func` on `inputs`, also reporting the peak of live intermediate memory.
pub fn eval_with_stats<V: AsValueRef>(
    func: &Func,
    inputs: &[V],
) -> Result<(Vec<Value>, EvalStats), EvalError> {
    let inputs: Vec<ValueRef<'_>> = inputs.iter().map(AsValueRef::as_value_ref).collect();
    eval_borrowed(func, &inputs)
}

/// The interpreter loop. Not generic, so it is compiled (and optimised) with this crate: a
/// crate calling `eval` instantiates only the few lines above at its own optimisation level
/// (opt-level 0 in a dependent's dev profile).
fn eval_borrowed(
    func: &Func,
    inputs: &[ValueRef<'_>],
) -> Result<(Vec<Value>, EvalStats), EvalError> {
    check_inputs(func, inputs)?;
    let too_large = |e: &&traceform_ir::Eqn| func.var_type(e.out).size_bytes() > MAX_VALUE_BYTES;
    if let Some(eqn) = func.eqns.iter().find(too_large) {
        let ty = func.var_type(eqn.out);
        return Err(EvalError::Input(format!(
            "`{}` (`{}`) has type {ty}, which needs {} bytes; the interpreter allocates at most {MAX_VALUE_BYTES} bytes per value",
            func.var_name(eqn.out),
            func.prim(eqn).name(),
            ty.size_bytes()
        )));
    }
    let live = Liveness::new(func);
    let mut env: Vec<Slot<'_>> = (0..func.num_vars()).map(|_| Slot::Empty).collect();
    for (p, v) in func.params.iter().zip(inputs) {
        env[p.index()] = Slot::Input(v.clone());
    }
    let (mut live_bytes, mut peak) = (0usize, 0usize);
    let mut literals: Vec<Value> = Vec::new();
    for (i, eqn) in func.eqns.iter().enumerate() {
        let prim = func.prim(eqn);
        let operands = func.args(eqn);
        literals.clear();
        literals.extend(operands.iter().filter_map(|a| match a {
            Atom::Lit(l) => Some(Value::from_literal(l)),
            Atom::Var(_) => None,
        }));
        let mut lit_iter = literals.iter();
        let args: Vec<ValueRef<'_>> = operands
            .iter()
            .map(|a| match a {
                Atom::Var(v) => env[v.index()].get(),
                Atom::Lit(_) => lit_iter.next().expect("one value per literal").view(),
            })
            .collect();
        let out_ty: &Type = func.var_type(eqn.out);
        let value = apply(prim, &args, out_ty).map_err(|source| EvalError::Kernel {
            eqn: i,
            name: func.var_name(eqn.out),
            source,
        })?;
        debug_assert_eq!(&value.ty(), out_ty, "kernel of `{}`", prim.name());
        if live.counted(eqn.out) {
            live_bytes += value.size_bytes();
            peak = peak.max(live_bytes);
        }
        env[eqn.out.index()] = Slot::Owned(value);
        for &v in live.deaths_after(i) {
            if let Slot::Owned(old) = std::mem::replace(&mut env[v.index()], Slot::Empty) {
                live_bytes -= old.size_bytes();
            }
        }
    }
    // Move each output out of the environment at its last mention (earlier mentions of the
    // same value, and inputs returned as they are, are copies). Kernels keep the layout of
    // their operands where that costs nothing (an elementwise kernel of a transposed input
    // is transposed), so an output in another layout is copied into standard layout.
    let mut outputs = Vec::with_capacity(func.outputs.len());
    for (k, a) in func.outputs.iter().enumerate() {
        outputs.push(match a {
            Atom::Var(v) => {
                let mentioned_later = func.outputs[k + 1..].contains(a);
                match &env[v.index()] {
                    Slot::Owned(_) if !mentioned_later => {
                        match std::mem::replace(&mut env[v.index()], Slot::Empty) {
                            Slot::Owned(value) => value.into_standard_layout(),
                            _ => unreachable!("matched as owned"),
                        }
                    }
                    slot => slot.get().to_owned(),
                }
            }
            Atom::Lit(l) => Value::from_literal(l),
        });
    }
    Ok((outputs, EvalStats { peak_bytes: peak }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::ArrayD;
    use traceform_ir::parse_func;

    fn f32s(shape: &[usize], data: Vec<f32>) -> Value {
        Value::F32(ArrayD::from_shape_vec(shape.to_vec(), data).unwrap())
    }

    #[test]
    fn peak_counts_live_intermediates_only() {
        // a and b are live together (2 x 40 bytes); c replaces them; outputs are not counted.
        let f = parse_func(
            "func f(x: f32[10]) -> f32[] {\n  a: f32[10] = sin x\n  b: f32[10] = cos x\n  c: f32[10] = mul a b\n  d: f32[] = reduce_sum[axes=(0)] c\n  return d\n}\n",
        )
        .unwrap();
        let (_, stats) = eval_with_stats(&f, &[&f32s(&[10], vec![0.5; 10])]).unwrap();
        assert_eq!(stats.peak_bytes, 120);
    }

    #[test]
    fn repeated_outputs_and_returned_inputs() {
        let f = parse_func(
            "func f(x: f32[2]) -> (f32[2], f32[2], f32[2], f32[]) {\n  a: f32[2] = neg x\n  return a, x, a, 1.5\n}\n",
        )
        .unwrap();
        let outs = eval(&f, &[&f32s(&[2], vec![1.0, 2.0])]).unwrap();
        assert_eq!(outs[0].to_f64_vec(), vec![-1.0, -2.0]);
        assert_eq!(outs[1].to_f64_vec(), vec![1.0, 2.0]);
        assert_eq!(outs[2], outs[0]);
        assert_eq!(outs[3].to_f64_vec(), vec![1.5]);
    }

    /// A transposed view (contiguous, not row-major) and a strided one (every other element):
    /// read in place, they give what their row-major copies give, and the outputs, even an
    /// elementwise result of the transposed input or the input itself, come back row-major.
    #[test]
    fn views_in_other_layouts_give_what_their_copies_give() {
        let f = parse_func(
            "func f(x: f32[3,2], y: f32[4]) -> (f32[3,2], f32[3,2], f32[2], f32[3], f32[4], f32[2], f32[3,4]) {\n  a: f32[3,2] = sin x\n  b: f32[2] = reduce_sum[axes=(0)] x\n  c: f32[3] = reduce_max[axes=(1)] x\n  d: f32[4] = cumsum[axis=0, reverse=true] y\n  e: f32[2] = reduce_window_sum[window_dimensions=(3), window_strides=(2), padding=((0,1))] y\n  g: f32[3,4] = dot_general[contract=((),()), batch=((),())] c y\n  return a, x, b, c, d, e, g\n}\n",
        )
        .unwrap();
        let stored =
            ArrayD::from_shape_vec(vec![2, 3], vec![0.5f32, -1.0, 2.0, 3.0, 0.25, -4.0]).unwrap();
        let x = stored.t();
        let long: ArrayD<f32> =
            ArrayD::from_shape_vec(vec![8], (0..8).map(|i| i as f32).collect()).unwrap();
        let y = long.slice_each_axis(|_| ndarray::Slice::new(0, None, 2));
        assert!(!x.is_standard_layout() && !y.is_standard_layout());
        let views = [ValueRef::from(x.view()), ValueRef::from(y.view())];
        let copies = [views[0].to_owned(), views[1].to_owned()];
        let from_views = eval(&f, &views).unwrap();
        assert_eq!(from_views, eval(&f, &copies).unwrap());
        assert_eq!(from_views[1], copies[0]);
        for out in &from_views {
            assert!(out.view().is_standard_layout(), "{}", out.ty());
        }
    }

    #[test]
    fn wrong_inputs_are_errors() {
        let f = parse_func("func f(x: f32[2]) -> f32[2] {\n  return x\n}\n").unwrap();
        let e = eval(&f, &[&f32s(&[3], vec![0.0; 3])])
            .unwrap_err()
            .to_string();
        assert_eq!(e, "input 0 (`x`) must be f32[2], given f32[3]");
        let e = eval::<Value>(&f, &[]).unwrap_err().to_string();
        assert_eq!(e, "`f` takes 1 input(s), given 0");
    }

    #[test]
    fn pad_crops_strides_and_fills() {
        let f = parse_func(
            "func f(x: f32[4]) -> (f32[6], f32[2], f32[0]) {\n  a: f32[6] = pad[low=(-1), high=(0), interior=(1)] x 9.0\n  b: f32[2] = pad[low=(-5), high=(0), interior=(1)] x 9.0\n  c: f32[0] = pad[low=(-4), high=(0)] x 9.0\n  return a, b, c\n}\n",
        )
        .unwrap();
        let outs = eval(&f, &[&f32s(&[4], vec![1.0, 2.0, 3.0, 4.0])]).unwrap();
        // Interior padding gives 1 9 2 9 3 9 4; low = -1 crops the first element.
        assert_eq!(outs[0].to_f64_vec(), vec![9.0, 2.0, 9.0, 3.0, 9.0, 4.0]);
        assert_eq!(outs[1].to_f64_vec(), vec![9.0, 4.0]);
        assert!(outs[2].to_f64_vec().is_empty());
    }

    #[test]
    fn integer_arithmetic_follows_xla() {
        let f = parse_func(
            "func f(x: i32[3]) -> (i32[3], i32[3]) {\n  a: i32[3] = div x 0\n  b: i32[3] = div x -2\n  return a, b\n}\n",
        )
        .unwrap();
        let x = Value::I32(ArrayD::from_shape_vec(vec![3], vec![7, -7, 0]).unwrap());
        let outs = eval(&f, &[&x]).unwrap();
        assert_eq!(outs[0].to_f64_vec(), vec![-1.0, -1.0, -1.0]);
        assert_eq!(outs[1].to_f64_vec(), vec![-3.0, 3.0, 0.0]);
    }
}
