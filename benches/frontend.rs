//! Front-end and DIR-convolution throughput against libtorch, one thread each, measured in the
//! same run (`make bench`). Prints
//!
//! ```text
//! BENCH frontend-cpmel512 ours=<clips/s> peer=<clips/s> ratio=<ours/peer>
//! BENCH dir-conv ours=<convs/s> peer=<convs/s> ratio=<ours/peer>
//! ```
//!
//! * `frontend-cpmel512`: log-mel of 1-second 32 kHz clips. Ours: `Frontend::compute` on the
//!   calling thread (no rayon). Peer: the same CP-JKU pipeline in libtorch ops: pre-emphasis
//!   `conv1d`, reflect padding + `stft` (same window, n_fft, hop, centring), power (`re^2 +
//!   im^2`, the fastest way to write it in torch), dense mel matmul `[512, 2049] x [2049, 64]`
//!   with the same mel bank, `log(x + 1e-5)`, `(x + 4.5) / 5`. Both outputs are compared
//!   before timing.
//! * `dir-conv`: a 1-second 32 kHz clip convolved with a 1-second impulse response. Ours:
//!   `fft_convolve` (FFT planning included). Peer: direct convolution, `conv1d` of the whole
//!   signal with the flipped IR, padded for the full output length (2 x 32000 - 1 samples).
//!
//! Every measurement follows an untimed warm-up. Rates are per second of the thread's CPU time
//! (both sides run on the calling thread), the best of several rounds that alternate between
//! ours and the peer, so other processes on a shared machine do not decide the result.
//! `cargo bench --bench frontend -- dir-conv` runs one of them.

use ascrepro::audio::conv::fft_convolve;
use ascrepro::audio::frontend::{Frontend, FrontendId};
use std::hint::black_box;
use std::time::{Duration, Instant};
use tch::{Device, Kind, Tensor};

const SR: usize = 32000;

/// Deterministic noise + tones (xorshift64*), so every run measures the same input.
fn clip(seed: u64, len: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|i| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            let noise = (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 52) as f64;
            let t = i as f64 / SR as f64;
            let tone = 0.3 * (2.0 * std::f64::consts::PI * (220.0 + 40.0 * seed as f64) * t).sin();
            (0.05 * (noise - 1.0) + tone) as f32
        })
        .collect()
}

/// CPU time of the calling thread, in seconds. Both sides run on this thread (libtorch with
/// one intra-op thread runs its kernels inline), and unlike wall time this does not count the
/// time other processes of a shared machine hold the core.
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

/// Calls of `work` per CPU second over one round: repeated for at least `round` of CPU time
/// (at least once).
fn round_rate(round: Duration, work: &mut impl FnMut()) -> f64 {
    let t0 = thread_cpu_seconds();
    let mut calls = 0usize;
    while calls == 0 || thread_cpu_seconds() - t0 < round.as_secs_f64() {
        work();
        calls += 1;
    }
    calls as f64 / (thread_cpu_seconds() - t0)
}

/// Calls per second of `ours` and of `peer`: rounds alternate between the two and each keeps
/// its best, so a burst of load from other processes cannot favour one side.
fn rates(
    rounds: [usize; 2],
    round: [Duration; 2],
    mut ours: impl FnMut(),
    mut peer: impl FnMut(),
) -> (f64, f64) {
    let (mut best_ours, mut best_peer) = (0f64, 0f64);
    for r in 0..rounds[0].max(rounds[1]) {
        if r < rounds[0] {
            best_ours = best_ours.max(round_rate(round[0], &mut ours));
        }
        if r < rounds[1] {
            best_peer = best_peer.max(round_rate(round[1], &mut peer));
        }
    }
    (best_ours, best_peer)
}

/// CP-JKU's `AugmentMelSTFT` (evaluation mode) in libtorch, for cpmel-512.
struct TorchCpMel512 {
    preemphasis: Tensor,
    window: Tensor,
    bank: Tensor,
}

impl TorchCpMel512 {
    const N_FFT: i64 = 4096;
    const WIN: i64 = 3072;
    const HOP: i64 = 500;

    fn new(fe: &Frontend) -> TorchCpMel512 {
        let n_bins = Self::N_FFT / 2 + 1;
        TorchCpMel512 {
            preemphasis: Tensor::from_slice(&[-0.97f32, 1.0]).view([1, 1, 2]),
            window: Tensor::hann_window_periodic(Self::WIN, false, (Kind::Float, Device::Cpu)),
            bank: Tensor::from_slice(&fe.mel_bank()).view([fe.n_mels() as i64, n_bins]),
        }
    }

