"""Additive noise at an exact signal-to-noise ratio, from any folder of noise files.

SNR is defined on power over the whole utterance: with ``P(x)`` the mean
square of ``x``, the noise track ``n`` is scaled by ``g`` so that
``P(speech) / P(g * n) == 10 ** (snr / 10)`` exactly; the output is
``speech + g * n`` (no clipping here; :class:`pyutils.augment.Augmenter`
and the command-line tools clip once at the end).  A silent utterance or a
silent noise track has no defined SNR: the speech is returned unchanged.

A :class:`NoiseSource` groups noise files into categories, each with an SNR
range and a way to build the noise track:

* ``background``: ``num_noises`` files (a random count in the range, chosen
  with replacement), each cut at a random offset when longer than the speech
  or tiled (repeated from its start) when shorter, each brought to unit power
  and summed.  With several files this is babble.
* ``foreground`` (Kaldi's ``--fg-interval``): files one after another from
  the start, each whole (the last cut at the end of the speech), each at
  unit power, separated by ``interval`` seconds of silence.

Unlike Kaldi's wav-reverberate, which gives each added noise its own SNR
against the speech, the summed track is scaled once to hit the requested
SNR exactly (per-noise unit power keeps their levels balanced, as Kaldi's
equal-SNR noises would be).

Pointed at a MUSAN root (a folder with at least two of ``music/``,
``noise/``, ``speech/``, or named ``musan`` with at least one), the
categories are Kaldi's egs/voxceleb/v2 ones, with the SNR lists widened to
uniform ranges: ``noise`` (foreground, one every 1 s, 0-15 dB), ``music``
(one background file, 5-15 dB) and ``babble`` (3-7 summed ``speech`` files,
13-20 dB).  Any other folder (or file) is one ``noise`` category:
background, 0-15 dB.  Audio files are found by extension (wav, flac, ogg),
recursively unless ``recursive=False``; a file at another sample rate is
resampled (scipy ``resample_poly``), a multi-channel one gives channel 0.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import soundfile as sf

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
INT16_SCALE = 32768.0  # samples are float64 on the int16 scale, as pyutils.data.audio reads them
MUSAN_SUBDIRS = {"noise": "noise", "music": "music", "speech": "babble"}

PathList = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]


# --------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------

def list_audio_files(path: Union[str, os.PathLike], recursive: bool = True) -> List[str]:
    """Audio files under ``path`` (or ``path`` itself), sorted; hidden names skipped."""
    path = os.fspath(path)
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise FileNotFoundError(f"no such file or directory: {path}")
    found = []
    for root, dirs, files in os.walk(path, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recursive else []
        found.extend(os.path.join(root, name) for name in files
                     if not name.startswith(".") and name.lower().endswith(AUDIO_EXTENSIONS))
    return sorted(found)


def as_path_list(paths: PathList) -> List[str]:
    """One path or several (a ``PathList``, as noise and RIR options give) as a list of str."""
    if isinstance(paths, (str, os.PathLike)):
        return [os.fspath(paths)]
    return [os.fspath(p) for p in paths]


def resample(samples: np.ndarray, rate_from: int, rate_to: int) -> np.ndarray:
    """Band-limited rate conversion with ``resample_poly`` (identity if equal)."""
    if rate_from == rate_to:
        return samples
    from scipy.signal import resample_poly  # noqa: PLC0415 (scipy.signal is slow to import)
    ratio = Fraction(int(rate_to), int(rate_from))
    return resample_poly(samples, ratio.numerator, ratio.denominator)


class AudioFiles:
    """Reads (parts of) audio files on the int16 scale at one sample rate.

    File headers are cached; audio is read on demand, only the part needed.
    """

    def __init__(self, sample_rate: int):
        self.sample_rate = int(sample_rate)
        self._info: Dict[str, Tuple[int, int]] = {}

    def info(self, path: str) -> Tuple[int, int]:
        """``(frames, rate)`` of ``path`` as stored."""
        if path not in self._info:
            try:
                info = sf.info(path)
            except (sf.LibsndfileError, RuntimeError) as err:
                raise RuntimeError(f"cannot read audio file {path}: {err}") from None
            self._info[path] = (int(info.frames), int(info.samplerate))
        return self._info[path]

    def num_samples(self, path: str) -> int:
        """Length of ``path`` in samples at :attr:`sample_rate`."""
        frames, rate = self.info(path)
        return frames if rate == self.sample_rate else int(round(frames * self.sample_rate / rate))

    def read(self, path: str, start: int = 0, frames: int = -1) -> np.ndarray:
        """Channel 0 of stored frames ``[start, start + frames)``, resampled, int16 scale."""
        _, rate = self.info(path)
        try:
            data, _ = sf.read(path, start=start, frames=frames, dtype="float64", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as err:
            raise RuntimeError(f"cannot read audio file {path}: {err}") from None
        return resample(data[:, 0] * INT16_SCALE, rate, self.sample_rate)

    def head(self, path: str, num_samples: int) -> np.ndarray:
        """The first ``num_samples`` (or fewer, if shorter) at :attr:`sample_rate`."""
        _, rate = self.info(path)
        frames = num_samples if rate == self.sample_rate else \
            math.ceil(num_samples * rate / self.sample_rate) + 1
        return self.read(path, 0, frames)[:num_samples]

    def segment(self, path: str, num_samples: int, rng: np.random.Generator) -> np.ndarray:
        """``num_samples`` of ``path``: from a random offset, or tiled if it is shorter."""
        frames, rate = self.info(path)
        if frames == 0:
            return np.zeros(num_samples)
        needed = num_samples if rate == self.sample_rate else \
            math.ceil(num_samples * rate / self.sample_rate) + 1
        if frames >= needed:
            start = int(rng.integers(0, frames - needed + 1))
            data = self.read(path, start, needed)
        else:
            data = self.read(path)
        return fit_length(data, num_samples)


def fit_length(samples: np.ndarray, num_samples: int) -> np.ndarray:
    """Cut to ``num_samples`` or repeat from the start (tile) up to it."""
    if len(samples) == 0:
        return np.zeros(num_samples)
    if len(samples) < num_samples:
        samples = np.tile(samples, -(-num_samples // len(samples)))
    return samples[:num_samples]


# --------------------------------------------------------------------------
# Mixing
# --------------------------------------------------------------------------

def power(samples: np.ndarray) -> float:
    """Mean square over the whole signal (0 for an empty one)."""
    return float(np.mean(np.square(samples, dtype=np.float64))) if len(samples) else 0.0


def unit_power(samples: np.ndarray) -> np.ndarray:
    p = power(samples)
    return samples / math.sqrt(p) if p > 0 else samples


def add_noise(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``speech + g * noise`` with ``g`` giving exactly ``snr_db`` (whole-utterance power).

    ``noise`` must have the speech's length.  Silent speech or noise: the
    speech is returned unchanged (a copy).
    """
    speech = np.asarray(speech, dtype=np.float64)
    if len(noise) != len(speech):
        raise ValueError(f"noise has {len(noise)} samples, speech {len(speech)}")
    p_speech, p_noise = power(speech), power(noise)
    if p_speech == 0 or p_noise == 0:
        logger.debug("silent %s: no noise added", "speech" if p_speech == 0 else "noise")
        return speech.copy()
    gain = math.sqrt(p_speech / (p_noise * 10.0 ** (snr_db / 10.0)))
    return speech + gain * np.asarray(noise, dtype=np.float64)


