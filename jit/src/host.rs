//! Host kernels called from compiled loops: each transcendental over a tile of up to
//! [`TILE`] elements, in place (`fn(tile, n)`, or `fn(a_tile, b_tile, n)` writing into
//! `a_tile` for `pow` and `atan2`). A fused loop computes the cheap arithmetic inline, stores a
//! transcendental's operand into its tile, calls the host kernel once per tile, and reads the
//! results back (the design the field notes measured fastest).
//!
//! Each kernel applies the same Rust function as the interpreter's kernel (`f64::exp`,
//! `f32::powf`, ...), so those transcendentals agree with the interpreter bit for bit, except
//! `sin`, `cos`, `tan`, `expm1`, `erf` and `atan2` of both dtypes, f32 `exp`, `tanh`, `logistic`, `log` and
//! `log1p`, and f64 `exp`, `tanh`, `logistic`, `log` and `log1p`: branch-free
//! polynomials that vectorise (AVX2 + FMA when the CPU has them, chosen at run time), within a
//! few ulps of the interpreter (the bounds are tested below and listed in `docs/jit.md`).
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

binary_kernels! {
    tf_pow_f32: f32 => f32::powf;
    tf_pow_f64: f64 => f64::powf;
}

/// `erf` is expanded around the centres `k / ERF_SCALE` for `k` in `ERF_FIRST..=ERF_LAST`
/// (0.5 to 6: below, its Taylor series at 0; above, 1 to the last bit of an f64).
const ERF_SCALE: f64 = 8.0;
const ERF_FIRST: usize = 4;
const ERF_LAST: usize = 48;
/// The degree of the expansions: with `|h| <= 1/16`, the next term is below 1e-20.
const ERF_DEGREE: usize = 14;

/// Per centre `c` (indexed by `k`; the first `ERF_FIRST` unused): `erf(c)` and the Taylor
/// coefficients `erf^(n)(c) / n!` for `n = 1..=ERF_DEGREE`.
struct ErfTable {
    value: [f64; ERF_LAST + 1],
    coef: [[f64; ERF_DEGREE]; ERF_LAST + 1],
}

/// The expansions of `erf` (made once): `erf^(n)(c) = 2/sqrt(pi) e^(-c^2) (-1)^(n-1)
/// H_(n-1)(c)`, the Hermite polynomials by their recurrence `H_(m+1) = 2c H_m - 2m H_(m-1)`,
/// and `erf(c)` itself the interpreter's value there.
fn erf_table() -> &'static ErfTable {
    static TABLE: std::sync::OnceLock<ErfTable> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = ErfTable {
            value: [0.0; ERF_LAST + 1],
            coef: [[0.0; ERF_DEGREE]; ERF_LAST + 1],
        };
        for k in ERF_FIRST..=ERF_LAST {
            let c = k as f64 / ERF_SCALE;
            t.value[k] = libm::erf(c);
            let g = std::f64::consts::FRAC_2_SQRT_PI * (-c * c).exp();
            // H_(n-1)(c) and H_n(c).
            let (mut h0, mut h1) = (1.0, 2.0 * c);
            let mut factorial = 1.0;
            for n in 1..=ERF_DEGREE {
                factorial *= n as f64;
                let sign = if n % 2 == 1 { 1.0 } else { -1.0 };
                t.coef[k][n - 1] = g * sign * h0 / factorial;
                (h0, h1) = (h1, 2.0 * c * h1 - 2.0 * n as f64 * h0);
            }
        }
        t
    })
}

/// `erf` of f64 without branches or calls (table reads, which vectorise as gathers): for
/// `|x| < 0.5` its Taylor series at 0 to degree 25; up to 6, the expansion of degree 14 around
/// the nearest centre `k/8` ([`erf_table`]), `erf(c) + p(|x| - c)` with `|p| < 0.07` next to
/// `erf(c) > 0.5`; beyond, 1; with the sign of `x`. Error against `libm::erf` measured in
/// `tests::fast_erf_is_within_its_ulp_bound`.
#[inline(always)]
fn erf_with(t: &ErfTable, x: f64) -> f64 {
    // (2/sqrt(pi)) (-1)^n / (n! (2n + 1)) for n = 12 down to 0.
    const A: [f64; 13] = {
        let mut a = [0.0; 13];
        let (mut n, mut factorial) = (0, 1.0);
        while n <= 12 {
            if n > 0 {
                factorial *= n as f64;
            }
            let sign = if n % 2 == 0 { 1.0 } else { -1.0 };
            a[12 - n] = std::f64::consts::FRAC_2_SQRT_PI * sign / (factorial * (2 * n + 1) as f64);
            n += 1;
        }
        a
    };
    let z = x * x;
    let mut q = A[0];
    for &c in &A[1..] {
        q = q * z + c;
    }
    let small = x * q;
    let a = x.abs();
    // (`min` takes 6 for a NaN, which is returned below.)
    let s = a.min(ERF_LAST as f64 / ERF_SCALE);
    let (centre, k) = rounded(s * ERF_SCALE);
    let k = (k.max(ERF_FIRST as i64) as usize).min(ERF_LAST);
    let h = s - centre.max(ERF_FIRST as f64) / ERF_SCALE;
    let row = &t.coef[k];
    let mut p = row[ERF_DEGREE - 1];
    for i in (0..ERF_DEGREE - 1).rev() {
        p = p * h + row[i];
    }
    let near = (t.value[k] + p * h).copysign(x);
    if x.is_nan() {
        x
    } else if a < ERF_FIRST as f64 / ERF_SCALE {
        small
    } else {
        near
    }
}

/// `erf` of f64 ([`erf_with`]).
#[cfg(test)]
fn erf_f64(x: f64) -> f64 {
    erf_with(erf_table(), x)
}

