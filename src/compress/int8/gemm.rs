//! The `u8 x i8 -> i32` matrix product under conv and linear: `acc[o][p] = sum_k w[o][k] a[k][p]`
//! with exact i32 accumulation, in a portable version and AVX2 / AVX-512 VNNI versions chosen at
//! run time. Integer arithmetic makes every version give the same bits.
//!
//! Layout. The reduction runs over quads of four `k`: activations are packed in panels of 16
//! output positions, `a[((p / 16) * quads + q) * 64 + (p % 16) * 4 + j] = a[4q + j][p]`, so one
//! 64-byte load holds one quad for 16 positions, which is what `vpdpbusd` consumes.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Positions per packed panel.
pub(crate) const PANEL: usize = 16;

/// The instruction set of the conv and linear inner loops. Every choice gives identical results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Plain Rust, any CPU.
    Portable,
    /// AVX2 `vpmaddwd` on activations widened to 16 bits (no `i16` saturation).
    Avx2,
    /// AVX-512 VNNI `vpdpbusd`: four `u8 x i8` products summed straight into `i32`.
    Avx512Vnni,
}

impl Isa {
    /// The fastest instruction set this CPU has.
    pub fn detect() -> Isa {
        [Isa::Avx512Vnni, Isa::Avx2]
            .into_iter()
            .find(|isa| isa.is_available())
            .unwrap_or(Isa::Portable)
    }

    /// `i32` lanes of the vectors of the direct kernels (depthwise, requantization).
    pub(crate) fn lanes(self) -> usize {
        match self {
            Isa::Portable => 1,
            Isa::Avx2 => 8,
            Isa::Avx512Vnni => 16,
        }
    }

    /// Whether this CPU can run `self`.
    pub fn is_available(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => {
                is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }
}

/// The weights of one group, `n` output channels by `k` reduction terms, packed by quads.
pub(crate) struct PackedWeights {
    n: usize,
    quads: usize,
    /// `[n][quads]`: four `i8` per `i32`, byte `j` = term `4q + j` (zero past `k`, and zero rows
    /// up to a multiple of 4 channels).
    bytes: Vec<i32>,
    /// `[n][quads]`: terms `(4q, 4q + 2)` and `(4q + 1, 4q + 3)` as `i16` pairs, for AVX2.
    even: Vec<i32>,
    odd: Vec<i32>,
    /// `sum_k w[o][k]`, for the activation zero-point correction.
    sums: Vec<i32>,
}

impl PackedWeights {
    /// `rows` holds `n` rows of `k` weights each.
    pub(crate) fn new(rows: &[i8], n: usize, k: usize) -> Self {
        let quads = k.div_ceil(4);
        // Zero rows up to a whole block of channels, so the VNNI tile needs no remainder case.
        let mut bytes = vec![0i32; n.next_multiple_of(BLOCK) * quads];
        let mut sums = Vec::with_capacity(n);
        for (row, dst) in rows
            .chunks_exact(k)
            .take(n)
            .zip(bytes.chunks_exact_mut(quads))
        {
            let mut full = row.chunks_exact(4);
            for (d, t) in dst.iter_mut().zip(&mut full) {
                *d = i32::from_le_bytes([t[0] as u8, t[1] as u8, t[2] as u8, t[3] as u8]);
            }
            let mut last = [0u8; 4];
            for (b, &v) in last.iter_mut().zip(full.remainder()) {
                *b = v as u8;
            }
            if !full.remainder().is_empty() {
                dst[quads - 1] = i32::from_le_bytes(last);
            }
            sums.push(row.iter().map(|&v| v as i32).sum());
        }
        // Sign-extended i16 pairs of the quad's bytes 0 and 2, 1 and 3.
        let pair = |q: i32, shift: u32| {
            let lo = (q << (24 - shift)) >> 24;
            let hi = (q << (8 - shift)) >> 24;
            (lo & 0xFFFF) | (hi << 16)
        };
        let even = bytes.iter().map(|&q| pair(q, 0)).collect();
        let odd = bytes.iter().map(|&q| pair(q, 8)).collect();
        PackedWeights {
            n,
            quads,
            bytes,
            even,
            odd,
            sums,
        }
    }

