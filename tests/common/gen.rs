//! Random well-typed programs in the text IR, for property tests of every pass (the parser and
//! printer, the verifier, the transforms, the interpreter, and later the simplifier and the JIT).
//!
//! Programs are produced **as text**: the text IR is the stable interface, so nothing here reads
//! `Func`'s fields. A program is built from a [`Recipe`] (lists of random numbers, which proptest
//! shrinks towards zero: fewer steps, simpler choices) by a deterministic builder that tracks
//! every value's dtype, shape and a conservative interval of its values. The intervals let the
//! builder keep every operation in its domain (`log`, `sqrt`, `rsqrt`, `log1p`, `pow`, `div`,
//! negative `integer_pow`, `tan`) and every value moderate, by inserting small guards into the
//! program itself (`logistic x + 0.25`, `x*x + 0.5`, `x * 2^-k`). The intervals assume float
//! inputs in [`INPUT_RANGE`]; draw inputs from it (or a part of it, [`random_values`]).
//!
//! Programs have 1-3 float inputs of rank 0-3 (size-0 and size-1 axes included), 3-15 equations
//! (some with only literal operands, `sin 2.0:f32`), and end in 1-2 float outputs. The text
//! varies in what the grammar allows beyond the printer's form: binders without types,
//! comments, `(1,)` tuples, attribute lists over several lines, `2` and `5e-1` for floats, names
//! such as `add` or `inf0_`.
//!
//! What a test can ask for, through [`GenConfig`]:
//! - an operation set: [`OpSet::all`] (every primitive of the spec,
//!   non-finite literals and wrapping i32 arithmetic included),
//!   [`OpSet::finite`] (the same, every value finite), [`OpSet::fd`] (everything finite
//!   differences can check: all but `stop_gradient`), [`OpSet::smooth`] (no kinks or jumps at
//!   all), [`OpSet::linear`] (programs linear in some of their inputs, for `transpose_wrt`); each
//!   can be narrowed further with [`OpSet::without`] and [`OpSet::without_prim`];
//! - the float dtype (f32 or f64, else either) and whether values may be converted to the other
//!   one ([`GenConfig::unmixed`]);
//! - a single float scalar output (for `grad` and `hvp`) or 1-2 float outputs of any shape,
//!   optionally with an i32 or bool output beside them ([`GenConfig::int_outputs`]).
//!
//! Programs with kinks (`abs`, `max`, `floor`, comparisons, `reduce_max`, float-to-int casts...)
//! carry *indicators*: values that are constant as long as no kink is crossed (`sign x` under
//! `abs x`, `sign (a - b)` under `max a b`, the comparison itself, the tie mask of a
//! `reduce_max`, ...). [`Program::probe_text`] returns them, with every float intermediate, so
//! a finite-difference check can reject the points where `x - h t`, `x`, `x + h t` do not all
//! lie on the same smooth piece ([`Probe::same_piece`]).
//!
//! What is known to be broken is left out, each place marked `// KNOWN BUG:`.

#![allow(dead_code)]

use std::fmt;

use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;
use traceform::{DType, Type, Value};

/// The range of float inputs the builder's intervals, and so its domain guards, assume.
pub const INPUT_RANGE: (f64, f64) = (-2.0, 2.0);

/// Values the builder lets grow to before it scales them down by a power of two.
const MAG: f64 = 64.0;

/// The float dtype of a program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Float {
    F32,
    F64,
}

impl Float {
    pub fn name(self) -> &'static str {
        match self {
            Float::F32 => "f32",
            Float::F64 => "f64",
        }
    }

    pub fn dtype(self) -> DType {
        match self {
            Float::F32 => DType::F32,
            Float::F64 => DType::F64,
        }
    }

    fn other(self) -> Float {
        match self {
            Float::F32 => Float::F64,
            Float::F64 => Float::F32,
        }
    }
}

/// Dtypes relative to the program's float dtype: `F` is it, `G` the other float dtype (reached
/// only through `convert_element_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dt {
    F,
    G,
    I32,
    Bool,
}

impl Dt {
    fn is_float(self) -> bool {
        matches!(self, Dt::F | Dt::G)
    }
    fn is_numeric(self) -> bool {
        self != Dt::Bool
    }
}

/// The families of operations the builder knows. Each family covers one or more primitives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `neg sin cos tan tanh exp log log1p expm1 sqrt rsqrt abs sign logistic erf floor ceil round`
    Unary,
    /// `integer_pow[y=..]`, y from -3 to 4
    IntegerPow,
    StopGradient,
    /// `add sub mul div pow max min atan2` on floats
    Binary,
    /// `lt le gt ge eq ne`
    Compare,
    /// `select_n`
    Select,
    /// `and or not`
    Logic,
    /// `convert_element_type` between f32 and f64, float <-> i32, bool -> number
    Convert,
    Iota,
    /// `reduce_sum reduce_max reduce_min`
    Reduce,
    /// `argmax argmin`
    Arg,
    Cumsum,
    BroadcastInDim,
    Reshape,
    Transpose,
    Squeeze,
    ExpandDims,
    Rev,
    Slice,
    Pad,
    Concatenate,
    DotGeneral,
    /// `reduce_window_sum reduce_window_max reduce_window_min` (strides, padding that may be
    /// negative, base and window dilation)
    ReduceWindow,
    /// `conv_general_dilated` of two rank-3 values (one spatial axis)
    Conv,
    /// `add sub mul div max min neg abs sign` on i32
    IntArith,
    /// An equation whose operands are literals (`sin 2.0:f32`, `add 1.0:f64 2.0:f64`,
    /// `reshape[shape=(1,1)] 3.0:f32`, `dot_general 2.0:f32 x`...).
    Literal,
}

const ALL_OPS: [Op; 26] = [
    Op::Literal,
    Op::Unary,
    Op::IntegerPow,
    Op::StopGradient,
    Op::Binary,
    Op::Compare,
    Op::Select,
    Op::Logic,
    Op::Convert,
    Op::Iota,
    Op::Reduce,
    Op::Arg,
    Op::Cumsum,
    Op::BroadcastInDim,
    Op::Reshape,
    Op::Transpose,
    Op::Squeeze,
    Op::ExpandDims,
    Op::Rev,
    Op::Slice,
    Op::Pad,
    Op::Concatenate,
    Op::DotGeneral,
    Op::ReduceWindow,
    Op::Conv,
    Op::IntArith,
];

const UNARY_SMOOTH: [&str; 13] = [
    "neg", "sin", "cos", "tan", "tanh", "exp", "log", "log1p", "expm1", "sqrt", "rsqrt",
    "logistic", "erf",
];
const UNARY_KINKED: [&str; 5] = ["abs", "sign", "floor", "ceil", "round"];
const BINARY_SMOOTH: [&str; 6] = ["add", "sub", "mul", "div", "pow", "atan2"];
const BINARY_KINKED: [&str; 2] = ["max", "min"];
const COMPARE: [&str; 6] = ["lt", "le", "gt", "ge", "eq", "ne"];

/// Which operations a generated program may use.
#[derive(Clone, Debug)]
pub struct OpSet {
    ops: Vec<Op>,
    /// Primitive names left out (by `without_prim`).
    excluded: Vec<&'static str>,
    /// No kinks or jumps: only the smooth members of each family.
    smooth: bool,
    /// Every value finite on inputs in `INPUT_RANGE` (no `inf`/`nan` literals, no max/min
    /// reduction over an empty axis).
    finite: bool,
    /// Programs linear in their first parameters (see [`OpSet::linear`]).
    linear: bool,
}

impl OpSet {
    /// Every primitive, with non-finite literals
    /// (`inf`, `-inf`, `nan`, `-0.0`) and reductions of empty axes by max/min: for the parser,
    /// printer, verifier and the structure of transformed programs.
    pub fn all() -> OpSet {
        OpSet {
            ops: ALL_OPS.to_vec(),
            excluded: vec![],
            smooth: false,
            finite: false,
            linear: false,
        }
    }

    /// Every primitive whose derivative finite differences can check: all but `stop_gradient`,
    /// every value finite. Kinks stay in; check [`Probe::same_piece`] before differencing.
    pub fn fd() -> OpSet {
        OpSet {
            ops: ALL_OPS
                .iter()
                .copied()
                .filter(|o| *o != Op::StopGradient)
                .collect(),
            excluded: vec![],
            smooth: false,
            finite: true,
            linear: false,
        }
    }

    /// Every value finite, `stop_gradient` included (for checks that do not difference, such
    /// as the adjoint identity).
    pub fn finite() -> OpSet {
        OpSet {
            finite: true,
            ..OpSet::all()
        }
    }

    /// Smooth operations only: no `abs sign floor ceil round max min`, comparisons, selects,
    /// logic, arg/max/min reductions, integer values or `stop_gradient`; `atan2` away from its
    /// branch cut. Finite differences need no probe.
    pub fn smooth() -> OpSet {
        use Op::*;
        OpSet {
            ops: vec![
                Literal,
                Unary,
                IntegerPow,
                Binary,
                Convert,
                Iota,
                Reduce,
                Cumsum,
                BroadcastInDim,
                Reshape,
                Transpose,
                Squeeze,
                ExpandDims,
                Rev,
                Slice,
                Pad,
                Concatenate,
                DotGeneral,
                ReduceWindow,
                Conv,
            ],
            excluded: vec![],
            smooth: true,
            finite: true,
            linear: false,
        }
    }

    /// Programs `f(t..., k...)` linear in the inputs [`Program::linear_params`] (1 or 2 of
    /// them), built from `neg`, `add`/`sub` of linear values (or of a known zero), `mul`/`div`
    /// by literals or by values of the other inputs, `reduce_sum`, `cumsum`, `broadcast_in_dim`,
    /// `reshape`, `transpose`, `squeeze`, `expand_dims`, `rev`, `slice`, `pad` with 0 or a
    /// linear scalar, `concatenate`, `dot_general` and `conv_general_dilated` with one
    /// non-linear operand, `select_n` on a predicate of the other inputs,
    /// `convert_element_type` between floats. The other inputs (0 or 1) go through smooth
    /// non-linear operations first.
    pub fn linear() -> OpSet {
        use Op::*;
        OpSet {
            ops: vec![
                Literal,
                Unary,
                Binary,
                Convert,
                Reduce,
                Cumsum,
                BroadcastInDim,
                Reshape,
                Transpose,
                Squeeze,
                ExpandDims,
                Rev,
                Slice,
                Pad,
                Concatenate,
                DotGeneral,
                ReduceWindow,
                Conv,
                Select,
            ],
            excluded: vec![],
            smooth: true,
            finite: true,
            linear: true,
        }
    }

    /// The same set without a family of operations.
    pub fn without(mut self, op: Op) -> OpSet {
        self.ops.retain(|o| *o != op);
        self
    }

    /// The same set without one primitive (`"exp"`, `"max"`, `"pad"`...). Removing every
    /// primitive of a family removes the family.
    pub fn without_prim(mut self, name: &'static str) -> OpSet {
        self.excluded.push(name);
        self
    }

    fn allows(&self, name: &str) -> bool {
        !self.excluded.contains(&name)
    }

    fn has(&self, op: Op) -> bool {
        self.ops.contains(&op)
    }
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenConfig {
    pub ops: OpSet,
    /// `None`: f32 or f64, chosen per program.
    pub dtype: Option<Float>,
    /// `Some(true)`: one float scalar output (for `grad`, `hvp`); `Some(false)`: 1-2 float
    /// outputs of any shape; `None`: either, per program.
    pub scalar: Option<bool>,
    /// Steps of the builder (each adds one operation, sometimes with a guard or two). The
    /// program stops growing at `max_eqns` equations.
    pub steps: std::ops::RangeInclusive<usize>,
    pub max_eqns: usize,
    /// Whether values may be converted to the other float dtype (an f64 program computing
    /// partly in f32 has f32's precision).
    pub mixed: bool,
    /// Whether a program with outputs of any shape may also return an i32 or bool value.
    pub int_outputs: bool,
}

impl GenConfig {
    pub fn new(ops: OpSet) -> GenConfig {
        GenConfig {
            ops,
            dtype: None,
            scalar: None,
            steps: 3..=10,
            max_eqns: 15,
            mixed: true,
            int_outputs: false,
        }
    }

    pub fn dtype(mut self, f: Float) -> GenConfig {
        self.dtype = Some(f);
        self
    }

    /// Let programs with outputs of any shape also return an i32 or bool value (which gets no
    /// tangent or cotangent).
    pub fn int_outputs(mut self) -> GenConfig {
        self.int_outputs = true;
        self
    }

    /// Only the program's own float dtype (no conversion to the other one).
    pub fn unmixed(mut self) -> GenConfig {
        self.mixed = false;
        self
    }

