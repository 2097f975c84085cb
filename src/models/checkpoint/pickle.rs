//! A pickle virtual machine for the objects `torch.save` writes (protocols 0–5; torch uses 2).
//!
//! It never runs code: a class or function named by the pickle (`GLOBAL`) becomes a
//! [`Value::Global`], and calling it (`REDUCE`, `NEWOBJ`) is interpreted for the few callables a
//! checkpoint needs — `OrderedDict`/`dict`, `_codecs.encode` (bytes in protocol 2), and torch's
//! tensor rebuild functions — while any other class becomes an opaque [`Object`] that keeps its
//! arguments and state. Lightning's callbacks, loops and hyper-parameters (which may name
//! arbitrary classes) therefore load as inert data and never stop a checkpoint from loading.
//!
//! Containers are shared (`Rc<RefCell<..>>`) because the pickle memo hands out references: a
//! list stored in the memo and filled afterwards must be the same list wherever it is fetched.

use super::tensor::{DType, Storage, StoredTensor};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// A value built by the pickle VM.
#[derive(Debug, Clone)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer outside i64: little-endian two's-complement bytes, as LONG1/LONG4 store it.
    BigInt(Rc<Vec<u8>>),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<Vec<u8>>),
    Tuple(Rc<Vec<Value>>),
    List(Rc<RefCell<Vec<Value>>>),
    /// A dict or OrderedDict, entries in insertion order.
    Dict(Rc<RefCell<Vec<(Value, Value)>>>),
    /// A class or function named by the pickle: (module, name).
    Global(Rc<(String, String)>),
    /// A tensor storage, as the persistent loader returned it.
    Storage(Rc<Storage>),
    Tensor(Rc<StoredTensor>),
    /// An instance of a class this reader does not interpret.
    Object(Rc<RefCell<Object>>),
}

/// An instance of a class the reader does not interpret, kept as data.
#[derive(Debug, Clone, Default)]
pub struct Object {
    /// `module.name` of the class (or callable) that made it.
    pub class: String,
    pub args: Vec<Value>,
    /// What `BUILD` set (usually the instance's `__dict__`).
    pub state: Option<Value>,
    /// Items added by `SETITEM(S)` (dict subclasses).
    pub items: Vec<(Value, Value)>,
    /// Elements added by `APPEND(S)` / `ADDITEMS` (list and set subclasses, sets).
    pub elements: Vec<Value>,
}

impl Value {
    /// A short name of the value's type, for messages.
    pub fn type_name(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(_) => "bool".into(),
            Value::Int(_) | Value::BigInt(_) => "int".into(),
            Value::Float(_) => "float".into(),
            Value::Str(_) => "str".into(),
            Value::Bytes(_) => "bytes".into(),
            Value::Tuple(_) => "tuple".into(),
            Value::List(_) => "list".into(),
            Value::Dict(_) => "dict".into(),
            Value::Global(g) => format!("global {}.{}", g.0, g.1),
            Value::Storage(_) => "storage".into(),
            Value::Tensor(_) => "tensor".into(),
            Value::Object(o) => o.borrow().class.clone(),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    pub fn as_tensor(&self) -> Option<&Rc<StoredTensor>> {
        match self {
            Value::Tensor(t) => Some(t),
            _ => None,
        }
    }

    /// The entries of a dict, or of a dict subclass kept as an [`Object`].
    pub fn as_map(&self) -> Option<Vec<(Value, Value)>> {
        match self {
            Value::Dict(d) => Some(d.borrow().clone()),
            Value::Object(o) if !o.borrow().items.is_empty() => Some(o.borrow().items.clone()),
            _ => None,
        }
    }

    /// The value under string key `key` of a dict.
    pub fn get(&self, key: &str) -> Option<Value> {
        self.as_map()?
            .into_iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// The elements of a tuple or list.
    pub fn as_seq(&self) -> Option<Vec<Value>> {
        match self {
            Value::Tuple(t) => Some(t.as_ref().clone()),
            Value::List(l) => Some(l.borrow().clone()),
            _ => None,
        }
    }
}

/// A problem at byte `offset` of the pickle stream.
#[derive(Debug, Clone, PartialEq)]
pub struct PickleError {
    pub offset: usize,
    pub message: String,
}

impl std::fmt::Display for PickleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at offset {}", self.message, self.offset)
    }
}

