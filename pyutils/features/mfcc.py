"""Kaldi MFCC features, vectorised.

:class:`MfccComputer` reproduces ``compute-mfcc-feats`` (``feat/feature-mfcc.cc``)
from a Kaldi option dict (see :func:`~pyutils.features.kaldi_conf.read_kaldi_conf`);
its fbank sibling is :mod:`pyutils.features.fbank`.
tests/kaldi_reference.py runs the same options through kaldi-native-fbank, a
C++ port of Kaldi, as the ground truth of the tests.
"""
from __future__ import annotations

from typing import Mapping, Optional

import numpy as np

from pyutils.features.spectral import FLOAT_EPS, FRAME_DEFAULTS, KaldiFeature

MFCC_DEFAULTS = {**FRAME_DEFAULTS, "num-ceps": 13, "use-energy": True,
                 "energy-floor": 0.0, "raw-energy": True, "cepstral-lifter": 22.0}


class MfccComputer(KaldiFeature):
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
