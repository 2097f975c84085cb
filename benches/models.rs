//! Model throughput against PyTorch, one thread each, measured in the same run (`make bench`).
//! Prints
//!
//! ```text
//! BENCH train-step-tfsepnet64 ours=<samples/s> peer=<samples/s> ratio=<ours/peer>
//! BENCH infer-tfsepnet64 ours=<clips/s> peer=<clips/s> ratio=<ours/peer>
//! BENCH infer-int8-tfsepnet64 ours=<clips/s> peer=<clips/s> ratio=<ours/peer>
//! BENCH infer-int8-vs-fp32 ours=<clips/s> peer=<clips/s> ratio=<ours/peer>
//! ```
//!
//! * `train-step-tfsepnet64`: one full training step of TF-SepNet-64 (depth 17, dropout 0.1) at
//!   batch 32 on 1x512x64 input: train-mode forward, cross-entropy, backward, Adam step. Ours:
//!   the project's model, `train::loss::cross_entropy_per_sample` and `train::Adam`, as
//!   `train::fit` runs them. Peer: the same network in PyTorch (`tests/python/tfsepnet64.py`),
//!   `F.cross_entropy` and `torch.optim.Adam`, run by the project's venv Python
//!   (`tests/python/bench_tfsepnet64.py`).
//! * `infer-tfsepnet64`: batch-1 eval-mode forward without autograd.
//! * `infer-int8-tfsepnet64`: batch-1 INT8 inference. Ours: the model quantized by
//!   `compress::ptq` (histogram observer, calibrated on 32 random clips) run on the integer
//!   engine. Peer: PyTorch's eager-mode quantized TF-SepNet-64 on fbgemm
//!   (`tests/python/quantized_tfsepnet.py --bench int8`, same calibration).
//! * `infer-int8-vs-fp32`: the same integer engine against our own fp32 path (the tch forward of
//!   `infer-tfsepnet64`), both in this process.
//!
//! Both sides run on one thread (`tch::set_num_threads(1)`, `torch.set_num_threads(1)` and
//! OMP_NUM_THREADS=1). Warm-up iterations are not timed. Time is each process's CPU time
//! (`CLOCK_PROCESS_CPUTIME_ID`, Python's `time.process_time`): on a shared machine wall time
//! measures the other processes' load. Our rounds and the peer's alternate (the peer is a
//! process answering one round at a time), and each side's rate is its best round, so a burst
//! of load (cache and memory-bandwidth contention) neither decides the result nor favours one
//! side.

use ascrepro::compress::int8::{AtenCapability, Isa};
use ascrepro::compress::ptq::{quantize_int8, PtqConfig};
use ascrepro::models::{build, tfsepnet64, AscModel, ModelConfig};
use ascrepro::train::loss::cross_entropy_per_sample;
use ascrepro::train::{Adam, WeightDecay};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;
use tch::{nn, Device, Kind, Tensor};

const BATCH: i64 = 32;
const INPUT: [i64; 3] = [1, 512, 64];

struct Plan {
    warmup: usize,
    round: Duration,
    rounds: usize,
}

/// A training step takes seconds on one core: few rounds keep the whole bench near a minute.
const TRAIN: Plan = Plan {
    warmup: 2,
    round: Duration::from_secs(4),
    rounds: 3,
};
const INFER: Plan = Plan {
    warmup: 10,
    round: Duration::from_secs(2),
    rounds: 3,
};

/// CPU time this process has used. Rates are per CPU second: the machine is shared (2 cores,
/// parallel builds), and wall time would mostly measure the other processes' load.
fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant libc defines.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        fail("clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed".to_string());
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn fail(msg: String) -> ! {
    eprintln!("benches/models: {msg}");
    std::process::exit(1);
}

fn venv_python() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    if !p.exists() {
        fail(format!(
            "{} not found; the PyTorch peer needs the project's venv: run `make setup`",
            p.display()
        ));
    }
    p
}

/// The PyTorch side (`tests/python/bench_tfsepnet64.py`), a process answering one command at a
/// time so its rounds interleave with ours.
struct Peer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Peer {
    /// `tests/python/<script>` with `args`.
    fn start(python: &Path, script: &str, args: &[&str]) -> Peer {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/python")
            .join(script);
        let mut child = Command::new(python)
            .arg(&script)
            .args(args)
            .env("OMP_NUM_THREADS", "1")
            .env("MKL_NUM_THREADS", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| fail(format!("cannot run {}: {e}", python.display())));
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Peer {
            child,
            stdin,
            stdout,
        }
    }

    fn ask(&mut self, command: &str) -> String {
        let mut answer = String::new();
        let ok = writeln!(self.stdin, "{command}").is_ok()
            && self.stdin.flush().is_ok()
            && self
                .stdout
                .read_line(&mut answer)
                .map(|n| n > 0)
                .unwrap_or(false);
        if !ok {
            fail(format!(
                "the PyTorch peer ended while answering `{command}` (its error is above)"
            ));
        }
        answer
    }

    fn warmup(&mut self, n: usize) {
        self.ask(&format!("warmup {n}"));
    }

    fn round(&mut self, round: Duration) -> f64 {
        let answer = self.ask(&format!("round {}", round.as_secs_f64()));
        let v: serde_json::Value = serde_json::from_str(&answer)
            .unwrap_or_else(|e| fail(format!("unreadable peer answer `{answer}`: {e}")));
        if v["threads"].as_i64() != Some(1) {
            fail(format!("the peer must run on one thread: {answer}"));
        }
        v["rate"]
            .as_f64()
            .unwrap_or_else(|| fail(format!("no rate in `{answer}`")))
    }

