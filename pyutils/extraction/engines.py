"""Extraction engines: the embedding network of ``final.pt`` behind one interface.

Stage 4 and ``sv`` run a network through an :class:`~pyutils.deploy.runtime.Embedder`
(the recipe's chunking, equal-length inputs batched).  The engine decides what
executes the network:

* ``torch``: eager PyTorch (the reference);
* ``compiled``: ``torch.compile(dynamic=True)`` of the same module (one
  compilation per process, then any length without recompiling);
* ``onnx``: ONNX Runtime over ``embedding.onnx``, exported once per model by
  :func:`export_for_extraction` and checked against PyTorch on two lengths.

Every engine gives the eager embeddings to float rounding (tested to 1e-4 per
network); a network that does not export falls back to ``torch``, logged.  A model
whose front-end is numpy (``ge2e``, ``sb_ecapa``) exports the network after it, and
``onnx`` runs that front-end, then ONNX Runtime
(:class:`~pyutils.deploy.network_part.NetworkPartOnnxEmbedder`).
"""
from __future__ import annotations

import logging
import os
from typing import Optional

import torch

from pyutils.deploy.export import export_checked_onnx, frontend_spec
from pyutils.deploy.network_part import NetworkPartOnnxEmbedder
from pyutils.deploy.runtime import Embedder, OnnxEmbedder
from pyutils.deploy.torch_runtime import TorchEmbedder

logger = logging.getLogger(__name__)

ENGINES = ("torch", "compiled", "onnx")


def export_for_extraction(model: torch.nn.Module, feat_dim: int, onnx_path: str,
                          min_chunk_size: int = 25) -> Optional[str]:
    """Export ``model`` (or the network after its numpy front-end) to ``onnx_path`` and
    check it; None (logged) when it cannot be."""
    os.makedirs(os.path.dirname(os.path.abspath(onnx_path)), exist_ok=True)
    try:
        worst = export_checked_onnx(model, feat_dim, onnx_path, min_chunk_size)
    except Exception as err:   # noqa: BLE001  (any exporter failure means: use torch)
        logger.warning("ONNX export of the network failed (%s: %s); extracting with PyTorch",
                       type(err).__name__, str(err).splitlines()[0] if str(err) else "")
        if os.path.exists(onnx_path):
            os.unlink(onnx_path)
        return None
    logger.info("exported %s (cosine to PyTorch >= %.7f)", onnx_path, worst)
    return onnx_path


def build_embedder(engine: str, model: torch.nn.Module, chunk_size: int, min_chunk_size: int,
                   num_threads: int = 1, device: str = "cpu",
                   onnx_path: Optional[str] = None) -> Embedder:
    """The :class:`Embedder` of ``engine`` over ``model`` (rows: frames or samples)."""
    if engine not in ENGINES:
        raise ValueError(f"unknown extraction engine '{engine}' ({', '.join(ENGINES)})")
    if engine == "onnx":
        if onnx_path and os.path.exists(onnx_path):
            ort_device = "cuda" if str(device).startswith("cuda") else "cpu"
            frontend = frontend_spec(model)
            if frontend:
                return NetworkPartOnnxEmbedder(onnx_path, frontend, chunk_size, min_chunk_size,
                                               num_threads, ort_device)
            return OnnxEmbedder(onnx_path, chunk_size, min_chunk_size, num_threads, ort_device)
        logger.warning("no ONNX export (%s); extracting with PyTorch", onnx_path or "none given")
        engine = "torch"
    embedder = TorchEmbedder(model, chunk_size, min_chunk_size, num_threads, device)
    if engine == "compiled":
        embedder.model = torch.compile(embedder.model, dynamic=True)
    return embedder