/// `erf` of f32 through [`erf_with`], rounded once to f32.
#[cfg(test)]
fn erf_f32(x: f32) -> f32 {
    erf_with(erf_table(), f64::from(x)) as f32
}

/// Defines the host kernel of `erf`: [`erf_with`] over the tile, compiled for AVX2 + FMA
/// where the CPU has them (the table is found once per tile).
macro_rules! erf_kernels {
    ($($name:ident: $t:ty;)*) => {
        $(
            extern "C" fn $name(tile: *mut $t, n: usize) {
                // SAFETY: compiled code passes a tile of at least `n` elements.
                let xs = unsafe { std::slice::from_raw_parts_mut(tile, n) };
                let t = erf_table();
                #[cfg(target_arch = "x86_64")]
                {
                    #[target_feature(enable = "avx2,fma")]
                    unsafe fn wide(t: &ErfTable, xs: &mut [$t]) {
                        for x in xs {
                            *x = erf_with(t, f64::from(*x)) as $t;
                        }
                    }
                    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                        // SAFETY: the features were detected.
                        unsafe { wide(t, xs) };
                        return;
                    }
                }
                for x in xs {
                    *x = erf_with(t, f64::from(*x)) as $t;
                }
            }
        )*
    };
}

erf_kernels! {
    tf_erf_f32: f32;
    tf_erf_f64: f64;
}

/// `exp` of f32 without branches or calls (so loops over it vectorise): Cephes' polynomial on
/// `x - n ln 2`, scaled by `2^n` in two steps (subnormal results are rounded once). Error
/// against `f32::exp` measured in `tests::fast_f32_kernels_are_within_their_ulp_bounds`.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    let c = x.clamp(-110.0, 89.0);
    let t = c * LOG2E + ROUND;
    let n = t - ROUND;
    let r = c - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 0.166_666_65)
        * r
        + 0.5;
    let p = p * r * r + r + 1.0;
    // The integer `n` is in the low bits of `t` (a cast `n as i32` would saturate, lane by
    // lane, and not vectorise).
    let n = t.to_bits() as i32 - ROUND.to_bits() as i32;
    let n1 = n >> 1;
    let n2 = n - n1;
    let pow2 = |k: i32| f32::from_bits(((k + 127) as u32) << 23);
    p * pow2(n1) * pow2(n2)
}

/// 1.5 * 2^52: adding it to an f64 below 2^51 in magnitude rounds that to an integer, which
/// the low bits of the sum then hold.
const ROUND_F64: f64 = 6_755_399_441_055_744.0;

/// `ln 2` in two parts, the first with 32 significant bits (so `n * LN2_HI` is exact for
/// every `n` an f64's exponent can need).
const LN2_HI: f64 = 0.693_147_180_369_123_8;
const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;

/// `v` rounded to the nearest integer (ties to even), as an f64 and as an i64, for
/// `|v| < 2^51`, without a saturating cast (which keeps loops scalar).
#[inline(always)]
fn rounded(v: f64) -> (f64, i64) {
    let t = v + ROUND_F64;
    (
        t - ROUND_F64,
        t.to_bits() as i64 - ROUND_F64.to_bits() as i64,
    )
}

/// `x = n ln 2 + r` with `|r| <= ln 2 / 2`, for `|x| < 2^50`: `(n, r)`.
#[inline(always)]
fn by_ln2(x: f64) -> (i64, f64) {
    let (n, i) = rounded(x * std::f64::consts::LOG2_E);
    (i, (x - n * LN2_HI) - n * LN2_LO)
}

/// `2^k` for `k` a normal f64's exponent.
#[inline(always)]
fn pow2_f64(k: i64) -> f64 {
    f64::from_bits(((k + 1023) as u64) << 52)
}

/// `exp` of f64 without branches or calls: the Taylor polynomial of degree 13 on `r`
/// ([`by_ln2`]; its truncation error is below 1e-17 there), scaled by `2^n` in two steps as
/// in `exp_f32`. Error against `f64::exp` measured in
/// `tests::fast_f64_kernels_are_within_their_ulp_bounds`.
#[inline(always)]
pub fn exp_f64(x: f64) -> f64 {
    // 1/k! for k = 13 down to 2.
    const C: [f64; 12] = [
        1.0 / 6_227_020_800.0,
        1.0 / 479_001_600.0,
        1.0 / 39_916_800.0,
        1.0 / 3_628_800.0,
        1.0 / 362_880.0,
        1.0 / 40_320.0,
        1.0 / 5_040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
    ];
    let (n, r) = by_ln2(x.clamp(-746.0, 710.0));
    let mut p = C[0];
    for &k in &C[1..] {
        p = p * r + k;
    }
    let p = p * r * r + r + 1.0;
    let n1 = n >> 1;
    p * pow2_f64(n1) * pow2_f64(n - n1)
}

/// `exp(x) - 1` of f64 without branches or calls: with `x = n ln 2 + r` as in [`exp_f64`],
/// `e^r - 1` is the Taylor polynomial of degree 14 without its constant term (no
/// cancellation near 0), and the result `2^n (e^r - 1) + (2^n - 1)`, whose second term is
/// exact for the `n` it is used at (`2^n (e^r - 1 + 1) - 1` above 2^53, where the `- 1` no
/// longer matters). Error against `f64::exp_m1` measured in
/// `tests::fast_f64_kernels_are_within_their_ulp_bounds`.
#[inline(always)]
pub fn expm1_f64(x: f64) -> f64 {
    // Below -40, e^x is under half an ulp of 1.
    let (n, r) = by_ln2(x.clamp(-40.0, 710.0));
    // 1/k! for k = 14 down to 2.
    const C: [f64; 13] = {
        let mut c = [0.0; 13];
        let (mut k, mut factorial) = (2, 1.0);
        while k <= 14 {
            factorial *= k as f64;
            c[14 - k] = 1.0 / factorial;
            k += 1;
        }
        c
    };
    let mut p = C[0];
    for &k in &C[1..] {
        p = p * r + k;
    }
    let em = r + r * r * p;
    let n1 = n >> 1;
    let (s1, s2) = (pow2_f64(n1), pow2_f64(n - n1));
    let s = s1 * s2;
    let small = s * em + (s - 1.0);
    let large = s1 * (s2 * (1.0 + em)) - 1.0;
    if x == 0.0 {
        // Keeps the sign of zero.
        x
    } else if n > 53 {
        large
    } else {
        small
    }
}

