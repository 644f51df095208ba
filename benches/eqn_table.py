"""Equation counts of the simplified derivative programs against JAX's, without JAX.

The size target of the simplifier (issue 8): for the grad and hvp of the three workloads
(tests/data/workloads/{rosenbrock,mlp,chain}, derivatives w.r.t. meta.json's `wrt`) and for the
hvp of every scalar-output conformance case, the simplified programs have at most 50% of JAX's
equations in total, and no program has more than JAX's.

- ours: `traceform dump FILE -t hvp:W --stats` (or `-t grad:W`), whose `# eqns: BEFORE -> AFTER`
  line gives the equations before and after simplification;
- JAX: the conformance cases' `hvp_eqns_jax` in tests/data/conformance/manifest.json (measured by
  benches/jax_eqn_counts.py: jaxpr equations of the same hvp, nested calls inlined), and for the
  workloads the figures of the shared workloads README (the original Python programs' jaxprs),
  copied below.

Cases without a JAX figure (the pooling cases, added after the measurement) are listed but not
counted in the totals.

usage (from the repository root, after `cargo build --release`):
    python3 benches/eqn_table.py [--binary target/release/traceform] [--check]

`--check` exits with status 1 when the target is missed (total over 0.5, or a row over JAX).
"""
import argparse
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFORMANCE = os.path.join(ROOT, "tests", "data", "conformance")
WORKLOADS = os.path.join(ROOT, "tests", "data", "workloads")

# The shared workloads README, "Size of JAX's own IR (jaxpr equations, nested calls inlined)".
WORKLOAD_JAX = {
    "rosenbrock": {"grad": 26, "hvp": 55},
    "mlp": {"grad": 50, "hvp": 124},
    "chain": {"grad": 1152, "hvp": 3191},
}


def counts(binary, path, transform):
    """(before, after, time_ms) of `dump path -t transform --stats`."""
    out = subprocess.run(
        [binary, "dump", path, "-t", transform, "--stats"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    m = re.search(r"^# eqns: (\d+) -> (\d+)$", out, re.M)
    t = re.search(r"^# time_ms: ([\d.]+)$", out, re.M)
    return int(m.group(1)), int(m.group(2)), float(t.group(1)) if t else 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "traceform"))
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()

    rows = []  # (case, transform, before, after, jax or None, time_ms)
    manifest = json.load(open(os.path.join(CONFORMANCE, "manifest.json")))
    cases = sorted(
        d for d in os.listdir(CONFORMANCE) if os.path.isdir(os.path.join(CONFORMANCE, d))
    )
    for case in cases:
        entry = manifest.get(case)
        if entry is not None and not entry["scalar"]:
            continue
        path = os.path.join(CONFORMANCE, case, "f.ir")
        before, after, ms = counts(args.binary, path, "hvp")
        jax = entry.get("hvp_eqns_jax") if entry else None
        rows.append((case, "hvp", before, after, jax, ms))
    for name, jax in WORKLOAD_JAX.items():
        meta = json.load(open(os.path.join(WORKLOADS, name, "meta.json")))
        wrt = ",".join(str(i) for i in meta["wrt"])
        path = os.path.join(WORKLOADS, name, "f.ir")
        for t in ("grad", "hvp"):
            before, after, ms = counts(args.binary, path, f"{t}:{wrt}")
            rows.append((f"workload {name}", f"{t}:{wrt}", before, after, jax[t], ms))

    print("| case | transform | ours before | ours after | JAX | after/JAX | simplify ms |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for case, t, before, after, jax, ms in rows:
        ratio = f"{after / jax:.2f}" if jax else "-"
        print(f"| {case} | {t} | {before} | {after} | {jax or '-'} | {ratio} | {ms:.1f} |")

    def total(label, sel):
        b = sum(r[2] for r in sel)
        a = sum(r[3] for r in sel)
        j = sum(r[4] for r in sel)
        print(f"| **{label}** ({len(sel)} rows) | | {b} | {a} | {j} | {a / j:.3f} | |")
        return a / j

    counted = [r for r in rows if r[4]]
    conf = [r for r in counted if not r[0].startswith("workload ")]
    work = [r for r in counted if r[0].startswith("workload ")]
    total("total, conformance hvp", conf)
    total("total, workloads", work)
    ratio = total("total, all", counted)
    over = [r for r in counted if r[3] > r[4]]
    print()
    print(f"Total ratio {ratio:.3f} (target at most 0.5); rows over JAX: {len(over)}")
    for r in over:
        print(f"  over: {r[0]} {r[1]}: {r[3]} > {r[4]}")
    skipped = [r[0] for r in rows if not r[4]]
    if skipped:
        print(f"Not counted (no JAX figure): {', '.join(skipped)}")
    if args.check and (ratio > 0.5 or over):
        sys.exit(1)


if __name__ == "__main__":
    main()
