"""Reverberation: convolve speech with a room impulse response (RIR).

:func:`reverberate` convolves with ``scipy.signal.fftconvolve`` and keeps
``len(speech)`` samples starting at the RIR's direct-path peak (the sample
of largest magnitude), as Kaldi's ``wav-reverberate --shift-output=true``
does, so the output is time-aligned with the input (VAD and segment times
stay valid).  The output is then rescaled to the input's power (Kaldi's
``--normalize-output=true``): reverberation changes the sound, not its level,
and an identity RIR gives the input back.  RIRs are also normalised to unit
energy when loaded (as WeSpeaker does), which matters only with
``normalize=False``.

RIRs come from files (:class:`RirSource`) or a room simulator
(:class:`RoomSimulator`, needs pyroomacoustics, imported on first use).

:class:`RirSource` layouts:

* an OpenSLR-28 ``RIRS_NOISES`` root (has ``simulated_rirs/`` or
  ``real_rirs_isotropic_noises/``): one category per
  ``simulated_rirs/<name>/`` (``smallroom``, ``mediumroom``, ``largeroom``)
  and ``real`` for ``real_rirs_isotropic_noises/*.wav`` minus the isotropic
  noise recordings kept there (names containing ``noise``);
  ``pointsource_noises/`` is ignored;
* a ``simulated_rirs`` folder (has ``smallroom/`` ...): one category per subfolder;
* any other folder or file: one category ``rir``.

Categories are drawn by weight; by default, as in Kaldi's egs/voxceleb/v2,
only ``smallroom`` and ``mediumroom`` with equal weight when either exists,
else all categories equally.  Multi-channel RIRs give channel 0.
"""
from __future__ import annotations

import logging
import math
import os
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from pyutils.augment.noise import AudioFiles, PathList, as_path_list, list_audio_files, power

logger = logging.getLogger(__name__)

SIMULATED_ROOMS = ("smallroom", "mediumroom", "largeroom")
KALDI_DEFAULT_WEIGHTS = {"smallroom": 1.0, "mediumroom": 1.0}
REAL_RIR_DIR = "real_rirs_isotropic_noises"


def reverberate(speech: np.ndarray, rir: np.ndarray, normalize: bool = True) -> np.ndarray:
    """Speech convolved with ``rir``, cut to its length from the direct-path peak.

    With ``normalize`` the output has the input's power (silent stays silent).
    """
    speech = np.asarray(speech, dtype=np.float64)
    rir = np.asarray(rir, dtype=np.float64)
    if rir.ndim != 1 or len(rir) == 0:
        raise ValueError("the RIR must be a non-empty 1-D array")
    if len(speech) == 0:
        return speech.copy()
    from scipy.signal import fftconvolve  # noqa: PLC0415 (scipy.signal is slow to import)
    peak = int(np.argmax(np.abs(rir)))
    out = fftconvolve(speech, rir)[peak:peak + len(speech)]
    if normalize:
        p_in, p_out = power(speech), power(out)
        out = out * math.sqrt(p_in / p_out) if p_out > 0 else np.zeros_like(speech)
    return out


def normalize_rir(rir: np.ndarray) -> np.ndarray:
    """The RIR scaled to unit energy (sum of squares 1)."""
    energy = float(np.sum(np.square(rir)))
    if energy <= 0:
        raise ValueError("silent RIR")
    return rir / math.sqrt(energy)


def _real_rirs(folder: str) -> List[str]:
    return [p for p in list_audio_files(folder, recursive=False)
            if "noise" not in os.path.basename(p).lower()]


def discover_rirs(path: str, recursive: bool = True) -> Dict[str, List[str]]:
    """Category name -> RIR files under ``path`` (layouts in the module docstring)."""
    path = os.fspath(path)
    simulated = os.path.join(path, "simulated_rirs")
    real = os.path.join(path, REAL_RIR_DIR)
    found: Dict[str, List[str]] = {}
    if os.path.isdir(simulated) or os.path.isdir(real):
        if os.path.isdir(simulated):
            found.update(discover_rirs(simulated, recursive))
        if os.path.isdir(real):
            found["real"] = _real_rirs(real)
    elif os.path.isdir(path) and any(os.path.isdir(os.path.join(path, r)) for r in SIMULATED_ROOMS):
        for name in sorted(os.listdir(path)):
            if os.path.isdir(os.path.join(path, name)) and not name.startswith("."):
                found[name] = list_audio_files(os.path.join(path, name), recursive=True)
    elif os.path.basename(os.path.normpath(path)) == REAL_RIR_DIR:
        found["real"] = _real_rirs(path)
    else:
        found["rir"] = list_audio_files(path, recursive)
    return found