def noise_track(files: Sequence[str], num_samples: int, rng: np.random.Generator,
                reader: AudioFiles, mode: str = "background", interval: float = 1.0) -> np.ndarray:
    """Noise track of ``num_samples`` built from ``files`` in the given order.

    ``background``: every file is used once (random offset or tiled), each at
    unit power, summed.  ``foreground``: the files follow each other from
    sample 0 (cycling through the list if needed), each whole and at unit
    power, ``interval`` seconds apart.  See the module docstring.
    """
    if not files:
        raise ValueError("no noise files")
    track = np.zeros(num_samples)
    if mode == "background":
        for path in files:
            track += unit_power(reader.segment(path, num_samples, rng))
        return track
    if mode != "foreground":
        raise ValueError(f"noise mode must be 'background' or 'foreground', got '{mode}'")
    gap = int(round(interval * reader.sample_rate))
    position, index = 0, 0
    while position < num_samples:
        path = files[index % len(files)]
        index += 1
        length = min(reader.num_samples(path), num_samples - position)
        piece = unit_power(reader.head(path, length)) if length > 0 else np.zeros(0)
        track[position:position + len(piece)] = piece
        position += max(reader.num_samples(path), 1) + gap
    return track


# --------------------------------------------------------------------------
# Categories and the source
# --------------------------------------------------------------------------

@dataclass
class NoiseCategory:
    """Noise files plus how to use them: SNR range (dB), count, track mode."""
    name: str
    files: List[str]
    snr: Tuple[float, float] = (0.0, 15.0)
    num_noises: Tuple[int, int] = (1, 1)
    mode: str = "background"
    interval: float = 1.0
    weight: float = 1.0

    def __post_init__(self):
        self.snr = _pair(self.snr, float, f"{self.name} snr")
        self.num_noises = _pair(self.num_noises, int, f"{self.name} num_noises")
        if self.num_noises[0] < 1:
            raise ValueError(f"{self.name}: num_noises must be >= 1")
        if self.mode not in ("background", "foreground"):
            raise ValueError(f"{self.name}: mode must be 'background' or 'foreground'")
        if self.interval < 0 or self.weight < 0:
            raise ValueError(f"{self.name}: interval and weight must be >= 0")

    def choose(self, rng: np.random.Generator, num_samples: int,
               reader: AudioFiles) -> List[str]:
        """Files for one utterance: ``num_noises`` of them, or for foreground
        enough to cover ``num_samples`` (with the gaps)."""
        if self.mode == "background":
            count = int(rng.integers(self.num_noises[0], self.num_noises[1] + 1))
            return [self.files[i] for i in rng.integers(0, len(self.files), count)]
        chosen, covered = [], 0
        gap = int(round(self.interval * reader.sample_rate))
        while covered < num_samples:
            path = self.files[int(rng.integers(0, len(self.files)))]
            chosen.append(path)
            covered += max(reader.num_samples(path), 1) + gap
        return chosen