type Res<T> = Result<T, String>;

/// Resolves a persistent id (torch: `('storage', StorageType, key, location, numel)`).
pub type PersistentLoad<'a> = dyn FnMut(&Value) -> Res<Value> + 'a;

struct Machine<'a, 'b> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u64, Value>,
    persistent_load: &'a mut PersistentLoad<'b>,
}

/// Runs the pickle program in `data` to its STOP and returns the value it built.
pub fn load(data: &[u8], persistent_load: &mut PersistentLoad<'_>) -> Result<Value, PickleError> {
    let mut m = Machine {
        data,
        pos: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        persistent_load,
    };
    loop {
        let at = m.pos;
        let op = match m.take(1) {
            Ok(b) => b[0],
            Err(_) => {
                return Err(PickleError {
                    offset: at,
                    message: "pickle ends without a STOP opcode (truncated data.pkl)".into(),
                })
            }
        };
        match m.step(op) {
            Ok(true) => {}
            Ok(false) => {
                return m.pop().map_err(|message| PickleError {
                    offset: at,
                    message,
                })
            }
            Err(message) => {
                return Err(PickleError {
                    offset: at,
                    message,
                })
            }
        }
    }
}

impl Machine<'_, '_> {
    fn take(&mut self, n: usize) -> Res<&[u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| "pickle data ends inside an opcode's argument".to_string())?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Res<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Res<u16> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().unwrap_or([0; 2]),
        ))
    }

    fn u32(&mut self) -> Res<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().unwrap_or([0; 4]),
        ))
    }

    fn u64(&mut self) -> Res<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().unwrap_or([0; 8]),
        ))
    }

    /// A length argument, checked against the bytes left (so a corrupt length cannot allocate).
    fn len_arg(&mut self, n: u64) -> Res<usize> {
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.data.len() - self.pos)
            .ok_or_else(|| format!("length {n} runs past the end of the pickle data"))
    }

    fn line(&mut self) -> Res<String> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| "text argument without a newline".to_string())?;
        let s = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.pos += n + 1;
        Ok(s)
    }

    fn pop(&mut self) -> Res<Value> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err("stack underflow (pop below a MARK)".into());
        }
        self.stack
            .pop()
            .ok_or_else(|| "stack underflow".to_string())
    }

    fn top(&self) -> Res<&Value> {
        self.stack
            .last()
            .ok_or_else(|| "stack underflow".to_string())
    }

    /// The values above the last MARK, removing them and the mark.
    fn pop_mark(&mut self) -> Res<Vec<Value>> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| "no MARK on the stack".to_string())?;
        if mark > self.stack.len() {
            return Err("MARK above the stack top".into());
        }
        Ok(self.stack.split_off(mark))
    }

    fn memo_get(&self, key: u64) -> Res<Value> {
        self.memo
            .get(&key)
            .cloned()
            .ok_or_else(|| format!("memo key {key} was never stored"))
    }

    fn memo_put(&mut self, key: u64) -> Res<()> {
        let v = self.top()?.clone();
        self.memo.insert(key, v);
        Ok(())
    }

    fn push_str(&mut self, n: usize) -> Res<()> {
        let s = std::str::from_utf8(self.take(n)?)
            .map_err(|_| "string is not valid UTF-8".to_string())?
            .to_string();
        self.stack.push(Value::Str(s.into()));
        Ok(())
    }

    fn push_bytes(&mut self, n: usize) -> Res<()> {
        let b = self.take(n)?.to_vec();
        self.stack.push(Value::Bytes(Rc::new(b)));
        Ok(())
    }

    /// Python 2 `str` (BINSTRING): bytes decoded as Latin-1, as `encoding="latin1"` would.
    fn push_latin1(&mut self, n: usize) -> Res<()> {
        let s: String = self.take(n)?.iter().map(|&b| char::from(b)).collect();
        self.stack.push(Value::Str(s.into()));
        Ok(())
    }

    fn push_long(&mut self, n: usize) -> Res<()> {
        let bytes = self.take(n)?;
        let v = if bytes.is_empty() {
            Value::Int(0)
        } else if bytes.len() <= 8 {
            // Sign-extend the little-endian two's complement.
            let fill = if bytes[bytes.len() - 1] & 0x80 != 0 {
                0xff
            } else {
                0
            };
            let mut b = [fill; 8];
            b[..bytes.len()].copy_from_slice(bytes);
            Value::Int(i64::from_le_bytes(b))
        } else {
            Value::BigInt(Rc::new(bytes.to_vec()))
        };
        self.stack.push(v);
        Ok(())
    }

    /// Executes one opcode; `Ok(false)` at STOP.
    fn step(&mut self, op: u8) -> Res<bool> {
        match op {
            0x80 => {
                let proto = self.u8()?;
                if proto > 5 {
                    return Err(format!("unsupported pickle protocol {proto}"));
                }
            }
            0x95 => {
                self.u64()?; // FRAME: a length hint only
            }
            b'.' => return Ok(false),
            b'(' => self.marks.push(self.stack.len()),
            b'}' => self.stack.push(Value::Dict(Rc::default())),
            b']' => self.stack.push(Value::List(Rc::default())),
            b')' => self.stack.push(Value::Tuple(Rc::default())),
            0x8f => self.stack.push(object("builtins.set", Vec::new())),
            b'N' => self.stack.push(Value::None),
            0x88 => self.stack.push(Value::Bool(true)),
            0x89 => self.stack.push(Value::Bool(false)),
            b'J' => {
                let v = self.u32()? as i32;
                self.stack.push(Value::Int(i64::from(v)));
            }
            b'K' => {
                let v = self.u8()?;
                self.stack.push(Value::Int(i64::from(v)));
            }
            b'M' => {
                let v = self.u16()?;
                self.stack.push(Value::Int(i64::from(v)));
            }
            0x8a => {
                let n = usize::from(self.u8()?);
                self.push_long(n)?;
            }
            0x8b => {
                let n = self.u32()? as i32;
                let n = self.len_arg(u64::try_from(n).map_err(|_| "negative LONG4 length")?)?;
                self.push_long(n)?;
            }
            b'I' | b'L' => {
                let line = self.line()?;
                let t = line.trim().trim_end_matches('L');
                let v = match t {
                    "00" => Value::Bool(false),
                    "01" => Value::Bool(true),
                    _ => Value::Int(
                        t.parse()
                            .map_err(|_| format!("integer `{t}` out of range or malformed"))?,
                    ),
                };
                self.stack.push(v);
            }
            b'G' => {
                let b = self.take(8)?;
                let v = f64::from_be_bytes(b.try_into().unwrap_or([0; 8]));
                self.stack.push(Value::Float(v));
            }
            b'F' => {
                let line = self.line()?;
                let v = line
                    .trim()
                    .parse()
                    .map_err(|_| format!("float `{line}` malformed"))?;
                self.stack.push(Value::Float(v));
            }
            0x8c => {
                let n = usize::from(self.u8()?);
                self.push_str(n)?;
            }
            b'X' => {
                let n = self.u32()?;
                let n = self.len_arg(u64::from(n))?;
                self.push_str(n)?;
            }
            0x8d => {
                let n = self.u64()?;
                let n = self.len_arg(n)?;
                self.push_str(n)?;
            }
            b'C' => {
                let n = usize::from(self.u8()?);
                self.push_bytes(n)?;
            }
            b'B' => {
                let n = self.u32()?;
                let n = self.len_arg(u64::from(n))?;
                self.push_bytes(n)?;
            }
            0x8e | 0x96 => {
                let n = self.u64()?;
                let n = self.len_arg(n)?;
                self.push_bytes(n)?;
            }
            b'U' => {
                let n = usize::from(self.u8()?);
                self.push_latin1(n)?;
            }
            b'T' => {
                let n = self.u32()? as i32;
                let n = self.len_arg(u64::try_from(n).map_err(|_| "negative BINSTRING length")?)?;
                self.push_latin1(n)?;
            }
            b'q' => {
                let k = self.u8()?;
                self.memo_put(u64::from(k))?;
            }
            b'r' => {
                let k = self.u32()?;
                self.memo_put(u64::from(k))?;
            }
            0x94 => {
                let k = self.memo.len() as u64;
                self.memo_put(k)?;
            }
            b'p' => {
                let line = self.line()?;
                let k = line.trim().parse().map_err(|_| "malformed PUT key")?;
                self.memo_put(k)?;
            }
            b'h' => {
                let k = self.u8()?;
                let v = self.memo_get(u64::from(k))?;
                self.stack.push(v);
            }
            b'j' => {
                let k = self.u32()?;
                let v = self.memo_get(u64::from(k))?;
                self.stack.push(v);
            }
            b'g' => {
                let line = self.line()?;
                let k = line.trim().parse().map_err(|_| "malformed GET key")?;
                let v = self.memo_get(k)?;
                self.stack.push(v);
            }
            b'c' => {
                let module = self.line()?;
                let name = self.line()?;
                self.stack.push(Value::Global(Rc::new((module, name))));
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                match (module.as_str(), name.as_str()) {
                    (Some(m), Some(n)) => self
                        .stack
                        .push(Value::Global(Rc::new((m.to_string(), n.to_string())))),
                    _ => return Err("STACK_GLOBAL needs two strings".into()),
                }
            }
            b'R' => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let args = args.as_seq().ok_or_else(|| {
                    format!("REDUCE arguments are a {}, not a tuple", args.type_name())
                })?;
                let v = call(&callable, args)?;
                self.stack.push(v);
            }
            0x81 => {
                let args = self.pop()?;
                let cls = self.pop()?;
                let args = args.as_seq().unwrap_or_default();
                let v = call(&cls, args)?;
                self.stack.push(v);
            }
            0x92 => {
                let _kwargs = self.pop()?;
                let args = self.pop()?;
                let cls = self.pop()?;
                let v = call(&cls, args.as_seq().unwrap_or_default())?;
                self.stack.push(v);
            }
            b'o' => {
                let mut items = self.pop_mark()?;
                if items.is_empty() {
                    return Err("OBJ without a class".into());
                }
                let cls = items.remove(0);
                let v = call(&cls, items)?;
                self.stack.push(v);
            }
            b'i' => {
                let module = self.line()?;
                let name = self.line()?;
                let args = self.pop_mark()?;
                let v = call(&Value::Global(Rc::new((module, name))), args)?;
                self.stack.push(v);
            }
            b'b' => {
                let state = self.pop()?;
                // Other targets: OrderedDict's `_metadata` attribute, a parameter's hooks (unused).
                if let Value::Object(o) = self.top()? {
                    o.borrow_mut().state = Some(state);
                }
            }
            b's' => {
                let value = self.pop()?;
                let key = self.pop()?;
                set_items(self.top()?, vec![(key, value)])?;
            }
            b'u' => {
                let flat = self.pop_mark()?;
                if flat.len() % 2 != 0 {
                    return Err("SETITEMS with an odd number of values".into());
                }
                let mut pairs = Vec::with_capacity(flat.len() / 2);
                let mut it = flat.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    pairs.push((k, v));
                }
                set_items(self.top()?, pairs)?;
            }
            b'a' => {
                let v = self.pop()?;
                append(self.top()?, vec![v])?;
            }
            b'e' | 0x90 => {
                let vs = self.pop_mark()?;
                append(self.top()?, vs)?;
            }
            0x91 => {
                let vs = self.pop_mark()?;
                let set = object("builtins.frozenset", Vec::new());
                append(&set, vs)?;
                self.stack.push(set);
            }
            b't' => {
                let vs = self.pop_mark()?;
                self.stack.push(Value::Tuple(Rc::new(vs)));
            }
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                if self.stack.len() < n
                    || self.marks.last().is_some_and(|&m| m + n > self.stack.len())
                {
                    return Err("stack underflow".into());
                }
                let vs = self.stack.split_off(self.stack.len() - n);
                self.stack.push(Value::Tuple(Rc::new(vs)));
            }
            b'l' => {
                let vs = self.pop_mark()?;
                self.stack.push(Value::List(Rc::new(RefCell::new(vs))));
            }
            b'd' => {
                let flat = self.pop_mark()?;
                let d = Value::Dict(Rc::default());
                let mut it = flat.into_iter();
                let mut pairs = Vec::new();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    pairs.push((k, v));
                }
                set_items(&d, pairs)?;
                self.stack.push(d);
            }
            b'Q' => {
                let pid = self.pop()?;
                let v = (self.persistent_load)(&pid)?;
                self.stack.push(v);
            }
            b'P' => {
                let pid = self.line()?;
                let v = (self.persistent_load)(&Value::Str(pid.into()))?;
                self.stack.push(v);
            }
            b'0' => {
                self.pop()?;
            }
            b'1' => {
                self.pop_mark()?;
            }
            b'2' => {
                let v = self.top()?.clone();
                self.stack.push(v);
            }
            other => {
                let name = match other {
                    0x82..=0x84 => " (EXT: extension registry)",
                    0x97 | 0x98 => " (out-of-band buffer)",
                    b'S' | b'V' => " (protocol-0 string)",
                    _ => "",
                };
                return Err(format!("unsupported pickle opcode 0x{other:02x}{name}"));
            }
        }
        Ok(true)
    }
}

