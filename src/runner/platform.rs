//! The numeric platform: pinned so the same inputs give bit-identical results, and recorded in
//! every stage hash and report.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use tch::Device;

/// Crate version plus a hash of the sources, templates and lock file (see build.rs).
pub fn code_version() -> String {
    format!(
        "{}+{}",
        env!("CARGO_PKG_VERSION"),
        env!("ASCREPRO_CODE_HASH")
    )
}

/// The CPU capability libtorch's kernels are pinned to. AVX2 is the widest level every x86-64
/// machine of the last decade has, so the same kernels (and rounding) run everywhere; set
/// ATEN_CPU_CAPABILITY yourself to choose another.
fn cpu_capability() -> String {
    if let Ok(v) = std::env::var("ATEN_CPU_CAPABILITY") {
        return v;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            return "avx2".into();
        }
    }
    "default".into()
}

static PINNED: OnceLock<BTreeMap<String, String>> = OnceLock::new();

/// Pins libtorch's thread counts and CPU capability before any tensor work, once per process,
/// and returns the platform record. Later calls return the first record (thread pools cannot
/// be resized after first use).
pub fn pin(threads: usize) -> &'static BTreeMap<String, String> {
    PINNED.get_or_init(|| {
        let capability = cpu_capability();
        // Read lazily by libtorch and oneDNN on first dispatch, so this must precede any tensor op.
        std::env::set_var("ATEN_CPU_CAPABILITY", &capability);
        if capability == "avx2" {
            std::env::set_var("ONEDNN_MAX_CPU_ISA", "AVX2");
        }
        tch::set_num_threads(threads as i32);
        tch::set_num_interop_threads(1);
        let device = device();
        let mut p = BTreeMap::new();
        p.insert("libtorch".into(), env!("ASCREPRO_LIBTORCH_VERSION").into());
        p.insert("tch".into(), "0.24.0".into());
        p.insert("threads".into(), threads.to_string());
        p.insert("cpu_capability".into(), capability);
        p.insert("arch".into(), std::env::consts::ARCH.into());
        p.insert("os".into(), std::env::consts::OS.into());
        p.insert(
            "device".into(),
            match device {
                Device::Cuda(i) => format!("cuda:{i}"),
                _ => "cpu".into(),
            },
        );
        p
    })
}

/// CUDA when libtorch sees a GPU, else the CPU.
pub fn device() -> Device {
    Device::cuda_if_available()
}
