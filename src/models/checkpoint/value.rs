//! The values the pickle machine ([`super::pickle`]) builds.
//!
//! Containers are shared (`Rc`, mutable ones in a `RefCell`) because the pickle memo hands out
//! references: a list stored in the memo and filled afterwards must be the same list wherever
//! it is fetched. Sharing makes the logical tree of a value exponential in the file's size, and
//! a container may hold itself, so nothing here walks a value without a bound: dropping is
//! iterative, `Debug` prints a bounded prefix, and accessors copy one level only.

use super::tensor::{Storage, StoredTensor};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

/// A value built by the pickle VM.
#[derive(Clone)]
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
    Dict(Rc<RefCell<Dict>>),
    /// A class or function named by the pickle: (module, name).
    Global(Rc<(String, String)>),
    /// A tensor storage, as the persistent loader returned it.
    Storage(Rc<Storage>),
    Tensor(Rc<StoredTensor>),
    /// An instance of a class this reader does not interpret.
    Object(Rc<RefCell<Object>>),
}

/// An instance of a class the reader does not interpret, kept as data.
#[derive(Clone, Default)]
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

/// A dict: entries in insertion order, indexed by their string and integer keys so that
/// filling it stays linear (a repeated key replaces the value in place, as in Python).
#[derive(Clone, Default)]
pub struct Dict {
    entries: Vec<(Value, Value)>,
    index: HashMap<Key, usize>,
}

/// The keys a dict indexes; other keys (tuples, ...) are kept but never compared.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    Str(Rc<str>),
    Int(i64),
}

impl Key {
    fn of(v: &Value) -> Option<Key> {
        match v {
            Value::Str(s) => Some(Key::Str(s.clone())),
            Value::Int(i) => Some(Key::Int(*i)),
            Value::Bool(b) => Some(Key::Int(i64::from(*b))),
            _ => None,
        }
    }
}

impl Dict {
    pub fn entries(&self) -> &[(Value, Value)] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sets `key` to `value`; a key already present keeps its position.
    pub fn insert(&mut self, key: Value, value: Value) {
        match Key::of(&key) {
            Some(k) => match self.index.get(&k) {
                Some(&i) => self.entries[i].1 = value,
                None => {
                    self.index.insert(k, self.entries.len());
                    self.entries.push((key, value));
                }
            },
            None => self.entries.push((key, value)),
        }
    }

