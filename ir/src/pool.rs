//! Pooling over the spatial axes of an NCHW tensor (`[N, C, spatial...]`), built from the
//! windowed reductions as `jax.example_libraries.stax` builds it: `max_pool` is
//! `reduce_window_max`; `avg_pool` is `reduce_window_sum` divided either by the window size
//! (padding counted) or by the `reduce_window_sum` of ones over the spatial axes (padding not
//! counted, stax's `AvgPool`). Every method is `#[track_caller]`: an error names the user's line.

use std::panic::Location;

use crate::trace::Tensor;
use crate::window::Window;

/// What `avg_pool` divides each window's sum by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AvgPoolDivisor {
    /// The window size: padding counts as zeros (`count_include_pad`).
    WindowSize,
    /// The number of elements of x the window covers: padding does not count.
    CoveredElements,
}

fn tuple_text<T: ToString>(xs: &[T]) -> String {
    let inner: Vec<String> = xs.iter().map(T::to_string).collect();
    format!("({})", inner.join(","))
}

impl Tensor {
    /// The window over every axis of this NCHW tensor: 1 over N and C, `window`, `strides`
    /// and `padding` over the spatial axes; `None` (the error recorded) when they do not fit.
    #[track_caller]
    fn pool_window(
        &self,
        what: &str,
        window: &[usize],
        strides: &[usize],
        padding: &[(i64, i64)],
    ) -> Option<Window> {
        let spatial = self.rank().checked_sub(2);
        let fits = spatial == Some(window.len())
            && strides.len() == window.len()
            && padding.len() == window.len()
            && !window.is_empty();
        if !fits {
            let pads: Vec<String> = padding.iter().map(|(l, h)| format!("({l},{h})")).collect();
            self.tracer().fail(
                format!(
                    "`{what}`: x is {} (N, C, spatial...), so window {}, strides {} and padding ({}) need one entry per spatial axis",
                    self.ty(),
                    tuple_text(window),
                    tuple_text(strides),
                    pads.join(",")
                ),
                Location::caller(),
                self.ty(),
            );
            return None;
        }
        let mut dims = vec![1, 1];
        dims.extend_from_slice(window);
        let mut all_strides = vec![1, 1];
        all_strides.extend_from_slice(strides);
        let mut w = Window::new(&dims, &all_strides);
        w.padding[2..].copy_from_slice(padding);
        Some(w)
    }

    /// Max pooling of an NCHW tensor over its spatial axes (`reduce_window_max`).
    #[track_caller]
    pub fn max_pool(&self, window: &[usize], strides: &[usize], padding: &[(i64, i64)]) -> Tensor {
        match self.pool_window("max_pool", window, strides, padding) {
            Some(w) => self.reduce_window_max(&w),
            None => self.clone(),
        }
    }

    /// Average pooling of a float NCHW tensor over its spatial axes, dividing as `divisor`
    /// says.
    #[track_caller]
    pub fn avg_pool(
        &self,
        window: &[usize],
        strides: &[usize],
        padding: &[(i64, i64)],
        divisor: AvgPoolDivisor,
    ) -> Tensor {
        if !self.dtype().is_float() {
            return self.tracer().fail(
                format!(
                    "`avg_pool` of {}: cast the tensor to f32 or f64 first",
                    self.ty()
                ),
                Location::caller(),
                self.ty(),
            );
        }
        let Some(w) = self.pool_window("avg_pool", window, strides, padding) else {
            return self.clone();
        };
        let sums = self.reduce_window_sum(&w);
        match divisor {
            AvgPoolDivisor::WindowSize => sums / window.iter().map(|&w| w as f64).product::<f64>(),
            AvgPoolDivisor::CoveredElements => {
                let rank = self.rank();
                let ones = self.lit(1.0).broadcast_in_dim(&self.shape()[2..], &[]);
                let spatial = Window::new(window, strides).with_padding(padding);
                let counts = ones.reduce_window_sum(&spatial);
                let out_shape = sums.shape().to_vec();
                let spatial_axes: Vec<usize> = (2..rank).collect();
                sums / counts.broadcast_in_dim(&out_shape, &spatial_axes)
            }
        }
    }
}
