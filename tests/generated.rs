//! Property tests over random well-typed programs (`tests/common/gen.rs`), one per pass:
//!
//! - **text**: `parse(print(f)) == f`, `print(parse(print(f))) == print(f)`, the verifier accepts
//!   `f`, and the interpreter runs it (every op, non-finite literals included);
//! - **transforms**: the verifier accepts `jvp`, `vjp`, `jvp∘jvp`, `vjp∘jvp`, `jvp∘vjp` of every
//!   program, and `grad`, `hvp`, `jvp∘grad` of the scalar ones; each result has the signature of
//!   the spec's table, round-trips through the text and runs;
//! - **jvp, f64**: against central differences, step `H = 1e-6`:
//!   `|jvp - fd| <= 1e-6 |fd| + 1e-8 (1 + M)`, with `M` the largest magnitude of any value or
//!   tangent of the program (the scale of the differences' rounding error);
//! - **jvp, f32**: the f32 program's jvp against central differences of its f64 copy, step 1e-6:
//!   `|jvp - fd| <= 1e-3 |fd| + 1e-5 (1 + M)` (smooth ops only);
//! - **vjp**: the adjoint identity `<ybar, J t> = <J^T ybar, t>` (jvp against vjp), relative to
//!   `1 + sum |ybar_i (J t)_i| + sum |(J^T ybar)_i t_i|`: 1e-9 in f64, 1e-4 in f32;
//! - **transpose**: for programs linear in some inputs, `<ybar, L t> = <L^T ybar, t>` with
//!   `transpose_wrt`, same tolerances;
//! - **hvp, f64**: against central differences of `grad`, step 1e-6, the jvp tolerance; and
//!   `<grad, t>` against the jvp's tangent (1e-9 relative).
//!
//! Finite-difference checks run every op but `stop_gradient`; points where `x - H t`, `x`,
//! `x + H t` do not lie on one smooth piece (a kink indicator of the probe program changes), or
//! where a value exceeds 1e6, are rejected, not failed. Every property has a fixed seed and a
//! bounded number of cases; a failure prints the shrunk program and its inputs.

mod common;

use common::gen::{
    self, axpy, dot, max_abs, random_values, show, widen, Float, GenConfig, OpSet, Probe,
    Program, Rng,
};
use proptest::prelude::*;
use proptest::test_runner::{RngSeed, TestCaseError, TestError, TestRunner};
use traceform::ir::verify_func;
use traceform::transforms::{grad, hvp, jvp, transpose_wrt, vjp};
use traceform::{eval, parse_func, print_func, Func, Type, Value};

type Check = Result<(), TestCaseError>;

/// Runs `test` on `cases` programs of `cfg`, with a fixed seed; on failure, panics with the
/// shrunk program and the failure.
fn check(name: &str, cases: u32, seed: u64, cfg: GenConfig, test: impl Fn(&Program, u64) -> Check) {
    // Deeper runs by hand: TRACEFORM_GEN_CASES=5000 TRACEFORM_GEN_SEED=9 cargo test --test generated
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let cases = env("TRACEFORM_GEN_CASES").map_or(cases, |c| c as u32);
    let seed = env("TRACEFORM_GEN_SEED").map_or(seed, |s| s.wrapping_mul(1000) + seed);
    let config = ProptestConfig {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed),
        max_global_rejects: cases * 4,
        ..ProptestConfig::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&gen::programs_with_seed(cfg), |(p, s)| test(&p, s));
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, (p, s))) => {
            panic!("{name}: {why}\nprogram (input seed {s}):\n{}", p.text())
        }
        Err(e) => panic!("{name}: {e}"),
    }
}

fn parse(text: &str) -> Result<Func, TestCaseError> {
    parse_func(text).map_err(|e| TestCaseError::fail(format!("does not parse: {e}\n{text}")))
}

fn run(f: &Func, xs: &[Value]) -> Result<Vec<Value>, TestCaseError> {
    eval(f, xs).map_err(|e| {
        TestCaseError::fail(format!("eval failed: {e}\n{}\ninputs:\n{}", print_func(f), show(xs)))
    })
}

