//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// The set-up's Python (`make setup` creates `.venv` with torch==2.11.0). The PyTorch reference
/// tests need it; its absence is a set-up error, not a reason to skip.
pub fn python() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        p.exists(),
        "{} not found: run `make setup` (the PyTorch reference tests need the project's venv)",
        p.display()
    );
    p
}

/// A fresh, empty directory under the target directory for one test.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(tag);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A PyTorch reference script under tests/python/.
pub fn python_script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name)
}
