//! Seeded mutation: byte-level for every reader, token-level for text, YAML-specific for YAML.
//! Deterministic: the same (reader, seed, iteration) gives the same mutant.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

/// Inputs grow to at most this many bytes through mutation.
pub const MAX_LEN: usize = 4 << 20;

const INTERESTING_BYTES: [u8; 8] = [0, 0xff, 0x7f, 0x80, 1, 0xfe, b'\n', b'"'];
const INTERESTING_U64: [u64; 14] = [
    0,
    1,
    2,
    u64::MAX,
    u64::MAX - 1,
    1 << 31,
    (1 << 31) - 1,
    1 << 32,
    (1 << 32) - 1,
    1 << 63,
    (1 << 63) - 1,
    1 << 20,
    1 << 40,
    0x7fff_fff0,
];

/// Replacements for a number in a text input.
const NUMBERS: [&str; 20] = [
    "1e308",
    "-1e308",
    "1e309",
    ".nan",
    ".inf",
    "-.inf",
    "NaN",
    "inf",
    "-1",
    "0",
    "-0",
    "1",
    "4294967296",
    "18446744073709551616",
    "9223372036854775807",
    "-9223372036854775808",
    "99999999999999999999999999999999",
    "0x10",
    "1e-400",
    "2.5",
];

/// Snippets inserted into YAML.
const YAML_SNIPPETS: [&str; 12] = [
    "&a ",
    "*a",
    "<<: *a\n",
    "!!binary AAAA",
    "~",
    "null",
    "[]",
    "{}",
    "? [a, b]\n: c\n",
    "!!python/object:os.system\n",
    "'\\'",
    "\"\\uD800\"",
];

/// The rng of one mutant.
pub fn rng_for(reader: &str, seed: u64, iteration: u64) -> ChaCha8Rng {
    let mut h = Sha256::new();
    h.update(reader.as_bytes());
    h.update(seed.to_le_bytes());
    h.update(iteration.to_le_bytes());
    let digest = h.finalize();
    let mut key = [0u8; 32];
    key.copy_from_slice(&digest);
    ChaCha8Rng::from_seed(key)
}

/// One mutant of `pool[rng-chosen]`, 1 to 8 stacked mutations.
pub fn mutant(rng: &mut ChaCha8Rng, pool: &[&[u8]], text: bool, yaml: bool) -> Vec<u8> {
    let mut data = pool[rng.random_range(0..pool.len())].to_vec();
    let rounds = 1 + rng.random_range(0..8u32).min(rng.random_range(0..8u32));
    for _ in 0..rounds {
        let choice = if text && rng.random_bool(0.5) {
            20 + rng.random_range(0..if yaml { 8 } else { 5 })
        } else {
            rng.random_range(0..11)
        };
        match choice {
            0 => bit_flip(rng, &mut data),
            1 => set_byte(rng, &mut data),
            2 => set_integer(rng, &mut data),
            3 => insert_chunk(rng, &mut data),
            4 => delete_chunk(rng, &mut data),
            5 => duplicate_chunk(rng, &mut data),
            6 => splice(rng, &mut data, pool),
            7 => truncate(rng, &mut data),
            8 => extend(rng, &mut data),
            9 => add_to_integer(rng, &mut data),
            10 => overwrite_with_other(rng, &mut data, pool),
            20 => replace_number(rng, &mut data),
            21 => duplicate_line(rng, &mut data),
            22 => swap_lines(rng, &mut data),
            23 => delete_line(rng, &mut data),
            24 => line_from_other(rng, &mut data, pool),
            25 => yaml_snippet(rng, &mut data),
            // Bombs and deep nesting are rare: a reader that fails on them fails on most.
            26 if rng.random_bool(0.2) => yaml_alias_bomb(rng, &mut data),
            27 if rng.random_bool(0.1) => yaml_deep_nesting(rng, &mut data),
            _ => yaml_snippet(rng, &mut data),
        }
        data.truncate(MAX_LEN);
    }
    data
}

fn pos(rng: &mut ChaCha8Rng, len: usize) -> usize {
    if len == 0 {
        0
    } else {
        rng.random_range(0..len)
    }
}

fn chunk_len(rng: &mut ChaCha8Rng, max: usize) -> usize {
    let cap = match rng.random_range(0..4) {
        0 => 4,
        1 => 16,
        2 => 256,
        _ => 4096,
    };
    rng.random_range(1..=cap.min(max.max(1)))
}

fn bit_flip(rng: &mut ChaCha8Rng, d: &mut [u8]) {
    if !d.is_empty() {
        let i = pos(rng, d.len());
        d[i] ^= 1 << rng.random_range(0..8);
    }
}

fn set_byte(rng: &mut ChaCha8Rng, d: &mut [u8]) {
    if !d.is_empty() {
        let i = pos(rng, d.len());
        d[i] = if rng.random_bool(0.7) {
            INTERESTING_BYTES[rng.random_range(0..INTERESTING_BYTES.len())]
        } else {
            rng.random()
        };
    }
}

