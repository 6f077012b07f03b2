//! The safetensors container, read and written without trusting the file.
//!
//! Layout: an 8-byte little-endian header length `n`, `n` bytes of JSON (`{"__metadata__": {..},
//! "name": {"dtype", "shape", "data_offsets": [begin, end]}, ..}`), then the tensor bytes, offsets
//! relative to the end of the header. Reading checks the header length against the file, every
//! offset range against the data and every byte count against dtype × shape (checked
//! arithmetic), before any tensor is read. Tensors are read one at a time (positioned reads), so
//! a multi-GB file is never held in memory whole. Writing goes to a temporary file that is renamed
//! into place only when complete.

use std::collections::BTreeMap;
use std::io::Write;
#[cfg(not(target_arch = "wasm32"))]
use std::path::Path;

use serde_json::{Map, Value};

use super::ModelError;
use crate::io::bytes::RandomAccess;

/// The largest JSON header accepted (the reference implementation's limit).
pub const MAX_HEADER_BYTES: u64 = 100 * 1024 * 1024;

/// Element types this program reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StDType {
    /// 32-bit float.
    F32,
    /// IEEE half.
    F16,
    /// bfloat16 (read only, converted).
    BF16,
    /// 64-bit float (read only, converted).
    F64,
    /// 64-bit integer (read only, e.g. Hugging Face's `position_ids`; never a weight).
    I64,
}

impl StDType {
    /// The name safetensors uses.
    pub fn name(self) -> &'static str {
        match self {
            StDType::F32 => "F32",
            StDType::F16 => "F16",
            StDType::BF16 => "BF16",
            StDType::F64 => "F64",
            StDType::I64 => "I64",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> u64 {
        match self {
            StDType::F16 | StDType::BF16 => 2,
            StDType::F32 => 4,
            StDType::F64 | StDType::I64 => 8,
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "F32" => StDType::F32,
            "F16" => StDType::F16,
            "BF16" => StDType::BF16,
            "F64" => StDType::F64,
            "I64" => StDType::I64,
            _ => return None,
        })
    }
}

/// One tensor's place in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorEntry {
    /// Element type.
    pub dtype: StDType,
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Absolute byte offset of the first element in the file.
    pub offset: u64,
    /// Byte length (= elements × element size, checked).
    pub bytes: u64,
}

impl TensorEntry {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A parsed, validated header.
#[derive(Debug, Clone)]
pub struct Header {
    /// The `__metadata__` string map.
    pub metadata: BTreeMap<String, String>,
    /// Tensors by name.
    pub tensors: BTreeMap<String, TensorEntry>,
}

/// Length of the JSON header a file starts with, from its first 8 bytes, checked against the
/// file length. Returns the byte count of the whole prefix (8 + JSON).
pub fn header_len(first8: &[u8], file_len: u64, path: &str) -> Result<u64, ModelError> {
    let bytes: [u8; 8] = first8
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| ModelError::corrupt(path, "shorter than a safetensors header"))?;
    let n = u64::from_le_bytes(bytes);
    if n > MAX_HEADER_BYTES {
        return Err(ModelError::corrupt(
            path,
            format!("safetensors header claims {n} bytes (limit {MAX_HEADER_BYTES})"),
        ));
    }
    if 8 + n > file_len {
        return Err(ModelError::corrupt(
            path,
            format!("safetensors header claims {n} bytes but the file has {file_len}"),
        ));
    }
    Ok(8 + n)
}

/// Parses and validates the JSON header (`json` = the bytes after the length prefix).
pub fn parse_header(json: &[u8], data_start: u64, file_len: u64, path: &str) -> Result<Header, ModelError> {
    let bad = |what: String| ModelError::corrupt(path, what);
    let root: Map<String, Value> =
        serde_json::from_slice(json).map_err(|e| bad(format!("safetensors header is not valid JSON: {e}")))?;
    let data_len = file_len - data_start;
    let mut metadata = BTreeMap::new();
    let mut tensors = BTreeMap::new();
    for (name, v) in root {
        if name == "__metadata__" {
            let m = v.as_object().ok_or_else(|| bad("__metadata__ is not an object".into()))?;
            for (k, v) in m {
                let v = v.as_str().ok_or_else(|| bad(format!("metadata `{k}` is not a string")))?;
                metadata.insert(k.clone(), v.to_string());
            }
            continue;
        }
        let entry = parse_entry(&name, &v, data_len).map_err(|what| bad(format!("tensor `{name}`: {what}")))?;
        tensors.insert(name, TensorEntry { offset: entry.offset + data_start, ..entry });
    }
    Ok(Header { metadata, tensors })
}

