//! The conformance corpus (`tests/data/conformance`, a copy of `shared/conformance`): every
//! case parses, verifies, prints and re-parses to the same function, and the interpreter
//! reproduces JAX's reference values for `eval` and for every transform the corpus lists
//! (`jvp`, `vjp`, `grad`, `hvp`, `grad_jvp`, `jvp_jvp`) within the corpus tolerances, before
//! and after simplification.

mod common;

use common::*;
use traceform::ir::{parse_func, peak_live_bytes, print_func, verify_func};
use traceform::runtime::{eval, eval_with_stats};
use traceform::transforms::{simplify, Limits};

#[test]
fn every_case_round_trips_through_the_printer() {
    for case in corpus_cases() {
        let text = std::fs::read_to_string(case.join("f.ir")).unwrap();
        let f = parse_func(&text).unwrap_or_else(|e| panic!("{}: {e}", case.display()));
        verify_func(&f).unwrap();
        let printed = print_func(&f);
        let again = parse_func(&printed)
            .unwrap_or_else(|e| panic!("{}: reparse: {e}\n{printed}", case.display()));
        assert_eq!(again, f, "{}", case.display());
        assert_eq!(print_func(&again), printed, "printing is deterministic");
    }
}

#[test]
fn eval_matches_jax_reference_values() {
    let mut checked = 0;
    for case in corpus_cases() {
        let f = parse_func(&std::fs::read_to_string(case.join("f.ir")).unwrap()).unwrap();
        let inputs: Vec<_> = numbered(&case, "x").iter().map(|p| load(p)).collect();
        let outs = eval(&f, &inputs).unwrap_or_else(|e| panic!("{}: {e}", case.display()));
        let refs = numbered(&case, "ref_eval_");
        assert_eq!(outs.len(), refs.len(), "{}", case.display());
        for (k, (got, r)) in outs.iter().zip(&refs).enumerate() {
            if let Some(m) = mismatch(got, &load(r), tolerance(&case)) {
                panic!("{} eval out{k}: {m}", case.display());
            }
            checked += 1;
        }
    }
    assert!(checked >= 66, "checked {checked} outputs");
}

#[test]
fn every_transform_matches_jax_reference_values() {
    let mut passed = std::collections::BTreeMap::new();
    let mut failures = Vec::new();
    for pair in corpus_pairs() {
        let (g, label) = (&pair.program, pair.label());
        let (outs, stats) =
            eval_with_stats(g, &pair.inputs).unwrap_or_else(|e| panic!("{label}: {e}"));
        // The same values with simplification on, as `run` and `bench` do by default.
        let (s, _) = simplify(g, &Limits::for_size(g.eqns.len()));
        verify_func(&s).unwrap();
        let simplified_outs = eval(&s, &pair.inputs).unwrap_or_else(|e| panic!("{label}: {e}"));
        if let Some(m) = pair.mismatch(&simplified_outs) {
            failures.push(format!("{label} simplified: {m}"));
        }
        // One accounting: the interpreter's measured peak is the static estimate.
        assert_eq!(
            stats.peak_bytes,
            peak_live_bytes(g),
            "{label}: measured and static peaks differ"
        );
        match pair.mismatch(&outs) {
            None => *passed.entry(pair.name).or_insert(0) += 1,
            Some(m) => failures.push(format!("{label}: {m}")),
        }
    }
    eprintln!("corpus cases passed per transform: {passed:?}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(passed.values().sum::<usize>(), CORPUS_PAIRS);
}
