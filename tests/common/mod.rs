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

/// The (case, transform) pairs the corpus lists references for.
pub const CORPUS_PAIRS: usize = 445;

/// One (case, transform) pair of the corpus: the transformed program (verified), its inputs
/// and the reference files of its outputs.
pub struct Pair {
    pub case: PathBuf,
    pub name: &'static str,
    pub program: traceform::Func,
    pub inputs: Vec<Value>,
    pub refs: Vec<PathBuf>,
}

impl Pair {
    /// `case transform`, for messages.
    pub fn label(&self) -> String {
        format!("{} {}", self.case.display(), self.name)
    }

    /// `None` if `outs` match the references within the corpus tolerances, else what differs.
    pub fn mismatch(&self, outs: &[Value]) -> Option<String> {
        if outs.len() != self.refs.len() {
            return Some(format!(
                "{} outputs, {} references",
                outs.len(),
                self.refs.len()
            ));
        }
        let tol = tolerance(&self.case);
        outs.iter()
            .zip(&self.refs)
            .enumerate()
            .find_map(|(k, (got, r))| mismatch(got, &load(r), tol).map(|m| format!("out{k}: {m}")))
    }
}

/// Every (case, transform) pair of the corpus, each program transformed by the CLI's `-t`
/// words and verified.
pub fn corpus_pairs() -> Vec<Pair> {
    use traceform::transform::{apply_all, TransformSpec};
    let mut pairs = Vec::new();
    for case in corpus_cases() {
        let text = std::fs::read_to_string(case.join("f.ir")).unwrap();
        let f = traceform::parse_func(&text).unwrap();
        for &(name, words, groups) in TRANSFORMS {
            let refs = numbered(&case, &format!("ref_{name}_"));
            if refs.is_empty() {
                continue;
            }
            let specs: Vec<TransformSpec> = words.iter().map(|w| w.parse().unwrap()).collect();
            let program = apply_all(f.clone(), &specs)
                .unwrap_or_else(|e| panic!("{} {name}: {e}", case.display()));
            traceform::ir::verify_func(&program).unwrap();
            let inputs = groups
                .iter()
                .flat_map(|g| numbered(&case, g))
                .map(|p| load(&p))
                .collect();
            pairs.push(Pair {
                case: case.clone(),
                name,
                program,
                inputs,
                refs,
            });
        }
    }
    assert_eq!(
        pairs.len(),
        CORPUS_PAIRS,
        "the corpus has {CORPUS_PAIRS} (case, transform) pairs"
    );
    pairs
}

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
    assert_eq!(cases.len(), 64, "the corpus has 64 cases");
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
