//! A static memory estimate: the most bytes of equation results alive at once when the
//! equations run in order and each value is freed right after its last use. Parameters are
//! not counted (the caller owns them); outputs stay alive to the end. This is the measure by
//! which forward mode must hold no tape.

use crate::func::{Atom, Func};

/// The peak of live bytes of equation results (see the module doc).
pub fn peak_live_bytes(func: &Func) -> usize {
    let last_use = func.last_uses();
    let mut is_output = vec![false; func.vars.len()];
    for a in &func.outputs {
        if let Atom::Var(v) = a {
            is_output[v.index()] = true;
        }
    }
    let mut is_param = vec![false; func.vars.len()];
    for p in &func.params {
        is_param[p.index()] = true;
    }
    let (mut live, mut peak) = (0usize, 0usize);
    for (i, eqn) in func.eqns.iter().enumerate() {
        let out = eqn.out.index();
        live += func.var_type(eqn.out).size_bytes();
        peak = peak.max(live);
        let mut freed = Vec::new();
        for a in &eqn.args {
            if let Atom::Var(v) = a {
                let k = v.index();
                if last_use[k] == i && !is_output[k] && !is_param[k] && !freed.contains(&k) {
                    freed.push(k);
                    live -= func.var_type(*v).size_bytes();
                }
            }
        }
        if last_use[out] == usize::MAX && !is_output[out] {
            live -= func.var_type(eqn.out).size_bytes();
        }
    }
    peak
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_func;

    #[test]
    fn a_chain_holds_two_values_at_a_time() {
        let f = parse_func(
            "func f(x: f32[10]) -> f32[] {\n  a: f32[10] = sin x\n  b: f32[10] = cos a\n  c: f32[10] = exp b\n  d: f32[] = reduce_sum[axes=(0)] c\n  return d\n}\n",
        )
        .unwrap();
        assert_eq!(peak_live_bytes(&f), 80);
    }
}
