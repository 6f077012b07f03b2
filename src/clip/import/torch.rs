//! PyTorch checkpoints read without Python: named tensors from `torch.save` and `torch.jit.save`.
//!
//! Read: ZIP checkpoints (PyTorch ≥ 1.6 `torch.save`, any `torch.jit.save`, including OpenAI's
//! CLIP `.pt` files saved by torch 1.7). `<archive>/data.pkl` is decoded by [`super::pickle`];
//! tensors are `torch._utils._rebuild_tensor{,_v2,_v3}` calls (also wrapped in
//! `_rebuild_parameter{,_with_state}` or `torch._tensor._rebuild_from_type_v2`) whose storage is
//! a persistent id `('storage', torch.<T>Storage | torch.UntypedStorage, key, location, numel)`
//! naming the stored entry `<archive>/data/<key>`. Names follow `state_dict()`: nested dicts,
//! lists and pickled `nn.Module`s are flattened with `.`; TorchScript modules (`__torch__.*`
//! objects) are walked attribute by attribute, keeping only the parameters and buffers that the
//! class's `__parameters__` / `__buffers__` lists in `<archive>/code/` name, exactly as
//! `torch.jit.load(path).state_dict()` does (all tensor attributes when the class is not found).
//!
//! Refused with a clear error: legacy (pre-1.6, non-ZIP) `torch.save` files, pre-1.4 TorchScript
//! (`model.json`), big-endian archives, and complex, quantized, sparse, float8 or other exotic
//! tensors. Non-tensor values (ints, strings, optimizer settings, unknown objects) are ignored.
//!
//! Memory: [`TorchCheckpoint::open`] reads the ZIP directory, `data.pkl` and the few `code/`
//! files it needs; tensor data stays on disk until [`TorchCheckpoint::read_bytes`] or
//! [`TorchCheckpoint::read_f32`] reads exactly the bytes one tensor spans.

use std::collections::{BTreeMap, HashMap};
#[cfg(not(target_arch = "wasm32"))]
use std::io::Read;
#[cfg(not(target_arch = "wasm32"))]
use std::path::Path;
use std::sync::Mutex;

mod walk;

use self::walk::{is_script_module, Walker};
use super::pickle::{self, Value};
use super::zip::{has_zip_magic, ZipArchive};
use crate::clip::ModelError;
use crate::io::bytes::{Cursor, RandomAccess};

/// The largest `data.pkl` or `code/` file read.
const MAX_PICKLE: u64 = 256 << 20;

/// Element types of tensors that can be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TorchDType {
    /// float64 (`DoubleStorage`).
    F64,
    /// float32 (`FloatStorage`).
    F32,
    /// float16 (`HalfStorage`).
    F16,
    /// bfloat16 (`BFloat16Storage`).
    BF16,
    /// int64 (`LongStorage`).
    I64,
    /// int32 (`IntStorage`).
    I32,
    /// int16 (`ShortStorage`).
    I16,
    /// int8 (`CharStorage`).
    I8,
    /// uint8 (`ByteStorage`).
    U8,
    /// uint16 (untyped storage, `_rebuild_tensor_v3`).
    U16,
    /// uint32 (untyped storage, `_rebuild_tensor_v3`).
    U32,
    /// uint64 (untyped storage, `_rebuild_tensor_v3`).
    U64,
    /// bool (`BoolStorage`), one byte each.
    Bool,
}

impl TorchDType {
    /// The torch name (`float32`, `bfloat16`, …), for messages.
    pub fn name(self) -> &'static str {
        use TorchDType::*;
        match self {
            F64 => "float64",
            F32 => "float32",
            F16 => "float16",
            BF16 => "bfloat16",
            I64 => "int64",
            I32 => "int32",
            I16 => "int16",
            I8 => "int8",
            U8 => "uint8",
            U16 => "uint16",
            U32 => "uint32",
            U64 => "uint64",
            Bool => "bool",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        use TorchDType::*;
        match self {
            F64 | I64 | U64 => 8,
            F32 | I32 | U32 => 4,
            F16 | BF16 | I16 | U16 => 2,
            I8 | U8 | Bool => 1,
        }
    }

    fn from_storage(name: &str) -> Option<Self> {
        use TorchDType::*;
        Some(match name {
            "DoubleStorage" => F64,
            "FloatStorage" => F32,
            "HalfStorage" => F16,
            "BFloat16Storage" => BF16,
            "LongStorage" => I64,
            "IntStorage" => I32,
            "ShortStorage" => I16,
            "CharStorage" => I8,
            "ByteStorage" => U8,
            "BoolStorage" => Bool,
            _ => return None,
        })
    }

