//! The known hostile cases (the "Hardening" issue's list and their relatives), made by code at
//! start: some are megabytes, and code says what each one is. Each is replayed in every run; a
//! case marked `must_refuse` also fails when the reader returns a value.

use crate::readers::Reader;
use ascrepro::models::checkpoint::craft::{
    stored_zip, stored_zip_with, torch_archive, Pickle, ZipEntry,
};

pub struct Hostile {
    pub name: &'static str,
    pub bytes: Vec<u8>,
    /// The reader must return an error (a value would be silently wrong).
    pub must_refuse: bool,
}

fn case(name: &'static str, bytes: Vec<u8>, must_refuse: bool) -> Hostile {
    Hostile {
        name,
        bytes,
        must_refuse,
    }
}

pub fn cases(reader: Reader) -> Vec<Hostile> {
    match reader {
        Reader::Recipe => recipe(),
        Reader::Wav => wav(),
        Reader::Zip => vec![
            case("zip-duplicate-entries", duplicate_entries_zip(), true),
            case("zip-overlapping-entries", overlapping_zip(), false),
            case("zip-entry-size-2^64", huge_entry_zip(), true),
        ],
        Reader::Pickle => pickle(),
        Reader::Checkpoint => checkpoint(),
        Reader::Safetensors => safetensors(),
        Reader::Manifest => manifest(),
        Reader::Sha256Sums => sums(),
        Reader::Logits => logits(),
    }
}

// ---------------------------------------------------------------- pickle programs (protocol 2)

/// A tuple graph of `levels` levels, each a pair of the level below (2^levels leaves), left on
/// the stack; uses memo slot 0.
fn memo_bomb(p: &mut Pickle, levels: usize) {
    p.op(b'K').op(0);
    for _ in 0..levels {
        p.put(0).get(0).op(0x86);
    }
}

/// A list that contains itself, left on the stack (memo slot 1).
fn self_list(p: &mut Pickle) {
    p.op(b']').put(1).get(1).op(b'a');
}

/// `depth` nested one-element tuples around an int.
fn deep_tuples(depth: usize) -> Vec<u8> {
    let mut p = Pickle::new();
    p.op(b'K').op(1);
    p.repeat(0x85, depth);
    p.stop()
}

/// `depth` nested lists (EMPTY_LIST then APPEND into the one below).
fn deep_lists(depth: usize) -> Vec<u8> {
    let mut p = Pickle::new();
    p.repeat(b']', depth).repeat(b'a', depth - 1);
    p.stop()
}

/// `depth` MARKs (the mark stack) then nothing closes them.
fn deep_marks(depth: usize) -> Vec<u8> {
    let mut p = Pickle::new();
    p.repeat(b'(', depth);
    p.op(b'N');
    p.stop()
}

/// `{'state_dict': {'w': <tensor>, KEY: <tensor>}}`, KEY made by `key` (on the stack).
fn state_dict_with_key(key: impl Fn(&mut Pickle)) -> Vec<u8> {
    let mut p = Pickle::new();
    p.op(b'}').op(b'(').str("state_dict").op(b'}').op(b'(');
    p.str("w").tensor("0", 4, 0, &[2, 2], &[2, 1]);
    key(&mut p);
    p.tensor("0", 4, 0, &[4], &[1]);
    p.op(b'u').op(b'u');
    p.stop()
}

fn pickle() -> Vec<Hostile> {
    let mut two_bomb_keys = Pickle::new();
    two_bomb_keys.op(b'}').op(b'(');
    memo_bomb(&mut two_bomb_keys, 60);
    two_bomb_keys.op(b'N');
    memo_bomb(&mut two_bomb_keys, 60);
    two_bomb_keys.op(b'N').op(b'u');
    let mut self_keys = Pickle::new();
    self_keys.op(b'}').op(b'(');
    self_list(&mut self_keys);
    self_keys.op(b'N');
    self_list(&mut self_keys);
    self_keys.op(b'N').op(b'u');
    let mut self_dict = Pickle::new();
    self_dict.op(b'}').put(2).str("me").get(2).op(b's');
    let mut big_alloc = Pickle::new();
    // BINBYTES8 (protocol 4) claiming 2^62 bytes.
    big_alloc.op(0x8e).raw(&(1u64 << 62).to_le_bytes());
    let mut big_list = Pickle::new();
    // A long run of MARK+EMPTY_TUPLE*N then LIST (100k elements).
    big_list.op(b'(');
    big_list.repeat(b')', 100_000);
    big_list.op(b'l');
    vec![
        case(
            "pickle-memo-bomb-2^60",
            {
                let mut p = Pickle::new();
                memo_bomb(&mut p, 60);
                p.stop()
            },
            false,
        ),
        case("pickle-memo-bomb-dict-keys", two_bomb_keys.stop(), false),
        case(
            "pickle-self-containing-list",
            {
                let mut p = Pickle::new();
                self_list(&mut p);
                p.stop()
            },
            false,
        ),
        case("pickle-self-containing-list-keys", self_keys.stop(), false),
        case("pickle-self-containing-dict", self_dict.stop(), false),
        case("pickle-nested-tuples-10^6", deep_tuples(1_000_000), false),
        case("pickle-nested-lists-10^6", deep_lists(1_000_000), false),
        case("pickle-marks-10^6", deep_marks(1_000_000), false),
        case("pickle-binbytes8-2^62", big_alloc.stop(), true),
        case(
            "pickle-stride0-2^40-elements",
            {
                let mut p = Pickle::new();
                p.tensor("0", 1, 0, &[1 << 20, 1 << 20], &[0, 0]);
                p.stop()
            },
            false,
        ),
        case("pickle-100k-element-list", big_list.stop(), false),
    ]
}

