"""Embeddings for every utterance of a data dir, as Kaldi's extract_xvectors.sh.

Features get the training post-processing (sliding CMN, voiced frames), are
cut into chunks of at most ``chunk_size`` frames (Kaldi default 10,000), and
the chunk embeddings are averaged weighted by their frame counts, as
``nnet3-xvector-compute`` does.  A chunk shorter than ``min_chunk_size`` is
padded by repeating its first and last frames (Kaldi's --pad-input).
Utterances with no voiced frame are skipped, logged and counted, as
``select-voiced-frames`` does.

Speed: the network runs through an extraction engine
(:mod:`pyutils.extraction.engines`: eager PyTorch, ``torch.compile`` or ONNX
Runtime) with ``num_threads`` intra-op threads.  With ``batch_size`` > 1 the
equal-length windows of one utterance share a forward pass (one dense tensor,
no padding); batches never span utterances, so an utterance's embedding does
not depend on the job split or on its neighbours.  The default (1) keeps every
embedding bit-identical to one-at-a-time extraction: batching changes the
float32 rounding of the matrix products (about 1e-6) and, measured on this
2-core CPU, gains 5-20 % (docs/benchmark.md).

Length buckets (``bucket`` > 1): ``bucket`` consecutive utterances are read
ahead and their inputs (whole utterances, or windows) grouped by exact length,
so each forward pass is one dense tensor of equal-length inputs (no padding
reaches the pooling), up to ``batch_size`` of them; outputs keep the input
order.  Results equal one-at-a-time extraction to float rounding (~1e-6), but
now depend on which utterances share a job at that rounding level: the
recipe's default leaves it off.

With ``window`` > 0 each utterance instead yields one embedding per sliding
window of voiced frames, keyed ``<utt>-<first>-<end>`` (frame indices, as
Kaldi's sub-segment ids in centiseconds), as the diarization recipes'
sliding-window x-vectors.  Small corpora use these to give LDA/PLDA more
training vectors than the embedding dimension (ivector-compute-lda refuses
fewer).
"""
from __future__ import annotations

import logging
import os
import time
from typing import Dict, Iterable, Optional, Tuple

import kaldiio
import numpy as np
import torch

from pyutils.data.audio import AudioReader
from pyutils.data.datadir import DataDir
from pyutils.data.formats import read_scp
from pyutils.extraction.chunked_embedding import chunked_embedding
from pyutils.extraction.engines import build_embedder, export_for_extraction
from pyutils.features.pipeline import cmn_voiced
from pyutils.models import build_model
from pyutils.training import checkpoint
from pyutils.training.device import resolve_device
from pyutils.utils.threads import set_threads
from pyutils.utils.arkio import ArkScpWriter
from pyutils.utils.fileio import TableError
from pyutils.utils.progress import progress

logger = logging.getLogger(__name__)


def load_embedding_model(path: str, device: str = "cpu") -> torch.nn.Module:
    """Rebuild the network of ``final.pt`` in eval mode (on ``device``)."""
    return load_model_and_dim(path, device)[0]


def load_model_and_dim(path: str, device: str = "cpu"):
    """(network in eval mode, its input dimension) from ``final.pt``, loaded with
    map_location="cpu" (a GPU-trained model loads anywhere), then moved to ``device``."""
    state = checkpoint.load(path)
    config = state["config"]["model"]
    model = build_model(config["name"], feat_dim=state["feat_dim"],
                        **{k: v for k, v in config.items() if k != "name"})
    model.load_state_dict(state["model"])
    return model.eval().to(resolve_device(device)), state["feat_dim"]


@torch.inference_mode()
def embed(model: torch.nn.Module, feats: np.ndarray, chunk_size: int = 10000,
          min_chunk_size: int = 25) -> np.ndarray:
    """Frame-weighted average of the embeddings of consecutive chunks
    (:func:`~pyutils.extraction.chunked_embedding.chunked_embedding`, shared with ONNX Runtime)."""
    device = next(model.parameters()).device

    def forward(piece: np.ndarray) -> np.ndarray:   # (frames, dim) or (samples,)
        return model(torch.from_numpy(piece)[None].to(device))[0].float().cpu().numpy()

    return chunked_embedding(forward, feats, chunk_size, min_chunk_size)


def windows(num_frames: int, size: int, shift: int):
    """(start, end) windows of ``size`` frames every ``shift``; the last one
    ends at ``num_frames``; an utterance shorter than ``size`` is one window."""
    if num_frames <= size:
        return [(0, num_frames)]
    starts = list(range(0, num_frames - size + 1, shift))
    if starts[-1] + size < num_frames:
        starts.append(num_frames - size)
    return [(s, s + size) for s in starts]


def _feature_pairs(feats_scp: str, vad_scp: str
                   ) -> Iterable[Tuple[int, str, np.ndarray, np.ndarray]]:
    """Yield (feats.scp line, utt, feats, vad) in feats.scp order; a missing VAD
    entry is an error.  scp values are the rest of the line (paths may hold spaces)."""
    vad_locations: Dict[str, str] = {utt: value for _, utt, value in read_scp(vad_scp)}
    for lineno, utt, location in read_scp(feats_scp):
        if utt not in vad_locations:
            raise TableError(feats_scp, lineno, f"utterance '{utt}' has no entry in {vad_scp}")
        yield lineno, utt, kaldiio.load_mat(location), kaldiio.load_mat(vad_locations[utt])