    fn finish(mut self) {
        drop(self.stdin);
        let _ = self.child.wait();
    }
}

/// Items per CPU second, ours and the peer's: both warm up untimed, then rounds alternate
/// between them (each repeats its work for at least the round's CPU time, and at least once);
/// each side's rate is its best round.
fn measure(items: i64, plan: &Plan, mut peer: Peer, mut work: impl FnMut()) -> (f64, f64) {
    for _ in 0..plan.warmup {
        work();
    }
    peer.warmup(plan.warmup);
    let (mut ours, mut theirs) = (0f64, 0f64);
    for _ in 0..plan.rounds {
        let t0 = cpu_seconds();
        let mut calls = 0i64;
        while calls == 0 || cpu_seconds() - t0 < plan.round.as_secs_f64() {
            work();
            calls += 1;
        }
        ours = ours.max((calls * items) as f64 / (cpu_seconds() - t0));
        theirs = theirs.max(peer.round(plan.round));
    }
    peer.finish();
    (ours, theirs)
}

/// [`measure`] with both sides in this process: rounds alternate between `ours` and `peer`.
fn measure_here(plan: &Plan, mut ours: impl FnMut(), mut peer: impl FnMut()) -> (f64, f64) {
    for _ in 0..plan.warmup {
        ours();
        peer();
    }
    let round = |work: &mut dyn FnMut()| {
        let t0 = cpu_seconds();
        let mut calls = 0i64;
        while calls == 0 || cpu_seconds() - t0 < plan.round.as_secs_f64() {
            work();
            calls += 1;
        }
        calls as f64 / (cpu_seconds() - t0)
    };
    let (mut a, mut b) = (0f64, 0f64);
    for _ in 0..plan.rounds {
        a = a.max(round(&mut ours));
        b = b.max(round(&mut peer));
    }
    (a, b)
}

fn report(name: &str, (ours, peer): (f64, f64)) {
    println!(
        "BENCH {name} ours={ours:.2} peer={peer:.2} ratio={:.3}",
        ours / peer
    );
}

fn main() {
    let python = venv_python();
    tch::set_num_threads(1);
    tch::manual_seed(0);
    let cfg = ModelConfig::Tfsepnet64(tfsepnet64::Config::default());
    let vs = nn::VarStore::new(Device::Cpu);
    let net: Box<dyn AscModel> = build(&vs.root(), &cfg).expect("the reports' network builds");
    let opts = (Kind::Float, Device::Cpu);
    println!(
        "# {} (dropout 0.1) on {}x{}x{}, one thread each (tch::set_num_threads(1) / \
         torch.set_num_threads(1)), rates per CPU second, warm-up excluded, best of {} \
         interleaved rounds",
        cfg.describe(),
        INPUT[0],
        INPUT[1],
        INPUT[2],
        TRAIN.rounds
    );

    let x = Tensor::randn([BATCH, INPUT[0], INPUT[1], INPUT[2]], opts);
    let y = Tensor::randint(10, [BATCH], (Kind::Int64, Device::Cpu));
    let mut adam = Adam::new(&vs, (0.9, 0.999), WeightDecay::L2(0.0));
    let train = measure(
        BATCH,
        &TRAIN,
        Peer::start(&python, "bench_tfsepnet64.py", &["train"]),
        || {
            let loss = cross_entropy_per_sample(&net.forward_t(&x, true), &y).mean(Kind::Float);
            adam.zero_grad();
            loss.backward();
            adam.step(1e-3);
        },
    );
    report("train-step-tfsepnet64", train);

    let x1 = Tensor::randn([1, INPUT[0], INPUT[1], INPUT[2]], opts);
    let infer = measure(
        1,
        &INFER,
        Peer::start(&python, "bench_tfsepnet64.py", &["infer"]),
        || {
            let _ = tch::no_grad(|| net.forward_t(&x1, false));
        },
    );
    report("infer-tfsepnet64", infer);

    let calibration = vec![Tensor::randn([32, INPUT[0], INPUT[1], INPUT[2]], opts)];
    let quantized = quantize_int8(&vs, &cfg, &calibration, &PtqConfig::default())
        .unwrap_or_else(|e| fail(format!("quantizing: {e}")));
    let program = quantized
        .program(Isa::detect(), AtenCapability::Avx2)
        .unwrap_or_else(|e| fail(format!("compiling for the engine: {e}")));
    let shape: Vec<usize> = x1.size().iter().map(|&d| d as usize).collect();
    let values = Vec::<f32>::try_from(x1.flatten(0, -1)).expect("float input");
    let mut engine = || {
        program
            .run(&values, &shape)
            .unwrap_or_else(|e| fail(format!("engine: {e}")));
    };
    let (f, t) = (INPUT[1].to_string(), INPUT[2].to_string());
    let peer = Peer::start(
        &python,
        "quantized_tfsepnet.py",
        &["--bench", "int8", "--freq", &f, "--time", &t],
    );
    println!("# integer engine on {:?}", Isa::detect());
    report(
        "infer-int8-tfsepnet64",
        measure(1, &INFER, peer, &mut engine),
    );
    let fp32 = || {
        let _ = tch::no_grad(|| net.forward_t(&x1, false));
    };
    report("infer-int8-vs-fp32", measure_here(&INFER, engine, fp32));
}
