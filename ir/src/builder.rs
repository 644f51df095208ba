//! The strict builder every producer of IR goes through: the parser, the tracer (a thin
//! front end that adds numpy broadcasting and Rust locations) and every transform.
//!
//! Strict means: operand types are explicit (no numpy broadcasting: only the IR's own
//! rank-0 operands broadcast), each equation's result type comes from the shape rule, and
//! the location an equation is stamped with is whatever `set_loc` last said, never the Rust
//! caller (no `#[track_caller]`). Transforms set it to the location of the equation they are
//! transforming, so every equation they emit carries the user's `file:line:col`.
//!
//! Errors do not interrupt building: `eqn` records the first failure (with its location) and
//! returns a placeholder, so a rule can be written as straight-line code; `finish` returns
//! the error. `try_eqn` returns it at once, for callers that report it themselves.

use smallvec::SmallVec;

use crate::func::{Atom, Eqn, Func, Literal, Loc, PrimId, Var};
use crate::prim::{Axes, BinaryOp, CompareOp, Prim, PrimKind, UnaryOp};
use crate::shape::{infer, Inferred, TypeError};
use crate::types::{DType, Type, TypeId};

/// Why a function could not be built: the first failed equation, and where it came from.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct BuildError {
    pub message: String,
    pub loc: Loc,
}

/// Builds one `Func`, equation by equation.
#[derive(Debug)]
pub struct Builder {
    func: Func,
    loc: Loc,
    error: Option<BuildError>,
    /// The primitive last interned for each `PrimKind`: most equations repeat one, so this
    /// saves hashing it.
    recent_prims: Vec<Option<PrimId>>,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder::new("")
    }
}

impl Builder {
    pub fn new(name: impl Into<String>) -> Builder {
        Builder {
            func: Func::empty(name.into()),
            loc: Loc::Unknown,
            error: None,
            recent_prims: vec![None; PrimKind::ALL.len()],
        }
    }

    /// Makes room for about `eqns` more equations.
    pub fn reserve(&mut self, eqns: usize) {
        self.func.reserve(eqns);
    }

    /// The function built so far.
    pub fn func(&self) -> &Func {
        &self.func
    }

    /// The location stamped on the equations emitted from now on.
    pub fn set_loc(&mut self, loc: Loc) {
        self.loc = loc;
    }

    pub fn loc(&self) -> Loc {
        self.loc
    }

    /// Adds a parameter of type `ty`.
    pub fn param(&mut self, ty: &Type) -> Var {
        let id = self.func.types_mut().intern(ty);
        let v = self.func.push_var(id);
        self.func.params.push(v);
        v
    }

    /// Gives `v` a name of its own (from parsed text); other values get derived names.
    pub fn set_name(&mut self, v: Var, name: &str) {
        self.func.names.set(v, name);
    }

    fn intern_prim(&mut self, prim: Prim) -> PrimId {
        let k = prim.kind() as usize;
        if let Some(id) = self.recent_prims[k] {
            if *self.func.prims().get(id) == prim {
                return id;
            }
        }
        let id = self.func.prims_mut().intern_owned(prim);
        self.recent_prims[k] = Some(id);
        id
    }

    /// The id of `ty` in this function's type table.
    pub fn intern_type(&mut self, ty: &Type) -> TypeId {
        self.func.types_mut().intern(ty)
    }

    pub fn ty(&self, a: &Atom) -> &Type {
        self.func.atom_type(a)
    }

    pub fn dtype(&self, a: &Atom) -> DType {
        self.ty(a).dtype
    }

    /// Appends `prim args` with the type its shape rule infers, or returns why it does not
    /// type-check (nothing is appended then).
    pub fn try_eqn(&mut self, prim: Prim, args: &[Atom]) -> Result<Var, TypeError> {
        let inferred = match args {
            [] => infer(&prim, &[])?,
            [a] => infer(&prim, &[self.ty(a)])?,
            [a, b] => infer(&prim, &[self.ty(a), self.ty(b)])?,
            [a, b, c] => infer(&prim, &[self.ty(a), self.ty(b), self.ty(c)])?,
            _ => {
                let types: Vec<&Type> = args.iter().map(|a| self.ty(a)).collect();
                infer(&prim, &types)?
            }
        };
        let ty = match inferred {
            Inferred::Operand(k) => match args[k] {
                Atom::Var(v) => self.func.var_type_id(v),
                Atom::Lit(l) => self.intern_type(Type::scalar_ref(l.dtype)),
            },
            Inferred::New(ty) => self.func.types_mut().intern_owned(ty),
        };
        let prim = self.intern_prim(prim);
        let out = self.func.push_var(ty);
        self.func.push_eqn(prim, out, args, self.loc);
        Ok(out)
    }

