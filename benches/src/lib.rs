//! Shared inputs for the criterion benchmarks: the workload programs of `tests/data`, and the
//! generated chain of any length (`write_chain`, also the `gen_chain` binary) on which the
//! IR's size targets are measured.

use std::io::{self, Write};

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

/// The operand name of value `i`: `x0` for the parameter (`i < 0`), else `v{i}`.
struct Name(i64);

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0 < 0 {
            f.write_str("x0")
        } else {
            write!(f, "v{}", self.0)
        }
    }
}

/// Writes the chain program of exactly `n >= 1` equations described in `gen_chain`'s docs.
pub fn write_chain(n: u64, out: &mut impl Write) -> io::Result<()> {
    writeln!(
        out,
        "# gen_chain {n}: {n} equations cycling \
         sin mul tanh add exp reduce_sum broadcast_in_dim sub cos"
    )?;
    writeln!(out, "func chain(x0: f32[8]) -> f32[] {{")?;
    let n = n as i64;
    for i in 0..n {
        let p = Name(i - 1);
        let last = i == n - 1;
        let k = i % 9;
        if last && k != 5 {
            // The value before is f32[8] unless it is this cycle's reduce_sum (k == 6).
            if k == 6 {
                writeln!(out, "  v{i}: f32[] = mul {p} 0.5:f32")?;
            } else {
                writeln!(out, "  v{i}: f32[] = reduce_sum[axes=(0)] {p}")?;
            }
            break;
        }
        match k {
            0 => writeln!(out, "  v{i}: f32[8] = sin {p}")?,
            1 => {
                if (i / 9) % 2 == 0 {
                    writeln!(out, "  v{i}: f32[8] = mul {p} 0.5:f32")?
                } else {
                    writeln!(out, "  v{i}: f32[8] = mul {p} v{}", i - 2)?
                }
            }
            2 => writeln!(out, "  v{i}: f32[8] = tanh {p}")?,
            3 => writeln!(out, "  v{i}: f32[8] = add {p} -2.0:f32")?,
            4 => writeln!(out, "  v{i}: f32[8] = exp {p}")?,
            5 => writeln!(out, "  v{i}: f32[] = reduce_sum[axes=(0)] {p}")?,
            6 => writeln!(
                out,
                "  v{i}: f32[8] = broadcast_in_dim[shape=(8), dims=()] {p}"
            )?,
            7 => writeln!(out, "  v{i}: f32[8] = sub {p} v{}", i - 3)?,
            _ => writeln!(out, "  v{i}: f32[8] = cos {p}")?,
        }
    }
    writeln!(out, "  return v{}", n - 1)?;
    writeln!(out, "}}")?;
    Ok(())
}

/// The chain program of `n` equations, as text.
pub fn chain_text(n: u64) -> String {
    let mut out = Vec::new();
    write_chain(n, &mut out).expect("writing to a Vec cannot fail");
    String::from_utf8(out).expect("the generator writes ASCII")
}
