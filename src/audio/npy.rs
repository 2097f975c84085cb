//! NumPy `.npy` files (format version 1.0) of little-endian float32 in C order: what
//! `numpy.load` reads without options. Written atomically (temporary file + rename), so a
//! failed write never leaves a truncated array under the final name.

use crate::error::{Error, Result};
use std::path::Path;

const MAGIC: &[u8] = b"\x93NUMPY";

/// The header of a version 1.0 file: magic, version, header length, and the header dict padded
/// with spaces and a newline so that the data starts at a multiple of 64 bytes.
fn header(shape: &[usize]) -> Vec<u8> {
    let dims = match shape {
        [one] => format!("({one},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {dims}, }}");
    let unpadded = MAGIC.len() + 2 + 2 + dict.len() + 1;
    dict.extend(std::iter::repeat_n(
        ' ',
        unpadded.next_multiple_of(64) - unpadded,
    ));
    dict.push('\n');
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + dict.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    let len = u16::try_from(dict.len()).expect("a float32 header with a few dimensions is short");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

/// The bytes of an `.npy` file holding `data` (C order) with `shape`.
pub fn to_bytes(shape: &[usize], data: &[f32]) -> Result<Vec<u8>> {
    let count: usize = shape.iter().product();
    if count != data.len() {
        return Err(Error::msg(format!(
            "an array of shape {shape:?} holds {count} values, got {}",
            data.len()
        )));
    }
    let mut out = header(shape);
    out.reserve(4 * data.len());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    Ok(out)
}

/// Writes `data` (C order) with `shape` to `path` as `.npy`, atomically, under the output
/// policy of [`crate::fsio`] (`inputs`: the files the command read, which it must not replace).
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32], inputs: &[&Path]) -> Result<()> {
    crate::fsio::write(path, &to_bytes(shape, data)?, inputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_aligned_and_names_dtype_and_shape() {
        for shape in [vec![512, 64], vec![7], vec![2, 3, 4], vec![0, 5]] {
            let h = header(&shape);
            assert_eq!(h.len() % 64, 0, "{shape:?}");
            assert_eq!(&h[..8], b"\x93NUMPY\x01\x00");
            let len = u16::from_le_bytes([h[8], h[9]]) as usize;
            assert_eq!(len + 10, h.len());
            let text = std::str::from_utf8(&h[10..]).unwrap();
            assert!(text.ends_with('\n'));
            assert!(text.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': ("));
        }
        let h = header(&[7]);
        assert!(std::str::from_utf8(&h[10..])
            .unwrap()
            .contains("'shape': (7,)"));
        let h = header(&[512, 64]);
        assert!(std::str::from_utf8(&h[10..])
            .unwrap()
            .contains("'shape': (512, 64)"));
    }

    #[test]
    fn data_follows_the_header_little_endian() {
        let bytes = to_bytes(&[2, 2], &[1.0, -2.5, 0.0, 3.25]).unwrap();
        let start = header(&[2, 2]).len();
        assert_eq!(bytes.len(), start + 16);
        assert_eq!(&bytes[start..start + 4], &1.0f32.to_le_bytes());
        assert_eq!(&bytes[start + 12..], &3.25f32.to_le_bytes());
        assert!(to_bytes(&[3, 2], &[0.0; 5]).is_err());
    }

    #[test]
    fn writes_atomically_and_reports_unwritable_paths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.npy");
        write_f32(&path, &[3], &[1.0, 2.0, 3.0], &[]).unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            to_bytes(&[3], &[1.0, 2.0, 3.0]).unwrap()
        );
        // No temporary file is left beside it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let bad = dir.path().join("missing-dir").join("x.npy");
        let err = write_f32(&bad, &[1], &[0.0], &[]).unwrap_err().to_string();
        assert!(err.contains("missing-dir"), "{err}");
    }
}
