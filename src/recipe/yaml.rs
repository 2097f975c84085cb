//! A pass over a recipe's YAML before it is read as a recipe. serde fills a map field
//! (`models`, `profiles`, `set`, `values`) last-entry-wins, so a repeated key would silently
//! drop a setting: every repeated mapping key, anywhere, is refused here with its line. The pass
//! also bounds the size of what the text expands to (aliases repeat what they name: a few lines
//! can stand for billions of nodes) before anything is built from it.

use crate::error::{Error, Result};
use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, Visitor};
use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::fmt;
use std::path::Path;

/// Largest recipe text; the five reports' recipes are a few tens of kB.
pub const MAX_BYTES: usize = 1 << 20;
/// Most YAML nodes a recipe may expand to, aliases expanded; a real recipe has a few thousand.
pub const MAX_NODES: usize = 200_000;

/// Refuses repeated keys and oversized texts. Other YAML errors are left to the recipe reader,
/// which meets them too and locates them its own way.
pub fn check(file: &Path, text: &str) -> Result<()> {
    check_size(file, text.len())?;
    if let Some(line) = crate::yaml_nesting::too_deep(text) {
        return Err(Error::input(
            file,
            Some(line),
            None,
            format!(
                "brackets nest deeper than {} levels; a recipe nests a few",
                crate::yaml_nesting::MAX_DEPTH
            ),
        ));
    }
    let state = State::default();
    let walked = Node {
        state: &state,
        path: &[],
    }
    .deserialize(serde_norway::Deserializer::from_str(text));
    let Err(e) = walked else { return Ok(()) };
    let line = e.location().map(|l| l.line());
    match state.problem.into_inner() {
        Some(Problem::Duplicate { path, key }) => {
            let first = (!path.is_empty())
                .then(|| {
                    let mut p: Vec<&str> = path.iter().map(String::as_str).collect();
                    p.push(&key);
                    super::locate(text, &p)
                })
                .flatten()
                .filter(|l| Some(*l) != line)
                .map(|l| format!(" (first at line {l})"))
                .unwrap_or_default();
            let field = path.join(".");
            Err(Error::input(
                file,
                line,
                (!field.is_empty()).then_some(field.as_str()),
                format!("duplicate key `{key}`{first}: each key may appear once"),
            ))
        }
        Some(Problem::TooLarge) => Err(Error::input(
            file,
            line,
            None,
            format!(
                "the recipe expands to more than {MAX_NODES} YAML nodes (through anchors and aliases?); a recipe is far smaller"
            ),
        )),
        None => Ok(()),
    }
}

/// Refuses a text of `len` bytes over [`MAX_BYTES`].
pub fn check_size(file: &Path, len: usize) -> Result<()> {
    if len > MAX_BYTES {
        return Err(Error::file(
            file,
            format!("is over {MAX_BYTES} bytes (1 MiB), more than any recipe needs"),
        ));
    }
    Ok(())
}

enum Problem {
    Duplicate { path: Vec<String>, key: String },
    TooLarge,
}

#[derive(Default)]
struct State {
    nodes: Cell<usize>,
    problem: RefCell<Option<Problem>>,
}

impl State {
    fn fail<E: de::Error>(&self, p: Problem) -> E {
        *self.problem.borrow_mut() = Some(p);
        E::custom("recipe structure refused")
    }

    fn count<E: de::Error>(&self) -> Result<(), E> {
        let n = self.nodes.get() + 1;
        self.nodes.set(n);
        if n > MAX_NODES {
            return Err(self.fail(Problem::TooLarge));
        }
        Ok(())
    }
}

/// Any node at `path` (mapping keys and sequence indices above it).
#[derive(Clone, Copy)]
struct Node<'a> {
    state: &'a State,
    path: &'a [String],
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

