//! `dot_general` of floats through the runtime's GEMM entry point (`traceform_runtime::Gemm`,
//! the one the interpreter uses too): per batch index one product
//! `out[b] = lhs[b] (m x k) * rhs[b] (k x n)`, with the operands' axes folded into the row and
//! column strides the GEMM takes, so transposed operands are read in place. When an operand's
//! free or contracted axes cannot be read as one strided axis, that operand is first copied
//! into (batch, free, contracted) order.

use ndarray::{ArrayViewD, IxDyn};
use traceform_ir::{dot_free_axes, DotDims};
use traceform_runtime::Gemm;

fn row_major_strides(shape: &[usize]) -> Vec<isize> {
    let mut s = vec![0isize; shape.len()];
    let mut acc = 1isize;
    for d in (0..shape.len()).rev() {
        s[d] = acc;
        acc *= shape[d] as isize;
    }
    s
}

/// The axes `axes` of an array read as one: their total size and one stride, if the
/// non-size-1 axes are nested in memory in that order.
fn merged(axes: &[usize], shape: &[usize], strides: &[isize]) -> Option<(usize, isize)> {
    let size = axes.iter().map(|&a| shape[a]).product();
    let real: Vec<usize> = axes.iter().copied().filter(|&a| shape[a] != 1).collect();
    for w in real.windows(2) {
        if strides[w[0]] != strides[w[1]] * shape[w[1]] as isize {
            return None;
        }
    }
    Some((size, real.last().map_or(1, |&a| strides[a])))
}

/// One operand as the library reads it.
struct Operand<T> {
    data: *const T,
    /// Kept alive when the operand had to be copied.
    _copy: Option<Vec<T>>,
    shape: Vec<usize>,
    strides: Vec<isize>,
    batch: Vec<usize>,
    rows: (usize, isize),
    cols: (usize, isize),
}

/// Describes operand `data` of `shape`, whose `batch` axes are looped over and whose
/// `row_axes` and `col_axes` become the matrix's rows and columns.
///
/// # Safety
/// `data` must hold a row-major array of `shape`.
unsafe fn operand<T: Gemm>(
    data: *const T,
    shape: &[usize],
    batch: &[usize],
    row_axes: &[usize],
    col_axes: &[usize],
) -> Operand<T> {
    let strides = row_major_strides(shape);
    if let (Some(rows), Some(cols)) = (
        merged(row_axes, shape, &strides),
        merged(col_axes, shape, &strides),
    ) {
        return Operand {
            data,
            _copy: None,
            shape: shape.to_vec(),
            strides,
            batch: batch.to_vec(),
            rows,
            cols,
        };
    }
    let n: usize = shape.iter().product();
    // SAFETY: the caller's contract.
    let view = unsafe {
        ArrayViewD::from_shape_ptr(
            IxDyn(shape),
            if n == 0 {
                std::ptr::NonNull::dangling().as_ptr()
            } else {
                data
            },
        )
    };
    let perm: Vec<usize> = batch
        .iter()
        .chain(row_axes)
        .chain(col_axes)
        .copied()
        .collect();
    let copy: Vec<T> = view.permuted_axes(IxDyn(&perm)).iter().copied().collect();
    let new_shape: Vec<usize> = perm.iter().map(|&a| shape[a]).collect();
    let nb = batch.len();
    let nr = row_axes.len();
    let new_batch: Vec<usize> = (0..nb).collect();
    let new_rows: Vec<usize> = (nb..nb + nr).collect();
    let new_cols: Vec<usize> = (nb + nr..perm.len()).collect();
    let strides = row_major_strides(&new_shape);
    let rows = merged(&new_rows, &new_shape, &strides).expect("contiguous after the copy");
    let cols = merged(&new_cols, &new_shape, &strides).expect("contiguous after the copy");
    Operand {
        data: copy.as_ptr(),
        _copy: Some(copy),
        shape: new_shape,
        strides,
        batch: new_batch,
        rows,
        cols,
    }
}

/// `out = dot_general(x, y)` for row-major `x` of `x_shape`, `y` of `y_shape` and `out`
/// (batch, lhs free, rhs free).
///
/// # Safety
/// The pointers must hold row-major arrays of the verified shapes; `out` must not alias them.
pub unsafe fn dot_general<T: Gemm>(
    dims: &DotDims,
    x: *const T,
    x_shape: &[usize],
    y: *const T,
    y_shape: &[usize],
    out: *mut T,
) {
    let (lc, rc) = &dims.contract;
    let (lb, rb) = &dims.batch;
    let lf = dot_free_axes(x_shape.len(), lc, lb);
    let rf = dot_free_axes(y_shape.len(), rc, rb);
    // SAFETY: the caller's contract.
    let a = unsafe { operand(x, x_shape, lb, &lf, lc) };
    let b = unsafe { operand(y, y_shape, rb, rc, &rf) };
    let (m, k, n) = (a.rows.0, a.cols.0, b.cols.0);
    let batches: usize = lb.iter().map(|&d| x_shape[d]).product();
    if m == 0 || n == 0 || batches == 0 {
        return;
    }
    let batch_shape: Vec<usize> = a.batch.iter().map(|&d| a.shape[d]).collect();
    let mut index = vec![0usize; batch_shape.len()];
    for bi in 0..batches {
        let off = |o: &Operand<T>| -> isize {
            index
                .iter()
                .zip(&o.batch)
                .map(|(&i, &d)| i as isize * o.strides[d])
                .sum()
        };
        // SAFETY: offsets stay inside the operands; each batch writes its own m x n block.
        unsafe {
            let c = out.add(bi * m * n);
            if k == 0 {
                std::ptr::write_bytes(c, 0, m * n);
            } else {
                T::gemm(
                    m,
                    k,
                    n,
                    a.data.offset(off(&a)),
                    (a.rows.1, a.cols.1),
                    b.data.offset(off(&b)),
                    (b.rows.1, b.cols.1),
                    c,
                    (n as isize, 1),
                );
            }
        }
        for d in (0..index.len()).rev() {
            index[d] += 1;
            if index[d] < batch_shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
}
