//! INT8 conv2d per layer of a quantized TF-SepNet-64 (C = 64, depth 17, input 1x1x512x64,
//! batch 1, one thread): the kernels `conv2d` picks against the generic im2col + GEMM path, in
//! the same run. Prints, per layer shape,
//!
//! ```text
//! BENCH int8-conv-<layer> ours=<µs> peer=<µs> ratio=<peer/ours>
//! ```
//!
//! and `BENCH int8-conv-tfsepnet64` for every conv of one forward (each layer's time times the
//! number of times the forward runs that shape). Ours: [`conv2d_with`] on the fastest
//! instruction set. Peer: [`conv2d_generic_with`] on the same instruction set. Outputs are
//! compared before timing. Times are the thread's CPU time per call, the best of several rounds
//! that alternate between ours and the peer, so other processes on a shared machine do not
//! decide the result. `cargo bench --bench int8_kernels -- s1-` runs the layers whose name
//! contains `s1-`; `-- avx2` (or `portable`) runs both sides on that instruction set.

use ascrepro::compress::int8::{
    conv2d_generic_with, conv2d_with, Affine, Conv2dConfig, Fused, Isa, MemoryFormat, QTensor,
    QWeight,
};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// One conv shape of the network and how often one forward runs it.
struct Layer {
    name: String,
    /// `[C, H, W]` of the input.
    input: [usize; 3],
    /// `[O, KH, KW]`.
    kernel: [usize; 3],
    cfg: Conv2dConfig,
    bias: bool,
    fused: Fused,
    count: usize,
}

fn layer(name: &str, input: [usize; 3], kernel: [usize; 3], cfg: Conv2dConfig) -> Layer {
    Layer {
        name: name.into(),
        input,
        kernel,
        cfg,
        bias: false,
        fused: Fused::Relu,
        count: 1,
    }
}

/// TF-SepNet-64's convs: the stem, then per stage (blocks, width, H x W) the trans conv of the
/// first block and each block's depthwise 3x1 / 1x3 and 1x1 convs (the freq 1x1 runs on the
/// mean over H, the temp 1x1 on the mean over W), then the head.
fn layers() -> Vec<Layer> {
    let conv = |stride: usize, pad: [usize; 2], groups: usize| Conv2dConfig {
        stride: [stride, stride],
        padding: pad,
        groups,
    };
    let mut v = vec![
        layer("stem0", [1, 512, 64], [32, 3, 3], conv(2, [1, 1], 1)),
        layer("stem1", [32, 256, 32], [128, 3, 3], conv(2, [1, 1], 32)),
    ];
    let stages = [
        (2, 64, [128, 16]),
        (2, 96, [64, 8]),
        (2, 128, [32, 4]),
        (3, 160, [16, 2]),
    ];
    let mut channels = 128;
    for (s, &(blocks, width, [h, w])) in stages.iter().enumerate() {
        let half = width / 2;
        let s = s + 1;
        v.push(layer(
            &format!("s{s}-trans"),
            [channels, h, w],
            [width, 1, 1],
            conv(1, [0, 0], 1),
        ));
        let per_block = [
            ("freq-dw", [half, h, w], [half, 3, 1], conv(1, [1, 0], half)),
            ("freq-pw", [half, 1, w], [half, 1, 1], conv(1, [0, 0], 1)),
            ("temp-dw", [half, h, w], [half, 1, 3], conv(1, [0, 1], half)),
            ("temp-pw", [half, h, 1], [half, 1, 1], conv(1, [0, 0], 1)),
        ];
        for (name, input, kernel, cfg) in per_block {
            let mut l = layer(&format!("s{s}-{name}"), input, kernel, cfg);
            l.count = blocks;
            v.push(l);
        }
        channels = width;
    }
    let mut head = layer("head", [160, 16, 2], [10, 1, 1], conv(1, [0, 0], 1));
    head.bias = true;
    head.fused = Fused::None;
    v.push(head);
    v
}

/// Deterministic bytes (xorshift64*).
struct Bytes(u64);

impl Bytes {
    fn next(&mut self) -> u8 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
    }
}

