"""Zhang et al.'s released system 1 (SSCP-Mobile, c64 pruned to the released widths) as their
inference code runs it: the DCASE2025 baseline's front end in front of the model,
`mel = Sequential(torchaudio.transforms.Resample(44100, 32000), MelSpectrogram(32000, n_fft=4096,
win_length=3072, hop_length=500, n_mels=256))`, then log(x + 1e-5). The weights are random (the real
file cannot be fetched here), with BatchNorm statistics taken on the test clips; the state dict carries the released key names, front-end tensors
included (`mel.0.kernel`, `mel.1.spectrogram.window`, `mel.1.mel_scale.fb`).

Usage: python zhang_system.py OUT.ckpt OUT.json WAV...
Writes a Lightning-shaped checkpoint and, per WAV (read with soundfile, float32, 44.1 kHz), the
system's logits as one JSON object {file: [10 logits]}.
"""
import json
import sys

import soundfile as sf
import torch
import torchaudio

from cp_mobile import Net, perturb_all

S1_WIDTHS = [8, 32, 72, 32, 72, 32, 72, 32, 72, 56, 124, 56, 124, 104]


class System(torch.nn.Module):
    def __init__(s):
        super().__init__()
        s.mel = torch.nn.Sequential(
            torchaudio.transforms.Resample(orig_freq=44100, new_freq=32000),
            torchaudio.transforms.MelSpectrogram(sample_rate=32000, n_fft=4096, win_length=3072, hop_length=500,
                                                 n_mels=256),
        )
        s.model = Net("sscp_mobile", S1_WIDTHS)

    def forward(s, x):
        return s.model((s.mel(x) + 1e-5).log())


if __name__ == "__main__":
    ckpt, out, wavs = sys.argv[1], sys.argv[2], sys.argv[3:]
    torch.manual_seed(2025)
    torch.set_num_threads(1)
    system = System()
    perturb_all(system.model)
    # BatchNorm statistics of these very clips (cumulative averages over a train-mode pass), so
    # that the logits depend on the input as a trained model's do rather than sitting on the
    # random statistics' biases.
    clips = [torch.from_numpy(sf.read(wav, dtype="float32")[0]).view(1, 1, -1) for wav in wavs]
    system.train()
    for m in system.model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    with torch.no_grad():
        system(torch.cat(clips))
    system.eval()
    torch.save({"epoch": 149, "global_step": 0, "pytorch-lightning_version": "2.5.1",
                "state_dict": system.state_dict(), "loops": {}, "callbacks": {}, "optimizer_states": [],
                "lr_schedulers": []}, ckpt)
    logits = {}
    with torch.no_grad():
        for wav in wavs:
            y, sr = sf.read(wav, dtype="float32")
            assert sr == 44100, sr
            logits[wav] = system(torch.from_numpy(y).view(1, 1, -1))[0].tolist()
    with open(out, "w") as f:
        json.dump(logits, f)
