//! The conformance corpus on the JIT: every case and every transform the corpus lists, simplified
//! as `run` and `bench` do by default, compiled with `traceform::jit` and compared with JAX's
//! reference values within the corpus tolerances (the same check `conformance.rs` makes of the
//! interpreter). The JIT's planned arena is at most twice the interpreter's peak plus the
//! arena's alignment padding (it recomputes cheap sums in their readers, which keeps the
//! summands alive; see the comment at the check).

mod common;

use common::*;
use traceform::ir::{parse_func, peak_live_bytes, verify_func};
use traceform::transform::{apply_all, TransformSpec};
use traceform::transforms::{simplify, Limits};

#[test]
fn every_case_and_transform_matches_jax_on_the_jit() {
    let mut passed = std::collections::BTreeMap::new();
    let mut failures = Vec::new();
    for case in corpus_cases() {
        let f = parse_func(&std::fs::read_to_string(case.join("f.ir")).unwrap()).unwrap();
        for (name, words, groups) in TRANSFORMS {
            let refs = numbered(&case, &format!("ref_{name}_"));
            if refs.is_empty() {
                continue;
            }
            let specs: Vec<TransformSpec> = words.iter().map(|w| w.parse().unwrap()).collect();
            let g = apply_all(f.clone(), &specs)
                .unwrap_or_else(|e| panic!("{} {name}: {e}", case.display()));
            let (s, _) = simplify(&g, &Limits::for_size(g.eqns.len()));
            verify_func(&s).unwrap();
            let inputs: Vec<_> = groups
                .iter()
                .flat_map(|g| numbered(&case, g))
                .map(|p| load(&p))
                .collect();
            let exe = traceform::jit::compile(&s)
                .unwrap_or_else(|e| panic!("{} {name}: {e}", case.display()));
            let outs = exe
                .run(&inputs)
                .unwrap_or_else(|e| panic!("{} {name}: {e}", case.display()));
            // Alignment, and the plan's recomputation of cheap sums in their readers, which keeps
            // the summands alive instead of their sum: up to 1.67x the interpreter's peak on the
            // corpus (the jvp_jvp of the small convolutions), below it on AlexNet (11.8 MiB
            // against 17.7 for eval).
            let allowance = 64 * s.eqns.len();
            assert!(
                exe.peak_bytes() <= 2 * peak_live_bytes(&s) + allowance,
                "{} {name}: arena {} > interpreter peak {}",
                case.display(),
                exe.peak_bytes(),
                peak_live_bytes(&s)
            );
            assert_eq!(outs.len(), refs.len(), "{} {name}", case.display());
            let bad = outs
                .iter()
                .zip(&refs)
                .enumerate()
                .find_map(|(k, (got, r))| {
                    mismatch(got, &load(r), tolerance(&case)).map(|m| format!("out{k}: {m}"))
                });
            match bad {
                None => *passed.entry(*name).or_insert(0) += 1,
                Some(m) => failures.push(format!(
                    "{} {name}: {m}\n{}",
                    case.display(),
                    exe.describe()
                )),
            }
        }
    }
    eprintln!("corpus cases passed on the JIT per transform: {passed:?}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let total: usize = passed.values().sum();
    assert_eq!(total, 445, "the corpus has 445 (case, transform) pairs");
}
