//! Where the pickle machine makes and fills containers, under a budget.
//!
//! A pickle of a few hundred bytes can describe a value whose logical tree is exponential
//! (`t1 = (t0, t0)`, `t2 = (t1, t1)`, ... through the memo) or a million levels deep, and
//! anything that later expands it (printing, comparing, converting) would run out of memory or
//! stack. So every container records, when it is made or filled, its logical size (nodes,
//! shared parts counted each time) and depth, and the opcode that crosses [`MAX_NODES`] or
//! [`MAX_DEPTH`] fails. Values copied out of containers (call arguments) are counted against
//! [`MAX_COPIES`]. A container filled after it was placed elsewhere leaves its holders' records
//! low; they are a first line only, and every walk of a value is bounded on its own.
//!
//! Mutable containers are also kept in a list ([`Containers`]) that empties them when the
//! loaded value is dropped, so a container holding itself does not leak.

use super::value::{Dict, Value};
use std::collections::HashMap;
use std::rc::Rc;

/// Deepest nesting accepted. Python's pickler recurses per level and stops at its recursion
/// limit (1000 by default), so deeper files do not come from `torch.save`.
pub const MAX_DEPTH: u32 = 1000;
/// Largest logical size of one value, shared parts counted each time they occur. Released
/// checkpoints hold a few ten thousand values.
pub const MAX_NODES: u64 = 1 << 22;
/// Most values copied out of existing containers (call arguments, dict initialisers).
pub const MAX_COPIES: u64 = 1 << 22;

type Res<T> = Result<T, String>;

/// A container's logical size and depth, as built.
#[derive(Clone, Copy)]
struct Meta {
    nodes: u64,
    depth: u32,
}

const LEAF: Meta = Meta { nodes: 1, depth: 0 };
const EMPTY: Meta = Meta { nodes: 1, depth: 1 };

/// Budgeted construction of the values of one pickle.
#[derive(Default)]
pub struct Heap {
    /// By container identity ([`Value::container_id`]).
    meta: HashMap<usize, Meta>,
    /// Emptied with the heap too, so a failed load leaks no cycle either.
    mutable: Containers,
    copies: u64,
}

/// The mutable containers of a loaded pickle; dropping empties them, which breaks any
/// reference cycle among them.
#[derive(Default)]
pub struct Containers(Vec<Value>);

impl Drop for Containers {
    fn drop(&mut self) {
        for c in std::mem::take(&mut self.0) {
            drop(c.take_contents());
        }
    }
}

impl Heap {
    fn meta_of(&self, v: &Value) -> Meta {
        match v.container_id() {
            Some(id) => self.meta.get(&id).copied().unwrap_or(EMPTY),
            None => LEAF,
        }
    }

