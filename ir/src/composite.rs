//! The `jax.numpy` operations people reach for, on `Tensor`, built from the primitives (no new
//! IR): `mean`, reductions with `keepdims`, `max_all`/`min_all`, `logsumexp`, `softmax`,
//! `log_softmax`, `matmul` with `jnp.matmul`'s batching, and `where_` with numpy
//! broadcasting and number branches.
//!
//! Each is written as `jax.numpy` writes it, so it differentiates as JAX's does: `logsumexp`,
//! `softmax` and `log_softmax` subtract the maximum under `stop_gradient` (the result does
//! not depend on it mathematically), and `logsumexp` shifts by 0 where the maximum is not
//! finite. Every method is `#[track_caller]`: a shape error names the user's line.

use std::panic::Location;

use crate::trace::{shape_text, IntoOperand, Tensor};

/// numpy's broadcast of two shapes (trailing axes aligned, 1 stretches), if they broadcast.
fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let at = |s: &[usize], i: usize| {
        let pad = rank - s.len();
        if i < pad {
            1
        } else {
            s[i - pad]
        }
    };
    (0..rank)
        .map(|i| match (at(a, i), at(b, i)) {
            (x, y) if x == y || y == 1 => Some(x),
            (1, y) => Some(y),
            _ => None,
        })
        .collect()
}

impl Tensor {
    fn all_axes(&self) -> Vec<usize> {
        (0..self.rank()).collect()
    }

    /// The shape with each axis of `axes` (those in range) set to 1.
    fn kept_shape(&self, axes: &[usize]) -> Vec<usize> {
        let mut shape = self.shape().to_vec();
        for &a in axes {
            if let Some(d) = shape.get_mut(a) {
                *d = 1;
            }
        }
        shape
    }

    /// Fails (returning `false`) unless this tensor is f32 or f64.
    #[track_caller]
    fn require_float(&self, what: &str) -> bool {
        if self.dtype().is_float() {
            return true;
        }
        self.tracer().fail(
            format!(
                "`{what}` of {}: cast the tensor to f32 or f64 first",
                self.ty()
            ),
            Location::caller(),
            self.ty(),
        );
        false
    }

    /// `reduce_sum` over `axes`, keeping them as axes of size 1.
    #[track_caller]
    pub fn sum_keepdims(&self, axes: &[usize]) -> Tensor {
        self.sum(axes).reshape(&self.kept_shape(axes))
    }

    /// `reduce_max` over `axes`, keeping them as axes of size 1.
    #[track_caller]
    pub fn reduce_max_keepdims(&self, axes: &[usize]) -> Tensor {
        self.reduce_max(axes).reshape(&self.kept_shape(axes))
    }

    /// `reduce_min` over `axes`, keeping them as axes of size 1.
    #[track_caller]
    pub fn reduce_min_keepdims(&self, axes: &[usize]) -> Tensor {
        self.reduce_min(axes).reshape(&self.kept_shape(axes))
    }

    /// The largest element (`reduce_max` over every axis).
    #[track_caller]
    pub fn max_all(&self) -> Tensor {
        self.reduce_max(&self.all_axes())
    }

    /// The smallest element (`reduce_min` over every axis).
    #[track_caller]
    pub fn min_all(&self) -> Tensor {
        self.reduce_min(&self.all_axes())
    }

    /// The mean over `axes` of a float tensor: the sum divided by the number of elements
    /// summed (NaN for none, as numpy).
    #[track_caller]
    pub fn mean(&self, axes: &[usize]) -> Tensor {
        if !self.require_float("mean") {
            return self.clone();
        }
        let shape = self.shape();
        let count: usize = axes.iter().filter_map(|&a| shape.get(a)).product();
        self.sum(axes) / count as f64
    }

    /// The mean of every element.
    #[track_caller]
    pub fn mean_all(&self) -> Tensor {
        self.mean(&self.all_axes())
    }

    /// `mean` over `axes`, keeping them as axes of size 1.
    #[track_caller]
    pub fn mean_keepdims(&self, axes: &[usize]) -> Tensor {
        self.mean(axes).reshape(&self.kept_shape(axes))
    }

    /// `log(sum(exp(x)))` over `axes`, computed stably as `jax.nn.logsumexp` does: shifted by
    /// the maximum (0 where it is not finite), under `stop_gradient`. Its gradient is the
    /// softmax.
    #[track_caller]
    pub fn logsumexp(&self, axes: &[usize]) -> Tensor {
        if !self.require_float("logsumexp") {
            return self.clone();
        }
        let max = self.reduce_max_keepdims(axes);
        let shift = max
            .abs()
            .lt(f64::INFINITY)
            .where_(&max, 0.0)
            .stop_gradient();
        let summed = (self - &shift).exp().sum(axes);
        let shift = shift.reshape(&summed.shape());
        summed.log() + shift
    }

    /// `logsumexp` over `axes`, keeping them as axes of size 1.
    #[track_caller]
    pub fn logsumexp_keepdims(&self, axes: &[usize]) -> Tensor {
        self.logsumexp(axes).reshape(&self.kept_shape(axes))
    }

    /// `exp(x) / sum(exp(x))` along `axis`, as `jax.nn.softmax` computes it (shifted by the
    /// maximum under `stop_gradient`).
    #[track_caller]
    pub fn softmax(&self, axis: usize) -> Tensor {
        if !self.require_float("softmax") {
            return self.clone();
        }
        let unnormalized = (self - self.reduce_max_keepdims(&[axis]).stop_gradient()).exp();
        &unnormalized / unnormalized.sum_keepdims(&[axis])
    }