fn parse_entry(name: &str, v: &Value, data_len: u64) -> Result<TensorEntry, String> {
    let _ = name;
    let dtype_name = v.get("dtype").and_then(Value::as_str).ok_or("no dtype")?;
    let dtype = StDType::parse(dtype_name).ok_or_else(|| format!("unsupported dtype {dtype_name}"))?;
    let shape = v
        .get("shape")
        .and_then(Value::as_array)
        .ok_or("no shape")?
        .iter()
        .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()).ok_or("shape is not a list of sizes"))
        .collect::<Result<Vec<usize>, _>>()?;
    let offsets = v.get("data_offsets").and_then(Value::as_array).ok_or("no data_offsets")?;
    let (begin, end) = match offsets.as_slice() {
        [b, e] => (b.as_u64().ok_or("bad data_offsets")?, e.as_u64().ok_or("bad data_offsets")?),
        _ => return Err("data_offsets is not [begin, end]".into()),
    };
    if begin > end || end > data_len {
        return Err(format!("data_offsets [{begin}, {end}] outside the {data_len} data bytes"));
    }
    let elements = shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d as u64)).ok_or("shape overflows")?;
    let bytes = elements.checked_mul(dtype.size()).ok_or("shape overflows")?;
    if bytes != end - begin {
        return Err(format!("shape {shape:?} of {dtype_name} needs {bytes} bytes, data_offsets give {}", end - begin));
    }
    Ok(TensorEntry { dtype, shape, offset: begin, bytes })
}

/// Converts raw little-endian bytes of `dtype` to f32.
pub fn to_f32(dtype: StDType, raw: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        StDType::F32 => raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        StDType::F16 => raw.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        StDType::BF16 => raw.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        StDType::F64 => raw
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
        StDType::I64 => return None,
    })
}

/// A safetensors file opened for positioned reads: from disk natively, from a download held in
/// browser memory in wasm.
pub struct SafetensorsFile {
    path: String,
    file: Box<dyn RandomAccess>,
    /// The validated header.
    pub header: Header,
}

impl std::fmt::Debug for SafetensorsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafetensorsFile").field("path", &self.path).field("header", &self.header).finish()
    }
}

impl SafetensorsFile {
    /// Opens `path` and validates its header; reads nothing else.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        let name = path.display().to_string();
        let file = crate::io::bytes::open_file(path).map_err(|e| ModelError::io(&name, e))?;
        Self::from_source(file, name)
    }

    /// Validates the header of the safetensors bytes in `file` (named `name` in messages).
    pub fn from_source(file: Box<dyn RandomAccess>, name: String) -> Result<Self, ModelError> {
        let file_len = file.len();
        let mut first8 = [0u8; 8];
        file.read_at(0, &mut first8).map_err(|_| ModelError::corrupt(&name, "shorter than a safetensors header"))?;
        let prefix = header_len(&first8, file_len, &name)?;
        let mut json = vec![0u8; (prefix - 8) as usize];
        file.read_at(8, &mut json).map_err(|e| ModelError::io(&name, e))?;
        let header = parse_header(&json, prefix, file_len, &name)?;
        Ok(SafetensorsFile { path: name, file, header })
    }

    /// The file's path, for messages.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The raw bytes of tensor `name`.
    pub fn read_raw(&self, name: &str) -> Result<(TensorEntry, Vec<u8>), ModelError> {
        let entry = self
            .header
            .tensors
            .get(name)
            .ok_or_else(|| ModelError::MissingTensor { path: self.path.clone(), name: name.into() })?
            .clone();
        let len = usize::try_from(entry.bytes).map_err(|_| ModelError::corrupt(&self.path, "tensor too large"))?;
        let mut buf = Vec::new();
        buf.try_reserve_exact(len).map_err(|e| ModelError::io(&self.path, std::io::Error::other(e)))?;
        buf.resize(len, 0);
        self.file.read_at(entry.offset, &mut buf).map_err(|e| ModelError::io(&self.path, e))?;
        Ok((entry, buf))
    }

    /// Tensor `name` converted to f32 (from F32, F16, BF16 or F64).
    pub fn read_f32(&self, name: &str) -> Result<Vec<f32>, ModelError> {
        let (entry, raw) = self.read_raw(name)?;
        to_f32(entry.dtype, &raw).ok_or_else(|| ModelError::DTypeMismatch {
            path: self.path.clone(),
            name: name.into(),
            expected: "a float type".into(),
            got: entry.dtype.name().into(),
        })
    }
}

/// One tensor to write: name, element type (F32 or F16) and shape.
#[derive(Debug, Clone)]
pub struct PlannedTensor {
    /// Tensor name.
    pub name: String,
    /// F32 or F16.
    pub dtype: StDType,
    /// Dimensions.
    pub shape: Vec<usize>,
}

