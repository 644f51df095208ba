//! Property tests over random well-typed programs (`tests/common/gen.rs`), one per pass:
//!
//! - **text** (256 cases): `parse(print(f)) == f`, `print(parse(print(f))) == print(f)`, the
//!   verifier accepts `f`, and the interpreter runs it (every op, non-finite literals included);
//! - **transforms** (160): the verifier accepts `jvp`, `vjp`, `jvp∘jvp`, `vjp∘jvp`, `jvp∘vjp`,
//!   `vjp∘vjp` of every program, and `grad`, `hvp`, `jvp∘grad` (grad, then jvp) of the scalar
//!   ones, with random `wrt` subsets; each result has the signature of the spec's table,
//!   round-trips through the text and runs;
//! - **jvp, f64** (200): against central differences, step `H = 1e-6`:
//!   `|jvp - fd| <= 1e-6 |fd| + 1e-8 (1 + M)`, with `M` the largest magnitude of any value or
//!   tangent of the program (the scale of the differences' rounding error);
//! - **jvp, f32** (200): the f32 program's jvp against central differences of its f64 copy,
//!   step 1e-6: `|jvp - fd| <= 1e-3 |fd| + 1e-5 (1 + M)` (smooth ops only);
//! - **jvp∘jvp, f64** (128): the jvp of `jvp(f)` against central differences of `jvp(f)`, the
//!   jvp f64 tolerance;
//! - **adjoint** (200): `<ybar, J t> = <J^T ybar, t>` (jvp against vjp, random `wrt`) for `f`,
//!   `jvp(f)` and `grad(f)` (or `vjp(f)`), relative to
//!   `1 + sum |ybar_i (J t)_i| + sum |(J^T ybar)_i t_i|`: 1e-9 in f64, 1e-4 if any f32 is involved;
//! - **transpose** (200): for programs linear in some inputs, `<ybar, L t> = <L^T ybar, t>` with
//!   `transpose_wrt`, the same tolerances;
//! - **hvp, f64** (160): against central differences of `grad` (random `wrt`), the jvp f64
//!   tolerance; and `<grad, t>` against the jvp's tangent (1e-9 relative).
//!
//! - **simplify** (200): the simplified program (`traceform::transforms::simplify`) of `f`,
//!   `jvp(f)` and `vjp(f)` (and `hvp(f)` for scalar outputs) verifies and computes the same
//!   values as the unsimplified one, element by element, to `rtol * (1 + M)` with M the
//!   largest magnitude of the inputs and outputs (rtol 1e-9 in f64, 1e-4 with f32): factoring
//!   changes rounding, not values; elements the unsimplified program makes inf or NaN are not
//!   compared (a product with a structural zero is zero by design).
//!
//! Finite-difference checks run every op but `stop_gradient`; points where `x - H t`, `x`,
//! `x + H t` do not lie on one smooth piece (a kink indicator of the probe program changes), or
//! where a value exceeds 1e6, are rejected, not failed. Every property has a fixed seed and a
//! bounded number of cases; a failure prints the shrunk program and its inputs.

mod common;

use common::gen::{
    self, axpy, dot, max_abs, random_values, show, widen, Float, GenConfig, OpSet, Probe, Program,
    Rng,
};
use proptest::prelude::*;
use proptest::test_runner::{RngSeed, TestCaseError, TestError, TestRunner};
use traceform::ir::verify_func;
use traceform::transforms::{grad, hvp, jvp, simplify, transpose_wrt, vjp, Limits};
use traceform::{eval, parse_func, print_func, Func, Type, Value};

type Check = Result<(), TestCaseError>;

