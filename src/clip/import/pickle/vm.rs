//! The pickle machine itself: opcodes in, a graph of shared objects out (see [`super`]).

use std::collections::HashMap;
use std::rc::Rc;

use super::PickleError;

/// A value on the machine's stack: scalars inline, containers as indices into `Vm::nodes`.
#[derive(Debug, Clone)]
pub(super) enum V {
    None,
    Bool(bool),
    Int(i64),
    BigInt(Rc<[u8]>),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Ref(usize),
}

#[derive(Debug)]
pub(super) enum Node {
    List(Vec<V>),
    Tuple(Vec<V>),
    Dict(Vec<(V, V)>),
    Set(Vec<V>),
    Global(String, String),
    Object { class: V, args: V, state: Option<V>, items: Vec<(V, V)>, list: Vec<V> },
    Pid(V),
}

pub(super) struct Vm<'a> {
    data: &'a [u8],
    pos: usize,
    pub(super) op_at: usize,
    stack: Vec<V>,
    marks: Vec<Vec<V>>,
    memo: HashMap<u64, V>,
    pub(super) nodes: Vec<Node>,
}

impl<'a> Vm<'a> {
    pub(super) fn new(data: &'a [u8]) -> Self {
        Vm { data, pos: 0, op_at: 0, stack: Vec::new(), marks: Vec::new(), memo: HashMap::new(), nodes: Vec::new() }
    }

    fn err(&self, what: impl Into<String>) -> PickleError {
        PickleError { offset: self.op_at, what: what.into() }
    }

    fn take(&mut self, n: u64) -> Result<&[u8], PickleError> {
        let left = (self.data.len() - self.pos) as u64;
        if n > left {
            return Err(self.err(format!("needs {n} bytes, {left} left (truncated?)")));
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.data[start..self.pos])
    }