    /// The value under string key `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        let i = *self.index.get(&Key::Str(Rc::from(key)))?;
        Some(&self.entries[i].1)
    }

    fn take_entries(&mut self) -> Vec<(Value, Value)> {
        self.index.clear();
        std::mem::take(&mut self.entries)
    }
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
            Value::Object(o) => o
                .try_borrow()
                .map(|o| o.class.clone())
                .unwrap_or_else(|_| "object".into()),
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

    /// The entries of a dict, or of a dict subclass kept as an [`Object`] (one level copied).
    pub fn as_map(&self) -> Option<Vec<(Value, Value)>> {
        match self {
            Value::Dict(d) => Some(d.borrow().entries.clone()),
            Value::Object(o) if !o.borrow().items.is_empty() => Some(o.borrow().items.clone()),
            _ => None,
        }
    }

    /// The value under string key `key` of a dict (or dict subclass).
    pub fn get(&self, key: &str) -> Option<Value> {
        match self {
            Value::Dict(d) => d.borrow().get(key).cloned(),
            Value::Object(o) => o
                .borrow()
                .items
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v.clone()),
            _ => None,
        }
    }

    /// Number of elements of a tuple or list.
    pub fn seq_len(&self) -> Option<usize> {
        match self {
            Value::Tuple(t) => Some(t.len()),
            Value::List(l) => Some(l.borrow().len()),
            _ => None,
        }
    }

    /// The elements of a tuple or list (one level copied).
    pub fn as_seq(&self) -> Option<Vec<Value>> {
        match self {
            Value::Tuple(t) => Some(t.as_ref().clone()),
            Value::List(l) => Some(l.borrow().clone()),
            _ => None,
        }
    }

    /// The address of a container's shared allocation (its identity), `None` for scalars and
    /// leaves that cannot hold other values.
    pub(super) fn container_id(&self) -> Option<usize> {
        Some(match self {
            Value::Tuple(t) => Rc::as_ptr(t) as *const u8 as usize,
            Value::List(l) => Rc::as_ptr(l) as *const u8 as usize,
            Value::Dict(d) => Rc::as_ptr(d) as *const u8 as usize,
            Value::Object(o) => Rc::as_ptr(o) as *const u8 as usize,
            _ => return None,
        })
    }

    /// Empties a mutable container in place (breaking any reference cycle through it); the
    /// contents are returned so the caller drops them outside the borrow.
    pub(super) fn take_contents(&self) -> Vec<Value> {
        let mut out = Vec::new();
        match self {
            Value::List(l) => {
                if let Ok(mut l) = l.try_borrow_mut() {
                    out = std::mem::take(&mut *l);
                }
            }
            Value::Dict(d) => {
                if let Ok(mut d) = d.try_borrow_mut() {
                    push_pairs(&mut out, d.take_entries());
                }
            }
            Value::Object(o) => {
                if let Ok(mut o) = o.try_borrow_mut() {
                    o.take_into(&mut out);
                }
            }
            _ => {}
        }
        out
    }

    /// Moves the children of a container this value owns alone into `out` (for [`Drop`]).
    fn take_owned_children(&mut self, out: &mut Vec<Value>) {
        match self {
            Value::Tuple(t) => {
                if let Some(items) = Rc::get_mut(t) {
                    out.append(items);
                }
            }
            Value::List(l) => {
                if let Some(items) = Rc::get_mut(l) {
                    out.append(items.get_mut());
                }
            }
            Value::Dict(d) => {
                if let Some(d) = Rc::get_mut(d) {
                    push_pairs(out, d.get_mut().take_entries());
                }
            }
            Value::Object(o) => {
                if let Some(o) = Rc::get_mut(o) {
                    o.get_mut().take_into(out);
                }
            }
            _ => {}
        }
    }
}

fn push_pairs(out: &mut Vec<Value>, pairs: Vec<(Value, Value)>) {
    for (k, v) in pairs {
        out.push(k);
        out.push(v);
    }
}

impl Object {
    fn take_into(&mut self, out: &mut Vec<Value>) {
        out.append(&mut self.args);
        out.append(&mut self.elements);
        push_pairs(out, std::mem::take(&mut self.items));
        out.extend(self.state.take());
    }
}

/// Iterative: a pickle may nest a million containers, and the default recursive drop of
/// nested `Rc`s would overflow the stack.
impl Drop for Value {
    fn drop(&mut self) {
        let mut pending = Vec::new();
        self.take_owned_children(&mut pending);
        while let Some(mut v) = pending.pop() {
            v.take_owned_children(&mut pending);
            // `v` is dropped here with no children left, so its own drop does not recurse.
        }
    }
}

/// How much of a value `Debug` shows: containers may be shared exponentially or hold
/// themselves, so printing stops after this many nodes and below this depth.
const SHOW_NODES: usize = 40;
const SHOW_DEPTH: usize = 6;
const SHOW_CHARS: usize = 80;

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut left = SHOW_NODES;
        self.show(f, 0, &mut left)
    }
}

impl fmt::Debug for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut left = SHOW_NODES;
        show_object(self, f, 0, &mut left)
    }
}

impl fmt::Debug for Dict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut left = SHOW_NODES;
        show_pairs(f, "{", "}", &self.entries, 0, &mut left)
    }
}