    /// Appends `prim args`. A type error is recorded (the first one wins) and a rank-0
    /// placeholder returned, so building can go on; `finish` reports it.
    pub fn eqn(&mut self, prim: Prim, args: &[Atom]) -> Atom {
        match self.try_eqn(prim, args) {
            Ok(v) => Atom::Var(v),
            Err(e) => {
                let dtype = args.first().map_or(DType::F32, |a| self.dtype(a));
                self.fail(e.message);
                Atom::Lit(Literal::new(0.0, dtype))
            }
        }
    }

    /// Records an error at the current location unless one is recorded already.
    pub fn fail(&mut self, message: String) {
        if self.error.is_none() {
            self.error = Some(BuildError {
                message,
                loc: self.loc,
            });
        }
    }

    pub fn has_error(&self) -> bool {
        self.error.is_some()
    }

    /// Copies equation `eqn` of `src` with operands `args` (already in this function) and its
    /// own source location. No shape rule runs: `src` is verified and `args` have the types
    /// of the original operands. This is the one equation copier every pass uses.
    pub fn copy_eqn(&mut self, src: &Func, eqn: &Eqn, args: &[Atom]) -> Var {
        let ty = self.func.types_mut().intern(src.var_type(eqn.out));
        let prim = self.intern_prim(src.prim(eqn).clone());
        let out = self.func.push_var(ty);
        self.func.push_eqn(prim, out, args, eqn.loc);
        out
    }

    /// Emits every equation of `src` with its parameters bound to `args`, and returns its
    /// outputs. The caller checks that `args` have `src`'s parameter types.
    pub fn inline(&mut self, src: &Func, args: &[Atom]) -> Vec<Atom> {
        let mut env: Vec<Option<Atom>> = vec![None; src.num_vars()];
        for (p, a) in src.params.iter().zip(args) {
            env[p.index()] = Some(*a);
        }
        let look = |env: &[Option<Atom>], a: &Atom| match a {
            Atom::Var(v) => env[v.index()].expect("verified: defined before use"),
            Atom::Lit(_) => *a,
        };
        let mut ins: SmallVec<[Atom; 4]> = SmallVec::new();
        for eqn in &src.eqns {
            ins.clear();
            ins.extend(src.args(eqn).iter().map(|a| look(&env, a)));
            let out = self.copy_eqn(src, eqn, &ins);
            env[eqn.out.index()] = Some(Atom::Var(out));
        }
        src.outputs.iter().map(|a| look(&env, a)).collect()
    }