def _pair(value, kind, what) -> tuple:
    if isinstance(value, (int, float)):
        value = (value, value)
    if len(value) != 2:
        raise ValueError(f"{what}: expected [low, high], got {value}")
    low, high = kind(value[0]), kind(value[1])
    if high < low:
        raise ValueError(f"{what}: high {high} < low {low}")
    return low, high


def musan_categories() -> Dict[str, dict]:
    """Kaldi egs/voxceleb/v2 settings per MUSAN category (SNR lists as ranges)."""
    return {
        "noise": dict(snr=(0.0, 15.0), mode="foreground", interval=1.0),
        "music": dict(snr=(5.0, 15.0), num_noises=(1, 1)),
        "babble": dict(snr=(13.0, 20.0), num_noises=(3, 7)),
    }


def is_musan_root(path: str) -> bool:
    if not os.path.isdir(path):
        return False
    present = [d for d in MUSAN_SUBDIRS if os.path.isdir(os.path.join(path, d))]
    return len(present) >= 2 or (len(present) >= 1
                                 and os.path.basename(os.path.normpath(path)).lower() == "musan")


class NoiseSource:
    """Noise files by category (see the module docstring).

    ``paths``: a folder, a file or a list of them.  ``overrides`` maps a
    category name to settings replacing its defaults (``snr``,
    ``num_noises``, ``mode``, ``interval``, ``weight``); ``snr`` replaces the
    SNR range of every category.  A category is drawn in proportion to its
    weight (all 1 by default).
    """

    def __init__(self, paths: PathList, recursive: bool = True, sample_rate: int = 16000,
                 snr: Optional[Sequence[float]] = None,
                 overrides: Optional[Mapping[str, Mapping]] = None):
        self.sample_rate = int(sample_rate)
        self.reader = AudioFiles(self.sample_rate)
        files: Dict[str, List[str]] = {}
        settings: Dict[str, dict] = {}
        for path in as_path_list(paths):
            if is_musan_root(path):
                for sub, name in MUSAN_SUBDIRS.items():
                    folder = os.path.join(path, sub)
                    if os.path.isdir(folder):
                        files.setdefault(name, []).extend(list_audio_files(folder, recursive))
                        settings.setdefault(name, musan_categories()[name])
            else:
                files.setdefault("noise", []).extend(list_audio_files(path, recursive))
                settings.setdefault("noise", {})
        overrides = dict(overrides or {})
        unknown = set(overrides) - set(files)
        if unknown:
            raise ValueError(f"noise settings for unknown categories {sorted(unknown)}; "
                             f"found: {sorted(files)}")
        self.categories: Dict[str, NoiseCategory] = {}
        for name in sorted(files):
            if not files[name]:
                logger.warning("noise category '%s' has no audio files; skipped", name)
                continue
            params = dict(settings[name], **overrides.get(name, {}))
            if snr is not None:
                params["snr"] = snr
            try:
                self.categories[name] = NoiseCategory(name, sorted(set(files[name])), **params)
            except TypeError as err:  # an unknown setting name
                raise ValueError(f"noise category '{name}': {err}") from None
        if not self.categories:
            raise ValueError(f"no noise audio files (wav/flac/ogg) under {as_path_list(paths)}")

    def __repr__(self) -> str:
        parts = ", ".join(f"{c.name}: {len(c.files)} files, {c.snr[0]:g}-{c.snr[1]:g} dB"
                          for c in self.categories.values())
        return f"NoiseSource({parts})"

    def choose_category(self, rng: np.random.Generator) -> NoiseCategory:
        cats = list(self.categories.values())
        weights = np.array([c.weight for c in cats], dtype=np.float64)
        if weights.sum() <= 0:
            raise ValueError("all noise category weights are 0")
        return cats[int(rng.choice(len(cats), p=weights / weights.sum()))]

    def sample(self, num_samples: int, rng: np.random.Generator,
               category: Optional[str] = None) -> Tuple[np.ndarray, float, str]:
        """``(noise track, snr_db, category name)`` for an utterance of ``num_samples``."""
        cat = self.categories[category] if category else self.choose_category(rng)
        snr = float(rng.uniform(*cat.snr))
        files = cat.choose(rng, num_samples, self.reader)
        track = noise_track(files, num_samples, rng, self.reader, cat.mode, cat.interval)
        return track, snr, cat.name

    def add(self, speech: np.ndarray, rng: np.random.Generator, snr: Optional[float] = None,
            category: Optional[str] = None) -> np.ndarray:
        """Speech plus a random noise of a random category at a random (or given) SNR."""
        track, drawn, _ = self.sample(len(speech), rng, category)
        return add_noise(speech, track, drawn if snr is None else snr)
