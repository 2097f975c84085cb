//! Tensor storages of a `torch.save` archive and the tensors viewing them (offset, size,
//! strides), materialised on demand: optimizer state and other tensors nobody asks for are
//! never converted. A view's extent is checked against its storage's bytes when it is made;
//! a broadcast (stride-0) view may still claim far more elements than its bytes hold, so
//! materialising takes a bound on the element count and refuses beyond it, before allocating.

use std::rc::Rc;

/// Element type of a storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DType {
    F32,
    F64,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
    /// A type this reader cannot convert (complex, quantized, float8, ...): its torch name.
    Unsupported(String),
}

impl DType {
    /// From a legacy storage class name as `torch.save` pickles it (`FloatStorage`, ...).
    pub fn from_storage_class(name: &str) -> DType {
        match name {
            "FloatStorage" => DType::F32,
            "DoubleStorage" => DType::F64,
            "HalfStorage" => DType::F16,
            "BFloat16Storage" => DType::BF16,
            "LongStorage" => DType::I64,
            "IntStorage" => DType::I32,
            "ShortStorage" => DType::I16,
            "CharStorage" => DType::I8,
            "ByteStorage" => DType::U8,
            "BoolStorage" => DType::Bool,
            other => DType::Unsupported(other.to_string()),
        }
    }

    /// From a `torch.<dtype>` attribute name (`float32`, `half`, ...).
    pub fn from_torch_dtype(name: &str) -> Option<DType> {
        Some(match name {
            "float32" | "float" => DType::F32,
            "float64" | "double" => DType::F64,
            "float16" | "half" => DType::F16,
            "bfloat16" => DType::BF16,
            "int64" | "long" => DType::I64,
            "int32" | "int" => DType::I32,
            "int16" | "short" => DType::I16,
            "int8" => DType::I8,
            "uint8" => DType::U8,
            "bool" => DType::Bool,
            _ => return None,
        })
    }

    /// Bytes per element (`None` when unsupported).
    pub fn size(&self) -> Option<usize> {
        Some(match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
            DType::Unsupported(_) => return None,
        })
    }

    pub fn is_float(&self) -> bool {
        matches!(self, DType::F32 | DType::F64 | DType::F16 | DType::BF16)
    }

    /// torch's name, e.g. `float16`.
    pub fn name(&self) -> &str {
        match self {
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::I64 => "int64",
            DType::I32 => "int32",
            DType::I16 => "int16",
            DType::I8 => "int8",
            DType::U8 => "uint8",
            DType::Bool => "bool",
            DType::Unsupported(n) => n,
        }
    }
}

/// Most dimensions a tensor may have (torch's own limit).
pub const MAX_DIMS: usize = 64;

/// Elements a view may expand to beyond its storage's when nothing else bounds it (16 Mi: a
/// 64 MiB f32 buffer): broadcast views are legitimate, terabyte claims are not.
pub const BROADCAST_ALLOWANCE: usize = 1 << 24;

/// One storage of the archive (`<archive>/data/<key>`).
pub struct Storage {
    pub key: String,
    pub dtype: DType,
    /// Elements, as the pickle declared them.
    pub numel: usize,
    pub bytes: Vec<u8>,
    pub big_endian: bool,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("key", &self.key)
            .field("dtype", &self.dtype)
            .field("numel", &self.numel)
            .field("bytes", &self.bytes.len())
            .field("big_endian", &self.big_endian)
            .finish()
    }
}

impl Storage {
    /// Elements of `dtype` the storage really holds: as declared, and backed by its bytes.
    pub fn elements(&self, dtype: &DType) -> usize {
        match dtype.size() {
            Some(size) => (self.bytes.len() / size).min(self.numel),
            None => self.numel,
        }
    }
}

/// A tensor: a strided view of a storage.
#[derive(Debug)]
pub struct StoredTensor {
    pub storage: Rc<Storage>,
    pub dtype: DType,
    pub offset: usize,
    pub shape: Vec<i64>,
    pub stride: Vec<i64>,
}

