//! Walking a decoded `data.pkl` into `state_dict()`-style tensor names (see [`super`]).

use crate::io::bytes::Cursor;
use std::collections::{BTreeMap, HashMap, HashSet};

use super::super::pickle::{self, Object, Value};
use super::super::zip::ZipArchive;
use super::{TorchDType, TorchTensor, MAX_PICKLE};
use crate::clip::ModelError;

pub(super) fn is_script_module(module: &str) -> bool {
    module == "__torch__" || module.starts_with("__torch__.")
}

/// What the TorchScript code says about a class.
struct ClassInfo {
    is_module: bool,
    /// Names in `__parameters__` and `__buffers__`, when the class lists them.
    members: Option<HashSet<String>>,
}

/// Finds `class <name>(...)` in TorchScript source and reads its parameter and buffer lists.
fn parse_class(src: &str, name: &str) -> Option<ClassInfo> {
    let head = format!("class {name}(");
    let mut lines = src.lines().skip_while(|l| !l.starts_with(&head));
    let is_module = lines.next()?.contains("(Module)");
    let mut members: Option<HashSet<String>> = None;
    for line in lines.take_while(|l| l.is_empty() || l.starts_with(' ')) {
        let l = line.trim_start();
        if l.starts_with("__parameters__ ") || l.starts_with("__buffers__ ") {
            let list = l.split_once('[').map_or("", |(_, r)| r);
            let set = members.get_or_insert_with(HashSet::new);
            set.extend(list.split('"').skip(1).step_by(2).map(str::to_string));
        }
    }
    Some(ClassInfo { is_module, members })
}