impl Value {
    fn show(&self, f: &mut fmt::Formatter<'_>, depth: usize, left: &mut usize) -> fmt::Result {
        if *left == 0 || depth >= SHOW_DEPTH {
            return f.write_str("…");
        }
        *left -= 1;
        match self {
            Value::None => f.write_str("None"),
            Value::Bool(b) => write!(f, "{}", if *b { "True" } else { "False" }),
            Value::Int(i) => write!(f, "{i}"),
            Value::BigInt(b) => write!(f, "<int of {} bytes>", b.len()),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Str(s) => match s.char_indices().nth(SHOW_CHARS) {
                Some((cut, _)) => write!(f, "{:?}…", &s[..cut]),
                None => write!(f, "{s:?}"),
            },
            Value::Bytes(b) => write!(f, "<{} bytes>", b.len()),
            Value::Tuple(t) => show_seq(f, "(", ")", t, depth, left),
            Value::List(l) => match l.try_borrow() {
                Ok(l) => show_seq(f, "[", "]", &l, depth, left),
                Err(_) => f.write_str("[…]"),
            },
            Value::Dict(d) => match d.try_borrow() {
                Ok(d) => show_pairs(f, "{", "}", &d.entries, depth, left),
                Err(_) => f.write_str("{…}"),
            },
            Value::Global(g) => write!(f, "{}.{}", g.0, g.1),
            Value::Storage(s) => write!(f, "<storage `{}`: {} {}>", s.key, s.numel, s.dtype.name()),
            Value::Tensor(t) => write!(f, "<tensor {} {:?}>", t.dtype.name(), t.shape),
            Value::Object(o) => match o.try_borrow() {
                Ok(o) => show_object(&o, f, depth, left),
                Err(_) => f.write_str("<object>"),
            },
        }
    }
}

fn show_seq(
    f: &mut fmt::Formatter<'_>,
    open: &str,
    close: &str,
    items: &[Value],
    depth: usize,
    left: &mut usize,
) -> fmt::Result {
    f.write_str(open)?;
    if depth + 1 >= SHOW_DEPTH && !items.is_empty() {
        f.write_str("…")?;
        return f.write_str(close);
    }
    for (i, v) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        if *left == 0 {
            f.write_str("…")?;
            break;
        }
        v.show(f, depth + 1, left)?;
    }
    f.write_str(close)
}

fn show_pairs(
    f: &mut fmt::Formatter<'_>,
    open: &str,
    close: &str,
    pairs: &[(Value, Value)],
    depth: usize,
    left: &mut usize,
) -> fmt::Result {
    f.write_str(open)?;
    if depth + 1 >= SHOW_DEPTH && !pairs.is_empty() {
        f.write_str("…")?;
        return f.write_str(close);
    }
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        if *left == 0 {
            f.write_str("…")?;
            break;
        }
        k.show(f, depth + 1, left)?;
        f.write_str(": ")?;
        v.show(f, depth + 1, left)?;
    }
    f.write_str(close)
}

fn show_object(
    o: &Object,
    f: &mut fmt::Formatter<'_>,
    depth: usize,
    left: &mut usize,
) -> fmt::Result {
    write!(f, "{}", o.class)?;
    show_seq(f, "(", ")", &o.args, depth, left)?;
    if let Some(state) = &o.state {
        f.write_str(" state ")?;
        state.show(f, depth + 1, left)?;
    }
    if !o.items.is_empty() {
        f.write_str(" items ")?;
        show_pairs(f, "{", "}", &o.items, depth, left)?;
    }
    if !o.elements.is_empty() {
        f.write_str(" elements ")?;
        show_seq(f, "{", "}", &o.elements, depth, left)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_million_nested_tuples_drop_without_recursion() {
        let mut v = Value::Tuple(Rc::default());
        for _ in 0..1_000_000 {
            v = Value::Tuple(Rc::new(vec![v]));
        }
        let shown = format!("{v:?}");
        assert!(shown.len() < 100, "{shown}");
        drop(v);
    }

    #[test]
    fn a_list_holding_itself_prints_a_bounded_prefix_and_is_emptied() {
        let l = Value::List(Rc::default());
        if let Value::List(inner) = &l {
            inner.borrow_mut().push(l.clone());
            inner.borrow_mut().push(l.clone());
        }
        let shown = format!("{l:?}");
        assert!(shown.starts_with("[[[") && shown.len() < 400, "{shown}");
        drop(l.take_contents());
        assert_eq!(l.seq_len(), Some(0));
    }
}
