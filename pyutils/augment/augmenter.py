"""On-the-fly waveform augmentation from a config dict (training-time, per utterance).

Config (every section optional; a section with ``prob: 0`` builds nothing)::

    noise:
      prob: 0.6                    # chance an utterance gets additive noise
      dirs: [/path/musan, $SV_CORPUS_ROOT/asc/background_noise]   # folders or files ($VARs expanded)
      snr: [0, 15]                 # optional: one SNR range (dB) for all categories
      recursive: true
      categories:                  # optional per-category overrides
        music: {snr: [5, 15], weight: 1.0, num_noises: [1, 1],
                mode: background, interval: 1.0}
    reverb:
      prob: 0.3
      rir_dirs: [/path/RIRS_NOISES]   # or:
      simulate: true                  # or a dict of RoomSimulator options
      weights: {smallroom: 1, mediumroom: 1}   # optional (file RIRs)
      normalize: true                 # rescale to the input's power
    speed:
      prob: 0.0
      factors: [0.9, 1.1]
    clip: true

Each augmentation is drawn independently for every utterance, in the order
speed -> reverb -> noise (the noise SNR is against the reverberated speech,
whose power equals the clean one).  Noise and reverb keep the length; speed
changes it and, as in WeSpeaker, makes a new speaker (see
:func:`pyutils.augment.speed.speed_speaker_label`; :meth:`Augmenter.apply`
returns the speed index).  Samples are float64 on the int16 scale; the
result is clipped once, at the end, to the int16 range [-32768, 32767]
(``clip: false`` leaves it unclipped).  There is no peak normalisation
(WeSpeaker's), so levels stay comparable with un-augmented speech and a
clipped sample is what a 16-bit recording of the mix would hold.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import List, Mapping, Optional

import numpy as np

from pyutils.augment.noise import NoiseSource, add_noise
from pyutils.augment.reverb import RirSource, RoomSimulator, reverberate
from pyutils.augment.speed import speed_perturb, speed_speaker_label

INT16_MIN, INT16_MAX = -32768.0, 32767.0

_KEYS = {
    "noise": {"prob", "dirs", "snr", "recursive", "categories"},
    "reverb": {"prob", "rir_dirs", "simulate", "weights", "normalize", "recursive"},
    "speed": {"prob", "factors"},
}


def expand_paths(paths, what: str) -> List[str]:
    """Expand ``$VAR`` in configured paths, e.g. ``$SV_CORPUS_ROOT/asc/background_noise``
    (run.sh exports SV_CORPUS_ROOT = its --corpus-root); an unset variable is an error."""
    expanded = []
    for path in [paths] if isinstance(paths, str) else list(paths):
        value = os.path.expandvars(str(path))
        if "$" in value:
            raise ValueError(f"augment config '{what}': '{path}' names an unset environment "
                             f"variable (run.sh exports SV_CORPUS_ROOT from --corpus-root)")
        expanded.append(value)
    return expanded


def clip_int16(waveform: np.ndarray) -> np.ndarray:
    """Clip to the int16 range (still float64)."""
    return np.clip(waveform, INT16_MIN, INT16_MAX)


def to_int16(waveform: np.ndarray) -> np.ndarray:
    """Round and clip to int16 samples, as the command-line tools write them."""
    return np.clip(np.round(waveform), INT16_MIN, INT16_MAX).astype(np.int16)


@dataclass
class AugmentResult:
    waveform: np.ndarray
    speed_index: int = 0                                # 0: unperturbed, k: factors[k-1]
    applied: List[str] = field(default_factory=list)    # e.g. ['speed0.9', 'reverb', 'noise:music']


def _section(config: Mapping, name: str) -> dict:
    section = dict(config.get(name) or {})
    unknown = set(section) - _KEYS[name]
    if unknown:
        raise ValueError(f"augment config '{name}': unknown keys {sorted(unknown)}")
    prob = float(section.get("prob", 0.0))
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"augment config '{name}': prob must be in [0, 1], got {prob}")
    section["prob"] = prob
    return section


class Augmenter:
    """Applies speed / reverb / noise augmentation with per-utterance probabilities."""

    def __init__(self, config: Optional[Mapping], sample_rate: int = 16000):
        config = dict(config or {})
        unknown = set(config) - set(_KEYS) - {"clip"}
        if unknown:
            raise ValueError(f"augment config: unknown sections {sorted(unknown)}")
        self.sample_rate = int(sample_rate)
        self.clip = bool(config.get("clip", True))

        noise = _section(config, "noise")
        self.noise_prob = noise["prob"]
        self.noise: Optional[NoiseSource] = None
        if self.noise_prob > 0:
            if not noise.get("dirs"):
                raise ValueError("augment config 'noise': prob > 0 needs 'dirs'")
            self.noise = NoiseSource(expand_paths(noise["dirs"], "noise.dirs"),
                                     noise.get("recursive", True),
                                     self.sample_rate, noise.get("snr"),
                                     noise.get("categories"))

        reverb = _section(config, "reverb")
        self.reverb_prob = reverb["prob"]
        self.reverb_normalize = bool(reverb.get("normalize", True))
        self.rirs = None
        if self.reverb_prob > 0:
            simulate = reverb.get("simulate", False)
            if bool(reverb.get("rir_dirs")) == bool(simulate):
                raise ValueError("augment config 'reverb': give exactly one of 'rir_dirs' "
                                 "and 'simulate'")
            if simulate:
                options = simulate if isinstance(simulate, Mapping) else {}
                try:
                    self.rirs = RoomSimulator(self.sample_rate, **options)
                except TypeError as err:  # an unknown option name
                    raise ValueError(f"augment config 'reverb.simulate': {err}") from None
            else:
                self.rirs = RirSource(expand_paths(reverb["rir_dirs"], "reverb.rir_dirs"),
                                      reverb.get("recursive", True),
                                      self.sample_rate, reverb.get("weights"))

        speed = _section(config, "speed")
        self.speed_prob = speed["prob"]
        self.speed_factors = [float(f) for f in speed.get("factors", [0.9, 1.1])]
        if self.speed_prob > 0 and (not self.speed_factors
                                    or any(f <= 0 or f == 1.0 for f in self.speed_factors)):
            raise ValueError(f"augment config 'speed': factors must be > 0 and != 1, "
                             f"got {self.speed_factors}")

    def num_classes(self, num_speakers: int) -> int:
        """Classifier outputs needed: speed-perturbed copies are new speakers."""
        return num_speakers * (1 + len(self.speed_factors)) if self.speed_prob > 0 \
            else num_speakers

    def label(self, label: int, speed_index: int, num_speakers: int) -> int:
        return speed_speaker_label(label, speed_index, num_speakers)

    def apply(self, waveform: np.ndarray, rng: np.random.Generator) -> AugmentResult:
        """Augment one utterance; also report the speed index and what was applied."""
        out = np.asarray(waveform, dtype=np.float64)
        draws = rng.random(3)  # one draw per kind, always, so the streams stay aligned
        result = AugmentResult(out)
        if draws[0] < self.speed_prob:
            result.speed_index = int(rng.integers(1, len(self.speed_factors) + 1))
            factor = self.speed_factors[result.speed_index - 1]
            out = speed_perturb(out, factor)
            result.applied.append(f"speed{factor:g}")
        if draws[1] < self.reverb_prob:
            out = reverberate(out, self.rirs.sample(rng), self.reverb_normalize)
            result.applied.append("reverb")
        if draws[2] < self.noise_prob:
            track, snr, category = self.noise.sample(len(out), rng)
            out = add_noise(out, track, snr)
            result.applied.append(f"noise:{category}")
        result.waveform = clip_int16(out) if self.clip else out
        return result

    def __call__(self, waveform: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.apply(waveform, rng).waveform
