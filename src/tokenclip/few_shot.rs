//! Few-shot scoring (docs/FEW_SHOT.md, after APRIL-GAN and WinCLIP+): a test patch's score at a
//! layer is `1 − max_j cos(p, m_j)` over the memory of k normal images' patches at that layer;
//! the scores are averaged over the memory's layers, upsampled and smoothed like the zero-shot
//! map, and added to it with the stored weight. With no memory nothing changes.

use crate::backend::{BLayout, Backend, TensorInfo};
use crate::clip::config::ModelConfig;
use crate::clip::few_shot::{memory_name, model_fingerprint, patches_per_image, FewShotConfig};
use crate::clip::weights::{RawTensor, TensorSource, Weights};
use crate::Error;

/// Elements of one similarity block `[rows, k·N]` (64 MiB in f32, half the portable binding
/// limit): larger products are split by query rows.
const BLOCK_ELEMENTS: usize = 16 << 20;

/// A loaded memory: per layer, its `[D, k·N]` tensor.
pub struct FewShotMemory<B: Backend> {
    /// The 1-indexed layer, and its memory.
    layers: Vec<(usize, B::Tensor)>,
    /// The stored settings.
    pub config: FewShotConfig,
}

impl<B: Backend> FewShotMemory<B> {
    /// Loads the memory tensors named by `model.few_shot` from `src` (in their stored dtype).
    ///
    /// # Errors
    /// [`crate::clip::ModelError::Config`] when the memory was built with another model.
    pub fn load(src: &dyn TensorSource, be: &B, model: &ModelConfig) -> Result<Option<Self>, Error> {
        let Some(fs) = &model.few_shot else { return Ok(None) };
        let here = model_fingerprint(src)?;
        if fs.model != here {
            return Err(crate::clip::ModelError::Config(format!(
                "{}: its few-shot memory was built with another model (fingerprint {}, this model's is {here}); \
                 rebuild it with `tokenclip reference`",
                src.source_name(),
                fs.model
            ))
            .into());
        }
        let w = Weights::new(src, be);
        let mut layers = Vec::with_capacity(fs.layers.len());
        for &l in &fs.layers {
            layers.push((l, w.tensor(&memory_name(l))?));
        }
        Ok(Some(FewShotMemory { layers, config: fs.clone() }))
    }

    /// A memory this model just made from its own patches (so no fingerprint to check): the f32
    /// tensors of [`memory_tensors`], uploaded; `None` when `model` has no few-shot settings.
    ///
    /// # Errors
    /// A layer's tensor missing from `tensors`, or an upload failing.
    pub fn from_tensors(
        be: &B,
        model: &ModelConfig,
        tensors: &std::collections::BTreeMap<String, Vec<f32>>,
    ) -> Result<Option<Self>, Error> {
        let Some(fs) = &model.few_shot else { return Ok(None) };
        let d = model.clip.embed_dim;
        let mut layers = Vec::with_capacity(fs.layers.len());
        for &l in &fs.layers {
            let name = memory_name(l);
            let m = tensors
                .get(&name)
                .ok_or_else(|| crate::clip::ModelError::Config(format!("no {name} in the memory")))?;
            layers.push((l, be.upload(m, &[d, m.len() / d.max(1)])?));
        }
        Ok(Some(FewShotMemory { layers, config: fs.clone() }))
    }

    /// The 1-indexed layers the memory holds.
    pub fn layers(&self) -> Vec<usize> {
        self.layers.iter().map(|(l, _)| *l).collect()
    }

    /// The few-shot map `[1, size, size]` of one image from the patches `[N, D]` of the tapped
    /// `taps` (which include every memory layer).
    pub fn map(
        &self,
        be: &B,
        taps: &[usize],
        patches: &[B::Tensor],
        grid: usize,
        size: usize,
        sigma: f32,
    ) -> Result<B::Tensor, Error> {
        let mut pairs = Vec::with_capacity(self.layers.len());
        for (l, m) in &self.layers {
            let at = taps.iter().position(|t| t == l).ok_or_else(|| untapped(*l))?;
            pairs.push((&patches[at], m));
        }
        let scores = grid_scores(be, &pairs)?;
        let up = be.resize_bilinear(&be.reshape(&scores, &[1, grid, grid])?, size, size)?;
        super::scoring::smooth(be, &up, sigma)
    }
}

/// Each patch's few-shot score `[N]`: the mean over `(patches [N, D], memory [D, k·N])` layer
/// pairs of `1 − max_j cos(p_i, m_j)`.
///
/// # Errors
/// No layers; shapes that do not match.
pub fn grid_scores<B: Backend>(be: &B, layers: &[(&B::Tensor, &B::Tensor)]) -> Result<B::Tensor, Error> {
    let mut sum: Option<B::Tensor> = None;
    for (patches, memory) in layers {
        let nearest = nearest_similarity(be, patches, memory)?;
        sum = Some(match sum {
            Some(s) => be.add(&s, &nearest)?,
            None => nearest,
        });
    }
    let Some(sum) = sum else { return Err(no_layers()) };
    let inv = 1.0 / layers.len() as f32;
    Ok(be.affine(&sum, -inv, 1.0)?)
}