    fn from_dtype(name: &str) -> Option<Self> {
        use TorchDType::*;
        let all = [F64, F32, F16, BF16, I64, I32, I16, I8, U8, U16, U32, U64, Bool];
        let alias = match name {
            "double" => "float64",
            "float" => "float32",
            "half" => "float16",
            "long" => "int64",
            "int" => "int32",
            "short" => "int16",
            n => n,
        };
        all.into_iter().find(|d| d.name() == alias)
    }
}

/// One tensor: where its elements live and how they are laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorchTensor {
    /// Element type.
    pub dtype: TorchDType,
    /// Shape (empty for a 0-dim tensor).
    pub shape: Vec<usize>,
    /// Strides in elements, one per dimension.
    pub strides: Vec<usize>,
    /// Offset of the first element in its storage, in elements.
    pub offset: usize,
    /// The storage key (the entry `<archive>/data/<key>`).
    pub storage: String,
}

impl TorchTensor {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().fold(1usize, |a, &n| a.saturating_mul(n))
    }

    /// True when the elements are laid out row-major without gaps.
    pub fn is_contiguous(&self) -> bool {
        if self.shape.contains(&0) {
            return true;
        }
        let mut expect = 1usize;
        for (&n, &s) in self.shape.iter().zip(&self.strides).rev() {
            if n != 1 && s != expect {
                return false;
            }
            expect = expect.saturating_mul(n);
        }
        true
    }

    /// Elements of the storage the tensor reaches, from its offset: `None` on overflow.
    fn span(&self) -> Option<usize> {
        if self.shape.contains(&0) {
            return Some(0);
        }
        self.shape.iter().zip(&self.strides).try_fold(1usize, |acc, (&n, &s)| acc.checked_add((n - 1).checked_mul(s)?))
    }
}

/// What a file looks like from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TorchFileKind {
    /// A ZIP archive: `torch.save` since 1.6, or `torch.jit.save`.
    Zip,
    /// A bare pickle: the legacy `torch.save` format (before 1.6), which is refused.
    LegacyPickle,
}

/// Classifies a file from its first bytes; `None` when it is neither.
pub fn sniff_bytes(head: &[u8]) -> Option<TorchFileKind> {
    if has_zip_magic(head) {
        Some(TorchFileKind::Zip)
    } else if head.first() == Some(&0x80) && head.get(1).is_some_and(|p| (2..=5).contains(p)) {
        Some(TorchFileKind::LegacyPickle)
    } else {
        None
    }
}

/// Classifies a file from its first bytes; `None` when it is neither or cannot be read.
#[cfg(not(target_arch = "wasm32"))]
pub fn sniff(path: &Path) -> Option<TorchFileKind> {
    let mut head = Vec::with_capacity(8);
    std::fs::File::open(path).ok()?.take(8).read_to_end(&mut head).ok()?;
    sniff_bytes(&head)
}

/// True when the file starts like a ZIP archive (a `torch.save` / TorchScript checkpoint).
#[cfg(not(target_arch = "wasm32"))]
pub fn is_torch_zip(path: &Path) -> bool {
    sniff(path) == Some(TorchFileKind::Zip)
}

const LEGACY: &str = "legacy torch.save format (PyTorch < 1.6, not a ZIP archive) is not supported; re-save it with \
     a current torch: torch.save(torch.load(path, weights_only=False), new_path)";

/// An open checkpoint: tensor names and layouts in memory, their data still in the file.
#[derive(Debug)]
pub struct TorchCheckpoint {
    path: String,
    zip: Mutex<ZipArchive<Cursor>>,
    torchscript: bool,
    root: Value,
    tensors: BTreeMap<String, TorchTensor>,
    /// Storage key → its zip entry.
    storages: HashMap<String, usize>,
}

