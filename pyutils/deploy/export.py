"""TorchScript and ONNX export of the embedding networks, features outside the graph.

The graph maps a batch of network inputs, ``(batch, frames, feat_dim)``
features after CMN and VAD or ``(batch, samples)`` waveforms, to
``(batch, embed_dim)`` embeddings.  Both the batch and the time axis are
dynamic: ONNX goes through ``torch.export`` (the dynamo exporter) with
symbolic dimensions, so every length from ``min_length`` up works.  The older
TorchScript-based ONNX exporter is not used: it bakes CAM++'s segment pooling
(``repeat_interleave``) to the traced length, the kind of fixed-length graph
WeSpeaker's issue 391 reports (stuck at 200 frames).  Every export is checked
on two other lengths against the PyTorch network (:func:`check_export`).  The
graph's input is named ``input`` and its output ``embedding``
(:func:`name_graph_io`).  ONNX and TorchScript are exported and checked each
on its own: a package keeps the one that worked and records why the other
failed (:func:`export_all`).

TorchScript is a trace: the networks have no data-dependent control flow for
inputs of at least ``min_length`` rows (wav2spk pads shorter waveforms; the
extraction pads every chunk to ``min_chunk_size`` first).
"""
from __future__ import annotations

import json
import logging
import os
import warnings
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from pyutils.utils.fileio import atomic_output

logger = logging.getLogger(__name__)

ONNX_OPSET = 18
# Bump when a change to the exporters (this module, pyutils.deploy.network_part, a network's
# export-relevant code) changes what an export writes or whether it succeeds: the export's
# completion marker records it (:func:`export_method`), so exports made by older code, done
# or failed, are redone.
EXPORT_VERSION = 2
INPUT_NAME, OUTPUT_NAME = "input", "embedding"


def example_input(model: torch.nn.Module, feat_dim: int, frames: int = 300,
                  batch: int = 2, seed: int = 0) -> torch.Tensor:
    """A random network input of ``frames`` 10 ms frames (waveform: samples)."""
    generator = torch.Generator().manual_seed(seed)
    if getattr(model, "input_type", "feats") == "waveform":
        return torch.randn(batch, frames * int(model.frame_shift), generator=generator) * 1000
    return torch.randn(batch, frames, feat_dim, generator=generator)


def min_length(model: torch.nn.Module, min_chunk_size: int = 25) -> int:
    """Shortest input row count the graphs accept: the extraction's padded chunk or,
    for a waveform model that zero-pads shorter inputs itself (an SSL encoder with
    an unpadded head), its ``receptive_field``: a trace bakes that padding branch
    in, so the runtime zero-pads as the network would (``min_input_rows``)."""
    if getattr(model, "input_type", "feats") != "waveform":
        return min_chunk_size
    return max(min_chunk_size * int(model.frame_shift), int(getattr(model, "receptive_field", 0)))


def onnx_program(module: torch.nn.Module, example: torch.Tensor, shapes):
    """``module`` exported by the dynamo ONNX exporter with ``shapes``' dynamic axes and this
    toolkit's input/output names (the exporter's per-pass INFO lines and warnings silenced)."""
    for name in ("onnx_ir", "onnxscript", "torch.onnx", "torch.export"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, (example,), dynamic_shapes=shapes,
                                    opset_version=ONNX_OPSET, dynamo=True, verbose=False)
    name_graph_io(program.model, INPUT_NAME, OUTPUT_NAME)
    return program


def export_onnx(model: torch.nn.Module, path: str, feat_dim: int,
                min_chunk_size: int = 25) -> None:
    """Write ``model`` as ONNX with dynamic batch and time axes (atomically)."""
    model = model.eval()
    x = example_input(model, feat_dim)
    shapes = ({0: torch.export.Dim("batch", min=1, max=4096),
               1: torch.export.Dim("time", min=min_length(model, min_chunk_size),
                                   max=1 << 30)},)
    program = onnx_program(model, x, shapes)
    tmp = path + ".export.tmp"
    program.save(tmp)
    with open(tmp, "rb") as src, atomic_output(path, "wb") as out:
        out.write(src.read())
    os.unlink(tmp)