impl StoredTensor {
    /// Checks the view lies inside the storage. `dtype` overrides the storage's (v3 rebuilds).
    pub fn new(
        storage: Rc<Storage>,
        dtype: Option<DType>,
        offset: i64,
        shape: Vec<i64>,
        stride: Vec<i64>,
    ) -> Result<StoredTensor, String> {
        let dtype = dtype.unwrap_or_else(|| storage.dtype.clone());
        if shape.len() > MAX_DIMS {
            return Err(format!(
                "tensor with {} dimensions (at most {MAX_DIMS})",
                shape.len()
            ));
        }
        if shape.len() != stride.len() {
            return Err(format!(
                "tensor of size {shape:?} has {} strides",
                stride.len()
            ));
        }
        if offset < 0 || shape.iter().any(|&d| d < 0) || stride.iter().any(|&s| s < 0) {
            return Err(format!(
                "tensor with negative offset, size or stride (offset {offset}, size {shape:?}, stride {stride:?})"
            ));
        }
        let t = StoredTensor {
            storage,
            dtype,
            offset: offset as usize,
            shape,
            stride,
        };
        let numel = t.numel().ok_or("tensor size overflows")?;
        if numel > 0 {
            // Highest element index the view touches.
            let last = t
                .shape
                .iter()
                .zip(&t.stride)
                .try_fold(t.offset as u64, |acc, (&d, &s)| {
                    acc.checked_add((d as u64 - 1).checked_mul(s as u64)?)
                })
                .ok_or("tensor extent overflows")?;
            let available = t.storage.elements(&t.dtype) as u64;
            if last >= available {
                return Err(format!(
                    "tensor (offset {}, size {:?}, stride {:?}) reaches element {last} of storage `{}`, \
                     which holds {available}",
                    t.offset, t.shape, t.stride, t.storage.key,
                ));
            }
        }
        Ok(t)
    }

    pub fn numel(&self) -> Option<usize> {
        self.shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(usize::try_from(d).ok()?))
    }

    /// Elements of its storage this view may be materialised to when nothing else bounds it.
    pub fn default_limit(&self) -> usize {
        self.storage.elements(&self.dtype).max(BROADCAST_ALLOWANCE)
    }

    /// The elements converted to f32, row-major, bounded by [`Self::default_limit`].
    pub fn to_f32(&self) -> Result<Vec<f32>, String> {
        self.to_f32_within(self.default_limit())
    }

    /// The elements converted to f32, row-major (any strides). Integer and bool tensors convert
    /// too; an unsupported type is an error naming it, and so is a view of more than `limit`
    /// elements (checked before anything is allocated).
    pub fn to_f32_within(&self, limit: usize) -> Result<Vec<f32>, String> {
        let size = self
            .dtype
            .size()
            .ok_or_else(|| format!("unsupported tensor type {}", self.dtype.name()))?;
        let n = self.numel().ok_or("tensor size overflows")?;
        if n > limit {
            return Err(format!(
                "size {:?} (stride {:?}) makes {n} elements of a storage holding {}, more \
                 than the {limit} it may expand to",
                self.shape,
                self.stride,
                self.storage.elements(&self.dtype)
            ));
        }
        let mut out = Vec::new();
        out.try_reserve_exact(n)
            .map_err(|_| format!("cannot allocate {n} elements"))?;
        if n == 0 {
            return Ok(out);
        }
        let bytes = &self.storage.bytes;
        let be = self.storage.big_endian;
        let word = |i: usize| -> [u8; 8] {
            let mut w = [0u8; 8];
            let src = &bytes[i * size..(i + 1) * size];
            if be {
                for (dst, b) in w.iter_mut().zip(src.iter().rev()) {
                    *dst = *b;
                }
            } else {
                w[..size].copy_from_slice(src);
            }
            w
        };
        let convert = |i: usize| -> f32 {
            let w = word(i);
            match self.dtype {
                DType::F32 => f32::from_le_bytes([w[0], w[1], w[2], w[3]]),
                DType::F64 => f64::from_le_bytes(w) as f32,
                DType::F16 => f16_to_f32(u16::from_le_bytes([w[0], w[1]])),
                DType::BF16 => f32::from_bits(u32::from(u16::from_le_bytes([w[0], w[1]])) << 16),
                DType::I64 => i64::from_le_bytes(w) as f32,
                DType::I32 => i32::from_le_bytes([w[0], w[1], w[2], w[3]]) as f32,
                DType::I16 => f32::from(i16::from_le_bytes([w[0], w[1]])),
                DType::I8 => f32::from(w[0] as i8),
                DType::U8 | DType::Bool => f32::from(w[0]),
                DType::Unsupported(_) => f32::NAN,
            }
        };
        // Odometer over the multi-index, keeping the storage index in step; `new` checked
        // every index it reaches lies inside the storage.
        let dims = self.shape.len();
        let mut counter = vec![0i64; dims];
        let mut index = self.offset;
        for _ in 0..n {
            out.push(convert(index));
            for d in (0..dims).rev() {
                counter[d] += 1;
                index += self.stride[d] as usize;
                if counter[d] < self.shape[d] {
                    break;
                }
                index -= (self.stride[d] * self.shape[d]) as usize;
                counter[d] = 0;
            }
        }
        Ok(out)
    }
}

