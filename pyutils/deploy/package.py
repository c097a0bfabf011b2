"""A trained model as one self-describing directory, ``exp/<model>/package/``: reading it.

::

    manifest.json      what each file is, its sha256, versions, model and input facts
    model.pt           the network's weights (final.pt's model state + model config; an SSL
                       model's encoder config.json inline: it needs no checkpoint directory)
    embedding.onnx     the network as ONNX (dynamic batch and time axes); for a model whose
                       front-end is numpy (ge2e, sb_ecapa), the network after it, the
                       front-end recorded as data in the manifest (exports.onnx.frontend)
    embedding.ts       the network as TorchScript
    config.yaml        the training config
    conf/              mfcc.conf vad.conf cmvn.conf [fbank.conf]: the features it was trained on
    backend/           mean.vec lda.mat plda (Kaldi text, as stage 5 writes them)
    calibration/       <backend>.json: score -> LLR and the saved thresholds (when calibrated)

:func:`pyutils.deploy.package_build.build_package` writes it (``steps/package_model.sh``,
stage 8); :class:`Package` reads it, checks every file against its sha256, and builds
the pieces ``sv`` needs: the audio front-end, an embedder (PyTorch or ONNX
Runtime), the back-ends and the calibration.  Reading a package and running
it with ONNX Runtime imports no torch.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tarfile
from typing import Dict, List, Optional

import numpy as np

from pyutils.deploy.network_input import AudioFrontend

FORMAT = "sv-package"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


class PackageError(ValueError):
    """A package that is missing, incomplete, altered or of another format."""


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as src:
        for block in iter(lambda: src.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _export_failure(manifest: dict, kind: str) -> Optional[str]:
    """Why the ``kind`` export failed at packaging time (None: it did not fail)."""
    return ((manifest.get("export_errors") or {}).get(kind)
            or manifest.get("export_error"))    # format 1 packages of before the per-kind errors


def export_summary(manifest: dict) -> str:
    """What stage 8 and ``sv package`` print of the exports:
    ``torchscript ok (cosine 1.000000), onnx FAILED (reason)``, or ``none (export off)``."""
    exports = manifest["exports"]
    if not manifest.get("export", bool(exports) or bool(_export_failure(manifest, "onnx"))):
        return "none (export off)"
    parts = []
    for kind in ("torchscript", "onnx"):
        if kind in exports:
            parts.append(f"{kind} ok (cosine {exports[kind]['min_cosine_to_pytorch']:.6f})")
        else:
            reason = _export_failure(manifest, kind) or "no reason recorded"
            parts.append(f"{kind} FAILED ({reason})")
    return ", ".join(parts)


class Package:
    """A package directory (or ``.tar.gz``), checked against its manifest."""

    def __init__(self, path: str, verify: bool = True):
        if path.endswith(".tar.gz") and os.path.isfile(path):
            path = _unpack(path)
        self.root = path
        manifest_path = os.path.join(path, MANIFEST)
        if not os.path.isfile(manifest_path):
            raise PackageError(f"{path}: not a model package (no {MANIFEST}); build one with "
                               f"steps/package_model.sh or ./run.sh --stage 8")
        with open(manifest_path) as src:
            self.manifest = json.load(src)
        if self.manifest.get("format") != FORMAT or \
                self.manifest.get("format_version", 0) > FORMAT_VERSION:
            raise PackageError(f"{manifest_path}: format {self.manifest.get('format')} "
                               f"v{self.manifest.get('format_version')} is not {FORMAT} "
                               f"v{FORMAT_VERSION} or older")
        if verify:
            for rel, info in self.manifest["files"].items():
                file = os.path.join(path, rel)
                if not os.path.isfile(file):
                    raise PackageError(f"{path}: {rel} ({info['what']}) is missing")
                if sha256(file) != info["sha256"]:
                    raise PackageError(f"{path}: {rel} does not match its sha256 in {MANIFEST} "
                                       f"(changed after packaging); rebuild the package")
        model, extraction = self.manifest["model"], self.manifest["extraction"]
        self.name = model["name"]
        self.input_type = model["input_type"]
        self.sample_rate = int(self.manifest["features"]["sample_rate"])
        self.backends: List[str] = list(self.manifest["backends"])
        unit = model["frame_shift"] if self.input_type == "waveform" else 1
        self.chunk_rows = int(extraction["chunk_size"]) * unit
        self.min_chunk_rows = int(extraction["min_chunk_size"]) * unit

    def path(self, rel: str) -> str:
        return os.path.join(self.root, rel)

    def frontend(self, resample: Optional[bool] = None) -> AudioFrontend:
        conf = {k: self.path(v) for k, v in self.manifest["features"]["conf"].items()}
        return AudioFrontend(self.input_type, conf.get("mfcc"), conf.get("vad"), conf.get("cmvn"),
                             conf.get("fbank"), self.sample_rate, resample)

    def embedder(self, runtime: str = "torch", num_threads: int = 1, device: str = "cpu"):
        """An :class:`~pyutils.deploy.runtime.Embedder` on ``torch`` or ``onnx``."""
        if runtime == "onnx":
            if "onnx" not in self.manifest["exports"]:
                raise PackageError(self._no_export("onnx"))
            from pyutils.deploy.network_part import FRONTENDS, NetworkPartOnnxEmbedder
            from pyutils.deploy.runtime import OnnxEmbedder
            onnx = self.manifest["exports"]["onnx"]
            if onnx.get("frontend"):     # the network after the model's numpy front-end
                if onnx["frontend"].get("name") not in FRONTENDS:
                    raise PackageError(f"{self.root}: {MANIFEST} names numpy front-end "
                                       f"'{onnx['frontend'].get('name')}', which this version "
                                       f"does not know ({', '.join(FRONTENDS)}); use "
                                       f"--runtime torch or a newer version")
                return NetworkPartOnnxEmbedder(self.path(onnx["file"]), onnx["frontend"],
                                               self.chunk_rows, self.min_chunk_rows,
                                               num_threads, device)
            return OnnxEmbedder(self.path(onnx["file"]), self.chunk_rows, self.min_chunk_rows,
                                num_threads, device, onnx.get("min_input_rows", 0))
        if runtime == "torch":
            from pyutils.deploy.torch_runtime import TorchEmbedder, build_network
            from pyutils.models.ssl import PretrainedModelMissing
            from pyutils.training import checkpoint
            try:
                network = build_network(checkpoint.load(self.path("model.pt")))
            except PretrainedModelMissing as err:   # SSL packages of before the inline config
                raise PackageError(f"{self.root}: model.pt names a pretrained checkpoint "
                                   f"directory instead of holding its configuration (a package "
                                   f"built before packages were self-contained), and that "
                                   f"directory is gone ({str(err).split(';')[0]}); rebuild the "
                                   f"package with steps/package_model.sh") from None
            return TorchEmbedder(network, self.chunk_rows, self.min_chunk_rows, num_threads,
                                 device)
        raise ValueError(f"unknown runtime '{runtime}' (torch or onnx)")

    def _no_export(self, kind: str) -> str:
        """Why the package has no ``kind`` export, and what works instead."""
        reason = _export_failure(self.manifest, kind)
        if reason:
            return (f"{self.root}: has no {kind.upper()} export: the {kind} export failed when "
                    f"the package was built ({reason}; recorded in {MANIFEST}); use "
                    f"--runtime torch")
        return (f"{self.root}: has no {kind.upper()} export: it was built without exports "
                f"(steps/package_model.sh --export false, sv package --no-export); rebuild "
                f"it with export on, or use --runtime torch")

    def backend(self, kind: str):
        """A scoring back-end (``cosine``, ``plda``) from the package's back-end files."""
        if kind not in self.backends:
            raise PackageError(f"{self.root}: back-end '{kind}' is not in the package (it has: "
                               f"{', '.join(self.backends) or 'none'})")
        from pyutils.backends.base import load_backend
        options = self.manifest.get("scoring", {})
        return load_backend(kind, self.path("backend"), cosine_mean=options.get("cosine_mean",
                                                                                "train"))

    def calibration(self, kind: str) -> Optional["Calibration"]:
        rel = self.manifest["calibration"].get(kind)
        return Calibration.read(self.path(rel)) if rel else None