    fn uint(&mut self, n: usize) -> Result<u64, PickleError> {
        let b = self.take(n as u64)?;
        Ok(b.iter().rev().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
    }

    fn line(&mut self) -> Result<String, PickleError> {
        let rest = &self.data[self.pos..];
        let n = rest.iter().take(4096).position(|&b| b == b'\n').ok_or_else(|| self.err("unterminated text line"))?;
        let s = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.pos += n + 1;
        Ok(s)
    }

    fn node(&mut self, n: Node) -> V {
        self.nodes.push(n);
        V::Ref(self.nodes.len() - 1)
    }

    fn pop(&mut self) -> Result<V, PickleError> {
        self.stack.pop().ok_or_else(|| self.err("stack underflow"))
    }

    fn pop_mark(&mut self) -> Result<Vec<V>, PickleError> {
        let prev = self.marks.pop().ok_or_else(|| self.err("no MARK on the stack"))?;
        Ok(std::mem::replace(&mut self.stack, prev))
    }

    fn push_str(&mut self, n: u64, bytes: bool) -> Result<(), PickleError> {
        let raw = self.take(n)?;
        let v = if bytes { V::Bytes(raw.into()) } else { V::Str(String::from_utf8_lossy(raw).into()) };
        self.stack.push(v);
        Ok(())
    }

    fn push_long(&mut self, n: u64) -> Result<(), PickleError> {
        let raw = self.take(n)?;
        let v = if raw.len() <= 8 {
            let neg = raw.last().is_some_and(|&b| b & 0x80 != 0);
            let mut buf = [if neg { 0xFF } else { 0 }; 8];
            buf[..raw.len()].copy_from_slice(raw);
            V::Int(i64::from_le_bytes(buf))
        } else {
            V::BigInt(raw.into())
        };
        self.stack.push(v);
        Ok(())
    }

    /// The container on top of the stack, for APPEND / SETITEM / BUILD.
    fn target(&mut self) -> Result<&mut Node, PickleError> {
        match self.stack.last() {
            Some(V::Ref(i)) => Ok(&mut self.nodes[*i]),
            _ => Err(self.err("the target of APPEND / SETITEM / BUILD is not a container")),
        }
    }

    fn extend_list(&mut self, items: Vec<V>) -> Result<(), PickleError> {
        let bad = self.err("APPEND to something that is not a list");
        match self.target()? {
            Node::List(v) | Node::Set(v) | Node::Object { list: v, .. } => v.extend(items),
            _ => return Err(bad),
        }
        Ok(())
    }

    fn set_items(&mut self, flat: Vec<V>) -> Result<(), PickleError> {
        if !flat.len().is_multiple_of(2) {
            return Err(self.err("SETITEMS with an odd number of items"));
        }
        let bad = self.err("SETITEM on something that is not a dict");
        let mut it = flat.into_iter();
        let pairs = std::iter::from_fn(|| Some((it.next()?, it.next()?)));
        match self.target()? {
            Node::Dict(v) | Node::Object { items: v, .. } => v.extend(pairs),
            _ => return Err(bad),
        }
        Ok(())
    }

    /// REDUCE / NEWOBJ: records the call, except `OrderedDict()`, `set(items)` and the two ways
    /// protocol 2 writes bytes (`_codecs.encode(text, "latin1")`, `bytes()`), which become
    /// the values they build.
    fn call(&mut self, class: V, args: V) {
        let global = match &class {
            V::Ref(i) => match &self.nodes[*i] {
                Node::Global(m, n) => Some((m.as_str(), n.as_str())),
                _ => None,
            },
            _ => None,
        };
        let args_tuple = match &args {
            V::Ref(i) => match &self.nodes[*i] {
                Node::Tuple(t) => Some(t.as_slice()),
                _ => None,
            },
            _ => None,
        };
        let set_items = match args_tuple {
            Some([V::Ref(j)]) => match &self.nodes[*j] {
                Node::List(items) | Node::Tuple(items) => Some(items.clone()),
                _ => None,
            },
            _ => None,
        };
        if let (Some(("_codecs", "encode")), Some([V::Str(text), V::Str(enc)])) = (global, args_tuple) {
            // Protocol 2 pickles bytes as `_codecs.encode(text, "latin1")`.
            if enc.as_ref() == "latin1" || enc.as_ref() == "latin-1" {
                let bytes: Vec<u8> = text.chars().map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?')).collect();
                self.stack.push(V::Bytes(bytes.into()));
                return;
            }
        }
        if let (Some(("builtins" | "__builtin__", "bytes")), Some([])) = (global, args_tuple) {
            self.stack.push(V::Bytes(Vec::new().into()));
            return;
        }
        let node = match (global, args_tuple) {
            (Some(("collections", "OrderedDict")), Some([])) => Node::Dict(Vec::new()),
            (Some(("builtins" | "__builtin__", "set" | "frozenset")), Some([])) => Node::Set(Vec::new()),
            (Some(("builtins" | "__builtin__", "set" | "frozenset")), _) if set_items.is_some() => {
                Node::Set(set_items.unwrap_or_default())
            }
            _ => Node::Object { class, args, state: None, items: Vec::new(), list: Vec::new() },
        };
        let v = self.node(node);
        self.stack.push(v);
    }

    fn memo_get(&mut self, key: u64) -> Result<(), PickleError> {
        let v = self.memo.get(&key).cloned().ok_or_else(|| self.err(format!("memo entry {key} was never stored")))?;
        self.stack.push(v);
        Ok(())
    }

    fn memo_put(&mut self, key: u64) -> Result<(), PickleError> {
        let v = self.stack.last().cloned().ok_or_else(|| self.err("PUT with an empty stack"))?;
        self.memo.insert(key, v);
        Ok(())
    }

    pub(super) fn run(&mut self) -> Result<V, PickleError> {
        loop {
            self.op_at = self.pos;
            let op = *self.data.get(self.pos).ok_or_else(|| self.err("ends without STOP (truncated?)"))?;
            self.pos += 1;
            match op {
                0x80 => {
                    let p = self.uint(1)?;
                    if p > 5 {
                        return Err(self.err(format!("pickle protocol {p} is not supported")));
                    }
                }
                0x95 => {
                    self.take(8)?; // FRAME: the framed bytes follow inline
                }
                b'.' => return self.pop(),
                b'(' => {
                    let outer = std::mem::take(&mut self.stack);
                    self.marks.push(outer);
                }
                b'0' => drop(self.pop()?),
                b'1' => drop(self.pop_mark()?),
                b'2' => {
                    let v = self.stack.last().cloned().ok_or_else(|| self.err("DUP with an empty stack"))?;
                    self.stack.push(v);
                }
                b'N' => self.stack.push(V::None),
                0x88 | 0x89 => self.stack.push(V::Bool(op == 0x88)),
                b'J' => {
                    let v = self.uint(4)? as u32 as i32;
                    self.stack.push(V::Int(i64::from(v)));
                }
                b'K' | b'M' => {
                    let v = self.uint(if op == b'K' { 1 } else { 2 })?;
                    self.stack.push(V::Int(v as i64));
                }
                0x8a | 0x8b => {
                    let n = self.uint(if op == 0x8a { 1 } else { 4 })?;
                    self.push_long(n)?;
                }
                b'G' => {
                    let b = self.take(8)?;
                    let v = f64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                    self.stack.push(V::Float(v));
                }
                b'X' | 0x8c | 0x8d | b'U' | b'T' => {
                    let n = match op {
                        b'X' => self.uint(4)?,
                        0x8d => self.uint(8)?,
                        b'T' => u64::try_from(self.uint(4)? as u32 as i32).map_err(|_| self.err("negative length"))?,
                        _ => self.uint(1)?,
                    };
                    self.push_str(n, false)?;
                }
                b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match op {
                        b'B' => self.uint(4)?,
                        b'C' => self.uint(1)?,
                        _ => self.uint(8)?,
                    };
                    self.push_str(n, true)?;
                }
                b']' | b')' | b'}' | 0x8f => {
                    let v = self.node(match op {
                        b']' => Node::List(Vec::new()),
                        b')' => Node::Tuple(Vec::new()),
                        b'}' => Node::Dict(Vec::new()),
                        _ => Node::Set(Vec::new()),
                    });
                    self.stack.push(v);
                }
                b'l' | b't' | 0x91 => {
                    let items = self.pop_mark()?;
                    let node = match op {
                        b'l' => Node::List(items),
                        b't' => Node::Tuple(items),
                        _ => Node::Set(items),
                    };
                    let v = self.node(node);
                    self.stack.push(v);
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    if self.stack.len() < n {
                        return Err(self.err("stack underflow"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    let v = self.node(Node::Tuple(items));
                    self.stack.push(v);
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let v = self.node(Node::Dict(Vec::new()));
                    self.stack.push(v);
                    self.set_items(items)?;
                }
                b'a' => {
                    let v = self.pop()?;
                    self.extend_list(vec![v])?;
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark()?;
                    self.extend_list(items)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?;
                }
                b'c' => {
                    let (module, name) = (self.line()?, self.line()?);
                    let v = self.node(Node::Global(module, name));
                    self.stack.push(v);
                }
                0x93 => {
                    let (name, module) = (self.pop()?, self.pop()?);
                    let (V::Str(module), V::Str(name)) = (module, name) else {
                        return Err(self.err("STACK_GLOBAL needs two strings"));
                    };
                    let v = self.node(Node::Global(module.to_string(), name.to_string()));
                    self.stack.push(v);
                }
                b'R' | 0x81 => {
                    let args = self.pop()?;
                    let class = self.pop()?;
                    self.call(class, args);
                }
                0x92 => {
                    let _kwargs = self.pop()?;
                    let args = self.pop()?;
                    let class = self.pop()?;
                    self.call(class, args);
                }
                b'b' => {
                    let state = self.pop()?;
                    let bad = self.err("BUILD on something that is not an object");
                    match self.target()? {
                        Node::Object { state: s, .. } => *s = Some(state),
                        Node::Dict(_) => {} // an OrderedDict's `_metadata`
                        _ => return Err(bad),
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.node(Node::Pid(pid));
                    self.stack.push(v);
                }
                b'P' => {
                    let pid = V::Str(self.line()?.into());
                    let v = self.node(Node::Pid(pid));
                    self.stack.push(v);
                }
                b'q' => {
                    let k = self.uint(1)?;
                    self.memo_put(k)?;
                }
                b'r' => {
                    let k = self.uint(4)?;
                    self.memo_put(k)?;
                }
                0x94 => self.memo_put(self.memo.len() as u64)?,
                b'p' | b'g' => {
                    let line = self.line()?;
                    let k = line.trim().parse::<u64>().map_err(|_| self.err(format!("bad memo key {line:?}")))?;
                    if op == b'p' {
                        self.memo_put(k)?
                    } else {
                        self.memo_get(k)?
                    }
                }
                b'h' => {
                    let k = self.uint(1)?;
                    self.memo_get(k)?;
                }
                b'j' => {
                    let k = self.uint(4)?;
                    self.memo_get(k)?;
                }
                _ => return Err(self.err(format!("unsupported opcode 0x{op:02x} ({})", opcode_name(op)))),
            }
        }
    }
}

fn opcode_name(op: u8) -> &'static str {
    match op {
        b'I' => "INT",
        b'L' => "LONG",
        b'F' => "FLOAT",
        b'S' => "STRING",
        b'V' => "UNICODE",
        b'i' => "INST",
        b'o' => "OBJ",
        0x82..=0x84 => "EXT",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => "unknown",
    }
}