/// IEEE half precision to single (exact: every f16 is an f32).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let frac = u32::from(h & 0x3ff);
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, _) => {
            // Subnormal: value = frac * 2^-24; normalise into an f32.
            let shift = frac.leading_zeros() - 21; // bring the leading one to bit 10
            let frac = (frac << shift) & 0x3ff;
            let exp = 127 - 15 + 1 - shift;
            sign | (exp << 23) | (frac << 13)
        }
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, _) => sign | 0x7fc0_0000 | (frac << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (frac << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_conversion_is_exact() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x0200), 2f32.powi(-15));
        assert_eq!(f16_to_f32(0x03ff), 1023.0 * 2f32.powi(-24));
        assert!(f16_to_f32(0x7c00).is_infinite());
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    fn storage(values: &[f32]) -> Rc<Storage> {
        Rc::new(Storage {
            key: "0".into(),
            dtype: DType::F32,
            numel: values.len(),
            bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            big_endian: false,
        })
    }

    #[test]
    fn strided_views_gather_in_row_major_order() {
        let s = storage(&[0., 1., 2., 3., 4., 5., 6.]);
        // The transpose of a 2x3 matrix starting at element 1.
        let t = StoredTensor::new(s.clone(), None, 1, vec![3, 2], vec![1, 3]).unwrap();
        assert_eq!(t.to_f32().unwrap(), [1., 4., 2., 5., 3., 6.]);
        // Broadcast (stride 0) and scalars.
        let t = StoredTensor::new(s.clone(), None, 2, vec![2, 2], vec![0, 1]).unwrap();
        assert_eq!(t.to_f32().unwrap(), [2., 3., 2., 3.]);
        let t = StoredTensor::new(s.clone(), None, 6, vec![], vec![]).unwrap();
        assert_eq!(t.to_f32().unwrap(), [6.]);
        // Out of bounds is refused at construction.
        assert!(StoredTensor::new(s.clone(), None, 1, vec![2, 3], vec![3, 1]).is_ok());
        assert!(StoredTensor::new(s, None, 2, vec![2, 3], vec![3, 1]).is_err());
    }

    #[test]
    fn broadcasts_claiming_more_than_their_bound_are_refused_before_allocating() {
        let s = storage(&[1., 2.]);
        for (size, stride) in [
            (vec![1 << 20, 1 << 20], vec![0, 0]),
            (vec![1 << 31, 1 << 31], vec![0, 0]),
            (vec![1 << 25], vec![0]),
        ] {
            let t = StoredTensor::new(s.clone(), None, 1, size, stride).unwrap();
            let e = t.to_f32().unwrap_err();
            assert!(e.contains("more than the 16777216"), "{e}");
        }
        let t = StoredTensor::new(s, None, 1, vec![3, 2], vec![0, 0]).unwrap();
        assert!(t.to_f32_within(5).unwrap_err().contains("6 elements"));
        assert_eq!(t.to_f32_within(6).unwrap(), [2.; 6]);
    }
}
