"""Training from tar shards (``data.format: shard``): random chunks streamed per epoch.

The raw sources (:mod:`pyutils.training.data`) keep every utterance in RAM and
draw chunks by index.  Here the utterances stream from WeSpeaker-layout shards
(:mod:`pyutils.data.shards`), so memory stays flat in the corpus size:

* each epoch makes ``chunks_per_epoch // batch_size`` steps, as the raw path;
  step ``i`` has one chunk length drawn from (seed, epoch, i), the same on every
  rank, between ``min_chunk_frames`` and ``max_chunk_frames``;
* the shard order is shuffled per (seed, epoch, pass), split across ranks and
  then across the DataLoader workers of each rank (disjoint within a pass);
  a worker reads its shards again, in a new order, until its steps are done;
* the encoded audio passes a shuffle buffer (``data.shuffle_buffer``
  utterances), then each utterance gives one chunk: speed perturbation
  (a new speaker per speed, WeSpeaker), augmentation, MFCC/fbank, sliding CMN
  and the voiced frames of the clean audio, exactly as
  :class:`~pyutils.training.data.OnTheFlyFeatures` computes them (dither seeded
  by the utterance id); waveform models get raw sample chunks.  Input shorter
  than the chunk is repeated to fill it (WeSpeaker's random_chunk);
* worker ``w`` of ``W`` makes steps ``w, w + W, ...`` and the DataLoader takes
  them in turn, so an epoch is a function of (seed, epoch, rank, world size,
  number of workers): a run resumed from an epoch checkpoint continues as an
  uninterrupted one, given the same world size and ``data.num_workers``.

Class indices come from the training data dir's speakers (sorted, as the raw
path), never from the shards, so a model trained either way has the same
label mapping; a shard naming a speaker outside it is an error.

The streaming itself (:class:`StreamSource`, :class:`StreamBatches`: order,
rank/worker split, passes, shuffle buffer, steps) is shared with label-free
training, whose batches are several augmented views of each utterance
(:mod:`pyutils.training.selfsup.data`), read from shards or raw data dirs.
"""
from __future__ import annotations

import logging
import os
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from pyutils.data.shards import (decode_sample, iterate_shard, random_chunk, read_shard_list,
                                 shard_order, shuffle_buffer, split_shards)
from pyutils.features.pipeline import FeaturePipeline
from pyutils.augment.speed import speed_perturb
from pyutils.data.audio import AudioReader
from pyutils.training.loader import ChunkLoader, EpochBatches

logger = logging.getLogger(__name__)

SHARD_LIST = "shard.list"


def find_shard_list(data_dir: str, data_cfg: dict) -> str:
    """``data.shard_list`` if set, else ``<data_dir>/shard.list`` (steps/make_shards.sh
    writes a shard dir that is also a data dir: utt2spk, spk2utt, shard.list)."""
    path = data_cfg.get("shard_list") or os.path.join(data_dir, SHARD_LIST)
    if not os.path.isfile(path):
        raise ValueError(f"data.format: shard needs a shard list, and {path} does not exist; "
                         f"pack the training data with steps/make_shards.sh DATA SHARD_DIR and "
                         f"train on SHARD_DIR (or set data.shard_list)")
    return path


class ChunkFrontend:
    """One streamed utterance -> its training input (features or waveform).

    Features follow OnTheFlyFeatures, through the config's
    :class:`~pyutils.features.pipeline.FeaturePipeline`: (speed-changed) clean
    audio -> VAD from the MFCC config's energy; (augmented) audio -> MFCC/fbank
    with the dither seeded by crc32 of the utterance id -> sliding CMN -> voiced
    frames.
    """

    def __init__(self, feats: dict):
        self.pipeline = FeaturePipeline.from_config(feats)
        self.kind, self.input_type = self.pipeline.kind, self.pipeline.input_type
        self.rate, self.feat_dim = self.pipeline.rate, self.pipeline.feat_dim

    def __call__(self, key: str, samples: np.ndarray, rate: int, speed: float, augmenter,
                 rng: np.random.Generator) -> np.ndarray:
        """Features (frames x dim) or waveform samples of one utterance version."""
        if self.kind == "waveform":
            if rate != self.rate:
                raise ValueError(f"{key}: {rate} Hz audio, the waveform model takes {self.rate}")
            return speed_perturb(samples, speed).astype(np.float32)
        # float32 audio, as the raw sources keep it in RAM (the same numbers)
        clean = speed_perturb(self.pipeline.prepare_waveform(samples, rate),
                              speed).astype(np.float32).astype(np.float64)
        augmented = None if augmenter is None else augmenter(clean, rng)
        feats, vad = self.pipeline.utterance(clean, key, augmented)
        return self.pipeline.network_input(feats, vad)


