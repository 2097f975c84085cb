//! The numeric platform: pinned so the same inputs give bit-identical results, and recorded in
//! every stage hash and report.

use crate::error::{Error, Result};
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

/// Where tensors live: `--device`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum DeviceChoice {
    /// The GPU when one is visible (through the NVIDIA driver), else the CPU.
    Auto,
    Cpu,
    /// The GPU; refused where none is visible.
    Cuda,
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

struct Pinned {
    record: BTreeMap<String, String>,
    device: Device,
}

static PINNED: OnceLock<Pinned> = OnceLock::new();

/// Pins libtorch's thread counts, CPU capability and device before any tensor work, once per
/// process, and returns the platform record. Later calls return the first record (thread pools
/// cannot be resized after first use, nor libtorch's CUDA backend unloaded).
///
/// `computes`: whether this process computes numeric stages. One that only plans, submits jobs
/// or writes a report from the cache (a cluster's login node) records `--device cuda` without
/// a GPU of its own; the jobs that compute check theirs.
pub fn pin(
    threads: usize,
    choice: DeviceChoice,
    computes: bool,
) -> Result<&'static BTreeMap<String, String>> {
    // One pinning per process, also when threads (tests) ask at once: libtorch refuses a
    // second thread-pool set-up.
    static PINNING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = PINNING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = PINNED.get() {
        return Ok(&p.record);
    }
    let capability = cpu_capability();
    // Read lazily by libtorch and oneDNN on first dispatch, so this must precede any tensor op.
    std::env::set_var("ATEN_CPU_CAPABILITY", &capability);
    if capability == "avx2" {
        std::env::set_var("ONEDNN_MAX_CPU_ISA", "AVX2");
    }
    let (device, name) = match choice {
        DeviceChoice::Cuda if !computes => (Device::Cpu, "cuda".to_string()),
        _ => {
            let d = resolve(choice)?;
            (d, device_name(d))
        }
    };
    if device.is_cuda() {
        // cuBLAS is deterministic only with a fixed workspace; set before its first handle.
        if std::env::var_os("CUBLAS_WORKSPACE_CONFIG").is_none() {
            std::env::set_var("CUBLAS_WORKSPACE_CONFIG", ":4096:8");
        }
        cuda::deterministic()?;
    }
    tch::set_num_threads(threads as i32);
    tch::set_num_interop_threads(1);
    let mut p = BTreeMap::new();
    p.insert("libtorch".into(), env!("ASCREPRO_LIBTORCH_VERSION").into());
    p.insert("tch".into(), "0.24.0".into());
    p.insert("threads".into(), threads.to_string());
    p.insert("cpu_capability".into(), capability);
    p.insert("arch".into(), std::env::consts::ARCH.into());
    p.insert("os".into(), std::env::consts::OS.into());
    p.insert("device".into(), name);
    let pinned = PINNED.get_or_init(|| Pinned { record: p, device });
    Ok(&pinned.record)
}

/// The device pinned by [`pin`] (the CPU before it is called).
pub fn device() -> Device {
    PINNED.get().map_or(Device::Cpu, |p| p.device)
}

/// How the platform record names a device.
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cuda(_) => "cuda".into(),
        _ => "cpu".into(),
    }
}

fn resolve(choice: DeviceChoice) -> Result<Device> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto if !cuda::driver_present() => Ok(Device::Cpu),
        DeviceChoice::Auto => Ok(cuda::load()
            .ok()
            .filter(|_| tch::Cuda::is_available())
            .map_or(Device::Cpu, |_| Device::Cuda(0))),
        DeviceChoice::Cuda => {
            let why = match cuda::load() {
                Err(e) => e,
                Ok(()) if tch::Cuda::is_available() => return Ok(Device::Cuda(0)),
                Ok(()) => format!(
                    "libtorch's CUDA backend loaded but sees no GPU (CUDA_VISIBLE_DEVICES={})",
                    std::env::var("CUDA_VISIBLE_DEVICES").unwrap_or_else(|_| "unset".into())
                ),
            };
            Err(Error::msg(format!(
                "--device cuda: {why}. Run with --device cpu (or auto), or on a machine (a \
                 Slurm job whose resources ask for a GPU) where the GPU is visible."
            )))
        }
    }
}

