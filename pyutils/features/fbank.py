"""Kaldi log mel filterbank features, vectorised.

:class:`FbankComputer` reproduces ``compute-fbank-feats`` (``feat/feature-fbank.cc``)
from a Kaldi option dict (see :func:`~pyutils.features.kaldi_conf.read_kaldi_conf`).
tests/kaldi_reference.py runs the same options through kaldi-native-fbank, a
C++ port of Kaldi, as the ground truth of the tests.
"""
from __future__ import annotations

from typing import Mapping, Optional

import numpy as np

from pyutils.features.spectral import FLOAT_EPS, FRAME_DEFAULTS, KaldiFeature

# Kaldi's fbank defaults except 80 mel bins (the usual speaker-embedding input).
FBANK_DEFAULTS = {**FRAME_DEFAULTS, "num-mel-bins": 80, "use-energy": False,
                  "energy-floor": 0.0, "raw-energy": True, "use-log-fbank": True,
                  "use-power": True}


class FbankComputer(KaldiFeature):
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