class StreamSource:
    """Audio streamed in a shuffled order per epoch, memory flat in the corpus size:
    the common part of the supervised :class:`ShardSource` and the label-free
    source (:mod:`pyutils.training.selfsup.data`).

    ``units`` are what the order shuffles and the ranks and workers split: shard
    paths (or URLs), read with :func:`iterate_shard` (the shuffle buffer holds
    the encoded audio), or ``(data_dir, utt)`` pairs of raw data dirs (the
    buffer holds their ids; :meth:`decode` reads the audio with
    :class:`~pyutils.data.audio.AudioReader` when an utterance leaves it).  ``batches_class`` (a
    :class:`StreamBatches`) turns the stream into one epoch's batches.
    """

    batches_class = None     # set below: ShardBatches
    unit_name = "shards"     # in messages

    def __init__(self, units: Sequence, name: str, shuffle_buffer_size: int = 500,
                 num_workers: int = 0):
        self.units, self.name = list(units), name
        if not self.units:
            raise ValueError(f"{name}: no shards or utterances")
        self.shuffle_buffer_size = max(1, int(shuffle_buffer_size))
        self.num_workers = int(num_workers)
        self._readers: Dict[str, AudioReader] = {}

    def read(self, unit) -> Iterator[Dict]:
        """The samples of one unit, not decoded yet (what the shuffle buffer holds): a
        shard's (the encoded audio), or one utterance of a raw data dir (its id only)."""
        if isinstance(unit, str):
            yield from iterate_shard(unit, decode=False)
        else:
            yield {"key": unit[1], "spk": None, "shard": unit[0]}

    def decode(self, sample: Dict) -> Dict:
        """A sample of :meth:`read` with its ``samples`` (int16 scale) and ``rate``."""
        if "audio" in sample:
            return decode_sample(sample)
        reader = self._readers.get(sample["shard"])
        if reader is None:
            reader = self._readers[sample["shard"]] = AudioReader(sample["shard"])
        samples, rate = reader.read(sample["key"])
        return {**sample, "samples": samples, "rate": rate}

    def build_loader(self, data_cfg: dict, chunk_range, batch_size: int, seed: int, rank,
                     device) -> "ShardLoader":
        """The trainer's loader (what :func:`pyutils.training.loader.build_loader` is for
        the raw sources): ``chunks_per_epoch // batch_size`` steps an epoch."""
        steps = max(1, int(data_cfg["chunks_per_epoch"]) // batch_size)
        return ShardLoader(self, seed, steps, batch_size, chunk_range, rank.rank, rank.world,
                           device)

    def epoch_dataset(self, seed: int, epoch: int, steps: int, batch_size: int,
                      chunk_range, rank: int = 0, world: int = 1) -> "StreamBatches":
        """This rank's batches (``batch_size // world`` items each) of one epoch."""
        if batch_size % world:
            raise ValueError(f"data.batch_size {batch_size} must split evenly over {world} "
                             f"processes")
        return self.batches_class(self, seed, epoch, steps, batch_size // world, chunk_range,
                                  rank, world)

    def epoch_loader(self, seed: int, epoch: int, steps: int, batch_size: int, chunk_range,
                     rank: int = 0, world: int = 1, pin_memory: bool = False) -> DataLoader:
        """A DataLoader over :meth:`epoch_dataset` with ``data.num_workers`` processes."""
        dataset = self.epoch_dataset(seed, epoch, steps, batch_size, chunk_range, rank, world)
        extra = {"prefetch_factor": 2} if self.num_workers > 0 else {}
        return DataLoader(dataset, batch_size=None, num_workers=self.num_workers,
                          pin_memory=pin_memory, **extra)


class ShardSource(StreamSource):
    """The trainer's view of shard training data (``num_classes``, ``feat_dim``,
    ``input_type``, ``speakers``, ``len``), and the batches of each epoch."""

    def __init__(self, shard_list: str, utt2spk: Dict[str, str], train_utts: Sequence[str],
                 feats: dict, augmenter=None, speeds: Sequence[float] = (1.0,),
                 shuffle_buffer_size: int = 500, num_workers: int = 0,
                 speed_prob: Optional[float] = None):
        self.shard_list = shard_list
        self.shards = read_shard_list(shard_list)
        super().__init__(self.shards, shard_list, shuffle_buffer_size, num_workers)
        self.train_utts = set(train_utts)
        self.excluded = set(utt2spk) - self.train_utts    # held out for validation
        self.speakers = sorted({utt2spk[u] for u in self.train_utts})
        self.frontend = ChunkFrontend(feats)
        self.input_type, self.feat_dim = self.frontend.input_type, self.frontend.feat_dim
        self.augmenter, self.speeds = augmenter, list(speeds)
        # share of perturbed utterances, the factors equally likely (None: all speeds alike)
        self.speed_prob = (1 - 1 / len(self.speeds)) if speed_prob is None else float(speed_prob)
        self.num_classes = len(self.speakers) * len(self.speeds)

    def __len__(self) -> int:
        return len(self.train_utts)


def step_lengths(seed: int, epoch: int, steps: int, chunk_range) -> List[int]:
    """The chunk length of every step of an epoch (a function of seed and epoch)."""
    rng = np.random.default_rng([seed, epoch, 31])
    return [int(n) for n in rng.integers(chunk_range[0], chunk_range[1] + 1, size=steps)]


class StreamBatches(IterableDataset):
    """One epoch of one rank of a :class:`StreamSource`, step by step.

    The units are shuffled per (seed, epoch, pass) and split by rank, then by
    worker; each worker reads its units pass after pass until its steps
    (``worker, worker + W, ...``) are made.  A subclass says what a kept
    sample (:meth:`keep`) becomes (:meth:`item`: None skips it) and how a
    batch of items is stacked (:meth:`collate`)."""

    def __init__(self, source: StreamSource, seed: int, epoch: int, steps: int, batch: int,
                 chunk_range, rank: int, world: int):
        self.source, self.seed, self.epoch, self.steps = source, seed, epoch, steps
        self.batch, self.rank, self.world = batch, rank, world
        self.chunk_range = chunk_range

    def __len__(self) -> int:
        return self.steps

    def keep(self, sample: Dict) -> bool:
        return True

    def item(self, sample: Dict, step: int, rng: np.random.Generator):
        raise NotImplementedError

    def collate(self, items: List):
        raise NotImplementedError

    def _utterances(self, worker: int, workers: int) -> Iterator[Dict]:
        """Samples of this worker's units, pass after pass (a new order each)."""
        src = self.source
        for units_pass in range(10 ** 9):
            order = shard_order(src.units, self.seed, (self.epoch, units_pass))
            mine = split_shards(order, self.rank, self.world, worker, workers)
            if not mine:
                raise ValueError(f"{src.name}: {len(src.units)} {src.unit_name} for "
                                 f"{self.world} process(es) x {workers} loader worker(s); every "
                                 f"worker needs one: pack with fewer --utts-per-shard or lower "
                                 f"data.num_workers")
            used = 0
            for unit in mine:
                for sample in src.read(unit):
                    if self.keep(sample):
                        used += 1
                        yield sample
            if used == 0:
                raise ValueError(f"{src.name}: the {src.unit_name} of worker {worker} on rank "
                                 f"{self.rank} hold no training utterance")

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        torch.set_num_threads(1) if info is not None else None
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, worker])
        stream = shuffle_buffer(self._utterances(worker, workers), self.source.shuffle_buffer_size,
                                rng)
        for step in range(worker, self.steps, workers):
            items = []
            while len(items) < self.batch:
                item = self.item(self.source.decode(next(stream)), step, rng)
                if item is not None:
                    items.append(item)
            yield self.collate(items)


