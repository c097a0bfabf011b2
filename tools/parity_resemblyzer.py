"""Resemblyzer references: its own ``preprocess_wav`` + ``VoiceEncoder.embed_utterance``.

Two fixed speech-like waveforms (harmonic syllables with pauses long enough for the VAD to
trim): ``resemblyzer_waves.npz``.  A small random-weight encoder saved in Resemblyzer's own
checkpoint layout (``resemblyzer_small.pt``, built by patching the package's model size) and
its outputs (``resemblyzer_small.npz``); the package's real ``pretrained.pt`` outputs with the
file's SHA-256 (``resemblyzer_real.npz``).
"""
from __future__ import annotations

import hashlib
import os

import numpy as np

RATE = 16000
SMALL = {"model_hidden_size": 24, "model_embedding_size": 16, "model_num_layers": 3}


def speechlike(seconds: float, seed: int) -> np.ndarray:
    """Syllables of a gliding harmonic voice (4 per second) in 3 bursts with silent pauses."""
    rng = np.random.default_rng(seed)
    num = int(seconds * RATE)
    t = np.arange(num) / RATE
    f0 = 130 + 40 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6))
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    voice = sum(np.sin(k * phase + rng.uniform(0, 6)) / k ** 1.2 for k in range(1, 30))
    formant = 1 + 0.8 * np.sin(2 * np.pi * 3.0 * t + rng.uniform(0, 6))
    syllables = np.clip(np.sin(2 * np.pi * 4.0 * t), 0, None) ** 0.5
    bursts = np.zeros(num)
    edges = np.linspace(0, num, 4).astype(int)
    for start, end in zip(edges[:-1], edges[1:]):
        bursts[start:end - int(0.25 * (end - start))] = 1.0      # a pause closes each burst
    wav = 0.08 * voice * formant * syllables * bursts + 3e-4 * rng.standard_normal(num)
    return np.round(np.clip(wav, -1, 1) * 32767).astype(np.int16)


def make(out: str, src=None) -> dict:
    import torch
    import resemblyzer
    from resemblyzer import VoiceEncoder, preprocess_wav
    from resemblyzer import voice_encoder as ve

    waves = {"long": speechlike(4.6, 1), "short": speechlike(1.2, 2)}
    np.savez(os.path.join(out, "resemblyzer_waves.npz"), **waves)

    def outputs(encoder):
        result = {}
        for name, pcm in waves.items():
            wav = preprocess_wav(pcm.astype(np.float32) / 32768.0)
            embed, partials, _ = encoder.embed_utterance(wav, return_partials=True)
            result[f"{name}_preprocessed"] = wav
            result[f"{name}_embedding"] = embed
            result[f"{name}_partials"] = partials
        return result

    real_path = os.path.join(os.path.dirname(resemblyzer.__file__), "pretrained.pt")
    with open(real_path, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    real = outputs(VoiceEncoder("cpu", verbose=False))
    np.savez(os.path.join(out, "resemblyzer_real.npz"), sha256=digest,
             **{k: v for k, v in real.items() if not k.endswith("_preprocessed")})

    saved = {name: getattr(ve, name) for name in SMALL}
    try:
        for name, value in SMALL.items():
            setattr(ve, name, value)
        torch.manual_seed(19)
        lstm = torch.nn.LSTM(40, SMALL["model_hidden_size"], SMALL["model_num_layers"],
                             batch_first=True)
        linear = torch.nn.Linear(SMALL["model_hidden_size"], SMALL["model_embedding_size"])
        state = {"similarity_weight": torch.tensor([10.0]), "similarity_bias": torch.tensor([-5.0])}
        state.update({f"lstm.{k}": v for k, v in lstm.state_dict().items()})
        state.update({f"linear.{k}": v for k, v in linear.state_dict().items()})
        small_path = os.path.join(out, "resemblyzer_small.pt")
        torch.save({"step": 0, "model_state": state}, small_path)
        encoder = VoiceEncoder("cpu", verbose=False, weights_fpath=small_path)
        for key, value in encoder.state_dict().items():   # the package loads with strict=False
            assert torch.equal(value, state[key]), key
        small = outputs(encoder)
    finally:
        for name, value in saved.items():
            setattr(ve, name, value)
    np.savez(os.path.join(out, "resemblyzer_small.npz"), **small)

    import importlib.metadata as md
    return {name: md.version(name) for name in ("resemblyzer", "torch", "numpy", "librosa",
                                                "scipy", "webrtcvad")}
