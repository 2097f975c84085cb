//! The subset of the ZIP format `torch.save` writes: stored (uncompressed) entries, with the
//! ZIP64 end-of-central-directory records PyTorch always adds. Entries are checked against
//! their CRC-32, so a corrupted checkpoint is refused instead of imported with damaged weights.
//! The central directory is checked whole when the archive is opened: no entry named twice
//! (which one would be read?), each entry's local header where it says, with the same name,
//! and its data inside the file before the directory.

use std::collections::HashMap;

const LOCAL_HEADER: u32 = 0x0403_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const END_OF_CENTRAL_DIR: u32 = 0x0605_4b50;
const ZIP64_END_OF_CENTRAL_DIR: u32 = 0x0606_4b50;
const ZIP64_LOCATOR: u32 = 0x0706_4b50;
const ZIP64_EXTRA: u16 = 0x0001;

/// Where one entry's bytes are.
#[derive(Debug, Clone, Copy)]
struct Entry {
    method: u16,
    flags: u16,
    crc: u32,
    size: u64,
    /// Where the entry's data starts (after its local header).
    data: usize,
}

/// A ZIP archive held in memory; entry names in central-directory order.
#[derive(Debug)]
pub struct Archive {
    bytes: Vec<u8>,
    names: Vec<String>,
    entries: HashMap<String, Entry>,
}

/// Starts with a local file header: the file is meant to be a ZIP archive.
pub fn looks_like_zip(bytes: &[u8]) -> bool {
    read_u32(bytes, 0) == Some(LOCAL_HEADER)
}

fn read_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn read_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

fn truncated(what: &str) -> String {
    format!("truncated or corrupt zip archive ({what})")
}

impl Archive {
    /// Parses the central directory; errors are phrased for the user (the caller adds the file).
    pub fn parse(bytes: Vec<u8>) -> Result<Archive, String> {
        let (cd_offset, cd_entries) = central_directory(&bytes)?;
        let mut names = Vec::new();
        let mut entries = HashMap::new();
        let mut at = usize::try_from(cd_offset).map_err(|_| truncated("central directory"))?;
        for _ in 0..cd_entries {
            // `at` stays inside the file (the signature read checks it), so the sums below cannot overflow.
            if read_u32(&bytes, at) != Some(CENTRAL_HEADER) {
                return Err(truncated("central directory entry"));
            }
            let field16 = |off: usize| {
                read_u16(&bytes, at + off).ok_or_else(|| truncated("central directory entry"))
            };
            let field32 = |off: usize| {
                read_u32(&bytes, at + off).ok_or_else(|| truncated("central directory entry"))
            };
            let flags = field16(8)?;
            let method = field16(10)?;
            let crc = field32(16)?;
            let mut compressed = u64::from(field32(20)?);
            let mut size = u64::from(field32(24)?);
            let name_len = usize::from(field16(28)?);
            let extra_len = usize::from(field16(30)?);
            let comment_len = usize::from(field16(32)?);
            let mut local_header = u64::from(field32(42)?);
            let name_at = at + 46;
            let name = bytes
                .get(name_at..name_at + name_len)
                .ok_or_else(|| truncated("entry name"))?;
            let name = String::from_utf8_lossy(name).into_owned();
            let extra = bytes
                .get(name_at + name_len..name_at + name_len + extra_len)
                .ok_or_else(|| truncated("entry extra field"))?;
            // ZIP64: the 32-bit fields that overflowed (0xFFFFFFFF) follow in this order.
            let mut e = 0;
            while e + 4 <= extra.len() {
                let id = read_u16(extra, e).unwrap_or(0);
                let len = usize::from(read_u16(extra, e + 2).unwrap_or(0));
                let data = extra
                    .get(e + 4..e + 4 + len)
                    .ok_or_else(|| truncated("zip64 extra field"))?;
                if id == ZIP64_EXTRA {
                    let mut k = 0;
                    for field in [&mut size, &mut compressed, &mut local_header] {
                        if *field == u64::from(u32::MAX) {
                            *field =
                                read_u64(data, k).ok_or_else(|| truncated("zip64 extra field"))?;
                            k += 8;
                        }
                    }
                }
                e += 4 + len;
            }
            if entries.contains_key(&name) {
                return Err(format!(
                    "entry `{name}` appears twice in the zip central directory: the archive is \
                     ambiguous"
                ));
            }
            let data = entry_data(&bytes, &name, local_header, compressed, cd_offset)?;
            if method == 0 && compressed != size {
                return Err(truncated(&format!(
                    "stored entry `{name}` has compressed size {compressed} but size {size}"
                )));
            }
            names.push(name.clone());
            entries.insert(
                name,
                Entry {
                    method,
                    flags,
                    crc,
                    size,
                    data,
                },
            );
            at = name_at + name_len + extra_len + comment_len;
        }
        Ok(Archive {
            bytes,
            names,
            entries,
        })
    }