fn object(class: &str, args: Vec<Value>) -> Value {
    Value::Object(Rc::new(RefCell::new(Object {
        class: class.to_string(),
        args,
        ..Default::default()
    })))
}

fn set_items(target: &Value, pairs: Vec<(Value, Value)>) -> Res<()> {
    match target {
        Value::Dict(d) => {
            let mut d = d.borrow_mut();
            for (k, v) in pairs {
                // A repeated key replaces the value in place, as a Python dict does.
                match d.iter_mut().find(|(old, _)| same_key(old, &k)) {
                    Some(slot) => slot.1 = v,
                    None => d.push((k, v)),
                }
            }
            Ok(())
        }
        Value::Object(o) => {
            o.borrow_mut().items.extend(pairs);
            Ok(())
        }
        other => Err(format!("SETITEM on a {}", other.type_name())),
    }
}

fn same_key(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        _ => false,
    }
}

fn append(target: &Value, values: Vec<Value>) -> Res<()> {
    match target {
        Value::List(l) => {
            l.borrow_mut().extend(values);
            Ok(())
        }
        Value::Object(o) => {
            o.borrow_mut().elements.extend(values);
            Ok(())
        }
        other => Err(format!("APPEND on a {}", other.type_name())),
    }
}

/// Interprets a call of `callable` with `args` (REDUCE, NEWOBJ, OBJ, INST).
fn call(callable: &Value, args: Vec<Value>) -> Res<Value> {
    let Value::Global(g) = callable else {
        // Calling the result of a call (rare): keep it opaque.
        return Ok(object(&format!("<call of {}>", callable.type_name()), args));
    };
    let (module, name) = (g.0.as_str(), g.1.as_str());
    match (module, name) {
        ("collections", "OrderedDict") | ("builtins" | "__builtin__", "dict") => {
            let d = Value::Dict(Rc::default());
            if let Some(init) = args.first() {
                let pairs = match init {
                    Value::Dict(src) => src.borrow().clone(),
                    other => other
                        .as_seq()
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|p| match p.as_seq().as_deref() {
                            Some([k, v]) => Some((k.clone(), v.clone())),
                            _ => None,
                        })
                        .collect(),
                };
                set_items(&d, pairs)?;
            }
            Ok(d)
        }
        ("_codecs", "encode") => match args.first() {
            // Protocol 2 writes `bytes` as `_codecs.encode(text, "latin1")`.
            Some(Value::Str(s)) => {
                let bytes = if s.chars().all(|c| (c as u32) < 256) {
                    s.chars().map(|c| c as u8).collect()
                } else {
                    s.as_bytes().to_vec()
                };
                Ok(Value::Bytes(Rc::new(bytes)))
            }
            _ => Ok(object("_codecs.encode", args)),
        },
        ("torch", "Size") => Ok(Value::Tuple(Rc::new(
            args.first().and_then(Value::as_seq).unwrap_or_default(),
        ))),
        ("torch._utils", "_rebuild_tensor" | "_rebuild_tensor_v2") => rebuild_tensor(&args, None),
        ("torch._utils", "_rebuild_tensor_v3") => {
            let dtype = match args.get(6) {
                Some(Value::Global(d)) if d.0 == "torch" => DType::from_torch_dtype(&d.1),
                _ => None,
            };
            rebuild_tensor(
                &args,
                Some(dtype.ok_or("tensor (v3) without a readable dtype")?),
            )
        }
        ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => args
            .into_iter()
            .next()
            .ok_or_else(|| "parameter rebuild without data".to_string()),
        ("torch._tensor", "_rebuild_from_type_v2" | "_rebuild_from_type") => {
            // (func, new_type, args, state): a tensor subclass; the data is `func(*args)`.
            let func = args.first().cloned().unwrap_or(Value::None);
            let inner = args.get(2).and_then(Value::as_seq).unwrap_or_default();
            call(&func, inner)
        }
        _ => Ok(object(&format!("{module}.{name}"), args)),
    }
}

