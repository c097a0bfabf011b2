"""The training loader: a batch plan, a chunk Dataset and worker processes.

Three pieces, each replaceable:

* :class:`BatchPlan` (a ``torch.utils.data.Sampler`` of batches) is a pure
  function of (seed, epoch, rank): it draws the epoch's chunk list with
  :func:`pyutils.training.chunk_sampling.epoch_batches` (so the chunks are those the
  trainer always drew) and yields this rank's share ``batch[rank::world]`` of
  every global batch as :class:`ChunkSpec` tuples.  Call ``set_epoch`` before
  each pass (it works with persistent workers: the plan runs in the main
  process, workers only receive the specs).
* :class:`ChunkDataset` (map-style) turns one spec into ``(chunk, label)`` in
  a worker: cut, augment, featurise.  The augmentation generator of a chunk is
  :func:`item_rng` ``(seed, epoch, batch, item)``, ``item`` being the chunk's
  position in the *global* batch, so the batches do not depend on
  ``data.num_workers``, the number of processes or the micro-batches.
* :class:`ChunkLoader` wraps ``torch.utils.data.DataLoader`` (``num_workers``,
  persistent workers, ``prefetch_factor``, pinned memory when the device is
  CUDA) and moves each batch to the device.  ``num_workers: 0`` loads in the
  main process, one batch ahead in a thread, as the trainer always did.

What a source must provide (``pyutils.training.data`` has three; a tar-shard
source (issue 10) can be another):

* ``lengths``: int array, the chunkable length of each item (frames, or
  samples for waveform sources) -- the plan draws offsets from it;
* ``labels``: int64 array, the class of each item; ``num_classes``,
  ``feat_dim``, ``input_type`` (``"feats"`` or ``"waveform"``);
* ``chunk(index, offset, length, rng) -> np.ndarray``: ``(length, feat_dim)``
  float32 (or ``(length,)`` samples); ``rng`` is None or the generator every
  random choice of this chunk (augmentation) must come from;
* optionally ``version_prior``: ``(group per item, share of each group)``
  that the plan keeps in its draw (speed perturbation's ``speed.prob``), or None.

A streaming source that cannot read a chunk by index (tar shards) plugs in as
a ``torch.utils.data.IterableDataset`` yielding ``(chunk, label)`` pairs:
:meth:`ChunkLoader.from_iterable` batches it with the same collate, workers,
pinning and device copy.  It must split its stream by rank and by worker
(``torch.utils.data.get_worker_info()``) itself and draw its randomness from
:func:`item_rng` for the results not to depend on ``num_workers``.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, List, NamedTuple, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from pyutils.data.shards import repeat_to
from pyutils.training.chunk_sampling import epoch_batches

AUGMENT_STREAM = 7          # keeps the chunk generators apart from the plan's own stream


class ChunkSpec(NamedTuple):
    """One chunk to load: item, first frame, frames, and where its randomness comes from."""
    index: int
    offset: int
    length: int
    seed: int
    epoch: int
    batch: int               # global batch number within the epoch
    item: int                # position in the global batch (all ranks)


def item_rng(seed: int, epoch: int, batch: int, item: int) -> np.random.Generator:
    """The generator of one chunk's augmentation; a pure function of its place."""
    return np.random.default_rng([seed, epoch, batch, AUGMENT_STREAM, item])


