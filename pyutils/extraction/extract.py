"""Embeddings for every utterance of a data dir, as Kaldi's extract_xvectors.sh.

Features get the training post-processing (sliding CMN, voiced frames), are
cut into chunks of at most ``chunk_size`` frames (Kaldi default 10,000), and
the chunk embeddings are averaged weighted by their frame counts, as
``nnet3-xvector-compute`` does.  A chunk shorter than ``min_chunk_size`` is
padded by repeating its first and last frames (Kaldi's --pad-input).
Utterances with no voiced frame are skipped, logged and counted, as
``select-voiced-frames`` does.

With ``window`` > 0 each utterance instead yields one embedding per sliding
window of voiced frames, keyed ``<utt>-<first>-<end>`` (frame indices, as
Kaldi's sub-segment ids in centiseconds), as the diarization recipes'
sliding-window x-vectors.  Small corpora use these to give LDA/PLDA more
training vectors than the embedding dimension (ivector-compute-lda refuses
fewer).
"""
from __future__ import annotations

import logging
import sys
import time
from typing import Dict, Iterable, Tuple

import kaldiio
import numpy as np
import torch
from tqdm import tqdm

from pyutils.features.pipeline import cmn_voiced
from pyutils.models import build_model
from pyutils.training import checkpoint
from pyutils.utils.arkio import ArkScpWriter
from pyutils.utils.fileio import TableError, read_table

logger = logging.getLogger(__name__)


def load_embedding_model(path: str) -> torch.nn.Module:
    """Rebuild the network of ``final.pt`` in eval mode."""
    state = checkpoint.load(path)
    config = state["config"]["model"]
    model = build_model(config["name"], feat_dim=state["feat_dim"],
                        **{k: v for k, v in config.items() if k != "name"})
    model.load_state_dict(state["model"])
    return model.eval()


def pad_chunk(chunk: np.ndarray, min_frames: int) -> np.ndarray:
    """Repeat the first/last frame so the chunk has ``min_frames`` rows (Kaldi pad-input)."""
    missing = min_frames - chunk.shape[0]
    if missing <= 0:
        return chunk
    left = missing // 2
    return np.concatenate([np.repeat(chunk[:1], left, axis=0), chunk,
                           np.repeat(chunk[-1:], missing - left, axis=0)])


@torch.no_grad()
def embed(model: torch.nn.Module, feats: np.ndarray, chunk_size: int = 10000,
          min_chunk_size: int = 25) -> np.ndarray:
    """Frame-weighted average of the embeddings of consecutive chunks."""
    total = None
    weight = 0
    for start in range(0, feats.shape[0], chunk_size):
        chunk = feats[start:start + chunk_size]
        vector = model(torch.from_numpy(pad_chunk(chunk, min_chunk_size))[None])[0].numpy()
        total = vector * chunk.shape[0] if total is None else total + vector * chunk.shape[0]
        weight += chunk.shape[0]
    return (total / weight).astype(np.float32)


def windows(num_frames: int, size: int, shift: int):
    """(start, end) windows of ``size`` frames every ``shift``; the last one
    ends at ``num_frames``; an utterance shorter than ``size`` is one window."""
    if num_frames <= size:
        return [(0, num_frames)]
    starts = list(range(0, num_frames - size + 1, shift))
    if starts[-1] + size < num_frames:
        starts.append(num_frames - size)
    return [(s, s + size) for s in starts]


def _feature_pairs(feats_scp: str, vad_scp: str) -> Iterable[Tuple[str, np.ndarray, np.ndarray]]:
    """Yield (utt, feats, vad) in feats.scp order; a missing VAD entry is an error."""
    vad_locations: Dict[str, str] = {f[0]: f[1] for _, f in read_table(vad_scp, 2, 2)}
    for lineno, (utt, location) in read_table(feats_scp, 2, 2):
        if utt not in vad_locations:
            raise TableError(feats_scp, lineno, f"utterance '{utt}' has no entry in {vad_scp}")
        yield utt, kaldiio.load_mat(location), kaldiio.load_mat(vad_locations[utt])


def extract(model_path: str, feats_scp: str, vad_scp: str, ark: str, scp: str,
            cmn: dict, chunk_size: int = 10000, min_chunk_size: int = 25,
            num_threads: int = 1, window: int = 0, window_shift: int = 0) -> dict:
    """Write one embedding per utterance to ark/scp; return counts for the log."""
    torch.set_num_threads(num_threads)
    model = load_embedding_model(model_path)
    done = skipped = frames = 0
    start = time.time()
    num_utts = sum(1 for _ in read_table(feats_scp, 2, 2))
    with ArkScpWriter(ark, scp) as writer:
        for utt, feats, vad in tqdm(_feature_pairs(feats_scp, vad_scp), total=num_utts,
                                    unit="utt", file=sys.stderr, mininterval=5.0):
            voiced = cmn_voiced(np.asarray(feats, dtype=np.float32), vad, cmn)
            if voiced.shape[0] == 0:
                logger.warning("%s: no voiced frames; skipped", utt)
                skipped += 1
                continue
            if window > 0:
                for first, end in windows(voiced.shape[0], window, window_shift or window):
                    writer.write(f"{utt}-{first:07d}-{end:07d}",
                                 embed(model, voiced[first:end], chunk_size, min_chunk_size))
            else:
                writer.write(utt, embed(model, voiced, chunk_size, min_chunk_size))
            done += 1
            frames += voiced.shape[0]
    elapsed = time.time() - start
    logger.info("embedded %d utterances (%d skipped: no voiced frames), %d frames in %.1f s, "
                "real-time factor %.4f (100 frames/s)", done, skipped, frames, elapsed,
                elapsed * 100.0 / max(1, frames))
    return {"done": done, "skipped": skipped, "frames": frames}
