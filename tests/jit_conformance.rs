//! The conformance corpus on the JIT: every case and every transform the corpus lists, simplified
//! as `run` and `bench` do by default, compiled with `traceform::jit` and compared with JAX's
//! reference values within the corpus tolerances (the same check `conformance.rs` makes of the
//! interpreter). The JIT's planned arena is at most twice the interpreter's peak plus the
//! arena's alignment padding (it recomputes cheap sums in their readers, which keeps the
//! summands alive; see the comment at the check).

mod common;

use common::*;
use traceform::ir::{peak_live_bytes, verify_func};
use traceform::transforms::{simplify, Limits};

#[test]
fn every_case_and_transform_matches_jax_on_the_jit() {
    let mut passed = std::collections::BTreeMap::new();
    let mut failures = Vec::new();
    for pair in corpus_pairs() {
        let (g, label) = (&pair.program, pair.label());
        let (s, _) = simplify(g, &Limits::for_size(g.eqns.len()));
        verify_func(&s).unwrap();
        let exe = traceform::jit::compile(&s).unwrap_or_else(|e| panic!("{label}: {e}"));
        let outs = exe
            .run(&pair.inputs)
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        // Alignment, and the plan's recomputation of cheap sums in their readers, which keeps
        // the summands alive instead of their sum: up to 1.67x the interpreter's peak on the
        // corpus (the jvp_jvp of the small convolutions), below it on AlexNet (7.3 MiB
        // against 17.7 for eval, `alexnet_memory_on_the_jit`).
        let allowance = 64 * s.eqns.len();
        assert!(
            exe.peak_bytes() <= 2 * peak_live_bytes(&s) + allowance,
            "{label}: arena {} > interpreter peak {}",
            exe.peak_bytes(),
            peak_live_bytes(&s)
        );
        match pair.mismatch(&outs) {
            None => *passed.entry(pair.name).or_insert(0) += 1,
            Some(m) => failures.push(format!("{label}: {m}\n{}", exe.describe())),
        }
    }
    eprintln!("corpus cases passed on the JIT per transform: {passed:?}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(passed.values().sum::<usize>(), CORPUS_PAIRS);
}

/// The seed's case on the JIT (the default backend), whose arena is what `bench` reports as
/// `peak_bytes`: AlexNet's jvp holds at most 2.1x what its eval holds (f plus one tangent per
/// live value) and less than XLA's 42.3 MiB, and the double-vjp trick keeping its last output
/// holds no more than the jvp (7.3, 14.7 and 14.2 MiB when written).
#[test]
fn alexnet_memory_on_the_jit() {
    use traceform::transforms::{jvp, select_outputs, vjp};
    let text = std::fs::read_to_string(data_dir().join("workloads/alexnet/f.ir")).unwrap();
    let f = traceform::parse_func(&text).unwrap();
    let wrt: Vec<usize> = (0..16).collect();
    let arena = |g: &traceform::ir::Func| {
        let (s, _) = simplify(g, &Limits::for_size(g.eqns.len()));
        traceform::jit::compile(&s).unwrap().peak_bytes()
    };
    let eval = arena(&f);
    let jvp_peak = arena(&jvp(&f, Some(&wrt)).unwrap());
    let vv = vjp(&vjp(&f, Some(&wrt)).unwrap(), Some(&[18])).unwrap();
    let last = vv.outputs.len() - 1;
    let double_vjp = arena(&select_outputs(&vv, &[last]).unwrap());
    let mib = |b: usize| b as f64 / (1 << 20) as f64;
    eprintln!(
        "alexnet JIT arena MiB: eval {:.1}, jvp {:.1}, double-vjp {:.1}",
        mib(eval),
        mib(jvp_peak),
        mib(double_vjp)
    );
    assert!(
        jvp_peak as f64 <= 2.1 * eval as f64,
        "jvp {jvp_peak} vs eval {eval}"
    );
    assert!(mib(jvp_peak) <= 42.3, "jvp {jvp_peak}");
    assert!(
        double_vjp <= jvp_peak,
        "double-vjp {double_vjp} vs jvp {jvp_peak}"
    );
}
