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
        // corpus (the jvp_jvp of the small convolutions), below it on AlexNet (11.8 MiB
        // against 17.7 for eval).
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
