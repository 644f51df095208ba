//! `gen_chain`: writes a long straight-line program in traceform's text IR, for measuring how the
//! parser, the transforms and the printer scale with program size (10^5 to 10^6 equations).
//!
//! Usage: `gen_chain N` writes to stdout one function `chain(x0: f32[8]) -> f32[]` of exactly `N`
//! equations (`N >= 1`), e.g.
//!
//! ```text
//! cargo run --release -p traceform-benches --bin gen_chain -- 1000000 > chain1m.ir
//! traceform dump chain1m.ir -t grad --stage transformed > /dev/null
//! ```
//!
//! The equations cycle through sin, mul, tanh, add, exp, reduce_sum, broadcast_in_dim, sub, cos
//! (in that order; nine equations per cycle). Value `vi` is defined by equation `i`; `p` below is
//! the previous value (`x0` for the first equation):
//!
//! | i mod 9 | equation `vi = ...`                            | range        |
//! |---------|------------------------------------------------|--------------|
//! | 0       | `sin p`                                        | [-1, 1]      |
//! | 1       | `mul p 0.5:f32` in even cycles, `mul p v(i-2)` | [-1, 1]      |
//! |         | (v(i-2): the previous cycle's cos) in odd ones |              |
//! | 2       | `tanh p`                                       | [-1, 1]      |
//! | 3       | `add p -2.0:f32`                               | [-2.7, -1.3] |
//! | 4       | `exp p`                                        | [0.06, 0.28] |
//! | 5       | `reduce_sum[axes=(0)] p`, an `f32[]`           | [0.5, 2.2]   |
//! | 6       | `broadcast_in_dim[shape=(8), dims=()] p`       | [0.5, 2.2]   |
//! | 7       | `sub p v(i-3)` (this cycle's exp)              | [0.4, 1.9]   |
//! | 8       | `cos p`                                        | [-0.4, 1]    |
//!
//! Every cycle restarts from a value in [-1, 1], so evaluation stays finite for any finite `x0`
//! and any `N`. The `-2.0` keeps `exp` small, which makes each cycle a contraction (measured in
//! f64: nearby inputs get closer by a factor of about e^-0.57 per cycle, every input tried ending
//! on the same fixed point), so the value of a long chain does not depend on rounding details
//! (a chaotic chain would, and two correct evaluators would disagree), and its derivatives
//! shrink rather than overflow.
//!
//! The last equation makes the result a scalar: if the cycle would end on an `f32[8]` value,
//! equation `N-1` is `reduce_sum[axes=(0)]` of the previous value instead; if the previous value
//! is already the scalar of a reduce_sum, it is `mul p 0.5:f32`. Either way the program has
//! exactly `N` equations, so `grad` and `hvp` apply.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use traceform_benches::write_chain;

const USAGE: &str =
    "usage: gen_chain N   (writes a chain program of exactly N >= 1 equations to stdout)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = match args.as_slice() {
        [a] => match a.replace('_', "").parse::<u64>() {
            Ok(n) if n >= 1 => n,
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
    match write_chain(n, &mut out).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (e.g. `| head`) is not an error worth a message.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gen_chain: {e}");
            ExitCode::FAILURE
        }
    }
}