fn set_integer(rng: &mut ChaCha8Rng, d: &mut Vec<u8>) {
    let v = if rng.random_bool(0.8) {
        INTERESTING_U64[rng.random_range(0..INTERESTING_U64.len())]
    } else {
        // A size near the input's own length, a plausible header field.
        (d.len() as u64)
            .wrapping_add(rng.random_range(0..16))
            .wrapping_sub(8)
    };
    let width = [1usize, 2, 4, 8][rng.random_range(0..4)];
    let bytes = if rng.random_bool(0.8) {
        v.to_le_bytes()
    } else {
        v.to_be_bytes()
    };
    let bytes: Vec<u8> = if rng.random_bool(0.8) {
        bytes[..width].to_vec()
    } else {
        bytes[8 - width..].to_vec()
    };
    if d.len() < width {
        d.extend_from_slice(&bytes);
        return;
    }
    let i = pos(rng, d.len() - width + 1);
    d[i..i + width].copy_from_slice(&bytes);
}

fn add_to_integer(rng: &mut ChaCha8Rng, d: &mut [u8]) {
    if d.len() < 4 {
        return;
    }
    let i = pos(rng, d.len() - 3);
    let v = u32::from_le_bytes([d[i], d[i + 1], d[i + 2], d[i + 3]]);
    let delta = rng.random_range(-35i32..=35);
    d[i..i + 4].copy_from_slice(&v.wrapping_add_signed(delta).to_le_bytes());
}

fn insert_chunk(rng: &mut ChaCha8Rng, d: &mut Vec<u8>) {
    let n = chunk_len(rng, 4096);
    let i = pos(rng, d.len() + 1);
    let fill: Vec<u8> = match rng.random_range(0..3) {
        0 => vec![INTERESTING_BYTES[rng.random_range(0..INTERESTING_BYTES.len())]; n],
        1 => (0..n).map(|_| rng.random()).collect(),
        _ => (0..n).map(|_| rng.random_range(0x20..0x7f)).collect(),
    };
    d.splice(i..i, fill);
}

fn delete_chunk(rng: &mut ChaCha8Rng, d: &mut Vec<u8>) {
    if d.is_empty() {
        return;
    }
    let i = pos(rng, d.len());
    let n = chunk_len(rng, d.len() - i);
    d.drain(i..(i + n).min(d.len()));
}

fn duplicate_chunk(rng: &mut ChaCha8Rng, d: &mut Vec<u8>) {
    if d.is_empty() {
        return;
    }
    let i = pos(rng, d.len());
    let n = chunk_len(rng, d.len() - i).min(d.len() - i);
    let chunk = d[i..i + n].to_vec();
    let times = if rng.random_bool(0.9) {
        1
    } else {
        rng.random_range(2..64)
    };
    let at = pos(rng, d.len() + 1);
    let rep: Vec<u8> = chunk.iter().copied().cycle().take(n * times).collect();
    d.splice(at..at, rep);
}

fn splice(rng: &mut ChaCha8Rng, d: &mut Vec<u8>, pool: &[&[u8]]) {
    let other = pool[rng.random_range(0..pool.len())];
    let cut = pos(rng, d.len() + 1);
    let from = pos(rng, other.len() + 1);
    d.truncate(cut);
    d.extend_from_slice(&other[from..]);
}

fn overwrite_with_other(rng: &mut ChaCha8Rng, d: &mut [u8], pool: &[&[u8]]) {
    let other = pool[rng.random_range(0..pool.len())];
    if d.is_empty() || other.is_empty() {
        return;
    }
    let from = pos(rng, other.len());
    let n = chunk_len(rng, other.len() - from).min(other.len() - from);
    let at = pos(rng, d.len());
    let n = n.min(d.len() - at);
    d[at..at + n].copy_from_slice(&other[from..from + n]);
}

fn truncate(rng: &mut ChaCha8Rng, d: &mut Vec<u8>) {
    let n = pos(rng, d.len() + 1);
    d.truncate(n);
}

fn extend(rng: &mut ChaCha8Rng, d: &mut Vec<u8>) {
    let n = chunk_len(rng, 4096);
    let byte = INTERESTING_BYTES[rng.random_range(0..INTERESTING_BYTES.len())];
    d.extend(std::iter::repeat_n(byte, n));
}

