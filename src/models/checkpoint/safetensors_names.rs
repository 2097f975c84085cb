//! A check the `safetensors` crate leaves out: its header is a JSON object read into a map, so
//! a tensor (or metadata key) named twice silently keeps the last entry. Header length,
//! offsets beyond the file, byte sizes that mismatch shapes and overflowing shapes are refused
//! by the crate itself.

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::collections::HashSet;
use std::fmt;

/// Size of the little-endian header length that starts a safetensors file.
const LENGTH_BYTES: usize = 8;

/// Refuses a safetensors header with a key named twice in any of its objects (the tensor
/// table, `__metadata__`, a tensor's own fields). A header the crate will refuse for another
/// reason (length beyond the file, not JSON) passes here, so the crate's error is the one
/// shown.
pub fn check_unique_names(bytes: &[u8]) -> Result<(), String> {
    let Some(header) = bytes
        .get(..LENGTH_BYTES)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .and_then(|n| usize::try_from(n).ok())
        .and_then(|n| n.checked_add(LENGTH_BYTES))
        .and_then(|end| bytes.get(LENGTH_BYTES..end))
    else {
        return Ok(());
    };
    match serde_json::from_slice::<Unique>(header) {
        Err(e) if e.is_data() => Err(e.to_string()),
        _ => Ok(()),
    }
}

/// Any JSON value whose objects have distinct keys (serde_json bounds the nesting).
struct Unique;

impl<'de> Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueVisitor)
    }
}

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Unique;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            map.next_value::<Unique>()?;
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!(
                    "`{key}` is named twice in the header"
                )));
            }
        }
        Ok(Unique)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Unique)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_str<E>(self, _: &str) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_unit<E>(self) -> Result<Unique, E> {
        Ok(Unique)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str) -> Vec<u8> {
        let mut b = (header.len() as u64).to_le_bytes().to_vec();
        b.extend(header.as_bytes());
        b
    }

    #[test]
    fn a_name_given_twice_is_refused_naming_it() {
        let t = r#"{"dtype":"F32","shape":[1],"data_offsets":[0,4]}"#;
        let twice = format!(r#"{{"w":{t},"w":{t}}}"#);
        let e = check_unique_names(&file(&twice)).unwrap_err();
        assert!(e.contains("`w` is named twice"), "{e}");
        let meta = r#"{"__metadata__":{"a":"1","a":"2"}}"#;
        assert!(check_unique_names(&file(meta)).is_err());
        let once = format!(r#"{{"__metadata__":{{"a":"1"}},"w":{t},"v":{t}}}"#);
        assert!(check_unique_names(&file(&once)).is_ok());
        // Not JSON, or a length beyond the file: left to the crate's own errors.
        assert!(check_unique_names(b"\xff\xff\xff\xff\xff\xff\xff\x7f{}").is_ok());
        assert!(check_unique_names(&file("{oops")).is_ok());
    }
}