/// CPU time of the calling thread, in seconds (a shared machine's load does not count).
fn thread_cpu_seconds() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for the call to fill.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// CPU seconds per call of `work` over one round of at least `round`.
fn round_time(round: Duration, work: &mut impl FnMut()) -> f64 {
    let t0 = thread_cpu_seconds();
    let mut calls = 0usize;
    while calls == 0 || thread_cpu_seconds() - t0 < round.as_secs_f64() {
        work();
        calls += 1;
    }
    (thread_cpu_seconds() - t0) / calls as f64
}

/// Best per-call time of `ours` and of `peer` over alternating rounds.
fn times(
    rounds: usize,
    round: Duration,
    mut ours: impl FnMut(),
    mut peer: impl FnMut(),
) -> [f64; 2] {
    let mut best = [f64::INFINITY; 2];
    for _ in 0..rounds {
        best[0] = best[0].min(round_time(round, &mut ours));
        best[1] = best[1].min(round_time(round, &mut peer));
    }
    best
}

/// `cargo bench --bench int8_kernels [-- [FILTER] [avx2|portable]]`: the instruction set
/// defaults to the fastest this CPU has.
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let named = |name: &str| args.iter().any(|a| a == name);
    let isa = match () {
        _ if named("portable") => Isa::Portable,
        _ if named("avx2") => Isa::Avx2,
        _ => Isa::detect(),
    };
    assert!(isa.is_available(), "{isa:?} is not available on this CPU");
    let filter = args
        .iter()
        .find(|a| !a.starts_with("--") && !["portable", "avx2"].contains(&a.as_str()));
    let t0 = Instant::now();
    println!("int8 conv2d, TF-SepNet-64 layer shapes, batch 1, one thread, {isa:?}");
    let mut bytes = Bytes(0x1234_5678_9ABC_DEF1);
    let mut total = [0f64; 2];
    let mut all = true;
    for l in layers() {
        if filter.is_some_and(|f| !l.name.contains(f.as_str())) {
            all = false;
            continue;
        }
        let [c, h, w] = l.input;
        let [o, kh, kw] = l.kernel;
        // reduce_range activations (0..127), as the fbgemm qconfig produces.
        let xs = (0..c * h * w).map(|_| bytes.next() >> 1).collect();
        let x = QTensor::new(
            xs,
            &[1, c, h, w],
            Affine::new(0.05, 7),
            MemoryFormat::ChannelsLast,
        )
        .unwrap();
        let k = c / l.cfg.groups * kh * kw;
        let ws = (0..o * k).map(|_| bytes.next() as i8).collect();
        let scales = (0..o).map(|i| 0.002 + 0.0001 * i as f32).collect();
        let bias = l
            .bias
            .then(|| (0..o).map(|i| 0.01 * i as f32 - 0.05).collect());
        let wt = QWeight::new(ws, &[o, c / l.cfg.groups, kh, kw], scales, bias).unwrap();
        let out = Affine::new(0.02 * (k as f32).sqrt(), 60);
        let ours = || conv2d_with(isa, &x, &wt, &l.cfg, out, l.fused).unwrap();
        let peer = || conv2d_generic_with(isa, &x, &wt, &l.cfg, out, l.fused).unwrap();
        assert_eq!(ours(), peer(), "{}: outputs differ", l.name);
        // Warm-up, then rounds long enough for the smallest layers' timer resolution.
        black_box(ours());
        black_box(peer());
        let [t_ours, t_peer] = times(
            7,
            Duration::from_millis(40),
            || {
                black_box(ours());
            },
            || {
                black_box(peer());
            },
        );
        let (us_ours, us_peer) = (t_ours * 1e6, t_peer * 1e6);
        total[0] += us_ours * l.count as f64;
        total[1] += us_peer * l.count as f64;
        println!(
            "BENCH int8-conv-{} ours={us_ours:.2} peer={us_peer:.2} ratio={:.2}  \
             ({c}x{h}x{w} -> {o}, {kh}x{kw}, stride {:?}, groups {}, x{} per forward)",
            l.name,
            us_peer / us_ours,
            l.cfg.stride,
            l.cfg.groups,
            l.count
        );
    }
    if all {
        println!(
            "BENCH int8-conv-tfsepnet64 ours={:.2} peer={:.2} ratio={:.2}  (every conv of one forward)",
            total[0],
            total[1],
            total[1] / total[0]
        );
    }
    println!("bench time {:.1} s", t0.elapsed().as_secs_f64());
}