/// `exp(x) - 1` of f32 through [`expm1_f64`], rounded once to f32.
#[inline(always)]
pub fn expm1_f32(x: f32) -> f32 {
    expm1_f64(f64::from(x)) as f32
}

/// `tanh` of f64 through [`expm1_f64`]: `-e / (2 + e)` for `e = expm1(-2|x|)`, with the
/// sign of `x` (no cancellation anywhere; 1 for large `|x|`, where `e` is -1).
#[inline(always)]
pub fn tanh_f64(x: f64) -> f64 {
    let e = expm1_f64(-2.0 * x.abs());
    (-e / (2.0 + e)).copysign(x)
}

/// Arguments of `sin`, `cos` and `tan` below this size are reduced to `[-pi/4, pi/4]` by
/// [`quadrant`] (`k pi/2` is then exact in two parts); a tile holding a larger one (or an
/// infinity) is computed by the interpreter's functions instead.
pub const TRIG_LIMIT: f64 = 1.0e5;

/// `x = k pi/2 + r` with `|r| <= pi/4` (a little more, from rounding): `(k mod 4, r)`, for
/// `|x| < TRIG_LIMIT`. `pi/2` is in four parts (Cody and Waite's reduction): the f64
/// nearest it cut to 33 significant bits, the other 20 bits of that f64, the first 33 bits
/// of its error, and the rest (worked out with exact rationals from 80 digits of pi). The
/// first three products with `k` are exact, and where `r` is small each subtraction is too
/// (its operands are within a factor 2), so `r` keeps its relative accuracy next to a
/// multiple of `pi/2` (tested there).
#[inline(always)]
fn quadrant(x: f64) -> (i64, f64) {
    const HALF_PI: f64 = std::f64::consts::FRAC_PI_2;
    const P1: f64 = f64::from_bits(HALF_PI.to_bits() & !((1 << 20) - 1));
    const P2: f64 = HALF_PI - P1;
    const P3: f64 = 6.123_233_995_384_61e-17;
    const P4: f64 = 3.521_559_865_183_2e-27;
    let (k, i) = rounded(x * std::f64::consts::FRAC_2_PI);
    let r = (((x - k * P1) - k * P2) - k * P3) - k * P4;
    (i & 3, r)
}

/// `(sin r, cos r)` for `|r| <= pi/4`: Taylor polynomials to degrees 19 and 18 (the rest
/// below 1e-19).
#[inline(always)]
fn sin_cos_reduced(r: f64) -> (f64, f64) {
    // (-1)^k / (2k+1)! and (-1)^k / (2k)!, highest degree first.
    const S: [f64; 9] = inverse_factorials(19);
    const C: [f64; 9] = inverse_factorials(18);
    const fn inverse_factorials(top: usize) -> [f64; 9] {
        let mut c = [0.0; 9];
        let (mut k, mut factorial) = (1, 1.0);
        while k <= top {
            factorial *= k as f64;
            // Degrees top, top - 2, ..., down to 3 (sin) or 2 (cos): slot (top - k) / 2.
            if k % 2 == top % 2 && k >= 2 {
                let sign = if (k / 2) % 2 == 0 { 1.0 } else { -1.0 };
                c[(top - k) / 2] = sign / factorial;
            }
            k += 1;
        }
        c
    }
    let z = r * r;
    let mut ps = S[0];
    let mut pc = C[0];
    for i in 1..9 {
        ps = ps * z + S[i];
        pc = pc * z + C[i];
    }
    (r + r * (z * ps), 1.0 + z * pc)
}

/// `v` with its sign flipped where bit 1 of `q` is set (without a branch, which a `match`
/// on the quadrant became, keeping the loop scalar).
#[inline(always)]
fn negate_if_bit1(v: f64, q: i64) -> f64 {
    f64::from_bits(v.to_bits() ^ (((q as u64) & 2) << 62))
}

/// `sin` of f64 for `|x| < TRIG_LIMIT`, without branches or calls: by quadrant `s`, `c`,
/// `-s`, `-c`.
#[inline(always)]
pub fn sin_f64(x: f64) -> f64 {
    let (q, r) = quadrant(x);
    let (s, c) = sin_cos_reduced(r);
    negate_if_bit1(if q & 1 == 0 { s } else { c }, q)
}

/// `cos` of f64 for `|x| < TRIG_LIMIT`, without branches or calls: by quadrant `c`, `-s`,
/// `-c`, `s`.
#[inline(always)]
pub fn cos_f64(x: f64) -> f64 {
    let (q, r) = quadrant(x);
    let (s, c) = sin_cos_reduced(r);
    negate_if_bit1(if q & 1 == 0 { c } else { s }, q + 1)
}

/// `tan` of f64 for `|x| < TRIG_LIMIT`: `sin r / cos r`, or `-cos r / sin r` in odd
/// quadrants.
#[inline(always)]
pub fn tan_f64(x: f64) -> f64 {
    let (q, r) = quadrant(x);
    let (s, c) = sin_cos_reduced(r);
    if q & 1 == 0 {
        s / c
    } else {
        -c / s
    }
}