/// `max_j ⟨p̂_i, m_j⟩` for each patch `i` (`[N]`): the patches L2-normalised, `memory` `[D, k·N]`
/// of normalised columns, the product split by rows past [`BLOCK_ELEMENTS`].
pub fn nearest_similarity<B: Backend>(be: &B, patches: &B::Tensor, memory: &B::Tensor) -> Result<B::Tensor, Error> {
    nearest_similarity_in_blocks(be, patches, memory, BLOCK_ELEMENTS)
}

/// [`nearest_similarity`] with similarity blocks of at most `max_elements` (at least one row).
pub fn nearest_similarity_in_blocks<B: Backend>(
    be: &B,
    patches: &B::Tensor,
    memory: &B::Tensor,
    max_elements: usize,
) -> Result<B::Tensor, Error> {
    let q = be.l2_normalize(patches)?;
    let (rows, cols) = (q.shape()[0], memory.shape()[1]);
    let block = (max_elements / cols.max(1)).clamp(1, rows.max(1));
    if block >= rows {
        // One block (the usual case, up to 518 px with k ≈ 12): no slice or concat copies.
        return Ok(be.row_max(&be.matmul(&q, memory, None, BLayout::RowMajor)?)?);
    }
    let mut out: Option<B::Tensor> = None;
    for start in (0..rows).step_by(block) {
        let part = be.slice_rows(&q, start, block.min(rows - start))?;
        let best = be.row_max(&be.matmul(&part, memory, None, BLayout::RowMajor)?)?;
        let best = be.reshape(&best, &[best.shape()[0], 1])?;
        out = Some(match out {
            Some(o) => be.concat_rows(&o, &best)?,
            None => best,
        });
    }
    let out = out.ok_or_else(no_layers)?;
    Ok(be.reshape(&out, &[rows])?)
}

fn untapped(l: usize) -> Error {
    crate::BackendError::InvalidArgument { op: "few_shot", message: format!("layer {l}'s patches were not tapped") }
        .into()
}

fn no_layers() -> Error {
    crate::BackendError::InvalidArgument { op: "few_shot", message: "an empty few-shot memory".into() }.into()
}

/// The memory of `images` (each: the patches `[N, D]` of `layers`, in that order, read back
/// row-major), as the `[D, k·N]` tensors a model file stores (columns L2-normalised), by name.
///
/// # Errors
/// Patches of the wrong size or number.
pub fn memory_tensors(
    model: &ModelConfig,
    layers: &[usize],
    images: &[Vec<Vec<f32>>],
) -> Result<std::collections::BTreeMap<String, Vec<f32>>, Error> {
    let (n, d) = (patches_per_image(model), model.clip.embed_dim);
    let mut out = std::collections::BTreeMap::new();
    for (at, &l) in layers.iter().enumerate() {
        let mut per_image = Vec::with_capacity(images.len());
        for img in images {
            let p = img.get(at).ok_or_else(|| untapped(l))?;
            per_image.push(p.as_slice());
        }
        out.insert(memory_name(l), memory_matrix(&per_image, n, d)?);
    }
    Ok(out)
}

/// One layer's memory `[D, k·N]` from k images' patches `[N, D]` (row-major): image `i`'s patch
/// `r`, L2-normalised (in f64), is column `i·N + r`.
///
/// # Errors
/// Patches of another size than `N × D`.
pub fn memory_matrix(images: &[&[f32]], n: usize, d: usize) -> Result<Vec<f32>, Error> {
    let cols = n * images.len();
    let mut m = vec![0.0f32; d * cols];
    for (i, p) in images.iter().enumerate() {
        if p.len() != n * d {
            return Err(crate::clip::ModelError::Config(format!(
                "reference patches of {} values, expected {n} × {d}",
                p.len()
            ))
            .into());
        }
        for (r, row) in p.chunks_exact(d).enumerate() {
            let norm = row.iter().map(|v| f64::from(*v) * f64::from(*v)).sum::<f64>().sqrt().max(1e-12);
            for (k, v) in row.iter().enumerate() {
                m[k * cols + i * n + r] = (f64::from(*v) / norm) as f32;
            }
        }
    }
    Ok(m)
}

/// A model's tensors with a few-shot memory laid over them, f32: what `detect --reference` and
/// the browser's references load (a GPU fault's reload on the CPU reads the memory from here too).
pub struct WithMemory<'a> {
    base: &'a dyn TensorSource,
    memory: std::collections::BTreeMap<String, Vec<f32>>,
    dim: usize,
}

impl<'a> WithMemory<'a> {
    /// `base` plus the `[dim, ·]` memory tensors of [`memory_tensors`].
    pub fn new(base: &'a dyn TensorSource, memory: std::collections::BTreeMap<String, Vec<f32>>, dim: usize) -> Self {
        WithMemory { base, memory, dim }
    }
}

impl TensorSource for WithMemory<'_> {
    fn source_name(&self) -> &str {
        self.base.source_name()
    }

    fn read_raw(&self, name: &str) -> Result<RawTensor, crate::clip::ModelError> {
        match self.memory.get(name) {
            Some(m) => Ok(RawTensor {
                dtype: crate::clip::safetensors::StDType::F32,
                shape: vec![self.dim, m.len() / self.dim.max(1)],
                bytes: crate::clip::safetensors::f32_bytes(m),
            }),
            None => self.base.read_raw(name),
        }
    }
}
