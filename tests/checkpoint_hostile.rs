//! Hostile checkpoints handed to `predict --weights`: files of a few bytes to 2 MB crafted to
//! blow up memory (values shared exponentially through the pickle memo, broadcast tensors
//! claiming terabytes), the stack (a million nested containers, a list holding itself) or to be
//! ambiguous (a zip entry named twice, a safetensors tensor named twice). Each is refused with a
//! clear error naming the file, quickly and without a large allocation, or, when the bad part is
//! never used, read without touching it. The allocation and stack cases run the binary under a
//! memory limit and a time bound, so a regression is a failed assertion, not a dead test runner.

use ascrepro::models::blocks::{NormKind, Vb};
use ascrepro::models::checkpoint;
use ascrepro::models::checkpoint::craft::{
    stored_zip, stored_zip_with, torch_archive, Pickle, ZipEntry,
};
use ascrepro::models::{build_net, load_net, save_weights, tfsepnet23, ModelConfig};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tch::{nn, Device};

mod common;
use common::{temp_dir, PREDICT_TFSEPNET23_C8};

/// A torch.save archive of `pickle` with float storage `0` holding `storage`.
fn checkpoint_bytes(pickle: &[u8], storage: &[f32]) -> Vec<u8> {
    let data: Vec<u8> = storage.iter().flat_map(|v| v.to_le_bytes()).collect();
    torch_archive(pickle, &data)
}

fn entry<'a>(name: &'a str, data: &'a [u8]) -> ZipEntry<'a> {
    ZipEntry { name, data }
}

// ---------------------------------------------------------------------------------------------
// Running `predict` under a memory limit and a time bound.

/// Address-space limit of the child: libtorch's own start-up fits well inside, terabyte or
/// exponential allocations do not.
const MEMORY_LIMIT: u64 = 4_000_000_000;
const TIME_LIMIT: Duration = Duration::from_secs(60);

fn c8() -> ModelConfig {
    ModelConfig::Tfsepnet23(tfsepnet23::Config::new(8, NormKind::AdaResNorm))
}

/// The exit of `predict` (tfsepnet23, width 8) on `weights` and `wav`, with its stderr.
fn predict(dir: &Path, weights: &Path, wav: &str) -> (std::process::ExitStatus, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ascrepro"));
    cmd.current_dir(dir)
        .args(PREDICT_TFSEPNET23_C8)
        .args(["--weights", weights.to_str().unwrap(), wav])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: MEMORY_LIMIT,
                rlim_max: MEMORY_LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn ascrepro");
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("predict on {} ran past {TIME_LIMIT:?}", weights.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, reader.join().unwrap())
}

/// `predict` on `bytes` (written to `dir/name`) must fail cleanly: a non-zero exit code (not a
/// signal), an `error:` naming the file, no panic. Returns stderr.
fn refused(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let (status, stderr) = predict(dir, &path, "absent.wav");
    assert!(
        status.code().is_some_and(|c| c != 0),
        "{name}: expected a clean failure, got {status:?}:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{name}: panic:\n{stderr}");
    assert!(
        stderr.contains("error: ") && stderr.contains(name),
        "{name}: the error does not name the file:\n{stderr}"
    );
    stderr
}

fn dir(tag: &str) -> PathBuf {
    temp_dir(&format!("hostile_{tag}"))
}

/// Memoizes `t0 = ()`, then `t(k+1) = (tk, tk)`, `levels` times, and pushes the last: its
/// logical tree has 2^levels leaves, in a dozen bytes per level.
fn doubling_tuples(p: &mut Pickle, levels: u32) {
    p.op(b')').memoize().op(b'0');
    for k in 0..levels {
        p.long_get(k).long_get(k).op(0x86).memoize().op(b'0');
    }
    p.long_get(levels);
}

// ---------------------------------------------------------------------------------------------

#[test]
fn a_tuple_shared_exponentially_through_the_memo_is_refused_at_its_opcode() {
    let d = dir("memo_bomb");
    // As a state-dict key, beside a real tensor.
    let mut p = Pickle::new();
    p.op(b'}').mark();
    doubling_tuples(&mut p, 60);
    p.tensor("0", 1, 0, &[1], &[1]).op(b'u');
    let e = refused(&d, "key.ckpt", &checkpoint_bytes(&p.stop(), &[1.0]));
    assert!(
        e.contains("shares through the memo") && e.contains("at offset"),
        "{e}"
    );
    // As the kind of a persistent id.
    let mut p = Pickle::new();
    p.mark();
    doubling_tuples(&mut p, 60);
    p.str("x").str("0").str("cpu").int(1).raw(b"tQ");
    let e = refused(&d, "pid.ckpt", &checkpoint_bytes(&p.stop(), &[1.0]));
    assert!(e.contains("at offset"), "{e}");
}