impl TorchCheckpoint {
    /// Opens a checkpoint, reading its ZIP directory, `data.pkl` and (TorchScript) class code.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        let label = path.display().to_string();
        let file = crate::io::bytes::open_file(path).map_err(|e| ModelError::io(&label, e))?;
        Self::from_source(file, label)
    }

    /// Opens the checkpoint held in `src` (named `label` in messages), as [`Self::open`] does.
    pub fn from_source(src: Box<dyn RandomAccess>, label: String) -> Result<Self, ModelError> {
        let mut head = [0u8; 8];
        let n = src.len().min(8) as usize;
        src.read_at(0, &mut head[..n]).map_err(|e| ModelError::io(&label, e))?;
        let file = Cursor::new(src);
        match sniff_bytes(&head[..n]) {
            Some(TorchFileKind::Zip) => {}
            Some(TorchFileKind::LegacyPickle) => return Err(ModelError::corrupt(&label, LEGACY)),
            None => {
                return Err(ModelError::corrupt(&label, "not a PyTorch checkpoint (no ZIP signature at the start)"));
            }
        }
        let mut zip = ZipArchive::new(file, &label)?;
        let prefix = archive_prefix(&zip, &label)?;
        if let Some(i) = zip.find(&format!("{prefix}/byteorder")) {
            let order = zip.read_entry(i, 64)?;
            if order.trim_ascii() != b"little" {
                let what = format!("byte order {:?} is not supported", String::from_utf8_lossy(&order));
                return Err(ModelError::Unsupported { path: label, what });
            }
        }
        let pkl = zip.find(&format!("{prefix}/data.pkl")).ok_or_else(|| ModelError::corrupt(&label, "no data.pkl"))?;
        let data = zip.read_entry(pkl, MAX_PICKLE)?;
        let root = pickle::parse(&data).map_err(|e| ModelError::corrupt(&label, format!("{prefix}/data.pkl: {e}")))?;
        drop(data);
        let torchscript = zip.find(&format!("{prefix}/constants.pkl")).is_some()
            || matches!(&root, Value::Object(o) if o.class.as_global().is_some_and(|(m, _)| is_script_module(m)));
        let mut w = Walker::new(&label, &prefix, &mut zip);
        w.walk(&root, "", 0)?;
        let tensors = w.into_tensors();
        let storages = check_storages(&label, &prefix, &zip, &tensors)?;
        Ok(TorchCheckpoint { path: label, zip: Mutex::new(zip), torchscript, root, tensors, storages })
    }

    /// The file's name, for messages.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// True for a TorchScript archive (`torch.jit.save`), false for `torch.save`.
    pub fn is_torchscript(&self) -> bool {
        self.torchscript
    }

    /// The tensors by `state_dict()`-style name.
    pub fn tensors(&self) -> &BTreeMap<String, TorchTensor> {
        &self.tensors
    }

    /// The decoded `data.pkl` (for non-tensor values such as an `epoch`).
    pub fn root(&self) -> &Value {
        &self.root
    }

    /// One tensor's layout, or [`ModelError::MissingTensor`].
    pub fn tensor(&self, name: &str) -> Result<&TorchTensor, ModelError> {
        self.tensors.get(name).ok_or_else(|| ModelError::MissingTensor { path: self.path.clone(), name: name.into() })
    }

    /// A tensor's elements, contiguous row-major, as little-endian bytes of its own dtype.
    pub fn read_bytes(&self, name: &str) -> Result<Vec<u8>, ModelError> {
        let t = self.tensor(name)?;
        let es = t.dtype.size();
        let entry = self.storages.get(&t.storage).copied().ok_or_else(|| {
            ModelError::corrupt(&self.path, format!("tensor `{name}`: storage {} not found", t.storage))
        })?;
        // Sizes were checked against the storage entry when the checkpoint was opened.
        let (numel, span) = (t.numel(), t.span().unwrap_or(0));
        if numel == 0 {
            return Ok(Vec::new());
        }
        let start = (t.offset * es) as u64;
        let contiguous = t.is_contiguous();
        let mut buf = self.alloc(if contiguous { numel * es } else { span * es })?;
        self.zip.lock().unwrap_or_else(|e| e.into_inner()).read_range(entry, start, &mut buf)?;
        if contiguous {
            return Ok(buf);
        }
        let mut out = self.alloc(numel * es)?;
        gather(&buf, &t.shape, &t.strides, es, &mut out);
        Ok(out)
    }

    /// A zeroed buffer, or an error (not an abort) when memory runs out.
    fn alloc(&self, n: usize) -> Result<Vec<u8>, ModelError> {
        let mut v = Vec::new();
        v.try_reserve_exact(n).map_err(|e| ModelError::io(&self.path, std::io::Error::other(e)))?;
        v.resize(n, 0);
        Ok(v)
    }

    /// A floating-point tensor's elements as f32, contiguous row-major (f16, bf16 and f64
    /// converted); integer and bool tensors are refused.
    pub fn read_f32(&self, name: &str) -> Result<Vec<f32>, ModelError> {
        let dtype = self.tensor(name)?.dtype;
        if !matches!(dtype, TorchDType::F32 | TorchDType::F16 | TorchDType::BF16 | TorchDType::F64) {
            return Err(ModelError::DTypeMismatch {
                path: self.path.clone(),
                name: name.into(),
                expected: "a floating-point type".into(),
                got: dtype.name().into(),
            });
        }
        let bytes = self.read_bytes(name)?;
        let out = match dtype {
            TorchDType::F32 => bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            TorchDType::F16 => bytes.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            TorchDType::BF16 => {
                bytes.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect()
            }
            _ => bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32).collect(),
        };
        Ok(out)
    }
}