/// Byte ranges of the numbers (`-?[0-9][0-9.eE+-]*`) in `d`.
fn numbers(d: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < d.len() {
        if d[i].is_ascii_digit() {
            let start = if i > 0 && d[i - 1] == b'-' { i - 1 } else { i };
            let mut j = i;
            while j < d.len() && (d[j].is_ascii_digit() || b".eE+-".contains(&d[j])) {
                j += 1;
            }
            out.push((start, j));
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

fn replace_number(rng: &mut ChaCha8Rng, d: &mut Vec<u8>) {
    let found = numbers(d);
    let replacement = NUMBERS[rng.random_range(0..NUMBERS.len())].as_bytes();
    if found.is_empty() {
        let at = pos(rng, d.len() + 1);
        d.splice(at..at, replacement.iter().copied());
        return;
    }
    let (a, b) = found[rng.random_range(0..found.len())];
    d.splice(a..b, replacement.iter().copied());
}

/// Line spans, newline included.
fn lines(d: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &b) in d.iter().enumerate() {
        if b == b'\n' {
            out.push((start, i + 1));
            start = i + 1;
        }
    }
    if start < d.len() {
        out.push((start, d.len()));
    }
    out
}

fn duplicate_line(rng: &mut ChaCha8Rng, d: &mut Vec<u8>) {
    let ls = lines(d);
    if ls.is_empty() {
        return;
    }
    let (a, b) = ls[rng.random_range(0..ls.len())];
    let mut line = d[a..b].to_vec();
    if !line.ends_with(b"\n") {
        line.push(b'\n');
    }
    let times = if rng.random_bool(0.9) {
        1
    } else {
        rng.random_range(2..200)
    };
    let at = ls[rng.random_range(0..ls.len())].0;
    let rep: Vec<u8> = line
        .iter()
        .copied()
        .cycle()
        .take(line.len() * times)
        .collect();
    d.splice(at..at, rep);
}

fn swap_lines(rng: &mut ChaCha8Rng, d: &mut Vec<u8>) {
    let ls = lines(d);
    if ls.len() < 2 {
        return;
    }
    let mut i = rng.random_range(0..ls.len());
    let mut j = rng.random_range(0..ls.len());
    if i == j {
        return;
    }
    if i > j {
        std::mem::swap(&mut i, &mut j);
    }
    let (a0, a1) = ls[i];
    let (b0, b1) = ls[j];
    let mut out = Vec::with_capacity(d.len());
    out.extend_from_slice(&d[..a0]);
    out.extend_from_slice(&d[b0..b1]);
    out.extend_from_slice(&d[a1..b0]);
    out.extend_from_slice(&d[a0..a1]);
    out.extend_from_slice(&d[b1..]);
    *d = out;
}

fn delete_line(rng: &mut ChaCha8Rng, d: &mut Vec<u8>) {
    let ls = lines(d);
    if ls.is_empty() {
        return;
    }
    let (a, b) = ls[rng.random_range(0..ls.len())];
    d.drain(a..b);
}

fn line_from_other(rng: &mut ChaCha8Rng, d: &mut Vec<u8>, pool: &[&[u8]]) {
    let other = pool[rng.random_range(0..pool.len())];
    let ls = lines(other);
    if ls.is_empty() {
        return;
    }
    let (a, b) = ls[rng.random_range(0..ls.len())];
    let at = lines(d)
        .get(pos(rng, lines(d).len()))
        .map_or(d.len(), |l| l.0);
    d.splice(at..at, other[a..b].iter().copied());
}

fn yaml_snippet(rng: &mut ChaCha8Rng, d: &mut Vec<u8>) {
    let snippet = YAML_SNIPPETS[rng.random_range(0..YAML_SNIPPETS.len())].as_bytes();
    // After a `key: ` when there is one, so the snippet lands in value position.
    let colons: Vec<usize> = d
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w == b": ")
        .map(|(i, _)| i + 2)
        .collect();
    let at = if !colons.is_empty() && rng.random_bool(0.8) {
        colons[rng.random_range(0..colons.len())]
    } else {
        pos(rng, d.len() + 1)
    };
    d.splice(at..at, snippet.iter().copied());
}

/// Turns a value into an anchor and another into an alias of it; sometimes a whole
/// billion-laughs ladder in front.
fn yaml_alias_bomb(rng: &mut ChaCha8Rng, d: &mut Vec<u8>) {
    let colons: Vec<usize> = d
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w == b": ")
        .map(|(i, _)| i + 2)
        .collect();
    if colons.len() >= 2 && rng.random_bool(0.6) {
        let a = colons[rng.random_range(0..colons.len())];
        let b = colons[rng.random_range(0..colons.len())];
        // Alias first (later offset first, so the earlier offset stays valid).
        let (first, second) = if a < b { (a, b) } else { (b, a) };
        if first == second {
            return;
        }
        let end = d[second..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(d.len(), |p| second + p);
        d.splice(second..end, b"*fz".iter().copied());
        d.splice(first..first, b"&fz ".iter().copied());
        return;
    }
    let levels = rng.random_range(3..10);
    let mut bomb = String::from("x0: &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..levels {
        let p = i - 1;
        bomb.push_str(&format!(
            "x{i}: &x{i} [*x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}]\n"
        ));
    }
    d.splice(0..0, bomb.into_bytes());
}

fn yaml_deep_nesting(rng: &mut ChaCha8Rng, d: &mut Vec<u8>) {
    // Up to 5000: the 10^6-deep cases are generated ones (hostile.rs), replayed every run.
    let depth = [64usize, 300, 1000, 5000][rng.random_range(0..4)];
    let (open, close) = if rng.random_bool(0.5) {
        (b'[', b']')
    } else {
        (b'{', b'}')
    };
    let mut nest = vec![open; depth];
    if rng.random_bool(0.7) {
        nest.extend(std::iter::repeat_n(close, depth));
    }
    let at = d
        .windows(2)
        .position(|w| w == b": ")
        .map_or(d.len(), |p| p + 2);
    d.splice(at..at, nest);
}
