"""Speed perturbation (sox ``speed``: tempo and pitch together) by resampling.

``speed_perturb(x, 1.1)`` plays ``x`` 1.1 times faster: it is resampled with
``scipy.signal.resample_poly`` to ``len(x) / 1.1`` samples (rounded up) and
kept at the same sample rate, so durations shrink and frequencies rise by
the factor.  As in WeSpeaker (and Kaldi's ``sp0.9-``/``sp1.1-`` speakers), a
perturbed utterance counts as a new speaker: with ``S`` training speakers
and speed index ``k`` (0: unperturbed, ``i + 1``: ``factors[i]``) the class
label is ``label + k * S`` (:func:`speed_speaker_label`), so the classifier
needs ``S * (1 + len(factors))`` outputs.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

MAX_DENOMINATOR = 1000  # factor 1.1 -> resample 10/11, 0.95 -> 20/19


def speed_ratio(factor: float) -> Fraction:
    """The speed factor as a small fraction (``up / down = 1 / factor``)."""
    if factor <= 0:
        raise ValueError(f"speed factor must be > 0, got {factor}")
    return Fraction(factor).limit_denominator(MAX_DENOMINATOR)


def speed_perturb(waveform: np.ndarray, factor: float) -> np.ndarray:
    """``waveform`` played ``factor`` times faster (length ``ceil(n / factor)``)."""
    waveform = np.asarray(waveform, dtype=np.float64)
    ratio = speed_ratio(factor)
    if ratio == 1 or len(waveform) == 0:
        return waveform.copy()
    from scipy.signal import resample_poly  # noqa: PLC0415 (scipy.signal is slow to import)
    # resample_poly(x, up, down) has ceil(n * up / down) samples
    return resample_poly(waveform, ratio.denominator, ratio.numerator)


def speed_speaker_label(label: int, speed_index: int, num_speakers: int) -> int:
    """Class of speaker ``label`` at speed index ``speed_index`` (0: unperturbed)."""
    if not 0 <= label < num_speakers:
        raise ValueError(f"label {label} is not in [0, {num_speakers})")
    if speed_index < 0:
        raise ValueError(f"speed index must be >= 0, got {speed_index}")
    return label + speed_index * num_speakers


def speed_speaker_id(speaker: str, factor: float) -> str:
    """Kaldi's name for a speaker at another speed (``sp1.1-spk``); 1.0 keeps it."""
    return speaker if factor == 1.0 else f"sp{factor:g}-{speaker}"
