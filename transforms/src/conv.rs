//! The transpose rules of `conv_general_dilated`, with respect to each operand, written as
//! convolutions with swapped attributes (`shared/notes/conv-derivatives.md`, which are JAX's
//! `_conv_general_dilated_transpose_lhs` and `_rhs` with their dimension numbers spelled out as
//! transposes). Per spatial axis, `S' = (S - 1)·ld + 1`, `E = (K - 1)·rd + 1` and
//! `Y' = (Y - 1)·s + 1`, each 0 for an empty axis.
//!
//! - w.r.t. lhs: the kernel, its groups moved into its input features and its two feature axes
//!   swapped, reversed in space; a convolution of the cotangent with it whose strides are the
//!   lhs dilation and whose lhs dilation is the stride, padded by `E - lo - 1` before;
//!   batch groups are then unfolded back into the batch.
//! - w.r.t. rhs: a convolution of the lhs (batch and features swapped) with the cotangent
//!   (likewise) as the kernel, the stride and the kernel dilation trading places, feature
//!   groups becoming batch groups and the other way round.

use smallvec::SmallVec;
use traceform_ir::{dilated_size, Atom, Builder, ConvDims, PadPairs, Prim, Type};

/// The per-axis sizes both rules need: `(S', E, Y')` for spatial axis `d`.
fn sizes(dims: &ConvDims, lhs: &Type, rhs: &Type, ct: &Type, d: usize) -> (i64, i64, i64) {
    let dilated = |n: usize, by: usize| dilated_size(n, by).expect("verified: fits") as i64;
    (
        dilated(lhs.shape[d + 2], dims.lhs_dilation[d]),
        dilated(rhs.shape[d + 2], dims.rhs_dilation[d]),
        dilated(ct.shape[d + 2], dims.window_strides[d]),
    )
}

/// True when the convolution has no terms: some operand or the result is empty, so both
/// cotangents are zeros (and the formulas below would ask for negative sizes).
fn is_empty(lhs: &Type, rhs: &Type, ct: &Type) -> bool {
    [lhs, rhs, ct].iter().any(|t| t.num_elements() == 0)
}

/// Swaps axes 0 and 1 (a placeholder left by a failed equation, of rank 0, is returned as
/// it is: the builder reports that failure).
fn swap01(b: &mut Builder, x: Atom) -> Atom {
    let rank = b.ty(&x).rank();
    if rank < 2 {
        return x;
    }
    let mut perm: SmallVec<[usize; 6]> = (0..rank).collect();
    perm.swap(0, 1);
    b.transpose(x, &perm)
}

/// The cotangent of the lhs of `conv_general_dilated[dims] lhs rhs` for the result's
/// cotangent `ct`.
pub fn conv_transpose_lhs(
    b: &mut Builder,
    dims: &ConvDims,
    ct: Atom,
    lhs: &Type,
    rhs: Atom,
) -> Atom {
    let rhs_ty = b.ty(&rhs).clone();
    let ct_ty = b.ty(&ct).clone();
    if is_empty(lhs, &rhs_ty, &ct_ty) {
        return b.zeros(lhs);
    }
    let k = dims.spatial_rank();
    let groups = dims.group_count();
    let (o, i) = (rhs_ty.shape[0], rhs_ty.shape[1]);
    let kernel = &rhs_ty.shape[2..];
    // [O, I, K..] -> [g, O/g, I, K..] -> [g, I, O/g, K..] -> [g·I, O/g, K..], reversed in space.
    let w = if groups == 1 {
        swap01(b, rhs)
    } else {
        let mut split: SmallVec<[usize; 6]> = [groups, o / groups, i].into_iter().collect();
        split.extend_from_slice(kernel);
        let r = b.reshape(rhs, &split);
        let mut perm: SmallVec<[usize; 6]> = [0, 2, 1].into_iter().collect();
        perm.extend(3..k + 3);
        let r = b.transpose(r, &perm);
        let mut merged: SmallVec<[usize; 6]> = [groups * i, o / groups].into_iter().collect();
        merged.extend_from_slice(kernel);
        b.reshape(r, &merged)
    };
    let spatial: SmallVec<[usize; 4]> = (2..k + 2).collect();
    let w = b.eqn(Prim::Rev { dims: spatial }, &[w]);
    let padding: PadPairs = (0..k)
        .map(|d| {
            let (dilated_lhs, extent, dilated_ct) = sizes(dims, lhs, &rhs_ty, &ct_ty, d);
            let before = extent - dims.padding[d].0 - 1;
            (before, dilated_lhs + extent - 1 - dilated_ct - before)
        })
        .collect();
    let transposed = ConvDims {
        window_strides: dims.lhs_dilation.clone(),
        padding,
        lhs_dilation: dims.window_strides.clone(),
        rhs_dilation: dims.rhs_dilation.clone(),
        feature_group_count: groups,
        batch_group_count: 1,
    };
    let x = b.eqn(Prim::ConvGeneralDilated(Box::new(transposed)), &[ct, w]);
    let batch_groups = dims.batch_group_count;
    if batch_groups == 1 {
        return x;
    }
    // [N/B, B·I, S..] -> [N/B, B, I, S..] -> [B, N/B, I, S..] -> [N, I, S..].
    let spatial_sizes = &lhs.shape[2..];
    let mut split: SmallVec<[usize; 6]> = [ct_ty.shape[0], batch_groups, i].into_iter().collect();
    split.extend_from_slice(spatial_sizes);
    let x = b.reshape(x, &split);
    let x = swap01(b, x);
    b.reshape(x, &lhs.shape)
}

/// The cotangent of the rhs of `conv_general_dilated[dims] lhs rhs` for the result's
/// cotangent `ct`.
pub fn conv_transpose_rhs(
    b: &mut Builder,
    dims: &ConvDims,
    ct: Atom,
    lhs: Atom,
    rhs: &Type,
) -> Atom {
    let lhs_ty = b.ty(&lhs).clone();
    let ct_ty = b.ty(&ct).clone();
    if is_empty(&lhs_ty, rhs, &ct_ty) {
        return b.zeros(rhs);
    }
    let k = dims.spatial_rank();
    let padding: PadPairs = (0..k)
        .map(|d| {
            let (dilated_lhs, extent, dilated_ct) = sizes(dims, &lhs_ty, rhs, &ct_ty, d);
            let lo = dims.padding[d].0;
            (lo, dilated_ct - dilated_lhs + extent - lo - 1)
        })
        .collect();
    let transposed = ConvDims {
        window_strides: dims.rhs_dilation.clone(),
        padding,
        lhs_dilation: dims.lhs_dilation.clone(),
        rhs_dilation: dims.window_strides.clone(),
        feature_group_count: dims.batch_group_count,
        batch_group_count: dims.feature_group_count,
    };
    let l = swap01(b, lhs);
    let c = swap01(b, ct);
    let w = b.eqn(Prim::ConvGeneralDilated(Box::new(transposed)), &[l, c]);
    swap01(b, w)
}
