//! A model file held in JS memory as a [`TensorSource`]: its header is checked exactly as
//! natively, and tensors are copied into wasm memory one at a time, on their way to their GPU
//! buffers. Each copy is freed once uploaded, so wasm memory never holds more than the largest
//! tensor (8 MiB for ViT-L/14 in f16) however large the file is, let alone two copies of it.

use std::cell::Cell;

use js_sys::Uint8Array;

use crate::clip::config::ModelConfig;
use crate::clip::model_file::{validate_header, TEXT_ABNORMAL, TEXT_NORMAL};
use crate::clip::safetensors::{header_len, parse_header, Header, StDType};
use crate::clip::weights::{RawTensor, TensorSource};
use crate::clip::ModelError;

use super::source::Progress;

/// A validated model file in a JS `Uint8Array`, read one tensor at a time (see the module docs).
#[derive(Debug)]
pub struct JsTensorSource {
    bytes: Uint8Array,
    name: String,
    header: Header,
    /// The configuration from the file's metadata, checked against every tensor.
    pub config: ModelConfig,
    progress: Progress,
    /// Bytes of the tensors detection loads (vision tower and text embeddings).
    upload_total: f64,
    uploaded: Cell<f64>,
}

impl JsTensorSource {
    /// Parses the header and checks the file exactly as `ModelFile::open` does natively
    /// ([`validate_header`]); reads no tensor data.
    ///
    /// # Errors
    /// [`ModelError`]s naming the first problem: not a safetensors file, not a tokenclip model,
    /// a bad config, a missing or misshapen tensor.
    pub fn open(bytes: Uint8Array, name: String, progress: Progress) -> Result<Self, ModelError> {
        let file_len = u64::from(bytes.length());
        let first8 = bytes.subarray(0, bytes.length().min(8)).to_vec();
        let prefix = header_len(&first8, file_len, &name)?;
        // `prefix` ≤ file_len ≤ u32::MAX, checked by header_len.
        let json = bytes.subarray(8, prefix as u32).to_vec();
        let header = parse_header(&json, prefix, file_len, &name)?;
        let config = validate_header(&header, &name)?;
        let upload_total = header
            .tensors
            .iter()
            .filter(|(n, _)| n.starts_with("visual.") || *n == TEXT_NORMAL || *n == TEXT_ABNORMAL)
            .map(|(_, e)| e.bytes as f64)
            .sum();
        Ok(JsTensorSource { bytes, name, header, config, progress, upload_total, uploaded: Cell::new(0.0) })
    }

    /// The progress reporter.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Reports the end of the upload phase.
    pub fn finish(&self) {
        self.progress.report("upload", self.uploaded.get(), Some(self.upload_total), true);
    }
}

impl TensorSource for JsTensorSource {
    fn source_name(&self) -> &str {
        &self.name
    }

    fn read_raw(&self, name: &str) -> Result<RawTensor, ModelError> {
        let entry = self
            .header
            .tensors
            .get(name)
            .ok_or_else(|| ModelError::MissingTensor { path: self.name.clone(), name: name.into() })?;
        // parse_header checked offset + bytes against the file length, which fits in u32.
        let (begin, end) = (u32::try_from(entry.offset), u32::try_from(entry.offset + entry.bytes));
        let (Ok(begin), Ok(end)) = (begin, end) else {
            return Err(ModelError::corrupt(&self.name, format!("tensor `{name}` lies beyond 4 GiB")));
        };
        let bytes = self.bytes.subarray(begin, end).to_vec();
        if self.uploaded.get() == 0.0 {
            self.progress.report("upload", 0.0, Some(self.upload_total), true);
        }
        self.uploaded.set(self.uploaded.get() + entry.bytes as f64);
        self.progress.report("upload", self.uploaded.get(), Some(self.upload_total), false);
        Ok(RawTensor { dtype: entry.dtype, shape: entry.shape.clone(), bytes })
    }
}

/// Bytes one tensor of `len` elements of `dtype` takes in a GPU buffer (f16 packed in pairs).
pub fn gpu_bytes(len: usize, dtype: StDType) -> u64 {
    match dtype {
        StDType::F16 | StDType::BF16 => (len as u64).div_ceil(2) * 4,
        _ => len as u64 * 4,
    }
}
