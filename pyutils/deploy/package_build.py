"""Writing a model package (``exp/<model>/package/``, the layout in
:mod:`pyutils.deploy.package`): the network, its exports, feature configs, back-end and
calibration, each file with its sha256 in the manifest.  Stage 8 (``steps/package_model.sh``)
and ``sv package`` call :func:`build_package`; :class:`pyutils.deploy.package.Package`
reads what it writes.
"""
from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import subprocess
import tarfile
import time
from typing import Dict, List, Optional

import numpy as np

from pyutils.deploy.package import FORMAT, FORMAT_VERSION, MANIFEST, sha256
from pyutils.utils.fileio import atomic_output

logger = logging.getLogger(__name__)

BACKEND_FILES = {"mean.vec": "training-embedding mean (Kaldi vector)",
                 "lda.mat": "LDA transform (Kaldi matrix, ivector-compute-lda)",
                 "plda": "two-covariance PLDA (Kaldi text, ivector-compute-plda)"}
BACKEND_NEEDS = {"cosine": ("mean.vec",), "plda": ("mean.vec", "lda.mat", "plda")}


def _versions() -> Dict[str, str]:
    versions = {"python": platform.python_version(), "numpy": np.__version__}
    for name in ("torch", "onnx", "onnxruntime"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            pass
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        versions["sv-recipes commit"] = subprocess.run(
            ["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True,
            timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        versions["sv-recipes commit"] = "unknown"
    return versions


def build_package(model_path: str, out_dir: str, mfcc_conf: str, vad_conf: str,
                  cmvn_conf: str, fbank_conf: Optional[str] = None,
                  backend_dir: Optional[str] = None, calibration_dir: Optional[str] = None,
                  export: bool = True, chunk_size: int = 10000, min_chunk_size: int = 25,
                  archive: bool = False, cosine_mean: str = "train") -> dict:
    """Write the package of ``model_path`` (a final.pt) to ``out_dir``; return the manifest.

    The directory is assembled beside ``out_dir`` and renamed into place, so a
    package that exists is complete.  ``fbank_conf`` is used when the training
    config's ``features.type`` is fbank (VAD still comes from the MFCC);
    ``cosine_mean`` is conf/backend.conf's (``train``: centre by mean.vec).
    """
    import torch
    import yaml

    from pyutils.deploy.export import export_all, frontend_spec, padded_input_rows
    from pyutils.deploy.torch_runtime import build_network
    from pyutils.training import checkpoint

    state = checkpoint.load(model_path)
    config = state["config"]
    model_cfg, features_cfg = config["model"], config.get("features") or {}
    model = build_network(state)
    if hasattr(model, "self_contained_config"):   # SSL: the encoder's config, not its directory
        model_cfg = model.self_contained_config(model_cfg)
    input_type = getattr(model, "input_type", "feats")
    feature_type = "waveform" if input_type == "waveform" else features_cfg.get("type", "mfcc")
    tmp = out_dir.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(tmp, "conf"))
    files: Dict[str, dict] = {}

    def add(rel: str, what: str, source: Optional[str] = None) -> None:
        target = os.path.join(tmp, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if source is not None:
            shutil.copyfile(source, target)
        files[rel] = {"what": what}

    with atomic_output(os.path.join(tmp, "model.pt"), "wb") as out:
        torch.save({"model": state["model"], "config": {"model": model_cfg,
                                                          "features": features_cfg},
                    "feat_dim": state["feat_dim"]}, out)
    add("model.pt", "network weights (final.pt's model state) and model config, torch.save")
    with atomic_output(os.path.join(tmp, "config.yaml")) as out:
        yaml.safe_dump(config, out, sort_keys=False)
    add("config.yaml", "the training config")
    conf: Dict[str, str] = {}
    if input_type == "feats":
        confs = {"mfcc": mfcc_conf, "vad": vad_conf, "cmvn": cmvn_conf}
        if feature_type == "fbank":
            confs["fbank"] = fbank_conf or features_cfg.get("conf", "conf/fbank.conf")
        for kind, path in confs.items():
            rel = f"conf/{kind}.conf"
            add(rel, {"mfcc": "MFCC options (its log energy drives the VAD)",
                      "fbank": "fbank options (the network input)",
                      "vad": "energy VAD options", "cmvn": "sliding CMN options"}[kind], path)
            conf[kind] = rel
    backends: List[str] = []
    if backend_dir:
        for name, what in BACKEND_FILES.items():
            if os.path.isfile(os.path.join(backend_dir, name)):
                add(f"backend/{name}", what, os.path.join(backend_dir, name))
        backends = [b for b, needs in BACKEND_NEEDS.items()
                    if all(f"backend/{n}" in files for n in needs)]
    calibration: Dict[str, str] = {}
    if calibration_dir and os.path.isdir(calibration_dir):
        for name in sorted(os.listdir(calibration_dir)):
            backend = name[:-len(".json")]
            if name.endswith(".json") and backend in backends:
                add(f"calibration/{name}", f"calibration of the {backend} scores: "
                    f"LLR = slope * score + offset, and the saved thresholds",
                    os.path.join(calibration_dir, name))
                calibration[backend] = f"calibration/{name}"
                scores = f"{backend}.cal_scores"   # calibration trials' scores: sv threshold
                if os.path.isfile(os.path.join(calibration_dir, scores)):
                    add(f"calibration/{scores}", f"the {backend} scores of the calibration "
                        f"trials (score target|nontarget)", os.path.join(calibration_dir, scores))
    exports: Dict[str, dict] = {}
    export_errors: Dict[str, str] = {}
    if export:
        paths, worst, export_errors = export_all(model, state["feat_dim"], tmp, min_chunk_size)
        if export_errors:
            logger.warning("%s: %s; sv --runtime torch still works", model_path,
                           "; ".join(f"the {k} export failed ({v})"
                                     for k, v in export_errors.items()))
        frontend = frontend_spec(model)
        for kind, path in paths.items():
            rel = os.path.basename(path)
            if frontend:
                add(rel, f"the network after the model's numpy front-end as ONNX (input: "
                         f"the output of front-end {frontend['name']}, recorded in "
                         f"exports.onnx.frontend)")
            else:
                add(rel, f"the network as {'ONNX' if kind == 'onnx' else 'TorchScript'} "
                         f"(input {'(batch, samples)' if input_type == 'waveform' else '(batch, frames, dim)'}"
                         f", dynamic batch and time axes; features outside the graph)")
            exports[kind] = {"file": rel, "min_cosine_to_pytorch": worst[kind],
                             "min_input_rows": padded_input_rows(model, min_chunk_size)}
            if frontend:
                exports[kind]["frontend"] = frontend
    for rel in files:
        files[rel]["sha256"] = sha256(os.path.join(tmp, rel))
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": _versions(),
        "source": {"model": os.path.abspath(model_path),
                   "backend": os.path.abspath(backend_dir) if backend_dir else None},
        "model": {"name": model_cfg["name"], "config": model_cfg, "feat_dim": state["feat_dim"],
                  "embed_dim": int(_probe(model, state["feat_dim"]).shape[-1]),
                  "parameters": int(sum(p.numel() for p in model.parameters())),
                  "input_type": input_type, "frame_shift": int(getattr(model, "frame_shift", 1))},
        "features": {"type": feature_type, "sample_rate": _sample_rate(conf, tmp),
                     "conf": conf},
        "extraction": {"chunk_size": chunk_size, "min_chunk_size": min_chunk_size,
                       "unit": "10 ms frames (waveform models: frames x frame_shift samples)"},
        "backends": backends, "scoring": {"cosine_mean": cosine_mean},
        "calibration": calibration, "exports": exports, "export": export,
        "export_errors": export_errors,
        "files": files,
    }
    with atomic_output(os.path.join(tmp, MANIFEST)) as out:
        json.dump(manifest, out, indent=1)
        out.write("\n")
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    if archive:
        with atomic_output(out_dir.rstrip("/") + ".tar.gz", "wb") as out, \
                tarfile.open(fileobj=out, mode="w:gz") as tar:
            tar.add(out_dir, arcname=os.path.basename(out_dir.rstrip("/")))
    return manifest


def _probe(model, feat_dim: int):
    import torch

    from pyutils.deploy.export import example_input
    with torch.inference_mode():
        return model(example_input(model, feat_dim, frames=200, batch=1))


def _sample_rate(conf: Dict[str, str], root: str) -> int:
    if "mfcc" not in conf:
        return 16000   # waveform models read 16 kHz audio, as stage 4
    from pyutils.features.kaldi_conf import read_kaldi_conf
    return int(read_kaldi_conf(os.path.join(root, conf["mfcc"])).get("sample-frequency", 16000))