    pub(crate) fn quads(&self) -> usize {
        self.quads
    }
    pub(crate) fn sum(&self, o: usize) -> i32 {
        self.sums[o]
    }
}

/// `acc[o * positions + p] = sum_k w[o][k] a[k][p]` for `positions` (a multiple of [`PANEL`])
/// positions packed in `a` as the module doc describes.
pub(crate) fn gemm(isa: Isa, a: &[u8], positions: usize, w: &PackedWeights, acc: &mut [i32]) {
    assert!(positions.is_multiple_of(PANEL));
    assert!(a.len() >= positions * w.quads * 4 && acc.len() >= w.n * positions);
    assert!(isa.is_available(), "{isa:?} is not available on this CPU");
    match isa {
        Isa::Portable => gemm_portable(a, positions, w, acc),
        // SAFETY: the CPU has the instruction sets these functions enable (asserted above).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { gemm_avx2(a, positions, w, acc) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => unsafe { gemm_vnni(a, positions, w, acc) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!(),
    }
}

fn gemm_portable(a: &[u8], positions: usize, w: &PackedWeights, acc: &mut [i32]) {
    let panel_len = w.quads * PANEL * 4;
    for (panel, xs) in a
        .chunks_exact(panel_len)
        .take(positions / PANEL)
        .enumerate()
    {
        for o in 0..w.n {
            let mut sums = [0i32; PANEL];
            for (q, quad) in xs.chunks_exact(PANEL * 4).enumerate() {
                let t = w.bytes[o * w.quads + q]
                    .to_le_bytes()
                    .map(|v| v as i8 as i32);
                for (s, x) in sums.iter_mut().zip(quad.chunks_exact(4)) {
                    let dot = x[0] as i32 * t[0]
                        + x[1] as i32 * t[1]
                        + x[2] as i32 * t[2]
                        + x[3] as i32 * t[3];
                    *s = s.wrapping_add(dot);
                }
            }
            acc[o * positions + panel * PANEL..][..PANEL].copy_from_slice(&sums);
        }
    }
}

/// Output channels computed together, so each activation load serves several of them.
const BLOCK: usize = 4;

/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn gemm_avx2(a: &[u8], positions: usize, w: &PackedWeights, acc: &mut [i32]) {
    let low_bytes = _mm256_set1_epi32(0x00FF_00FF);
    let panel_len = w.quads * PANEL * 4;
    for (panel, xs) in a
        .chunks_exact(panel_len)
        .take(positions / PANEL)
        .enumerate()
    {
        for half in 0..2 {
            let mut o = 0;
            while o < w.n {
                let block = BLOCK.min(w.n - o);
                let mut sums = [_mm256_setzero_si256(); BLOCK];
                for q in 0..w.quads {
                    let x = &xs[q * PANEL * 4 + half * 32..][..32];
                    // SAFETY: `x` holds 32 readable bytes; AVX2 is enabled.
                    let v = unsafe { _mm256_loadu_si256(x.as_ptr().cast()) };
                    // u8 quads -> i16 pairs (x0, x2) and (x1, x3): products of 0..255 and
                    // -128..127 summed in pairs stay far inside i32, so nothing saturates.
                    let evens = _mm256_and_si256(v, low_bytes);
                    let odds = _mm256_srli_epi16(v, 8);
                    for (i, s) in sums.iter_mut().enumerate().take(block) {
                        let at = (o + i) * w.quads + q;
                        let we = _mm256_set1_epi32(w.even[at]);
                        let wo = _mm256_set1_epi32(w.odd[at]);
                        let d = _mm256_add_epi32(
                            _mm256_madd_epi16(evens, we),
                            _mm256_madd_epi16(odds, wo),
                        );
                        *s = _mm256_add_epi32(*s, d);
                    }
                }
                for (i, s) in sums.iter().enumerate().take(block) {
                    let out = &mut acc[(o + i) * positions + panel * PANEL + half * 8..][..8];
                    // SAFETY: `out` holds 8 writable i32; AVX2 is enabled.
                    unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), *s) };
                }
                o += block;
            }
        }
    }
}