class ShardBatches(StreamBatches):
    """One epoch of one rank of a :class:`ShardSource`: ``(inputs, labels)`` tensors,
    one chunk of each utterance, a chunk length per step (:func:`step_lengths`)."""

    def __init__(self, source: ShardSource, seed: int, epoch: int, steps: int, batch: int,
                 chunk_range, rank: int, world: int):
        super().__init__(source, seed, epoch, steps, batch, chunk_range, rank, world)
        self.lengths = step_lengths(seed, epoch, steps, chunk_range)
        self.index = {s: i for i, s in enumerate(source.speakers)}

    def keep(self, sample: Dict) -> bool:
        if sample["key"] in self.source.excluded:
            return False
        if sample["spk"] is None:
            raise ValueError(f"{sample['shard']}: utterance '{sample['key']}' has no .spk "
                             f"member (packed from a data dir without utt2spk): only "
                             f"label-free training reads such shards")
        if sample["spk"] not in self.index:
            raise ValueError(f"{sample['shard']}: utterance '{sample['key']}' has speaker "
                             f"'{sample['spk']}', which the training data dir's "
                             f"utt2spk does not have")
        return True

    def item(self, sample: Dict, step: int, rng: np.random.Generator):
        src = self.source
        k = 0
        if len(src.speeds) > 1 and rng.random() < src.speed_prob:
            k = 1 + int(rng.integers(len(src.speeds) - 1))
        aug = src.augmenter if src.input_type == "feats" else None
        x = src.frontend(sample["key"], sample["samples"], sample["rate"], src.speeds[k], aug, rng)
        if len(x) == 0:
            logger.warning("%s: '%s' has no voiced frame; skipped", sample["shard"],
                           sample["key"])
            return None
        x = random_chunk(x, self.lengths[step], rng)
        if src.input_type == "waveform" and src.augmenter is not None:
            x = src.augmenter(x.astype(np.float64), rng)   # per chunk, as WaveformStore
        return np.asarray(x, np.float32), self.index[sample["spk"]] + k * len(src.speakers)

    def collate(self, items: List):
        return (torch.from_numpy(np.stack([x for x, _ in items])),
                torch.tensor([label for _, label in items], dtype=torch.int64))