class BatchPlan(Sampler):
    """This rank's share of every global batch of an epoch, as lists of :class:`ChunkSpec`."""

    def __init__(self, lengths: Sequence[int], min_frames: int, max_frames: int,
                 batch_size: int, num_chunks: int, seed: int, rank: int = 0, world: int = 1,
                 prior=None, epoch: int = 1, sampling: str = "length"):
        self.lengths = np.asarray(lengths)
        self.sampling = sampling
        self.min_frames, self.max_frames = int(min_frames), int(max_frames)
        self.batch_size, self.num_chunks = int(batch_size), int(num_chunks)
        self.seed, self.rank, self.world = int(seed), int(rank), int(world)
        self.prior = prior
        self.epoch = epoch
        self._fixed = None

    @classmethod
    def from_batches(cls, batches, seed: int, epoch: int, rank: int = 0, world: int = 1):
        """A plan over given global batches (lists of (index, offset, frames))."""
        plan = cls([1], 1, 1, 1, 1, seed, rank, world, epoch=epoch)
        plan._fixed = [list(b) for b in batches]
        return plan

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def global_batches(self) -> List[list]:
        """The epoch's global chunk list, as ``epoch_batches`` draws it."""
        if self._fixed is not None:
            return self._fixed
        return epoch_batches(self.lengths, self.min_frames, self.max_frames, self.batch_size,
                             self.num_chunks, self.seed, self.epoch, prior=self.prior,
                             sampling=self.sampling)

    def __iter__(self) -> Iterator[List[ChunkSpec]]:
        for number, batch in enumerate(self.global_batches()):
            yield [ChunkSpec(u, o, n, self.seed, self.epoch, number, position)
                   for position, (u, o, n) in enumerate(batch)][self.rank::self.world]

    def __len__(self) -> int:
        if self._fixed is not None:
            return len(self._fixed)
        return max(1, self.num_chunks // self.batch_size)


class ChunkDataset(Dataset):
    """``dataset[spec]`` -> ``(chunk float32 array, label)``; augmented when ``augment``."""

    def __init__(self, source, augment: bool = True):
        self.source, self.augment = source, augment

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, spec: ChunkSpec):
        rng = item_rng(spec.seed, spec.epoch, spec.batch, spec.item) if self.augment else None
        available = int(self.source.lengths[spec.index])
        if spec.length > available:       # sampling: utterance: repeat a short one to fill
            whole = self.source.chunk(spec.index, 0, available, rng)
            return (np.asarray(repeat_to(whole, spec.length), dtype=np.float32),
                    int(self.source.labels[spec.index]))
        chunk = self.source.chunk(spec.index, spec.offset, spec.length, rng)
        return np.asarray(chunk, dtype=np.float32), int(self.source.labels[spec.index])


def collate_chunks(items):
    """Stack ``(chunk, label)`` pairs into (inputs, labels) tensors."""
    inputs = np.stack([chunk for chunk, _ in items]).astype(np.float32, copy=False)
    labels = np.fromiter((label for _, label in items), dtype=np.int64, count=len(items))
    return torch.from_numpy(inputs), torch.from_numpy(labels)


def to_device(inputs, labels, device):
    """Host-to-device copy of a batch; from pinned memory without blocking on CUDA.
    ``inputs`` may be a list of tensors (the views of label-free batches)."""
    if device.type != "cuda":
        return inputs, labels

    def move(tensor):
        return (tensor if tensor.is_pinned() else tensor.pin_memory()).to(device,
                                                                          non_blocking=True)
    if isinstance(inputs, (list, tuple)):
        return [move(x) for x in inputs], move(labels)
    return move(inputs), move(labels)


_LIMITS = []


class _WorkerInit:
    """One thread per worker (torch and numpy's BLAS): the training process keeps the
    cores it asked for, and a small BLAS call is not slowed by thread spin-up.
    ``nice`` > 0 lowers the workers' CPU priority (``data.worker_nice``): on a
    machine with few cores the training threads then run undisturbed and the
    workers fill the prefetch queue in the gaps."""

    def __init__(self, nice: int = 0):
        self.nice = int(nice)

    def __call__(self, worker_id: int) -> None:
        if self.nice > 0:
            os.nice(self.nice)
        _worker_init(worker_id)


def _worker_init(_worker_id: int) -> None:
    torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:      # (scikit-learn's dependency; without it BLAS keeps its threads)
        return
    _LIMITS.append(threadpool_limits(limits=1))


