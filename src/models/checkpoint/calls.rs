//! What a pickle's calls (`REDUCE`, `NEWOBJ`, `OBJ`, `INST`) mean here: the few callables a
//! checkpoint needs — `OrderedDict`/`dict`, `_codecs.encode` (bytes in protocol 2), `torch.Size`
//! and torch's tensor rebuild functions — are interpreted; any other class becomes an opaque
//! object that keeps its arguments. No code is ever run.

use super::heap::Heap;
use super::tensor::{DType, StoredTensor};
use super::value::Value;
use std::rc::Rc;

type Res<T> = Result<T, String>;

/// How many tensor-subclass rebuilds may wrap one another (torch writes one).
const MAX_REBUILD_NESTING: usize = 8;

/// Interprets a call of `callable` with `args`.
pub fn call(heap: &mut Heap, callable: &Value, args: Vec<Value>) -> Res<Value> {
    let mut callable = callable.clone();
    let mut args = args;
    // `_rebuild_from_type_v2(func, type, args, state)` calls `func(*args)`: followed in a loop,
    // a bounded number of times (a list holding itself could otherwise make it endless).
    for _ in 0..MAX_REBUILD_NESTING {
        let Value::Global(g) = &callable else {
            // Calling the result of a call (rare): keep it opaque.
            let class = format!("<call of {}>", callable.type_name());
            return heap.object(&class, args);
        };
        let (module, name) = (g.0.as_str(), g.1.as_str());
        match (module, name) {
            ("torch._tensor", "_rebuild_from_type_v2" | "_rebuild_from_type") => {
                let func = args.first().cloned().unwrap_or(Value::None);
                let inner = match args.get(2) {
                    Some(a) => heap.copy_seq(a)?.unwrap_or_default(),
                    None => Vec::new(),
                };
                callable = func;
                args = inner;
            }
            _ => return call_global(heap, module, name, args),
        }
    }
    Err(format!(
        "tensor subclass rebuilds nested more than {MAX_REBUILD_NESTING} deep"
    ))
}

fn call_global(heap: &mut Heap, module: &str, name: &str, args: Vec<Value>) -> Res<Value> {
    match (module, name) {
        ("collections", "OrderedDict") | ("builtins" | "__builtin__", "dict") => {
            let pairs = match args.first() {
                None => Vec::new(),
                Some(Value::Dict(src)) => heap.copy_entries(&src.borrow())?,
                Some(other) => {
                    let mut pairs = Vec::new();
                    for p in heap.copy_seq(other)?.unwrap_or_default() {
                        if p.seq_len() == Some(2) {
                            if let Some([k, v]) = heap.copy_seq(&p)?.as_deref() {
                                pairs.push((k.clone(), v.clone()));
                            }
                        }
                    }
                    pairs
                }
            };
            heap.dict(pairs)
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
            _ => heap.object("_codecs.encode", args),
        },
        ("torch", "Size") => {
            let dims = match args.first() {
                Some(a) => heap.copy_seq(a)?.unwrap_or_default(),
                None => Vec::new(),
            };
            heap.tuple(dims)
        }
        ("torch._utils", "_rebuild_tensor" | "_rebuild_tensor_v2") => {
            rebuild_tensor(heap, &args, None)
        }
        ("torch._utils", "_rebuild_tensor_v3") => {
            let dtype = match args.get(6) {
                Some(Value::Global(d)) if d.0 == "torch" => DType::from_torch_dtype(&d.1),
                _ => None,
            };
            let dtype = dtype.ok_or("tensor (v3) without a readable dtype")?;
            rebuild_tensor(heap, &args, Some(dtype))
        }
        ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => args
            .into_iter()
            .next()
            .ok_or_else(|| "parameter rebuild without data".to_string()),
        _ => heap.object(&format!("{module}.{name}"), args),
    }
}

fn int_list(heap: &mut Heap, v: &Value, what: &str) -> Res<Vec<i64>> {
    heap.copy_seq(v)?
        .ok_or_else(|| format!("tensor {what} is a {}, not a tuple", v.type_name()))?
        .iter()
        .map(|x| {
            x.as_int()
                .ok_or_else(|| format!("tensor {what} holds a non-integer"))
        })
        .collect()
}

/// `_rebuild_tensor_v2(storage, storage_offset, size, stride, ...)`.
fn rebuild_tensor(heap: &mut Heap, args: &[Value], dtype: Option<DType>) -> Res<Value> {
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
    let shape = int_list(heap, size, "size")?;
    let stride = int_list(heap, stride, "stride")?;
    let t = StoredTensor::new(storage.clone(), dtype, offset, shape, stride)?;
    Ok(Value::Tensor(Rc::new(t)))
}
