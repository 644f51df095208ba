//! The conformance corpus (`tests/data/conformance`, a copy of `shared/conformance`): every
//! case parses, verifies, prints and re-parses to the same function, and the interpreter
//! reproduces JAX's reference values for `eval` within the corpus tolerances.

mod common;

use common::*;
use traceform::ir::{parse_func, print_func, verify_func};
use traceform::runtime::eval;

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
    assert!(checked >= 52, "checked {checked} outputs");
}