/// Runs a property on its cases, with its fixed seed; on failure, panics with the shrunk
/// program and the failure. Deeper runs by hand, with more cases, another seed, longer
/// programs: `TRACEFORM_GEN_CASES=5000 TRACEFORM_GEN_SEED=9 TRACEFORM_GEN_STEPS=25 cargo test
/// --test generated`.
fn check(prop: &Property) {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let cases = env("TRACEFORM_GEN_CASES").map_or(prop.cases, |c| c as u32);
    let seed = env("TRACEFORM_GEN_SEED").map_or(prop.seed, |s| s.wrapping_mul(1000) + prop.seed);
    let config = ProptestConfig {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed),
        max_global_rejects: cases * 4,
        ..ProptestConfig::default()
    };
    let mut cfg = (prop.config)();
    if let Some(n) = env("TRACEFORM_GEN_STEPS") {
        cfg.steps = 3..=n as usize;
        cfg.max_eqns = n as usize + 5;
    }
    let mut runner = TestRunner::new(config);
    let result = runner.run(&gen::programs_with_seed(cfg), |(p, s)| (prop.test)(&p, s));
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, (p, s))) => {
            panic!(
                "{}: {why}\nprogram (input seed {s}):\n{}",
                prop.name,
                p.text()
            )
        }
        Err(e) => panic!("{}: {e}", prop.name),
    }
}

fn parse(text: &str) -> Result<Func, TestCaseError> {
    parse_func(text).map_err(|e| TestCaseError::fail(format!("does not parse: {e}\n{text}")))
}

fn run(f: &Func, xs: &[Value]) -> Result<Vec<Value>, TestCaseError> {
    eval(f, xs).map_err(|e| {
        TestCaseError::fail(format!(
            "eval failed: {e}\n{}\ninputs:\n{}",
            print_func(f),
            show(xs)
        ))
    })
}

fn transformed(
    what: &str,
    f: &Func,
    r: Result<Func, impl std::fmt::Display>,
) -> Result<Func, TestCaseError> {
    r.map_err(|e| TestCaseError::fail(format!("{what} failed: {e}\nof:\n{}", print_func(f))))
}

fn cat(a: &[Value], b: &[Value]) -> Vec<Value> {
    a.iter().chain(b).cloned().collect()
}

fn finite(vs: &[Value]) -> bool {
    max_abs(vs).is_finite()
}

// ---------------------------------------------------------------------------------------------

fn prop_text(p: &Program, seed: u64) -> Check {
    let text = p.text();
    let f = parse(&text)?;
    verify_func(&f).map_err(|e| TestCaseError::fail(format!("verify: {e}")))?;
    let printed = print_func(&f);
    let g = parse(&printed)?;
    prop_assert_eq!(&g, &f, "parse(print(f)) != f; printed:\n{}", printed);
    prop_assert_eq!(print_func(&g), printed.clone());
    // The f64 copy and the probe program are programs too.
    for t in [p.text_f64(), p.probe_text(false)] {
        let h = parse(&t)?;
        verify_func(&h).map_err(|e| TestCaseError::fail(format!("verify: {e}\n{t}")))?;
    }
    let xs = random_values(&f.param_types(), &mut Rng::new(seed), -2.0, 2.0);
    let out = run(&f, &xs)?;
    let want = f.output_types();
    let got: Vec<Type> = out.iter().map(|v| v.ty()).collect();
    prop_assert_eq!(got, want);
    Ok(())
}

/// Verifies `g`, checks its signature, round-trips it through the text and runs it.
fn sound(what: &str, g: &Func, params: &[Type], outputs: &[Type], seed: u64) -> Check {
    verify_func(g)
        .map_err(|e| TestCaseError::fail(format!("{what}: verify: {e}\n{}", print_func(g))))?;
    prop_assert_eq!(
        &g.param_types(),
        params,
        "{} parameters\n{}",
        what,
        print_func(g)
    );
    prop_assert_eq!(
        &g.output_types(),
        outputs,
        "{} outputs\n{}",
        what,
        print_func(g)
    );
    let printed = print_func(g);
    let again = parse(&printed)?;
    prop_assert_eq!(&again, g, "{}: parse(print) differs\n{}", what, printed);
    let xs = random_values(params, &mut Rng::new(seed), -2.0, 2.0);
    run(g, &xs)?;
    Ok(())
}

/// The positions to differentiate: every input (`None`) half the time, else a random non-empty
/// subset in random order.
fn random_wrt(n: usize, rng: &mut Rng) -> Option<Vec<usize>> {
    if rng.uniform(0.0, 1.0) < 0.5 {
        return None;
    }
    let mut w: Vec<usize> = (0..n).filter(|_| rng.uniform(0.0, 1.0) < 0.6).collect();
    if w.is_empty() {
        w.push((rng.uniform(0.0, n as f64) as usize).min(n - 1));
    }
    for i in (1..w.len()).rev() {
        let j = (rng.uniform(0.0, (i + 1) as f64) as usize).min(i);
        w.swap(i, j);
    }
    Some(w)
}