class RirSource:
    """RIR files by category; :meth:`sample` gives a unit-energy RIR.

    ``weights`` maps category -> weight (absent categories get 0); the default
    is described in the module docstring.  Loaded RIRs are cached (LRU).
    """

    def __init__(self, paths: PathList, recursive: bool = True, sample_rate: int = 16000,
                 weights: Optional[Mapping[str, float]] = None, cache_size: int = 512):
        self.sample_rate = int(sample_rate)
        self.reader = AudioFiles(self.sample_rate)
        self.categories: Dict[str, List[str]] = {}
        for path in as_path_list(paths):
            for name, files in discover_rirs(path, recursive).items():
                self.categories.setdefault(name, []).extend(files)
        self.categories = {name: sorted(set(files)) for name, files in
                           sorted(self.categories.items()) if files}
        if not self.categories:
            raise ValueError(f"no RIR audio files (wav/flac/ogg) under {as_path_list(paths)}")
        if weights is None:
            weights = {k: v for k, v in KALDI_DEFAULT_WEIGHTS.items() if k in self.categories} \
                or {name: 1.0 for name in self.categories}
        unknown = set(weights) - set(self.categories)
        if unknown:
            raise ValueError(f"RIR weights for unknown categories {sorted(unknown)}; "
                             f"found: {sorted(self.categories)}")
        self.weights = {name: float(weights.get(name, 0.0)) for name in self.categories}
        if sum(self.weights.values()) <= 0 or min(self.weights.values()) < 0:
            raise ValueError(f"bad RIR category weights {self.weights}")
        self.cache_size = cache_size
        self._cache: "OrderedDict[str, np.ndarray]" = OrderedDict()

    def __repr__(self) -> str:
        parts = ", ".join(f"{name}: {len(files)} files, weight {self.weights[name]:g}"
                          for name, files in self.categories.items())
        return f"RirSource({parts})"

    def choose(self, rng: np.random.Generator) -> Tuple[str, str]:
        """``(category, path)`` of a random RIR."""
        names = list(self.categories)
        weights = np.array([self.weights[n] for n in names])
        name = names[int(rng.choice(len(names), p=weights / weights.sum()))]
        files = self.categories[name]
        return name, files[int(rng.integers(0, len(files)))]

    def load(self, path: str) -> np.ndarray:
        """RIR of ``path`` at the source's rate, channel 0, unit energy."""
        if path in self._cache:
            self._cache.move_to_end(path)
            return self._cache[path]
        try:
            rir = normalize_rir(self.reader.read(path))
        except ValueError:
            raise ValueError(f"silent or empty RIR file {path}") from None
        self._cache[path] = rir
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return rir

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return self.load(self.choose(rng)[1])


class RoomSimulator:
    """Random shoebox-room RIRs with pyroomacoustics (image source method).

    Per RIR: room dimensions uniform in ``room_size`` (metres, per axis), a
    target RT60 uniform in ``rt60`` (seconds) turned into wall absorption by
    Sabine's formula, source and microphone uniform inside the room at least
    ``min_wall_distance`` from every wall.  The image-source order is capped at
    ``max_order`` to bound the cost; that shortens the late tail of large,
    very reverberant rooms.  With ``bank_size > 0`` a bank of that many RIRs
    is simulated on first use from ``seed`` and :meth:`sample` draws from it
    (cheap); with 0 every call simulates a new room from the caller's rng.
    """

    def __init__(self, sample_rate: int = 16000,
                 room_size: Sequence[Sequence[float]] = ((3.0, 10.0), (3.0, 10.0), (2.5, 4.0)),
                 rt60: Sequence[float] = (0.2, 0.8), max_order: int = 20,
                 min_wall_distance: float = 0.5, bank_size: int = 32, seed: int = 0):
        self.sample_rate = int(sample_rate)
        self.room_size = [tuple(map(float, axis)) for axis in room_size]
        if len(self.room_size) != 3 or any(lo <= 2 * min_wall_distance or hi < lo
                                           for lo, hi in self.room_size):
            raise ValueError(f"room_size must be 3 [low, high] ranges larger than twice "
                             f"min_wall_distance, got {room_size}")
        self.rt60 = tuple(map(float, rt60))
        if not 0 < self.rt60[0] <= self.rt60[1]:
            raise ValueError(f"rt60 must be [low, high] seconds > 0, got {rt60}")
        self.max_order = int(max_order)
        self.min_wall_distance = float(min_wall_distance)
        self.bank_size = int(bank_size)
        self.seed = seed
        self._bank: Optional[List[np.ndarray]] = None

    @staticmethod
    def _pyroomacoustics():
        try:
            import pyroomacoustics  # noqa: PLC0415 (optional, slow to import)
        except ImportError:
            raise ImportError("RIR simulation needs pyroomacoustics "
                              "(pip install -r requirements.txt)") from None
        return pyroomacoustics

    def simulate(self, rng: np.random.Generator) -> np.ndarray:
        """One new unit-energy RIR from a random room."""
        pra = self._pyroomacoustics()
        for _ in range(100):
            dims = np.array([rng.uniform(lo, hi) for lo, hi in self.room_size])
            rt60 = float(rng.uniform(*self.rt60))
            try:
                absorption, order = pra.inverse_sabine(rt60, dims)
            except ValueError:  # RT60 too short for this room (absorption > 1): redraw
                continue
            break
        else:
            raise ValueError(f"no room in {self.room_size} reaches an RT60 in {self.rt60}")
        d = self.min_wall_distance
        source = [rng.uniform(d, size - d) for size in dims]
        mic = [rng.uniform(d, size - d) for size in dims]
        room = pra.ShoeBox(dims, fs=self.sample_rate, materials=pra.Material(absorption),
                           max_order=int(min(order, self.max_order)))
        room.add_source(source)
        room.add_microphone(mic)
        room.compute_rir()
        return normalize_rir(np.asarray(room.rir[0][0], dtype=np.float64))

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        if self.bank_size <= 0:
            return self.simulate(rng)
        if self._bank is None:
            bank_rng = np.random.default_rng(self.seed)
            self._bank = [self.simulate(bank_rng) for _ in range(self.bank_size)]
        return self._bank[int(rng.integers(0, len(self._bank)))]