def _voiced_features(feats_scp: str, vad_scp: str, cmn: dict, feat_dim: int):
    """Yield (utt, CMN'd voiced frames) -- the training post-processing."""
    for lineno, utt, feats, vad in _feature_pairs(feats_scp, vad_scp):
        if feats.ndim != 2 or feats.shape[1] != feat_dim:
            raise ValueError(f"{feats_scp}: '{utt}' has features of shape {feats.shape}; "
                             f"the model expects {feat_dim} dimensions")
        bad = int(np.sum(~np.isfinite(feats)))
        if bad:
            raise TableError(feats_scp, lineno, f"utterance '{utt}': features hold {bad} "
                             f"NaN/inf value(s)")
        yield utt, cmn_voiced(np.asarray(feats, dtype=np.float32), vad, cmn)


def _waveforms(data_dir: str, rate: int):
    """Yield (utt, int16-scale float32 samples) of a data dir; waveform models
    take the whole utterance (their temporal gating replaces the VAD)."""
    for utt, samples, _ in AudioReader(data_dir, expected_rate=rate):
        yield utt, np.asarray(samples, dtype=np.float32)


def extract(model_path: str, feats_scp: Optional[str], vad_scp: Optional[str], ark: str,
            scp: str, cmn: Optional[dict] = None, chunk_size: int = 10000,
            min_chunk_size: int = 25, num_threads: int = 1, window: int = 0,
            window_shift: int = 0, data_dir: Optional[str] = None,
            sample_rate: int = 16000, device: str = "cpu", engine: str = "torch",
            onnx_path: Optional[str] = None, batch_size: int = 1, bucket: int = 0) -> dict:
    """Write one embedding per utterance to ark/scp; return counts for the log.

    Feature models read ``feats_scp``/``vad_scp`` (+ ``cmn``); waveform models
    read the audio of ``data_dir``.  ``chunk_size``, ``min_chunk_size`` and the
    window options are in 10 ms frames either way (a waveform model converts
    them with its frame shift, 160 samples at 16 kHz).  ``engine`` runs the network
    (``onnx`` reads ``onnx_path``, exporting it first when it is missing); up to
    ``batch_size`` equal-length windows of one utterance share a forward pass, or,
    with ``bucket`` > 1, those of ``bucket`` consecutive utterances (whole ones too).
    """
    set_threads(num_threads)
    model, feat_dim = load_model_and_dim(model_path, device)
    input_type = getattr(model, "input_type", "feats")
    if input_type == "waveform":
        if data_dir is None:
            raise ValueError(f"{model_path}: the model takes waveform input; give the data dir")
        unit = int(model.frame_shift)
        num_utts = len(DataDir(data_dir).utts)
        inputs = _waveforms(data_dir, sample_rate)
    else:
        if feats_scp is None or vad_scp is None:
            raise ValueError(f"{model_path}: the model takes features; give feats.scp and vad.scp")
        unit = 1
        num_utts = len(read_scp(feats_scp))
        inputs = _voiced_features(feats_scp, vad_scp, cmn, feat_dim)
    chunk, min_chunk = chunk_size * unit, min_chunk_size * unit
    if engine == "onnx" and onnx_path and not os.path.exists(onnx_path):
        onnx_path = export_for_extraction(model, feat_dim, onnx_path, min_chunk_size)
    embedder = build_embedder(engine, model, chunk, min_chunk, num_threads, device, onnx_path)
    done = skipped = padded = frames = 0
    start = time.time()
    busy = 0.0
    block: list = []     # (utt, x) read ahead: their equal-length inputs share batches

    def flush():
        spans = [windows(x.shape[0], window * unit, (window_shift or window) * unit)
                 if window > 0 else [(0, x.shape[0])] for _, x in block]
        tick = time.perf_counter()
        vectors = iter(embedder.embed_many([x[first:end] for (_, x), s in zip(block, spans)
                                            for first, end in s], batch_size))
        for (utt, _), s in zip(block, spans):
            for first, end in s:
                writer.write(f"{utt}-{first // unit:07d}-{-(-end // unit):07d}" if window > 0
                             else utt, next(vectors))
        block.clear()
        return time.perf_counter() - tick

    with ArkScpWriter(ark, scp) as writer:
        for utt, x in progress(inputs, total=num_utts, desc="extract", unit="utt"):
            if x.shape[0] == 0:
                logger.warning("%s: no voiced frames; skipped", utt)
                skipped += 1
                continue
            if x.shape[0] < min_chunk:
                padded += 1
                logger.warning("%s: %d voiced frames, fewer than --min-chunk-size %d: padded by "
                               "repeating its edge frames (Kaldi --pad-input); its embedding "
                               "is unreliable (raise --min-duration in the feature config to "
                               "skip such audio)", utt, -(-x.shape[0] // unit), min_chunk_size)
            block.append((utt, x))
            if len(block) >= max(1, bucket):
                busy += flush()
            done += 1
            frames += x.shape[0] / unit
        if block:
            busy += flush()
    elapsed = time.time() - start
    logger.info("embedded %d utterances (%d skipped: no voiced frames; %d padded: shorter than "
                "--min-chunk-size), %d frames (10 ms) in "
                "%.1f s with %d thread(s): real-time factor %.4f (network only %.4f)",
                done, skipped, padded, frames, elapsed, num_threads,
                elapsed * 100.0 / max(1, frames), busy * 100.0 / max(1, frames))
    return {"done": done, "skipped": skipped, "padded": padded, "frames": int(frames), "seconds": elapsed,
            "network_seconds": busy}
