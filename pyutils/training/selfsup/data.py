"""Label-free views, streamed: several augmented crops of each unlabelled utterance.

Label-free training reads its audio through the supervised streaming path
(:class:`pyutils.training.shard_source.StreamSource`): memory is the shuffle
buffer and the batches in flight, never the corpus.  Each data dir (the
training dir and every ``--unlabelled-data`` dir) is either

* a shard dir (it has ``shard.list``: ``steps/make_shards.sh``): its tar
  shards are streamed; their ``.spk`` members are not used, or
* a raw data dir: its utterances (from ``segments`` or ``wav.scp``, never from
  ``utt2spk`` or ``spk2utt``, which label-free training must not read) are
  read one at a time (a segmented dir reads a segment's whole recording each
  time: pack it into shards for speed).

The shards and utterances of all dirs are pooled, shuffled per (seed, epoch,
pass), split across ranks and ``data.num_workers`` loader processes, and pass a
shuffle buffer of ``data.shuffle_buffer`` utterances, as supervised shards do.
Each utterance gives one view per crop size (MoCo: 2, DINO: ``num_long +
num_short``), each on its own:

1. a speed drawn (``augmentation.speed.prob``; the clean audio at that speed
   and its energy VAD are computed once per utterance and speed), then a
   random run of ``frames`` *voiced* frames (a shorter utterance: all its
   voiced frames, repeated to fill);
2. the features of that run computed on its span only, with the span's audio
   augmented (noise, reverberation): :meth:`pyutils.features.pipeline.FeaturePipeline.chunk`,
   the chunks of supervised on-the-fly training (MFCC/fbank of the config,
   sliding CMN, the voiced frames of the clean audio: what stage 4 extracts from).

Waveform models get ``frames * 160`` raw samples instead (augmented; no VAD, no
CMN).  An epoch is a function of (seed, epoch, rank, world size,
``data.num_workers``): a run resumed from an epoch checkpoint continues as an
uninterrupted one, given the same processes and workers.
"""
from __future__ import annotations

import logging
import os
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from pyutils.augment.speed import speed_perturb
from pyutils.data.datadir import DataDir
from pyutils.data.shards import read_shard_list, repeat_to
from pyutils.features.pipeline import FeaturePipeline
from pyutils.training.data import speed_versions
from pyutils.training.shard_source import SHARD_LIST, StreamBatches, StreamSource

logger = logging.getLogger(__name__)

SAMPLES_PER_FRAME = 160   # waveform models: a "frame" of a crop size is 10 ms at 16 kHz


def unlabelled_utts(data: DataDir) -> List[str]:
    """The utterances of a data dir from ``segments`` or ``wav.scp`` (C order), never utt2spk."""
    table = data.segments if data.has("segments") else data.wav_scp
    return sorted(table)


def is_shard_dir(data_dir: str) -> bool:
    return os.path.isfile(os.path.join(data_dir, SHARD_LIST))