class Calibration:
    """Score -> LLR (``slope * score + offset``) and the thresholds saved with it."""

    def __init__(self, slope: float, offset: float, prior: float,
                 thresholds: Dict[str, float]):
        self.slope, self.offset, self.prior = float(slope), float(offset), float(prior)
        self.thresholds = {k: float(v) for k, v in thresholds.items()}
        self.qmf: Optional[dict] = None           # pyutils.backends.qmf entry, when fitted
        self.operating_points: Dict[str, dict] = {}   # error rates at the thresholds
        self.path: Optional[str] = None

    @classmethod
    def read(cls, path: str) -> "Calibration":
        """A calibration JSON: ``slope`` or a one-element ``weights``, and ``offset``
        or ``bias`` (steps/calibrate.sh's and LinearCalibration's files)."""
        with open(path) as src:
            data = json.load(src)
        try:
            slope = data["slope"] if "slope" in data else data["weights"]
            if isinstance(slope, list):
                (slope,) = slope
            offset = data["offset"] if "offset" in data else data["bias"]
            calibration = cls(slope, offset, data.get("prior", 0.5), data.get("thresholds") or {})
            calibration.qmf, calibration.path = data.get("qmf"), path
            calibration.operating_points = dict(data.get("operating_points") or {})
            return calibration
        except (KeyError, TypeError, ValueError) as err:
            raise PackageError(f"{path}: not a calibration file ({err!r})") from None

    def llr(self, scores) -> np.ndarray:
        return self.slope * np.asarray(scores, dtype=np.float64) + self.offset

    def threshold(self, which: str, p_target: float = 0.01) -> float:
        """The raw-score threshold: a saved one (``eer``, ``min_dcf``: any key that
        starts so), or ``bayes``: the score whose LLR is ``log((1-p)/p)``."""
        if which == "bayes":
            return (math.log((1 - p_target) / p_target) - self.offset) / self.slope
        keys = [k for k in sorted(self.thresholds) if k == which or k.startswith(which + "_")]
        if not keys:
            raise PackageError(f"no '{which}' threshold saved (saved: "
                               f"{', '.join(sorted(self.thresholds)) or 'none'})")
        return self.thresholds[keys[0]]


def _unpack(archive: str) -> str:
    """Unpack a package archive once beside itself (``<name>.tar.gz`` -> ``<name>/``)."""
    target = archive[:-len(".tar.gz")] + ".unpacked"
    if not os.path.isdir(target):
        tmp = target + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        os.replace(tmp, target)
    inner = [d for d in os.listdir(target) if os.path.isdir(os.path.join(target, d))]
    return os.path.join(target, inner[0]) if len(inner) == 1 else target