macro_rules! scalars {
    ($($name:ident: $t:ty),*) => {$(
        fn $name<E: de::Error>(self, _: $t) -> Result<(), E> {
            self.state.count()
        }
    )*};
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    scalars!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_i128: i128,
        visit_u128: u128, visit_f64: f64, visit_str: &str, visit_bytes: &[u8]);

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.state.count()
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.state.count()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.deserialize(d)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.state.count()?;
        let mut i = 0usize;
        loop {
            let path: Vec<String> = self.path.iter().cloned().chain([i.to_string()]).collect();
            let item = Node {
                state: self.state,
                path: &path,
            };
            if seq.next_element_seed(item)?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.state.count()?;
        let seen = RefCell::new(HashSet::new());
        let key = Key {
            node: self,
            seen: &seen,
        };
        while let Some(k) = map.next_key_seed(key)? {
            let path: Vec<String> = self
                .path
                .iter()
                .cloned()
                .chain(k.map(|k| k.to_string()))
                .collect();
            map.next_value_seed(Node {
                state: self.state,
                path: &path,
            })?;
        }
        Ok(())
    }

    /// A tagged node (`!tag value`).
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        let (_, variant): (de::IgnoredAny, _) = data.variant()?;
        de::VariantAccess::newtype_variant_seed(variant, self)
    }
}

/// A mapping key: its text, refused if the mapping had it already (keys that are themselves
/// collections are walked, not compared).
#[derive(Clone, Copy)]
struct Key<'a> {
    node: Node<'a>,
    seen: &'a RefCell<HashSet<String>>,
}

impl Key<'_> {
    fn scalar<E: de::Error>(self, text: String) -> Result<Option<String>, E> {
        self.node.state.count()?;
        if !self.seen.borrow_mut().insert(text.clone()) {
            return Err(self.node.state.fail(Problem::Duplicate {
                path: self.node.path.to_vec(),
                key: text,
            }));
        }
        Ok(Some(text))
    }
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<String>, E> {
        self.scalar(v.to_string())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Option<String>, E> {
        self.scalar(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<String>, E> {
        self.scalar(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<String>, E> {
        self.scalar(v.to_string())
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Option<String>, E> {
        self.scalar(v.to_string())
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Option<String>, E> {
        self.scalar(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Option<String>, E> {
        self.scalar(v.to_string())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<String>, E> {
        self.scalar("~".to_string())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Option<String>, A::Error> {
        self.node.visit_seq(seq).map(|()| None)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<String>, A::Error> {
        self.node.visit_map(map).map(|()| None)
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Option<String>, A::Error> {
        self.node.visit_enum(data).map(|()| None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        check(Path::new("r.yaml"), text).unwrap_err().to_string()
    }

    #[test]
    fn repeated_keys_are_refused_at_their_line() {
        let e = err("a: 1\nb:\n  c: 1\n  d: 2\n  c: 3\n");
        assert!(
            e.starts_with("r.yaml:5: field `b`: duplicate key `c` (first at line 3)"),
            "{e}"
        );
        let e = err("s:\n  - {x: 1, x: 2}\n");
        assert!(
            e.contains("r.yaml:2") && e.contains("`s.0`") && e.contains("`x`"),
            "{e}"
        );
        assert!(err("a: 1\na: 2\n").starts_with("r.yaml:2: duplicate key `a`"));
        // Keys that differ only as YAML types collide once read into a map of strings.
        assert!(err("m: {1: a, '1': b}\n").contains("duplicate key `1`"));
        assert!(check(Path::new("r.yaml"), "a: {b: 1}\nb: {b: 2}\n").is_ok());
    }

    #[test]
    fn alias_expansion_is_bounded() {
        // Few aliases, each naming much: under serde_norway's own limit (on alias jumps).
        let mut bomb = format!("a: &a [{}]\n", vec!["x"; 1000].join(", "));
        for i in 1..5u8 {
            let (p, c) = ((b'a' + i - 1) as char, (b'a' + i) as char);
            bomb += &format!("{c}: &{c} [{}]\n", vec![format!("*{p}"); 10].join(", "));
        }
        assert!(err(&bomb).contains("more than 200000 YAML nodes"));
    }
}
