//! Checks a parquet file's declared sizes before polars reads it. polars' parquet layer trusts
//! them: it reserves what the footer's lists and the page headers declare (2^61 bytes for a 3 kB
//! file) and panics on some malformed files. The logits reader runs these checks first.

use std::io::Cursor;

/// Largest page (compressed or decompressed) of a logits file: 11 columns of `max_rows` values
/// need far less; polars sizes buffers by what a page header declares.
const MAX_PARQUET_PAGE: usize = 64 << 20;

/// Refuses a file whose footer or page headers declare more rows or values than `max_rows`, or
/// pages above [`MAX_PARQUET_PAGE`], before polars decodes it (it would reserve what they
/// declare: 2^61 bytes for a 3 kB file).
pub(super) fn check_sizes(bytes: &[u8], max_rows: usize) -> std::result::Result<(), String> {
    use polars_parquet::parquet::read::{get_page_iterator, read_metadata};
    let e = |e: polars_parquet::parquet::error::ParquetError| e.to_string();
    check_footer_lengths(bytes)?;
    let meta = read_metadata(&mut Cursor::new(bytes)).map_err(e)?;
    if meta.num_rows > max_rows {
        return Err(format!(
            "it declares {} rows; the training set has {} clips",
            meta.num_rows,
            max_rows - 1
        ));
    }
    let buffer = polars_buffer::Buffer::from_vec(bytes.to_vec());
    for group in &meta.row_groups {
        let rows = group.num_rows();
        for column in group.parquet_columns() {
            let declared = column.num_values();
            if usize::try_from(declared).map_or(true, |n| n > rows) {
                return Err(format!(
                    "a column chunk declares {declared} values in a row group of {rows} rows"
                ));
            }
            let pages = get_page_iterator(
                column,
                Cursor::new(buffer.clone()),
                Vec::new(),
                MAX_PARQUET_PAGE,
            )
            .map_err(e)?;
            for page in pages {
                if let polars_parquet::parquet::page::CompressedPage::Data(page) =
                    page.map_err(e)?
                {
                    if page.num_values() > rows || page.uncompressed_size() > MAX_PARQUET_PAGE {
                        return Err(format!(
                            "a page declares {} values ({} bytes) in a row group of {rows} rows",
                            page.num_values(),
                            page.uncompressed_size()
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Walks the footer's Thrift (compact protocol) and refuses any list, map or binary whose
/// declared length exceeds the bytes left: polars reserves a list's declared length up front.
fn check_footer_lengths(bytes: &[u8]) -> std::result::Result<(), String> {
    let n = bytes.len();
    if n < 12 || &bytes[..4] != b"PAR1" || &bytes[n - 4..] != b"PAR1" {
        return Err("no parquet magic at its start and end".into());
    }
    let len = u32::from_le_bytes(bytes[n - 8..n - 4].try_into().expect("4 bytes")) as usize;
    if len > n - 12 {
        return Err(format!("its footer claims {len} bytes; the file has {n}"));
    }
    let mut thrift = Compact {
        bytes: &bytes[n - 8 - len..n - 8],
        at: 0,
    };
    thrift.skip(STRUCT, 0)
}

const STRUCT: u8 = 12;
/// Thrift nesting the parquet footer uses is a few levels; anything deep is not a footer.
const MAX_THRIFT_DEPTH: usize = 32;

/// A reader of Thrift's compact protocol that only checks lengths.
struct Compact<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Compact<'_> {
    fn byte(&mut self) -> std::result::Result<u8, String> {
        let b = *self.bytes.get(self.at).ok_or("its footer ends early")?;
        self.at += 1;
        Ok(b)
    }

    fn varint(&mut self) -> std::result::Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("its footer holds an overlong number".into())
    }

    /// A declared count or length, refused past the bytes left (every element takes one).
    fn length(&mut self, declared: u64) -> std::result::Result<usize, String> {
        let left = (self.bytes.len() - self.at) as u64;
        if declared > left {
            return Err(format!(
                "its footer declares {declared} elements with {left} bytes left"
            ));
        }
        Ok(declared as usize)
    }

    fn skip(&mut self, kind: u8, depth: usize) -> std::result::Result<(), String> {
        if depth > MAX_THRIFT_DEPTH {
            return Err("its footer nests too deep".into());
        }
        match kind {
            // Booleans in a struct field live in its type; in a list they take a byte.
            1 | 2 => Ok(()),
            3 => self.byte().map(drop),
            4..=6 => self.varint().map(drop),
            7 => self.take(8),
            8 => {
                let n = self.varint()?;
                let n = self.length(n)?;
                self.take(n)
            }
            9 | 10 => {
                let head = self.byte()?;
                let size = match head >> 4 {
                    15 => self.varint()?,
                    n => u64::from(n),
                };
                let element = head & 0x0f;
                for _ in 0..self.length(size)? {
                    match element {
                        1 | 2 => self.byte().map(drop)?,
                        k => self.skip(k, depth + 1)?,
                    }
                }
                Ok(())
            }
            11 => {
                let size = self.varint()?;
                let size = self.length(size)?;
                if size > 0 {
                    let kinds = self.byte()?;
                    for _ in 0..size {
                        self.skip(kinds >> 4, depth + 1)?;
                        self.skip(kinds & 0x0f, depth + 1)?;
                    }
                }
                Ok(())
            }
            STRUCT => loop {
                let head = self.byte()?;
                if head == 0 {
                    return Ok(());
                }
                if head >> 4 == 0 {
                    self.varint()?; // a field id too far from the last one
                }
                self.skip(head & 0x0f, depth + 1)?;
            },
            other => Err(format!("its footer holds an unknown Thrift type {other}")),
        }
    }

    fn take(&mut self, n: usize) -> std::result::Result<(), String> {
        if n > self.bytes.len() - self.at {
            return Err("its footer ends early".into());
        }
        self.at += n;
        Ok(())
    }
}
