//! A pickle virtual machine (protocols 2–5) covering what `torch.save` and `torch.jit.save` emit.
//!
//! Nothing is imported or called: `GLOBAL` yields a [`Value::Global`] naming the callable, and
//! `REDUCE` / `NEWOBJ` yield a [`Value::Object`] recording the callable, its arguments and any
//! `BUILD` state. The one exception is `collections.OrderedDict()`, which becomes a plain
//! [`Value::Dict`] (its `_metadata` state is dropped). Objects that receive `SETITEMS` or
//! `APPENDS` (dict or list subclasses) keep those items.
//!
//! Read: all binary opcodes of protocols 2–5 that build values, the memo (`PUT` / `GET` in
//! every form), marks, and persistent ids (`BINPERSID`, `PERSID`). Refused with an error naming
//! the opcode and its byte offset: the text-only protocol 0 value opcodes (`INT`, `STRING`, …),
//! `INST` / `OBJ`, the extension registry (`EXT1`–`EXT4`) and out-of-band buffers (protocol 5).
//!
//! Hostile input is bounded: lengths are checked against the bytes left before anything is
//! allocated, the machine itself does not recurse, and turning its shared objects into a
//! [`Value`] tree is limited in depth ([`MAX_DEPTH`]) and size, with reference cycles cut
//! ([`Value::Cycle`]).

mod vm;

use self::vm::{Node, Vm, V};

/// The deepest nesting a decoded [`Value`] may have.
pub const MAX_DEPTH: usize = 128;
/// The most nodes a decoded [`Value`] may have (shared objects count once per use).
const MAX_NODES: usize = 4_000_000;

/// A decoded pickle value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// A wider integer: little-endian two's-complement bytes.
    BigInt(Vec<u8>),
    /// A float.
    Float(f64),
    /// A string (invalid UTF-8 replaced).
    Str(String),
    /// A bytes or bytearray object.
    Bytes(Vec<u8>),
    /// A list.
    List(Vec<Value>),
    /// A tuple.
    Tuple(Vec<Value>),
    /// A dict or `collections.OrderedDict`: pairs in insertion order.
    Dict(Vec<(Value, Value)>),
    /// A set or frozenset.
    Set(Vec<Value>),
    /// A global reference (a class or function), never resolved.
    Global {
        /// The module, e.g. `torch._utils`.
        module: String,
        /// The name in that module, e.g. `_rebuild_tensor_v2`.
        name: String,
    },
    /// The result of calling a global (`REDUCE`, `NEWOBJ`), not executed.
    Object(Box<Object>),
    /// A persistent id (`BINPERSID`): torch's reference to a storage outside the pickle.
    PersistentId(Box<Value>),
    /// A reference back to a container enclosing it; the cycle is cut here.
    Cycle,
}

/// A call recorded by `REDUCE` or `NEWOBJ`, with what later opcodes added to the result.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    /// What was called: normally a [`Value::Global`].
    pub class: Value,
    /// The argument tuple.
    pub args: Value,
    /// The argument to `BUILD` (`__setstate__`), if any.
    pub state: Option<Value>,
    /// Items added by `SETITEM(S)` (dict subclasses).
    pub dict_items: Vec<(Value, Value)>,
    /// Items added by `APPEND(S)` (list subclasses).
    pub list_items: Vec<Value>,
}

impl Value {
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is one (booleans count, as in Python).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    /// The items of a tuple or list.
    pub fn as_seq(&self) -> Option<&[Value]> {
        match self {
            Value::Tuple(v) | Value::List(v) => Some(v),
            _ => None,
        }
    }

    /// `(module, name)` of a global.
    pub fn as_global(&self) -> Option<(&str, &str)> {
        match self {
            Value::Global { module, name } => Some((module, name)),
            _ => None,
        }
    }
}

/// Why a pickle could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickleError {
    /// Byte offset of the opcode that failed.
    pub offset: usize,
    /// What went wrong, in words.
    pub what: String,
}

impl std::fmt::Display for PickleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pickle byte {}: {}", self.offset, self.what)
    }
}

impl std::error::Error for PickleError {}

/// Decodes one pickle (up to its `STOP`).
pub fn parse(data: &[u8]) -> Result<Value, PickleError> {
    let mut vm = Vm::new(data);
    let root = vm.run()?;
    let bytes_left = data.len().saturating_mul(2).max(64 << 20);
    let mut ex = Expand {
        nodes: &vm.nodes,
        on_path: vec![false; vm.nodes.len()],
        nodes_left: MAX_NODES,
        bytes_left,
        at: vm.op_at,
    };
    ex.value(&root, 0)
}

/// Turns the machine's shared, possibly cyclic objects into a bounded [`Value`] tree.
struct Expand<'a> {
    nodes: &'a [Node],
    on_path: Vec<bool>,
    nodes_left: usize,
    bytes_left: usize,
    at: usize,
}

impl Expand<'_> {
    fn err(&self, what: &str) -> PickleError {
        PickleError { offset: self.at, what: what.to_string() }
    }

    fn seq(&mut self, items: &[V], depth: usize) -> Result<Vec<Value>, PickleError> {
        items.iter().map(|v| self.value(v, depth)).collect()
    }

    fn pairs(&mut self, items: &[(V, V)], depth: usize) -> Result<Vec<(Value, Value)>, PickleError> {
        items.iter().map(|(k, v)| Ok((self.value(k, depth)?, self.value(v, depth)?))).collect()
    }

    fn value(&mut self, v: &V, depth: usize) -> Result<Value, PickleError> {
        let bytes = match v {
            V::Str(s) => s.len(),
            V::Bytes(b) | V::BigInt(b) => b.len(),
            _ => 0,
        };
        match (self.nodes_left.checked_sub(1), self.bytes_left.checked_sub(bytes)) {
            (Some(n), Some(b)) => (self.nodes_left, self.bytes_left) = (n, b),
            _ => return Err(self.err("the decoded value is too large")),
        }
        let i = match v {
            V::None => return Ok(Value::None),
            V::Bool(b) => return Ok(Value::Bool(*b)),
            V::Int(i) => return Ok(Value::Int(*i)),
            V::BigInt(b) => return Ok(Value::BigInt(b.to_vec())),
            V::Float(f) => return Ok(Value::Float(*f)),
            V::Str(s) => return Ok(Value::Str(s.to_string())),
            V::Bytes(b) => return Ok(Value::Bytes(b.to_vec())),
            V::Ref(i) => *i,
        };
        if self.on_path[i] {
            return Ok(Value::Cycle);
        }
        if depth >= MAX_DEPTH {
            return Err(self.err(&format!("values nested deeper than {MAX_DEPTH}")));
        }
        self.on_path[i] = true;
        let d = depth + 1;
        let out = match &self.nodes[i] {
            Node::List(v) => Value::List(self.seq(v, d)?),
            Node::Tuple(v) => Value::Tuple(self.seq(v, d)?),
            Node::Set(v) => Value::Set(self.seq(v, d)?),
            Node::Dict(v) => Value::Dict(self.pairs(v, d)?),
            Node::Global(m, n) => Value::Global { module: m.clone(), name: n.clone() },
            Node::Pid(v) => Value::PersistentId(Box::new(self.value(v, d)?)),
            Node::Object { class, args, state, items, list } => Value::Object(Box::new(Object {
                class: self.value(class, d)?,
                args: self.value(args, d)?,
                state: state.as_ref().map(|s| self.value(s, d)).transpose()?,
                dict_items: self.pairs(items, d)?,
                list_items: self.seq(list, d)?,
            })),
        };
        self.on_path[i] = false;
        Ok(out)
    }
}
