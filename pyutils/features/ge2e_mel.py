"""Resemblyzer's GE2E front-end: volume normalisation, WebRTC VAD trimming,
a 40-band (Slaney) mel power spectrogram and the partial-utterance slices.

Re-implements ``resemblyzer.audio`` / ``VoiceEncoder.compute_partial_slices``
(version 0.1.4) in numpy, without librosa:

- ``normalize_volume``: gain to -30 dBFS RMS, only ever raising the level;
- ``trim_long_silences``: WebRTC VAD (mode 3) on 30 ms windows of the
  int16-rounded waveform, moving average over 8 windows, rounded, dilated by
  7 windows; unvoiced samples are dropped (the tail that does not fill a
  window too);
- ``mel_spectrogram``: librosa.feature.melspectrogram's defaults as
  Resemblyzer calls it: 400-point periodic Hann window, hop 160, frames
  centred on zero padding (librosa >= 0.10), power 2, 40 Slaney-scale
  Slaney-normalised triangles over 0-8 kHz.  Not a log spectrum;
- ``partial_slices``: 160-frame (1.6 s) windows every ``round(16000 / rate /
  160)`` frames; the last one is kept when it covers ``min_coverage`` of a
  window (or is the only one).

Waveforms here are float in [-1, 1] (the toolkit's int16-scale samples / 32768).
Everything runs in float64 and returns float32.
"""
from __future__ import annotations

from typing import List, Tuple

import numpy as np

SAMPLE_RATE = 16000
WINDOW_MS, SHIFT_MS, NUM_MELS = 25, 10, 40
PARTIAL_FRAMES = 160
VAD_WINDOW_MS, VAD_AVERAGE_WIDTH, VAD_MAX_SILENCE = 30, 8, 6
TARGET_DBFS = -30.0
INT16_MAX = 2 ** 15 - 1


def hz_to_mel(freq):
    """Slaney's mel scale (librosa ``htk=False``): linear below 1 kHz, log above."""
    freq = np.asarray(freq, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(freq >= min_log_hz,
                    min_log_mel + np.log(np.maximum(freq, min_log_hz) / min_log_hz) / logstep,
                    freq / f_sp)


def mel_to_hz(mels):
    mels = np.asarray(mels, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(mels >= min_log_mel,
                    min_log_hz * np.exp(logstep * (mels - min_log_mel)), f_sp * mels)


def mel_filters(sample_rate: int = SAMPLE_RATE, n_fft: int = 400,
                num_mels: int = NUM_MELS) -> np.ndarray:
    """(num_mels, n_fft // 2 + 1) Slaney-normalised triangles, 0 Hz to Nyquist (librosa's)."""
    fft_freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    mel_freqs = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2), num_mels + 2))
    widths = np.diff(mel_freqs)
    ramps = mel_freqs[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_freqs[2:] - mel_freqs[:-2]))[:, None]
    return weights.astype(np.float32)