/// `sin`, `cos` and `tan` of f32 through the f64 ones, rounded once.
#[inline(always)]
pub fn sin_f32(x: f32) -> f32 {
    sin_f64(f64::from(x)) as f32
}

/// See [`sin_f32`].
#[inline(always)]
pub fn cos_f32(x: f32) -> f32 {
    cos_f64(f64::from(x)) as f32
}

/// See [`sin_f32`].
#[inline(always)]
pub fn tan_f32(x: f32) -> f32 {
    tan_f64(f64::from(x)) as f32
}

/// `atan2(y, x)` of f64 for finite, nonzero `y` and `x`, without branches or calls: `atan t`
/// for `t = min / max` of `|y|` and `|x|` (by its odd series to `t^45` where `t <= tan(pi/8)`,
/// else as `pi/4 + atan((t - 1) / (t + 1))`), then `pi/2 - ` it where `|y| > |x|`, `pi - ` it
/// where `x < 0`, with the sign of `y`; each multiple of pi in two parts.
#[inline(always)]
pub fn atan2_f64(y: f64, x: f64) -> f64 {
    use std::f64::consts::{FRAC_PI_2, FRAC_PI_4, PI};
    // What the f64s of pi/4, pi/2 and pi lack.
    const PI_4_LO: f64 = 3.061_616_997_868_383e-17;
    const PI_2_LO: f64 = 6.123_233_995_736_766e-17;
    const PI_LO: f64 = 1.224_646_799_147_353_2e-16;
    // (-1)^k / (2k + 1) for k = 22 down to 1.
    const C: [f64; 22] = {
        let mut c = [0.0; 22];
        let mut k = 1;
        while k <= 22 {
            let sign = if k % 2 == 0 { 1.0 } else { -1.0 };
            c[22 - k] = sign / (2 * k + 1) as f64;
            k += 1;
        }
        c
    };
    let (a, b) = (y.abs(), x.abs());
    let swap = a > b;
    let t = if swap { b / a } else { a / b };
    let big = t > 0.414_213_562_373_095_03;
    let u = if big { (t - 1.0) / (t + 1.0) } else { t };
    let z = u * u;
    let mut p = C[0];
    for &k in &C[1..] {
        p = p * z + k;
    }
    let at = u + u * (z * p);
    let r = if big { FRAC_PI_4 + (at + PI_4_LO) } else { at };
    let r = if swap { (FRAC_PI_2 - r) + PI_2_LO } else { r };
    let r = if x < 0.0 { (PI - r) + PI_LO } else { r };
    r.copysign(y)
}

/// `atan2` of f32 through [`atan2_f64`], rounded once.
#[inline(always)]
pub fn atan2_f32(y: f32, x: f32) -> f32 {
    atan2_f64(f64::from(y), f64::from(x)) as f32
}

/// `logistic` of f64 through `exp_f64`, as the interpreter computes it through `f64::exp`.
#[inline(always)]
pub fn logistic_f64(x: f64) -> f64 {
    1.0 / (1.0 + exp_f64(-x))
}

/// `tanh` of f32 without branches or calls: Cephes' odd polynomial below 0.625, else
/// `1 - 2 / (exp(2|x|) + 1)` with the sign of `x`.
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    let a = x.abs();
    let z = x * x;
    let p = (((-5.704_988_7e-3 * z + 2.063_909e-2) * z - 5.373_971_6e-2) * z + 0.133_314_42) * z
        - 0.333_332_8;
    let small = x + x * z * p;
    // Above 9, tanh rounds to 1 (and NaN must stay NaN, which `min` would not keep).
    let capped = if a > 9.0 { 9.0 } else { a };
    let e = exp_f32(2.0 * capped);
    let large = (1.0 - 2.0 / (e + 1.0)).copysign(x);
    if a < 0.625 {
        small
    } else {
        large
    }
}

/// `logistic` of f32 as the interpreter writes it, `1 / (1 + exp(-x))`, with [`exp_f32`].
#[inline(always)]
pub fn logistic_f32(x: f32) -> f32 {
    1.0 / (1.0 + exp_f32(-x))
}

/// `ln` of f32 without branches or calls: Cephes' polynomial on the mantissa `m` in
/// `[sqrt(1/2), sqrt(2))`, `ln x = e ln 2 + ln m`, `ln 2` in two parts; subnormals are scaled
/// into the normal range first. Zero, negatives, infinity and NaN as `f32::ln`.
#[inline(always)]
pub fn log_f32(x: f32) -> f32 {
    const SQRT_HALF: f32 = std::f32::consts::FRAC_1_SQRT_2;
    let tiny = x < f32::MIN_POSITIVE;
    let scaled = if tiny { x * 8_388_608.0 } else { x };
    let bits = scaled.to_bits() as i32;
    let shift = if tiny { 126 + 23 } else { 126 };
    let e = ((bits >> 23) & 0xff) - shift;
    // The mantissa in [1/2, 1), then in [sqrt(1/2), sqrt(2)) less one.
    let m = f32::from_bits(((bits & 0x007f_ffff) | 0x3f00_0000) as u32);
    let below = m < SQRT_HALF;
    let e = if below { e - 1 } else { e };
    let f = if below { m + m - 1.0 } else { m - 1.0 };
    let z = f * f;
    let p = ((((((((7.037_683_6e-2 * f - 0.115_146_1) * f + 0.116_769_99) * f - 0.124_201_41)
        * f
        + 0.142_493_23)
        * f
        - 0.166_680_57)
        * f
        + 0.200_007_15)
        * f
        - 0.249_999_94)
        * f
        + 0.333_333_3)
        * f
        * z;
    let fe = e as f32;
    let y = p + -2.121_944_4e-4 * fe;
    let y = y + -0.5 * z;
    let r = f + y;
    let r = r + 0.693_359_4 * fe;
    if x == f32::INFINITY {
        x
    } else if x == 0.0 {
        f32::NEG_INFINITY
    } else if x > 0.0 {
        r
    } else {
        f32::NAN
    }
}

