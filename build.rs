//! Build-time facts the binary needs at run time:
//! - an rpath to libtorch's lib directory, so `target/release/ascrepro` and the test binaries run
//!   with no LD_LIBRARY_PATH;
//! - the libtorch version (for the run's platform record);
//! - a hash of the sources, templates and lock file: the "code version" the report states;
//! - each of those files' own SHA-256 (`code_files.rs`): a stage's identity hashes only the
//!   files it depends on (`runner::code`), so an edit recomputes only the stages it can change.
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let mut torch_version = "unknown".to_string();
    if let Ok(root) = std::env::var("LIBTORCH") {
        let root = PathBuf::from(root);
        println!(
            "cargo:rustc-link-arg=-Wl,-rpath,{}",
            root.join("lib").display()
        );
        if let Ok(text) = std::fs::read_to_string(root.join("version.py")) {
            if let Some(line) = text.lines().find(|l| l.starts_with("__version__")) {
                torch_version = line.split('\'').nth(1).unwrap_or("unknown").to_string();
            }
        }
    }
    println!("cargo:rustc-env=ASCREPRO_LIBTORCH_VERSION={torch_version}");

    let mut files = Vec::new();
    for dir in ["src", "crates/results/src", "templates"] {
        println!("cargo:rerun-if-changed={dir}");
        collect(Path::new(dir), &mut files);
    }
    for f in ["Cargo.lock", "build.rs"] {
        println!("cargo:rerun-if-changed={f}");
        files.push(PathBuf::from(f));
    }
    files.sort();
    let mut h = Sha256::new();
    let mut table = String::from("pub const CODE_FILES: &[(&str, &str)] = &[\n");
    for f in &files {
        if let Ok(bytes) = std::fs::read(f) {
            let name = f.to_string_lossy().replace('\\', "/");
            h.update(name.as_bytes());
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(&bytes);
            let own: String = Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            table += &format!("    ({name:?}, {own:?}),\n");
        }
    }
    table += "];\n";
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("code_files.rs"), table).expect("OUT_DIR is writable");
    let digest = h.finalize();
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    println!("cargo:rustc-env=ASCREPRO_CODE_HASH={hex}");
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else {
            out.push(p);
        }
    }
}
