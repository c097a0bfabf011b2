"""3D-Speaker references: its own model code (``speakerlab/models``) on small random-weight
configurations; ``--src`` is a checkout of modelscope/3D-Speaker (only the model files are
imported: plain torch).  Fixture layout as tools/parity_wespeaker.py; ``config`` holds the
recipe's ``embedding_model`` section ({obj, args}), which the importer may read.
"""
from __future__ import annotations

import os
import sys

import numpy as np

from parity_wespeaker import checkout_commit, run_cases

CAMPPLUS = "speakerlab.models.campplus.DTDNN.CAMPPlus"
ERES2NET = "speakerlab.models.eres2net.ERes2Net.ERes2Net"
CASES = {
    "campplus": ("DTDNN.CAMPPlus(feat_dim=80, embedding_size=32, growth_rate=8, bn_size=2, "
                 "init_channels=32)",
                 {"embedding_model": {"obj": CAMPPLUS, "args": {
                     "feat_dim": 80, "embedding_size": 32, "growth_rate": 8, "bn_size": 2,
                     "init_channels": 32}}}),
    "eres2net": ("ERes2Net.ERes2Net(m_channels=8, feat_dim=80, embedding_size=24)",
                 {"embedding_model": {"obj": ERES2NET, "args": {
                     "m_channels": 8, "feat_dim": 80, "embedding_size": 24}}}),
}


def make(out: str, src: str) -> dict:
    if not src:
        raise SystemExit("3dspeaker: give --src, a checkout of modelscope/3D-Speaker")
    sys.path.insert(0, os.path.abspath(src))
    import torch
    from speakerlab.models.campplus import DTDNN
    from speakerlab.models.eres2net import ERes2Net

    run_cases(out, "3dspeaker", CASES, {"DTDNN": DTDNN, "ERes2Net": ERes2Net},
              lambda model, feats: model(feats))
    return {"3dspeaker_commit": os.environ.get("SOURCE_COMMIT") or checkout_commit(src),
            "torch": torch.__version__, "numpy": np.__version__}
