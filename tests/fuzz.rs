//! The fuzz harness (`ascrepro-fuzz`, src/bin/ascrepro-fuzz/) for each reader of outside bytes,
//! a bounded number of inputs each: every regression case (fuzz/regressions/<reader>/), the
//! corpus (fuzz/corpus/<reader>/), the generated hostile cases, then seeded mutants (seed 0).
//! A test fails when any input makes its reader panic, abort, hang, pass the memory bound or
//! accept an input it must refuse. The counts are sized so the nine tests take about two minutes
//! on two cores; `ASCREPRO_FUZZ_SCALE=10` runs ten times as many mutants, `make fuzz` runs for
//! minutes per reader.
//!
//! Each test writes its reader's line (`fuzz wav: 400 inputs (...), 0 failures, 9.1 s ...`) to
//! the test process's stderr directly, so it shows in `cargo test`'s output even when it passes.

use std::io::Write;
use std::process::Command;

fn fuzz(reader: &str, iterations: u64) {
    let scale: f64 = std::env::var("ASCREPRO_FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let n = ((iterations as f64) * scale).round() as u64;
    let out = Command::new(env!("CARGO_BIN_EXE_ascrepro-fuzz"))
        .args([
            "--reader",
            reader,
            "--iterations",
            &n.to_string(),
            "--seed",
            "0",
        ])
        .output()
        .expect("run ascrepro-fuzz");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Not captured by the test harness (it captures print!/eprint!, not the stream itself).
    let _ = writeln!(std::io::stderr(), "{}", stdout.trim_end());
    assert!(
        out.status.success(),
        "the fuzz harness found failures in the `{reader}` reader (inputs saved under \
         fuzz/regressions/{reader}/):\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("fuzz {reader}: ")),
        "{stdout}\n{stderr}"
    );
    // Every corpus holds valid inputs: a reader that accepts none runs on stale fixtures and
    // exercises only its refusals.
    let accepted: u64 = stdout
        .rsplit_once(" accepted)")
        .and_then(|(head, _)| head.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no accepted count in: {stdout}"));
    assert!(
        accepted > 0,
        "the `{reader}` reader accepted none of its inputs, its corpus included: {stdout}"
    );
}

#[test]
fn fuzz_recipe() {
    fuzz("recipe", 2000);
}

#[test]
fn fuzz_wav() {
    fuzz("wav", 1000);
}

#[test]
fn fuzz_zip() {
    fuzz("zip", 50000);
}

#[test]
fn fuzz_pickle() {
    fuzz("pickle", 50000);
}

#[test]
fn fuzz_checkpoint() {
    fuzz("checkpoint", 30000);
}

#[test]
fn fuzz_safetensors() {
    fuzz("safetensors", 15000);
}

#[test]
fn fuzz_manifest() {
    fuzz("manifest", 3000);
}

#[test]
fn fuzz_sha256sums() {
    fuzz("sha256sums", 20000);
}

#[test]
fn fuzz_logits() {
    fuzz("logits", 10000);
}