fn floats(ts: &[Type]) -> Vec<Type> {
    ts.iter().filter(|t| t.dtype.is_float()).cloned().collect()
}

fn pick_types(ts: &[Type], wrt: &Option<Vec<usize>>) -> Vec<Type> {
    match wrt {
        None => floats(ts),
        Some(w) => w.iter().map(|&i| ts[i].clone()).collect(),
    }
}

fn prop_transforms(p: &Program, seed: u64) -> Check {
    let f = parse(&p.text())?;
    let (ps, os) = (f.param_types(), f.output_types());
    let wrt = random_wrt(ps.len(), &mut Rng::new(seed));
    let w = wrt.as_deref();
    let wt = pick_types(&ps, &wrt);
    let j = transformed("jvp", &f, jvp(&f, w))?;
    sound("jvp", &j, &cat2(&ps, &wt), &cat2(&os, &floats(&os)), seed)?;
    let v = transformed("vjp", &f, vjp(&f, w))?;
    sound("vjp", &v, &cat2(&ps, &floats(&os)), &cat2(&os, &wt), seed)?;
    let (jp, jo) = (j.param_types(), j.output_types());
    let jj = transformed("jvp∘jvp", &j, jvp(&j, None))?;
    sound(
        "jvp∘jvp",
        &jj,
        &cat2(&jp, &jp),
        &cat2(&jo, &floats(&jo)),
        seed,
    )?;
    let vj = transformed("vjp∘jvp", &j, vjp(&j, None))?;
    sound(
        "vjp∘jvp",
        &vj,
        &cat2(&jp, &floats(&jo)),
        &cat2(&jo, &jp),
        seed,
    )?;
    let (vp, vo) = (v.param_types(), v.output_types());
    let jv = transformed("jvp∘vjp", &v, jvp(&v, None))?;
    sound(
        "jvp∘vjp",
        &jv,
        &cat2(&vp, &vp),
        &cat2(&vo, &floats(&vo)),
        seed,
    )?;
    let vv = transformed("vjp∘vjp", &v, vjp(&v, None))?;
    sound(
        "vjp∘vjp",
        &vv,
        &cat2(&vp, &floats(&vo)),
        &cat2(&vo, &vp),
        seed,
    )?;
    if os.len() == 1 && os[0].shape.is_empty() && os[0].dtype.is_float() {
        let g = transformed("grad", &f, grad(&f, w))?;
        sound("grad", &g, &ps, &wt, seed)?;
        let h = transformed("hvp", &f, hvp(&f, w))?;
        sound("hvp", &h, &cat2(&ps, &wt), &wt, seed)?;
        let jg = transformed("jvp∘grad", &g, jvp(&g, None))?;
        sound("jvp∘grad", &jg, &cat2(&ps, &ps), &cat2(&wt, &wt), seed)?;
    }
    Ok(())
}

fn cat2(a: &[Type], b: &[Type]) -> Vec<Type> {
    a.iter().chain(b).cloned().collect()
}

// ---------------------------------------------------------------------------------------------
// Finite differences.

const H: f64 = 1e-6;
/// Values beyond this are rejected: differences of them are all rounding.
const LARGEST: f64 = 1e6;

/// Tolerances of a derivative against central differences: `rtol |fd| + atol (1 + M)`.
#[derive(Clone, Copy)]
struct Tol {
    rtol: f64,
    atol: f64,
}

const F64_FD: Tol = Tol {
    rtol: 1e-6,
    atol: 1e-8,
};
const F32_FD: Tol = Tol {
    rtol: 1e-3,
    atol: 1e-5,
};

fn close(got: &[Value], want: &[Vec<f64>], tol: Tol, m: f64) -> Result<(), String> {
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        for (i, (a, b)) in g.to_f64_vec().iter().zip(w).enumerate() {
            let bound = tol.rtol * b.abs() + tol.atol * (1.0 + m);
            // NaN fails too.
            let ok = (a - b).abs() <= bound;
            if !ok {
                return Err(format!(
                    "output {k} element {i}: derivative {a}, finite difference {b} (|diff| {:e} > {bound:e}, M = {m:e})",
                    (a - b).abs()
                ));
            }
        }
    }
    Ok(())
}