class LabelFreeSource(StreamSource):
    """The unlabelled audio of one or more data dirs (shard dirs or raw data dirs),
    streamed as batches of views of ``views`` frames each (see the module docstring)."""

    def __init__(self, data_dirs: Sequence[str], features: Optional[dict],
                 augmentation: Optional[dict], views: Sequence[int],
                 shuffle_buffer_size: int = 500, num_workers: int = 0):
        units: list = []
        self.num_shards, self.num_utterances = 0, 0
        for data_dir in data_dirs:
            if is_shard_dir(data_dir):
                shards = read_shard_list(os.path.join(data_dir, SHARD_LIST))
                self.num_shards += len(shards)
                units += shards
            else:
                utts = unlabelled_utts(DataDir(data_dir))
                self.num_utterances += len(utts)
                units += [(data_dir, utt) for utt in utts]
        super().__init__(units, ", ".join(data_dirs), shuffle_buffer_size, num_workers)
        if self.num_utterances:
            self.unit_name = "shards and utterances" if self.num_shards else "utterances"
        aug = dict(augmentation or {})
        self.speeds, self.speed_prob = speed_versions(aug.pop("speed", None))
        self.augmenter = None
        if any(k in aug for k in ("noise", "reverb")):
            from pyutils.augment import Augmenter
            self.augmenter = Augmenter(aug, sample_rate=16000)
        self.pipeline = FeaturePipeline.from_config(features)
        waveform = self.pipeline.kind == "waveform"
        if not (waveform or self.pipeline.on_the_fly):
            raise ValueError("label-free training augments the audio of each view: set "
                             "features.on_the_fly: true (or use a waveform model)")
        self.rate, self.input_type = self.pipeline.rate, self.pipeline.input_type
        self.feat_dim = self.pipeline.feat_dim
        self.views = [int(n) * (SAMPLES_PER_FRAME if waveform else 1) for n in views]

    def describe(self) -> str:
        parts = ([f"{self.num_utterances} utterances"] if self.num_utterances else []) + \
            ([f"{self.num_shards} shards"] if self.num_shards else [])
        return " + ".join(parts)

    def speed_index(self, rng: np.random.Generator) -> int:
        """0 (unperturbed) or the index of a speed factor, ``speed.prob`` of the time."""
        draw, pick = rng.random(), int(rng.integers(1, max(2, len(self.speeds))))
        return pick if len(self.speeds) > 1 and draw < self.speed_prob else 0

    def version(self, sample: Dict, k: int):
        """(audio, VAD, voiced frame indices) of an utterance at speed ``k`` (no VAD for
        waveform models)."""
        samples, rate = sample["samples"], sample["rate"]
        if self.input_type == "waveform":
            if rate != self.rate:
                raise ValueError(f"{sample['shard']}: '{sample['key']}' is {rate} Hz audio, "
                                 f"the waveform model takes {self.rate}")
            return speed_perturb(samples, self.speeds[k]).astype(np.float32), None, None
        audio = speed_perturb(self.pipeline.prepare_waveform(samples, rate),
                              self.speeds[k]).astype(np.float32)
        vad = self.pipeline.vad(audio, sample["key"])
        return audio, vad, np.flatnonzero(vad)

    def view(self, key: str, version, size: int, rng: np.random.Generator):
        """One augmented random crop of ``size`` frames (samples for waveform models), or
        None when the utterance has no voiced frame."""
        audio, vad, voiced = version
        if self.input_type == "waveform":
            audio = repeat_to(audio, size) if len(audio) < size else audio
            start = int(rng.integers(0, len(audio) - size + 1))
            piece = audio[start:start + size].astype(np.float64)
            return (piece if self.augmenter is None else self.augmenter(piece, rng)) \
                .astype(np.float32)
        if len(voiced) == 0:
            return None
        if len(voiced) >= size:
            offset = int(rng.integers(0, len(voiced) - size + 1))
            return self.pipeline.chunk(key, audio, vad, voiced, offset, size, self.augmenter, rng)
        return repeat_to(self.pipeline.chunk(key, audio, vad, voiced, 0, len(voiced),
                                             self.augmenter, rng), size)


class LabelFreeBatches(StreamBatches):
    """One epoch of one rank: per step, ``(views, zeros)``: ``views`` one float32 tensor
    per crop size, row ``i`` of each a view of the same utterance (no labels: zeros)."""

    def item(self, sample: Dict, step: int, rng: np.random.Generator):
        src, versions, views = self.source, {}, []
        for size in src.views:
            k = src.speed_index(rng)
            if k not in versions:
                versions[k] = src.version(sample, k)
            view = src.view(sample["key"], versions[k], size, rng)
            if view is None:
                logger.warning("%s: '%s' has no voiced frame; skipped", sample["shard"],
                               sample["key"])
                return None
            views.append(view)
        return views

    def collate(self, items: List):
        views = [torch.from_numpy(np.stack([item[v] for item in items]))
                 for v in range(len(items[0]))]
        return views, torch.zeros(len(items), dtype=torch.int64)


LabelFreeSource.batches_class = LabelFreeBatches
