//! traceform: a functional-transform compiler for Rust tensor programs.
//!
//! Write an ordinary closure over symbolic tensors; traceform traces it into a typed graph IR
//! (`traceform_ir`), transforms it, and runs it (`traceform_runtime`, the reference
//! interpreter, or `traceform_jit`, the Cranelift backend). This crate is the facade: the public API and the `traceform` command line.

pub mod api;
pub mod args;
pub mod cli;
pub mod linear_map;
pub mod npy;
pub mod transform;

pub use traceform_ir as ir;
pub use traceform_ir::{
    parse_func, parse_module, print_func, trace, AvgPoolDivisor, ConvDims, ConvPadding, DType,
    Func, Tensor, TraceError, Type, Window,
};
pub use traceform_jit as jit;
pub use traceform_runtime as runtime;
pub use traceform_runtime::{eval, Value, ValueRef};
pub use traceform_transforms as transforms;

pub use api::{
    grad, grad_wrt, hessian, hessian_wrt, hvp, hvp_wrt, jacfwd, jacfwd_wrt, jacrev, jacrev_wrt,
    jvp, jvp_wrt, linear_transpose, linear_transpose_wrt, set_simplify, value_and_grad,
    value_and_grad_wrt, vjp_flat, vjp_flat_wrt, Error, Transformed,
};
pub use args::{constant, Arg, Concrete};
pub use linear_map::{
    linearize, linearize_wrt, vjp, vjp_wrt, AtPoint, LinearFn, LinearMap, Pullback,
};
