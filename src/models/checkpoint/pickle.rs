//! A pickle virtual machine for the objects `torch.save` writes (protocols 0–5; torch uses 2).
//!
//! It never runs code: a class or function named by the pickle (`GLOBAL`) becomes a
//! [`Value::Global`], and calling it (`REDUCE`, `NEWOBJ`) is interpreted ([`super::calls`]) for
//! the few callables a checkpoint needs, while any other class becomes an opaque [`Object`]
//! that keeps its arguments and state. Lightning's callbacks, loops and hyper-parameters (which
//! may name arbitrary classes) therefore load as inert data and never stop a checkpoint from
//! loading.
//!
//! Containers are made and filled through a [`Heap`] that bounds their logical size and depth
//! (a pickle shares values through its memo, so a tiny file can describe a huge value), and
//! every opcode's work is linear in its argument bytes or the values it pops.

use super::calls::call;
use super::heap::{Containers, Heap};
use std::collections::HashMap;
use std::rc::Rc;

pub use super::value::{Dict, Object, Value};

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
    heap: Heap,
    persistent_load: &'a mut PersistentLoad<'b>,
}

/// What a pickle program built: its value, and the containers to empty when it is dropped (a
/// pickle may build a container that holds itself). Reads as the value itself.
pub struct Pickled {
    pub root: Value,
    pub containers: Containers,
}

impl std::ops::Deref for Pickled {
    type Target = Value;
    fn deref(&self) -> &Value {
        &self.root
    }
}

impl std::fmt::Debug for Pickled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.root.fmt(f)
    }
}

/// Runs the pickle program in `data` to its STOP and returns the value it built. Pure: the
/// only outside effect is `persistent_load`, called for each persistent id. Any input, however
/// hostile, gives a value or an error at an opcode's offset, within bounded time and memory.
pub fn load(data: &[u8], persistent_load: &mut PersistentLoad<'_>) -> Result<Pickled, PickleError> {
    let mut m = Machine {
        data,
        pos: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        heap: Heap::default(),
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
                let root = m.pop().map_err(|message| PickleError {
                    offset: at,
                    message,
                })?;
                return Ok(Pickled {
                    root,
                    containers: std::mem::take(&mut m.heap).into_containers(),
                });
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
            b'}' => {
                let d = self.heap.dict(Vec::new())?;
                self.stack.push(d);
            }
            b']' => {
                let l = self.heap.list(Vec::new())?;
                self.stack.push(l);
            }
            b')' => {
                let t = self.heap.tuple(Vec::new())?;
                self.stack.push(t);
            }
            0x8f => {
                let set = self.heap.object("builtins.set", Vec::new())?;
                self.stack.push(set);
            }
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
                let args = self.heap.copy_seq(&args)?.ok_or_else(|| {
                    format!("REDUCE arguments are a {}, not a tuple", args.type_name())
                })?;
                let v = call(&mut self.heap, &callable, args)?;
                self.stack.push(v);
            }
            0x81 => {
                let args = self.pop()?;
                let cls = self.pop()?;
                let args = self.heap.copy_seq(&args)?.unwrap_or_default();
                let v = call(&mut self.heap, &cls, args)?;
                self.stack.push(v);
            }
            0x92 => {
                let _kwargs = self.pop()?;
                let args = self.pop()?;
                let cls = self.pop()?;
                let args = self.heap.copy_seq(&args)?.unwrap_or_default();
                let v = call(&mut self.heap, &cls, args)?;
                self.stack.push(v);
            }
            b'o' => {
                let mut items = self.pop_mark()?;
                if items.is_empty() {
                    return Err("OBJ without a class".into());
                }
                let cls = items.remove(0);
                let v = call(&mut self.heap, &cls, items)?;
                self.stack.push(v);
            }
            b'i' => {
                let module = self.line()?;
                let name = self.line()?;
                let args = self.pop_mark()?;
                let v = call(
                    &mut self.heap,
                    &Value::Global(Rc::new((module, name))),
                    args,
                )?;
                self.stack.push(v);
            }
            b'b' => {
                let state = self.pop()?;
                let target = self.top()?.clone();
                self.heap.build(&target, state)?;
            }
            b's' => {
                let value = self.pop()?;
                let key = self.pop()?;
                let target = self.top()?.clone();
                self.heap.set_items(&target, vec![(key, value)])?;
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
                let target = self.top()?.clone();
                self.heap.set_items(&target, pairs)?;
            }
            b'a' => {
                let v = self.pop()?;
                let target = self.top()?.clone();
                self.heap.append(&target, vec![v])?;
            }
            b'e' | 0x90 => {
                let vs = self.pop_mark()?;
                let target = self.top()?.clone();
                self.heap.append(&target, vs)?;
            }
            0x91 => {
                let vs = self.pop_mark()?;
                let set = self.heap.object("builtins.frozenset", Vec::new())?;
                self.heap.append(&set, vs)?;
                self.stack.push(set);
            }
            b't' => {
                let vs = self.pop_mark()?;
                let t = self.heap.tuple(vs)?;
                self.stack.push(t);
            }
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                if self.stack.len() < n
                    || self.marks.last().is_some_and(|&m| m + n > self.stack.len())
                {
                    return Err("stack underflow".into());
                }
                let vs = self.stack.split_off(self.stack.len() - n);
                let t = self.heap.tuple(vs)?;
                self.stack.push(t);
            }
            b'l' => {
                let vs = self.pop_mark()?;
                let l = self.heap.list(vs)?;
                self.stack.push(l);
            }
            b'd' => {
                let flat = self.pop_mark()?;
                let mut it = flat.into_iter();
                let mut pairs = Vec::new();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    pairs.push((k, v));
                }
                let d = self.heap.dict(pairs)?;
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

#[cfg(test)]
#[path = "pickle_tests.rs"]
mod tests;