fn central(plus: &[Value], minus: &[Value]) -> Vec<Vec<f64>> {
    plus.iter()
        .zip(minus)
        .map(|(p, m)| {
            p.to_f64_vec()
                .iter()
                .zip(m.to_f64_vec())
                .map(|(a, b)| (a - b) / (2.0 * H))
                .collect()
        })
        .collect()
}

/// The probe program at `x - H t`, `x`, `x + H t`, or a rejection if the points are not on one
/// smooth piece or a value is not moderate.
fn probes(
    p: &Program,
    probe: &Func,
    x: &[Value],
    t: &[Value],
) -> Result<[Probe; 3], TestCaseError> {
    let mut out = vec![];
    for h in [-H, 0.0, H] {
        let vals = run(probe, &axpy(x, h, t))?;
        let pr = p.split_probe(vals);
        if pr.max_abs() > LARGEST {
            return Err(TestCaseError::reject("a value is not moderate"));
        }
        out.push(pr);
    }
    if !Probe::same_piece(&[&out[0], &out[1], &out[2]]) {
        return Err(TestCaseError::reject("a kink between x - Ht and x + Ht"));
    }
    let [a, b, c]: [Probe; 3] = out.try_into().unwrap();
    Ok([a, b, c])
}

/// jvp of `p` (in its dtype) against central differences of its f64 copy.
fn jvp_vs_fd(p: &Program, seed: u64, tol: Tol) -> Check {
    let f = parse(&p.text())?;
    let f64_probe = parse(&p.probe_text(true))?;
    let mut rng = Rng::new(seed);
    let types = f.param_types();
    let x = random_values(&types, &mut rng, -2.0, 2.0);
    let t = random_values(&types, &mut rng, -1.0, 1.0);
    let (x64, t64): (Vec<Value>, Vec<Value>) =
        (x.iter().map(widen).collect(), t.iter().map(widen).collect());
    let [minus, center, plus] = probes(p, &f64_probe, &x64, &t64)?;
    let n = p.n_outputs();
    let j = transformed("jvp", &f, jvp(&f, None))?;
    let out = run(&j, &cat(&x, &t))?;
    let tangents = &out[n..];
    // The scale of rounding: every value and every tangent of the program.
    let jp = transformed("jvp", &f64_probe, jvp(&f64_probe, None))?;
    let all = run(&jp, &cat(&x64, &t64))?;
    let m = center.max_abs().max(max_abs(&all));
    if !m.is_finite() || m > LARGEST {
        return Err(TestCaseError::reject("a tangent is not moderate"));
    }
    let fd = central(&plus.outputs, &minus.outputs);
    close(tangents, &fd, tol, m)
        .map_err(|e| TestCaseError::fail(format!("jvp: {e}\nx:\n{}\nt:\n{}", show(&x), show(&t))))
}

// ---------------------------------------------------------------------------------------------
// Adjoint identities.

fn adjoint_tol(float: Float) -> f64 {
    match float {
        Float::F64 => 1e-9,
        Float::F32 => 1e-4,
    }
}

/// `<a, b>` against `<c, d>`, relative to the sums of the products' magnitudes.
fn same_inner(what: &str, (lhs, la): (f64, f64), (rhs, ra): (f64, f64), rtol: f64) -> Check {
    let bound = rtol * (1.0 + la + ra);
    if (lhs - rhs).abs() <= bound {
        Ok(())
    } else {
        Err(TestCaseError::fail(format!(
            "{what}: {lhs} vs {rhs} (|diff| {:e} > {bound:e})",
            (lhs - rhs).abs()
        )))
    }
}