fn int_list(v: &Value, what: &str) -> Res<Vec<i64>> {
    v.as_seq()
        .ok_or_else(|| format!("tensor {what} is a {}, not a tuple", v.type_name()))?
        .iter()
        .map(|x| {
            x.as_int()
                .ok_or_else(|| format!("tensor {what} holds a non-integer"))
        })
        .collect()
}

/// `_rebuild_tensor_v2(storage, storage_offset, size, stride, ...)`.
fn rebuild_tensor(args: &[Value], dtype: Option<DType>) -> Res<Value> {
    let [storage, offset, size, stride, ..] = args else {
        return Err("tensor rebuild with fewer than 4 arguments".into());
    };
    let Value::Storage(storage) = storage else {
        return Err(format!(
            "tensor rebuild from a {} instead of a storage",
            storage.type_name()
        ));
    };
    let offset = offset
        .as_int()
        .ok_or("tensor storage offset is not an integer")?;
    let shape = int_list(size, "size")?;
    let stride = int_list(stride, "stride")?;
    let t = StoredTensor::new(storage.clone(), dtype, offset, shape, stride)?;
    Ok(Value::Tensor(Rc::new(t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_storage(_: &Value) -> Res<Value> {
        Err("no storages here".into())
    }

    #[test]
    fn builds_dicts_lists_and_opaque_objects() {
        // pickle.dumps({'a': [1, 2**40], 'b': (1.5, None, True)}, protocol=2) by hand, plus an
        // opaque object: NEWOBJ of __main__.Foo with state {'x': 'y'}.
        let mut p = vec![
            0x80, 2, b'}', b'q', 0, b'(', 0x8c, 1, b'a', b']', b'q', 1, b'(', b'K', 1,
        ];
        p.extend([0x8a, 6, 0, 0, 0, 0, 0, 1, b'e']);
        p.extend([0x8c, 1, b'b', b'G']);
        p.extend(1.5f64.to_be_bytes());
        p.extend([b'N', 0x88, 0x87]);
        p.extend(b"c__main__\nFoo\n");
        p.extend([b')', 0x81, b'}', 0x8c, 1, b'x', 0x8c, 1, b'y', b's', b'b']);
        p.extend([b'0', b'u', b'h', 1, b'0', b'.']);
        let v = load(&p, &mut no_storage).unwrap();
        let a = v.get("a").unwrap().as_seq().unwrap();
        assert_eq!(
            a.iter().map(|x| x.as_int()).collect::<Vec<_>>(),
            [Some(1), Some(1 << 40)]
        );
        let b = v.get("b").unwrap().as_seq().unwrap();
        assert!(matches!(b[0], Value::Float(f) if f == 1.5));
        assert!(matches!(b[1], Value::None));
        assert!(matches!(b[2], Value::Bool(true)));
    }

    #[test]
    fn memo_shares_containers() {
        // [] memoized, fetched, appended to through the fetched reference.
        let p = [0x80, 2, b']', b'q', 0, b'h', 0, b'K', 7, b'a', b'0', b'.'];
        let v = load(&p, &mut no_storage).unwrap();
        assert_eq!(v.as_seq().unwrap()[0].as_int(), Some(7));
    }

    #[test]
    fn bad_programs_are_errors_with_offsets() {
        let cases: [(&[u8], &str); 5] = [
            (&[0x80, 2, 0xff], "unsupported pickle opcode 0xff"),
            (&[0x80, 2, b'K'], "ends inside"),
            (&[0x80, 2, b'K', 1], "without a STOP"),
            (&[0x80, 2, b'h', 3, b'.'], "memo key 3"),
            (
                &[0x80, 2, b'X', 0xff, 0xff, 0xff, 0x7f],
                "runs past the end",
            ),
        ];
        for (p, want) in cases {
            let e = load(p, &mut no_storage).unwrap_err();
            assert!(e.to_string().contains(want), "{e} (wanted {want})");
        }
        let e = load(&[0x80, 2, 0xff], &mut no_storage).unwrap_err();
        assert_eq!(e.offset, 2);
    }
}
