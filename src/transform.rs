//! The CLI's view of the transforms: `-t` words applied in order (see `traceform_transforms`).

pub use traceform_transforms::{apply_all, TransformError, TransformKind, TransformSpec};