fn transformed(what: &str, f: &Func, r: Result<Func, impl std::fmt::Display>) -> Result<Func, TestCaseError> {
    r.map_err(|e| TestCaseError::fail(format!("{what} failed: {e}\nof:\n{}", print_func(f))))
}

fn cat(a: &[Value], b: &[Value]) -> Vec<Value> {
    a.iter().chain(b).cloned().collect()
}

fn finite(vs: &[Value]) -> bool {
    max_abs(vs).is_finite()
}

// ---------------------------------------------------------------------------------------------

#[test]
fn text_round_trips_verifies_and_runs() {
    check("text", 256, 1, GenConfig::new(OpSet::all()), |p, seed| {
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
    });
}

/// Verifies `g`, checks its signature, round-trips it through the text and runs it.
fn sound(what: &str, g: &Func, params: &[Type], outputs: &[Type], seed: u64) -> Check {
    verify_func(g).map_err(|e| TestCaseError::fail(format!("{what}: verify: {e}\n{}", print_func(g))))?;
    prop_assert_eq!(&g.param_types(), params, "{} parameters\n{}", what, print_func(g));
    prop_assert_eq!(&g.output_types(), outputs, "{} outputs\n{}", what, print_func(g));
    let printed = print_func(g);
    let again = parse(&printed)?;
    prop_assert_eq!(&again, g, "{}: parse(print) differs\n{}", what, printed);
    let xs = random_values(params, &mut Rng::new(seed), -2.0, 2.0);
    run(g, &xs)?;
    Ok(())
}