    pub fn scalar(mut self, yes: bool) -> GenConfig {
        self.scalar = Some(yes);
        self
    }
}

/// The random numbers a program is built from: a header (dtype, parameters, outputs) and one
/// list per step. Every number is read modulo the number of choices, and 0 is always the
/// simplest choice, so proptest's shrinking (fewer steps, smaller numbers) simplifies programs.
#[derive(Clone, Debug)]
pub struct Recipe {
    pub header: Vec<u32>,
    pub steps: Vec<Vec<u32>>,
}

const NUMBERS_PER_STEP: usize = 40;

pub fn recipes(cfg: &GenConfig) -> impl Strategy<Value = Recipe> {
    let step = prop::collection::vec(any::<u32>(), NUMBERS_PER_STEP);
    (
        prop::collection::vec(any::<u32>(), 40),
        prop::collection::vec(step, cfg.steps.clone()),
    )
        .prop_map(|(header, steps)| Recipe { header, steps })
}

/// Random programs for `cfg`.
pub fn programs(cfg: GenConfig) -> impl Strategy<Value = Program> {
    recipes(&cfg).prop_map(move |r| Program::build(&cfg, &r))
}

/// Random programs with a seed for their inputs.
pub fn programs_with_seed(cfg: GenConfig) -> impl Strategy<Value = (Program, u64)> {
    (programs(cfg), any::<u64>())
}

// ---------------------------------------------------------------------------------------------
// The program description.

#[derive(Clone, Debug)]
struct VarInfo {
    name: String,
    dt: Dt,
    shape: Vec<usize>,
    /// A conservative interval of the values (floats and i32).
    lo: f64,
    hi: f64,
    kind: Kind,
    /// Only in the probe program (indicators and their helpers).
    probe: bool,
}

impl VarInfo {
    fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    fn mag(&self) -> f64 {
        self.lo.abs().max(self.hi.abs())
    }
}

/// How a value depends on the inputs (used by linear programs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Depends on a non-linear input (every input of a non-linear program).
    Input,
    /// Depends on no input.
    Const,
    /// Known to be zero.
    Zero,
    /// Linear in the linear inputs.
    Lin,
}

#[derive(Clone, Debug)]
enum Atom {
    V(usize),
    /// A float or i32 literal; `typed` writes its `:dtype`.
    L(f64, Dt, bool),
    B(bool),
}

#[derive(Clone, Debug)]
enum Attr {
    S(String),
    D(Dt),
}

