//! The `-t T` words of the CLI: `jvp`, `vjp`, `grad`, `hvp`, optionally `:i,j,...`.

use std::str::FromStr;

use traceform_ir::Func;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransformKind {
    Jvp,
    Vjp,
    Grad,
    Hvp,
}

/// One `-t` word: a transform and, optionally, the input positions to differentiate.
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
        let kind = match name {
            "jvp" => TransformKind::Jvp,
            "vjp" => TransformKind::Vjp,
            "grad" => TransformKind::Grad,
            "hvp" => TransformKind::Hvp,
            other => {
                return Err(format!(
                    "unknown transform `{other}` in `-t {word}` (expected jvp, vjp, grad or hvp)"
                ))
            }
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

/// Applies the transforms in order.
pub fn apply_transforms(func: &Func, specs: &[TransformSpec]) -> Result<Func, String> {
    if specs.is_empty() {
        return Ok(func.clone());
    }
    Err("transforms are not available yet".into())
}