/// libtorch's CUDA backend, loaded only when a GPU may be used: the binary links the CPU
/// library alone, so a machine without a GPU never maps the gigabyte of CUDA libraries.
mod cuda {
    use std::ffi::CString;

    fn dlopen(path: &str) -> Result<(), String> {
        let c = CString::new(path).map_err(|e| e.to_string())?;
        // SAFETY: `c` is a valid NUL-terminated string; the handle is kept for the process's
        // life (libtorch registers its CUDA hooks in the library's static initialisers).
        let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
        if handle.is_null() {
            // SAFETY: dlerror returns a NUL-terminated string or null, read before any other
            // dl call on this thread.
            let msg = unsafe { libc::dlerror() };
            let text = if msg.is_null() {
                "unknown error".to_string()
            } else {
                unsafe { std::ffi::CStr::from_ptr(msg) }
                    .to_string_lossy()
                    .into_owned()
            };
            return Err(format!("cannot load {path}: {text}"));
        }
        Ok(())
    }

    /// Whether the NVIDIA driver's library is installed (checked without touching libtorch).
    pub fn driver_present() -> bool {
        dlopen("libcuda.so.1").is_ok()
    }

    /// Where libtorch has deterministic CUDA kernels, they are used (`warn_only`: the rest
    /// warn once rather than fail), and cuDNN neither benchmarks nor picks nondeterministic
    /// algorithms: `torch.use_deterministic_algorithms(True, warn_only=True)` and
    /// `cudnn.deterministic = True`, which tch does not expose, called through libtorch's C++
    /// symbols.
    pub fn deterministic() -> crate::error::Result<()> {
        type Global = unsafe extern "C" fn() -> *mut std::ffi::c_void;
        type SetBool = unsafe extern "C" fn(*mut std::ffi::c_void, bool);
        type SetTwo = unsafe extern "C" fn(*mut std::ffi::c_void, bool, bool);
        fn symbol(name: &str) -> crate::error::Result<*mut std::ffi::c_void> {
            let c = CString::new(name).expect("static name");
            // SAFETY: looks a symbol up in the libraries already loaded.
            let f = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c.as_ptr()) };
            if f.is_null() {
                return Err(crate::error::Error::msg(format!(
                    "libtorch lacks {name}: deterministic CUDA execution cannot be set up"
                )));
            }
            Ok(f)
        }
        // SAFETY: the signatures are those of at::globalContext() and at::Context's setters
        // in libtorch 2.11 (Itanium ABI: `this` first); the context lives for the process.
        unsafe {
            let global: Global = std::mem::transmute(symbol("_ZN2at13globalContextEv")?);
            let ctx = global();
            let algorithms: SetTwo =
                std::mem::transmute(symbol("_ZN2at7Context26setDeterministicAlgorithmsEbb")?);
            algorithms(ctx, true, true);
            let cudnn: SetBool =
                std::mem::transmute(symbol("_ZN2at7Context21setDeterministicCuDNNEb")?);
            cudnn(ctx, true);
            let benchmark: SetBool =
                std::mem::transmute(symbol("_ZN2at7Context17setBenchmarkCuDNNEb")?);
            benchmark(ctx, false);
        }
        Ok(())
    }

    /// Loads `libtorch_cuda.so` from the directory this process loaded libtorch from.
    pub fn load() -> Result<(), String> {
        let maps = std::fs::read_to_string("/proc/self/maps").map_err(|e| e.to_string())?;
        let cpu = maps
            .lines()
            .filter_map(|l| l.split_whitespace().nth(5))
            .find(|p| p.ends_with("/libtorch_cpu.so"))
            .ok_or("libtorch_cpu.so is not mapped in this process")?;
        let dir = std::path::Path::new(cpu)
            .parent()
            .ok_or("libtorch_cpu.so has no directory")?;
        let lib = dir.join("libtorch_cuda.so");
        if !lib.exists() {
            return Err(format!(
                "{} is missing: this libtorch is a CPU-only build (install PyPI's torch==2.11.0 \
                 for Linux, which carries CUDA)",
                lib.display()
            ));
        }
        dlopen(&lib.to_string_lossy())
    }
}