    /// The function returning `outputs`, or the first error recorded.
    pub fn finish(mut self, outputs: &[Atom]) -> Result<Func, BuildError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.func.outputs = outputs.to_vec();
        Ok(self.func)
    }

    // ---- Conveniences for rules: one method per primitive they emit. ----

    /// A rank-0 literal.
    pub fn lit(&self, value: f64, dtype: DType) -> Atom {
        Atom::Lit(Literal::new(value, dtype))
    }

    /// A rank-0 literal of `like`'s dtype.
    pub fn lit_like(&self, like: &Atom, value: f64) -> Atom {
        self.lit(value, self.dtype(like))
    }

    /// Structural zeros of type `ty` (see `Prim::Zeros`).
    pub fn zeros(&mut self, ty: &Type) -> Atom {
        self.eqn(
            Prim::Zeros {
                dtype: ty.dtype,
                shape: ty.shape.clone(),
            },
            &[],
        )
    }

    pub fn unary(&mut self, op: UnaryOp, x: Atom) -> Atom {
        self.eqn(Prim::Unary(op), &[x])
    }

    pub fn neg(&mut self, x: Atom) -> Atom {
        self.unary(UnaryOp::Neg, x)
    }

    pub fn binary(&mut self, op: BinaryOp, a: Atom, b: Atom) -> Atom {
        self.eqn(Prim::Binary(op), &[a, b])
    }

    pub fn add(&mut self, a: Atom, b: Atom) -> Atom {
        self.binary(BinaryOp::Add, a, b)
    }

    pub fn sub(&mut self, a: Atom, b: Atom) -> Atom {
        self.binary(BinaryOp::Sub, a, b)
    }

    pub fn mul(&mut self, a: Atom, b: Atom) -> Atom {
        self.binary(BinaryOp::Mul, a, b)
    }

    pub fn div(&mut self, a: Atom, b: Atom) -> Atom {
        self.binary(BinaryOp::Div, a, b)
    }

    pub fn compare(&mut self, op: CompareOp, a: Atom, b: Atom) -> Atom {
        self.eqn(Prim::Compare(op), &[a, b])
    }

    /// `select_n p on_false on_true`.
    pub fn select(&mut self, p: Atom, on_false: Atom, on_true: Atom) -> Atom {
        self.eqn(Prim::SelectN, &[p, on_false, on_true])
    }

    pub fn convert(&mut self, x: Atom, dtype: DType) -> Atom {
        self.eqn(Prim::ConvertElementType { dtype }, &[x])
    }

    pub fn integer_pow(&mut self, x: Atom, y: i32) -> Atom {
        self.eqn(Prim::IntegerPow { y }, &[x])
    }

    pub fn reduce_sum(&mut self, x: Atom, axes: &[usize]) -> Atom {
        self.eqn(
            Prim::ReduceSum {
                axes: Axes::from_slice(axes),
            },
            &[x],
        )
    }

    pub fn broadcast_in_dim(&mut self, x: Atom, shape: &[usize], dims: &[usize]) -> Atom {
        self.eqn(
            Prim::BroadcastInDim {
                shape: shape.into(),
                dims: dims.into(),
            },
            &[x],
        )
    }

    pub fn reshape(&mut self, x: Atom, shape: &[usize]) -> Atom {
        self.eqn(
            Prim::Reshape {
                shape: shape.into(),
            },
            &[x],
        )
    }

    pub fn transpose(&mut self, x: Atom, perm: &[usize]) -> Atom {
        self.eqn(Prim::Transpose { perm: perm.into() }, &[x])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::print::print_func;

    #[test]
    fn strict_builder_does_not_broadcast_and_keeps_the_set_location() {
        let mut b = Builder::new("f");
        let x = Atom::Var(b.param(&Type::new(DType::F32, [3])));
        let y = Atom::Var(b.param(&Type::new(DType::F32, [1, 3])));
        b.set_loc(Loc::Text { line: 7, col: 9 });
        let s = b.unary(UnaryOp::Sin, x);
        assert_eq!(b.func().eqns[0].loc.to_string(), "7:9");
        let bad = b.mul(s, y);
        assert!(matches!(bad, Atom::Lit(_)));
        let e = b.finish(&[s]).unwrap_err();
        assert!(e.message.contains("f32[3] and f32[1,3]"), "{}", e.message);
        assert_eq!(e.loc.to_string(), "7:9");
    }

    #[test]
    fn inline_copies_equations_without_reinferring() {
        let mut b = Builder::new("g");
        let x = Atom::Var(b.param(&Type::new(DType::F64, [2])));
        let s = b.unary(UnaryOp::Cos, x);
        let two = b.lit(2.0, DType::F64);
        let y = b.mul(s, two);
        let g = b.finish(&[y]).unwrap();
        let mut outer = Builder::new("h");
        let z = Atom::Var(outer.param(&Type::new(DType::F64, [2])));
        let outs = outer.inline(&g, &[z]);
        let h = outer.finish(&outs).unwrap();
        assert_eq!(
            print_func(&h),
            "func h(x0: f64[2]) -> f64[2] {\n  v0: f64[2] = cos x0\n  v1: f64[2] = mul v0 2.0:f64\n  return v1\n}\n"
        );
    }
}
