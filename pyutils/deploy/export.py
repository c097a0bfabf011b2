"""TorchScript and ONNX export of the embedding networks, features outside the graph.

The graph maps a batch of network inputs, ``(batch, frames, feat_dim)``
features after CMN and VAD or ``(batch, samples)`` waveforms, to
``(batch, embed_dim)`` embeddings.  Both the batch and the time axis are
dynamic: ONNX goes through ``torch.export`` (the dynamo exporter) with
symbolic dimensions, so every length from ``min_length`` up works.  The older
TorchScript-based ONNX exporter is not used: it bakes CAM++'s segment pooling
(``repeat_interleave``) to the traced length, the kind of fixed-length graph
WeSpeaker's issue 391 reports (stuck at 200 frames).  Every export is checked
on two other lengths against the PyTorch network (:func:`check_export`).

TorchScript is a trace: the networks have no data-dependent control flow for
inputs of at least ``min_length`` rows (wav2spk pads shorter waveforms; the
extraction pads every chunk to ``min_chunk_size`` first).
"""
from __future__ import annotations

import logging
import os
import warnings
from typing import Dict, Sequence, Tuple

import numpy as np
import torch

from pyutils.utils.fileio import atomic_output

logger = logging.getLogger(__name__)

ONNX_OPSET = 18
INPUT_NAME, OUTPUT_NAME = "input", "embedding"


def example_input(model: torch.nn.Module, feat_dim: int, frames: int = 300,
                  batch: int = 2, seed: int = 0) -> torch.Tensor:
    """A random network input of ``frames`` 10 ms frames (waveform: samples)."""
    generator = torch.Generator().manual_seed(seed)
    if getattr(model, "input_type", "feats") == "waveform":
        return torch.randn(batch, frames * int(model.frame_shift), generator=generator) * 1000
    return torch.randn(batch, frames, feat_dim, generator=generator)


def min_length(model: torch.nn.Module, min_chunk_size: int = 25) -> int:
    """Shortest input row count the graphs accept: the extraction's padded chunk."""
    unit = int(model.frame_shift) if getattr(model, "input_type", "feats") == "waveform" else 1
    return min_chunk_size * unit


def export_onnx(model: torch.nn.Module, path: str, feat_dim: int,
                min_chunk_size: int = 25) -> None:
    """Write ``model`` as ONNX with dynamic batch and time axes (atomically)."""
    model = model.eval()
    x = example_input(model, feat_dim)
    shapes = ({0: torch.export.Dim("batch", min=1, max=4096),
               1: torch.export.Dim("time", min=min_length(model, min_chunk_size),
                                   max=1 << 30)},)
    for name in ("onnx_ir", "onnxscript", "torch.onnx", "torch.export"):
        logging.getLogger(name).setLevel(logging.WARNING)   # per-pass INFO lines otherwise
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (x,), input_names=[INPUT_NAME],
                                    output_names=[OUTPUT_NAME], dynamic_shapes=shapes,
                                    opset_version=ONNX_OPSET, dynamo=True, verbose=False)
    tmp = path + ".export.tmp"
    program.save(tmp)
    with open(tmp, "rb") as src, atomic_output(path, "wb") as out:
        out.write(src.read())
    os.unlink(tmp)


def export_torchscript(model: torch.nn.Module, path: str, feat_dim: int) -> None:
    """Write a traced TorchScript module of ``model`` (atomically)."""
    model = model.eval()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, example_input(model, feat_dim, batch=1),
                                 check_trace=False)
    with atomic_output(path, "wb") as out, warnings.catch_warnings():
        warnings.simplefilter("ignore")   # torch.jit's deprecation notice
        torch.jit.save(traced, out)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def check_export(model: torch.nn.Module, feat_dim: int, onnx_path: str = None,
                 torchscript_path: str = None, lengths: Sequence[int] = (317, 1031)
                 ) -> Dict[str, float]:
    """Smallest cosine between PyTorch and each exported graph over inputs of
    ``lengths`` frames (not the export's 300) and a batch of 2; raises below 0.9999."""
    from pyutils.deploy.runtime import OnnxEmbedder

    worst: Dict[str, float] = {}
    runners = {}
    if onnx_path:
        runners["onnx"] = OnnxEmbedder(onnx_path).forward
    if torchscript_path:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scripted = torch.jit.load(torchscript_path, map_location="cpu")
        runners["torchscript"] = lambda x: scripted(torch.from_numpy(x)).numpy()
    for length in lengths:
        x = example_input(model, feat_dim, frames=length, seed=length).numpy()
        with torch.inference_mode():
            reference = model(torch.from_numpy(x)).numpy()
        for name, run in runners.items():
            with torch.inference_mode():
                cos = float(np.min(_cosines(reference, run(x))))
            worst[name] = min(worst.get(name, 1.0), cos)
    for name, cos in worst.items():
        if not cos > 0.9999:
            raise RuntimeError(f"the {name} export differs from PyTorch (cosine {cos:.6f} on "
                               f"inputs of {', '.join(map(str, lengths))} frames)")
    return worst


def export_all(model: torch.nn.Module, feat_dim: int, out_dir: str,
               min_chunk_size: int = 25) -> Tuple[Dict[str, str], Dict[str, float]]:
    """``embedding.onnx`` and ``embedding.ts`` under ``out_dir``, both checked."""
    paths = {"onnx": os.path.join(out_dir, "embedding.onnx"),
             "torchscript": os.path.join(out_dir, "embedding.ts")}
    export_onnx(model, paths["onnx"], feat_dim, min_chunk_size)
    export_torchscript(model, paths["torchscript"], feat_dim)
    worst = check_export(model, feat_dim, paths["onnx"], paths["torchscript"])
    logger.info("exported %s: cosine to PyTorch >= %s", ", ".join(sorted(paths)),
                ", ".join(f"{k} {v:.7f}" for k, v in sorted(worst.items())))
    return paths, worst