/// Of the program, of its jvp, or of its grad (vjp if it is not scalar): reverse mode of
/// transformed programs too.
fn prop_adjoint(p: &Program, seed: u64) -> Check {
    let f0 = parse(&p.text())?;
    let scalar = f0.output_types().len() == 1 && f0.output_types()[0].shape.is_empty();
    let f = match seed % 3 {
        0 => f0,
        1 => transformed("jvp", &f0, jvp(&f0, None))?,
        _ if scalar => transformed("grad", &f0, grad(&f0, None))?,
        _ => transformed("vjp", &f0, vjp(&f0, None))?,
    };
    let mut rng = Rng::new(seed);
    let types = f.param_types();
    let wrt = random_wrt(types.len(), &mut rng);
    let x = random_values(&types, &mut rng, -2.0, 2.0);
    let t = random_values(&pick_types(&types, &wrt), &mut rng, -1.0, 1.0);
    let ybar = random_values(&floats(&f.output_types()), &mut rng, -1.0, 1.0);
    let n = f.output_types().len();
    let j = transformed("jvp", &f, jvp(&f, wrt.as_deref()))?;
    let v = transformed("vjp", &f, vjp(&f, wrt.as_deref()))?;
    let jt = run(&j, &cat(&x, &t))?;
    let vy = run(&v, &cat(&x, &ybar))?;
    if !finite(&jt) || !finite(&vy) || max_abs(&jt).max(max_abs(&vy)) > LARGEST {
        return Err(TestCaseError::reject("not moderate"));
    }
    // The primal outputs of both agree with eval.
    let y = run(&f, &x)?;
    prop_assert_eq!(&jt[..n], &y[..]);
    prop_assert_eq!(&vy[..n], &y[..]);
    let rtol = adjoint_tol(p.precision());
    same_inner(
        "<ybar, J t> vs <J^T ybar, t>",
        dot(&ybar, &jt[n..]),
        dot(&vy[n..], &t),
        rtol,
    )
    .map_err(|e| {
        TestCaseError::fail(format!(
            "{e}\nfunction:\n{}wrt {wrt:?}\nx:\n{}\nt:\n{}\nybar:\n{}",
            print_func(&f),
            show(&x),
            show(&t),
            show(&ybar)
        ))
    })
}

fn prop_transpose(p: &Program, seed: u64) -> Check {
    let f = parse(&p.text())?;
    let lin = p.linear_params().to_vec();
    let tf = transformed("transpose_wrt", &f, transpose_wrt(&f, Some(&lin)))?;
    verify_func(&tf)
        .map_err(|e| TestCaseError::fail(format!("verify: {e}\n{}", print_func(&tf))))?;
    let mut rng = Rng::new(seed);
    let types = f.param_types();
    let xs = random_values(&types, &mut rng, -1.0, 1.0);
    let ybar = random_values(&f.output_types(), &mut rng, -1.0, 1.0);
    let lt = run(&f, &xs)?;
    let others: Vec<Value> = (0..xs.len())
        .filter(|i| !lin.contains(i))
        .map(|i| xs[i].clone())
        .collect();
    let t: Vec<Value> = lin.iter().map(|&i| xs[i].clone()).collect();
    let tbar = run(&tf, &cat(&others, &ybar))?;
    if !finite(&lt) || !finite(&tbar) {
        return Err(TestCaseError::reject("not finite"));
    }
    same_inner(
        "<ybar, L t> vs <L^T ybar, t>",
        dot(&ybar, &lt),
        dot(&tbar, &t),
        adjoint_tol(p.precision()),
    )
    .map_err(|e| {
        TestCaseError::fail(format!(
            "{e}\ninputs:\n{}\nybar:\n{}",
            show(&xs),
            show(&ybar)
        ))
    })
}

// ---------------------------------------------------------------------------------------------

