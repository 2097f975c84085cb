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

/// Walks the footer's Thrift (compact protocol) as polars reads it, and refuses any list, map or
/// binary whose declared length exceeds the bytes left (polars reserves a list's declared length
/// up front) and any field polars reads whose declared type is not the parquet format's (polars
/// reads a known field as the format's type whatever the file says, so a mistyped field would
/// make this walk and polars part ways).
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
    thrift.structure(Some(&FILE_METADATA), 0)
}

/// A field's type in parquet.thrift, as the compact protocol encodes it.
#[derive(Clone, Copy)]
enum Ty {
    Bool,
    Byte,
    /// i16, i32 and i64: one zigzag varint each, read alike.
    Varint,
    Binary,
    List(&'static Ty),
    Struct(&'static Schema),
}

/// The fields of one parquet.thrift struct that polars' footer decoder reads (the others it
/// skips by their declared type).
struct Schema {
    name: &'static str,
    fields: &'static [(i16, Ty)],
}

impl Ty {
    fn admits(self, code: u8) -> bool {
        match self {
            Ty::Bool => matches!(code, 1 | 2),
            Ty::Byte => code == 3,
            Ty::Varint => (4..=6).contains(&code),
            Ty::Binary => code == 8,
            Ty::List(_) => code == 9,
            Ty::Struct(_) => code == STRUCT,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Ty::Bool => "a bool",
            Ty::Byte => "a byte",
            Ty::Varint => "an integer",
            Ty::Binary => "a binary",
            Ty::List(_) => "a list",
            Ty::Struct(s) => s.name,
        }
    }
}

use Ty::{Binary, Bool, Byte, List, Varint};

static FILE_METADATA: Schema = Schema {
    name: "FileMetaData",
    fields: &[
        (1, Varint),
        (2, List(&Ty::Struct(&SCHEMA_ELEMENT))),
        (3, Varint),
        (4, List(&Ty::Struct(&ROW_GROUP))),
        (5, List(&Ty::Struct(&KEY_VALUE))),
        (6, Binary),
        (7, List(&Ty::Struct(&COLUMN_ORDER))),
    ],
};
static SCHEMA_ELEMENT: Schema = Schema {
    name: "SchemaElement",
    fields: &[
        (1, Varint),
        (2, Varint),
        (3, Varint),
        (4, Binary),
        (5, Varint),
        (6, Varint),
        (7, Varint),
        (8, Varint),
        (9, Varint),
        (10, Ty::Struct(&LOGICAL_TYPE)),
    ],
};
static ROW_GROUP: Schema = Schema {
    name: "RowGroup",
    fields: &[
        (1, List(&Ty::Struct(&COLUMN_CHUNK))),
        (2, Varint),
        (3, Varint),
        (4, List(&Ty::Struct(&SORTING_COLUMN))),
        (5, Varint),
        (6, Varint),
        (7, Varint),
    ],
};
static COLUMN_CHUNK: Schema = Schema {
    name: "ColumnChunk",
    fields: &[
        (1, Binary),
        (2, Varint),
        (3, Ty::Struct(&COLUMN_META_DATA)),
        (4, Varint),
        (5, Varint),
        (6, Varint),
        (7, Varint),
    ],
};
static COLUMN_META_DATA: Schema = Schema {
    name: "ColumnMetaData",
    fields: &[
        (1, Varint),
        (2, List(&Varint)),
        (3, List(&Binary)),
        (4, Varint),
        (5, Varint),
        (6, Varint),
        (7, Varint),
        (9, Varint),
        (10, Varint),
        (11, Varint),
        (12, Ty::Struct(&STATISTICS)),
        (14, Varint),
        (15, Varint),
    ],
};
static STATISTICS: Schema = Schema {
    name: "Statistics",
    fields: &[
        (1, Binary),
        (2, Binary),
        (3, Varint),
        (4, Varint),
        (5, Binary),
        (6, Binary),
        (7, Bool),
        (8, Bool),
    ],
};
static KEY_VALUE: Schema = Schema {
    name: "KeyValue",
    fields: &[(1, Binary), (2, Binary)],
};
static SORTING_COLUMN: Schema = Schema {
    name: "SortingColumn",
    fields: &[(1, Varint), (2, Bool), (3, Bool)],
};
/// A union of empty structs (also the empty structs of `LogicalType` and `TimeUnit`).
static EMPTY: Schema = Schema {
    name: "an empty struct",
    fields: &[],
};
static COLUMN_ORDER: Schema = Schema {
    name: "ColumnOrder",
    fields: &[(1, Ty::Struct(&EMPTY)), (2, Ty::Struct(&EMPTY))],
};
static LOGICAL_TYPE: Schema = Schema {
    name: "LogicalType",
    fields: &[
        (1, Ty::Struct(&EMPTY)),
        (2, Ty::Struct(&EMPTY)),
        (3, Ty::Struct(&EMPTY)),
        (4, Ty::Struct(&EMPTY)),
        (5, Ty::Struct(&DECIMAL_TYPE)),
        (6, Ty::Struct(&EMPTY)),
        (7, Ty::Struct(&TIME_TYPE)),
        (8, Ty::Struct(&TIME_TYPE)),
        (10, Ty::Struct(&INT_TYPE)),
        (11, Ty::Struct(&EMPTY)),
        (12, Ty::Struct(&EMPTY)),
        (13, Ty::Struct(&EMPTY)),
        (14, Ty::Struct(&EMPTY)),
        (15, Ty::Struct(&EMPTY)),
    ],
};
static DECIMAL_TYPE: Schema = Schema {
    name: "DecimalType",
    fields: &[(1, Varint), (2, Varint)],
};
/// `TimeType` and `TimestampType`.
static TIME_TYPE: Schema = Schema {
    name: "TimeType",
    fields: &[(1, Bool), (2, Ty::Struct(&TIME_UNIT))],
};
static TIME_UNIT: Schema = Schema {
    name: "TimeUnit",
    fields: &[
        (1, Ty::Struct(&EMPTY)),
        (2, Ty::Struct(&EMPTY)),
        (3, Ty::Struct(&EMPTY)),
    ],
};
static INT_TYPE: Schema = Schema {
    name: "IntType",
    fields: &[(1, Byte), (2, Bool)],
};

const STRUCT: u8 = 12;
/// Thrift nesting the parquet footer uses is a few levels; anything deep is not a footer.
const MAX_THRIFT_DEPTH: usize = 32;

/// A reader of Thrift's compact protocol that only checks lengths and known fields' types.
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

    /// A list's (or set's) header: element count, element type.
    fn list_header(&mut self) -> std::result::Result<(usize, u8), String> {
        let head = self.byte()?;
        let size = match head >> 4 {
            15 => self.varint()?,
            n => u64::from(n),
        };
        Ok((self.length(size)?, head & 0x0f))
    }

    /// A struct's fields up to its stop, those `schema` names checked against their types.
    fn structure(
        &mut self,
        schema: Option<&Schema>,
        depth: usize,
    ) -> std::result::Result<(), String> {
        if depth > MAX_THRIFT_DEPTH {
            return Err("its footer nests too deep".into());
        }
        let mut last = 0i16;
        loop {
            let head = self.byte()?;
            let code = head & 0x0f;
            if code == 0 {
                return Ok(());
            }
            // A field id is the last one plus a delta, or (delta 0) a zigzag i16 of its own,
            // truncated as polars truncates it.
            let id = match head >> 4 {
                0 => {
                    let z = self.varint()?;
                    ((z >> 1) as i64 ^ -((z & 1) as i64)) as i16
                }
                delta => last
                    .checked_add(i16::from(delta))
                    .ok_or("its footer's field ids overflow")?,
            };
            last = id;
            let known = schema.and_then(|s| Some((s, s.fields.iter().find(|f| f.0 == id)?.1)));
            match known {
                Some((s, ty)) if !ty.admits(code) => {
                    return Err(format!(
                        "its footer gives field {id} of {} Thrift type {code}; the parquet \
                         format makes it {}",
                        s.name,
                        ty.name()
                    ))
                }
                Some((_, ty)) => self.typed(ty, depth + 1)?,
                None => self.skip(code, depth + 1)?,
            }
        }
    }

    /// A struct field's value of a known type (its declared type checked already).
    fn typed(&mut self, ty: Ty, depth: usize) -> std::result::Result<(), String> {
        match ty {
            // A bool field's value is its type.
            Ty::Bool => Ok(()),
            Ty::Byte => self.byte().map(drop),
            Ty::Varint => self.varint().map(drop),
            Ty::Binary => self.skip(8, depth),
            Ty::Struct(s) => self.structure(Some(s), depth),
            Ty::List(element) => {
                let (size, code) = self.list_header()?;
                if size > 0 && !element.admits(code) {
                    return Err(format!(
                        "its footer holds a list of Thrift type {code} where the parquet \
                         format has a list of {}",
                        element.name()
                    ));
                }
                for _ in 0..size {
                    match element {
                        Ty::Bool => self.byte().map(drop)?,
                        e => self.typed(*e, depth + 1)?,
                    }
                }
                Ok(())
            }
        }
    }

    /// A value of an unknown field, by its declared type.
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
                let (size, element) = self.list_header()?;
                for _ in 0..size {
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
            STRUCT => self.structure(None, depth),
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

#[cfg(test)]
mod tests {
    use super::check_footer_lengths;

    /// A parquet file of no pages around a hand-written footer.
    fn file(footer: &[u8]) -> Vec<u8> {
        let mut f = b"PAR1".to_vec();
        f.extend(footer);
        f.extend((footer.len() as u32).to_le_bytes());
        f.extend(b"PAR1");
        f
    }

    #[test]
    fn a_footer_field_of_another_type_than_the_format_says_is_refused() {
        // version 1 (i32), schema [] (list of structs), num_rows 0 (i64), row_groups [].
        let good = [0x15, 2, 0x19, 0x0c, 0x16, 0, 0x19, 0x0c, 0];
        check_footer_lengths(&file(&good)).unwrap();
        // key_value_metadata (field 5, a list) written as an i32: polars reads it as a list
        // header, which a length walk by declared types would never see.
        let as_int = [0x15, 2, 0x19, 0x0c, 0x16, 0, 0x19, 0x0c, 0x15, 0x7f, 0];
        let e = check_footer_lengths(&file(&as_int)).unwrap_err();
        assert!(e.contains("field 5 of FileMetaData Thrift type 5"), "{e}");
        // A schema list whose elements are declared i32, not SchemaElement structs.
        let elements = [0x15, 2, 0x19, 0x15, 0];
        let e = check_footer_lengths(&file(&elements)).unwrap_err();
        assert!(e.contains("list of SchemaElement"), "{e}");
        // A list declaring more elements than the footer has bytes.
        let long = [0x29, 0xfc, 0xff, 0xff, 0x7f, 0];
        let e = check_footer_lengths(&file(&long)).unwrap_err();
        assert!(e.contains("declares 2097151 elements"), "{e}");
    }
}
