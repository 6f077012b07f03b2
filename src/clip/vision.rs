//! The vision tower (open_clip `VisionTransformer`, METHOD.md A1): patch embedding, class token,
//! positional embedding resized bilinearly to the input's grid, `ln_pre`, the residual blocks,
//! `ln_post` on the class token and the projection.

use std::sync::Mutex;

use crate::backend::{AttentionMask, BLayout, Backend, BackendError, TensorInfo};
use crate::Error;

use super::batch;
use super::config::VisionConfig;
use super::transformer::{load_blocks, LayerNorm, ResidualBlock};
use super::weights::Weights;

/// Positional embeddings already uploaded, by patch grid `(rows, cols)`.
type PositionalCache<B> = Vec<((usize, usize), <B as Backend>::Tensor)>;

/// What the detection forward pass yields (METHOD.md A2), every row L2-normalised.
pub struct VisionOutput<B: Backend> {
    /// The global embedding `[1, D]`.
    pub global: B::Tensor,
    /// Patch embeddings `[N, D]`, one per feature layer, in the configured order.
    pub patches: Vec<B::Tensor>,
}

/// The vision tower's weights on one backend.
pub struct VisionTower<B: Backend> {
    cfg: VisionConfig,
    class_embedding: B::Tensor,
    /// The checkpoint's positional embedding, `[g·g + 1, W]`, kept on the host for resizing.
    positional_host: Vec<f32>,
    /// Positional embeddings uploaded per input grid `(gh, gw)`.
    positional: Mutex<PositionalCache<B>>,
    conv1: B::Tensor,
    ln_pre: LayerNorm<B>,
    /// The residual blocks, in order.
    pub blocks: Vec<ResidualBlock<B>>,
    ln_post: LayerNorm<B>,
    proj: B::Tensor,
}