/// An equation before it is emitted: primitive, attributes, operands, shape, interval.
type EqnParts = (
    &'static str,
    Vec<(&'static str, Attr)>,
    Vec<Atom>,
    Vec<usize>,
    (f64, f64),
);

#[derive(Clone, Debug)]
struct Eqn {
    out: usize,
    prim: &'static str,
    attrs: Vec<(&'static str, Attr)>,
    args: Vec<Atom>,
}

/// How a program is written: the grammar allows more than the printer writes, and the parser
/// must accept all of it.
#[derive(Clone, Copy, Debug, Default)]
struct Style {
    /// Leave out the type of every k-th binder (0: never).
    untyped_every: usize,
    /// One-element tuples as `(1,)`.
    trailing_comma: bool,
    /// Comment lines and end-of-line comments.
    comments: bool,
    /// Attribute lists over several lines.
    split_attrs: bool,
    /// Several spaces between operands.
    wide: bool,
    /// Integral float literals as `2` (no `.0`), others in exponent form (`5e-1`).
    plain_numbers: bool,
    /// Names that are primitive names or look like keywords (`add`, `sin`, `inf0`, `f32x`).
    odd_names: bool,
}

/// Name prefixes of the `odd_names` style: primitive names, and names that start like keywords.
const ODD_NAMES: [&str; 14] = [
    "add",
    "sin",
    "iota",
    "pad",
    "select_n",
    "dot_general",
    "reshape",
    "_",
    "A",
    "true_",
    "nan_x",
    "inf0_",
    "f32x",
    "boolean",
];

fn odd_name(n: usize) -> String {
    let prefix = ODD_NAMES[n % ODD_NAMES.len()];
    if n < ODD_NAMES.len() {
        prefix.to_string()
    } else {
        format!("{prefix}{n}")
    }
}

/// `(3)` as `(3,)`, in an attribute value.
fn with_trailing_commas(a: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = a.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        out.push(chars[i]);
        if chars[i] == '(' {
            let mut j = i + 1;
            if j < chars.len() && chars[j] == '-' {
                j += 1;
            }
            let digits = j;
            while j < chars.len() && chars[j].is_ascii_digit() {
                j += 1;
            }
            if j > digits && j < chars.len() && chars[j] == ')' {
                out.extend(&chars[i + 1..j]);
                out.push_str(",)");
                i = j + 1;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// A generated program: its text in several variants, and what the tests need to know about it.
#[derive(Clone)]
pub struct Program {
    pub float: Float,
    style: Style,
    vars: Vec<VarInfo>,
    params: Vec<usize>,
    eqns: Vec<Eqn>,
    outputs: Vec<Atom>,
    indicators: Vec<usize>,
    linear_params: Vec<usize>,
}

impl fmt::Debug for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\n{}", self.text())
    }
}

fn tuple(xs: &[usize]) -> String {
    let inner: Vec<String> = xs.iter().map(|x| x.to_string()).collect();
    format!("({})", inner.join(","))
}

fn tuple_i(xs: &[i64]) -> String {
    let inner: Vec<String> = xs.iter().map(|x| x.to_string()).collect();
    format!("({})", inner.join(","))
}

fn fmt_float(x: f64) -> String {
    if x.is_nan() {
        "nan".into()
    } else if x.is_infinite() {
        if x > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        format!("{x:?}")
    }
}

impl Program {
    fn dt_name(&self, dt: Dt, all_f64: bool) -> &'static str {
        match dt {
            Dt::F if all_f64 => "f64",
            Dt::G if all_f64 => "f64",
            Dt::F => self.float.name(),
            Dt::G => self.float.other().name(),
            Dt::I32 => "i32",
            Dt::Bool => "bool",
        }
    }

    fn ty(&self, v: usize, all_f64: bool) -> String {
        let var = &self.vars[v];
        let dims: Vec<String> = var.shape.iter().map(|d| d.to_string()).collect();
        format!("{}[{}]", self.dt_name(var.dt, all_f64), dims.join(","))
    }

    fn atom(&self, a: &Atom, all_f64: bool) -> String {
        match a {
            Atom::V(v) => self.vars[*v].name.clone(),
            Atom::B(b) => b.to_string(),
            Atom::L(x, Dt::I32, typed) => {
                if *typed {
                    format!("{}:i32", *x as i64)
                } else {
                    format!("{}", *x as i64)
                }
            }
            Atom::L(x, dt, typed) => {
                let num = if !self.style.plain_numbers
                    || !x.is_finite()
                    || *x == 0.0 && x.is_sign_negative()
                {
                    fmt_float(*x)
                } else if x.fract() == 0.0 && x.abs() < 1e9 {
                    format!("{}", *x as i64)
                } else {
                    format!("{x:e}")
                };
                if *typed {
                    format!("{num}:{}", self.dt_name(*dt, all_f64))
                } else {
                    num
                }
            }
        }
    }

    fn atom_ty(&self, a: &Atom, all_f64: bool) -> String {
        match a {
            Atom::V(v) => self.ty(*v, all_f64),
            Atom::B(_) => "bool[]".into(),
            Atom::L(_, dt, _) => format!("{}[]", self.dt_name(*dt, all_f64)),
        }
    }

    fn render(&self, all_f64: bool, probe: bool) -> String {
        let params: Vec<String> = self
            .params
            .iter()
            .map(|&p| format!("{}: {}", self.vars[p].name, self.ty(p, all_f64)))
            .collect();
        let mut outs: Vec<Atom> = self.outputs.clone();
        if probe {
            outs.extend(self.probe_floats().into_iter().map(Atom::V));
            outs.extend(self.indicators.iter().map(|&v| Atom::V(v)));
        }
        let tys: Vec<String> = outs.iter().map(|a| self.atom_ty(a, all_f64)).collect();
        let results = if tys.len() == 1 {
            tys[0].clone()
        } else {
            format!("({})", tys.join(", "))
        };
        let st = self.style;
        let mut s = String::new();
        if st.comments {
            s.push_str("# generated\n");
        }
        s.push_str(&format!(
            "func f({}) -> {} {{\n",
            params.join(", "),
            results
        ));
        for (i, e) in self.eqns.iter().enumerate() {
            if self.vars[e.out].probe && !probe {
                continue;
            }
            if st.comments && i % 4 == 1 {
                s.push_str("  # a comment line\n");
            }
            if st.untyped_every > 0 && i % st.untyped_every == 0 {
                s.push_str(&format!("  {} = {}", self.vars[e.out].name, e.prim));
            } else {
                s.push_str(&format!(
                    "  {}: {} = {}",
                    self.vars[e.out].name,
                    self.ty(e.out, all_f64),
                    e.prim
                ));
            }
            if !e.attrs.is_empty() {
                let attrs: Vec<String> = e
                    .attrs
                    .iter()
                    .map(|(k, v)| match v {
                        Attr::S(s) if st.trailing_comma => {
                            format!("{k}={}", with_trailing_commas(s))
                        }
                        Attr::S(s) => format!("{k}={s}"),
                        Attr::D(dt) => format!("{k}={}", self.dt_name(*dt, all_f64)),
                    })
                    .collect();
                let sep = if st.split_attrs { ",\n      " } else { ", " };
                s.push_str(&format!("[{}]", attrs.join(sep)));
            }
            for a in &e.args {
                s.push_str(if st.wide { "   " } else { " " });
                s.push_str(&self.atom(a, all_f64));
            }
            if st.comments && i % 3 == 2 {
                s.push_str("  # end of line");
            }
            s.push('\n');
        }
        let outs: Vec<String> = outs.iter().map(|a| self.atom(a, all_f64)).collect();
        s.push_str(&format!("  return {}\n}}\n", outs.join(", ")));
        s
    }

    /// The program.
    pub fn text(&self) -> String {
        self.render(false, false)
    }

    /// The same program with every float dtype f64 (for finite differences of f32 programs).
    pub fn text_f64(&self) -> String {
        self.render(true, false)
    }

    /// The program returning, after its own outputs, every float value it computes (parameters
    /// included) and then its kink indicators; see [`Probe`].
    pub fn probe_text(&self, all_f64: bool) -> String {
        self.render(all_f64, true)
    }

    fn probe_floats(&self) -> Vec<usize> {
        (0..self.vars.len())
            .filter(|&v| !self.vars[v].probe && self.vars[v].dt.is_float())
            .collect()
    }

    /// f32 if the program computes anything in f32, else f64: the precision of its results.
    pub fn precision(&self) -> Float {
        let g = self.vars.iter().any(|v| v.dt == Dt::G);
        if self.float == Float::F32 || g {
            Float::F32
        } else {
            Float::F64
        }
    }

    pub fn n_outputs(&self) -> usize {
        self.outputs.len()
    }

    /// The positions of the inputs a linear program ([`OpSet::linear`]) is linear in.
    pub fn linear_params(&self) -> &[usize] {
        &self.linear_params
    }

    /// Splits the outputs of the probe program.
    pub fn split_probe(&self, values: Vec<Value>) -> Probe {
        let n = self.outputs.len();
        let m = self.probe_floats().len();
        let mut it = values.into_iter();
        let outputs: Vec<Value> = it.by_ref().take(n).collect();
        let floats: Vec<Value> = it.by_ref().take(m).collect();
        Probe {
            outputs,
            floats,
            indicators: it.collect(),
        }
    }

    /// The number of equations of [`Program::text`].
    pub fn n_eqns(&self) -> usize {
        self.eqns.iter().filter(|e| !self.vars[e.out].probe).count()
    }
}

/// The values of the probe program at one point.
#[derive(Clone, Debug)]
pub struct Probe {
    pub outputs: Vec<Value>,
    /// Every float value of the program, parameters included.
    pub floats: Vec<Value>,
    /// Values that stay the same as long as no kink or jump is crossed.
    pub indicators: Vec<Value>,
}

impl Probe {
    /// The largest magnitude of any float value (infinite if one is not finite).
    pub fn max_abs(&self) -> f64 {
        max_abs(&self.floats)
    }

    /// True when every kink indicator is the same at every probe: the points lie on one
    /// smooth piece (up to crossings that come back, which steps of 1e-6 do not see).
    pub fn same_piece(probes: &[&Probe]) -> bool {
        probes.windows(2).all(|w| {
            w[0].indicators.len() == w[1].indicators.len()
                && w[0]
                    .indicators
                    .iter()
                    .zip(&w[1].indicators)
                    .all(|(a, b)| a.to_f64_vec() == b.to_f64_vec())
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The builder.

struct Builder<'c> {
    cfg: &'c GenConfig,
    p: Program,
    xs: Vec<u32>,
    i: usize,
}

fn iv_mul(a: (f64, f64), b: (f64, f64)) -> (f64, f64) {
    let ps = [a.0 * b.0, a.0 * b.1, a.1 * b.0, a.1 * b.1];
    iv_of(&ps)
}

/// The smallest interval holding `xs` (everything, if one is NaN).
fn iv_of(xs: &[f64]) -> (f64, f64) {
    if xs.iter().any(|x| x.is_nan()) {
        return (f64::NEG_INFINITY, f64::INFINITY);
    }
    let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo, hi)
}

fn iv_union(a: (f64, f64), b: (f64, f64)) -> (f64, f64) {
    (a.0.min(b.0), a.1.max(b.1))
}

/// Whether a value of shape `kernel` can be the rhs `[O, I, K]` of a convolution whose lhs has
/// `c` features: `I` divides `c` and `O` is a multiple of the feature group count `c / I`.
fn conv_kernel_fits(c: usize, kernel: &[usize]) -> bool {
    match kernel {
        [o, i, _] if *i > 0 => c % i == 0 && o % (c / i).max(1) == 0 && c > 0,
        [_, 0, _] => c == 0,
        _ => false,
    }
}

/// `n` times every element of an interval (`n` terms of a sum).
fn iv_times(n: usize, a: (f64, f64)) -> (f64, f64) {
    if n == 0 {
        (0.0, 0.0)
    } else {
        let n = n as f64;
        (n * a.0, n * a.1)
    }
}

const LITERALS: [f64; 8] = [2.0, 0.5, -1.5, 1.0, 0.0, 3.0, -0.25, 1.25];
const NONZERO_LITERALS: [f64; 6] = [2.0, 0.5, -1.5, 1.0, 3.0, -0.25];
const SPECIAL_LITERALS: [f64; 8] = [
    f64::INFINITY,
    f64::NEG_INFINITY,
    f64::NAN,
    -0.0,
    1e-30,
    0.1,
    1.0 / 3.0,
    -123456.789,
];
/// Axis sizes, 0 one time in 24.
const DIMS: [usize; 24] = [
    2, 1, 3, 4, 2, 3, 1, 2, 3, 4, 2, 3, 2, 1, 3, 4, 2, 3, 1, 2, 3, 2, 3, 0,
];
const MAX_ELEMS: usize = 96;
const I32_LIMIT: f64 = 2147483648.0;

impl<'c> Builder<'c> {
    /// A number below `n` (0 when `n` is 0 or the step's numbers ran out).
    fn pick(&mut self, n: usize) -> usize {
        let v = self.xs.get(self.i).copied().unwrap_or(0);
        self.i += 1;
        if n == 0 {
            0
        } else {
            v as usize % n
        }
    }

    fn one_in(&mut self, n: usize) -> bool {
        n > 0 && self.pick(n) == n - 1
    }

    fn from<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.pick(xs.len())]
    }

    fn var(&self, v: usize) -> &VarInfo {
        &self.p.vars[v]
    }

    fn iv(&self, a: &Atom) -> (f64, f64) {
        match a {
            Atom::V(v) => (self.p.vars[*v].lo, self.p.vars[*v].hi),
            Atom::L(x, _, _) => (*x, *x),
            Atom::B(b) => {
                let x = f64::from(u8::from(*b));
                (x, x)
            }
        }
    }

    fn atom_dt(&self, a: &Atom) -> Dt {
        match a {
            Atom::V(v) => self.p.vars[*v].dt,
            Atom::L(_, dt, _) => *dt,
            Atom::B(_) => Dt::Bool,
        }
    }

    fn atom_shape(&self, a: &Atom) -> Vec<usize> {
        match a {
            Atom::V(v) => self.p.vars[*v].shape.clone(),
            _ => vec![],
        }
    }

    fn new_var(
        &mut self,
        dt: Dt,
        shape: Vec<usize>,
        iv: (f64, f64),
        kind: Kind,
        probe: bool,
    ) -> usize {
        let n = self.p.vars.len();
        let name = if probe {
            format!("k{n}")
        } else if self.p.style.odd_names {
            odd_name(n)
        } else {
            format!("v{n}")
        };
        let (lo, hi) = if iv.0.is_nan() || iv.1.is_nan() {
            (f64::NEG_INFINITY, f64::INFINITY)
        } else if dt == Dt::I32 && (iv.0 < -I32_LIMIT || iv.1 >= I32_LIMIT) {
            // i32 arithmetic wraps: anything.
            (-I32_LIMIT, I32_LIMIT - 1.0)
        } else {
            iv
        };
        self.p.vars.push(VarInfo {
            name,
            dt,
            shape,
            lo,
            hi,
            kind,
            probe,
        });
        n
    }

    fn kind_of(&self, args: &[Atom]) -> Kind {
        let mut k = Kind::Const;
        for a in args {
            if let Atom::V(v) = a {
                k = match (k, self.p.vars[*v].kind) {
                    (Kind::Lin, _) | (_, Kind::Lin) => Kind::Lin,
                    (Kind::Input, _) | (_, Kind::Input) => Kind::Input,
                    _ => Kind::Const,
                };
            }
        }
        k
    }

    /// Appends `out = prim[attrs] args` to the program.
    #[allow(clippy::too_many_arguments)]
    fn emit_full(
        &mut self,
        prim: &'static str,
        attrs: Vec<(&'static str, Attr)>,
        args: Vec<Atom>,
        dt: Dt,
        shape: Vec<usize>,
        iv: (f64, f64),
        probe: bool,
    ) -> usize {
        let kind = self.kind_of(&args);
        let out = self.new_var(dt, shape, iv, kind, probe);
        self.p.eqns.push(Eqn {
            out,
            prim,
            attrs,
            args,
        });
        out
    }

    fn emit(
        &mut self,
        prim: &'static str,
        attrs: Vec<(&'static str, Attr)>,
        args: Vec<Atom>,
        dt: Dt,
        shape: Vec<usize>,
        iv: (f64, f64),
    ) -> usize {
        self.emit_full(prim, attrs, args, dt, shape, iv, false)
    }

    /// A probe-only equation.
    fn probe(
        &mut self,
        prim: &'static str,
        attrs: Vec<(&'static str, Attr)>,
        args: Vec<Atom>,
        dt: Dt,
        shape: Vec<usize>,
    ) -> usize {
        self.emit_full(
            prim,
            attrs,
            args,
            dt,
            shape,
            (f64::NEG_INFINITY, f64::INFINITY),
            true,
        )
    }

    fn indicator(&mut self, v: usize) {
        self.p.indicators.push(v);
    }

    fn n_main_eqns(&self) -> usize {
        self.p
            .eqns
            .iter()
            .filter(|e| !self.p.vars[e.out].probe)
            .count()
    }

    // --- operand choice -----------------------------------------------------------------------

    /// A non-probe variable satisfying `ok`, more likely a recent one.
    fn choose(&mut self, ok: impl Fn(&VarInfo) -> bool) -> Option<usize> {
        let cands: Vec<usize> = (0..self.p.vars.len())
            .filter(|&v| !self.p.vars[v].probe && ok(&self.p.vars[v]))
            .collect();
        if cands.is_empty() {
            return None;
        }
        // Half the time the latest value nothing uses yet (programs grow deep rather than
        // wide), else one of the last three, else any.
        if self.pick(2) == 0 {
            let mut used = vec![false; self.p.vars.len()];
            for e in self.p.eqns.iter().filter(|e| !self.p.vars[e.out].probe) {
                for a in &e.args {
                    if let Atom::V(v) = a {
                        used[*v] = true;
                    }
                }
            }
            if let Some(&v) = cands.iter().rev().find(|&&v| !used[v]) {
                return Some(v);
            }
        }
        let k = if self.pick(2) == 0 {
            self.pick(cands.len().min(3))
        } else {
            self.pick(cands.len())
        };
        Some(cands[cands.len() - 1 - k])
    }

    /// Scales a float variable by a power of two so that its magnitude is at most `m` (or
    /// squashes it with `tanh` when it may be infinite).
    fn guard_mag(&mut self, v: usize, m: f64) -> usize {
        let var = self.var(v).clone();
        if !var.dt.is_float() || var.mag() <= m {
            return v;
        }
        if !var.mag().is_finite() {
            if var.kind == Kind::Lin {
                return v;
            }
            let t = self.emit(
                "tanh",
                vec![],
                vec![Atom::V(v)],
                var.dt,
                var.shape.clone(),
                (-1.0, 1.0),
            );
            return self.guard_mag(t, m);
        }
        let k = (var.mag() / m).log2().ceil() as i32;
        let s = 2f64.powi(-k);
        self.emit(
            "mul",
            vec![],
            vec![Atom::V(v), Atom::L(s, var.dt, false)],
            var.dt,
            var.shape.clone(),
            (var.lo * s, var.hi * s),
        )
    }

    /// A float variable in [0.2, 16]: itself, or `logistic v + 0.25`, or `v*v + 0.5`.
    fn guard_pos(&mut self, v: usize) -> usize {
        let var = self.var(v).clone();
        if var.lo >= 0.2 && var.hi <= 16.0 {
            return v;
        }
        let (dt, shape) = (var.dt, var.shape.clone());
        if var.mag() <= 3.5 && self.pick(2) == 1 {
            let sq = self.emit(
                "mul",
                vec![],
                vec![Atom::V(v), Atom::V(v)],
                dt,
                shape.clone(),
                (0.0, var.mag() * var.mag()),
            );
            let hi = var.mag() * var.mag() + 0.5;
            self.emit(
                "add",
                vec![],
                vec![Atom::V(sq), Atom::L(0.5, dt, false)],
                dt,
                shape,
                (0.5, hi),
            )
        } else {
            let l = self.emit(
                "logistic",
                vec![],
                vec![Atom::V(v)],
                dt,
                shape.clone(),
                (0.0, 1.0),
            );
            self.emit(
                "add",
                vec![],
                vec![Atom::L(0.25, dt, false), Atom::V(l)],
                dt,
                shape,
                (0.25, 1.25),
            )
        }
    }

    /// A float operand of any float dtype (guarded to a moderate magnitude).
    fn float_operand(&mut self) -> Option<usize> {
        let lin = self.cfg.ops.linear;
        let v = self.choose(|v| v.dt.is_float() && (!lin || v.kind != Kind::Lin))?;
        Some(self.moderate(v))
    }

    fn moderate(&mut self, v: usize) -> usize {
        if self.cfg.ops.finite {
            self.guard_mag(v, MAG)
        } else {
            v
        }
    }

    /// A literal for a float of dtype `dt`.
    fn literal(&mut self, dt: Dt) -> Atom {
        if dt == Dt::I32 {
            return self.int_literal();
        }
        let x = if !self.cfg.ops.finite && self.one_in(8) {
            self.from(&SPECIAL_LITERALS)
        } else {
            self.from(&LITERALS)
        };
        let typed = self.one_in(3);
        Atom::L(x, dt, typed)
    }

    /// An i32 literal; with non-finite values allowed, sometimes one near the ends of the range
    /// (so that i32 arithmetic wraps).
    fn int_literal(&mut self) -> Atom {
        let x = if !self.cfg.ops.finite && self.one_in(3) {
            self.from(&[2147483647.0, -2147483648.0, 1073741824.0])
        } else {
            self.from(&[2.0, -1.0, 3.0, 0.0])
        };
        Atom::L(x, Dt::I32, self.one_in(2))
    }

    /// A second operand for an elementwise binary operation with `a`: a variable of the same
    /// dtype and shape, a rank-0 one, any shape if `a` is rank 0, a literal, or `a` itself.
    fn partner(&mut self, a: usize, allow_literal: bool) -> Atom {
        let (dt, shape) = (self.var(a).dt, self.var(a).shape.clone());
        let lin = self.cfg.ops.linear;
        match self.pick(4) {
            0 | 1 => {
                let same = self.choose(|v| {
                    v.dt == dt
                        && (v.shape == shape || v.shape.is_empty() || shape.is_empty())
                        && (!lin || v.kind != Kind::Lin)
                });
                match same {
                    Some(b) => Atom::V(self.moderate(b)),
                    None if allow_literal => self.literal(dt),
                    None => Atom::V(a),
                }
            }
            2 if allow_literal => {
                if dt == Dt::I32 {
                    self.int_literal()
                } else {
                    self.literal(dt)
                }
            }
            _ => Atom::V(a),
        }
    }

    fn elementwise_shape(&self, a: &Atom, b: &Atom) -> Vec<usize> {
        let sa = self.atom_shape(a);
        if sa.is_empty() {
            self.atom_shape(b)
        } else {
            sa
        }
    }

    // --- one step -----------------------------------------------------------------------------

    fn step(&mut self) {
        // Families weighted so that arithmetic is as common as reshaping.
        let ops: Vec<Op> = self
            .cfg
            .ops
            .ops
            .iter()
            .flat_map(|&op| {
                let w = match op {
                    Op::Unary | Op::Binary => 4,
                    Op::IntegerPow
                    | Op::DotGeneral
                    | Op::Reduce
                    | Op::Select
                    | Op::IntArith
                    | Op::Cumsum => 2,
                    _ => 1,
                };
                std::iter::repeat_n(op, w)
            })
            .collect();
        let first = self.pick(ops.len());
        for k in 0..ops.len() {
            let op = ops[(first + k) % ops.len()];
            let done = if self.cfg.ops.linear {
                self.linear_op(op)
            } else {
                self.op(op)
            };
            if done.is_some() {
                return;
            }
        }
    }

    fn op(&mut self, op: Op) -> Option<usize> {
        match op {
            Op::Unary => {
                let x = self.float_operand()?;
                self.unary(x)
            }
            Op::IntegerPow => {
                let x = self.float_operand()?;
                self.integer_pow(x)
            }
            Op::StopGradient => {
                let x = self.choose(|_| true)?;
                let v = self.var(x).clone();
                Some(self.emit(
                    "stop_gradient",
                    vec![],
                    vec![Atom::V(x)],
                    v.dt,
                    v.shape,
                    (v.lo, v.hi),
                ))
            }
            Op::Binary => {
                let a = self.float_operand()?;
                self.binary(a)
            }
            Op::Compare => self.compare(),
            Op::Select => self.select(),
            Op::Logic => self.logic(),
            Op::Convert => self.convert(),
            Op::Iota => self.iota(),
            Op::Reduce => {
                let x = self.choose(|v| v.dt.is_numeric())?;
                let x = self.moderate(x);
                self.reduce(x)
            }
            Op::Arg => self.arg(),
            Op::Cumsum => {
                let x = self.choose(|v| v.dt.is_numeric() && !v.shape.is_empty())?;
                let x = self.moderate(x);
                self.cumsum(x)
            }
            Op::BroadcastInDim => self.broadcast(None),
            Op::Reshape => {
                let x = self.choose(|_| true)?;
                self.reshape(x)
            }
            Op::Transpose => {
                let x = self.choose(|_| true)?;
                self.transpose(x)
            }
            Op::Squeeze => {
                let x = self.choose(|v| v.shape.contains(&1) || v.shape.is_empty())?;
                self.squeeze(x)
            }
            Op::ExpandDims => {
                let x = self.choose(|v| v.shape.len() <= 2)?;
                self.expand_dims(x)
            }
            Op::Rev => {
                let x = self.choose(|_| true)?;
                self.rev(x)
            }
            Op::Slice => {
                let x = self.choose(|_| true)?;
                self.slice(x)
            }
            Op::Pad => {
                let x = self.choose(|_| true)?;
                let x = self.moderate(x);
                self.pad(x, None)
            }
            Op::Concatenate => {
                let x = self.choose(|v| !v.shape.is_empty())?;
                self.concatenate(x, &|_| true)
            }
            Op::DotGeneral => {
                let x = if !self.cfg.ops.smooth && self.one_in(5) {
                    self.choose(|v| v.dt == Dt::I32)?
                } else {
                    self.float_operand()?
                };
                let dt = self.var(x).dt;
                let y = self.choose(|v| v.dt == dt)?;
                let y = self.moderate(y);
                self.dot_general(x, y)
            }
            Op::ReduceWindow => {
                let x = self.choose(|v| v.dt.is_numeric() && !v.shape.is_empty())?;
                let x = self.moderate(x);
                self.reduce_window(x)
            }
            Op::Conv => {
                let x = self.choose(|v| v.dt.is_float() && v.shape.len() == 3)?;
                let x = self.moderate(x);
                let (dt, c) = (self.var(x).dt, self.var(x).shape[1]);
                let y = self.choose(|v| v.dt == dt && conv_kernel_fits(c, &v.shape))?;
                let y = self.moderate(y);
                self.conv(x, y)
            }
            Op::IntArith => self.int_arith(),
            Op::Literal => self.literal_eqn(),
        }
    }

    /// An equation on literal operands (a constant of the program).
    fn literal_eqn(&mut self) -> Option<usize> {
        let ops = self.cfg.ops.clone();
        let dt = if ops.smooth || ops.linear || !self.one_in(4) {
            Dt::F
        } else {
            Dt::I32
        };
        let x = if dt == Dt::I32 {
            self.from(&[2.0, -1.0, 0.0])
        } else {
            self.from(&LITERALS)
        };
        let lit = Atom::L(x, dt, true);
        let v = (x, x);
        let choice = self.pick(9);
        let (prim, attrs, args, shape, iv): EqnParts = match choice {
            0 => {
                let names: &[&'static str] = if dt == Dt::I32 {
                    &["neg", "abs"]
                } else {
                    &["neg", "sin", "tanh", "exp", "logistic", "cos"]
                };
                let name = self.from(names);
                let iv = match name {
                    "neg" => (-x, -x),
                    "abs" => (x.abs(), x.abs()),
                    "exp" => (x.exp(), x.exp()),
                    "logistic" => (0.0, 1.0),
                    _ => (-1.0, 1.0),
                };
                (name, vec![], vec![lit], vec![], iv)
            }
            1 if dt != Dt::I32 => (
                "integer_pow",
                vec![("y", Attr::S("2".into()))],
                vec![lit],
                vec![],
                (x * x, x * x),
            ),
            2 => {
                let other = self.from(&[0.5, 2.0]);
                let name = self.from(&["add", "mul", "sub"]);
                let iv = match name {
                    "add" => (x + other, x + other),
                    "sub" => (x - other, x - other),
                    _ => (x * other, x * other),
                };
                (
                    name,
                    vec![],
                    vec![lit, Atom::L(other, dt, true)],
                    vec![],
                    iv,
                )
            }
            3 => (
                "reshape",
                vec![("shape", Attr::S("(1,1)".into()))],
                vec![lit],
                vec![1, 1],
                v,
            ),
            4 => (
                "expand_dims",
                vec![("dims", Attr::S("(0)".into()))],
                vec![lit],
                vec![1],
                v,
            ),
            5 => {
                let name = self.from(&["reduce_sum", "transpose", "rev", "slice", "stop_gradient"]);
                if name == "stop_gradient" && !ops.has(Op::StopGradient) {
                    return None;
                }
                let attrs = match name {
                    "reduce_sum" => vec![("axes", Attr::S("()".into()))],
                    "transpose" => vec![("perm", Attr::S("()".into()))],
                    "rev" => vec![("dims", Attr::S("()".into()))],
                    "slice" => vec![
                        ("start", Attr::S("()".into())),
                        ("limit", Attr::S("()".into())),
                    ],
                    _ => vec![],
                };
                (name, attrs, vec![lit], vec![], v)
            }
            6 => (
                "pad",
                vec![
                    ("low", Attr::S("()".into())),
                    ("high", Attr::S("()".into())),
                ],
                vec![lit, Atom::L(0.0, dt, true)],
                vec![],
                v,
            ),
            7 if dt != Dt::I32 && !ops.linear => {
                // A rank-0 literal times a value of any shape.
                let y = self.choose(|w| w.dt == dt)?;
                let y = self.moderate(y);
                let w = self.var(y).clone();
                let iv = iv_mul(v, (w.lo, w.hi));
                let args = if self.one_in(2) {
                    vec![lit, Atom::V(y)]
                } else {
                    vec![Atom::V(y), lit]
                };
                (
                    "dot_general",
                    vec![("contract", Attr::S("((),())".into()))],
                    args,
                    w.shape,
                    iv,
                )
            }
            8 if !ops.linear && !ops.smooth => {
                // select_n with literal cases.
                let p = self.predicate(&[], None).unwrap_or(Atom::B(true));
                let y = self.from(&[0.5, -2.0]);
                (
                    "select_n",
                    vec![],
                    vec![p, lit, Atom::L(y, dt, true)],
                    vec![],
                    iv_union(v, (y, y)),
                )
            }
            _ => (
                "convert_element_type",
                vec![("dtype", Attr::D(Dt::F))],
                vec![Atom::L(
                    x,
                    if dt == Dt::I32 { Dt::I32 } else { Dt::F },
                    true,
                )],
                vec![],
                v,
            ),
        };
        if !ops.allows(prim) {
            return None;
        }
        let out_dt = if prim == "convert_element_type" {
            Dt::F
        } else {
            dt
        };
        Some(self.emit(prim, attrs, args, out_dt, shape, iv))
    }

    fn unary(&mut self, x: usize) -> Option<usize> {
        let ops = &self.cfg.ops;
        let mut names: Vec<&'static str> = UNARY_SMOOTH.to_vec();
        if !ops.smooth {
            names.extend(UNARY_KINKED);
        }
        names.retain(|n| ops.allows(n));
        if names.is_empty() {
            return None;
        }
        let name = self.from(&names);
        let x = match name {
            "tan" => self.guard_mag(x, 1.2),
            "exp" | "expm1" => self.guard_mag(x, 4.0),
            "log" | "sqrt" | "rsqrt" => self.guard_pos(x),
            "log1p" if self.var(x).lo < -0.8 => self.guard_pos(x),
            _ => x,
        };
        let v = self.var(x).clone();
        let (lo, hi) = (v.lo, v.hi);
        let iv = match name {
            "neg" => (-hi, -lo),
            "sin" | "cos" | "tanh" | "erf" | "sign" => (-1.0, 1.0),
            "logistic" => (0.0, 1.0),
            "tan" => (lo.tan(), hi.tan()),
            "exp" => (lo.exp(), hi.exp()),
            "expm1" => (lo.exp_m1(), hi.exp_m1()),
            "log" => (lo.ln(), hi.ln()),
            "log1p" => (lo.ln_1p(), hi.ln_1p()),
            "sqrt" => (lo.sqrt(), hi.sqrt()),
            "rsqrt" => (1.0 / hi.sqrt(), 1.0 / lo.sqrt()),
            "abs" => {
                if lo >= 0.0 {
                    (lo, hi)
                } else if hi <= 0.0 {
                    (-hi, -lo)
                } else {
                    (0.0, v.mag())
                }
            }
            "floor" => (lo.floor(), hi.floor()),
            "ceil" => (lo.ceil(), hi.ceil()),
            "round" => (lo.round(), hi.round()),
            _ => unreachable!("{name}"),
        };
        let out = self.emit(name, vec![], vec![Atom::V(x)], v.dt, v.shape.clone(), iv);
        match name {
            "abs" | "sign" => {
                let s = self.probe("sign", vec![], vec![Atom::V(x)], v.dt, v.shape);
                self.indicator(s);
            }
            "floor" | "ceil" | "round" => self.indicator(out),
            _ => {}
        }
        Some(out)
    }

    fn integer_pow(&mut self, x: usize) -> Option<usize> {
        if !self.cfg.ops.allows("integer_pow") {
            return None;
        }
        let y: i32 = self.from(&[2, -1, 3, 0, 1, -2, 4, -3]);
        let mut x = x;
        if y < 0 {
            let v = self.var(x);
            if v.lo <= 0.2 && v.hi >= -0.2 {
                x = self.guard_pos(x);
            }
        }
        if y >= 2 {
            x = self.guard_mag(x, 4.0);
        }
        let v = self.var(x).clone();
        let (lo, hi) = (v.lo, v.hi);
        let iv = if y == 0 {
            (1.0, 1.0)
        } else if lo > 0.0 || hi < 0.0 || y % 2 == 1 {
            iv_of(&[lo.powi(y), hi.powi(y)])
        } else {
            (0.0, lo.powi(y).max(hi.powi(y)))
        };
        Some(self.emit(
            "integer_pow",
            vec![("y", Attr::S(y.to_string()))],
            vec![Atom::V(x)],
            v.dt,
            v.shape,
            iv,
        ))
    }

    fn binary(&mut self, a: usize) -> Option<usize> {
        let ops = &self.cfg.ops;
        let mut names: Vec<&'static str> = BINARY_SMOOTH.to_vec();
        if !ops.smooth {
            names.extend(BINARY_KINKED);
        }
        names.retain(|n| ops.allows(n));
        if names.is_empty() {
            return None;
        }
        let name = self.from(&names);
        let dt = self.var(a).dt;
        let b = if matches!(name, "max" | "min")
            && self.cfg.ops.has(Op::StopGradient)
            && self.one_in(4)
        {
            // A tie whose sides have different tangents (t and 0): the convention splits it.
            Atom::V(self.stopped(a))
        } else {
            self.partner(a, true)
        };
        let swap = match b {
            Atom::V(_) => self.one_in(3),
            _ => self.one_in(2),
        };
        let (mut x, mut y) = if swap {
            (b, Atom::V(a))
        } else {
            (Atom::V(a), b)
        };
        match name {
            "div" => {
                y = match y {
                    Atom::V(v) => Atom::V(self.guard_pos(v)),
                    Atom::L(_, dt, t) => Atom::L(self.from(&NONZERO_LITERALS), dt, t),
                    b => b,
                };
            }
            "pow" => {
                x = match x {
                    Atom::V(v) => Atom::V(self.guard_pos(v)),
                    Atom::L(_, dt, t) => Atom::L(self.from(&[0.5, 2.0, 1.5]), dt, t),
                    b => b,
                };
                y = match y {
                    Atom::V(v) => Atom::V(self.guard_mag(v, 2.0)),
                    Atom::L(_, dt, t) => Atom::L(self.from(&[2.0, -0.5, 1.5, 3.0]), dt, t),
                    b => b,
                };
            }
            "atan2" => {
                if let Atom::V(v) = y {
                    let var = self.var(v);
                    if self.cfg.ops.smooth || (var.lo < 0.2 && var.hi > -0.2) {
                        y = Atom::V(self.guard_pos(v));
                    }
                } else if let Atom::L(0.0, dt, t) = y {
                    y = Atom::L(1.0, dt, t);
                }
            }
            _ => {}
        }
        let (ix, iy) = (self.iv(&x), self.iv(&y));
        let iv = match name {
            "add" => (ix.0 + iy.0, ix.1 + iy.1),
            "sub" => (ix.0 - iy.1, ix.1 - iy.0),
            "mul" => iv_mul(ix, iy),
            "div" => iv_mul(ix, iv_of(&[1.0 / iy.0, 1.0 / iy.1])),
            "pow" => iv_of(&[
                ix.0.powf(iy.0),
                ix.0.powf(iy.1),
                ix.1.powf(iy.0),
                ix.1.powf(iy.1),
            ]),
            "max" => (ix.0.max(iy.0), ix.1.max(iy.1)),
            "min" => (ix.0.min(iy.0), ix.1.min(iy.1)),
            "atan2" => (-std::f64::consts::PI, std::f64::consts::PI),
            _ => unreachable!(),
        };
        let shape = self.elementwise_shape(&x, &y);
        let out = self.emit(
            name,
            vec![],
            vec![x.clone(), y.clone()],
            dt,
            shape.clone(),
            iv,
        );
        match name {
            "max" | "min" => {
                let d = self.probe("sub", vec![], vec![x, y], dt, shape.clone());
                let s = self.probe("sign", vec![], vec![Atom::V(d)], dt, shape);
                self.indicator(s);
            }
            "atan2" => {
                if matches!(x, Atom::V(_)) {
                    let xs = self.atom_shape(&x);
                    let s = self.probe("sign", vec![], vec![x], dt, xs);
                    self.indicator(s);
                }
            }
            _ => {}
        }
        Some(out)
    }

    fn compare(&mut self) -> Option<usize> {
        let names: Vec<&'static str> = COMPARE
            .iter()
            .copied()
            .filter(|n| self.cfg.ops.allows(n))
            .collect();
        if names.is_empty() {
            return None;
        }
        let a = self.choose(|v| v.dt.is_numeric())?;
        let b = self.partner(a, true);
        let name = self.from(&names);
        let (x, y) = if self.one_in(3) {
            (b, Atom::V(a))
        } else {
            (Atom::V(a), b)
        };
        let shape = self.elementwise_shape(&x, &y);
        let out = self.emit(name, vec![], vec![x, y], Dt::Bool, shape, (0.0, 1.0));
        self.indicator(out);
        Some(out)
    }

    /// A bool predicate of shape `shape` (or rank 0), made by a comparison if there is none.
    fn predicate(&mut self, shape: &[usize], like: Option<usize>) -> Option<Atom> {
        if self.one_in(8) {
            return Some(Atom::B(self.pick(2) == 1));
        }
        let lin = self.cfg.ops.linear;
        let existing = self.choose(|v| {
            v.dt == Dt::Bool
                && (v.shape == shape || v.shape.is_empty())
                && (!lin || v.kind != Kind::Lin)
        });
        if let Some(p) = existing {
            if self.pick(3) != 0 {
                return Some(Atom::V(p));
            }
        }
        // A comparison of `like` (or, in linear programs, of a non-linear value of that shape)
        // with a literal.
        let src = match like {
            Some(v) if !lin => v,
            _ => self.choose(|v| {
                v.dt.is_numeric() && v.kind != Kind::Lin && (v.shape == shape || v.shape.is_empty())
            })?,
        };
        let dt = self.var(src).dt;
        if dt == Dt::Bool {
            return Some(Atom::V(src));
        }
        let name = self.from(&["lt", "gt", "ge"]);
        let lit = if dt == Dt::I32 {
            Atom::L(1.0, Dt::I32, true)
        } else {
            Atom::L(self.from(&[0.0, 0.5, -1.0]), dt, false)
        };
        let pshape = self.var(src).shape.clone();
        let out = self.emit(
            name,
            vec![],
            vec![Atom::V(src), lit],
            Dt::Bool,
            pshape,
            (0.0, 1.0),
        );
        self.indicator(out);
        Some(Atom::V(out))
    }

    fn select(&mut self) -> Option<usize> {
        if !self.cfg.ops.allows("select_n") {
            return None;
        }
        let a = if self.pick(4) != 0 {
            self.choose(|v| v.dt.is_float())?
        } else {
            self.choose(|_| true)?
        };
        let v = self.var(a).clone();
        let b = self
            .choose(|w| w.dt == v.dt && w.shape == v.shape)
            .unwrap_or(a);
        let p = self.predicate(&v.shape, Some(a))?;
        let iv = iv_union((v.lo, v.hi), self.iv(&Atom::V(b)));
        let (x, y) = if self.one_in(2) { (b, a) } else { (a, b) };
        Some(self.emit(
            "select_n",
            vec![],
            vec![p, Atom::V(x), Atom::V(y)],
            v.dt,
            v.shape,
            iv,
        ))
    }

    fn logic(&mut self) -> Option<usize> {
        let a = self.choose(|v| v.dt == Dt::Bool)?;
        let shape = self.var(a).shape.clone();
        let names: Vec<&'static str> = ["and", "or", "not"]
            .into_iter()
            .filter(|n| self.cfg.ops.allows(n))
            .collect();
        if names.is_empty() {
            return None;
        }
        let name = self.from(&names);
        if name == "not" {
            return Some(self.emit("not", vec![], vec![Atom::V(a)], Dt::Bool, shape, (0.0, 1.0)));
        }
        let b = match self.choose(|v| {
            v.dt == Dt::Bool && (v.shape == shape || v.shape.is_empty() || shape.is_empty())
        }) {
            Some(b) if !self.one_in(6) => Atom::V(b),
            _ => Atom::B(self.pick(2) == 1),
        };
        let (x, y) = if self.one_in(2) {
            (b, Atom::V(a))
        } else {
            (Atom::V(a), b)
        };
        let shape = self.elementwise_shape(&x, &y);
        Some(self.emit(name, vec![], vec![x, y], Dt::Bool, shape, (0.0, 1.0)))
    }

    fn convert(&mut self) -> Option<usize> {
        if !self.cfg.ops.allows("convert_element_type") {
            return None;
        }
        let smooth = self.cfg.ops.smooth;
        let x = if smooth {
            self.choose(|v| v.dt.is_float())?
        } else {
            self.choose(|_| true)?
        };
        let x = self.moderate(x);
        let v = self.var(x).clone();
        let targets: &[Dt] = match v.dt {
            _ if smooth => &[Dt::G, Dt::F],
            Dt::F => &[Dt::G, Dt::I32, Dt::F, Dt::Bool],
            Dt::G => &[Dt::F, Dt::I32, Dt::G],
            Dt::I32 => &[Dt::F, Dt::G],
            Dt::Bool => &[Dt::F, Dt::I32],
        };
        let mut to = self.from(targets);
        if smooth && v.dt == Dt::G {
            to = Dt::F;
        }
        if to == Dt::G && !self.cfg.mixed {
            to = Dt::F;
        }
        let iv = match (v.dt.is_float(), to) {
            (true, Dt::I32) => (v.lo.trunc(), v.hi.trunc()),
            (_, Dt::Bool) => (0.0, 1.0),
            _ => (v.lo, v.hi),
        };
        let out = self.emit(
            "convert_element_type",
            vec![("dtype", Attr::D(to))],
            vec![Atom::V(x)],
            to,
            v.shape,
            iv,
        );
        if v.dt.is_float() && !to.is_float() {
            self.indicator(out);
        }
        Some(out)
    }

    fn random_shape(&mut self, min_rank: usize) -> Vec<usize> {
        let rank = min_rank + self.pick(4 - min_rank);
        (0..rank).map(|_| self.from(&DIMS)).collect()
    }

    fn iota(&mut self) -> Option<usize> {
        if !self.cfg.ops.allows("iota") {
            return None;
        }
        let mut dt = if self.cfg.ops.smooth {
            self.from(&[Dt::F, Dt::F, Dt::G])
        } else {
            self.from(&[Dt::F, Dt::I32, Dt::F, Dt::G])
        };
        if dt == Dt::G && !self.cfg.mixed {
            dt = Dt::F;
        }
        let shape = self.random_shape(1);
        let dim = self.pick(shape.len());
        let n = shape[dim];
        let out = self.emit(
            "iota",
            vec![
                ("dtype", Attr::D(dt)),
                ("shape", Attr::S(tuple(&shape))),
                ("dim", Attr::S(dim.to_string())),
            ],
            vec![],
            dt,
            shape,
            (0.0, n.saturating_sub(1) as f64),
        );
        Some(out)
    }

    /// A random subset of `0..rank`, sorted, or shuffled one time in four.
    fn subset(&mut self, rank: usize, ok: impl Fn(usize) -> bool) -> Vec<usize> {
        let mut s: Vec<usize> = (0..rank).filter(|&d| ok(d) && self.pick(2) == 1).collect();
        if self.one_in(4) {
            self.shuffle(&mut s);
        }
        s
    }

    fn shuffle(&mut self, s: &mut [usize]) {
        for i in (1..s.len()).rev() {
            let j = self.pick(i + 1);
            s.swap(i, j);
        }
    }

    /// `stop_gradient x`.
    fn stopped(&mut self, x: usize) -> usize {
        let v = self.var(x).clone();
        self.emit(
            "stop_gradient",
            vec![],
            vec![Atom::V(x)],
            v.dt,
            v.shape,
            (v.lo, v.hi),
        )
    }

    fn reduce(&mut self, x: usize) -> Option<usize> {
        let mut x = x;
        let v = self.var(x).clone();
        if v.dt.is_float()
            && !v.shape.is_empty()
            && !self.cfg.ops.smooth
            && self.cfg.ops.has(Op::StopGradient)
            && self.one_in(4)
        {
            // Ties whose members have different tangents: x beside stop_gradient x.
            let s = self.stopped(x);
            let axis = self.pick(v.shape.len());
            let mut shape = v.shape.clone();
            shape[axis] *= 2;
            x = self.emit(
                "concatenate",
                vec![("axis", Attr::S(axis.to_string()))],
                vec![Atom::V(x), Atom::V(s)],
                v.dt,
                shape,
                (v.lo, v.hi),
            );
        }
        let v = self.var(x).clone();
        let names: Vec<&'static str> = if self.cfg.ops.smooth || v.dt == Dt::Bool {
            vec!["reduce_sum"]
        } else {
            vec!["reduce_sum", "reduce_max", "reduce_min"]
        };
        let names: Vec<&'static str> = names
            .into_iter()
            .filter(|n| self.cfg.ops.allows(n))
            .collect();
        if names.is_empty() || v.dt == Dt::Bool {
            return None;
        }
        let name = self.from(&names);
        let finite = self.cfg.ops.finite;
        let axes = self.subset(v.shape.len(), |d| {
            !(finite && name != "reduce_sum" && v.shape[d] == 0)
        });
        let kept: Vec<usize> = (0..v.shape.len()).filter(|d| !axes.contains(d)).collect();
        let shape: Vec<usize> = kept.iter().map(|&d| v.shape[d]).collect();
        let n: usize = axes.iter().map(|&d| v.shape[d]).product();
        let iv = if name == "reduce_sum" {
            iv_times(n, (v.lo, v.hi))
        } else if n == 0 {
            (f64::NEG_INFINITY, f64::INFINITY)
        } else {
            (v.lo, v.hi)
        };
        let out = self.emit(
            name,
            vec![("axes", Attr::S(tuple(&axes)))],
            vec![Atom::V(x)],
            v.dt,
            shape.clone(),
            iv,
        );
        if name != "reduce_sum" {
            // The tie mask: which elements reach the extremum.
            let b = self.probe(
                "broadcast_in_dim",
                vec![
                    ("shape", Attr::S(tuple(&v.shape))),
                    ("dims", Attr::S(tuple(&kept))),
                ],
                vec![Atom::V(out)],
                v.dt,
                v.shape.clone(),
            );
            let m = self.probe(
                "eq",
                vec![],
                vec![Atom::V(x), Atom::V(b)],
                Dt::Bool,
                v.shape,
            );
            self.indicator(m);
        }
        Some(out)
    }

    /// `reduce_window_*` of `x` with random attributes. Max and min windows always read an
    /// element of x (an empty one would be -inf); their indicators are the coordinates of the
    /// element each window selects (`select_and_gather_add` of an `iota` per axis), which stay
    /// the same as long as no window's extremum moves.
    fn reduce_window(&mut self, x: usize) -> Option<usize> {
        let v = self.var(x).clone();
        let names: Vec<&'static str> = if self.cfg.ops.smooth || self.cfg.ops.linear {
            vec!["reduce_window_sum"]
        } else {
            vec![
                "reduce_window_sum",
                "reduce_window_max",
                "reduce_window_min",
            ]
        };
        let names: Vec<&'static str> = names
            .into_iter()
            .filter(|n| self.cfg.ops.allows(n))
            .collect();
        if names.is_empty() || !v.dt.is_numeric() {
            return None;
        }
        let name = self.from(&names);
        let rank = v.shape.len();
        let (mut dims, mut strides, mut pads, mut bds, mut wds, mut shape) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        for &n in &v.shape {
            let w = 1 + self.pick(3);
            let s = self.from(&[1usize, 1, 2, 3]);
            let mut bd = self.from(&[1usize, 1, 2]);
            let wd = self.from(&[1usize, 1, 2]);
            let (mut lo, mut hi) = (self.pick(4) as i64 - 1, self.pick(4) as i64 - 1);
            if name != "reduce_window_sum" {
                // Every window reads an element of x: no holes or padding (windows that would
                // reach past the end are not formed).
                (bd, lo, hi) = (1, 0, 0);
            }
            let dilated = if n == 0 { 0 } else { ((n - 1) * bd + 1) as i64 };
            let span = ((w - 1) * wd + 1) as i64;
            if dilated + lo + hi < 0 {
                hi = -(dilated + lo);
            }
            let padded = dilated + lo + hi;
            let y = if padded >= span {
                (padded - span) as usize / s + 1
            } else {
                0
            };
            dims.push(w);
            strides.push(s);
            pads.push(format!("({lo},{hi})"));
            bds.push(bd);
            wds.push(wd);
            shape.push(y);
        }
        if shape.iter().product::<usize>() > MAX_ELEMS {
            return None;
        }
        let window_size: usize = dims.iter().product();
        let iv = if name == "reduce_window_sum" {
            iv_times(window_size, iv_union((v.lo, v.hi), (0.0, 0.0)))
        } else {
            (v.lo, v.hi)
        };
        let mut attrs = vec![("window_dimensions", Attr::S(tuple(&dims)))];
        // Optional attributes are written or left out at random (their defaults).
        if strides.iter().any(|&s| s != 1) || self.one_in(2) {
            attrs.push(("window_strides", Attr::S(tuple(&strides))));
        }
        if pads.iter().any(|p| p != "(0,0)") || self.one_in(2) {
            attrs.push(("padding", Attr::S(format!("({})", pads.join(",")))));
        }
        if bds.iter().any(|&b| b != 1) || self.one_in(2) {
            attrs.push(("base_dilation", Attr::S(tuple(&bds))));
        }
        if wds.iter().any(|&w| w != 1) || self.one_in(2) {
            attrs.push(("window_dilation", Attr::S(tuple(&wds))));
        }
        let out = self.emit(
            name,
            attrs.clone(),
            vec![Atom::V(x)],
            v.dt,
            shape.clone(),
            iv,
        );
        if name != "reduce_window_sum" && v.dt.is_float() {
            let select = if name == "reduce_window_max" {
                "ge"
            } else {
                "le"
            };
            let mut gather_attrs = vec![("select_prim", Attr::S(select.into()))];
            gather_attrs.extend(attrs);
            for d in 0..rank {
                let position = self.probe(
                    "iota",
                    vec![
                        ("dtype", Attr::D(v.dt)),
                        ("shape", Attr::S(tuple(&v.shape))),
                        ("dim", Attr::S(d.to_string())),
                    ],
                    vec![],
                    v.dt,
                    v.shape.clone(),
                );
                let selected = self.probe(
                    "select_and_gather_add",
                    gather_attrs.clone(),
                    vec![Atom::V(position), Atom::V(x)],
                    v.dt,
                    shape.clone(),
                );
                self.indicator(selected);
            }
        }
        Some(out)
    }

    fn arg(&mut self) -> Option<usize> {
        let x = self.choose(|v| v.dt.is_numeric() && v.shape.iter().any(|&d| d > 0))?;
        let v = self.var(x).clone();
        let axes: Vec<usize> = (0..v.shape.len()).filter(|&d| v.shape[d] > 0).collect();
        let axis = self.from(&axes);
        let names: Vec<&'static str> = ["argmax", "argmin"]
            .into_iter()
            .filter(|n| self.cfg.ops.allows(n))
            .collect();
        if names.is_empty() {
            return None;
        }
        let name = self.from(&names);
        let mut shape = v.shape.clone();
        shape.remove(axis);
        let out = self.emit(
            name,
            vec![("axis", Attr::S(axis.to_string()))],
            vec![Atom::V(x)],
            Dt::I32,
            shape,
            (0.0, (v.shape[axis] - 1) as f64),
        );
        self.indicator(out);
        Some(out)
    }

    fn cumsum(&mut self, x: usize) -> Option<usize> {
        if !self.cfg.ops.allows("cumsum") {
            return None;
        }
        let v = self.var(x).clone();
        let axis = self.pick(v.shape.len());
        let mut attrs = vec![("axis", Attr::S(axis.to_string()))];
        match self.pick(3) {
            1 => attrs.push(("reverse", Attr::S("true".into()))),
            2 => attrs.push(("reverse", Attr::S("false".into()))),
            _ => {}
        }
        let n = v.shape[axis].max(1);
        let iv = iv_union((v.lo, v.hi), iv_times(n, (v.lo, v.hi)));
        Some(self.emit("cumsum", attrs, vec![Atom::V(x)], v.dt, v.shape, iv))
    }

    /// `broadcast_in_dim` of a variable (of rank <= 2) or of a literal.
    fn broadcast(&mut self, x: Option<usize>) -> Option<usize> {
        if !self.cfg.ops.allows("broadcast_in_dim") {
            return None;
        }
        let src: Atom = match x {
            Some(x) => Atom::V(x),
            None if self.one_in(6) => {
                let dt = if self.cfg.ops.smooth {
                    Dt::F
                } else {
                    self.from(&[Dt::F, Dt::I32, Dt::F])
                };
                match dt {
                    Dt::I32 => Atom::L(2.0, Dt::I32, true),
                    _ => Atom::L(self.from(&LITERALS), dt, true),
                }
            }
            None => Atom::V(self.choose(|v| v.shape.len() <= 2)?),
        };
        let (dt, xs) = (self.atom_dt(&src), self.atom_shape(&src));
        let rank = xs.len() + self.pick(4 - xs.len());
        let mut dims: Vec<usize> = (0..rank).collect();
        // Drop rank - xs.len() positions at random; the rest, in order, are `dims`.
        for _ in 0..rank - xs.len() {
            let i = self.pick(dims.len());
            dims.remove(i);
        }
        let mut shape = vec![0; rank];
        for (j, s) in shape.iter_mut().enumerate() {
            *s = match dims.iter().position(|&d| d == j) {
                Some(i) if xs[i] != 1 => xs[i],
                Some(_) => self.from(&[1, 2, 3]),
                None => self.from(&[2, 1, 3, 2, 1, 3, 2, 3, 1, 2, 3, 0]),
            };
        }
        if shape.iter().product::<usize>() > MAX_ELEMS {
            return None;
        }
        let iv = self.iv(&src);
        Some(self.emit(
            "broadcast_in_dim",
            vec![
                ("shape", Attr::S(tuple(&shape))),
                ("dims", Attr::S(tuple(&dims))),
            ],
            vec![src],
            dt,
            shape,
            iv,
        ))
    }

    fn reshape(&mut self, x: usize) -> Option<usize> {
        if !self.cfg.ops.allows("reshape") {
            return None;
        }
        let v = self.var(x).clone();
        let n = v.numel();
        let rank = self.pick(4);
        let shape: Vec<usize> = if n == 0 {
            let rank = rank.max(1);
            let zero = self.pick(rank);
            (0..rank)
                .map(|d| if d == zero { 0 } else { self.from(&[1, 2, 3]) })
                .collect()
        } else {
            let rank = if n > 1 { rank.max(1) } else { rank };
            let mut shape = vec![1; rank];
            let mut m = n;
            let mut f = 2;
            while m > 1 {
                while m % f == 0 {
                    let slot = self.pick(rank);
                    shape[slot] *= f;
                    m /= f;
                }
                f += 1;
            }
            shape
        };
        Some(self.emit(
            "reshape",
            vec![("shape", Attr::S(tuple(&shape)))],
            vec![Atom::V(x)],
            v.dt,
            shape,
            (v.lo, v.hi),
        ))
    }

    fn transpose(&mut self, x: usize) -> Option<usize> {
        if !self.cfg.ops.allows("transpose") {
            return None;
        }
        let v = self.var(x).clone();
        let mut perm: Vec<usize> = (0..v.shape.len()).collect();
        self.shuffle(&mut perm);
        let shape: Vec<usize> = perm.iter().map(|&p| v.shape[p]).collect();
        Some(self.emit(
            "transpose",
            vec![("perm", Attr::S(tuple(&perm)))],
            vec![Atom::V(x)],
            v.dt,
            shape,
            (v.lo, v.hi),
        ))
    }

    fn squeeze(&mut self, x: usize) -> Option<usize> {
        if !self.cfg.ops.allows("squeeze") {
            return None;
        }
        let v = self.var(x).clone();
        let dims = self.subset(v.shape.len(), |d| v.shape[d] == 1);
        let shape: Vec<usize> = (0..v.shape.len())
            .filter(|d| !dims.contains(d))
            .map(|d| v.shape[d])
            .collect();
        Some(self.emit(
            "squeeze",
            vec![("dims", Attr::S(tuple(&dims)))],
            vec![Atom::V(x)],
            v.dt,
            shape,
            (v.lo, v.hi),
        ))
    }

    fn expand_dims(&mut self, x: usize) -> Option<usize> {
        if !self.cfg.ops.allows("expand_dims") {
            return None;
        }
        let v = self.var(x).clone();
        let k = 1 + self.pick(3 - v.shape.len());
        let rank = v.shape.len() + k;
        let mut all: Vec<usize> = (0..rank).collect();
        self.shuffle(&mut all);
        let mut dims: Vec<usize> = all[..k].to_vec();
        if !self.one_in(4) {
            dims.sort_unstable();
        }
        let mut rest = v.shape.iter();
        let shape: Vec<usize> = (0..rank)
            .map(|d| {
                if dims.contains(&d) {
                    1
                } else {
                    *rest.next().unwrap()
                }
            })
            .collect();
        Some(self.emit(
            "expand_dims",
            vec![("dims", Attr::S(tuple(&dims)))],
            vec![Atom::V(x)],
            v.dt,
            shape,
            (v.lo, v.hi),
        ))
    }

    fn rev(&mut self, x: usize) -> Option<usize> {
        if !self.cfg.ops.allows("rev") {
            return None;
        }
        let v = self.var(x).clone();
        let dims = self.subset(v.shape.len(), |_| true);
        Some(self.emit(
            "rev",
            vec![("dims", Attr::S(tuple(&dims)))],
            vec![Atom::V(x)],
            v.dt,
            v.shape,
            (v.lo, v.hi),
        ))
    }

    fn slice(&mut self, x: usize) -> Option<usize> {
        if !self.cfg.ops.allows("slice") {
            return None;
        }
        let v = self.var(x).clone();
        let (mut start, mut limit, mut strides, mut shape) = (vec![], vec![], vec![], vec![]);
        for &n in &v.shape {
            let s = self.pick(n + 1).min(self.pick(n + 1));
            let l = s + (n - s) - self.pick(n - s + 1).min(self.pick(n - s + 1));
            let st = self.from(&[1, 2, 1, 3]);
            start.push(s);
            limit.push(l);
            strides.push(st);
            shape.push((l - s).div_ceil(st));
        }
        let mut attrs = vec![
            ("start", Attr::S(tuple(&start))),
            ("limit", Attr::S(tuple(&limit))),
        ];
        if strides.iter().any(|&s| s != 1) || self.one_in(4) {
            attrs.push(("strides", Attr::S(tuple(&strides))));
        }
        Some(self.emit("slice", attrs, vec![Atom::V(x)], v.dt, shape, (v.lo, v.hi)))
    }

    /// `pad x v`; `value` forces the padding value.
    fn pad(&mut self, x: usize, value: Option<Atom>) -> Option<usize> {
        if !self.cfg.ops.allows("pad") {
            return None;
        }
        let v = self.var(x).clone();
        let (mut low, mut high, mut interior, mut shape) = (vec![], vec![], vec![], vec![]);
        for &n in &v.shape {
            let int = self.from(&[0usize, 0, 1, 2]);
            let base = (n + n.saturating_sub(1) * int) as i64;
            let lo = self.pick(5) as i64 - 2;
            let mut hi = self.pick(5) as i64 - 2;
            if lo + hi + base < 0 {
                hi = -(lo + base);
            }
            low.push(lo);
            high.push(hi);
            interior.push(int);
            shape.push((lo + hi + base) as usize);
        }
        if shape.iter().product::<usize>() > MAX_ELEMS {
            return None;
        }
        let value = match value {
            Some(a) => a,
            None => match v.dt {
                Dt::Bool => Atom::B(self.one_in(2)),
                Dt::I32 => Atom::L(self.from(&[0.0, -1.0]), Dt::I32, self.one_in(2)),
                dt => match self.choose(|w| w.dt == dt && w.shape.is_empty()) {
                    Some(s) if self.one_in(3) => Atom::V(self.moderate(s)),
                    _ => {
                        if self.pick(2) == 0 {
                            Atom::L(0.0, dt, self.one_in(3))
                        } else {
                            self.literal(dt)
                        }
                    }
                },
            },
        };
        let iv = iv_union((v.lo, v.hi), self.iv(&value));
        let mut attrs = vec![
            ("low", Attr::S(tuple_i(&low))),
            ("high", Attr::S(tuple_i(&high))),
        ];
        if interior.iter().any(|&i| i != 0) || self.one_in(3) {
            attrs.push(("interior", Attr::S(tuple(&interior))));
        }
        Some(self.emit("pad", attrs, vec![Atom::V(x), value], v.dt, shape, iv))
    }

    /// `concatenate` of `x` with 0-2 variables that fit (and satisfy `ok`).
    fn concatenate(&mut self, x: usize, ok: &dyn Fn(&VarInfo) -> bool) -> Option<usize> {
        if !self.cfg.ops.allows("concatenate") {
            return None;
        }
        let v = self.var(x).clone();
        let axis = self.pick(v.shape.len());
        let fits = |w: &VarInfo| {
            w.dt == v.dt
                && w.shape.len() == v.shape.len()
                && (0..v.shape.len()).all(|d| d == axis || w.shape[d] == v.shape[d])
                && ok(w)
        };
        let mut args = vec![x];
        for _ in 0..self.pick(3) {
            let y = self.choose(fits).unwrap_or(x);
            if self.pick(2) == 0 {
                args.push(y);
            } else {
                args.insert(0, y);
            }
        }
        let mut shape = v.shape.clone();
        shape[axis] = args.iter().map(|&a| self.var(a).shape[axis]).sum();
        if shape.iter().product::<usize>() > MAX_ELEMS {
            return None;
        }
        let iv = args.iter().fold((v.lo, v.hi), |acc, &a| {
            iv_union(acc, (self.var(a).lo, self.var(a).hi))
        });
        Some(self.emit(
            "concatenate",
            vec![("axis", Attr::S(axis.to_string()))],
            args.into_iter().map(Atom::V).collect(),
            v.dt,
            shape,
            iv,
        ))
    }

    fn dot_general(&mut self, x: usize, y: usize) -> Option<usize> {
        if !self.cfg.ops.allows("dot_general") {
            return None;
        }
        let (vx, vy) = (self.var(x).clone(), self.var(y).clone());
        let (rx, ry) = (vx.shape.len(), vy.shape.len());
        let (mut ux, mut uy) = (vec![false; rx], vec![false; ry]);
        let pairs = |b: &mut Self, n: usize, ux: &mut Vec<bool>, uy: &mut Vec<bool>| {
            let mut out: (Vec<usize>, Vec<usize>) = (vec![], vec![]);
            for _ in 0..n {
                let cands: Vec<(usize, usize)> = (0..rx)
                    .flat_map(|i| (0..ry).map(move |j| (i, j)))
                    .filter(|&(i, j)| !ux[i] && !uy[j] && vx.shape[i] == vy.shape[j])
                    .collect();
                if cands.is_empty() {
                    break;
                }
                let (i, j) = b.from(&cands);
                ux[i] = true;
                uy[j] = true;
                out.0.push(i);
                out.1.push(j);
            }
            out
        };
        let nb = self.pick(3);
        let batch = pairs(self, nb, &mut ux, &mut uy);
        let nc = self.pick(3);
        let mut contract = pairs(self, nc, &mut ux, &mut uy);
        let rank = |batch: &(Vec<usize>, Vec<usize>), contract: &(Vec<usize>, Vec<usize>)| {
            batch.0.len()
                + (rx - batch.0.len() - contract.0.len())
                + (ry - batch.0.len() - contract.0.len())
        };
        while rank(&batch, &contract) > 3 {
            let more = pairs(self, 1, &mut ux, &mut uy);
            if more.0.is_empty() {
                return None;
            }
            contract.0.extend(more.0);
            contract.1.extend(more.1);
        }
        let free = |r: usize, c: &[usize], b: &[usize]| -> Vec<usize> {
            (0..r)
                .filter(|d| !c.contains(d) && !b.contains(d))
                .collect()
        };
        let mut shape: Vec<usize> = batch.0.iter().map(|&d| vx.shape[d]).collect();
        shape.extend(free(rx, &contract.0, &batch.0).iter().map(|&d| vx.shape[d]));
        shape.extend(free(ry, &contract.1, &batch.1).iter().map(|&d| vy.shape[d]));
        if shape.iter().product::<usize>() > MAX_ELEMS {
            return None;
        }
        let k: usize = contract.0.iter().map(|&d| vx.shape[d]).product();
        let iv = iv_times(k, iv_mul((vx.lo, vx.hi), (vy.lo, vy.hi)));
        let mut attrs = vec![(
            "contract",
            Attr::S(format!("({},{})", tuple(&contract.0), tuple(&contract.1))),
        )];
        if !batch.0.is_empty() || self.one_in(2) {
            attrs.push((
                "batch",
                Attr::S(format!("({},{})", tuple(&batch.0), tuple(&batch.1))),
            ));
        }
        Some(self.emit(
            "dot_general",
            attrs,
            vec![Atom::V(x), Atom::V(y)],
            vx.dt,
            shape,
            iv,
        ))
    }

    /// `conv_general_dilated` of `[N, C, S]` and `[O, I, K]` (see `conv_kernel_fits`): one
    /// spatial axis, since generated values have rank 3 at most; stride, dilations and padding
    /// (negative too) random; feature groups `C / I`, or batch groups when `I = C` and the
    /// sizes allow; the optional attributes sometimes left at their defaults.
    fn conv(&mut self, x: usize, y: usize) -> Option<usize> {
        if !self.cfg.ops.allows("conv_general_dilated") {
            return None;
        }
        let (vx, vy) = (self.var(x).clone(), self.var(y).clone());
        if vx.dt != vy.dt || vx.shape.len() != 3 || !conv_kernel_fits(vx.shape[1], &vy.shape) {
            return None;
        }
        let (n, c, size) = (vx.shape[0], vx.shape[1], vx.shape[2]);
        let (o, i, k) = (vy.shape[0], vy.shape[1], vy.shape[2]);
        let groups = c.checked_div(i).unwrap_or(1);
        let batch_choices: Vec<usize> = (2..=4).filter(|b| n % b == 0 && o % b == 0).collect();
        let batch_groups = if groups == 1 && !batch_choices.is_empty() && self.one_in(3) {
            self.from(&batch_choices)
        } else {
            1
        };
        let stride = 1 + self.pick(2);
        let (ld, rd) = (1 + self.pick(2), 1 + self.pick(2));
        let (lo, hi) = (self.pick(4) as i64 - 1, self.pick(4) as i64 - 1);
        let dilated = if size == 0 { 0 } else { (size - 1) * ld + 1 };
        let padded = usize::try_from(dilated as i64 + lo + hi).ok()?;
        let extent = if k == 0 { 0 } else { (k - 1) * rd + 1 };
        let len = if padded >= extent {
            (padded - extent) / stride + 1
        } else {
            0
        };
        let shape = vec![n / batch_groups, o, len];
        if shape.iter().product::<usize>() > MAX_ELEMS {
            return None;
        }
        // Sums of at most I·K products (padding and holes add nothing).
        let terms = iv_times(i * k, iv_mul((vx.lo, vx.hi), (vy.lo, vy.hi)));
        let iv = iv_union((0.0, 0.0), terms);
        let mut attrs = vec![
            ("window_strides", Attr::S(format!("({stride})"))),
            ("padding", Attr::S(format!("(({lo},{hi}))"))),
        ];
        let defaults = self.one_in(2);
        for (name, value, default) in [("lhs_dilation", ld, 1), ("rhs_dilation", rd, 1)] {
            if value != default || !defaults {
                attrs.push((name, Attr::S(format!("({value})"))));
            }
        }
        for (name, value) in [
            ("feature_group_count", groups),
            ("batch_group_count", batch_groups),
        ] {
            if value != 1 || !defaults {
                attrs.push((name, Attr::S(value.to_string())));
            }
        }
        Some(self.emit(
            "conv_general_dilated",
            attrs,
            vec![Atom::V(x), Atom::V(y)],
            vx.dt,
            shape,
            iv,
        ))
    }

    fn int_arith(&mut self) -> Option<usize> {
        let a = self.choose(|v| v.dt == Dt::I32)?;
        let v = self.var(a).clone();
        let names: Vec<&'static str> = [
            "add", "sub", "mul", "div", "max", "min", "neg", "abs", "sign",
        ]
        .into_iter()
        .filter(|n| self.cfg.ops.allows(n))
        .collect();
        if names.is_empty() {
            return None;
        }
        let name = self.from(&names);
        if matches!(name, "neg" | "abs" | "sign") {
            let iv = match name {
                "neg" => (-v.hi, -v.lo),
                "abs" => (0.0, v.mag()),
                _ => (-1.0, 1.0),
            };
            return Some(self.emit(name, vec![], vec![Atom::V(a)], Dt::I32, v.shape, iv));
        }
        let b = self.partner(a, true);
        let (x, y) = if self.one_in(2) {
            (b, Atom::V(a))
        } else {
            (Atom::V(a), b)
        };
        let (ix, iy) = (self.iv(&x), self.iv(&y));
        let (name, iv) = match name {
            "add" => (name, (ix.0 + iy.0, ix.1 + iy.1)),
            "sub" => (name, (ix.0 - iy.1, ix.1 - iy.0)),
            "mul"
                if !self.cfg.ops.finite
                    || iv_mul(ix, iy).0.abs().max(iv_mul(ix, iy).1.abs()) < 1e6 =>
            {
                (name, iv_mul(ix, iy))
            }
            "mul" => ("add", (ix.0 + iy.0, ix.1 + iy.1)),
            "div" => {
                let m = ix.0.abs().max(ix.1.abs()) + 1.0;
                (name, (-m, m))
            }
            "max" => (name, (ix.0.max(iy.0), ix.1.max(iy.1))),
            _ => ("min", (ix.0.min(iy.0), ix.1.min(iy.1))),
        };
        let shape = self.elementwise_shape(&x, &y);
        Some(self.emit(name, vec![], vec![x, y], Dt::I32, shape, iv))
    }

    // --- linear programs ----------------------------------------------------------------------

    /// A linear operand.
    fn lin_operand(&mut self, ok: impl Fn(&VarInfo) -> bool) -> Option<usize> {
        let v = self.choose(|v| v.kind == Kind::Lin && v.dt.is_float() && ok(v))?;
        Some(self.moderate(v))
    }

    /// A non-linear float value (a literal when `allow_literal` and one in three, or there is none).
    fn nonlin_operand(&mut self, dt: Dt, shape: &[usize], allow_literal: bool) -> Atom {
        let c = self.choose(|v| {
            v.dt == dt
                && (v.kind == Kind::Input || v.kind == Kind::Const)
                && (v.shape == shape || v.shape.is_empty() || shape.is_empty())
        });
        match c {
            Some(c) if !(allow_literal && self.one_in(3)) => Atom::V(self.moderate(c)),
            _ => Atom::L(self.from(&NONZERO_LITERALS), dt, self.one_in(3)),
        }
    }

    fn linear_op(&mut self, op: Op) -> Option<usize> {
        match op {
            Op::Unary => {
                if self.pick(2) == 0 {
                    let x = self.lin_operand(|_| true)?;
                    let v = self.var(x).clone();
                    Some(self.emit(
                        "neg",
                        vec![],
                        vec![Atom::V(x)],
                        v.dt,
                        v.shape,
                        (-v.hi, -v.lo),
                    ))
                } else {
                    // A non-linear operation on the other inputs.
                    let x = self.choose(|v| v.dt.is_float() && v.kind == Kind::Input)?;
                    let x = self.moderate(x);
                    self.unary(x)
                }
            }
            Op::Binary => {
                let a = self.lin_operand(|_| true)?;
                let v = self.var(a).clone();
                match self.pick(4) {
                    0 => {
                        // Linear + linear (or a known zero).
                        let b = self
                            .choose(|w| {
                                (w.kind == Kind::Lin || w.kind == Kind::Zero)
                                    && w.dt == v.dt
                                    && (w.shape == v.shape
                                        || w.shape.is_empty()
                                        || v.shape.is_empty())
                            })
                            .unwrap_or(a);
                        let name = self.from(&["add", "sub"]);
                        let (x, y) = if self.one_in(2) { (b, a) } else { (a, b) };
                        let (ix, iy) = (self.iv(&Atom::V(x)), self.iv(&Atom::V(y)));
                        let iv = if name == "add" {
                            (ix.0 + iy.0, ix.1 + iy.1)
                        } else {
                            (ix.0 - iy.1, ix.1 - iy.0)
                        };
                        let shape = self.elementwise_shape(&Atom::V(x), &Atom::V(y));
                        Some(self.emit(name, vec![], vec![Atom::V(x), Atom::V(y)], v.dt, shape, iv))
                    }
                    1 => {
                        // Linear / non-linear, kept away from zero.
                        let c = self.nonlin_operand(v.dt, &v.shape, true);
                        let c = match c {
                            Atom::V(c) => Atom::V(self.guard_pos(c)),
                            lit => lit,
                        };
                        let ic = self.iv(&c);
                        let iv = iv_mul((v.lo, v.hi), iv_of(&[1.0 / ic.0, 1.0 / ic.1]));
                        let shape = self.elementwise_shape(&Atom::V(a), &c);
                        Some(self.emit("div", vec![], vec![Atom::V(a), c], v.dt, shape, iv))
                    }
                    _ => {
                        let c = self.nonlin_operand(v.dt, &v.shape, true);
                        let iv = iv_mul((v.lo, v.hi), self.iv(&c));
                        let shape = self.elementwise_shape(&Atom::V(a), &c);
                        let args = if self.one_in(2) {
                            vec![c, Atom::V(a)]
                        } else {
                            vec![Atom::V(a), c]
                        };
                        Some(self.emit("mul", vec![], args, v.dt, shape, iv))
                    }
                }
            }
            Op::Convert => {
                let x = self.lin_operand(|_| true)?;
                let v = self.var(x).clone();
                let to = if v.dt == Dt::G || !self.cfg.mixed {
                    Dt::F
                } else {
                    self.from(&[Dt::G, Dt::F])
                };
                Some(self.emit(
                    "convert_element_type",
                    vec![("dtype", Attr::D(to))],
                    vec![Atom::V(x)],
                    to,
                    v.shape,
                    (v.lo, v.hi),
                ))
            }
            Op::Reduce => {
                let x = self.lin_operand(|_| true)?;
                self.reduce(x)
            }
            Op::ReduceWindow => {
                let x = self.lin_operand(|v| !v.shape.is_empty())?;
                self.reduce_window(x)
            }
            Op::Cumsum => {
                let x = self.lin_operand(|v| !v.shape.is_empty())?;
                self.cumsum(x)
            }
            Op::BroadcastInDim => {
                if self.one_in(4) {
                    // A known zero, to be added or concatenated later.
                    let dt = if self.cfg.mixed {
                        self.from(&[Dt::F, Dt::G])
                    } else {
                        Dt::F
                    };
                    let shape = self.random_shape(0);
                    let out = self.emit(
                        "broadcast_in_dim",
                        vec![
                            ("shape", Attr::S(tuple(&shape))),
                            ("dims", Attr::S("()".into())),
                        ],
                        vec![Atom::L(0.0, dt, true)],
                        dt,
                        shape,
                        (0.0, 0.0),
                    );
                    self.p.vars[out].kind = Kind::Zero;
                    return Some(out);
                }
                let x = self.lin_operand(|v| v.shape.len() <= 2)?;
                self.broadcast(Some(x))
            }
            Op::Reshape => {
                let x = self.lin_operand(|_| true)?;
                self.reshape(x)
            }
            Op::Transpose => {
                let x = self.lin_operand(|_| true)?;
                self.transpose(x)
            }
            Op::Squeeze => {
                let x = self.lin_operand(|v| v.shape.contains(&1))?;
                self.squeeze(x)
            }
            Op::ExpandDims => {
                let x = self.lin_operand(|v| v.shape.len() <= 2)?;
                self.expand_dims(x)
            }
            Op::Rev => {
                let x = self.lin_operand(|_| true)?;
                self.rev(x)
            }
            Op::Slice => {
                let x = self.lin_operand(|_| true)?;
                self.slice(x)
            }
            Op::Pad => {
                let x = self.lin_operand(|_| true)?;
                let dt = self.var(x).dt;
                let value = match self
                    .choose(|w| w.kind == Kind::Lin && w.dt == dt && w.shape.is_empty())
                {
                    Some(s) if self.one_in(3) => Atom::V(s),
                    _ => Atom::L(0.0, dt, self.one_in(2)),
                };
                self.pad(x, Some(value))
            }
            Op::Concatenate => {
                let x = self.lin_operand(|v| !v.shape.is_empty())?;
                self.concatenate(x, &|w| w.kind == Kind::Lin || w.kind == Kind::Zero)
            }
            Op::DotGeneral => {
                let x = self.lin_operand(|_| true)?;
                let dt = self.var(x).dt;
                let c = match self
                    .choose(|v| v.dt == dt && (v.kind == Kind::Input || v.kind == Kind::Const))
                {
                    Some(c) => c,
                    None => {
                        let shape = self.random_shape(1);
                        let dim = self.pick(shape.len());
                        let n = shape[dim];
                        self.emit(
                            "iota",
                            vec![
                                ("dtype", Attr::D(dt)),
                                ("shape", Attr::S(tuple(&shape))),
                                ("dim", Attr::S(dim.to_string())),
                            ],
                            vec![],
                            dt,
                            shape,
                            (0.0, n.saturating_sub(1) as f64),
                        )
                    }
                };
                let c = self.moderate(c);
                if self.one_in(2) {
                    self.dot_general(c, x)
                } else {
                    self.dot_general(x, c)
                }
            }
            Op::Conv => {
                // Linear in one operand, the other a non-linear value.
                let x = self.lin_operand(|v| v.shape.len() == 3)?;
                let (dt, shape) = (self.var(x).dt, self.var(x).shape.clone());
                let nonlinear =
                    |v: &VarInfo| v.dt == dt && (v.kind == Kind::Input || v.kind == Kind::Const);
                if self.one_in(2) {
                    let w =
                        self.choose(|v| nonlinear(v) && conv_kernel_fits(shape[1], &v.shape))?;
                    let w = self.moderate(w);
                    self.conv(x, w)
                } else {
                    let l = self.choose(|v| {
                        nonlinear(v) && v.shape.len() == 3 && conv_kernel_fits(v.shape[1], &shape)
                    })?;
                    let l = self.moderate(l);
                    self.conv(l, x)
                }
            }
            Op::Literal => self.literal_eqn(),
            Op::Select => {
                let a = self.lin_operand(|_| true)?;
                let v = self.var(a).clone();
                let b = self
                    .choose(|w| {
                        (w.kind == Kind::Lin || w.kind == Kind::Zero)
                            && w.dt == v.dt
                            && w.shape == v.shape
                    })
                    .unwrap_or(a);
                let p = self.predicate(&v.shape, None).unwrap_or(Atom::B(true));
                let iv = iv_union((v.lo, v.hi), self.iv(&Atom::V(b)));
                let (x, y) = if self.one_in(2) { (b, a) } else { (a, b) };
                Some(self.emit(
                    "select_n",
                    vec![],
                    vec![p, Atom::V(x), Atom::V(y)],
                    v.dt,
                    v.shape,
                    iv,
                ))
            }
            _ => None,
        }
    }

    // --- parameters and outputs ---------------------------------------------------------------

    fn param(&mut self, name: String, shape: Vec<usize>, kind: Kind) -> usize {
        let v = self.new_var(Dt::F, shape, INPUT_RANGE, kind, false);
        self.p.vars[v].name = name;
        self.p.params.push(v);
        v
    }

    fn finish_outputs(&mut self, scalar: bool) {
        let lin = self.cfg.ops.linear;
        let is_out = |v: &VarInfo| v.dt.is_float() && (!lin || v.kind == Kind::Lin);
        if scalar && !lin {
            // Sum of every float value nothing else uses (at most four, the latest).
            let mut used = vec![false; self.p.vars.len()];
            for e in &self.p.eqns {
                if self.p.vars[e.out].probe {
                    continue;
                }
                for a in &e.args {
                    if let Atom::V(v) = a {
                        used[*v] = true;
                    }
                }
            }
            let leaves: Vec<usize> = (0..self.p.vars.len())
                .filter(|&v| !used[v] && !self.p.vars[v].probe && self.p.vars[v].dt.is_float())
                .collect();
            let mut leaves = leaves[leaves.len().saturating_sub(4)..].to_vec();
            if leaves.is_empty() {
                let last = (0..self.p.vars.len())
                    .rev()
                    .find(|&v| !self.p.vars[v].probe && self.p.vars[v].dt.is_float());
                leaves.push(last.expect("a float parameter"));
            }
            let mut total: Option<usize> = None;
            for leaf in leaves {
                let mut s = leaf;
                let v = self.var(s).clone();
                if !v.shape.is_empty() {
                    let axes: Vec<usize> = (0..v.shape.len()).collect();
                    let iv = iv_times(v.numel(), (v.lo, v.hi));
                    s = self.emit(
                        "reduce_sum",
                        vec![("axes", Attr::S(tuple(&axes)))],
                        vec![Atom::V(s)],
                        v.dt,
                        vec![],
                        iv,
                    );
                }
                if v.dt == Dt::G {
                    let iv = (self.var(s).lo, self.var(s).hi);
                    s = self.emit(
                        "convert_element_type",
                        vec![("dtype", Attr::D(Dt::F))],
                        vec![Atom::V(s)],
                        Dt::F,
                        vec![],
                        iv,
                    );
                }
                s = self.moderate(s);
                total = Some(match total {
                    None => s,
                    Some(t) => {
                        let iv = (
                            self.var(t).lo + self.var(s).lo,
                            self.var(t).hi + self.var(s).hi,
                        );
                        self.emit(
                            "add",
                            vec![],
                            vec![Atom::V(t), Atom::V(s)],
                            Dt::F,
                            vec![],
                            iv,
                        )
                    }
                });
            }
            self.p.outputs = vec![Atom::V(total.expect("a float value"))];
            return;
        }
        if !lin && self.one_in(16) {
            self.p.outputs.push(Atom::L(1.5, Dt::F, true));
        } else {
            // The latest value that depends on an input, else the latest.
            let outs: Vec<usize> = (0..self.p.vars.len())
                .filter(|&v| !self.p.vars[v].probe && is_out(&self.p.vars[v]))
                .collect();
            let last = outs
                .iter()
                .rev()
                .find(|&&v| self.p.vars[v].kind != Kind::Const)
                .or(outs.last())
                .copied();
            self.p.outputs.push(Atom::V(last.expect("a float value")));
        }
        if !scalar && self.one_in(3) {
            let other = self.choose(is_out).expect("a float value");
            if self.one_in(2) {
                self.p.outputs.push(Atom::V(other));
            } else {
                self.p.outputs.insert(0, Atom::V(other));
            }
        }
        if !scalar && self.cfg.int_outputs && self.one_in(3) {
            if let Some(v) = self.choose(|v| !v.dt.is_float()) {
                let at = self.pick(self.p.outputs.len() + 1);
                self.p.outputs.insert(at, Atom::V(v));
            }
        }
    }
}

impl Program {
    /// Builds the program a recipe describes.
    pub fn build(cfg: &GenConfig, recipe: &Recipe) -> Program {
        let mut b = Builder {
            cfg,
            p: Program {
                float: Float::F64,
                style: Style::default(),
                vars: vec![],
                params: vec![],
                eqns: vec![],
                outputs: vec![],
                indicators: vec![],
                linear_params: vec![],
            },
            xs: recipe.header.clone(),
            i: 0,
        };
        b.p.float = cfg.dtype.unwrap_or_else(|| {
            if b.pick(2) == 0 {
                Float::F64
            } else {
                Float::F32
            }
        });
        b.i = 28;
        if b.pick(2) == 1 {
            b.p.style = Style {
                untyped_every: b.from(&[0, 2, 3]),
                trailing_comma: b.pick(2) == 1,
                comments: b.pick(2) == 1,
                split_attrs: b.pick(2) == 1,
                wide: b.pick(2) == 1,
                plain_numbers: b.pick(2) == 1,
                odd_names: b.pick(2) == 1,
            };
        }
        b.i = 1;
        let scalar = cfg.scalar.unwrap_or_else(|| b.pick(2) == 1) && !cfg.ops.linear;
        let (n_lin, n_other) = if cfg.ops.linear {
            (1 + b.pick(2), b.pick(2))
        } else {
            (0, 1 + b.pick(3))
        };
        let mut kinds: Vec<Kind> = vec![Kind::Lin; n_lin];
        kinds.extend(vec![Kind::Input; n_other]);
        b.shuffle_kinds(&mut kinds);
        for (i, kind) in kinds.into_iter().enumerate() {
            let shape = b.random_shape(0);
            let name = if b.p.style.odd_names {
                odd_name(b.p.vars.len())
            } else {
                format!("x{i}")
            };
            b.param(name, shape, kind);
            if kind == Kind::Lin {
                b.p.linear_params.push(i);
            }
        }
        for step in &recipe.steps {
            if b.n_main_eqns() >= cfg.max_eqns {
                break;
            }
            b.xs = step.clone();
            b.i = 0;
            b.step();
        }
        b.xs = recipe.header.clone();
        b.i = 24;
        b.finish_outputs(scalar);
        b.p
    }
}

impl Builder<'_> {
    fn shuffle_kinds(&mut self, k: &mut [Kind]) {
        for i in (1..k.len()).rev() {
            let j = self.pick(i + 1);
            k.swap(i, j);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Inputs and arithmetic on values.

/// A deterministic generator (xorshift64*), so inputs reproduce from a seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
        lo + (hi - lo) * (bits as f64 / (1u64 << 53) as f64)
    }
}

/// Random values of the given (float) types, uniform in [lo, hi]. f32 values are drawn as f32,
/// so [`widen`] gives the same numbers in f64.
pub fn random_values(types: &[Type], rng: &mut Rng, lo: f64, hi: f64) -> Vec<Value> {
    types
        .iter()
        .map(|t| {
            let n: usize = t.shape.iter().product();
            let xs: Vec<f64> = (0..n).map(|_| rng.uniform(lo, hi)).collect();
            from_f64(t.dtype, &t.shape, &xs)
        })
        .collect()
}

/// A value of dtype `dtype` (f32 or f64) holding `xs`.
pub fn from_f64(dtype: DType, shape: &[usize], xs: &[f64]) -> Value {
    match dtype {
        DType::F32 => Value::F32(
            ArrayD::from_shape_vec(IxDyn(shape), xs.iter().map(|&x| x as f32).collect()).unwrap(),
        ),
        DType::F64 => Value::F64(ArrayD::from_shape_vec(IxDyn(shape), xs.to_vec()).unwrap()),
        other => panic!("from_f64: {other} is not a float dtype"),
    }
}

/// The same numbers as f64.
pub fn widen(v: &Value) -> Value {
    from_f64(DType::F64, v.shape(), &v.to_f64_vec())
}

/// `x + h t`, elementwise, in x's dtypes (computed in f64).
pub fn axpy(x: &[Value], h: f64, t: &[Value]) -> Vec<Value> {
    x.iter()
        .zip(t)
        .map(|(x, t)| {
            let xs: Vec<f64> = x
                .to_f64_vec()
                .iter()
                .zip(t.to_f64_vec())
                .map(|(a, b)| a + h * b)
                .collect();
            from_f64(x.dtype(), x.shape(), &xs)
        })
        .collect()
}

/// `<a, b>` summed over every value, and the sum of `|a_i b_i|` (the scale of its rounding).
pub fn dot(a: &[Value], b: &[Value]) -> (f64, f64) {
    assert_eq!(a.len(), b.len(), "dot of lists of different lengths");
    let mut s = 0.0;
    let mut abs = 0.0;
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.shape(), y.shape(), "dot of values of different shapes");
        for (p, q) in x.to_f64_vec().iter().zip(y.to_f64_vec()) {
            s += p * q;
            abs += (p * q).abs();
        }
    }
    (s, abs)
}

/// The largest magnitude among the float values (infinite if one is not finite, NaN counted
/// as infinite).
pub fn max_abs(vs: &[Value]) -> f64 {
    vs.iter()
        .filter(|v| v.dtype().is_float())
        .flat_map(|v| v.to_f64_vec())
        .map(|x| if x.is_nan() { f64::INFINITY } else { x.abs() })
        .fold(0.0, f64::max)
}

/// Values as text, for failure messages.
pub fn show(vs: &[Value]) -> String {
    vs.iter()
        .enumerate()
        .map(|(i, v)| format!("  [{i}] {}: {:?}", v.ty(), v.to_f64_vec()))
        .collect::<Vec<_>>()
        .join("\n")
}
