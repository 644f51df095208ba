//! Bug 10 of the new user's report: `reduce_sum`, `reduce_max` and `reduce_min` copied their
//! whole input (335 ms for `reduce_max` of 1e7 f32, and the copy was missing from
//! `peak_bytes`). A counting allocator measures what evaluating each reduction allocates: the
//! output and small bookkeeping, never another input-sized buffer. (This file holds one test,
//! so no other test allocates while it counts.)

use ndarray::ArrayD;
use traceform::{eval, parse_func, Value};

#[path = "common/counting.rs"]
mod counting;
use counting::allocated_by;

#[test]
fn reductions_allocate_their_output_not_a_copy_of_their_input() {
    let (rows, cols) = (1000, 1000);
    let input_bytes = rows * cols * 4;
    let x = Value::F32(ArrayD::from_elem(vec![rows, cols], 0.5f32));
    for prim in ["reduce_sum", "reduce_max", "reduce_min"] {
        for (axes, out) in [
            ("(0,1)", "f32[]"),
            ("(0)", "f32[1000]"),
            ("(1)", "f32[1000]"),
        ] {
            let f = parse_func(&format!(
                "func f(x: f32[{rows},{cols}]) -> {out} {{\n  y = {prim}[axes={axes}] x\n  return y\n}}\n"
            ))
            .unwrap();
            let (y, allocated) = allocated_by(|| eval(&f, std::slice::from_ref(&x)).unwrap());
            assert!(
                allocated < input_bytes / 4,
                "{prim}[axes={axes}] allocated {allocated} bytes for a {input_bytes}-byte input"
            );
            drop(y);
        }
    }
}