def mel_spectrogram(wav: np.ndarray, sample_rate: int = SAMPLE_RATE,
                    num_mels: int = NUM_MELS) -> np.ndarray:
    """(1 + len // hop, num_mels) float32 mel power spectrogram (librosa's melspectrogram)."""
    n_fft = sample_rate * WINDOW_MS // 1000
    hop = sample_rate * SHIFT_MS // 1000
    wav = np.asarray(wav, dtype=np.float64)
    padded = np.pad(wav, (n_fft // 2, n_fft // 2))
    num_frames = 1 + (len(padded) - n_fft) // hop
    frames = np.lib.stride_tricks.as_strided(
        padded, shape=(num_frames, n_fft), strides=(hop * padded.strides[0], padded.strides[0]))
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)   # periodic Hann
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    return (power @ mel_filters(sample_rate, n_fft, num_mels).T.astype(np.float64)
            ).astype(np.float32)


def normalize_volume(wav: np.ndarray, target_dbfs: float = TARGET_DBFS,
                     increase_only: bool = True) -> np.ndarray:
    """Scale to ``target_dbfs`` RMS (int16 full scale); never lowers it when ``increase_only``.
    Digital silence (RMS 0) is returned as is (Resemblyzer would give NaN)."""
    rms = np.sqrt(np.mean((wav * INT16_MAX) ** 2)) if len(wav) else 0.0
    if rms == 0:
        return wav
    change = target_dbfs - 20 * np.log10(rms / INT16_MAX)
    if change < 0 and increase_only:
        return wav
    return wav * (10 ** (change / 20))


def _moving_average(flags: np.ndarray, width: int) -> np.ndarray:
    padded = np.concatenate((np.zeros((width - 1) // 2), flags, np.zeros(width // 2)))
    sums = np.cumsum(padded, dtype=float)
    sums[width:] = sums[width:] - sums[:-width]
    return sums[width - 1:] / width


def _dilate(mask: np.ndarray, width: int) -> np.ndarray:
    """Binary dilation by a centred structuring element of ``width`` ones (scipy's origin)."""
    left = width // 2                       # scipy centres a length-w element at w // 2
    padded = np.concatenate((np.zeros(left, bool), mask, np.zeros(width - 1 - left, bool)))
    out = np.zeros(len(mask), bool)
    for shift in range(width):
        out |= padded[shift:shift + len(mask)]
    return out


def voiced_mask(wav: np.ndarray, mode: int = 3, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Per-sample keep mask of :func:`trim_long_silences` (length: whole windows only)."""
    try:
        import webrtcvad
    except ImportError as err:
        raise ImportError("the GE2E front-end's VAD needs the 'webrtcvad' package "
                          "(pinned in requirements.txt); or set model.vad: false") from err
    window = VAD_WINDOW_MS * sample_rate // 1000
    wav = wav[:len(wav) - len(wav) % window]
    pcm = np.round(wav * INT16_MAX).astype(np.int16).tobytes()   # native (little) endian
    vad = webrtcvad.Vad(mode)
    flags = np.array([vad.is_speech(pcm[start * 2:(start + window) * 2], sample_rate=sample_rate)
                      for start in range(0, len(wav), window)], dtype=float)
    if len(flags) == 0:
        return np.zeros(0, bool)
    mask = np.round(_moving_average(flags, VAD_AVERAGE_WIDTH)).astype(bool)
    return np.repeat(_dilate(mask, VAD_MAX_SILENCE + 1), window)


def trim_long_silences(wav: np.ndarray, mode: int = 3) -> np.ndarray:
    """The samples of ``wav`` that the smoothed VAD keeps (Resemblyzer's trimming)."""
    mask = voiced_mask(wav, mode)
    return wav[:len(mask)][mask]


def preprocess(wav: np.ndarray, vad: bool = True) -> np.ndarray:
    """Resemblyzer's ``preprocess_wav`` for 16 kHz audio: volume, then VAD trimming."""
    wav = normalize_volume(np.asarray(wav), TARGET_DBFS, increase_only=True)
    return trim_long_silences(wav) if vad else wav


def partial_slices(num_samples: int, rate: float = 1.3, min_coverage: float = 0.75,
                   partial_frames: int = PARTIAL_FRAMES, sample_rate: int = SAMPLE_RATE
                   ) -> Tuple[List[slice], List[slice]]:
    """(waveform slices, mel-frame slices) of the partial utterances
    (``VoiceEncoder.compute_partial_slices``); slices may run past the end."""
    if not 0 < min_coverage <= 1:
        raise ValueError(f"min_coverage must be in (0, 1], got {min_coverage}")
    hop = sample_rate * SHIFT_MS // 1000
    num_frames = int(np.ceil((num_samples + 1) / hop))
    step = int(np.round((sample_rate / rate) / hop))
    if not 0 < step <= partial_frames:
        raise ValueError(f"partial rate {rate}/s gives a step of {step} frames; "
                         f"it must be 1..{partial_frames}")
    wav_slices, mel_slices = [], []
    for start in range(0, max(1, num_frames - partial_frames + step + 1), step):
        mel_slices.append(slice(start, start + partial_frames))
        wav_slices.append(slice(start * hop, (start + partial_frames) * hop))
    last = wav_slices[-1]
    coverage = (num_samples - last.start) / (last.stop - last.start)
    if coverage < min_coverage and len(mel_slices) > 1:
        wav_slices, mel_slices = wav_slices[:-1], mel_slices[:-1]
    return wav_slices, mel_slices


def partial_mels(wav: np.ndarray, rate: float = 1.3, min_coverage: float = 0.75
                 ) -> np.ndarray:
    """(partials, 160, 40) mel windows of a preprocessed waveform, zero-padded
    to the last window's end as ``VoiceEncoder.embed_utterance`` does."""
    wav_slices, mel_slices = partial_slices(len(wav), rate, min_coverage)
    end = wav_slices[-1].stop
    if end >= len(wav):
        wav = np.pad(wav, (0, end - len(wav)))
    mel = mel_spectrogram(wav)
    return np.stack([mel[s] for s in mel_slices])


def utterance_partials(wav: np.ndarray, vad: bool = True, vad_mode: int = 3, rate: float = 1.3,
                       min_coverage: float = 0.75) -> np.ndarray:
    """(partials, 160, 40) network input of one utterance in [-1, 1], as
    ``VoiceEncoder.embed_utterance`` after ``preprocess_wav`` makes it: volume, VAD
    trimming (audio it finds no speech in stays untrimmed), the partial mel windows."""
    wav = normalize_volume(np.asarray(wav, dtype=np.float64))
    if vad:
        trimmed = trim_long_silences(wav, vad_mode)
        wav = trimmed if len(trimmed) else wav
    return partial_mels(wav, rate, min_coverage)