/// `ln(1 + x)` of f32 with [`log_f32`]: `ln(u) * x / (u - 1)` for `u = 1 + x` (the quotient
/// corrects the rounding of `u`), and `x` itself where `u` rounds to 1.
#[inline(always)]
pub fn log1p_f32(x: f32) -> f32 {
    let u = 1.0 + x;
    let d = u - 1.0;
    let r = log_f32(u) * (x / d);
    if d == 0.0 {
        x
    } else if u == f32::INFINITY {
        u
    } else {
        r
    }
}

/// `ln` of f64 without branches or calls: `ln x = e ln 2 + ln m` for the mantissa `m` in
/// `[sqrt(1/2), sqrt(2)]`, `ln m = 2 atanh(s)` for `s = (m - 1) / (m + 1)` (`|s| < 0.172`),
/// its odd series to `s^23` (the rest below 1e-19 of the result) written as the exact
/// `m - 1` and a small correction (fdlibm's arrangement), `ln 2` in two parts;
/// subnormals are scaled into the normal range first. Zero, negatives, infinity and NaN as
/// `f64::ln`.
#[inline(always)]
pub fn log_f64(x: f64) -> f64 {
    let tiny = x < f64::MIN_POSITIVE;
    // Subnormals times 2^54.
    let scaled = if tiny {
        x * 18_014_398_509_481_984.0
    } else {
        x
    };
    let bits = scaled.to_bits() as i64;
    let shift = if tiny { 1023 + 54 } else { 1023 };
    let e = ((bits >> 52) & 0x7ff) - shift;
    // The mantissa in [1, 2), then in [sqrt(1/2), sqrt(2)].
    let m = f64::from_bits(((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000) as u64);
    let above = m > std::f64::consts::SQRT_2;
    let e = if above { e + 1 } else { e };
    let m = if above { m * 0.5 } else { m };
    // `f` is exact; `ln m = 2s + s z p = f - s (f - z p)`, the correction small beside `f`.
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    // 2/23 down to 2/3: 2 atanh(s) = 2s + s z (2/3 + z (2/5 + ...)).
    const C: [f64; 11] = {
        let mut c = [0.0; 11];
        let mut i = 0;
        while i < 11 {
            c[i] = 2.0 / (23 - 2 * i) as f64;
            i += 1;
        }
        c
    };
    let mut p = C[0];
    for &k in &C[1..] {
        p = p * z + k;
    }
    let fe = e as f64;
    let r = fe * LN2_HI + ((f - s * (f - z * p)) + fe * LN2_LO);
    if x == f64::INFINITY {
        x
    } else if x == 0.0 {
        f64::NEG_INFINITY
    } else if x > 0.0 {
        r
    } else {
        f64::NAN
    }
}

/// `ln(1 + x)` of f64 with [`log_f64`], as [`log1p_f32`] does it.
#[inline(always)]
pub fn log1p_f64(x: f64) -> f64 {
    let u = 1.0 + x;
    let d = u - 1.0;
    let r = log_f64(u) * (x / d);
    if d == 0.0 {
        x
    } else if u == f64::INFINITY {
        u
    } else {
        r
    }
}

/// Defines a host kernel applying `$f` to a tile, compiled twice (AVX2 + FMA, and the baseline
/// target) and picking the first at run time when the CPU has it.
macro_rules! dispatched_kernels {
    ($($name:ident: $t:ty => $f:path;)*) => {
        $(
            extern "C" fn $name(tile: *mut $t, n: usize) {
                // SAFETY: compiled code passes a tile of at least `n` elements.
                let xs = unsafe { std::slice::from_raw_parts_mut(tile, n) };
                #[cfg(target_arch = "x86_64")]
                {
                    #[target_feature(enable = "avx2,fma")]
                    unsafe fn wide(xs: &mut [$t]) {
                        for x in xs {
                            *x = $f(*x);
                        }
                    }
                    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                        // SAFETY: the features were detected.
                        unsafe { wide(xs) };
                        return;
                    }
                }
                for x in xs {
                    *x = $f(*x);
                }
            }
        )*
    };
}

/// Defines a host kernel for `sin`, `cos` or `tan`: the dispatched kernel `$fast` over the
/// tile ([`TRIG_LIMIT`]), or `$exact` (the interpreter's function) element by element over a
/// tile holding an argument too large for it.
macro_rules! trig_kernels {
    ($($name:ident: $t:ty => $fast:ident, $exact:path;)*) => {
        $(
            extern "C" fn $name(tile: *mut $t, n: usize) {
                // SAFETY: compiled code passes a tile of at least `n` elements.
                let xs = unsafe { std::slice::from_raw_parts_mut(tile, n) };
                if xs.iter().any(|&x| f64::from(x).abs() >= TRIG_LIMIT) {
                    for x in xs {
                        *x = $exact(*x);
                    }
                } else {
                    $fast(tile, n);
                }
            }
        )*
    };
}

