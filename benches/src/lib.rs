//! Shared inputs for the criterion benchmarks: the workload programs of `tests/data`.

use traceform_ir::{parse_func, Func};

/// The text of a workload program (`chain`, `mlp` or `rosenbrock`).
pub fn workload_text(name: &str) -> String {
    let path = format!(
        "{}/../tests/data/workloads/{name}/f.ir",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path).expect("workload program")
}

/// A workload program, parsed.
pub fn workload(name: &str) -> Func {
    parse_func(&workload_text(name)).expect("workload parses")
}