    fn compute(&self, x: &Tensor) -> Tensor {
        let x = x
            .view([1, 1, -1])
            .conv1d(&self.preemphasis, None::<Tensor>, [1], [0], [1], 1);
        // torch.stft(center=True, pad_mode="reflect") is this padding followed by the
        // non-centred STFT (tch's binding always passes `align_to_window`, which torch accepts
        // only with center=False).
        let padded = x
            .reflection_pad1d([Self::N_FFT / 2, Self::N_FFT / 2])
            .view([-1]);
        let spec = padded.stft(
            Self::N_FFT,
            Self::HOP,
            Self::WIN,
            Some(&self.window),
            false,
            true,
            true,
            false,
        );
        // The fastest of the usual ways to write the power in torch (CP-JKU's
        // `(view_as_real(x) ** 2).sum(-1)` and torchaudio's `x.abs().pow(2)` are slower).
        let power = spec.real().square() + spec.imag().square();
        let mel = (self.bank.matmul(&power) + 1e-5).log();
        (mel + 4.5) / 5.0
    }
}

fn bench_frontend(threads: i32) {
    let fe = Frontend::authors(FrontendId::CpMel512);
    let clips: Vec<Vec<f32>> = (0..8).map(|k| clip(k, SR)).collect();
    let tensors: Vec<Tensor> = clips.iter().map(|c| Tensor::from_slice(c)).collect();
    let peer = TorchCpMel512::new(&fe);

    // Same work on both sides: the outputs agree to f32 rounding.
    let ours = fe.compute(&clips[0]);
    let theirs = Vec::<f32>::try_from(peer.compute(&tensors[0]).contiguous().view([-1]))
        .expect("float tensor");
    assert_eq!(ours.data.len(), theirs.len(), "output shapes differ");
    let max_diff = ours
        .data
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(max_diff < 1e-2, "ours and libtorch disagree: {max_diff}");

    // Warm-up: caches, lazy initialisation, libtorch's kernel dispatch.
    for (c, t) in clips.iter().zip(&tensors) {
        black_box(fe.compute(c));
        drop(black_box(peer.compute(t)));
    }
    let round = Duration::from_millis(250);
    let (ours, theirs) = rates(
        [12, 12],
        [round, round],
        || {
            for c in &clips {
                black_box(fe.compute(black_box(c)));
            }
        },
        || {
            for t in &tensors {
                drop(black_box(peer.compute(black_box(t))));
            }
        },
    );
    let (ours, theirs) = (ours * clips.len() as f64, theirs * tensors.len() as f64);
    println!(
        "frontend-cpmel512: 1-second 32 kHz clips -> 512 x {} log-mel; threads: ours 1 (no rayon), \
         libtorch {threads}; max |ours - libtorch| {max_diff:.1e}",
        fe.n_frames(SR)
    );
    println!(
        "BENCH frontend-cpmel512 ours={ours:.1} peer={theirs:.1} ratio={:.2}",
        ours / theirs
    );
}

fn bench_dir_conv(threads: i32) {
    let x = clip(100, SR);
    // A decaying noise impulse response, one second long like the DIRs the reports use.
    let h: Vec<f32> = clip(101, SR)
        .iter()
        .enumerate()
        .map(|(i, v)| v * (-(i as f32) / 3000.0).exp())
        .collect();
    let xt = Tensor::from_slice(&x).view([1, 1, -1]);
    let ht = Tensor::from_slice(&h).flip([0]).view([1, 1, -1]);
    let full = (SR - 1) as i64;
    let direct = |x: &Tensor, h: &Tensor, pad: i64| x.conv1d(h, None::<Tensor>, [1], [pad], [1], 1);

    // Same result on the overlapping part (ours stops at the input's length).
    let ours = fft_convolve(&x, &h);
    let theirs = Vec::<f32>::try_from(direct(&xt, &ht, full).view([-1])).expect("float tensor");
    assert_eq!(theirs.len(), 2 * SR - 1);
    let max_diff = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(max_diff < 1e-3, "ours and libtorch disagree: {max_diff}");

    // Warm-up (the direct peer takes seconds per call: warmed up on a tenth of the size).
    black_box(fft_convolve(&x, &h));
    let (xs, hs) = (xt.narrow(2, 0, 3200), ht.narrow(2, 0, 3200));
    drop(black_box(direct(&xs, &hs, 3199)));
    let (ours, theirs) = rates(
        [5, 2],
        [Duration::from_millis(300), Duration::ZERO],
        || {
            black_box(fft_convolve(black_box(&x), black_box(&h)));
        },
        || {
            drop(black_box(direct(&xt, &ht, full)));
        },
    );
    println!(
        "dir-conv: 32000-sample clip * 32000-sample IR; threads: ours 1, libtorch {threads}; \
         max |ours - libtorch| {max_diff:.1e}"
    );
    println!(
        "BENCH dir-conv ours={ours:.2} peer={theirs:.4} ratio={:.1}",
        ours / theirs
    );
}

/// `cargo bench --bench frontend [-- FILTER]`: runs the benchmarks whose name contains FILTER.
fn main() {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let selected = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    tch::set_num_threads(1);
    tch::set_num_interop_threads(1);
    let threads = tch::get_num_threads();
    let t0 = Instant::now();
    if selected("frontend-cpmel512") {
        bench_frontend(threads);
    }
    if selected("dir-conv") {
        bench_dir_conv(threads);
    }
    println!("bench time {:.1} s", t0.elapsed().as_secs_f64());
}