class ChunkLoader:
    """Batches of a plan (or of a stream), loaded by ``num_workers`` processes, on ``device``."""

    def __init__(self, source, plan: BatchPlan, num_workers: int = 0, device=None,
                 prefetch_factor: int = 2, augment: bool = True, worker_nice: int = 0):
        self.plan, self.num_workers = plan, int(num_workers)
        self.device = device if device is not None else torch.device("cpu")
        self.loader = _data_loader(ChunkDataset(source, augment), self.num_workers, self.device,
                                   prefetch_factor, worker_nice, batch_sampler=plan)

    @classmethod
    def from_iterable(cls, dataset, batch_size: int, num_workers: int = 0, device=None,
                      prefetch_factor: int = 2, num_batches: Optional[int] = None,
                      worker_nice: int = 0):
        """Batch an IterableDataset of ``(chunk, label)`` pairs (shards)."""
        self = cls.__new__(cls)
        self.plan, self.num_workers = None, int(num_workers)
        self.device = device if device is not None else torch.device("cpu")
        self.num_batches = num_batches
        self.loader = _data_loader(dataset, self.num_workers, self.device, prefetch_factor,
                                   worker_nice, batch_size=int(batch_size))
        return self

    def epoch(self, epoch: int):
        """An iterable over this epoch's batches (``len`` = number of batches)."""
        if self.plan is not None:
            self.plan.set_epoch(epoch)
        elif hasattr(self.loader.dataset, "set_epoch"):
            self.loader.dataset.set_epoch(epoch)
        return EpochBatches(self)

    def __len__(self) -> int:
        return len(self.plan) if self.plan is not None else int(self.num_batches or 0)


class EpochBatches:
    """One epoch's batches, moved to the device (``len`` = number of batches), of a
    loader with ``loader`` (a DataLoader), ``device``, ``num_workers`` and ``len``:
    :class:`ChunkLoader` and shard_source's loader."""

    def __init__(self, loader: ChunkLoader):
        self.owner = loader

    def __len__(self) -> int:
        return len(self.owner)

    def __iter__(self):
        owner = self.owner
        batches = (to_device(x, y, owner.device) for x, y in owner.loader)
        return _ahead(batches) if owner.num_workers == 0 else batches


def _data_loader(dataset, num_workers, device, prefetch_factor, worker_nice=0,
                 **batching) -> DataLoader:
    if num_workers < 0:
        raise ValueError(f"data.num_workers must be >= 0, got {num_workers}")
    workers = {}
    if num_workers > 0:
        workers = {"persistent_workers": True, "prefetch_factor": int(prefetch_factor),
                   "worker_init_fn": _WorkerInit(worker_nice)}
    return DataLoader(dataset, num_workers=num_workers, collate_fn=collate_chunks,
                      pin_memory=device.type == "cuda", **batching, **workers)


def _ahead(iterable):
    """Yield from ``iterable``, preparing the next item in a thread meanwhile."""
    iterator = iter(iterable)
    done = object()
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(next, iterator, done)
        while True:
            item = pending.result()
            if item is done:
                return
            pending = pool.submit(next, iterator, done)
            yield item


def build_loader(source, data_cfg: dict, chunk_range, batch_size: int, seed: int, rank,
                 device) -> ChunkLoader:
    """The trainer's loader from the config's ``data`` section (``num_workers``,
    ``prefetch_factor``, ``worker_nice``) for this rank (``rank.rank`` of ``rank.world``)."""
    plan = BatchPlan(source.lengths, chunk_range[0], chunk_range[1], batch_size,
                     int(data_cfg["chunks_per_epoch"]), seed, rank.rank, rank.world,
                     prior=getattr(source, "version_prior", None),
                     sampling=str(data_cfg.get("sampling", "length")))
    return ChunkLoader(source, plan, int(data_cfg.get("num_workers", 0) or 0), device,
                       int(data_cfg.get("prefetch_factor", 2) or 2),
                       worker_nice=int(data_cfg.get("worker_nice", 0) or 0))
