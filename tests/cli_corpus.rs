//! The conformance corpus driven through the `traceform` binary exactly as
//! `shared/conformance/README.md` describes (`run FILE [-t T]... --out DIR INPUTS...`), with
//! each backend (the JIT, the default, and the interpreter), compared with JAX's reference values
//! at the corpus tolerances.

mod common;

use std::process::Command;

use common::*;

#[test]
fn the_cli_reproduces_every_reference_value_on_the_interpreter() {
    check_backend("interp");
}

#[test]
fn the_cli_reproduces_every_reference_value_on_the_jit() {
    check_backend("jit");
}

fn check_backend(backend: &str) {
    let out_root = std::env::temp_dir().join(format!(
        "traceform-cli-corpus-{backend}-{}",
        std::process::id()
    ));
    let (mut passed, mut failures) = (0, Vec::new());
    for case in corpus_cases() {
        for (name, words, groups) in TRANSFORMS {
            let refs = numbered(&case, &format!("ref_{name}_"));
            if refs.is_empty() {
                continue;
            }
            let out_dir = out_root.join(format!(
                "{}-{name}",
                case.file_name().unwrap().to_string_lossy()
            ));
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_traceform"));
            cmd.arg("run").arg(case.join("f.ir"));
            for w in *words {
                cmd.args(["-t", w]);
            }
            cmd.args(["--backend", backend, "--out"]).arg(&out_dir);
            for g in *groups {
                cmd.args(numbered(&case, g));
            }
            let result = cmd.output().unwrap();
            if !result.status.success() {
                failures.push(format!(
                    "{} {name}: {}",
                    case.display(),
                    String::from_utf8_lossy(&result.stderr)
                ));
                continue;
            }
            let bad = refs.iter().enumerate().find_map(|(k, r)| {
                let got = out_dir.join(format!("out{k}.npy"));
                if !got.exists() {
                    return Some(format!("missing out{k}.npy"));
                }
                mismatch(&load(&got), &load(r), tolerance(&case)).map(|m| format!("out{k}: {m}"))
            });
            match bad {
                None => passed += 1,
                Some(m) => failures.push(format!("{} {name}: {m}", case.display())),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&out_root);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(passed, CORPUS_PAIRS);
}
