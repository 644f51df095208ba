//! `.npy` files in and out, through the npyz crate: f32, f64, i32 and bool arrays of any rank
//! (a rank-0 array is a scalar), either byte order, C or Fortran order on input.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;

use ndarray::{ArrayD, IxDyn, ShapeBuilder};
use npyz::{DType as NpyDType, NpyFile, TypeChar, WriterBuilder};
use traceform_ir::DType;
use traceform_runtime::Value;

/// Why a `.npy` file could not be read or written. Messages name the problem, not the file:
/// the caller adds the path.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    #[error("cannot open: {0}")]
    Open(std::io::Error),
    #[error("not a valid .npy file: {0}")]
    Format(String),
    #[error("unsupported .npy dtype `{0}` (traceform reads f32, f64, i32 and bool)")]
    DType(String),
    #[error("cannot write: {0}")]
    Write(std::io::Error),
}

fn array<T: Clone>(shape: &[usize], fortran: bool, data: Vec<T>) -> Result<ArrayD<T>, NpyError> {
    let dim = IxDyn(shape);
    let arr = if fortran {
        ArrayD::from_shape_vec(dim.f(), data)
    } else {
        ArrayD::from_shape_vec(dim, data)
    };
    let arr = arr.map_err(|e| NpyError::Format(format!("data does not fill its shape: {e}")))?;
    Ok(arr.as_standard_layout().into_owned())
}

/// Reads a `.npy` file into a value.
pub fn read_npy(path: &Path) -> Result<Value, NpyError> {
    let file = File::open(path).map_err(NpyError::Open)?;
    let npy = NpyFile::new(BufReader::new(file)).map_err(|e| NpyError::Format(e.to_string()))?;
    let shape: Vec<usize> = npy
        .shape()
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| NpyError::Format("dimension too large".into())))
        .collect::<Result<_, _>>()?;
    let fortran = matches!(npy.order(), npyz::Order::Fortran);
    let NpyDType::Plain(ts) = npy.dtype() else {
        return Err(NpyError::DType("structured".into()));
    };
    let dtype = match (ts.type_char(), ts.size_field()) {
        (TypeChar::Float, 4) => DType::F32,
        (TypeChar::Float, 8) => DType::F64,
        (TypeChar::Int, 4) => DType::I32,
        (TypeChar::Bool, 1) => DType::Bool,
        _ => return Err(NpyError::DType(ts.to_string())),
    };
    let fmt = |e: std::io::Error| NpyError::Format(e.to_string());
    Ok(match dtype {
        DType::F32 => Value::F32(array(&shape, fortran, npy.into_vec::<f32>().map_err(fmt)?)?),
        DType::F64 => Value::F64(array(&shape, fortran, npy.into_vec::<f64>().map_err(fmt)?)?),
        DType::I32 => Value::I32(array(&shape, fortran, npy.into_vec::<i32>().map_err(fmt)?)?),
        DType::Bool => Value::Bool(array(
            &shape,
            fortran,
            npy.into_vec::<bool>().map_err(fmt)?,
        )?),
    })
}

fn write_array<T: npyz::AutoSerialize + Copy>(path: &Path, a: &ArrayD<T>) -> Result<(), NpyError> {
    let file = File::create(path).map_err(NpyError::Write)?;
    let shape: Vec<u64> = a.shape().iter().map(|&d| d as u64).collect();
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .writer(BufWriter::new(file))
        .begin_nd()
        .map_err(NpyError::Write)?;
    writer.extend(a.iter().copied()).map_err(NpyError::Write)?;
    writer.finish().map_err(NpyError::Write)
}

/// Writes a value as a C-order `.npy` file of its own dtype.
pub fn write_npy(path: &Path, v: &Value) -> Result<(), NpyError> {
    match v {
        Value::F32(a) => write_array(path, a),
        Value::F64(a) => write_array(path, a),
        Value::I32(a) => write_array(path, a),
        Value::Bool(a) => write_array(path, a),
    }
}
