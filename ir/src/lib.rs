//! traceform's vocabulary: element types and static shapes, the closed primitive enum with its
//! shape rules, the graph IR, its verifier, the text form (printer and parser, exactly as
//! `shared/spec/ir-text.md` defines it), the petgraph view, and tracing from Rust closures.
//!
//! Nothing heavy lives here: no ndarray, no egg, no Cranelift.

mod attrs;
mod func;
mod graph;
mod liveness;
mod parse;
mod prim;
mod print;
mod shape;
mod trace;
mod types;
mod verify;

pub use attrs::{prim_attrs, prim_from_parts, AttrError, AttrValue};
pub use func::{Atom, Eqn, Func, FuncBuilder, Literal, Loc, Module, Var, VarInfo};
pub use graph::{dataflow_graph, eliminate_dead_code, to_dot, Node};
pub use liveness::peak_live_bytes;
pub use parse::{parse_func, parse_module, ParseError};
pub use prim::{BinaryOp, CompareOp, DotDims, Prim, UnaryOp};
pub use print::{format_float, format_literal, print_func, print_module};
pub use shape::{dot_free_axes, infer_type, is_elementwise, literal_dtype, TypeError};
pub use trace::{trace, trace_nested, IntoOperand, Tensor, TraceError, TraceOutputs, Tracer};
pub use types::{DType, Type};
pub use verify::{is_valid_name, verify_func, verify_module, VerifyError, KEYWORDS};