#[test]
fn a_list_holding_itself_or_a_million_levels_of_nesting_is_an_error_not_a_stack_overflow() {
    let d = dir("deep");
    // A list appended to itself, used as a state-dict key and as a persistent id's kind.
    let mut p = Pickle::new();
    p.op(b'}').op(b']').memoize().get(0).op(b'a');
    p.tensor("0", 1, 0, &[1], &[1]).op(b's');
    let e = refused(&d, "self_key.ckpt", &checkpoint_bytes(&p.stop(), &[1.0]));
    assert!(e.contains("does not fit"), "{e}");
    let mut p = Pickle::new();
    p.op(b']').memoize().get(0).op(b'a');
    p.mark()
        .get(0)
        .str("x")
        .str("0")
        .str("cpu")
        .int(1)
        .raw(b"tQ");
    let e = refused(&d, "self_pid.ckpt", &checkpoint_bytes(&p.stop(), &[1.0]));
    assert!(e.contains("unknown persistent id kind [["), "{e}");
    // A million nested one-tuples (one byte each) and a million nested lists.
    let mut p = Pickle::new();
    p.op(b')');
    p.repeat(0x85, 1_000_000);
    let e = refused(&d, "nested.ckpt", &checkpoint_bytes(&p.stop(), &[1.0]));
    assert!(
        e.contains("nested more than 1000 deep") && e.contains("at offset 1002"),
        "{e}"
    );
    let mut p = Pickle::new();
    for _ in 0..1_000_000 {
        p.op(b'(');
    }
    p.op(b']');
    p.repeat(b'l', 1_000_000);
    let e = refused(
        &d,
        "nested_lists.ckpt",
        &checkpoint_bytes(&p.stop(), &[1.0]),
    );
    assert!(e.contains("nested more than 1000 deep"), "{e}");
}

/// The model's variables as stride-0 views of element 0 (0.01) of a two-element storage,
/// plus `extra` entries written by the closure.
fn model_pickle(extra: impl Fn(&mut Pickle)) -> Vec<u8> {
    let vs = nn::VarStore::new(Device::Cpu);
    let _net = build_net(&Vb::constant(&vs.root()), &c8()).unwrap();
    let mut vars: Vec<(String, Vec<i64>)> = vs
        .variables()
        .into_iter()
        .map(|(n, t)| (n, t.size()))
        .collect();
    vars.sort();
    let mut p = Pickle::new();
    p.op(b'}').mark();
    for (name, shape) in &vars {
        p.str(&format!("model.{name}"))
            .tensor("0", 2, 0, shape, &vec![0; shape.len()]);
    }
    extra(&mut p);
    p.op(b'u');
    p.stop()
}

#[test]
fn broadcast_tensors_claiming_terabytes_are_never_materialised_unless_used_then_refused() {
    let d = dir("broadcast");
    let wav = d.join("a.wav");
    let clip: Vec<f32> = (0..16000).map(|i| (i as f32 * 0.05).sin() * 0.2).collect();
    ascrepro::audio::wav::write_wav_24(&wav, &clip, 32000).unwrap();
    // A teacher's weights (outside the model, unused): 2^40 and 2^62 elements of 8 bytes.
    let teacher = model_pickle(|p| {
        p.str("teacher.w")
            .tensor("0", 2, 1, &[1 << 20, 1 << 20], &[0, 0]);
        p.str("teacher.v")
            .tensor("0", 2, 1, &[1 << 31, 1 << 31], &[0, 0]);
    });
    let path = d.join("teacher.ckpt");
    std::fs::write(&path, checkpoint_bytes(&teacher, &[0.01, 1.0])).unwrap();
    let (status, stderr) = predict(&d, &path, "a.wav");
    assert!(status.success(), "{status:?}:\n{stderr}");
    assert!(
        stderr.contains("set aside 2 tensors") && stderr.contains("`teacher.w` [1048576, 1048576]"),
        "{stderr}"
    );
    // The front end's resampling kernel is read, so a broadcast one is refused by name.
    let kernel = model_pickle(|p| {
        p.str("mel.0.kernel")
            .tensor("0", 2, 1, &[1 << 20, 1, 1 << 20], &[0, 0, 0]);
    });
    let e = refused(&d, "kernel.ckpt", &checkpoint_bytes(&kernel, &[0.01, 1.0]));
    assert!(
        e.contains("`mel.0.kernel`") && e.contains("claims more elements than its storage"),
        "{e}"
    );
}