fn prop_hvp(p: &Program, seed: u64) -> Check {
    let f = parse(&p.text())?;
    let probe = parse(&p.probe_text(true))?;
    let mut rng = Rng::new(seed);
    let types = f.param_types();
    let x = random_values(&types, &mut rng, -2.0, 2.0);
    let wrt = random_wrt(types.len(), &mut rng);
    let w = wrt.as_deref();
    let t = random_values(&pick_types(&types, &wrt), &mut rng, -1.0, 1.0);
    // The direction in all of x: t on the inputs in wrt, 0 elsewhere.
    let dx: Vec<Value> = match w {
        None => t.clone(),
        Some(w) => (0..types.len())
            .map(|i| match w.iter().position(|&k| k == i) {
                Some(k) => t[k].clone(),
                None => Value::full(&types[i], 0.0),
            })
            .collect(),
    };
    let [_, center, _] = probes(p, &probe, &x, &dx)?;
    let g = transformed("grad", &f, grad(&f, w))?;
    let h = transformed("hvp", &f, hvp(&f, w))?;
    let j = transformed("jvp", &f, jvp(&f, w))?;
    let gx = run(&g, &x)?;
    let hv = run(&h, &cat(&x, &t))?;
    let jt = run(&j, &cat(&x, &t))?;
    let m = center.max_abs().max(max_abs(&gx)).max(max_abs(&hv));
    if !m.is_finite() || m > LARGEST {
        return Err(TestCaseError::reject("not moderate"));
    }
    // grad agrees with forward mode: <grad, t> = J t.
    same_inner(
        "<grad, t> vs jvp",
        dot(&gx, &t),
        dot(&jt[1..], &[Value::full(&jt[1].ty(), 1.0)]),
        1e-9,
    )
    .map_err(|e| TestCaseError::fail(format!("{e}\nx:\n{}\nt:\n{}", show(&x), show(&t))))?;
    let fd = central(&run(&g, &axpy(&x, H, &dx))?, &run(&g, &axpy(&x, -H, &dx))?);
    close(&hv, &fd, F64_FD, m).map_err(|e| {
        TestCaseError::fail(format!(
            "hvp wrt {wrt:?}: {e}\nx:\n{}\nt:\n{}",
            show(&x),
            show(&t)
        ))
    })
}

/// Forward over forward: the jvp of `g = jvp(f)` against central differences of `g`, in f64.
/// `g` has f's kinks (a derivative rule selects like its primitive), so f's probe decides.
fn prop_jvp_jvp(p: &Program, seed: u64) -> Check {
    let f = parse(&p.text())?;
    let probe = parse(&p.probe_text(true))?;
    let g = transformed("jvp", &f, jvp(&f, None))?;
    let mut rng = Rng::new(seed);
    let types = g.param_types();
    let xt = random_values(&types, &mut rng, -1.5, 1.5);
    let d = random_values(&types, &mut rng, -1.0, 1.0);
    let np = f.param_types().len();
    let [_, center, _] = probes(p, &probe, &xt[..np], &d[..np])?;
    let gg = transformed("jvp∘jvp", &g, jvp(&g, None))?;
    let out = run(&gg, &cat(&xt, &d))?;
    let n = g.output_types().len();
    let m = center.max_abs().max(max_abs(&out));
    if !m.is_finite() || m > LARGEST {
        return Err(TestCaseError::reject("not moderate"));
    }
    let fd = central(&run(&g, &axpy(&xt, H, &d))?, &run(&g, &axpy(&xt, -H, &d))?);
    close(&out[n..], &fd, F64_FD, m).map_err(|e| {
        TestCaseError::fail(format!(
            "jvp∘jvp: {e}\n(x, t):\n{}\ndirection:\n{}",
            show(&xt),
            show(&d)
        ))
    })
}

fn prop_jvp_f64(p: &Program, seed: u64) -> Check {
    jvp_vs_fd(p, seed, F64_FD)
}

fn prop_jvp_f32(p: &Program, seed: u64) -> Check {
    jvp_vs_fd(p, seed, F32_FD)
}

/// The simplified `g` verifies and agrees with `g` on random inputs.
fn same_after_simplify(what: &str, g: &Func, seed: u64) -> Check {
    let (s, _) = simplify(g, &Limits::for_size(g.eqns.len()));
    verify_func(&s).map_err(|e| {
        TestCaseError::fail(format!(
            "{what}: simplified does not verify: {e}
{}",
            print_func(&s)
        ))
    })?;
    prop_assert_eq!(s.param_types(), g.param_types());
    prop_assert_eq!(s.output_types(), g.output_types());
    let xs = random_values(&g.param_types(), &mut Rng::new(seed), -2.0, 2.0);
    let (want, got) = (run(g, &xs)?, run(&s, &xs)?);
    // Any f32 value anywhere in the program sets the f32 tolerance.
    let any_f32 = print_func(g).contains("f32");
    let rtol = if any_f32 { 1e-4 } else { 1e-9 };
    let m = max_abs(&want).max(max_abs(&xs));
    let scale = if m.is_finite() { 1.0 + m } else { 1.0 };
    for (k, (w, g2)) in want.iter().zip(&got).enumerate() {
        for (i, (a, b)) in w.to_f64_vec().iter().zip(g2.to_f64_vec()).enumerate() {
            if !a.is_finite() {
                continue;
            }
            prop_assert!(
                (a - b).abs() <= rtol * scale,
                "{what}: output {k} element {i}: unsimplified {a}, simplified {b}\n{}\nsimplified:\n{}",
                print_func(g),
                print_func(&s)
            );
        }
    }
    Ok(())
}

