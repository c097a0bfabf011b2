"""Kaldi MFCC and fbank features, vectorised.

:class:`MfccComputer` and :class:`FbankComputer` reproduce ``compute-mfcc-feats``
and ``compute-fbank-feats`` (``feat/feature-mfcc.cc``, ``feat/feature-fbank.cc``)
from a Kaldi option dict (see :func:`~pyutils.features.kaldi_conf.read_kaldi_conf`).
tests/kaldi_reference.py runs the same options through kaldi-native-fbank, a
C++ port of Kaldi, as the ground truth of the tests.
"""
from __future__ import annotations

from typing import Mapping, Optional

import numpy as np

from pyutils.features.frontend import (FLOAT_EPS, FRAME_DEFAULTS, SampleRateError,  # noqa: F401
                                       SpectralFrontend, check_sample_rate, resample_waveform,
                                       resolve_options)

DITHER_SEED = 0  # dither noise seed when the caller passes no generator

MFCC_DEFAULTS = {**FRAME_DEFAULTS, "num-ceps": 13, "use-energy": True,
                 "energy-floor": 0.0, "raw-energy": True, "cepstral-lifter": 22.0}
# Kaldi's fbank defaults except 80 mel bins (the usual speaker-embedding input).
FBANK_DEFAULTS = {**FRAME_DEFAULTS, "num-mel-bins": 80, "use-energy": False,
                  "energy-floor": 0.0, "raw-energy": True, "use-log-fbank": True,
                  "use-power": True}


class _KaldiFeature:
    """Shared driver: option handling, frame count, blockwise computation."""

    defaults: Mapping[str, object] = {}

    def __init__(self, options: Optional[Mapping[str, object]] = None):
        self.options = resolve_options(options or {}, self.defaults)
        self.frontend = SpectralFrontend(
            self.options, use_power=bool(self.options.get("use-power", True)),
            raw_energy=bool(self.options["raw-energy"]))
        floor = float(self.options["energy-floor"])
        self.log_energy_floor = np.log(floor) if floor > 0.0 else None

    def num_frames(self, num_samples: int) -> int:
        """Number of frames Kaldi outputs for ``num_samples`` samples."""
        return self.frontend.num_frames(num_samples)

    def prepare_waveform(self, waveform: np.ndarray, sample_rate: float) -> np.ndarray:
        """The waveform at --sample-frequency: as is, resampled, or refused.

        Another rate is a :class:`SampleRateError` unless --allow-downsample
        / --allow-upsample allows the conversion (Kaldi's semantics).
        """
        if check_sample_rate(sample_rate, self.options):
            return resample_waveform(waveform, sample_rate, float(self.options["sample-frequency"]))
        return np.asarray(waveform)

    def compute(self, waveform: np.ndarray, rng: Optional[np.random.Generator] = None,
                sample_rate: Optional[float] = None, frames: Optional[tuple] = None
                ) -> np.ndarray:
        """Features of a 1-D waveform in int16 scale, ``(num_frames, dim)`` float32.

        Dither noise comes from ``rng``; without one a generator seeded with
        :data:`DITHER_SEED` is used so the output is reproducible.  With
        ``sample_rate``, audio at another rate than --sample-frequency is
        resampled or refused (:meth:`prepare_waveform`); without it the
        waveform is taken to be at --sample-frequency.  ``frames=(start, stop)``
        computes only those frames (a training chunk's), equal to the rows of
        the whole result but for the dither draws.
        """
        if sample_rate is not None:
            waveform = self.prepare_waveform(waveform, sample_rate)
        waveform = np.asarray(waveform)
        if waveform.ndim != 1:
            raise ValueError(f"expected a 1-D waveform, got shape {waveform.shape}")
        if rng is None:
            rng = np.random.default_rng(DITHER_SEED)
        start, stop = frames if frames is not None else (0, self.num_frames(len(waveform)))
        out = np.empty((max(0, stop - start), self.dim), dtype=np.float32)
        row = 0
        for mel, log_energy in self.frontend.mel_energies(waveform, rng, start, stop):
            if self.log_energy_floor is not None:
                np.maximum(log_energy, self.log_energy_floor, out=log_energy)
            out[row:row + len(mel)] = self._finish(mel, log_energy)
            row += len(mel)
        return out

    def _finish(self, mel: np.ndarray, log_energy: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class MfccComputer(_KaldiFeature):
    """Kaldi MFCC: log mel energies -> DCT-II (orthonormal) -> lifter.

    With ``use-energy`` (default) coefficient 0 is replaced by the log energy.
    """

    defaults = MFCC_DEFAULTS

    def __init__(self, options: Optional[Mapping[str, object]] = None):
        super().__init__(options)
        num_bins = int(self.options["num-mel-bins"])
        self.dim = int(self.options["num-ceps"])
        if not 1 <= self.dim <= num_bins:
            raise ValueError("--num-ceps must be in [1, num-mel-bins]")
        dct = np.sqrt(2.0 / num_bins) * np.cos(
            np.pi / num_bins * np.outer(np.arange(self.dim), np.arange(num_bins) + 0.5))
        dct[0] = np.sqrt(1.0 / num_bins)
        lifter = float(self.options["cepstral-lifter"])
        if lifter != 0.0:
            dct *= (1.0 + 0.5 * lifter * np.sin(np.pi * np.arange(self.dim) / lifter))[:, None]
        self.dct_t = dct.T  # lifter folded into the DCT rows

    def _finish(self, mel: np.ndarray, log_energy: np.ndarray) -> np.ndarray:
        ceps = np.log(np.maximum(mel, FLOAT_EPS)) @ self.dct_t
        if self.options["use-energy"]:
            ceps[:, 0] = log_energy
        return ceps


class FbankComputer(_KaldiFeature):
    """Kaldi log mel filterbank; with ``use-energy`` the log energy comes first."""

    defaults = FBANK_DEFAULTS

    def __init__(self, options: Optional[Mapping[str, object]] = None):
        super().__init__(options)
        self.dim = int(self.options["num-mel-bins"]) + bool(self.options["use-energy"])

    def _finish(self, mel: np.ndarray, log_energy: np.ndarray) -> np.ndarray:
        if self.options["use-log-fbank"]:
            mel = np.log(np.maximum(mel, FLOAT_EPS))
        if self.options["use-energy"]:
            mel = np.hstack([log_energy[:, None], mel])
        return mel