/// Defines the host kernel of `atan2` (`a_tile = atan2(a_tile, b_tile)`): `$fast` over the
/// tiles, compiled for AVX2 + FMA where the CPU has them, or `$exact` (the interpreter's
/// function) element by element over tiles holding a zero, an infinity or a NaN.
macro_rules! atan2_kernels {
    ($($name:ident: $t:ty => $fast:path, $exact:path;)*) => {
        $(
            extern "C" fn $name(a: *mut $t, b: *const $t, n: usize) {
                // SAFETY: compiled code passes two distinct tiles of at least `n` elements.
                let (ys, xs) = unsafe {
                    (std::slice::from_raw_parts_mut(a, n), std::slice::from_raw_parts(b, n))
                };
                let plain = |v: $t| v.is_finite() && v != 0.0;
                if !ys.iter().chain(xs.iter()).all(|&v| plain(v)) {
                    for (y, &x) in ys.iter_mut().zip(xs) {
                        *y = $exact(*y, x);
                    }
                    return;
                }
                #[cfg(target_arch = "x86_64")]
                {
                    #[target_feature(enable = "avx2,fma")]
                    unsafe fn wide(ys: &mut [$t], xs: &[$t]) {
                        for (y, &x) in ys.iter_mut().zip(xs) {
                            *y = $fast(*y, x);
                        }
                    }
                    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                        // SAFETY: the features were detected.
                        unsafe { wide(ys, xs) };
                        return;
                    }
                }
                for (y, &x) in ys.iter_mut().zip(xs) {
                    *y = $fast(*y, x);
                }
            }
        )*
    };
}

atan2_kernels! {
    tf_atan2_f32: f32 => atan2_f32, f32::atan2;
    tf_atan2_f64: f64 => atan2_f64, f64::atan2;
}

trig_kernels! {
    tf_sin_f32: f32 => fast_sin_f32, f32::sin;
    tf_cos_f32: f32 => fast_cos_f32, f32::cos;
    tf_tan_f32: f32 => fast_tan_f32, f32::tan;
    tf_sin_f64: f64 => fast_sin_f64, f64::sin;
    tf_cos_f64: f64 => fast_cos_f64, f64::cos;
    tf_tan_f64: f64 => fast_tan_f64, f64::tan;
}