// ---------------------------------------------------------------- zip archives

/// A torch.save archive around `pkl` with one 16-byte storage `0`.
fn torch_zip(pkl: &[u8]) -> Vec<u8> {
    torch_archive(pkl, &[0u8; 16])
}

fn duplicate_entries_zip() -> Vec<u8> {
    let good = Pickle::new().op(b'}').stop();
    let other = Pickle::new().op(b']').stop();
    let entries = [
        ZipEntry {
            name: "archive/data.pkl",
            data: &good,
        },
        ZipEntry {
            name: "archive/data.pkl",
            data: &other,
        },
    ];
    stored_zip(&entries)
}

fn overlapping_zip() -> Vec<u8> {
    let data = vec![0u8; 1 << 16];
    let entries = [ZipEntry {
        name: "archive/data/0",
        data: &data,
    }];
    let names: Vec<String> = (0..2000).map(|i| format!("archive/data/{i}")).collect();
    let central: Vec<(&str, usize)> = names.iter().map(|n| (n.as_str(), 0)).collect();
    stored_zip_with(&entries, &central, None)
}

fn huge_entry_zip() -> Vec<u8> {
    let entries = [ZipEntry {
        name: "archive/data.pkl",
        data: b"x",
    }];
    stored_zip_with(&entries, &[("archive/data.pkl", 0)], Some(u32::MAX))
}

fn checkpoint() -> Vec<Hostile> {
    let mut stride0 = Pickle::new();
    stride0
        .op(b'}')
        .op(b'(')
        .str("state_dict")
        .op(b'}')
        .op(b'(');
    stride0
        .str("mel.0.kernel")
        .tensor("0", 1, 0, &[1 << 20, 1 << 20], &[0, 0]);
    stride0.op(b'u').op(b'u');
    let stride0 = stride0.stop();
    let mut pickled: Vec<Hostile> = pickle()
        .into_iter()
        .filter(|c| c.bytes.len() < 200_000)
        .map(|c| case(c.name, torch_zip(&c.bytes), c.must_refuse))
        .collect();
    pickled.extend([
        case("checkpoint-stride0-2^20x2^20", torch_zip(&stride0), true),
        case(
            "checkpoint-self-containing-list-key",
            torch_zip(&state_dict_with_key(self_list)),
            false,
        ),
        case(
            "checkpoint-memo-bomb-key",
            torch_zip(&state_dict_with_key(|p| memo_bomb(p, 60))),
            false,
        ),
        case(
            "checkpoint-nested-tuples-10^6",
            torch_zip(&deep_tuples(1_000_000)),
            false,
        ),
        case(
            "checkpoint-duplicate-entries",
            duplicate_entries_zip(),
            true,
        ),
    ]);
    pickled
}

// ---------------------------------------------------------------- WAV

/// A PCM WAV header + data of `data_len` bytes (zeros), `declared` in the data chunk header.
fn wav_bytes(
    rate: u32,
    channels: u16,
    bits: u16,
    format: u16,
    data_len: usize,
    declared: u32,
) -> Vec<u8> {
    let block = channels.wrapping_mul(bits / 8);
    let mut out = Vec::new();
    out.extend(b"RIFF");
    out.extend((36 + data_len as u32).to_le_bytes());
    out.extend(b"WAVEfmt ");
    out.extend(16u32.to_le_bytes());
    out.extend(format.to_le_bytes());
    out.extend(channels.to_le_bytes());
    out.extend(rate.to_le_bytes());
    out.extend(rate.wrapping_mul(u32::from(block)).to_le_bytes());
    out.extend(block.to_le_bytes());
    out.extend(bits.to_le_bytes());
    out.extend(b"data");
    out.extend(declared.to_le_bytes());
    // A quiet ramp, so resampling has something to do.
    out.extend((0..data_len).map(|i| (i % 7) as u8));
    out
}