fn prop_simplify(p: &Program, seed: u64) -> Check {
    let f = parse(&p.text())?;
    same_after_simplify("f", &f, seed)?;
    let j = transformed("jvp", &f, jvp(&f, None))?;
    same_after_simplify("jvp", &j, seed)?;
    let v = transformed("vjp", &f, vjp(&f, None))?;
    same_after_simplify("vjp", &v, seed)?;
    let os = f.output_types();
    if os.len() == 1 && os[0].shape.is_empty() && os[0].dtype.is_float() {
        let h = transformed("hvp", &f, hvp(&f, None))?;
        same_after_simplify("hvp", &h, seed)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The properties, their configurations and case counts.

struct Property {
    name: &'static str,
    cases: u32,
    seed: u64,
    config: fn() -> GenConfig,
    test: fn(&Program, u64) -> Check,
}

const TEXT: Property = Property {
    name: "text",
    cases: 256,
    seed: 1,
    config: || GenConfig::new(OpSet::all()),
    test: prop_text,
};
const TRANSFORMS: Property = Property {
    name: "transforms",
    cases: 160,
    seed: 2,
    config: || GenConfig::new(OpSet::all()).int_outputs(),
    test: prop_transforms,
};
const JVP_F64: Property = Property {
    name: "jvp f64",
    cases: 200,
    seed: 3,
    config: || GenConfig::new(OpSet::fd()).dtype(Float::F64).unmixed(),
    test: prop_jvp_f64,
};
const JVP_F32: Property = Property {
    name: "jvp f32",
    cases: 200,
    seed: 4,
    config: || GenConfig::new(OpSet::smooth()).dtype(Float::F32),
    test: prop_jvp_f32,
};
const JVP_JVP: Property = Property {
    name: "jvp∘jvp",
    cases: 128,
    seed: 8,
    config: || GenConfig::new(OpSet::fd()).dtype(Float::F64).unmixed(),
    test: prop_jvp_jvp,
};
const ADJOINT: Property = Property {
    name: "adjoint",
    cases: 200,
    seed: 5,
    config: || GenConfig::new(OpSet::finite()).int_outputs(),
    test: prop_adjoint,
};
const TRANSPOSE: Property = Property {
    name: "transpose",
    cases: 200,
    seed: 6,
    config: || GenConfig::new(OpSet::linear()),
    test: prop_transpose,
};
const HVP: Property = Property {
    name: "hvp",
    cases: 160,
    seed: 7,
    config: || {
        GenConfig::new(OpSet::fd())
            .dtype(Float::F64)
            .unmixed()
            .scalar(true)
    },
    test: prop_hvp,
};

const SIMPLIFY: Property = Property {
    name: "simplify",
    cases: 200,
    seed: 9,
    config: || GenConfig::new(OpSet::finite()),
    test: prop_simplify,
};

const ALL: [&Property; 9] = [
    &SIMPLIFY,
    &TEXT,
    &TRANSFORMS,
    &JVP_F64,
    &JVP_F32,
    &JVP_JVP,
    &ADJOINT,
    &TRANSPOSE,
    &HVP,
];

#[test]
fn simplification_never_changes_a_value() {
    check(&SIMPLIFY);
}

#[test]
fn text_round_trips_verifies_and_runs() {
    check(&TEXT);
}

#[test]
fn every_transform_gives_a_sound_program() {
    check(&TRANSFORMS);
}

#[test]
fn jvp_matches_central_differences_f64() {
    check(&JVP_F64);
}

#[test]
fn jvp_matches_central_differences_f32() {
    check(&JVP_F32);
}

#[test]
fn jvp_of_jvp_matches_central_differences() {
    check(&JVP_JVP);
}

#[test]
fn vjp_is_the_adjoint_of_jvp() {
    check(&ADJOINT);
}

#[test]
fn transpose_is_the_adjoint_of_a_linear_program() {
    check(&TRANSPOSE);
}

#[test]
fn hvp_matches_central_differences_of_grad() {
    check(&HVP);
}

/// What the properties see: per property, how many cases pass, are rejected (and why) or fail,
/// the mean program size and how often each primitive appears; and two sample programs.
/// `cargo test --test generated -- --ignored --nocapture report`
#[test]
#[ignore]
fn report() {
    use proptest::strategy::{Strategy, ValueTree};
    use std::collections::BTreeMap;
    for prop in ALL {
        let mut runner = TestRunner::deterministic();
        let strategy = gen::programs_with_seed((prop.config)());
        let (mut ok, mut failed, mut eqns) = (0, 0, 0);
        let mut rejected: BTreeMap<String, usize> = BTreeMap::new();
        let mut prims: BTreeMap<String, usize> = BTreeMap::new();
        for i in 0..prop.cases {
            let (p, seed) = strategy.new_tree(&mut runner).unwrap().current();
            if i < 2 {
                println!("{} sample:\n{}", prop.name, p.text());
            }
            eqns += p.n_eqns();
            for line in p.text().lines() {
                if let Some(rhs) = line.split(" = ").nth(1) {
                    let prim = rhs.split([' ', '[']).next().unwrap_or("").to_string();
                    *prims.entry(prim).or_default() += 1;
                }
            }
            match (prop.test)(&p, seed) {
                Ok(()) => ok += 1,
                Err(TestCaseError::Reject(why)) => {
                    *rejected.entry(why.to_string()).or_default() += 1
                }
                Err(TestCaseError::Fail(_)) => failed += 1,
            }
        }
        println!(
            "{}: {ok} passed, {failed} failed, rejected {rejected:?}; {:.1} equations on average\n  {prims:?}",
            prop.name,
            eqns as f64 / prop.cases as f64
        );
    }
}

/// The primitives of `shared/spec/ir-text.md` the generator covers: all but
/// `conv_general_dilated`, which is not implemented yet.
const SPEC_PRIMITIVES: [&str; 59] = [
    "neg",
    "sin",
    "cos",
    "tan",
    "tanh",
    "exp",
    "log",
    "log1p",
    "expm1",
    "sqrt",
    "rsqrt",
    "abs",
    "sign",
    "logistic",
    "erf",
    "floor",
    "ceil",
    "round",
    "integer_pow",
    "stop_gradient",
    "add",
    "sub",
    "mul",
    "div",
    "pow",
    "max",
    "min",
    "atan2",
    "lt",
    "le",
    "gt",
    "ge",
    "eq",
    "ne",
    "and",
    "or",
    "not",
    "select_n",
    "convert_element_type",
    "iota",
    "reduce_sum",
    "reduce_max",
    "reduce_min",
    "argmax",
    "argmin",
    "cumsum",
    "broadcast_in_dim",
    "reshape",
    "transpose",
    "squeeze",
    "expand_dims",
    "rev",
    "slice",
    "pad",
    "concatenate",
    "dot_general",
    "reduce_window_sum",
    "reduce_window_max",
    "reduce_window_min",
];

/// The primitives `n` programs of `cfg` use.
fn generated_primitives(cfg: GenConfig, n: usize) -> std::collections::BTreeSet<String> {
    use proptest::strategy::{Strategy, ValueTree};
    let mut runner = TestRunner::deterministic();
    let strategy = gen::programs(cfg);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..n {
        let p = strategy.new_tree(&mut runner).unwrap().current();
        for line in p.text().lines() {
            if let Some(rhs) = line.split(" = ").nth(1) {
                seen.insert(rhs.split([' ', '[']).next().unwrap_or("").to_string());
            }
        }
    }
    seen
}

/// The generator reaches every primitive, and the finite-difference checks every one but
/// `stop_gradient` (so a property cannot silently stop covering one).
#[test]
fn every_primitive_is_generated() {
    for (cfg, except) in [
        (GenConfig::new(OpSet::all()), None),
        (
            GenConfig::new(OpSet::fd()).dtype(Float::F64).unmixed(),
            Some("stop_gradient"),
        ),
    ] {
        let seen = generated_primitives(cfg, 600);
        let missing: Vec<&str> = SPEC_PRIMITIVES
            .iter()
            .copied()
            .filter(|n| !seen.contains(*n) && Some(*n) != except)
            .collect();
        assert!(missing.is_empty(), "never generated: {missing:?}");
    }
}