    /// Entry names, in the archive's order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The bytes of entry `name` (`Ok(None)` if there is no such entry), checked against the CRC.
    pub fn read(&self, name: &str) -> Result<Option<&[u8]>, String> {
        let Some(entry) = self.entries.get(name) else {
            return Ok(None);
        };
        if entry.flags & 1 != 0 {
            return Err(format!("entry `{name}` is encrypted"));
        }
        if entry.method != 0 {
            return Err(format!(
                "entry `{name}` is compressed (method {}); torch.save stores entries uncompressed, \
                 and only such archives are supported",
                entry.method
            ));
        }
        // `parse` checked the data lies inside the file and, stored, is `size` bytes long.
        let bad = || truncated(&format!("entry `{name}`"));
        let len = usize::try_from(entry.size).map_err(|_| bad())?;
        let data = entry
            .data
            .checked_add(len)
            .and_then(|end| self.bytes.get(entry.data..end))
            .ok_or_else(bad)?;
        if crc32(data) != entry.crc {
            return Err(format!(
                "entry `{name}` fails its CRC-32 check: the file is corrupt"
            ));
        }
        Ok(Some(data))
    }
}

/// Where the data of entry `name` starts, checking its local header (signature, same name)
/// and that its `compressed` bytes end inside the file, before the central directory.
fn entry_data(
    bytes: &[u8],
    name: &str,
    local_header: u64,
    compressed: u64,
    cd_offset: u64,
) -> Result<usize, String> {
    let bad = |what: &str| truncated(&format!("entry `{name}`: {what}"));
    let lh = usize::try_from(local_header).map_err(|_| bad("local header offset"))?;
    if read_u32(bytes, lh) != Some(LOCAL_HEADER) {
        return Err(bad("no local header where the central directory says"));
    }
    let name_len = usize::from(read_u16(bytes, lh + 26).ok_or_else(|| bad("local header"))?);
    let extra_len = usize::from(read_u16(bytes, lh + 28).ok_or_else(|| bad("local header"))?);
    let name_at = lh + 30;
    let local_name = bytes
        .get(name_at..name_at + name_len)
        .ok_or_else(|| bad("local header name"))?;
    if local_name != name.as_bytes() {
        return Err(format!(
            "entry `{name}` is called `{}` in its local header: the archive is ambiguous",
            String::from_utf8_lossy(local_name)
        ));
    }
    let start = name_at + name_len + extra_len;
    let end = u64::try_from(start)
        .ok()
        .and_then(|s| s.checked_add(compressed))
        .filter(|&e| e <= cd_offset && e <= bytes.len() as u64)
        .ok_or_else(|| bad("data runs past the end of the file or into the central directory"))?;
    debug_assert!(end as usize <= bytes.len());
    Ok(start)
}

/// Offset and entry count of the central directory, from the (ZIP64) end records.
fn central_directory(b: &[u8]) -> Result<(u64, u64), String> {
    // The end record is 22 bytes plus a comment of at most 65535 bytes.
    let lowest = b.len().saturating_sub(22 + 65535);
    let eocd = (lowest..b.len().saturating_sub(21))
        .rev()
        .find(|&i| read_u32(b, i) == Some(END_OF_CENTRAL_DIR))
        .ok_or_else(|| truncated("no end-of-central-directory record"))?;
    let entries = u64::from(read_u16(b, eocd + 10).ok_or_else(|| truncated("end record"))?);
    let offset = u64::from(read_u32(b, eocd + 16).ok_or_else(|| truncated("end record"))?);
    if eocd >= 20 && read_u32(b, eocd - 20) == Some(ZIP64_LOCATOR) {
        let rec = read_u64(b, eocd - 20 + 8).ok_or_else(|| truncated("zip64 locator"))?;
        let rec = usize::try_from(rec).map_err(|_| truncated("zip64 locator"))?;
        if read_u32(b, rec) != Some(ZIP64_END_OF_CENTRAL_DIR) {
            return Err(truncated("zip64 end record"));
        }
        let entries = read_u64(b, rec + 32).ok_or_else(|| truncated("zip64 end record"))?;
        let offset = read_u64(b, rec + 48).ok_or_else(|| truncated("zip64 end record"))?;
        return Ok((offset, entries));
    }
    Ok((offset, entries))
}

/// CRC-32 (IEEE 802.3, reflected), as ZIP uses.
pub fn crc32(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, slot) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *slot = c;
        }
        t
    });
    !data.iter().fold(!0u32, |c, &byte| {
        table[((c ^ u32::from(byte)) & 0xff) as usize] ^ (c >> 8)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_of_known_strings() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [vec![], vec![0x50, 0x4b, 3, 4], vec![0u8; 100]] {
            assert!(Archive::parse(bytes).is_err());
        }
    }
}