/// # Safety
/// The CPU must support AVX-512 F, BW and VNNI.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn gemm_vnni(a: &[u8], positions: usize, w: &PackedWeights, acc: &mut [i32]) {
    let panels = positions / PANEL;
    let mut panel = 0;
    while panel < panels {
        // Four panels at a time while there are four: each weight broadcast serves all four,
        // and the sixteen sums hide `vpdpbusd`'s latency.
        let count = if panels - panel >= 4 { 4 } else { 1 };
        let mut o = 0;
        while o < w.n {
            if count == 4 {
                vnni_tile::<4>(a, panel, o, positions, w, acc);
            } else {
                vnni_tile::<1>(a, panel, o, positions, w, acc);
            }
            o += BLOCK;
        }
        panel += count;
    }
}

/// Output channels `o .. o + BLOCK` (those below `w.n`) for panels `panel .. panel + P`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
fn vnni_tile<const P: usize>(
    a: &[u8],
    panel: usize,
    o: usize,
    positions: usize,
    w: &PackedWeights,
    acc: &mut [i32],
) {
    let panel_len = w.quads * PANEL * 4;
    let xs: [&[u8]; P] = std::array::from_fn(|i| &a[(panel + i) * panel_len..][..panel_len]);
    // `bytes` has zero rows up to a multiple of BLOCK channels.
    let ws = &w.bytes[o * w.quads..][..BLOCK * w.quads];
    let mut sums = [[_mm512_setzero_si512(); P]; BLOCK];
    for q in 0..w.quads {
        // SAFETY: `xs[i]` holds `quads * 64` bytes, so `q * 64 + 64` are readable; AVX-512 F
        // is enabled.
        let v: [__m512i; P] = std::array::from_fn(|i| unsafe {
            _mm512_loadu_si512(xs[i].as_ptr().add(q * 64).cast())
        });
        for (j, row) in sums.iter_mut().enumerate() {
            let t = _mm512_set1_epi32(ws[j * w.quads + q]);
            for (s, &x) in row.iter_mut().zip(&v) {
                *s = _mm512_dpbusd_epi32(*s, x, t);
            }
        }
    }
    for (j, row) in sums.iter().enumerate().take(w.n - o) {
        for (i, s) in row.iter().enumerate() {
            let out = &mut acc[(o + j) * positions + (panel + i) * PANEL..][..PANEL];
            // SAFETY: `out` holds 16 writable i32; AVX-512 F is enabled.
            unsafe { _mm512_storeu_si512(out.as_mut_ptr().cast(), *s) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_gemm_paths_agree_at_the_extremes() {
        // Full-range activations against extreme weights: every pair sum would saturate i16.
        let k = 13;
        let n = 6;
        // One block of four panels and two single ones.
        let positions = 6 * PANEL;
        let rows: Vec<i8> = (0..n * k)
            .map(|i| if i % 3 == 0 { -128 } else { 127 })
            .collect();
        let w = PackedWeights::new(&rows, n, k);
        let mut a = vec![0u8; positions * w.quads() * 4];
        for (i, v) in a.iter_mut().enumerate() {
            *v = if i % 7 == 0 { 0 } else { 255 };
        }
        let mut expect = vec![0i32; n * positions];
        gemm(Isa::Portable, &a, positions, &w, &mut expect);
        // Spot-check the portable result against the definition.
        let term = |kk: usize, p: usize| {
            let (q, j) = (kk / 4, kk % 4);
            a[((p / PANEL) * w.quads() + q) * 64 + (p % PANEL) * 4 + j] as i32
        };
        for o in 0..n {
            for p in 0..positions {
                let s: i32 = (0..k).map(|kk| rows[o * k + kk] as i32 * term(kk, p)).sum();
                assert_eq!(expect[o * positions + p], s);
            }
        }
        for isa in [Isa::Avx2, Isa::Avx512Vnni] {
            if isa.is_available() {
                let mut got = vec![0i32; n * positions];
                gemm(isa, &a, positions, &w, &mut got);
                assert_eq!(got, expect, "{isa:?}");
            }
        }
    }
}