dispatched_kernels! {
    tf_exp_f32: f32 => exp_f32;
    tf_tanh_f32: f32 => tanh_f32;
    tf_logistic_f32: f32 => logistic_f32;
    tf_log_f32: f32 => log_f32;
    tf_log1p_f32: f32 => log1p_f32;
    tf_exp_f64: f64 => exp_f64;
    tf_logistic_f64: f64 => logistic_f64;
    tf_log_f64: f64 => log_f64;
    tf_log1p_f64: f64 => log1p_f64;
    tf_expm1_f64: f64 => expm1_f64;
    tf_expm1_f32: f32 => expm1_f32;
    tf_tanh_f64: f64 => tanh_f64;
    fast_sin_f32: f32 => sin_f32;
    fast_cos_f32: f32 => cos_f32;
    fast_tan_f32: f32 => tan_f32;
    fast_sin_f64: f64 => sin_f64;
    fast_cos_f64: f64 => cos_f64;
    fast_tan_f64: f64 => tan_f64;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The distance in representable f32 values between `a` and `b` (0 when both are NaN).
    fn ulps(a: f32, b: f32) -> u64 {
        if a.is_nan() && b.is_nan() {
            return 0;
        }
        if a.is_nan() || b.is_nan() {
            return u64::MAX;
        }
        let key = |x: f32| {
            let i = x.to_bits() as i32;
            i64::from(if i < 0 { i32::MIN - i } else { i })
        };
        (key(a) - key(b)).unsigned_abs()
    }

    /// The largest ulp distance of `fast` from `reference` over 2 million points of
    /// [-lo, hi] and the special values.
    fn max_ulps(fast: fn(f32) -> f32, reference: fn(f32) -> f32, lo: f32, hi: f32) -> u64 {
        let n = 2_000_000;
        let mut xs: Vec<f32> = (0..=n)
            .map(|i| lo + (hi - lo) * (i as f32 / n as f32))
            .collect();
        xs.extend([
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            1e-30,
            -1e-30,
            1e-7,
        ]);
        xs.iter()
            .map(|&x| ulps(fast(x), reference(x)))
            .max()
            .unwrap_or(0)
    }

    /// The largest ulp distance of `fast` from `reference` over every 61st f32 from `lo`
    /// (bit pattern order, so every binade is covered evenly) and the special values.
    fn max_ulps_by_bits(fast: fn(f32) -> f32, reference: fn(f32) -> f32, lo: f32, hi: f32) -> u64 {
        let mut worst = [
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -1.0,
            1.0,
        ]
        .iter()
        .map(|&x| ulps(fast(x), reference(x)))
        .max()
        .unwrap_or(0);
        for sign in [0u32, 0x8000_0000] {
            let mut bits = 0u32;
            while bits < 0x7f80_0000 {
                let x = f32::from_bits(bits | sign);
                if (lo..=hi).contains(&x) {
                    worst = worst.max(ulps(fast(x), reference(x)));
                }
                bits += 61 * 16;
            }
        }
        worst
    }

    /// The distance in representable f64 values between `a` and `b` (0 when both are NaN).
    fn ulps64(a: f64, b: f64) -> u64 {
        if a.is_nan() && b.is_nan() {
            return 0;
        }
        if a.is_nan() || b.is_nan() {
            return u64::MAX;
        }
        let key = |x: f64| {
            let i = x.to_bits() as i64;
            i128::from(if i < 0 { i64::MIN - i } else { i })
        };
        (key(a) - key(b)).unsigned_abs() as u64
    }

    /// The largest ulp distance of `fast` from `reference` over 4 million points of
    /// [lo, hi], the f64s near the ends of the range of results (subnormal and overflowing)
    /// and the special values.
    fn max_ulps64(fast: fn(f64) -> f64, reference: fn(f64) -> f64, lo: f64, hi: f64) -> u64 {
        let n = 4_000_000;
        let mut xs: Vec<f64> = (0..=n)
            .map(|i| lo + (hi - lo) * (i as f64 / n as f64))
            .collect();
        xs.extend((0..20_000).map(|i| -745.2 + i as f64 * 1e-3));
        xs.extend((0..20_000).map(|i| 709.0 + i as f64 * 1e-4));
        xs.extend([
            0.0,
            -0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            1e-300,
            -1e-300,
            1e-17,
            f64::MAX,
            f64::MIN,
        ]);
        xs.iter()
            .map(|&x| ulps64(fast(x), reference(x)))
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn fast_f64_kernels_are_within_their_ulp_bounds() {
        let exp = max_ulps64(exp_f64, f64::exp, -750.0, 712.0);
        let exp_small = max_ulps64(exp_f64, f64::exp, -1.0, 1.0);
        let logistic = max_ulps64(logistic_f64, |x| 1.0 / (1.0 + (-x).exp()), -750.0, 750.0);
        eprintln!(
            "max ulps vs the interpreter: exp {exp} ({exp_small} on [-1, 1]), logistic {logistic}"
        );
        assert!(exp <= 2, "exp: {exp} ulps");
        assert!(exp_small <= 1, "exp on [-1, 1]: {exp_small} ulps");
        assert!(logistic <= 4, "logistic: {logistic} ulps");
        let expm1 = max_ulps64(expm1_f64, f64::exp_m1, -750.0, 712.0);
        let expm1_small = max_ulps64(expm1_f64, f64::exp_m1, -2.0, 2.0);
        let tanh = max_ulps64(tanh_f64, f64::tanh, -25.0, 25.0);
        let tanh_small = max_ulps64(tanh_f64, f64::tanh, -0.7, 0.7);
        let expm1_f32 = max_ulps(super::expm1_f32, f32::exp_m1, -104.0, 89.0);
        eprintln!(
            "max ulps vs the interpreter: expm1 {expm1} ({expm1_small} on [-2, 2]), tanh {tanh} ({tanh_small} on [-0.7, 0.7]), f32 expm1 {expm1_f32}"
        );
        assert!(
            expm1 <= 2 && expm1_small <= 2,
            "expm1: {expm1}, {expm1_small} ulps"
        );
        assert!(
            tanh <= 3 && tanh_small <= 3,
            "tanh: {tanh}, {tanh_small} ulps"
        );
        assert!(expm1_f32 <= 1, "f32 expm1: {expm1_f32} ulps");
        assert_eq!(expm1_f64(-0.0).to_bits(), (-0.0f64).to_bits());
        assert_eq!(tanh_f64(-0.0).to_bits(), (-0.0f64).to_bits());
    }

    #[test]
    fn fast_erf_is_within_its_ulp_bound() {
        // Every region: the series at 0, each expansion (centres and the points halfway
        // between them), 1 beyond 6, tiny and subnormal arguments.
        let wide = max_ulps64(erf_f64, libm::erf, -7.0, 7.0);
        let small = max_ulps64(erf_f64, libm::erf, -0.6, 0.6);
        let tiny = max_ulps64(erf_f64, libm::erf, -1e-300, 1e-300);
        let f32_wide = max_ulps(erf_f32, libm::erff, -5.0, 5.0);
        let f32_by_bits = max_ulps_by_bits(erf_f32, libm::erff, -5.0, 5.0);
        eprintln!(
            "max ulps vs the interpreter: erf {wide} ({small} on [-0.6, 0.6], {tiny} tiny), f32 erf {f32_wide} ({f32_by_bits} by bits)"
        );
        assert!(
            wide <= 2 && small <= 2 && tiny <= 1,
            "erf: {wide}, {small}, {tiny} ulps"
        );
        assert!(
            f32_wide <= 1 && f32_by_bits <= 1,
            "f32 erf: {f32_wide}, {f32_by_bits} ulps"
        );
        for x in [0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY, 6.0, -6.0, 30.0] {
            assert_eq!(erf_f64(x).to_bits(), libm::erf(x).to_bits(), "erf({x})");
        }
        assert!(erf_f64(f64::NAN).is_nan());
    }

    #[test]
    fn fast_atan2_is_within_its_ulp_bound() {
        // Every pair of a grid of magnitudes (from 1e-300 to 1e300, denser near 1) in every
        // sign combination: zeros, infinities and NaN take the interpreter's function.
        let mut mags: Vec<f64> = (0..=600).map(|i| 10f64.powf(-300.0 + i as f64)).collect();
        mags.extend((1..4000).map(|i| i as f64 / 997.0));
        let (mut worst, mut worst32) = (0, 0);
        for &a in &mags {
            for &b in mags.iter().step_by(7) {
                for (y, x) in [(a, b), (-a, b), (a, -b), (-a, -b), (b, a)] {
                    worst = worst.max(ulps64(atan2_f64(y, x), y.atan2(x)));
                    let (y32, x32) = (y as f32, x as f32);
                    if y32.is_finite() && x32.is_finite() && y32 != 0.0 && x32 != 0.0 {
                        worst32 = worst32.max(ulps(atan2_f32(y32, x32), y32.atan2(x32)));
                    }
                }
            }
        }
        eprintln!("max ulps vs the interpreter: atan2 {worst}, f32 atan2 {worst32}");
        assert!(worst <= 3, "atan2: {worst} ulps");
        assert!(worst32 <= 1, "f32 atan2: {worst32} ulps");
    }

    #[test]
    fn fast_trig_kernels_are_within_their_ulp_bounds() {
        let l = TRIG_LIMIT;
        let mut worst = Vec::new();
        for (name, fast, exact) in [
            ("sin", sin_f64 as fn(f64) -> f64, f64::sin as fn(f64) -> f64),
            ("cos", cos_f64, f64::cos),
            ("tan", tan_f64, f64::tan),
        ] {
            // The fast functions hold below the limit only (the kernel takes the exact
            // ones for a tile with a larger argument): points of the two ranges, zeros,
            // NaN and tiny arguments.
            let sweep = |lo: f64, hi: f64| {
                let n = 4_000_000;
                (0..=n)
                    .map(|i| lo + (hi - lo) * (i as f64 / n as f64))
                    .chain([0.0, -0.0, f64::NAN, 1e-300, -1e-300, 1e-17])
                    .map(|x| ulps64(fast(x), exact(x)))
                    .max()
                    .unwrap_or(0)
            };
            let near = sweep(-7.0, 7.0);
            let far = sweep(-l * 0.999_999, l * 0.999_999);
            worst.push((name, near, far));
        }
        let mut worst32 = Vec::new();
        for (name, fast, exact) in [
            ("sin", sin_f32 as fn(f32) -> f32, f32::sin as fn(f32) -> f32),
            ("cos", cos_f32, f32::cos),
            ("tan", tan_f32, f32::tan),
        ] {
            let near = max_ulps(fast, exact, -7.0, 7.0);
            let far = max_ulps(fast, exact, -99_999.0, 99_999.0);
            worst32.push((name, near, far));
        }
        // Next to multiples of pi/2, where `r` is smallest: the f64s nearest `k pi/2` and
        // their neighbours, up to the limit.
        let mut multiples = [0u64; 3];
        let mut k = 1.0;
        while k * std::f64::consts::FRAC_PI_2 < l {
            let x0 = k * std::f64::consts::FRAC_PI_2;
            for x in [
                x0,
                f64::from_bits(x0.to_bits() - 1),
                f64::from_bits(x0.to_bits() + 1),
            ] {
                for (i, (fast, exact)) in [
                    (sin_f64 as fn(f64) -> f64, f64::sin as fn(f64) -> f64),
                    (cos_f64, f64::cos),
                    (tan_f64, f64::tan),
                ]
                .into_iter()
                .enumerate()
                {
                    multiples[i] = multiples[i].max(ulps64(fast(x), exact(x)));
                    multiples[i] = multiples[i].max(ulps64(fast(-x), exact(-x)));
                }
            }
            k += 1.0;
        }
        eprintln!("max ulps vs the interpreter, f64 (on [-7, 7], below the limit): {worst:?}, next to multiples of pi/2 (sin, cos, tan): {multiples:?}; f32: {worst32:?}");
        assert!(
            multiples[0] <= 1 && multiples[1] <= 1 && multiples[2] <= 3,
            "{multiples:?}"
        );
        for (name, near, far) in worst {
            let bound = if name == "tan" { 3 } else { 1 };
            assert!(
                near <= bound && far <= bound,
                "f64 {name}: {near}, {far} ulps"
            );
        }
        for (name, near, far) in worst32 {
            assert!(near <= 1 && far <= 1, "f32 {name}: {near}, {far} ulps");
        }
    }

    /// The largest ulp distance of `fast` from `reference` over every 2^40+1'th f64 of
    /// either sign (bit pattern order: every binade, subnormals included, about 16 000
    /// points in each) and the special values.
    fn max_ulps64_by_bits(fast: fn(f64) -> f64, reference: fn(f64) -> f64) -> u64 {
        let mut worst = [
            0.0,
            -0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            -1.0,
            1.0,
        ]
        .iter()
        .map(|&x| ulps64(fast(x), reference(x)))
        .max()
        .unwrap_or(0);
        for sign in [0u64, 1 << 63] {
            let mut bits = 0u64;
            while bits < 0x7ff0_0000_0000_0000 {
                let x = f64::from_bits(bits | sign);
                worst = worst.max(ulps64(fast(x), reference(x)));
                bits += (1 << 40) + 1;
            }
        }
        worst
    }

    #[test]
    fn fast_f64_logs_are_within_their_ulp_bounds() {
        let log = max_ulps64_by_bits(log_f64, f64::ln);
        let log1p = max_ulps64_by_bits(log1p_f64, f64::ln_1p);
        let log_near_one = max_ulps64(log_f64, f64::ln, 0.5, 2.0);
        let log1p_near_zero = max_ulps64(log1p_f64, f64::ln_1p, -0.999, 2.0);
        eprintln!(
            "max ulps vs the interpreter: log {log} ({log_near_one} on [0.5, 2]), log1p {log1p} ({log1p_near_zero} on [-0.999, 2])"
        );
        assert!(
            log <= 1 && log_near_one <= 1,
            "log: {log}, {log_near_one} ulps"
        );
        assert!(
            log1p <= 2 && log1p_near_zero <= 2,
            "log1p: {log1p}, {log1p_near_zero} ulps"
        );
    }

    #[test]
    fn fast_f32_logs_are_within_their_ulp_bounds() {
        let log = max_ulps_by_bits(log_f32, f32::ln, f32::MIN, f32::MAX);
        let log1p = max_ulps_by_bits(log1p_f32, f32::ln_1p, f32::MIN, f32::MAX);
        let log1p_near_zero = max_ulps(log1p_f32, f32::ln_1p, -0.999, 2.0);
        eprintln!("max ulps vs the interpreter: log {log}, log1p {log1p} ({log1p_near_zero} on [-0.999, 2])");
        assert!(log <= 1, "log: {log} ulps");
        assert!(log1p <= 2, "log1p: {log1p} ulps");
        assert!(log1p_near_zero <= 2, "log1p: {log1p_near_zero} ulps");
    }

    #[test]
    fn fast_f32_kernels_are_within_their_ulp_bounds() {
        let exp = max_ulps(exp_f32, f32::exp, -104.0, 89.0);
        let tanh = max_ulps(tanh_f32, f32::tanh, -12.0, 12.0);
        let logistic = max_ulps(logistic_f32, |x| 1.0 / (1.0 + (-x).exp()), -90.0, 90.0);
        eprintln!("max ulps vs the interpreter: exp {exp}, tanh {tanh}, logistic {logistic}");
        assert!(exp <= 2, "exp: {exp} ulps");
        assert!(tanh <= 4, "tanh: {tanh} ulps");
        assert!(logistic <= 4, "logistic: {logistic} ulps");
    }
}
