//! traceform's vocabulary: element types and static shapes, the closed primitive enum with its
//! shape rules, the compact graph IR and the strict builder every producer goes through, its
//! verifier, the text form (printer and parser, exactly as `shared/spec/ir-text.md` defines
//! it), the cheap passes (dead code, common subexpressions), the analyses later stages share
//! (live intervals, def-use), the petgraph view, and tracing from Rust closures.
//!
//! Nothing heavy lives here: no ndarray, no egg, no Cranelift.

mod analysis;
mod attrs;
mod builder;
mod composite;
mod conv;
mod func;
mod graph;
mod intern;
mod parse;
mod passes;
mod pool;
mod prim;
mod print;
mod shape;
mod trace;
mod types;
mod verify;
mod window;

pub use analysis::{peak_live_bytes, Def, DefUse, Liveness};
pub use attrs::{prim_attrs, prim_from_parts, AttrError, AttrValue};
pub use builder::{BuildError, Builder};
pub use conv::{axis_geometry, dilated_size, AxisGeometry, ConvDims, ConvPadding, PadPairs};
pub use func::{Atom, Eqn, Func, Literal, Loc, Module, Names, PrimId, PrimTable, Var};
pub use graph::{dataflow_graph, to_dot, Node};
pub use intern::{Id, Table};
pub use parse::{parse_func, parse_module, ParseError};
pub use passes::{
    eliminate_common_subexpressions, eliminate_dead_code, live_equations, schedule_for_memory,
};
pub use pool::AvgPoolDivisor;
pub use prim::{Axes, BinaryOp, CompareOp, DotDims, Linearity, OpClass, Prim, PrimKind, UnaryOp};
pub use print::{
    format_float, format_literal, format_prim, print_func, print_module, write_func, Namer,
};
pub use shape::{dot_free_axes, infer_type, literal_dtype, TypeError};
pub use trace::{
    innermost_trace, trace, trace_nested, IntoOperand, Nested, Number, Tensor, TraceError,
    TraceOutputs, Tracer,
};
pub use types::{DType, Shape, Type, TypeId, TypeTable, MAX_ELEMENTS};
pub use verify::{is_keyword, is_valid_name, verify_func, verify_module, VerifyError, KEYWORDS};
pub use window::{AxisWindow, Select, Window};