def export_network_part(model: torch.nn.Module, path: str,
                        seconds: Sequence[float] = (1.3, 4.1)) -> float:
    """ONNX of the network behind a numpy front-end (models with ``frontend`` and
    ``network_part``: ``ge2e``, ``sb_ecapa``), written atomically.  The graph takes what
    ``model.frontend(wav)`` gives for one utterance in [-1, 1] (GE2E: its partial mel
    windows, dynamic in number; SpeechBrain ECAPA: (1, frames, mels)) and returns its
    (1, embed_dim) embedding; the front-end stays outside, in numpy.  The time axis is
    dynamic when the front-end's outputs for ``seconds`` differ in length (ECAPA's frames),
    fixed when they do not (GE2E's 160-frame partials: declaring it dynamic sends
    ``torch.export``, which unrolls the LSTM over time, through its fallback strategies:
    485 s against 65 s for a 2-layer test LSTM on a loaded 2-core machine).  Checked: ONNX Runtime on the front-end's output against the whole eager
    model on the waveform, for utterances of ``seconds``; returns the largest absolute
    difference, raises above 1e-4."""
    import onnxruntime as ort

    model, part = model.eval(), model.network_part().eval()
    rng = np.random.default_rng(0)
    waves = [rng.normal(size=int(16000 * s)) * 3000 for s in seconds]
    inputs = [torch.from_numpy(model.frontend(w / 32768.0)) for w in waves]
    rows = sorted({int(x.shape[1]) for x in inputs})
    shapes = ({0: torch.export.Dim("batch", min=1, max=4096),
               **({1: torch.export.Dim("time", min=min(25, rows[0]), max=1 << 30)}
                  if len(rows) > 1 else {})},)
    example = max(inputs, key=lambda x: x.shape[0] * 10 ** 6 + x.shape[1])
    if example.shape[0] == 1:       # a dimension of 1 would be fixed in the graph
        example = torch.cat([example, example])
    program = onnx_program(part, example, shapes)
    tmp = path + ".export.tmp"
    program.save(tmp)
    session = ort.InferenceSession(tmp, providers=["CPUExecutionProvider"])
    worst = 0.0
    for wave, x in zip(waves, inputs):
        with torch.inference_mode():
            eager = model(torch.from_numpy(wave.astype(np.float32))[None]).numpy()
        ours = session.run(None, {INPUT_NAME: x.numpy()})[0]
        worst = max(worst, float(np.max(np.abs(ours - eager))))
    if not worst <= 1e-4:
        os.unlink(tmp)
        raise RuntimeError(f"the ONNX network part differs from PyTorch by {worst:.2e}")
    with open(tmp, "rb") as src, atomic_output(path, "wb") as out:
        out.write(src.read())
    os.unlink(tmp)
    return worst


def frontend_spec(model: torch.nn.Module) -> Optional[dict]:
    """The numpy front-end that runs before ``model``'s ONNX (``model.frontend_spec()``,
    :mod:`pyutils.deploy.network_part`), or None: the whole network exports."""
    return model.frontend_spec() if hasattr(model, "network_part") else None


def exporter_version() -> str:
    """The exporter that writes an ONNX (:data:`EXPORT_VERSION`, opset, torch), for markers."""
    return f"onnx export v{EXPORT_VERSION} opset {ONNX_OPSET} torch {torch.__version__}"


def export_method(model: torch.nn.Module) -> str:
    """What decides ``model``'s ONNX besides its weights and options, for the export's
    completion marker: :data:`EXPORT_VERSION`, the opset, the torch that exports, and the path
    (the whole network, or the network after the numpy front-end it names)."""
    frontend = frontend_spec(model)
    path = (f"network part after numpy front-end {json.dumps(frontend, sort_keys=True)}"
            if frontend else "whole network")
    return f"{exporter_version()}: {path}"


def export_checked_onnx(model: torch.nn.Module, feat_dim: int, path: str,
                        min_chunk_size: int = 25, min_input_rows: int = 0) -> float:
    """``model``'s ONNX at ``path``: the whole network (:func:`export_onnx`) or, for a model
    with a numpy front-end, the network after it (:func:`export_network_part`); checked
    (:func:`check_export`).  Returns the smallest cosine to PyTorch; raises on failure."""
    frontend = frontend_spec(model)
    if frontend:
        export_network_part(model, path)
    else:
        export_onnx(model, path, feat_dim, min_chunk_size)
    return check_export(model, feat_dim, onnx_path=path, min_input_rows=min_input_rows,
                        frontend=frontend)["onnx"]


