"""SpeechBrain's ``Fbank`` front-end (speechbrain.lobes.features.Fbank, 1.x) in numpy.

As ``spkrec-ecapa-voxceleb`` computes it: the waveform in [-1, 1]; a centred STFT (400-point
periodic Hamming window, hop 160, zero padding); the power spectrum; 80 triangular filters
equally spaced on the HTK mel scale over 0-8 kHz, each as wide on both sides as its lower
half (peak 1, not area-normalised); ``10 log10`` floored at 1e-10 and clipped 80 dB under the
utterance's maximum; then the utterance mean removed (``InputNormalization``, sentence,
no variance normalisation).  It is not Kaldi's fbank: no pre-emphasis, no DC removal, no
dither, natural log vs dB (a factor 10 / ln 10), the window and the filter shapes differ.
"""
from __future__ import annotations

import numpy as np

SAMPLE_RATE, N_FFT, HOP, NUM_MELS = 16000, 400, 160, 80


def _to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def _to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def filters(num_mels: int = NUM_MELS, f_min: float = 0.0, f_max: float = SAMPLE_RATE / 2,
            n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(n_fft // 2 + 1, num_mels) SpeechBrain triangular filters."""
    hz = _to_hz(np.linspace(_to_mel(f_min), _to_mel(f_max), num_mels + 2))
    band, central = (hz[1:] - hz[:-1])[:-1], hz[1:-1]
    freqs = np.linspace(0, sample_rate // 2, n_fft // 2 + 1)
    slope = (freqs[None, :] - central[:, None]) / band[:, None]
    return np.maximum(0.0, np.minimum(slope + 1.0, 1.0 - slope)).T


def fbank(wav: np.ndarray, num_mels: int = NUM_MELS, top_db: float = 80.0) -> np.ndarray:
    """(1 + len // 160, num_mels) float32 log mel energies (dB) of a [-1, 1] waveform."""
    wav = np.asarray(wav, dtype=np.float64)
    padded = np.pad(wav, (N_FFT // 2, N_FFT // 2))
    count = 1 + (len(padded) - N_FFT) // HOP
    frames = np.lib.stride_tricks.as_strided(
        padded, shape=(count, N_FFT), strides=(HOP * padded.strides[0], padded.strides[0]))
    window = 0.54 - 0.46 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)   # periodic Hamming
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    db = 10.0 * np.log10(np.maximum(power @ filters(num_mels), 1e-10))
    return np.maximum(db, db.max() - top_db).astype(np.float32)


def features(wav: np.ndarray, num_mels: int = NUM_MELS) -> np.ndarray:
    """:func:`fbank` with the utterance mean removed (spkrec-ecapa-voxceleb's input)."""
    feats = fbank(wav, num_mels).astype(np.float64)
    return (feats - feats.mean(axis=0)).astype(np.float32)