#[test]
fn zip_entries_named_twice_or_out_of_place_are_refused() {
    let pickle = Pickle::new().op(b'}').stop();
    let read = |bytes: Vec<u8>| {
        checkpoint::read_bytes(Path::new("z.ckpt"), bytes)
            .unwrap_err()
            .to_string()
    };
    let base = [
        entry("archive/data.pkl", &pickle),
        entry("archive/version", b"3\n"),
    ];
    assert!(checkpoint::read_bytes(Path::new("z.ckpt"), stored_zip(&base)).is_ok());
    // The same name twice (two pickles: which one is the checkpoint?).
    let e = read(stored_zip(&[
        entry("archive/data.pkl", &pickle),
        entry("archive/data.pkl", b"\x80\x02]."),
    ]));
    assert!(
        e.contains("z.ckpt") && e.contains("`archive/data.pkl` appears twice"),
        "{e}"
    );
    // A local header that names another entry.
    let e = read(stored_zip_with(
        &[
            entry("archive/data.pkl", &pickle),
            entry("archive/versioN", b"3\n"),
        ],
        &[("archive/data.pkl", 0), ("archive/version", 1)],
        None,
    ));
    assert!(
        e.contains("called `archive/versioN` in its local header"),
        "{e}"
    );
    // An entry (unused) whose data runs past the end of the file, and one whose stored sizes
    // disagree.
    let mut bytes = stored_zip(&base);
    let cd = bytes.len() - 22 - (46 + 16) - (46 + 15);
    let version_cd = cd + 46 + 16;
    bytes[version_cd + 20..version_cd + 24].copy_from_slice(&1_000_000u32.to_le_bytes());
    bytes[version_cd + 24..version_cd + 28].copy_from_slice(&1_000_000u32.to_le_bytes());
    let e = read(bytes.clone());
    assert!(
        e.contains("`archive/version`") && e.contains("runs past"),
        "{e}"
    );
    bytes[version_cd + 20..version_cd + 24].copy_from_slice(&2u32.to_le_bytes());
    let e = read(bytes);
    assert!(e.contains("compressed size 2 but size 1000000"), "{e}");
}

#[test]
fn safetensors_weights_naming_a_tensor_twice_are_refused() {
    let d = dir("safetensors");
    let vs = nn::VarStore::new(Device::Cpu);
    let _net = build_net(&Vb::constant(&vs.root()), &c8()).unwrap();
    let path = d.join("w.safetensors");
    save_weights(&vs, &c8(), &path).unwrap();
    assert!(load_net(&path, Device::Cpu).is_ok());
    let bytes = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    // Every entry, then the first tensor's again, verbatim: the crate keeps one, reads the file.
    let entry = |(k, v): (&String, &serde_json::Value)| {
        format!("{}:{v}", serde_json::Value::from(k.as_str()))
    };
    let mut entries: Vec<String> = header.iter().map(entry).collect();
    let tensor = header.iter().find(|(k, _)| *k != "__metadata__").unwrap();
    entries.push(entry(tensor));
    let dup = format!("{{{}}}", entries.join(","));
    let mut twice = (dup.len() as u64).to_le_bytes().to_vec();
    twice.extend(dup.as_bytes());
    twice.extend(&bytes[8 + n..]);
    let bad = d.join("twice.safetensors");
    std::fs::write(&bad, twice).unwrap();
    let e = load_net(&bad, Device::Cpu).unwrap_err().to_string();
    assert!(
        e.contains("twice.safetensors") && e.contains("named twice"),
        "{e}"
    );
    // What the crate already refuses, named by file: a header length beyond the file, a
    // tensor whose bytes do not match its shape.
    let mut long = bytes.clone();
    long[..8].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
    let f = d.join("long.safetensors");
    std::fs::write(&f, long).unwrap();
    let e = load_net(&f, Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("long.safetensors"), "{e}");
    let f = d.join("short.safetensors");
    std::fs::write(&f, &bytes[..bytes.len() - 4]).unwrap();
    let e = load_net(&f, Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("short.safetensors"), "{e}");
}