impl<B: Backend> VisionTower<B> {
    /// Loads every `visual.*` tensor (`w` is the view under `visual`).
    pub fn load(w: &Weights<'_, B>, cfg: &VisionConfig) -> Result<Self, Error> {
        let (positional_host, _) = w.host_f32("positional_embedding")?;
        Ok(VisionTower {
            cfg: cfg.clone(),
            class_embedding: w.tensor_as("class_embedding", &[1, cfg.width])?,
            positional_host,
            positional: Mutex::new(Vec::new()),
            conv1: w.tensor("conv1.weight")?,
            ln_pre: LayerNorm::load(&w.pp("ln_pre"))?,
            blocks: load_blocks(&w.pp("transformer"), cfg.layers, cfg.heads, cfg.activation)?,
            ln_post: LayerNorm::load(&w.pp("ln_post"))?,
            proj: w.tensor("proj")?,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &VisionConfig {
        &self.cfg
    }

    /// The positional embedding for a `gh × gw` patch grid: the class position kept, the grid part
    /// resized bilinearly (`align_corners = False`) when it differs from the checkpoint's.
    fn positional(&self, be: &B, gh: usize, gw: usize) -> Result<B::Tensor, Error> {
        let mut cache = self.positional.lock().map_err(|_| BackendError::Device {
            op: "positional_embedding",
            message: "a previous pass panicked while holding the cache".into(),
        })?;
        if let Some((_, t)) = cache.iter().find(|(g, _)| *g == (gh, gw)) {
            return Ok(t.clone());
        }
        let data = resize_positional(&self.positional_host, self.cfg.width, self.cfg.grid(), gh, gw);
        let t = be.upload(&data, &[gh * gw + 1, self.cfg.width])?;
        cache.push(((gh, gw), t.clone()));
        Ok(t)
    }

    /// Token embeddings after `ln_pre`: `[1 + gh·gw, W]` for an image `[3, H, W]`.
    pub fn embed(&self, be: &B, image: &B::Tensor) -> Result<B::Tensor, Error> {
        let p = self.cfg.patch_size;
        let (gh, gw) = match *image.shape() {
            [3, h, w] if h >= p && w >= p => (h / p, w / p),
            _ => {
                return Err(BackendError::ShapeMismatch {
                    op: "vision",
                    operand: "image",
                    expected: format!("[3, H, W] with H, W ≥ {p}"),
                    got: image.shape().to_vec(),
                }
                .into())
            }
        };
        let pos = self.positional(be, gh, gw)?;
        let patches = be.patch_embed(image, &self.conv1)?;
        let x = be.add(&be.concat_rows(&self.class_embedding, &patches)?, &pos)?;
        self.ln_pre.forward(be, &x)
    }

    /// open_clip's `encode_image` for one preprocessed image `[3, H, W]`: `[1, D]`, not normalised.
    pub fn encode_image(&self, be: &B, image: &B::Tensor) -> Result<B::Tensor, Error> {
        let mut x = self.embed(be, image)?;
        for block in &self.blocks {
            x = block.forward(be, &x, AttentionMask::None)?;
        }
        let cls = self.ln_post.forward(be, &be.slice_rows(&x, 0, 1)?)?;
        self.project(be, &cls)
    }

    /// The detection forward pass (METHOD.md A2) for one image: [`Self::forward_batch`] of one.
    pub fn forward(
        &self,
        be: &B,
        image: &B::Tensor,
        dpam_start: usize,
        feature_layers: &[usize],
    ) -> Result<VisionOutput<B>, Error> {
        let mut out = self.forward_batch(be, std::slice::from_ref(image), dpam_start, feature_layers)?;
        out.pop().ok_or_else(|| BackendError::InvalidArgument { op: "vision", message: "no output".into() }.into())
    }

    /// The detection forward pass (METHOD.md A2): one layer loop, the DPAM stream from
    /// `dpam_start` (1-indexed), patch embeddings tapped at each of `feature_layers` (`z` from
    /// DPAM layers, `h` before them) and the global embedding from the last layer's class token
    /// without `ln_post` (AnomalyCLIP's quirk, kept for parity). Layer indices were validated
    /// with the model's configuration. Several images run as one batch `[B, T, W]` through the
    /// blocks, each weight multiplied once for all; each item's result is its single pass's.
    ///
    /// # Shapes
    /// `images`: each `[3, H, W]`, one shape. Output, per image: `global` `[1, D]`, each of
    /// `patches` `[N, D]` (N = patches of the grid, class token dropped), rows L2-normalised.
    pub fn forward_batch(
        &self,
        be: &B,
        images: &[B::Tensor],
        dpam_start: usize,
        feature_layers: &[usize],
    ) -> Result<Vec<VisionOutput<B>>, Error> {
        be.scope(format_args!("vision embed"));
        let embedded: Vec<B::Tensor> = images.iter().map(|x| self.embed(be, x)).collect::<Result<_, _>>()?;
        let mut h = batch::stack(be, &embedded)?;
        let tokens = embedded.first().map_or(0, |x| x.shape()[0]);
        let mut z: Option<B::Tensor> = None;
        let mut taps: Vec<Option<B::Tensor>> = vec![None; feature_layers.len()];
        for (i, block) in self.blocks.iter().enumerate() {
            let layer = i + 1;
            be.scope(format_args!("vision layer {layer}"));
            if layer >= dpam_start {
                // After the last layer only h's class token is read (the global embedding).
                let class_only = layer == self.blocks.len();
                let (h2, z2) = super::dpam::dual_path(be, block, &h, z.as_ref().unwrap_or(&h), class_only)?;
                (h, z) = (h2, Some(z2));
            } else {
                h = block.forward(be, &h, AttentionMask::None)?;
            }
            for (tap, _) in taps.iter_mut().zip(feature_layers).filter(|(_, &l)| l == layer) {
                *tap = Some(z.clone().unwrap_or_else(|| h.clone()));
            }
        }
        be.scope(format_args!("vision taps"));
        let taps: Vec<B::Tensor> = taps
            .into_iter()
            .zip(feature_layers)
            .map(|(tap, layer)| {
                tap.ok_or_else(|| BackendError::InvalidArgument {
                    op: "vision",
                    message: format!("feature layer {layer} is outside the {} layers", self.blocks.len()),
                })
            })
            .collect::<Result<_, _>>()?;
        let mut outputs = Vec::with_capacity(images.len());
        for b in 0..images.len() {
            let mut patches = Vec::with_capacity(taps.len());
            for tap in &taps {
                let x = self.ln_post(be, &batch::item_rows(be, tap, b, 1, tokens - 1)?)?;
                patches.push(be.l2_normalize(&self.project(be, &x)?)?);
            }
            let global = be.l2_normalize(&self.project(be, &batch::item_rows(be, &h, b, 0, 1)?)?)?;
            outputs.push(VisionOutput { global, patches });
        }
        Ok(outputs)
    }

    /// `x · proj` (`[R, W]` → `[R, D]`).
    pub fn project(&self, be: &B, x: &B::Tensor) -> Result<B::Tensor, Error> {
        Ok(be.matmul(x, &self.proj, None, BLayout::RowMajor)?)
    }

    /// `ln_post(x)`.
    pub fn ln_post(&self, be: &B, x: &B::Tensor) -> Result<B::Tensor, Error> {
        self.ln_post.forward(be, x)
    }
}

/// Resizes a `[g·g + 1, W]` positional embedding to a `gh × gw` grid (PyTorch
/// `F.interpolate(mode='bilinear', align_corners=False)` on the `[W, g, g]` grid part).
pub fn resize_positional(pos: &[f32], width: usize, g: usize, gh: usize, gw: usize) -> Vec<f32> {
    if (gh, gw) == (g, g) {
        return pos.to_vec();
    }
    let grid = &pos[width..];
    let mut planes = vec![0.0f32; width * g * g];
    for (i, row) in grid.chunks_exact(width).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            planes[c * g * g + i] = v;
        }
    }
    let mut resized = vec![0.0f32; width * gh * gw];
    crate::backend::cpu::resize::resize_bilinear(&planes, width, g, g, gh, gw, &mut resized);
    let mut out = Vec::with_capacity((gh * gw + 1) * width);
    out.extend_from_slice(&pos[..width]);
    for i in 0..gh * gw {
        out.extend((0..width).map(|c| resized[c * gh * gw + i]));
    }
    out
}
