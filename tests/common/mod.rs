//! Helpers shared by the end-to-end tests: the corpus copied into `tests/data`, the
//! tolerance check the corpus README states, and (`gen`) the generator of random well-typed
//! programs.
#![allow(dead_code)]

pub mod gen;

use std::path::{Path, PathBuf};

use traceform::npy::read_npy;
use traceform::Value;

/// The corpus transforms (`shared/conformance/README.md`): name, `-t` words, and the input
/// groups they take, in order.
pub const TRANSFORMS: &[(&str, &[&str], &[&str])] = &[
    ("eval", &[], &["x"]),
    ("jvp", &["jvp"], &["x", "t"]),
    ("vjp", &["vjp"], &["x", "c"]),
    ("grad", &["grad"], &["x"]),
    ("hvp", &["hvp"], &["x", "t"]),
    ("grad_jvp", &["grad", "jvp"], &["x", "t"]),
    ("jvp_jvp", &["jvp", "jvp"], &["x", "t", "u", "w"]),
];

pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// Every case folder of the conformance corpus, sorted by name.
pub fn corpus_cases() -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(data_dir().join("conformance"))
        .expect("tests/data/conformance exists")
        .map(|e| e.expect("readable").path())
        .filter(|p| p.join("f.ir").exists())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 56,
        "the corpus has 56 cases, found {}",
        cases.len()
    );
    cases
}

/// The files `<prefix><k>.npy` of a case folder, in order of k.
pub fn numbered(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<(usize, PathBuf)> = std::fs::read_dir(dir)
        .expect("case folder")
        .filter_map(|e| {
            let p = e.ok()?.path();
            let name = p.file_name()?.to_str()?.to_string();
            let k = name.strip_prefix(prefix)?.strip_suffix(".npy")?;
            let k: usize = k.parse().ok()?;
            Some((k, p))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}

pub fn load(p: &Path) -> Value {
    read_npy(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The corpus tolerances: float64 rtol 1e-7, atol 1e-9; float32 rtol 2e-4, atol 1e-5.
pub fn tolerance(case: &Path) -> (f64, f64) {
    match load(&case.join("x0.npy")) {
        Value::F32(_) => (2e-4, 1e-5),
        _ => (1e-7, 1e-9),
    }
}

/// `None` if `got` matches `want` (shape, dtype, values within tolerance, NaN equal to NaN),
/// else what differs.
pub fn mismatch(got: &Value, want: &Value, (rtol, atol): (f64, f64)) -> Option<String> {
    if got.ty() != want.ty() {
        return Some(format!("type {} != {}", got.ty(), want.ty()));
    }
    let (g, w) = (got.to_f64_vec(), want.to_f64_vec());
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        let ok = (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= atol + rtol * b.abs();
        if !ok {
            return Some(format!("element {i}: got {a}, want {b}"));
        }
    }
    None
}