/// Copies a strided view (`src` starts at its first element) into row-major order.
fn gather(src: &[u8], shape: &[usize], strides: &[usize], es: usize, out: &mut [u8]) {
    let mut idx = vec![0usize; shape.len()];
    let mut at = 0usize;
    for dst in out.chunks_exact_mut(es) {
        dst.copy_from_slice(&src[at * es..at * es + es]);
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            at += strides[d];
            if idx[d] < shape[d] {
                break;
            }
            at -= strides[d] * shape[d];
            idx[d] = 0;
        }
    }
}

/// The archive's top folder: where `data.pkl` is.
fn archive_prefix(zip: &ZipArchive<Cursor>, label: &str) -> Result<String, ModelError> {
    let names: Vec<&str> = zip.entries().iter().map(|e| e.name.as_str()).collect();
    let candidates: Vec<&str> =
        names.iter().filter_map(|n| n.strip_suffix("/data.pkl")).filter(|p| !p.contains('/')).collect();
    match candidates.as_slice() {
        [one] => Ok(one.to_string()),
        [] if names.iter().any(|n| n.ends_with("model.json")) => Err(ModelError::Unsupported {
            path: label.into(),
            what: "TorchScript archive from PyTorch < 1.4 (model.json); re-save it with a current torch".into(),
        }),
        [] => Err(ModelError::corrupt(label, "no data.pkl: not a torch.save or torch.jit.save archive")),
        many => {
            let first = names.first().and_then(|n| n.split('/').next()).unwrap_or("");
            many.iter()
                .find(|p| **p == first)
                .map(|p| p.to_string())
                .ok_or_else(|| ModelError::corrupt(label, format!("several data.pkl files ({})", many.join(", "))))
        }
    }
}

/// Maps every storage to its entry, checking that each tensor's elements lie inside it.
fn check_storages(
    label: &str,
    prefix: &str,
    zip: &ZipArchive<Cursor>,
    tensors: &BTreeMap<String, TorchTensor>,
) -> Result<HashMap<String, usize>, ModelError> {
    let mut storages = HashMap::new();
    let mut dtypes = HashMap::new();
    for (name, t) in tensors {
        if let Some(other) = dtypes.insert(&t.storage, t.dtype).filter(|d| *d != t.dtype) {
            let what =
                format!("tensor `{name}`: storage {} is used as {} and as {}", t.storage, other.name(), t.dtype.name());
            return Err(ModelError::corrupt(label, what));
        }
        let entry_name = format!("{prefix}/data/{}", t.storage);
        let i = zip.find(&entry_name).ok_or_else(|| {
            ModelError::corrupt(label, format!("tensor `{name}`: its storage {entry_name} is missing from the archive"))
        })?;
        let e = &zip.entries()[i];
        if e.method != 0 {
            return Err(ModelError::corrupt(label, format!("storage {entry_name} is compressed")));
        }
        let span = t.span().unwrap_or(usize::MAX);
        let bytes = t.offset.checked_add(span).and_then(|end| end.checked_mul(t.dtype.size()));
        if span > 0 && bytes.is_none_or(|b| b as u64 > e.size) {
            return Err(ModelError::corrupt(
                label,
                format!(
                    "tensor `{name}` (offset {}, shape {:?}, strides {:?}, {}) runs past its storage {entry_name} \
                     ({} bytes)",
                    t.offset,
                    t.shape,
                    t.strides,
                    t.dtype.name(),
                    e.size
                ),
            ));
        }
        // Stride-0 (expanded) views are materialised when read; refuse absurd ones.
        let out_bytes = t.numel().saturating_mul(t.dtype.size()) as u64;
        if out_bytes > e.size.saturating_mul(64).saturating_add(64 << 20) {
            let what =
                format!("tensor `{name}` ({:?}) expands to {out_bytes} bytes from a {} byte storage", t.shape, e.size);
            return Err(ModelError::corrupt(label, what));
        }
        storages.insert(t.storage.clone(), i);
    }
    Ok(storages)
}