fn wav() -> Vec<Hostile> {
    vec![
        // 8000 16-bit samples at 1 Hz: 2.2 hours of audio, 256M samples at 32 kHz.
        case("wav-1hz-long", wav_bytes(1, 1, 16, 1, 16_000, 16_000), true),
        case("wav-3hz-short", wav_bytes(3, 1, 16, 1, 200, 200), false),
        case(
            "wav-rate-44101",
            wav_bytes(44_101, 1, 16, 1, 2000, 2000),
            false,
        ),
        case(
            "wav-rate-4294967295",
            wav_bytes(u32::MAX, 1, 16, 1, 2000, 2000),
            false,
        ),
        case("wav-rate-0", wav_bytes(0, 1, 16, 1, 2000, 2000), true),
        case(
            "wav-data-claims-4GiB",
            wav_bytes(44_100, 1, 16, 1, 2000, u32::MAX),
            false,
        ),
        case(
            "wav-65535-channels",
            wav_bytes(44_100, 65_535, 16, 1, 4000, 4000),
            false,
        ),
        case("wav-0-bits", wav_bytes(44_100, 1, 0, 1, 2000, 2000), true),
        case("wav-float64", wav_bytes(44_100, 1, 64, 3, 2000, 2000), true),
        case(
            "wav-extensible-empty",
            {
                let mut w = wav_bytes(44_100, 1, 16, 0xfffe, 0, 0);
                w.truncate(44);
                w
            },
            true,
        ),
    ]
}

// ---------------------------------------------------------------- YAML and text

const TINY_RECIPE: &str = include_str!("../../../tests/fixtures/tiny.yaml");

