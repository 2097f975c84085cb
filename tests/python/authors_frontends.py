"""The systems' own audio pipelines, with the libraries their authors use: the reference that
ascrepro's resamplers and front ends are tested against (tests/resampler_parity.rs).

Loading and resampling, as each system does it:
* librosa: librosa.load(path, sr=32000) as CP-JKU's DCASE code calls it (Cai et al., Zhou et al.),
  with res_type='kaiser_best', the default of the librosa 0.8.1 their code pins (resampy's filter).
* torchaudio: the file's samples (soundfile, float32, channels averaged) through
  torchaudio.transforms.Resample(sr, 32000) with its defaults (DCASE2024/2025 baselines, Zhang et al.,
  Ramezanee et al.).

Front ends, as the released code builds them (float32):
* cpmel-*: CP-JKU's AugmentMelSTFT in eval mode (optional [-0.97, 1] pre-emphasis, torch.stft with a
  symmetric Hann window, power, Kaldi mel banks plus a zero Nyquist column, log(x + 1e-5), (x + 4.5) / 5).
* tamel-*: torchaudio.transforms.MelSpectrogram(sample_rate=32000, ...) then log(x + 1e-5).

Usage:
  python authors_frontends.py features OUT.safetensors WAV...
      for each WAV i, resampler r and front end f: tensor "{i}/{r}/wave" (the 32 kHz waveform),
      "{i}/{r}/{f}" (log-mel [n_mels, frames]) and "{i}/{r}/{f}/f64": the same pipeline with its float32
      parameters (window, pre-emphasis, filterbank) but the signal path in float64, which shows where the
      float32 run's own rounding is larger than the tolerance (near-empty bands, whose power is close to
      the 1e-5 log offset)
  python authors_frontends.py chains OUT.safetensors CLIP.wav IR.wav
      one device-A clip augmented as each system's authors do it, then its log-mel:
      "dir/librosa/cpmel-512"     CP-JKU's DIRAugmentDataset: clip and IR loaded by librosa at 32 kHz,
                                  scipy.signal.convolve(x, ir, 'full')[:len(x)], then the mel
      "dir/torchaudio/tamel-256"  the DCASE2025 baseline's DirDataset: clip and IR at 44.1 kHz,
                                  torchaudio.functional.fftconvolve, cut to len(x), then Resample + mel
      "energy/torchaudio/tamel-256-502"  Ramezanee et al.'s generator at the recorded rate (IR to unit
                                  RMS, full convolution cut to len(x), RMS matched, clipped, 10 ms
                                  linear fade-out), then the released inference's resample + mel
"""
import sys

import librosa
import numpy as np
import scipy.signal
import soundfile as sf
import torch
import torchaudio

from reference import save_safetensors

SR = 32000

# id -> (pre-emphasis, n_fft, win_length, hop, n_mels) for CP-JKU; torchaudio's keyword arguments.
CPMEL = {
    "cpmel-128": (False, 2048, 2048, 744, 128),
    "cpmel-512": (True, 4096, 3072, 500, 512),
}
TAMEL = {
    "tamel-256": dict(n_fft=4096, win_length=3072, hop_length=500, n_mels=256),
    "tamel-256-502": dict(n_fft=4096, hop_length=502, n_mels=256),
}


def cpmel(x, preemphasis, n_fft, win, hop, n_mels):
    """CP-JKU's AugmentMelSTFT.forward in eval mode (fmin 0, fmax sr/2); its buffers are the
    float32 tensors the module builds, the signal path runs in x's dtype."""
    x = x.view(1, -1)
    if preemphasis:
        coefficient = torch.as_tensor([[[-0.97, 1]]]).to(x.dtype)
        x = torch.nn.functional.conv1d(x.unsqueeze(1), coefficient).squeeze(1)
    window = torch.hann_window(win, periodic=False).to(x.dtype)
    x = torch.stft(x, n_fft, hop_length=hop, win_length=win, center=True, normalized=False,
                   window=window, return_complex=True)
    x = torch.view_as_real(x)
    x = (x ** 2).sum(dim=-1)
    mel_basis, _ = torchaudio.compliance.kaldi.get_mel_banks(n_mels, n_fft, SR, 0.0, SR / 2, vtln_low=100.0,
                                                             vtln_high=-500.0, vtln_warp_factor=1.0)
    mel_basis = torch.nn.functional.pad(mel_basis, (0, 1), mode="constant", value=0).to(x.dtype)
    melspec = torch.matmul(mel_basis, x)
    melspec = (melspec + 0.00001).log()
    return ((melspec + 4.5) / 5.0)[0]