/// A safetensors file's layout, computed before any tensor is produced: the header bytes and
/// every tensor's byte count, so the file's size is known up front (the browser allocates it once).
#[derive(Debug, Clone)]
pub struct FilePlan {
    /// The 8-byte length prefix and the JSON header (padded so the data starts 8-byte aligned).
    pub prefix: Vec<u8>,
    /// Byte count of each tensor, in order.
    pub sizes: Vec<u64>,
}

impl FilePlan {
    /// Plans the file holding `tensors` (in order) and `metadata`.
    pub fn new(metadata: &BTreeMap<String, String>, tensors: &[PlannedTensor]) -> Result<Self, ModelError> {
        let mut header = Map::new();
        if !metadata.is_empty() {
            header.insert(
                "__metadata__".into(),
                serde_json::to_value(metadata).map_err(|e| ModelError::Config(e.to_string()))?,
            );
        }
        let mut offset = 0u64;
        let mut sizes = Vec::with_capacity(tensors.len());
        for t in tensors {
            let bytes = t.shape.iter().product::<usize>() as u64 * t.dtype.size();
            header.insert(
                t.name.clone(),
                serde_json::json!({ "dtype": t.dtype.name(), "shape": t.shape, "data_offsets": [offset, offset + bytes] }),
            );
            sizes.push(bytes);
            offset += bytes;
        }
        let mut json = serde_json::to_vec(&Value::Object(header)).map_err(|e| ModelError::Config(e.to_string()))?;
        // Pad so the data starts 8-byte aligned, as the reference writer does.
        while (json.len() + 8) % 8 != 0 {
            json.push(b' ');
        }
        let mut prefix = (json.len() as u64).to_le_bytes().to_vec();
        prefix.extend(json);
        Ok(FilePlan { prefix, sizes })
    }

    /// The whole file's size in bytes.
    pub fn total(&self) -> u64 {
        self.prefix.len() as u64 + self.sizes.iter().sum::<u64>()
    }

    /// Writes the file to `w`: the header, then each tensor's bytes as `fill(index)` returns them
    /// (checked against the plan). `name` labels errors.
    pub fn write(
        &self,
        w: &mut dyn Write,
        tensors: &[PlannedTensor],
        name: &str,
        mut fill: impl FnMut(usize) -> Result<Vec<u8>, ModelError>,
    ) -> Result<(), ModelError> {
        let io = |e| ModelError::io(name, e);
        w.write_all(&self.prefix).map_err(io)?;
        for (i, &size) in self.sizes.iter().enumerate() {
            let data = fill(i)?;
            if data.len() as u64 != size {
                return Err(ModelError::Config(format!(
                    "tensor `{}`: {} bytes given for {size} planned",
                    tensors[i].name,
                    data.len()
                )));
            }
            w.write_all(&data).map_err(io)?;
        }
        Ok(())
    }
}

/// Writes a safetensors file atomically: the header from `tensors` and `metadata`, then each
/// tensor's bytes as `fill(index)` returns them (in `tensors` order), into a temporary file in the
/// same folder that is renamed to `path` only once everything is written and flushed. On any
/// error the temporary file is removed and `path` is untouched.
#[cfg(not(target_arch = "wasm32"))]
pub fn write_atomic(
    path: &Path,
    metadata: &BTreeMap<String, String>,
    tensors: &[PlannedTensor],
    fill: impl FnMut(usize) -> Result<Vec<u8>, ModelError>,
) -> Result<(), ModelError> {
    let plan = FilePlan::new(metadata, tensors)?;
    write_atomic_with(path, |w| plan.write(w, tensors, &path.display().to_string(), fill))
}

/// Runs `write` on a buffered temporary file beside `path` ([`crate::io::output::AtomicFile`]),
/// then flushes, syncs and renames it to `path`; on any error the temporary file is removed and
/// `path` is untouched.
#[cfg(not(target_arch = "wasm32"))]
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<(), ModelError>,
) -> Result<(), ModelError> {
    let name = path.display().to_string();
    let mut file = crate::io::output::AtomicFile::create(path).map_err(|e| ModelError::io(&name, input_io(e)))?;
    write(&mut file)?;
    file.commit().map_err(|e| ModelError::io(&name, input_io(e)))
}

/// The I/O error inside an output error (the model error names the path itself).
#[cfg(not(target_arch = "wasm32"))]
fn input_io(e: crate::io::InputError) -> std::io::Error {
    match e {
        crate::io::InputError::Io { source, .. } => source,
        other => std::io::Error::other(other.to_string()),
    }
}

/// Little-endian bytes of f32 values.
pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Little-endian bytes of f32 values rounded to f16.
pub fn f16_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect()
}