#[test]
fn every_transform_gives_a_sound_program() {
    check("transforms", 128, 2, GenConfig::new(OpSet::all()), |p, seed| {
        let f = parse(&p.text())?;
        let (ps, os) = (f.param_types(), f.output_types());
        // Every parameter and output of a generated program is float.
        let j = transformed("jvp", &f, jvp(&f, None))?;
        sound("jvp", &j, &cat2(&ps, &ps), &cat2(&os, &os), seed)?;
        let v = transformed("vjp", &f, vjp(&f, None))?;
        sound("vjp", &v, &cat2(&ps, &os), &cat2(&os, &ps), seed)?;
        let jj = transformed("jvp∘jvp", &j, jvp(&j, None))?;
        let (jp, jo) = (j.param_types(), j.output_types());
        sound("jvp∘jvp", &jj, &cat2(&jp, &jp), &cat2(&jo, &jo), seed)?;
        let vj = transformed("vjp∘jvp", &j, vjp(&j, None))?;
        sound("vjp∘jvp", &vj, &cat2(&jp, &jo), &cat2(&jo, &jp), seed)?;
        let (vp, vo) = (v.param_types(), v.output_types());
        let jv = transformed("jvp∘vjp", &v, jvp(&v, None))?;
        sound("jvp∘vjp", &jv, &cat2(&vp, &vp), &cat2(&vo, &vo), seed)?;
        if os.len() == 1 && os[0].shape.is_empty() {
            let g = transformed("grad", &f, grad(&f, None))?;
            sound("grad", &g, &ps, &ps, seed)?;
            let h = transformed("hvp", &f, hvp(&f, None))?;
            sound("hvp", &h, &cat2(&ps, &ps), &ps, seed)?;
            let jg = transformed("jvp∘grad", &g, jvp(&g, None))?;
            sound("jvp∘grad", &jg, &cat2(&ps, &ps), &cat2(&ps, &ps), seed)?;
        }
        Ok(())
    });
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

const F64_FD: Tol = Tol { rtol: 1e-6, atol: 1e-8 };
const F32_FD: Tol = Tol { rtol: 1e-3, atol: 1e-5 };

fn close(got: &[Value], want: &[Vec<f64>], tol: Tol, m: f64) -> Result<(), String> {
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        for (i, (a, b)) in g.to_f64_vec().iter().zip(w).enumerate() {
            let bound = tol.rtol * b.abs() + tol.atol * (1.0 + m);
            if !((a - b).abs() <= bound) {
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
fn probes(p: &Program, probe: &Func, x: &[Value], t: &[Value]) -> Result<[Probe; 3], TestCaseError> {
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
    let (x64, t64): (Vec<Value>, Vec<Value>) = (x.iter().map(widen).collect(), t.iter().map(widen).collect());
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
    close(tangents, &fd, tol, m).map_err(|e| {
        TestCaseError::fail(format!("jvp: {e}\nx:\n{}\nt:\n{}", show(&x), show(&t)))
    })
}

#[test]
fn jvp_matches_central_differences_f64() {
    check("jvp f64", 160, 3, GenConfig::new(OpSet::fd()).dtype(Float::F64).unmixed(), |p, seed| {
        jvp_vs_fd(p, seed, F64_FD)
    });
}

#[test]
fn jvp_matches_central_differences_f32() {
    check("jvp f32", 128, 4, GenConfig::new(OpSet::smooth()).dtype(Float::F32), |p, seed| {
        jvp_vs_fd(p, seed, F32_FD)
    });
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

#[test]
fn vjp_is_the_adjoint_of_jvp() {
    check("adjoint", 160, 5, GenConfig::new(OpSet::finite()), |p, seed| {
        let f = parse(&p.text())?;
        let mut rng = Rng::new(seed);
        let types = f.param_types();
        let x = random_values(&types, &mut rng, -2.0, 2.0);
        let t = random_values(&types, &mut rng, -1.0, 1.0);
        let ybar = random_values(&f.output_types(), &mut rng, -1.0, 1.0);
        let n = p.n_outputs();
        let j = transformed("jvp", &f, jvp(&f, None))?;
        let v = transformed("vjp", &f, vjp(&f, None))?;
        let jt = run(&j, &cat(&x, &t))?;
        let vy = run(&v, &cat(&x, &ybar))?;
        if !finite(&jt) || !finite(&vy) || max_abs(&jt).max(max_abs(&vy)) > LARGEST {
            return Err(TestCaseError::reject("not moderate"));
        }
        // The primal outputs of both agree with eval.
        let y = run(&f, &x)?;
        prop_assert_eq!(&jt[..n], &y[..]);
        prop_assert_eq!(&vy[..n], &y[..]);
        same_inner("<ybar, J t> vs <J^T ybar, t>", dot(&ybar, &jt[n..]), dot(&vy[n..], &t), adjoint_tol(p.precision()))
            .map_err(|e| TestCaseError::fail(format!("{e}\nx:\n{}\nt:\n{}\nybar:\n{}", show(&x), show(&t), show(&ybar))))
    });
}

#[test]
fn transpose_is_the_adjoint_of_a_linear_program() {
    check("transpose", 160, 6, GenConfig::new(OpSet::linear()), |p, seed| {
        let f = parse(&p.text())?;
        let lin = p.linear_params().to_vec();
        let tf = transformed("transpose_wrt", &f, transpose_wrt(&f, Some(&lin)))?;
        verify_func(&tf).map_err(|e| TestCaseError::fail(format!("verify: {e}\n{}", print_func(&tf))))?;
        let mut rng = Rng::new(seed);
        let types = f.param_types();
        let xs = random_values(&types, &mut rng, -1.0, 1.0);
        let ybar = random_values(&f.output_types(), &mut rng, -1.0, 1.0);
        let lt = run(&f, &xs)?;
        let others: Vec<Value> = (0..xs.len()).filter(|i| !lin.contains(i)).map(|i| xs[i].clone()).collect();
        let t: Vec<Value> = lin.iter().map(|&i| xs[i].clone()).collect();
        let tbar = run(&tf, &cat(&others, &ybar))?;
        if !finite(&lt) || !finite(&tbar) {
            return Err(TestCaseError::reject("not finite"));
        }
        same_inner("<ybar, L t> vs <L^T ybar, t>", dot(&ybar, &lt), dot(&tbar, &t), adjoint_tol(p.precision()))
            .map_err(|e| TestCaseError::fail(format!("{e}\ninputs:\n{}\nybar:\n{}", show(&xs), show(&ybar))))
    });
}

// ---------------------------------------------------------------------------------------------

#[test]
fn hvp_matches_central_differences_of_grad() {
    let cfg = GenConfig::new(OpSet::fd()).dtype(Float::F64).unmixed().scalar(true);
    check("hvp", 128, 7, cfg, |p, seed| {
        let f = parse(&p.text())?;
        let probe = parse(&p.probe_text(true))?;
        let mut rng = Rng::new(seed);
        let types = f.param_types();
        let x = random_values(&types, &mut rng, -2.0, 2.0);
        let t = random_values(&types, &mut rng, -1.0, 1.0);
        let [_, center, _] = probes(p, &probe, &x, &t)?;
        let g = transformed("grad", &f, grad(&f, None))?;
        let h = transformed("hvp", &f, hvp(&f, None))?;
        let j = transformed("jvp", &f, jvp(&f, None))?;
        let gx = run(&g, &x)?;
        let hv = run(&h, &cat(&x, &t))?;
        let jt = run(&j, &cat(&x, &t))?;
        let m = center.max_abs().max(max_abs(&gx)).max(max_abs(&hv));
        if !m.is_finite() || m > LARGEST {
            return Err(TestCaseError::reject("not moderate"));
        }
        // grad agrees with forward mode: <grad, t> = J t.
        same_inner("<grad, t> vs jvp", dot(&gx, &t), dot(&jt[1..], &[Value::full(&jt[1].ty(), 1.0)]), 1e-9)
            .map_err(|e| TestCaseError::fail(format!("{e}\nx:\n{}\nt:\n{}", show(&x), show(&t))))?;
        let fd = central(&run(&g, &axpy(&x, H, &t))?, &run(&g, &axpy(&x, -H, &t))?);
        close(&hv, &fd, F64_FD, m).map_err(|e| {
            TestCaseError::fail(format!("hvp: {e}\nx:\n{}\nt:\n{}", show(&x), show(&t)))
        })
    });
}

#[test]
#[ignore]
fn zz_stats() {
    use proptest::strategy::ValueTree;
    let cfgs: Vec<(&str, GenConfig)> = vec![
        ("all", GenConfig::new(OpSet::all())),
        ("fd64", GenConfig::new(OpSet::fd()).dtype(Float::F64).unmixed()),
        ("smooth32", GenConfig::new(OpSet::smooth()).dtype(Float::F32)),
        ("linear", GenConfig::new(OpSet::linear())),
        ("hvp", GenConfig::new(OpSet::fd()).dtype(Float::F64).unmixed().scalar(true)),
    ];
    for (name, cfg) in cfgs {
        let mut runner = TestRunner::deterministic();
        let strat = gen::programs_with_seed(cfg);
        let mut hist = std::collections::BTreeMap::new();
        let (mut ok, mut rej, mut fail, mut neq) = (0, 0, 0, 0);
        let mut reasons = std::collections::BTreeMap::new();
        for i in 0..300 {
            let (p, s) = strat.new_tree(&mut runner).unwrap().current();
            neq += p.n_eqns();
            for line in p.text().lines().skip(1) {
                if let Some(r) = line.split(" = ").nth(1) {
                    let prim = r.split(|c| c == ' ' || c == '[').next().unwrap().to_string();
                    *hist.entry(prim).or_insert(0) += 1;
                }
            }
            if i < 3 {
                println!("--- {name} sample\n{}", p.text());
            }
            let r = match name {
                "fd64" => jvp_vs_fd(&p, s, F64_FD),
                "smooth32" => jvp_vs_fd(&p, s, F32_FD),
                _ => Ok(()),
            };
            match r {
                Ok(()) => ok += 1,
                Err(TestCaseError::Reject(why)) => {
                    rej += 1;
                    *reasons.entry(why.to_string()).or_insert(0) += 1;
                }
                Err(TestCaseError::Fail(_)) => fail += 1,
            }
        }
        println!("=== {name}: ok {ok} rejected {rej} failed {fail}, mean eqns {:.1}\n{reasons:?}\n{hist:?}", neq as f64 / 300.0);
    }
}
