//! Checkpoint files written by hand, byte by byte: the fixtures with which the tests and the
//! fuzzer (`ascrepro-fuzz`) exercise the readers, hostile files included. Not a general
//! writer: it writes exactly what it is told, however malformed.

use super::zip::crc32;

/// A pickle program (protocol 2) under construction.
pub struct Pickle(Vec<u8>);

impl Default for Pickle {
    fn default() -> Self {
        Pickle::new()
    }
}

impl Pickle {
    pub fn new() -> Pickle {
        Pickle(vec![0x80, 2])
    }
    /// One opcode byte (or any byte).
    pub fn op(&mut self, op: u8) -> &mut Pickle {
        self.0.push(op);
        self
    }
    /// `op` `n` times.
    pub fn repeat(&mut self, op: u8, n: usize) -> &mut Pickle {
        self.0.extend(std::iter::repeat_n(op, n));
        self
    }
    /// Raw bytes (an opcode's argument).
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Pickle {
        self.0.extend_from_slice(bytes);
        self
    }
    /// MARK.
    pub fn mark(&mut self) -> &mut Pickle {
        self.op(b'(')
    }
    /// BINUNICODE.
    pub fn str(&mut self, s: &str) -> &mut Pickle {
        self.op(b'X')
            .raw(&(s.len() as u32).to_le_bytes())
            .raw(s.as_bytes())
    }
    /// BININT1 when it fits, else LONG1 of 8 bytes.
    pub fn int(&mut self, v: i64) -> &mut Pickle {
        match u8::try_from(v) {
            Ok(b) => self.raw(&[b'K', b]),
            Err(_) => self.long(v),
        }
    }
    /// LONG1 of 8 bytes.
    pub fn long(&mut self, v: i64) -> &mut Pickle {
        self.raw(&[0x8a, 8]).raw(&v.to_le_bytes())
    }
    /// A tuple of LONG1s.
    pub fn longs(&mut self, vs: &[i64]) -> &mut Pickle {
        self.mark();
        for &v in vs {
            self.long(v);
        }
        self.op(b't')
    }
    /// GLOBAL `module.name`.
    pub fn global(&mut self, module: &str, name: &str) -> &mut Pickle {
        self.op(b'c').raw(format!("{module}\n{name}\n").as_bytes())
    }
    /// BINPUT.
    pub fn put(&mut self, key: u8) -> &mut Pickle {
        self.raw(&[b'q', key])
    }
    /// BINGET.
    pub fn get(&mut self, key: u8) -> &mut Pickle {
        self.raw(&[b'h', key])
    }
    /// MEMOIZE (protocol 4): the next memo key.
    pub fn memoize(&mut self) -> &mut Pickle {
        self.op(0x94)
    }
    /// LONG_BINGET.
    pub fn long_get(&mut self, key: u32) -> &mut Pickle {
        self.op(b'j').raw(&key.to_le_bytes())
    }
    /// `torch._utils._rebuild_tensor_v2(<float storage `key` of `numel` elements>, offset, size,
    /// stride, False, OrderedDict())`, as torch.save writes one state-dict value.
    pub fn tensor(
        &mut self,
        key: &str,
        numel: i64,
        offset: i64,
        size: &[i64],
        stride: &[i64],
    ) -> &mut Pickle {
        self.global("torch._utils", "_rebuild_tensor_v2").mark();
        self.mark().str("storage").global("torch", "FloatStorage");
        self.str(key).str("cpu").long(numel).op(b't').op(b'Q');
        self.long(offset).longs(size).longs(stride).op(0x89);
        self.global("collections", "OrderedDict").op(b')').op(b'R');
        self.op(b't').op(b'R')
    }
    /// STOP, and the program.
    pub fn stop(&mut self) -> Vec<u8> {
        self.op(b'.');
        std::mem::take(&mut self.0)
    }
}

/// One local entry of a stored ZIP archive.
pub struct ZipEntry<'a> {
    pub name: &'a str,
    pub data: &'a [u8],
}

/// A stored (uncompressed) ZIP archive of `entries`, each listed once in the directory.
pub fn stored_zip(entries: &[ZipEntry<'_>]) -> Vec<u8> {
    let central: Vec<(&str, usize)> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.name, i))
        .collect();
    stored_zip_with(entries, &central, None)
}

/// A stored ZIP archive whose central directory lists `central`: (name, index of the local
/// entry), so a name may differ from its local header's or point at another entry's data;
/// `size_override` replaces every size the directory states.
pub fn stored_zip_with(
    entries: &[ZipEntry<'_>],
    central: &[(&str, usize)],
    size_override: Option<u32>,
) -> Vec<u8> {
    // Version 20, no flags, method 0 (stored), time and date 0: as torch.save writes them.
    const VERSION_FLAGS_METHOD_TIME: [u8; 10] = [20, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let mut out = Vec::new();
    let mut offsets = Vec::new();
    for e in entries {
        offsets.push(out.len() as u32);
        out.extend(0x0403_4b50u32.to_le_bytes());
        out.extend(VERSION_FLAGS_METHOD_TIME);
        out.extend(crc32(e.data).to_le_bytes());
        out.extend((e.data.len() as u32).to_le_bytes());
        out.extend((e.data.len() as u32).to_le_bytes());
        out.extend((e.name.len() as u16).to_le_bytes());
        out.extend(0u16.to_le_bytes());
        out.extend(e.name.as_bytes());
        out.extend(e.data);
    }
    let cd_start = out.len() as u32;
    for (name, i) in central {
        let e = &entries[*i];
        let size = size_override.unwrap_or(e.data.len() as u32);
        out.extend(0x0201_4b50u32.to_le_bytes());
        out.extend(20u16.to_le_bytes()); // made by
        out.extend(VERSION_FLAGS_METHOD_TIME);
        out.extend(crc32(e.data).to_le_bytes());
        out.extend(size.to_le_bytes());
        out.extend(size.to_le_bytes());
        out.extend((name.len() as u16).to_le_bytes());
        out.extend([0u8; 12]); // extra, comment, disk, attributes
        out.extend(offsets[*i].to_le_bytes());
        out.extend(name.as_bytes());
    }
    let cd_size = out.len() as u32 - cd_start;
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0u8; 4]);
    out.extend((central.len() as u16).to_le_bytes());
    out.extend((central.len() as u16).to_le_bytes());
    out.extend(cd_size.to_le_bytes());
    out.extend(cd_start.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

/// A torch.save archive of `pickle` with one storage `archive/data/0` holding `storage`.
pub fn torch_archive(pickle: &[u8], storage: &[u8]) -> Vec<u8> {
    stored_zip(&[
        ZipEntry {
            name: "archive/data.pkl",
            data: pickle,
        },
        ZipEntry {
            name: "archive/byteorder",
            data: b"little",
        },
        ZipEntry {
            name: "archive/data/0",
            data: storage,
        },
        ZipEntry {
            name: "archive/version",
            data: b"3\n",
        },
    ])
}
