"""Post-processing shared by training and extraction: sliding CMN, then voiced frames.

Kaldi's prepare_feats_for_egs.sh and extract_xvectors.sh both run
``apply-cmvn-sliding`` on all frames and then ``select-voiced-frames``; using
this one function for both keeps training and extraction identical.
"""
from __future__ import annotations

import numpy as np

from pyutils.features.cmvn import select_voiced_frames, sliding_cmn
from pyutils.features.kaldi_conf import read_kaldi_conf


def cmn_options(conf_path: str) -> dict:
    """Map conf/cmvn.conf (Kaldi apply-cmvn-sliding options) to sliding_cmn kwargs."""
    conf = read_kaldi_conf(conf_path)
    known = {"cmn-window": "cmn_window", "min-cmn-window": "min_window",
             "center": "center", "norm-vars": "norm_vars"}
    unknown = set(conf) - set(known)
    if unknown:
        raise ValueError(f"{conf_path}: unknown option(s) {', '.join(sorted(unknown))}")
    return {known[k]: v for k, v in conf.items()}


def cmn_voiced(feats: np.ndarray, vad: np.ndarray, options: dict) -> np.ndarray:
    """Sliding CMN over all frames, then keep the voiced ones.

    Returns 0 rows when no frame is voiced: callers skip and count such
    utterances, as Kaldi's select-voiced-frames does.
    """
    if feats.shape[0] == 0 or not np.any(vad):
        return np.zeros((0, feats.shape[1]), dtype=np.float32)
    return select_voiced_frames(sliding_cmn(feats, **options), vad)
