//! traceform's reference interpreter over ndarray. It defines what every primitive means:
//! the simplifier and the JIT are correct exactly when they agree with it.

mod conv;
mod gemm;
mod interp;
mod kernels;
pub mod par;
mod value;
mod window;

pub use conv::{conv_general_dilated_into, Scratch};
pub use gemm::{mat_mul, Gemm};
pub use interp::{check_inputs, eval, eval_with_stats, EvalError, EvalStats, MAX_VALUE_BYTES};
pub use kernels::{apply, KernelError, Real};
pub use value::{AsValueRef, Value, ValueRef};
