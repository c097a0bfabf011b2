"""Helpers of tests/test_deploy.py and test_sv_cli.py: a tiny trained-model layout
(final.pt, back-end, calibration) built in seconds, and ASC clips."""
import json
import os

import numpy as np

from conftest import ROOT

CONF = os.path.join(ROOT, "conf")
# The calibration the tests package: LLR = 10 * score - 5; saved thresholds on the score scale.
CALIBRATION = {"backend": "cosine", "weights": [10.0], "offset": -5.0, "prior": 0.01,
               "thresholds": {"eer": 0.5, "min_dcf_p0.01": 0.8}}


def tiny_model_dir(root: str, calibrated: bool = True, embed_dim: int = 16) -> str:
    """<root>/final.pt (random x-vector on conf/mfcc.conf's 30-dim MFCC), backend/mean.vec,
    backend/lda.mat + plda (identity), calibration/cosine.json."""
    import torch

    from pyutils.backends.plda import Plda, write_matrix, write_vector
    from pyutils.models import build_model
    from pyutils.training import checkpoint
    torch.manual_seed(0)
    config = {"name": "xvector", "embed_dim": embed_dim, "frame_dims": [32, 32, 32, 32, 64]}
    model = build_model("xvector", feat_dim=30, **{k: v for k, v in config.items() if k != "name"})
    os.makedirs(os.path.join(root, "backend"), exist_ok=True)
    checkpoint.save(os.path.join(root, "final.pt"), {
        "config": {"model": config, "features": {"type": "mfcc"}}, "feat_dim": 30,
        "model": model.state_dict()})
    write_vector(os.path.join(root, "backend", "mean.vec"), np.zeros(embed_dim))
    write_matrix(os.path.join(root, "backend", "lda.mat"), np.eye(embed_dim)[:8])
    Plda.from_covariances(np.zeros(8), np.eye(8), 2 * np.eye(8)).save(
        os.path.join(root, "backend", "plda"))
    if calibrated:
        os.makedirs(os.path.join(root, "calibration"), exist_ok=True)
        with open(os.path.join(root, "calibration", "cosine.json"), "w") as out:
            json.dump(CALIBRATION, out)
    return root


def build_tiny_package(root: str, export: bool = True, calibrated: bool = True) -> str:
    from pyutils.deploy.package_build import build_package
    model_dir = tiny_model_dir(root, calibrated)
    out = os.path.join(root, "package")
    build_package(os.path.join(model_dir, "final.pt"), out, os.path.join(CONF, "mfcc.conf"),
                  os.path.join(CONF, "vad.conf"), os.path.join(CONF, "cmvn.conf"),
                  backend_dir=os.path.join(model_dir, "backend"),
                  calibration_dir=os.path.join(model_dir, "calibration"), export=export)
    return out


def asc_clip(asc_root: str, speaker: int, keyword: str = "backward", rep: int = 1) -> str:
    return os.path.join(asc_root, "asc", "dataset", keyword, f"{speaker:08d}_NO_{rep:02d}.flac")


def blocked_import_env(tmp_path, module: str = "torch") -> dict:
    """An environment whose Python cannot import ``module`` (a sitecustomize on PYTHONPATH that
    refuses it), to prove a code path runs, or fails clearly, without it."""
    shim = os.path.join(str(tmp_path), "shim")
    os.makedirs(shim, exist_ok=True)
    with open(os.path.join(shim, "sitecustomize.py"), "w") as out:
        out.write("import sys\n"
                  "class _Block:\n"
                  "    def find_spec(self, name, path=None, target=None):\n"
                  f"        if name == {module!r} or name.startswith({module + '.'!r}):\n"
                  f"            raise ImportError('{module} is blocked in this test')\n"
                  "sys.meta_path.insert(0, _Block())\n")
    return dict(os.environ, PYTHONPATH=f"{shim}{os.pathsep}{ROOT}")
