//! Forward mode keeps no tape: by the static liveness estimate `peak_live_bytes`, the jvp
//! program of each workload holds at most the memory of f plus one tangent per value f holds
//! at once (and one product-rule temporary). On the deep `chain` workload reverse mode keeps a
//! residual per layer and holds over ten times more. Figures: run with `--nocapture`.

use traceform_ir::{parse_func, peak_live_bytes, Func};
use traceform_transforms::{grad, hvp, jvp, vjp};

fn workload(name: &str) -> Func {
    let p = format!(
        "{}/../tests/data/workloads/{name}/f.ir",
        env!("CARGO_MANIFEST_DIR")
    );
    parse_func(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn peaks(f: &Func) -> [usize; 5] {
    [
        peak_live_bytes(f),
        peak_live_bytes(&jvp(f, None).unwrap()),
        peak_live_bytes(&vjp(f, None).unwrap()),
        peak_live_bytes(&grad(f, None).unwrap()),
        peak_live_bytes(&hvp(f, None).unwrap()),
    ]
}

#[test]
fn jvp_holds_the_memory_of_f_plus_tangents() {
    for name in ["rosenbrock", "chain", "mlp"] {
        let [f, jvp, vjp, grad, hvp] = peaks(&workload(name));
        eprintln!("{name} peak live bytes: f {f}, jvp {jvp}, vjp {vjp}, grad {grad}, hvp {hvp}");
        // Every value f holds at once may carry one tangent, plus one product-rule temporary
        // of the largest value's size.
        let w = workload(name);
        let largest = w
            .eqns
            .iter()
            .map(|e| w.var_type(e.out).size_bytes())
            .max()
            .unwrap();
        assert!(jvp <= 2 * f + largest, "{name}: jvp {jvp} vs f {f}");
    }
    // On the deep chain, reverse mode keeps a residual per layer; forward mode does not.
    let [f, jvp, vjp, _, _] = peaks(&workload("chain"));
    assert!(vjp > 10 * jvp, "chain: vjp {vjp}, jvp {jvp}, f {f}");
}
