//! The CLI's `-t` words: a transform name and, optionally, input positions (`grad:0,2`),
//! applied in order, each to the result of the one before. The transforms themselves are
//! `traceform_transforms`; this is only how the command line names them.

use std::str::FromStr;

use traceform_ir::Func;
use traceform_transforms as tf;
pub use traceform_transforms::TransformError;

/// The transforms the CLI's `-t` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransformKind {
    Jvp,
    Vjp,
    Grad,
    Hvp,
    /// Extensions of the spec's list (documented in `--help` and `docs/transforms.md`).
    Transpose,
    Jacfwd,
    Jacrev,
    Hessian,
    /// Not a derivative: keeps the outputs at the given positions (`outputs:17`).
    Outputs,
}

impl TransformKind {
    pub const ALL: [TransformKind; 9] = [
        TransformKind::Jvp,
        TransformKind::Vjp,
        TransformKind::Grad,
        TransformKind::Hvp,
        TransformKind::Transpose,
        TransformKind::Jacfwd,
        TransformKind::Jacrev,
        TransformKind::Hessian,
        TransformKind::Outputs,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TransformKind::Jvp => "jvp",
            TransformKind::Vjp => "vjp",
            TransformKind::Grad => "grad",
            TransformKind::Hvp => "hvp",
            TransformKind::Transpose => "transpose",
            TransformKind::Jacfwd => "jacfwd",
            TransformKind::Jacrev => "jacrev",
            TransformKind::Hessian => "hessian",
            TransformKind::Outputs => "outputs",
        }
    }
}

/// One `-t` word: a transform and, optionally, the input positions to differentiate (for
/// `outputs`, the output positions to keep).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransformSpec {
    pub kind: TransformKind,
    pub wrt: Option<Vec<usize>>,
}

impl FromStr for TransformSpec {
    type Err = String;

    fn from_str(word: &str) -> Result<TransformSpec, String> {
        let (name, positions) = match word.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (word, None),
        };
        let Some(kind) = TransformKind::ALL.into_iter().find(|k| k.name() == name) else {
            let names: Vec<&str> = TransformKind::ALL.iter().map(|k| k.name()).collect();
            return Err(format!(
                "unknown transform `{name}` in `-t {word}` (expected one of {})",
                names.join(", ")
            ));
        };
        let wrt = positions
            .map(|p| {
                p.split(',')
                    .map(|s| {
                        s.trim().parse::<usize>().map_err(|_| {
                            format!("`-t {word}`: `{s}` is not an input position (expected e.g. grad:0,2)")
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        Ok(TransformSpec { kind, wrt })
    }
}

/// Applies one transform.
pub fn apply(func: &Func, spec: &TransformSpec) -> Result<Func, TransformError> {
    let wrt = spec.wrt.as_deref();
    match spec.kind {
        TransformKind::Jvp => tf::jvp(func, wrt),
        TransformKind::Vjp => tf::vjp(func, wrt),
        TransformKind::Grad => tf::grad(func, wrt),
        TransformKind::Hvp => tf::hvp(func, wrt),
        TransformKind::Transpose => tf::transpose_wrt(func, wrt),
        TransformKind::Jacfwd => tf::jacfwd(func, wrt),
        TransformKind::Jacrev => tf::jacrev(func, wrt),
        TransformKind::Hessian => tf::hessian(func, wrt),
        TransformKind::Outputs => match wrt {
            Some(positions) => tf::select_outputs(func, positions),
            None => Err(TransformError::Wrt(
                "`-t outputs` needs output positions (e.g. outputs:0,2)".into(),
            )),
        },
    }
}

/// Applies the transforms in order, each to the result of the one before.
pub fn apply_all(func: Func, specs: &[TransformSpec]) -> Result<Func, TransformError> {
    let mut f = func;
    for spec in specs {
        f = apply(&f, spec)?;
    }
    Ok(f)
}