    /// Records that `added` now sit inside `target`.
    fn account<'v>(
        &mut self,
        target: &Value,
        added: impl IntoIterator<Item = &'v Value>,
    ) -> Res<()> {
        let Some(id) = target.container_id() else {
            return Ok(());
        };
        let mut m = self.meta.get(&id).copied().unwrap_or(EMPTY);
        for child in added {
            let c = self.meta_of(child);
            m.nodes = m.nodes.saturating_add(c.nodes);
            m.depth = m.depth.max(c.depth.saturating_add(1));
        }
        if m.depth > MAX_DEPTH {
            return Err(format!(
                "containers nested more than {MAX_DEPTH} deep (Python's pickler stops at its \
                 recursion limit first): not an object torch.save writes"
            ));
        }
        if m.nodes > MAX_NODES {
            return Err(format!(
                "a value that expands to more than {MAX_NODES} values when the parts it shares \
                 through the memo are counted each time: not an object torch.save writes"
            ));
        }
        self.meta.insert(id, m);
        Ok(())
    }

    /// A new container: its record starts empty (an address may be reused after a free).
    fn made(&mut self, v: &Value, mutable: bool) {
        if let Some(id) = v.container_id() {
            self.meta.insert(id, EMPTY);
        }
        if mutable {
            self.mutable.0.push(v.clone());
        }
    }

    pub fn tuple(&mut self, items: Vec<Value>) -> Res<Value> {
        let t = Value::Tuple(Rc::new(items));
        self.made(&t, false);
        if let Value::Tuple(items) = &t {
            self.account(&t, items.iter())?;
        }
        Ok(t)
    }

    pub fn list(&mut self, items: Vec<Value>) -> Res<Value> {
        let l = Value::List(Rc::default());
        self.made(&l, true);
        self.append(&l, items)?;
        Ok(l)
    }

    pub fn dict(&mut self, pairs: Vec<(Value, Value)>) -> Res<Value> {
        let d = Value::Dict(Rc::default());
        self.made(&d, true);
        self.set_items(&d, pairs)?;
        Ok(d)
    }

    /// An opaque instance of `class` made from `args`.
    pub fn object(&mut self, class: &str, args: Vec<Value>) -> Res<Value> {
        let o = Value::Object(Rc::default());
        self.made(&o, true);
        self.account(&o, &args)?;
        if let Value::Object(obj) = &o {
            let mut obj = obj.borrow_mut();
            obj.class = class.to_string();
            obj.args = args;
        }
        Ok(o)
    }

    /// `APPEND(S)`, `ADDITEMS`: onto a list, or a list/set subclass kept as an object.
    pub fn append(&mut self, target: &Value, values: Vec<Value>) -> Res<()> {
        match target {
            Value::List(_) | Value::Object(_) => self.account(target, &values)?,
            other => return Err(format!("APPEND on a {}", other.type_name())),
        }
        match target {
            Value::List(l) => l.borrow_mut().extend(values),
            Value::Object(o) => o.borrow_mut().elements.extend(values),
            _ => {}
        }
        Ok(())
    }

    /// `SETITEM(S)`: into a dict, or a dict subclass kept as an object.
    pub fn set_items(&mut self, target: &Value, pairs: Vec<(Value, Value)>) -> Res<()> {
        match target {
            Value::Dict(_) | Value::Object(_) => {
                self.account(target, pairs.iter().flat_map(|(k, v)| [k, v]))?;
            }
            other => return Err(format!("SETITEM on a {}", other.type_name())),
        }
        match target {
            Value::Dict(d) => {
                let mut d = d.borrow_mut();
                for (k, v) in pairs {
                    d.insert(k, v);
                }
            }
            Value::Object(o) => o.borrow_mut().items.extend(pairs),
            _ => {}
        }
        Ok(())
    }

    /// `BUILD`: an opaque object's state. Other targets (OrderedDict's `_metadata`, a
    /// parameter's hooks) are not used, so their state is dropped.
    pub fn build(&mut self, target: &Value, state: Value) -> Res<()> {
        if let Value::Object(o) = target {
            self.account(target, [&state])?;
            o.borrow_mut().state = Some(state);
        }
        Ok(())
    }

    fn charge_copies(&mut self, n: usize) -> Res<()> {
        self.copies = self.copies.saturating_add(n as u64);
        if self.copies > MAX_COPIES {
            return Err(format!(
                "more than {MAX_COPIES} values copied into call arguments: not an object \
                 torch.save writes"
            ));
        }
        Ok(())
    }

    /// The elements of a tuple or list, copied (and counted); `None` for other values.
    pub fn copy_seq(&mut self, v: &Value) -> Res<Option<Vec<Value>>> {
        if let Some(n) = v.seq_len() {
            self.charge_copies(n)?;
        }
        Ok(v.as_seq())
    }

    /// The entries of a dict, copied (and counted).
    pub fn copy_entries(&mut self, d: &Dict) -> Res<Vec<(Value, Value)>> {
        self.charge_copies(d.len().saturating_mul(2))?;
        Ok(d.entries().to_vec())
    }

    /// The containers to empty when the loaded value is dropped.
    pub fn into_containers(mut self) -> Containers {
        std::mem::take(&mut self.mutable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubling_through_sharing_is_refused_once_past_the_budget() {
        let mut heap = Heap::default();
        let mut t = heap.tuple(Vec::new()).unwrap();
        let mut steps = 0;
        let err = loop {
            match heap.tuple(vec![t.clone(), t.clone()]) {
                Ok(next) => t = next,
                Err(e) => break e,
            }
            steps += 1;
        };
        assert_eq!(steps, 21, "{err}");
        assert!(err.contains("shares through the memo"), "{err}");
    }

    #[test]
    fn nesting_is_refused_past_the_depth_bound() {
        let mut heap = Heap::default();
        let mut l = heap.list(Vec::new()).unwrap();
        for _ in 1..MAX_DEPTH {
            l = heap.list(vec![l]).unwrap();
        }
        let err = heap.list(vec![l]).unwrap_err();
        assert!(err.contains("nested more than 1000"), "{err}");
    }
}