def tamel(x, kwargs):
    mel = torchaudio.transforms.MelSpectrogram(sample_rate=SR, power=2.0, **kwargs).to(x.dtype)
    return (mel(x) + 1e-5).log()


def frontend(name, x):
    if name in CPMEL:
        return cpmel(x, *CPMEL[name])
    return tamel(x, TAMEL[name])


def read(path):
    """The file's samples as float32 in [-1, 1), channels averaged (torchaudio.load + mean)."""
    y, sr = sf.read(path, dtype="float32", always_2d=True)
    return torch.from_numpy(np.ascontiguousarray(y.mean(axis=1, dtype=np.float32))), sr


def load(path, resampler):
    if resampler == "librosa":
        y, _ = librosa.load(path, sr=SR, res_type="kaiser_best")
        return torch.from_numpy(y)
    x, sr = read(path)
    return torchaudio.transforms.Resample(sr, SR)(x) if sr != SR else x


def features(out, wavs):
    tensors = {}
    for i, wav in enumerate(wavs):
        for r in ("librosa", "torchaudio"):
            x = load(wav, r)
            tensors[f"{i}/{r}/wave"] = x
            for f in list(CPMEL) + list(TAMEL):
                tensors[f"{i}/{r}/{f}"] = frontend(f, x)
                tensors[f"{i}/{r}/{f}/f64"] = frontend(f, x.double())
    save_safetensors(out, tensors)


def chains(out, clip, ir):
    tensors = {}
    # CP-JKU: clip and IR both loaded at 32 kHz by librosa; scipy's full convolution, cut.
    x, _ = librosa.load(clip, sr=SR, res_type="kaiser_best")
    h, _ = librosa.load(ir, sr=SR, res_type="kaiser_best")
    y = scipy.signal.convolve(x[np.newaxis], h[np.newaxis], "full")[:, :x.shape[0]]
    tensors["dir/librosa/cpmel-512"] = frontend("cpmel-512", torch.from_numpy(y[0]))
    # DCASE2025 baseline: convolution at the recorded rate, resampling inside the model.
    x, sr = read(clip)
    h, ir_sr = read(ir)
    assert ir_sr == sr, "the baseline loads impulse responses at the clips' rate"
    y = torchaudio.functional.fftconvolve(x[None], h[None])[:, :x.shape[0]][0]
    tensors["dir/torchaudio/tamel-256"] = frontend("tamel-256", torchaudio.transforms.Resample(sr, SR)(y))
    # Ramezanee et al.'s generator (augment_audio), float64 numpy as in their notebook.
    audio, in_sr = sf.read(clip)
    irw, _ = sf.read(ir)
    input_rms = np.sqrt(np.mean(audio ** 2))
    irw = irw / np.sqrt(np.mean(irw ** 2))
    aug = scipy.signal.convolve(audio, irw, mode="full")[:len(audio)]
    aug *= input_rms / np.sqrt(np.mean(aug ** 2))
    aug = np.clip(aug, -1.0, 1.0)
    fade = int(in_sr * 0.01)
    aug[-fade:] *= np.linspace(1, 0, fade)
    y = torchaudio.functional.resample(torch.from_numpy(aug.astype(np.float32)), in_sr, SR)
    tensors["energy/torchaudio/tamel-256-502"] = frontend("tamel-256-502", y)
    save_safetensors(out, tensors)


if __name__ == "__main__":
    torch.set_num_threads(1)
    mode, out = sys.argv[1], sys.argv[2]
    if mode == "features":
        features(out, sys.argv[3:])
    elif mode == "chains":
        chains(out, sys.argv[3], sys.argv[4])
    else:
        sys.exit(f"unknown mode {mode}")