StreamSource.batches_class = ShardBatches


class ShardValidation:
    """Held-out utterances (``validation.utts_per_speaker``) read from the shards
    in one pass at start-up, with the raw sources' interface (``lengths``,
    ``labels``, ``chunk``): the validation set is small, the pass is one read of
    the shards."""

    def __init__(self, source: ShardSource, utt2spk: Dict[str, str], valid_utts: Sequence[str]):
        wanted, index = set(valid_utts), {s: i for i, s in enumerate(source.speakers)}
        found: Dict[str, np.ndarray] = {}
        for shard in source.shards:
            for sample in iterate_shard(shard, decode=False):
                if sample["key"] in wanted:
                    s = decode_sample(sample)
                    found[s["key"]] = source.frontend(s["key"], s["samples"], s["rate"], 1.0, None,
                                                      None)
        missing = sorted(wanted - set(found))
        if missing:
            raise ValueError(f"{source.shard_list}: {len(missing)} validation utterance(s) are in "
                             f"no shard, e.g. '{missing[0]}'")
        self.utts = sorted(found)
        self.inputs = [found[u] for u in self.utts]
        self.labels = np.array([index[utt2spk[u]] for u in self.utts], dtype=np.int64)
        self.lengths = np.array([len(x) for x in self.inputs])
        self.speakers, self.num_classes = source.speakers, source.num_classes
        self.input_type, self.feat_dim = source.input_type, source.feat_dim

    def __len__(self) -> int:
        return len(self.utts)

    def chunk(self, index: int, offset: int, length: int, rng=None) -> np.ndarray:
        return self.inputs[index][offset:offset + length]


def build_shard_sources(config: dict, data_dir: str, utt2spk: Dict[str, str],
                        train_utts: Sequence[str], valid_utts: Sequence[str], augmenter,
                        speeds: Sequence[float], speed_prob: Optional[float] = None):
    """(ShardSource, ShardValidation or None) for ``data.format: shard``."""
    feats, data_cfg = config.get("features", {"type": "mfcc"}), config["data"]
    if feats.get("type", "mfcc") != "waveform" and not feats.get("on_the_fly", False):
        raise ValueError("data.format: shard streams audio, so the features are computed in the "
                         "loader: set features.on_the_fly: true (or train a waveform model)")
    source = ShardSource(find_shard_list(data_dir, data_cfg), utt2spk, train_utts, feats,
                         augmenter, speeds, int(data_cfg.get("shuffle_buffer", 500)),
                         int(data_cfg.get("num_workers", 0) or 0), speed_prob)
    valid = ShardValidation(source, utt2spk, valid_utts) if valid_utts else None
    return source, valid



class ShardLoader(ChunkLoader):
    """The trainer's :class:`~pyutils.training.loader.ChunkLoader` for shards: each
    :meth:`epoch` builds that epoch's DataLoader over :class:`ShardBatches`
    (workers started per epoch, so they see the epoch), on ``device``."""

    def __init__(self, source: StreamSource, seed: int, steps: int, batch_size: int, chunk_range,
                 rank: int = 0, world: int = 1, device=None):
        self.plan, self.loader = None, None
        self.source, self.seed, self.steps, self.batch_size = source, seed, steps, batch_size
        self.chunk_range, self.rank, self.world = chunk_range, rank, world
        self.num_workers = source.num_workers
        self.device = device if device is not None else torch.device("cpu")

    def epoch(self, epoch: int):
        self.loader = self.source.epoch_loader(self.seed, epoch, self.steps, self.batch_size,
                                               self.chunk_range, self.rank, self.world,
                                               self.device.type == "cuda")
        return EpochBatches(self)

    def __len__(self) -> int:
        return self.steps
