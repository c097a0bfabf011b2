"""Embedding networks behind one numpy interface; the ONNX Runtime one imports no torch.

An :class:`Embedder` maps a network input (``(frames, dim)`` features or
``(samples,)``) to its embedding with the recipe's chunking
(:func:`~pyutils.extraction.chunked_embedding.chunked_embedding`), and a list of inputs
in batches: inputs of equal length (and no longer than a chunk) go through the
network together, the rest one at a time.  Batched and single results differ
by float rounding only (about 1e-6 relative).

:class:`OnnxEmbedder` runs an exported ``embedding.onnx`` (dynamic batch and
time axes) with ONNX Runtime; ``sv embed --runtime onnx`` needs nothing else.
The PyTorch one is :class:`pyutils.deploy.torch_runtime.TorchEmbedder`.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Dict, List, Sequence

import numpy as np

from pyutils.extraction.chunked_embedding import chunked_embedding


class Embedder:
    """Chunked, batched embedding over a ``forward(batch) -> (batch, embed_dim)``.

    ``chunk_size`` and ``min_chunk_size`` count input rows: frames for
    feature models, samples for waveform models.
    """

    def __init__(self, chunk_size: int = 10000, min_chunk_size: int = 25):
        self.chunk_size, self.min_chunk_size = int(chunk_size), int(min_chunk_size)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def embed(self, x: np.ndarray) -> np.ndarray:
        """One utterance's embedding (float32)."""
        return chunked_embedding(lambda chunk: self.forward(chunk[None])[0], x,
                                 self.chunk_size, self.min_chunk_size)

    def embed_many(self, inputs: Sequence[np.ndarray], batch_size: int = 16) -> List[np.ndarray]:
        """Embeddings of ``inputs`` in order; equal-length inputs share a forward pass."""
        out: List[np.ndarray] = [None] * len(inputs)  # type: ignore[list-item]
        groups: Dict[tuple, List[int]] = defaultdict(list)
        for i, x in enumerate(inputs):
            if batch_size > 1 and self.min_chunk_size <= x.shape[0] <= self.chunk_size:
                groups[x.shape].append(i)
            else:
                out[i] = self.embed(x)
        for members in groups.values():
            for start in range(0, len(members), batch_size):
                part = members[start:start + batch_size]
                if len(part) == 1:
                    out[part[0]] = self.embed(inputs[part[0]])
                    continue
                vectors = self.forward(np.stack([inputs[i] for i in part]))
                for i, vector in zip(part, vectors):
                    out[i] = np.asarray(vector, dtype=np.float32)
        return out


def _providers(device: str) -> List[str]:
    """ONNX Runtime execution providers for ``cpu`` or ``cuda``; a clear error without CUDA."""
    import onnxruntime as ort

    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise RuntimeError(f"--device {device}: this onnxruntime has no CUDA provider "
                               f"(available: {', '.join(ort.get_available_providers())}); "
                               f"install onnxruntime-gpu or use --device cpu")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise ValueError(f"unknown device '{device}' (cpu or cuda)")


def pad_input(batch: np.ndarray, rows: int) -> np.ndarray:
    """``batch`` (batch, rows, ...) zero-padded at the end to ``rows`` rows: what a
    network that pads short inputs itself does, outside a graph that cannot."""
    missing = int(rows) - batch.shape[1]
    if missing <= 0:
        return batch
    return np.pad(batch, [(0, 0), (0, missing)] + [(0, 0)] * (batch.ndim - 2))


class OnnxEmbedder(Embedder):
    """ONNX Runtime session over an exported network (input ``input``, output ``embedding``);
    inputs shorter than ``min_input_rows`` (the graph's shortest) are zero-padded."""

    def __init__(self, onnx_path: str, chunk_size: int = 10000, min_chunk_size: int = 25,
                 num_threads: int = 1, device: str = "cpu", min_input_rows: int = 0):
        super().__init__(chunk_size, min_chunk_size)
        self.min_input_rows = int(min_input_rows)
        try:
            import onnxruntime as ort
        except ImportError:
            raise RuntimeError("--runtime onnx needs the onnxruntime package "
                               "(pip install onnxruntime)") from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(num_threads))
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(onnx_path, options, providers=_providers(device))
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(
            pad_input(batch, self.min_input_rows), dtype=np.float32)})[0]
