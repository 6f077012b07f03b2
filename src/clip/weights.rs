//! Getting a model's tensors onto a backend: a [`TensorSource`] (a model file on disk, or the
//! browser's stream) and [`Weights`], a prefix-scoped view that uploads by name.
//!
//! Names, shapes and dtypes were checked against the configuration when the source was opened
//! (`model_file::check_tensors`), so model code asks for names and trusts the shapes.

use crate::backend::{Backend, DType};
use crate::Error;

use super::safetensors::{to_f32, StDType};
use super::ModelError;

/// A tensor as stored: type, shape and little-endian bytes.
#[derive(Debug, Clone)]
pub struct RawTensor {
    /// Storage type.
    pub dtype: StDType,
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Little-endian element bytes.
    pub bytes: Vec<u8>,
}

impl RawTensor {
    /// The elements as f32.
    pub fn to_f32(&self) -> Result<Vec<f32>, ModelError> {
        to_f32(self.dtype, &self.bytes)
            .ok_or_else(|| ModelError::Config(format!("tensor of type {} is not a float tensor", self.dtype.name())))
    }
}

/// Where weights come from, by tensor name.
pub trait TensorSource {
    /// The file (or stream) name, for messages.
    fn source_name(&self) -> &str;
    /// Reads one tensor.
    fn read_raw(&self, name: &str) -> Result<RawTensor, ModelError>;
}

/// A view of a [`TensorSource`] under a name prefix, uploading to one backend.
pub struct Weights<'a, B: Backend> {
    src: &'a dyn TensorSource,
    be: &'a B,
    prefix: String,
}

impl<'a, B: Backend> Weights<'a, B> {
    /// The root view (no prefix).
    pub fn new(src: &'a dyn TensorSource, be: &'a B) -> Self {
        Weights { src, be, prefix: String::new() }
    }

    /// The view under `prefix.sub`.
    pub fn pp(&self, sub: impl std::fmt::Display) -> Self {
        let prefix = if self.prefix.is_empty() { sub.to_string() } else { format!("{}.{sub}", self.prefix) };
        Weights { src: self.src, be: self.be, prefix }
    }

    fn full(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// Reads tensor `name` (under the prefix) as stored.
    pub fn raw(&self, name: &str) -> Result<RawTensor, ModelError> {
        self.src.read_raw(&self.full(name))
    }

    /// Reads tensor `name` as f32 on the host (for weights transformed at load time).
    pub fn host_f32(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>), ModelError> {
        let raw = self.raw(name)?;
        Ok((raw.to_f32()?, raw.shape))
    }

    /// Uploads tensor `name` in its stored type (f16 weights stay f16 on the device).
    pub fn tensor(&self, name: &str) -> Result<B::Tensor, Error> {
        let raw = self.raw(name)?;
        let t = match raw.dtype {
            StDType::F16 => {
                let h: Vec<half::f16> =
                    raw.bytes.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]])).collect();
                self.be.upload_f16(&h, &raw.shape)?
            }
            _ => self.be.upload(&raw.to_f32()?, &raw.shape)?,
        };
        Ok(t)
    }

    /// Uploads a 2-D tensor `name` (`[rows, cols]`) transposed to `[cols, rows]`, in its stored type.
    /// PyTorch keeps `Linear` weights as `[out, in]`; as `[in, out]` the CPU GEMM packs them with
    /// contiguous reads, which at CLIP's shapes is the difference between packing costing as much as
    /// the multiply and costing next to nothing.
    pub fn tensor_transposed(&self, name: &str) -> Result<B::Tensor, Error> {
        let raw = self.raw(name)?;
        let [rows, cols] = raw.shape[..] else {
            return Err(
                ModelError::Config(format!("`{}` is not a matrix (shape {:?})", self.full(name), raw.shape)).into()
            );
        };
        let t = match raw.dtype {
            StDType::F16 => {
                let h: Vec<half::f16> =
                    raw.bytes.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]])).collect();
                self.be.upload_f16(&transpose(&h, rows, cols), &[cols, rows])?
            }
            _ => self.be.upload(&transpose(&raw.to_f32()?, rows, cols), &[cols, rows])?,
        };
        Ok(t)
    }

    /// Uploads tensor `name` converted to `dtype` (an f32-stored bias beside an f16 weight).
    pub fn tensor_in(&self, name: &str, dtype: DType) -> Result<B::Tensor, Error> {
        let raw = self.raw(name)?;
        Ok(match dtype {
            DType::F16 => {
                let h: Vec<half::f16> = raw.to_f32()?.into_iter().map(half::f16::from_f32).collect();
                self.be.upload_f16(&h, &raw.shape)?
            }
            DType::F32 => self.be.upload(&raw.to_f32()?, &raw.shape)?,
        })
    }

    /// Uploads tensor `name` with a different (same-size) shape, e.g. a `[W]` vector as `[1, W]`.
    pub fn tensor_as(&self, name: &str, shape: &[usize]) -> Result<B::Tensor, Error> {
        let (data, _) = self.host_f32(name)?;
        Ok(self.be.upload(&data, shape)?)
    }

    /// The backend weights are uploaded to.
    pub fn backend(&self) -> &'a B {
        self.be
    }
}

/// `[rows, cols]` → `[cols, rows]`, in cache-sized blocks.
fn transpose<T: Copy + Default>(x: &[T], rows: usize, cols: usize) -> Vec<T> {
    const BLOCK: usize = 32;
    let mut out = vec![T::default(); x.len()];
    for r0 in (0..rows).step_by(BLOCK) {
        for c0 in (0..cols).step_by(BLOCK) {
            for r in r0..(r0 + BLOCK).min(rows) {
                for c in c0..(c0 + BLOCK).min(cols) {
                    out[c * rows + r] = x[r * cols + c];
                }
            }
        }
    }
    out
}
