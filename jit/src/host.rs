//! Host kernels called from compiled loops: each transcendental over a tile of up to
//! [`TILE`] elements, in place (`fn(tile, n)`, or `fn(a_tile, b_tile, n)` writing into
//! `a_tile` for `pow` and `atan2`). A fused loop computes the cheap arithmetic inline, stores a
//! transcendental's operand into its tile, calls the host kernel once per tile, and reads the
//! results back (the design the field notes measured fastest).
//!
//! Each kernel applies the same Rust function as the interpreter's kernel (`f32::exp`,
//! `libm::erff`, `1 / (1 + exp(-x))`, ...), so the JIT's transcendentals agree with the
//! interpreter bit for bit; faster polynomial kernels can replace them one at a time, with
//! their error measured against these.
//!
//! These are `extern "C"` and cannot panic (plain loops over floats), so no unwinding ever
//! crosses compiled frames.

use traceform_ir::{BinaryOp, DType, UnaryOp};

/// Elements per tile.
pub const TILE: usize = 512;

/// A host kernel's symbol name and address.
pub struct HostFn {
    pub name: &'static str,
    pub address: *const u8,
    /// Two tiles (`pow`, `atan2`) or one.
    pub binary: bool,
}

macro_rules! unary_kernels {
    ($($name:ident: $t:ty => $f:expr;)*) => {
        $(
            extern "C" fn $name(tile: *mut $t, n: usize) {
                // SAFETY: compiled code passes a tile of at least `n` elements.
                let xs = unsafe { std::slice::from_raw_parts_mut(tile, n) };
                let f: fn($t) -> $t = $f;
                for x in xs {
                    *x = f(*x);
                }
            }
        )*
    };
}

macro_rules! binary_kernels {
    ($($name:ident: $t:ty => $f:expr;)*) => {
        $(
            extern "C" fn $name(a: *mut $t, b: *const $t, n: usize) {
                // SAFETY: compiled code passes two distinct tiles of at least `n` elements.
                let (xs, ys) = unsafe {
                    (std::slice::from_raw_parts_mut(a, n), std::slice::from_raw_parts(b, n))
                };
                let f: fn($t, $t) -> $t = $f;
                for (x, &y) in xs.iter_mut().zip(ys) {
                    *x = f(*x, y);
                }
            }
        )*
    };
}

unary_kernels! {
    tf_sin_f32: f32 => f32::sin;
    tf_cos_f32: f32 => f32::cos;
    tf_tan_f32: f32 => f32::tan;
    tf_tanh_f32: f32 => f32::tanh;
    tf_exp_f32: f32 => f32::exp;
    tf_log_f32: f32 => f32::ln;
    tf_log1p_f32: f32 => f32::ln_1p;
    tf_expm1_f32: f32 => f32::exp_m1;
    tf_logistic_f32: f32 => |x| 1.0 / (1.0 + (-x).exp());
    tf_erf_f32: f32 => libm::erff;
    tf_sin_f64: f64 => f64::sin;
    tf_cos_f64: f64 => f64::cos;
    tf_tan_f64: f64 => f64::tan;
    tf_tanh_f64: f64 => f64::tanh;
    tf_exp_f64: f64 => f64::exp;
    tf_log_f64: f64 => f64::ln;
    tf_log1p_f64: f64 => f64::ln_1p;
    tf_expm1_f64: f64 => f64::exp_m1;
    tf_logistic_f64: f64 => |x| 1.0 / (1.0 + (-x).exp());
    tf_erf_f64: f64 => libm::erf;
}

binary_kernels! {
    tf_pow_f32: f32 => f32::powf;
    tf_atan2_f32: f32 => f32::atan2;
    tf_pow_f64: f64 => f64::powf;
    tf_atan2_f64: f64 => f64::atan2;
}

/// The host kernel of a unary transcendental, if `op` is one (the others are inline code).
pub fn unary(op: UnaryOp, dtype: DType) -> Option<HostFn> {
    macro_rules! pick {
        ($f32:ident, $f64:ident) => {
            match dtype {
                DType::F32 => (
                    $f32 as extern "C" fn(*mut f32, usize) as *const u8,
                    stringify!($f32),
                ),
                _ => (
                    $f64 as extern "C" fn(*mut f64, usize) as *const u8,
                    stringify!($f64),
                ),
            }
        };
    }
    let (address, name) = match op {
        UnaryOp::Sin => pick!(tf_sin_f32, tf_sin_f64),
        UnaryOp::Cos => pick!(tf_cos_f32, tf_cos_f64),
        UnaryOp::Tan => pick!(tf_tan_f32, tf_tan_f64),
        UnaryOp::Tanh => pick!(tf_tanh_f32, tf_tanh_f64),
        UnaryOp::Exp => pick!(tf_exp_f32, tf_exp_f64),
        UnaryOp::Log => pick!(tf_log_f32, tf_log_f64),
        UnaryOp::Log1p => pick!(tf_log1p_f32, tf_log1p_f64),
        UnaryOp::Expm1 => pick!(tf_expm1_f32, tf_expm1_f64),
        UnaryOp::Logistic => pick!(tf_logistic_f32, tf_logistic_f64),
        UnaryOp::Erf => pick!(tf_erf_f32, tf_erf_f64),
        UnaryOp::Neg
        | UnaryOp::Sqrt
        | UnaryOp::Rsqrt
        | UnaryOp::Abs
        | UnaryOp::Sign
        | UnaryOp::Floor
        | UnaryOp::Ceil
        | UnaryOp::Round => return None,
    };
    Some(HostFn {
        name,
        address,
        binary: false,
    })
}

/// The host kernel of a binary transcendental, if `op` is one.
pub fn binary(op: BinaryOp, dtype: DType) -> Option<HostFn> {
    type F32Fn = extern "C" fn(*mut f32, *const f32, usize);
    type F64Fn = extern "C" fn(*mut f64, *const f64, usize);
    let (address, name) = match (op, dtype) {
        (BinaryOp::Pow, DType::F32) => (tf_pow_f32 as F32Fn as *const u8, "tf_pow_f32"),
        (BinaryOp::Pow, _) => (tf_pow_f64 as F64Fn as *const u8, "tf_pow_f64"),
        (BinaryOp::Atan2, DType::F32) => (tf_atan2_f32 as F32Fn as *const u8, "tf_atan2_f32"),
        (BinaryOp::Atan2, _) => (tf_atan2_f64 as F64Fn as *const u8, "tf_atan2_f64"),
        (
            BinaryOp::Add
            | BinaryOp::Sub
            | BinaryOp::Mul
            | BinaryOp::Div
            | BinaryOp::Max
            | BinaryOp::Min,
            _,
        ) => return None,
    };
    Some(HostFn {
        name,
        address,
        binary: true,
    })
}

/// Every host kernel, for registering with the JIT module.
pub fn all() -> Vec<HostFn> {
    let unary_ops = [
        UnaryOp::Sin,
        UnaryOp::Cos,
        UnaryOp::Tan,
        UnaryOp::Tanh,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Log1p,
        UnaryOp::Expm1,
        UnaryOp::Logistic,
        UnaryOp::Erf,
    ];
    let mut out = Vec::new();
    for dtype in [DType::F32, DType::F64] {
        out.extend(unary_ops.iter().filter_map(|&op| unary(op, dtype)));
        out.extend(
            [BinaryOp::Pow, BinaryOp::Atan2]
                .iter()
                .filter_map(|&op| binary(op, dtype)),
        );
    }
    out
}