    /// `x - logsumexp(x)` along `axis`, as `jax.nn.log_softmax` computes it.
    #[track_caller]
    pub fn log_softmax(&self, axis: usize) -> Tensor {
        if !self.require_float("log_softmax") {
            return self.clone();
        }
        let shifted = self - self.reduce_max_keepdims(&[axis]).stop_gradient();
        let normalizer = shifted.exp().sum_keepdims(&[axis]).log();
        shifted - normalizer
    }

    /// `on_true` where this bool tensor holds, else `on_false`, like `jnp.where`: the three
    /// broadcast numpy-style, and a branch may be a Rust number (of the other branch's dtype,
    /// or of its own Rust type if both are numbers).
    #[track_caller]
    pub fn where_(&self, on_true: impl IntoOperand, on_false: impl IntoOperand) -> Tensor {
        let like = match (on_true.as_tensor(), on_false.as_tensor()) {
            (Some(t), _) | (None, Some(t)) => t.clone(),
            (None, None) => {
                let dtype = on_true.number_dtype().unwrap_or(self.dtype());
                self.tracer().literal(0.0, dtype)
            }
        };
        let (t, f) = (on_true.into_operand(&like), on_false.into_operand(&like));
        let Some(shape) = broadcast_shapes(&t.shape(), &f.shape())
            .and_then(|s| broadcast_shapes(&self.shape(), &s))
        else {
            return self.tracer().fail(
                format!(
                    "`where`: cannot broadcast the predicate {} and the branches {} and {} together",
                    self.ty(),
                    t.ty(),
                    f.ty()
                ),
                Location::caller(),
                t.ty(),
            );
        };
        let (p, t, f) = (
            self.broadcast_if_needed(&shape),
            t.broadcast_if_needed(&shape),
            f.broadcast_if_needed(&shape),
        );
        p.select(&t, &f)
    }

    /// This tensor broadcast numpy-style to `shape` (which it must broadcast to), itself if it
    /// has that shape already.
    #[track_caller]
    fn broadcast_if_needed(&self, shape: &[usize]) -> Tensor {
        if self.shape()[..] == shape[..] {
            self.clone()
        } else {
            self.broadcast_to(shape)
        }
    }

    /// The matrix product of `jnp.matmul`: for ranks <= 2 as `x @ w` in numpy (a vector is a
    /// row on the left, a column on the right, and its axis is dropped from the result); for
    /// higher ranks, a stack of matrix products over the leading (batch) axes, which broadcast
    /// numpy-style: `[..., n, k] @ [..., k, m] -> [..., n, m]`.
    #[track_caller]
    pub fn matmul(&self, other: &Tensor) -> Tensor {
        let (ra, rb) = (self.rank(), other.rank());
        if ra == 0 || rb == 0 {
            return self.tracer().fail(
                format!(
                    "`matmul`: operands must have rank 1 or more, given {} and {}",
                    self.ty(),
                    other.ty()
                ),
                Location::caller(),
                self.ty(),
            );
        }
        if (ra <= 2 && rb <= 2) || ra == 1 || rb == 1 {
            // No batch axes to broadcast: one dot_general, whose free axes are already in
            // jnp.matmul's order (a vector's axis is contracted, so it is dropped).
            let rhs_contract = [rb.saturating_sub(2)];
            return self.dot_general(other, (&[ra - 1], &rhs_contract), (&[], &[]));
        }
        self.batched_matmul(other)
    }

    /// `matmul` of two operands of rank >= 2, one of them higher: broadcast the batch axes,
    /// then one `dot_general` batched over them.
    #[track_caller]
    fn batched_matmul(&self, other: &Tensor) -> Tensor {
        let (a, b) = (self.shape(), other.shape());
        let (a_batch, b_batch) = (&a[..a.len() - 2], &b[..b.len() - 2]);
        let Some(batch) = broadcast_shapes(a_batch, b_batch) else {
            return self.tracer().fail(
                format!(
                    "`matmul`: the batch shapes {} and {} of {} and {} do not broadcast",
                    shape_text(a_batch),
                    shape_text(b_batch),
                    self.ty(),
                    other.ty()
                ),
                Location::caller(),
                self.ty(),
            );
        };
        let (lhs, rhs) = (self.with_batch(&batch), other.with_batch(&batch));
        let nb = batch.len();
        let batch_axes: Vec<usize> = (0..nb).collect();
        lhs.dot_general(&rhs, (&[nb + 1], &[nb]), (&batch_axes, &batch_axes))
    }

    /// This stack of matrices (rank >= 2) broadcast to the batch shape `batch`.
    #[track_caller]
    fn with_batch(&self, batch: &[usize]) -> Tensor {
        let shape = self.shape();
        let mut target = batch.to_vec();
        target.extend_from_slice(&shape[shape.len() - 2..]);
        self.broadcast_if_needed(&target)
    }
}

#[cfg(test)]
mod tests {
    use super::broadcast_shapes;

    #[test]
    fn broadcast_shapes_follows_numpy() {
        assert_eq!(broadcast_shapes(&[2, 1], &[3]), Some(vec![2, 3]));
        assert_eq!(broadcast_shapes(&[], &[4, 5]), Some(vec![4, 5]));
        assert_eq!(broadcast_shapes(&[1, 5], &[4, 1]), Some(vec![4, 5]));
        assert_eq!(broadcast_shapes(&[3], &[4]), None);
    }
}