/// Walks `data.pkl`, collecting tensors under `state_dict()`-style names.
pub(super) struct Walker<'a> {
    label: &'a str,
    prefix: &'a str,
    zip: &'a mut ZipArchive<Cursor>,
    sources: HashMap<String, Option<String>>,
    classes: HashMap<(String, String), Option<ClassInfo>>,
    out: BTreeMap<String, TorchTensor>,
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn dict_key(k: &Value) -> Option<String> {
    match k {
        Value::Str(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

impl<'a> Walker<'a> {
    pub(super) fn new(label: &'a str, prefix: &'a str, zip: &'a mut ZipArchive<Cursor>) -> Self {
        Walker { label, prefix, zip, sources: HashMap::new(), classes: HashMap::new(), out: BTreeMap::new() }
    }

    /// The tensors found, by name.
    pub(super) fn into_tensors(self) -> BTreeMap<String, TorchTensor> {
        self.out
    }

    fn corrupt(&self, name: &str, what: impl std::fmt::Display) -> ModelError {
        ModelError::corrupt(self.label, format!("tensor `{name}`: {what}"))
    }

    pub(super) fn walk(&mut self, v: &Value, name: &str, depth: usize) -> Result<(), ModelError> {
        let depth = depth + 1;
        match v {
            Value::Dict(pairs) => {
                for (k, v) in pairs {
                    if let Some(k) = dict_key(k) {
                        self.walk(v, &join(name, &k), depth)?;
                    }
                }
            }
            Value::List(items) | Value::Tuple(items) => {
                for (i, v) in items.iter().enumerate() {
                    self.walk(v, &join(name, &i.to_string()), depth)?;
                }
            }
            Value::Object(o) => self.object(o, name, depth)?,
            _ => {}
        }
        Ok(())
    }

    fn object(&mut self, o: &Object, name: &str, depth: usize) -> Result<(), ModelError> {
        let Some((module, class)) = o.class.as_global() else { return Ok(()) };
        if is_tensor_fn(module, class) {
            let t = self.tensor(o, name, depth)?;
            return self.add(name, t);
        }
        if is_script_module(module) {
            return self.script_module(o, module, class, name, depth);
        }
        let state = match &o.state {
            Some(Value::Dict(state)) => state.as_slice(),
            _ => &[],
        };
        let field = |f: &str| state.iter().find(|(k, _)| k.as_str() == Some(f)).map(|(_, v)| v);
        if let Some(params) = field("_parameters") {
            // A pickled nn.Module: parameters, persistent buffers, then submodules.
            let skip: Vec<&Value> = match field("_non_persistent_buffers_set") {
                Some(Value::Set(s)) => s.iter().collect(),
                _ => Vec::new(),
            };
            self.walk(params, name, depth)?;
            if let Some(Value::Dict(buffers)) = field("_buffers") {
                for (k, v) in buffers.iter().filter(|(k, _)| !skip.contains(&k)) {
                    if let Some(k) = dict_key(k) {
                        self.walk(v, &join(name, &k), depth)?;
                    }
                }
            }
            if let Some(modules) = field("_modules") {
                self.walk(modules, name, depth)?;
            }
        } else if !o.dict_items.is_empty() || !o.list_items.is_empty() {
            // A dict or list subclass.
            self.walk(&Value::Dict(o.dict_items.clone()), name, depth)?;
            self.walk(&Value::List(o.list_items.clone()), name, depth)?;
        }
        Ok(())
    }

    fn add(&mut self, name: &str, t: TorchTensor) -> Result<(), ModelError> {
        if self.out.insert(name.to_string(), t).is_some() {
            return Err(self.corrupt(name, "two tensors have this name"));
        }
        Ok(())
    }

    fn class_info(&mut self, module: &str, class: &str) -> Option<&ClassInfo> {
        let key = (module.to_string(), class.to_string());
        if !self.classes.contains_key(&key) {
            if !self.sources.contains_key(module) {
                // The class `a.b.C` is printed in `code/a/b.py` (mangled ones in their own file).
                let file = format!("{}/code/{}.py", self.prefix, module.replace('.', "/"));
                let src = self.zip.find(&file).and_then(|i| self.zip.read_entry(i, MAX_PICKLE).ok());
                self.sources.insert(module.to_string(), src.map(|s| String::from_utf8_lossy(&s).into_owned()));
            }
            let info = self.sources.get(module).and_then(Option::as_deref).and_then(|src| parse_class(src, class));
            self.classes.insert(key.clone(), info);
        }
        self.classes.get(&key).and_then(Option::as_ref)
    }

    fn script_module(
        &mut self,
        o: &Object,
        module: &str,
        class: &str,
        name: &str,
        depth: usize,
    ) -> Result<(), ModelError> {
        let (is_module, members) = match self.class_info(module, class) {
            Some(info) => (info.is_module, info.members.clone()),
            None => (true, None),
        };
        let Some(Value::Dict(attrs)) = &o.state else { return Ok(()) };
        if !is_module {
            return Ok(());
        }
        for (k, v) in attrs {
            let Some(k) = k.as_str() else { continue };
            let Value::Object(obj) = v else { continue };
            let Some((m, c)) = obj.class.as_global() else { continue };
            let full = join(name, k);
            if is_tensor_fn(m, c) {
                if members.as_ref().is_none_or(|set| set.contains(k)) {
                    let t = self.tensor(obj, &full, depth)?;
                    self.add(&full, t)?;
                }
            } else if is_script_module(m) {
                self.script_module(obj, m, c, &full, depth + 1)?;
            }
        }
        Ok(())
    }

    /// Interprets a tensor-rebuilding call.
    fn tensor(&mut self, o: &Object, name: &str, depth: usize) -> Result<TorchTensor, ModelError> {
        let (module, func) = o.class.as_global().unwrap_or(("", ""));
        let args = o.args.as_seq().ok_or_else(|| self.corrupt(name, format!("{func}: arguments are not a tuple")))?;
        let arg = |i: usize| args.get(i).ok_or_else(|| self.corrupt(name, format!("{func}: too few arguments")));
        if depth > pickle::MAX_DEPTH {
            return Err(self.corrupt(name, "tensor wrapped too deeply"));
        }
        let inner = |v: &Value| match v {
            Value::Object(inner) => Ok(inner.as_ref().clone()),
            _ => Err(self.corrupt(name, format!("{func}: the wrapped value is not a tensor"))),
        };
        let (storage, offset, size, stride, dtype) = match (module, func) {
            ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
                let data = inner(arg(0)?)?;
                return self.tensor_or_unsupported(&data, name, depth + 1);
            }
            ("torch._tensor", "_rebuild_from_type_v2") => {
                let (class, args) = (arg(0)?.clone(), arg(2)?.clone());
                let call = Object { class, args, state: None, dict_items: Vec::new(), list_items: Vec::new() };
                return self.tensor_or_unsupported(&call, name, depth + 1);
            }
            ("torch._utils", "_rebuild_tensor" | "_rebuild_tensor_v2") => (arg(0)?, arg(1)?, arg(2)?, arg(3)?, None),
            ("torch._utils", "_rebuild_tensor_v3") => (arg(0)?, arg(1)?, arg(2)?, arg(3)?, Some(arg(6)?)),
            _ => {
                let what = format!("{module}.{func} tensors (sparse, quantized, nested, …) are not supported");
                return Err(ModelError::Unsupported {
                    path: self.label.into(),
                    what: format!("tensor `{name}`: {what}"),
                });
            }
        };
        self.plain_tensor(name, storage, offset, size, stride, dtype)
    }

    fn tensor_or_unsupported(&mut self, o: &Object, name: &str, depth: usize) -> Result<TorchTensor, ModelError> {
        match o.class.as_global() {
            Some((m, f)) if is_tensor_fn(m, f) => self.tensor(o, name, depth),
            _ => Err(self.corrupt(name, "the wrapped value is not a tensor")),
        }
    }

    fn plain_tensor(
        &self,
        name: &str,
        storage: &Value,
        offset: &Value,
        size: &Value,
        stride: &Value,
        dtype: Option<&Value>,
    ) -> Result<TorchTensor, ModelError> {
        let pid = match storage {
            Value::PersistentId(pid) => pid.as_seq(),
            _ => None,
        };
        let bad_pid = || self.corrupt(name, "storage is not a ('storage', type, key, location, numel) persistent id");
        let pid = pid.filter(|p| p.len() >= 3 && p[0].as_str() == Some("storage")).ok_or_else(bad_pid)?;
        let (_, storage_type) = pid[1].as_global().ok_or_else(bad_pid)?;
        let key = dict_key(&pid[2]).ok_or_else(bad_pid)?;
        let unsupported = |what: &str| ModelError::Unsupported {
            path: self.label.into(),
            what: format!("tensor `{name}` has element type {what}, which is not supported"),
        };
        let dtype = match (storage_type, dtype) {
            ("UntypedStorage", Some(d)) => {
                let (_, d) = d.as_global().ok_or_else(|| self.corrupt(name, "dtype is not a torch dtype"))?;
                TorchDType::from_dtype(d).ok_or_else(|| unsupported(d))?
            }
            (t, _) => TorchDType::from_storage(t).ok_or_else(|| unsupported(t))?,
        };
        let nonneg = |v: &Value, what: &str| {
            v.as_int()
                .and_then(|i| usize::try_from(i).ok())
                .ok_or_else(|| self.corrupt(name, format!("{what} is not a non-negative integer")))
        };
        let dims = |v: &Value, what: &str| -> Result<Vec<usize>, ModelError> {
            let v = match v {
                Value::Object(o) if o.class.as_global() == Some(("torch", "Size")) => {
                    o.args.as_seq().and_then(|a| a.first()).unwrap_or(&Value::None)
                }
                v => v,
            };
            let items = v.as_seq().ok_or_else(|| self.corrupt(name, format!("{what} is not a tuple")))?;
            items.iter().map(|i| nonneg(i, what)).collect()
        };
        let t = TorchTensor {
            dtype,
            shape: dims(size, "size")?,
            strides: dims(stride, "stride")?,
            offset: nonneg(offset, "storage offset")?,
            storage: key,
        };
        if t.shape.len() != t.strides.len() {
            return Err(self.corrupt(name, format!("size {:?} and stride {:?} differ in length", t.shape, t.strides)));
        }
        let numel = t.shape.iter().try_fold(1usize, |a, &n| a.checked_mul(n));
        if numel.and_then(|n| n.checked_mul(dtype.size())).is_none() || t.span().is_none() {
            return Err(self.corrupt(name, format!("size {:?} overflows", t.shape)));
        }
        Ok(t)
    }
}

fn is_tensor_fn(module: &str, func: &str) -> bool {
    (module == "torch._utils" && func.starts_with("_rebuild_"))
        || (module == "torch._tensor" && func == "_rebuild_from_type_v2")
}