fn laughs(levels: usize, width: usize) -> String {
    let lols = vec!["lol"; width].join(", ");
    let mut s = format!("a0: &a0 [{lols}]\n");
    for i in 1..levels {
        let refs = vec![format!("*a{}", i - 1); width].join(", ");
        s.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    s
}

fn recipe() -> Vec<Hostile> {
    let bomb = laughs(10, 10);
    let nested_in_field = TINY_RECIPE.replacen(
        "seed: 7",
        &format!("seed: 7\nx-bomb: {}", "[".repeat(1_000_000)),
        1,
    );
    vec![
        case(
            "recipe-lr-inf",
            TINY_RECIPE
                .replacen("lr: 0.005", "lr: .inf", 1)
                .into_bytes(),
            true,
        ),
        case(
            "recipe-lr-nan",
            TINY_RECIPE
                .replacen("lr: 0.005", "lr: .nan", 1)
                .into_bytes(),
            true,
        ),
        case(
            "recipe-lr-negative",
            TINY_RECIPE.replacen("lr: 0.005", "lr: -1", 1).into_bytes(),
            true,
        ),
        case(
            "recipe-epochs-huge",
            TINY_RECIPE
                .replacen("epochs: 2", "epochs: 18446744073709551615", 1)
                .into_bytes(),
            true,
        ),
        case(
            "recipe-batch-size-0",
            TINY_RECIPE
                .replacen("batch_size: 16", "batch_size: 0", 1)
                .into_bytes(),
            true,
        ),
        case(
            "recipe-tolerance-inf",
            TINY_RECIPE
                .replacen("tolerance: 1.0", "tolerance: .inf", 1)
                .into_bytes(),
            true,
        ),
        case(
            "recipe-width-huge",
            TINY_RECIPE
                .replacen("width: 4", "width: 1000000000", 1)
                .into_bytes(),
            true,
        ),
        case("recipe-billion-laughs-top", bomb.clone().into_bytes(), true),
        case(
            "recipe-billion-laughs-in-field",
            format!(
                "{bomb}{}",
                TINY_RECIPE.replacen("citation: \"Test fixture.\"", "citation: *a9", 1)
            )
            .into_bytes(),
            true,
        ),
        case(
            "recipe-nested-10^6",
            "[".repeat(1_000_000).into_bytes(),
            true,
        ),
        case(
            "recipe-nested-10^6-in-field",
            nested_in_field.into_bytes(),
            true,
        ),
        case(
            "recipe-nested-maps-10^5",
            "a: ".repeat(100_000).into_bytes(),
            true,
        ),
    ]
}

fn manifest() -> Vec<Hostile> {
    let hash = "0".repeat(64);
    let files = |size: &str| {
        format!(
            "dataset: d\nlayout: l\nfiles:\n- path: a\n  size: {size}\n  sha256: {hash}\n- path: b\n  size: {size}\n  sha256: {hash}\n"
        )
    };
    vec![
        case("manifest-billion-laughs", format!("{}dataset: d\nlayout: l\nfiles: *a9\n", laughs(10, 10)).into_bytes(), true),
        case("manifest-nested-10^6", format!("dataset: {}", "[".repeat(1_000_000)).into_bytes(), true),
        case("manifest-total-size-wraps", format!("{}total_size: 0\n", files("9223372036854775808")).into_bytes(), true),
        case("manifest-summary-count-huge", format!("dataset: d\nlayout: l\nfile_count: 18446744073709551615\nlist_hash: {hash}\n").into_bytes(), true),
        case("manifest-path-escapes", format!("dataset: d\nlayout: l\nfiles:\n- path: ../../../../etc/passwd\n  size: 1\n  sha256: {hash}\n").into_bytes(), true),
        case("manifest-path-absolute", format!("dataset: d\nlayout: l\nfiles:\n- path: /etc/passwd\n  size: 1\n  sha256: {hash}\n").into_bytes(), true),
        case("manifest-path-dev-zero", format!("dataset: d\nlayout: l\nfiles:\n- path: audio/../../../../dev/zero\n  size: 1\n  sha256: {hash}\n").into_bytes(), true),
    ]
}

fn sums() -> Vec<Hostile> {
    let h = "0".repeat(64);
    vec![
        case(
            "sums-path-escapes",
            format!("{h}  ../../../../etc/passwd\n").into_bytes(),
            true,
        ),
        case(
            "sums-absolute",
            format!("{h}  /dev/zero\n").into_bytes(),
            true,
        ),
        case("sums-dir", format!("{h}  results\n").into_bytes(), true),
        case(
            "sums-100k-lines",
            format!("{h}  index.html\n").repeat(100_000).into_bytes(),
            true,
        ),
        case(
            "sums-1MB-line",
            format!("{h}  {}\n", "a".repeat(1 << 20)).into_bytes(),
            true,
        ),
        case(
            "sums-nul",
            format!("{h}  index.html\0x\n").into_bytes(),
            true,
        ),
    ]
}

fn logits() -> Vec<Hostile> {
    let header = "filename,airport,bus,metro,metro_station,park,public_square,shopping_mall,street_pedestrian,street_traffic,tram\n";
    let row = |name: &str, v: &str| format!("{name},{}\n", [v; 10].join(","));
    vec![
        case(
            "logits-overflow-to-inf",
            format!(
                "{header}{}",
                row("audio/airport-lisbon-1000-40000-a.wav", "1e39")
            )
            .into_bytes(),
            true,
        ),
        case(
            "logits-nan",
            format!(
                "{header}{}",
                row("audio/airport-lisbon-1000-40000-a.wav", "NaN")
            )
            .into_bytes(),
            true,
        ),
        case(
            "logits-ambiguous-base",
            format!("{header}{}", row("park-paris-1002-40002-s1.wav", "1")).into_bytes(),
            true,
        ),
        case(
            "logits-200k-rows",
            format!("{header}{}", row("x.wav", "1").repeat(200_000)).into_bytes(),
            true,
        ),
        case(
            "logits-parquet-footer-huge",
            {
                let mut p = b"PAR1".to_vec();
                p.extend([0u8; 16]);
                p.extend(u32::MAX.to_le_bytes());
                p.extend(b"PAR1");
                p
            },
            true,
        ),
    ]
}

fn safetensors() -> Vec<Hostile> {
    let st = |header: &str, data: &[u8]| {
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend(header.as_bytes());
        out.extend(data);
        out
    };
    let config = |width: i64| {
        let cfg =
            ascrepro::models::ModelConfig::Tfsepnet23(ascrepro::models::tfsepnet23::Config::new(
                width,
                ascrepro::models::blocks::NormKind::AdaResNorm,
            ));
        serde_json::to_string(&serde_json::to_string(&cfg).unwrap()).unwrap()
    };
    vec![
        case(
            "safetensors-header-len-2^63",
            {
                let mut v = (1u64 << 63).to_le_bytes().to_vec();
                v.extend(b"{}");
                v
            },
            true,
        ),
        case(
            "safetensors-shape-2^32x2^32",
            st(
                r#"{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}"#,
                &[0; 4],
            ),
            true,
        ),
        case(
            "safetensors-width-10^6",
            st(
                &format!(
                    r#"{{"__metadata__":{{"ascrepro.model":{}}}}}"#,
                    config(1_000_000)
                ),
                &[],
            ),
            true,
        ),
        case(
            "safetensors-width-2^40",
            st(
                &format!(
                    r#"{{"__metadata__":{{"ascrepro.model":{}}}}}"#,
                    config(1 << 40)
                ),
                &[],
            ),
            true,
        ),
        case(
            "safetensors-width-negative",
            st(
                &format!(r#"{{"__metadata__":{{"ascrepro.model":{}}}}}"#, config(-8)),
                &[],
            ),
            true,
        ),
        case(
            "safetensors-nested-json",
            st(&format!("{{\"a\":{}", "[".repeat(100_000)), &[]),
            true,
        ),
    ]
}
