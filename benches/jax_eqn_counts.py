"""Equation counts: traceform's derivative programs (before and after its simplifier) beside the
size of JAX's own IR for the same derivative.

For every scalar-output conformance case (tests/data/conformance/*/f.ir) it counts the hvp, and
for the workloads (tests/data/workloads/{rosenbrock,mlp,chain}/f.ir) the grad and the hvp with
respect to meta.json's `wrt`:

- ours: `traceform dump FILE -t hvp:W --stats` (or `-t grad:W`), whose `# eqns: BEFORE -> AFTER`
  line gives the equations before and after simplification;
- JAX: the text IR is parsed here and evaluated with jax.lax primitives (with the semantics of
  the text IR spec, ir-text.md); `jax.make_jaxpr` of the same derivative
  (grad: `jax.grad(f, argnums=W)`; hvp, forward-over-reverse:
  `jax.jvp(jax.grad(f, argnums=W), primals, tangents)[1]`) is counted recursively: an equation
  whose params hold a jaxpr (pjit, closed_call, custom_jvp_call, remat, ...) counts as the
  equations inside it, not as one; any other equation counts as 1. That is the "nested calls
  inlined" figure of the workloads' README.

It prints a markdown table (case, transform, ours before, ours after, JAX, ours-after / JAX),
totals, and the rows where ours-after exceeds JAX. `--validate` also counts the workloads'
original Python programs (as in the shared workloads' jax_compare.py) to check the counting
method against the README's figures.

It needs JAX (`pip install "jax[cpu]==0.10.2" numpy`); the project's test suite never runs it.

usage (from the repository root, after `cargo build --release`):
    python3 benches/jax_eqn_counts.py [--binary target/release/traceform] [--out FILE] [--validate] [--check]

`--check` first checks the translation's values (eval, grad, hvp) against the conformance
corpus's references.
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys

import numpy as np
import jax
import jax.extend.core
from jax import lax

jax.config.update("jax_enable_x64", True)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFORMANCE = os.path.join(ROOT, "tests", "data", "conformance")
WORKLOADS = os.path.join(ROOT, "tests", "data", "workloads")
WORKLOAD_NAMES = ("rosenbrock", "mlp", "chain")


class Unsupported(Exception):
    pass


# ---------------------------------------------------------------- text IR parser

DTYPES = {"f32": np.float32, "f64": np.float64, "i32": np.int32, "bool": np.bool_}
_TOKEN = re.compile(r"""
    (?P<ws>[ \t\r]+) | (?P<comment>\#[^\n]*) | (?P<nl>\n)
  | (?P<arrow>->)
  | (?P<num>-?(?:inf|nan)(?![A-Za-z0-9_]) | -?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[()\[\]{},:=])
""", re.VERBOSE)


def tokenize(text):
    toks, pos, depth = [], 0, 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise SyntaxError(f"bad character {text[pos]!r} at offset {pos}")
        pos = m.end()
        kind = m.lastgroup
        val = m.group()
        if kind in ("ws", "comment"):
            continue
        if kind == "nl":
            if depth == 0 and toks and toks[-1][0] != "nl":
                toks.append(("nl", "\n"))
            continue
        if kind == "punct" and val in "([":
            depth += 1
        elif kind == "punct" and val in ")]":
            depth -= 1
        toks.append((kind, val))
    toks.append(("nl", "\n"))
    toks.append(("eof", ""))
    return toks


def _number(s):
    if re.fullmatch(r"-?\d+", s):
        return int(s)
    return float(s)


class Parser:
    def __init__(self, text):
        self.t = tokenize(text)
        self.i = 0

    def peek(self):
        return self.t[self.i]

    def next(self):
        tok = self.t[self.i]
        self.i += 1
        return tok

    def expect(self, val):
        tok = self.next()
        if tok[1] != val:
            raise SyntaxError(f"expected {val!r}, got {tok[1]!r}")
        return tok

    def skip_nl(self):
        while self.peek()[0] == "nl":
            self.i += 1

    def type_(self):
        dt = self.next()[1]
        if dt not in DTYPES:
            raise SyntaxError(f"bad dtype {dt!r}")
        self.expect("[")
        dims = []
        while self.peek()[1] != "]":
            dims.append(int(self.next()[1]))
            if self.peek()[1] == ",":
                self.next()
        self.expect("]")
        return dt, tuple(dims)

    def value(self):
        kind, val = self.next()
        if val == "(":
            items = []
            while self.peek()[1] != ")":
                items.append(self.value())
                if self.peek()[1] == ",":
                    self.next()
            self.expect(")")
            return tuple(items)
        if kind == "num":
            return _number(val)
        if val in ("true", "false"):
            return val == "true"
        if val in ("inf", "nan"):
            return float(val)
        return val  # a NAME, e.g. a dtype

    def atom(self):
        kind, val = self.next()
        if kind == "num" or val in ("inf", "nan"):
            dt = None
            if self.peek()[1] == ":":
                self.next()
                dt = self.next()[1]
            return ("lit", float(val) if val in ("inf", "nan") else _number(val), dt)
        if val in ("true", "false"):
            return ("lit", val == "true", "bool")
        if kind != "name":
            raise SyntaxError(f"expected an operand, got {val!r}")
        return ("var", val)

    def func(self):
        """Parses the first func of the module; the rest is ignored."""
        self.skip_nl()
        self.expect("func")
        name = self.next()[1]
        self.expect("(")
        params = []
        while self.peek()[1] != ")":
            pname = self.next()[1]
            self.expect(":")
            params.append((pname, self.type_()))
            if self.peek()[1] == ",":
                self.next()
        self.expect(")")
        self.expect("->")
        results = []
        if self.peek()[1] == "(":
            self.next()
            while self.peek()[1] != ")":
                results.append(self.type_())
                if self.peek()[1] == ",":
                    self.next()
            self.expect(")")
        else:
            results.append(self.type_())
        self.expect("{")
        eqns, ret = [], None
        while True:
            self.skip_nl()
            if self.peek()[1] == "return":
                self.next()
                ret = [self.atom()]
                while self.peek()[1] == ",":
                    self.next()
                    ret.append(self.atom())
                self.skip_nl()
                self.expect("}")
                break
            binder = self.next()[1]
            ty = None
            if self.peek()[1] == ":":
                self.next()
                ty = self.type_()
            self.expect("=")
            prim = self.next()[1]
            attrs = {}
            if self.peek()[1] == "[":
                self.next()
                while self.peek()[1] != "]":
                    key = self.next()[1]
                    self.expect("=")
                    attrs[key] = self.value()
                    if self.peek()[1] == ",":
                        self.next()
                self.expect("]")
            operands = []
            while self.peek()[0] != "nl":
                operands.append(self.atom())
            eqns.append((binder, ty, prim, attrs, operands))
        return {"name": name, "params": params, "results": results, "eqns": eqns, "ret": ret}


def parse(path):
    with open(path) as fh:
        return Parser(fh.read()).func()


# ---------------------------------------------------------------- evaluation with jax.lax

UNARY = {
    "neg": lax.neg, "sin": lax.sin, "cos": lax.cos, "tan": lax.tan, "tanh": lax.tanh,
    "exp": lax.exp, "log": lax.log, "log1p": lax.log1p, "expm1": lax.expm1, "sqrt": lax.sqrt,
    "rsqrt": lax.rsqrt, "abs": lax.abs, "sign": lax.sign, "logistic": lax.logistic,
    "erf": lax.erf, "floor": lax.floor, "ceil": lax.ceil,
    "round": lambda x: lax.round(x, lax.RoundingMethod.AWAY_FROM_ZERO),
    "stop_gradient": lax.stop_gradient, "not": lax.bitwise_not,
}
BINARY = {
    "add": lax.add, "sub": lax.sub, "mul": lax.mul, "div": lax.div, "pow": lax.pow,
    "max": lax.max, "min": lax.min, "atan2": lax.atan2,
    "lt": lax.lt, "le": lax.le, "gt": lax.gt, "ge": lax.ge, "eq": lax.eq, "ne": lax.ne,
    "and": lax.bitwise_and, "or": lax.bitwise_or,
}


def _tuple(v):
    return tuple(v) if isinstance(v, tuple) else (v,)


def _bcast(x, shape):
    """Broadcasts a rank-0 value to `shape` (for operands lax does not broadcast itself)."""
    if np.ndim(x) == 0 and len(shape) > 0:
        return lax.broadcast_in_dim(x, shape, ())
    return x


def apply(prim, attrs, xs, out_type):
    if prim in UNARY:
        return UNARY[prim](xs[0])
    if prim in BINARY:
        return BINARY[prim](xs[0], xs[1])
    if prim == "integer_pow":
        return lax.integer_pow(xs[0], int(attrs["y"]))
    if prim == "select_n":
        p, cases = xs[0], xs[1:]
        shape = next((np.shape(c) for c in cases if np.ndim(c) > 0), np.shape(p))
        return lax.select_n(p, *[_bcast(c, shape) for c in cases])
    if prim == "convert_element_type":
        return lax.convert_element_type(xs[0], DTYPES[attrs["dtype"]])
    if prim == "iota":
        return lax.broadcasted_iota(DTYPES[attrs["dtype"]], _tuple(attrs["shape"]), int(attrs["dim"]))
    if prim in ("reduce_sum", "reduce_max", "reduce_min"):
        return getattr(lax, prim)(xs[0], _tuple(attrs["axes"]))
    if prim in ("argmax", "argmin"):
        return getattr(lax, prim)(xs[0], int(attrs["axis"]), np.int32)
    if prim == "cumsum":
        return lax.cumsum(xs[0], int(attrs["axis"]), bool(attrs.get("reverse", False)))
    if prim == "broadcast_in_dim":
        return lax.broadcast_in_dim(xs[0], _tuple(attrs["shape"]), _tuple(attrs["dims"]))
    if prim == "reshape":
        return lax.reshape(xs[0], _tuple(attrs["shape"]))
    if prim == "transpose":
        return lax.transpose(xs[0], _tuple(attrs["perm"]))
    if prim == "squeeze":
        return lax.squeeze(xs[0], _tuple(attrs["dims"]))
    if prim == "expand_dims":
        return lax.expand_dims(xs[0], _tuple(attrs["dims"]))
    if prim == "rev":
        return lax.rev(xs[0], _tuple(attrs["dims"]))
    if prim == "slice":
        strides = _tuple(attrs["strides"]) if "strides" in attrs else None
        return lax.slice(xs[0], _tuple(attrs["start"]), _tuple(attrs["limit"]), strides)
    if prim == "pad":
        low, high = _tuple(attrs["low"]), _tuple(attrs["high"])
        interior = _tuple(attrs["interior"]) if "interior" in attrs else (0,) * len(low)
        return lax.pad(xs[0], xs[1], list(zip(low, high, interior)))
    if prim == "concatenate":
        return lax.concatenate(list(xs), int(attrs["axis"]))
    if prim == "dot_general":
        lc, rc = (_tuple(a) for a in attrs["contract"])
        lb, rb = (_tuple(a) for a in attrs.get("batch", ((), ())))
        return lax.dot_general(xs[0], xs[1], ((lc, rc), (lb, rb)))
    if prim.startswith("conv_") or prim.startswith("reduce_window") or prim.startswith("select_and"):
        raise Unsupported(f"primitive {prim} is not translated (out of scope)")
    raise Unsupported(f"unknown primitive {prim}")


def _literal(value, dtype):
    return np.dtype(DTYPES[dtype]).type(value)


def build(prog):
    """A Python function of the program's parameters that evaluates it with jax.lax."""
    def f(*args):
        env = {name: a for (name, _), a in zip(prog["params"], args)}

        def resolve(atoms, out_type):
            vars_ = [env[a[1]] for a in atoms if a[0] == "var"]
            # An untyped literal takes the (float) dtype of the other operands of its equation.
            other = next((np.dtype(v.dtype) for v in vars_ if np.dtype(v.dtype) != np.bool_), None)
            vals = []
            for a in atoms:
                if a[0] == "var":
                    vals.append(env[a[1]])
                else:
                    dt = a[2]
                    if dt is None:
                        if other is not None:
                            dt = {np.float32: "f32", np.float64: "f64", np.int32: "i32"}[other.type]
                        elif out_type is not None and out_type[0] != "bool":
                            dt = out_type[0]
                        else:
                            dt = "f32"
                    vals.append(_literal(a[1], dt))
            return vals

        for binder, ty, prim, attrs, operands in prog["eqns"]:
            env[binder] = apply(prim, attrs, resolve(operands, ty), ty)
        outs = resolve(prog["ret"], None)
        return outs[0] if len(outs) == 1 else tuple(outs)
    return f


def is_scalar_output(prog):
    return len(prog["results"]) == 1 and prog["results"][0][0] in ("f32", "f64") and prog["results"][0][1] == ()


def float_inputs(prog):
    return [i for i, (_, (dt, _)) in enumerate(prog["params"]) if dt in ("f32", "f64")]


# ---------------------------------------------------------------- derivatives and counting

def derivative(fn, wrt, n_args, kind):
    """f, grad or hvp (forward-over-reverse) of fn w.r.t. the inputs `wrt`, as in jax_compare.py:
    a function of (x1..xn) or (x1..xn, one tangent per input in wrt)."""
    def sub(xs):
        def g(*w):
            full = list(xs)
            for k, i in enumerate(wrt):
                full[i] = w[k]
            return fn(*full)
        return g, [xs[i] for i in wrt]

    if kind == "f":
        return fn
    if kind == "grad":
        def d(*xs):
            g, w = sub(xs)
            return jax.grad(g, argnums=tuple(range(len(w))))(*w)
        return d
    if kind == "hvp":
        def d(*args):
            xs, ts = args[:n_args], args[n_args:]
            g, w = sub(xs)
            gg = jax.grad(g, argnums=tuple(range(len(w))))
            return jax.jvp(gg, tuple(w), tuple(ts))[1]
        return d
    raise ValueError(kind)


def _sub_jaxprs(v):
    if isinstance(v, jax.extend.core.ClosedJaxpr):
        yield v.jaxpr
    elif isinstance(v, jax.extend.core.Jaxpr):
        yield v
    elif isinstance(v, (tuple, list)):
        for x in v:
            yield from _sub_jaxprs(x)


def count_eqns(jaxpr):
    """Equations, nested calls inlined: an equation whose params hold jaxprs counts as the
    equations inside them (recursively), not as one."""
    if isinstance(jaxpr, jax.extend.core.ClosedJaxpr):
        jaxpr = jaxpr.jaxpr
    n = 0
    for e in jaxpr.eqns:
        inner = [j for v in e.params.values() for j in _sub_jaxprs(v)]
        n += sum(count_eqns(j) for j in inner) if inner else 1
    return n


def jax_count(fn, specs, wrt, kind):
    args = list(specs) + ([specs[i] for i in wrt] if kind == "hvp" else [])
    return count_eqns(jax.make_jaxpr(derivative(fn, wrt, len(specs), kind))(*args))


def specs_of(prog):
    return [jax.ShapeDtypeStruct(shape, DTYPES[dt]) for _, (dt, shape) in prog["params"]]


def ours_count(binary, path, kind, wrt):
    cmd = [binary, "dump", path, "-t", f"{kind}:" + ",".join(map(str, wrt)), "--stats"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    m = re.search(r"^#\s*eqns:\s*(\d+)\s*->\s*(\d+)", r.stdout + "\n" + r.stderr, re.M)
    if r.returncode != 0 or not m:
        raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}: {(r.stderr.strip().splitlines() or ['?'])[0]}")
    return int(m.group(1)), int(m.group(2))


# ---------------------------------------------------------------- the workloads' Python originals

def _py_workloads():
    import jax.numpy as jnp

    def rosenbrock(x):
        return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    def mlp(w1, b1, w2, b2, x, y):
        h = jnp.tanh(x @ w1 + b1)
        z = h @ w2 + b2
        return -jnp.mean(jnp.sum(y * jax.nn.log_softmax(z), axis=-1))

    def chain(x):
        y = x
        for _ in range(50):
            y = jnp.sin(y) * 1.01 + jnp.tanh(y) * 0.5 - y * y * 0.01
        return jnp.sum(y)

    return {"rosenbrock": rosenbrock, "mlp": mlp, "chain": chain}


README_FIGURES = {"rosenbrock": (11, 26, 55), "mlp": (22, 50, 124), "chain": (401, 1152, 3191)}


def validate():
    print("## Validation against the workloads README (JAX's jaxpr equations, nested calls inlined)\n")
    print("| workload | source | f | grad | hvp |")
    print("|---|---|---|---|---|")
    py = _py_workloads()
    for name in WORKLOAD_NAMES:
        d = os.path.join(WORKLOADS, name)
        prog = parse(os.path.join(d, "f.ir"))
        wrt = json.load(open(os.path.join(d, "meta.json")))["wrt"]
        specs = specs_of(prog)
        print(f"| {name} | README | " + " | ".join(map(str, README_FIGURES[name])) + " |")
        for x64 in (False, True):
            jax.config.update("jax_enable_x64", x64)
            c = [jax_count(py[name], specs, wrt, k) for k in ("f", "grad", "hvp")]
            print(f"| {name} | Python original, x64 {'on' if x64 else 'off'} | " + " | ".join(map(str, c)) + " |")
        jax.config.update("jax_enable_x64", True)
        c = [jax_count(build(prog), specs, wrt, k) for k in ("f", "grad", "hvp")]
        print(f"| {name} | f.ir via jax.lax | " + " | ".join(map(str, c)) + " |")
    print()


def check_values():
    """Checks the jax.lax translation against the conformance corpus's reference values (eval,
    and for scalar-output cases grad and hvp). Returns the names of the cases that differ."""
    bad = []
    for path in sorted(glob.glob(os.path.join(CONFORMANCE, "*", "f.ir"))):
        d = os.path.dirname(path)
        try:
            prog = parse(path)
            n = len(prog["params"])
            xs = [np.load(os.path.join(d, f"x{i}.npy")) for i in range(n)]
            f = build(prog)
            got = {"eval": f(*xs)}
            if is_scalar_output(prog):
                w = float_inputs(prog)
                ts = [np.load(os.path.join(d, f"t{k}.npy")) for k in range(len(w))]
                got["grad"] = derivative(f, w, n, "grad")(*xs)
                got["hvp"] = derivative(f, w, n, "hvp")(*xs, *ts)
            for kind, outs in got.items():
                outs = outs if isinstance(outs, tuple) else (outs,)
                for k, o in enumerate(outs):
                    ref = np.load(os.path.join(d, f"ref_{kind}_{k}.npy"))
                    tol = (2e-4, 1e-5) if ref.dtype == np.float32 else (1e-7, 1e-9)
                    if not np.allclose(np.asarray(o), ref, rtol=tol[0], atol=tol[1]):
                        raise AssertionError(f"{kind} output {k} differs")
        except Exception as e:  # noqa: BLE001 - report and go on
            bad.append(f"{os.path.basename(d)}: {type(e).__name__}: {e}")
    return bad


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "traceform"))
    ap.add_argument("--out", help="also write the markdown to this file")
    ap.add_argument("--validate", action="store_true",
                    help="also count the workloads' Python originals against the README's figures")
    ap.add_argument("--check", action="store_true",
                    help="first check the jax.lax translation's values against the conformance references")
    a = ap.parse_args()

    if a.check:
        bad = check_values()
        print(f"translation check: {len(bad)} conformance case(s) differ from the references", file=sys.stderr)
        for b in bad:
            print("  " + b, file=sys.stderr)

    cases = []  # (label, path, kind, wrt, prog)
    skipped = []
    for path in sorted(glob.glob(os.path.join(CONFORMANCE, "*", "f.ir"))):
        name = os.path.basename(os.path.dirname(path))
        try:
            prog = parse(path)
        except SyntaxError as e:
            skipped.append((name, f"parse error: {e}"))
            continue
        if not is_scalar_output(prog):
            skipped.append((name, "not scalar-output (no grad/hvp)"))
            continue
        cases.append((name, path, "hvp", float_inputs(prog), prog))
    for name in WORKLOAD_NAMES:
        d = os.path.join(WORKLOADS, name)
        prog = parse(os.path.join(d, "f.ir"))
        wrt = json.load(open(os.path.join(d, "meta.json")))["wrt"]
        for kind in ("grad", "hvp"):
            cases.append((f"workload {name}", os.path.join(d, "f.ir"), kind, wrt, prog))

    py = _py_workloads()
    rows = []  # (label, kind, wrt, ours before, ours after, JAX from f.ir, JAX from the Python original or None)
    for label, path, kind, wrt, prog in cases:
        try:
            before, after = ours_count(a.binary, path, kind, wrt)
            theirs = jax_count(build(prog), specs_of(prog), wrt, kind)
            name = label.split()[-1]
            orig = jax_count(py[name], specs_of(prog), wrt, kind) if label.startswith("workload") else None
        except (Unsupported, RuntimeError, TypeError, ValueError) as e:
            skipped.append((label, f"{kind}: {type(e).__name__}: {str(e).splitlines()[0]}"))
            continue
        rows.append((label, kind, wrt, before, after, theirs, orig))
        print(f"{label} {kind}: {before} -> {after}, jax {theirs}" + (f" (Python original {orig})" if orig else ""),
              file=sys.stderr, flush=True)

    def ratio(x, y):
        return f"{x / y:.2f}" if y else "-"

    out = []
    out.append("JAX = jaxpr equations of the same derivative of f.ir evaluated with jax.lax, nested calls "
               "inlined. JAX (orig) = the same for the workload's original Python program "
               "(jax_compare.py), the README's figures.")
    out.append("")
    out.append("| case | transform | ours before | ours after | JAX | after/JAX | JAX (orig) | after/JAX (orig) |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|")
    for label, kind, wrt, b, af, j, o in rows:
        out.append(f"| {label} | {kind}:{','.join(map(str, wrt))} | {b} | {af} | {j} | {ratio(af, j)} | "
                   + (f"{o} | {ratio(af, o)} |" if o is not None else "- | - |"))
    groups = [("total, conformance hvp", [r for r in rows if r[6] is None]),
              ("total, workloads", [r for r in rows if r[6] is not None]),
              ("total, all", rows)]
    for gname, rs in groups:
        b, af, j = (sum(r[i] for r in rs) for i in (3, 4, 5))
        line = f"| **{gname}** ({len(rs)} rows) | | {b} | {af} | {j} | {ratio(af, j)} | "
        if rs and all(r[6] is not None for r in rs):
            o = sum(r[6] for r in rs)
            line += f"{o} | {ratio(af, o)} |"
        else:
            line += "- | - |"
        out.append(line)
    out.append("")
    worse = [r for r in rows if r[4] > r[5] or (r[6] is not None and r[4] > r[6])]
    out.append(f"Rows where ours-after > JAX: {len(worse)}" + (":" if worse else "."))
    for label, kind, wrt, b, af, j, o in worse:
        out.append(f"- {label} {kind}: ours {af}, JAX {j}" + (f", JAX (orig) {o}" if o is not None else ""))
    if skipped:
        out.append("")
        out.append("Not counted:")
        for label, why in skipped:
            out.append(f"- {label}: {why}")
    text = "\n".join(out) + "\n"

    if a.validate:
        import contextlib, io
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            validate()
        text = buf.getvalue() + "## Equation counts\n\n" + text
    print(text)
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
