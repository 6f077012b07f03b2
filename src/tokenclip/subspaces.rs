//! The textual subspaces on a device (METHOD.md B1, B3, B7): the stored normal and abnormal
//! embeddings, each subspace's transport axis `s^m = normalize(t_n^m + t_a^m)`, and the mean
//! embeddings the image score uses. Everything derived is computed once on the host at load.

use crate::backend::Backend;
use crate::clip::ModelError;
use crate::Error;

use super::prompts::{normalize, TextEmbeddings};

/// Text embeddings and what is derived from them, uploaded once.
pub struct TextSpace<B: Backend> {
    /// Subspaces M.
    pub subspaces: usize,
    /// Normal embeddings `[M, D]`.
    pub normal: B::Tensor,
    /// Abnormal embeddings `[M, D]`.
    pub abnormal: B::Tensor,
    /// Transport axes `s^m`, `[M, D]`.
    pub axes: B::Tensor,
    /// `normalize(mean_m t_n^m)`, `[1, D]`.
    pub mean_normal: B::Tensor,
    /// `normalize(mean_m t_a^m)`, `[1, D]`.
    pub mean_abnormal: B::Tensor,
    /// The weight `[[1]]` the global score is mixed with.
    pub one: B::Tensor,
}

impl<B: Backend> TextSpace<B> {
    /// Derives the axes and means from `emb` and uploads everything.
    pub fn new(be: &B, emb: &TextEmbeddings) -> Result<Self, Error> {
        let (m, d) = (emb.subspaces, emb.dim);
        if m == 0 || d == 0 || emb.normal.len() != m * d || emb.abnormal.len() != m * d {
            return Err(ModelError::Config(format!("text embeddings are not [{m}, {d}]")).into());
        }
        if !emb.normal.iter().chain(&emb.abnormal).all(|v| v.is_finite()) {
            return Err(ModelError::Config("text embeddings hold non-finite values".into()).into());
        }
        let mut axes: Vec<f32> = emb.normal.iter().zip(&emb.abnormal).map(|(a, b)| a + b).collect();
        axes.chunks_exact_mut(d).for_each(normalize);
        let mean = |t: &[f32]| {
            let mut v: Vec<f32> = (0..d).map(|c| (0..m).map(|j| t[j * d + c]).sum::<f32>() / m as f32).collect();
            normalize(&mut v);
            v
        };
        Ok(TextSpace {
            subspaces: m,
            normal: be.upload(&emb.normal, &[m, d])?,
            abnormal: be.upload(&emb.abnormal, &[m, d])?,
            axes: be.upload(&axes, &[m, d])?,
            mean_normal: be.upload(&mean(&emb.normal), &[1, d])?,
            mean_abnormal: be.upload(&mean(&emb.abnormal), &[1, d])?,
            one: be.upload(&[1.0], &[1, 1])?,
        })
    }
}