def name_graph_io(model, input_name: str, output_name: str) -> None:
    """Name the graph's (single) input and output, renaming any inner value that
    already holds either name.

    The exporter names inner values after the FX nodes (``embedding`` for an
    ``nn.Embedding`` lookup, as WavLM's relative position bias), and its
    ``output_names`` renames the output without looking: two values of one
    name, a graph ONNX Runtime refuses ("Duplicate definition of name")."""
    graph = model.graph
    wanted = {input_name: graph.inputs[0], output_name: graph.outputs[0]}
    values = list(graph.inputs) + list(graph.initializers.values())
    for node in graph.all_nodes():     # subgraphs included
        values += list(node.outputs)
    taken = {value.name for value in values}
    for name, owner in wanted.items():
        for value in values:
            if value.name == name and value is not owner:
                suffix = 1
                while f"{name}_{suffix}" in taken:
                    suffix += 1
                value.name = f"{name}_{suffix}"
                taken.add(value.name)
        owner.name = name


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
                 torchscript_path: str = None, lengths: Sequence[int] = (25, 317, 1031),
                 min_input_rows: int = 0, frontend: Optional[dict] = None) -> Dict[str, float]:
    """Smallest cosine between PyTorch and each exported graph over inputs of
    ``lengths`` frames (not the export's 300; the shortest chunk) and a batch of 2,
    shorter inputs zero-padded to ``min_input_rows`` as the runtime does; raises
    below 0.9999.  ``frontend``: the ONNX is a network part, run behind that numpy
    front-end (:class:`~pyutils.deploy.network_part.NetworkPartOnnxEmbedder`)."""
    from pyutils.deploy.network_part import NetworkPartOnnxEmbedder
    from pyutils.deploy.runtime import OnnxEmbedder, pad_input

    worst: Dict[str, float] = {}
    runners = {}
    if onnx_path:
        runners["onnx"] = (NetworkPartOnnxEmbedder(onnx_path, frontend).forward if frontend
                           else OnnxEmbedder(onnx_path, min_input_rows=min_input_rows).forward)
    if torchscript_path:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scripted = torch.jit.load(torchscript_path, map_location="cpu")
        runners["torchscript"] = lambda x: scripted(torch.from_numpy(
            pad_input(x, min_input_rows))).numpy()
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


def padded_input_rows(model: torch.nn.Module, min_chunk_size: int = 25) -> int:
    """The rows the runtime zero-pads a graph's input to (manifest ``min_input_rows``):
    :func:`min_length`; 0 for a network part, whose input is its front-end's output."""
    return 0 if frontend_spec(model) else min_length(model, min_chunk_size)


def failure_reason(err: BaseException, limit: int = 300) -> str:
    """``Type: first line of the message``, at most ``limit`` characters (for the manifest)."""
    lines = str(err).strip().splitlines()
    reason = f"{type(err).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    return reason if len(reason) <= limit else reason[:limit - 3] + "..."


def export_all(model: torch.nn.Module, feat_dim: int, out_dir: str, min_chunk_size: int = 25
               ) -> Tuple[Dict[str, str], Dict[str, float], Dict[str, str]]:
    """``embedding.onnx`` and ``embedding.ts`` under ``out_dir``, each exported and
    checked on its own: (paths, smallest cosine to PyTorch, failure reasons).  A kind
    that fails (export or check) leaves no file and its reason; the other stays.  A model
    with a numpy front-end exports the network after it to ONNX, and no TorchScript."""
    files = {"onnx": "embedding.onnx", "torchscript": "embedding.ts"}
    paths: Dict[str, str] = {}
    worst: Dict[str, float] = {}
    errors: Dict[str, str] = {}
    rows = padded_input_rows(model, min_chunk_size)
    for kind, name in files.items():
        path = os.path.join(out_dir, name)
        try:
            if kind == "onnx":
                worst[kind] = export_checked_onnx(model, feat_dim, path, min_chunk_size, rows)
            elif frontend_spec(model):
                raise NotImplementedError("the model's front-end is numpy: only the network "
                                          "after it exports, to ONNX")
            else:
                export_torchscript(model, path, feat_dim)
                worst[kind] = check_export(model, feat_dim, torchscript_path=path,
                                           min_input_rows=rows)[kind]
            paths[kind] = path
        except Exception as err:   # noqa: BLE001  (torch.export and ONNX Runtime raise many kinds)
            errors[kind] = failure_reason(err)
            logger.warning("the %s export failed: %s", kind, errors[kind])
            if os.path.exists(path):
                os.unlink(path)
    if paths:
        logger.info("exported %s: cosine to PyTorch >= %s", ", ".join(sorted(paths)),
                    ", ".join(f"{k} {v:.7f}" for k, v in sorted(worst.items())))
    return paths, worst, errors
