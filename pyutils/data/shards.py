"""Tar shards in WeSpeaker's layout: pack a data dir, stream it back.

For corpora that fit neither in RAM nor on a node's disk (VoxCeleb2: 1M
utterances).  A shard ``shards_%09d.tar`` holds about 1,000 utterances,
each as two adjacent members: ``<key>.spk`` (the speaker id, UTF-8) and
``<key>.wav`` or ``<key>.flac`` (the audio file's bytes, copied as they
are; pipes and segments are decoded and stored as 16-bit wav).
Unlabelled audio (a data dir without ``utt2spk``, for label-free training)
is packed without ``.spk`` members.  ``shard.list`` names one shard per
line.  Written with the standard
:mod:`tarfile` module, shards are interchangeable with those of WeSpeaker's
``tools/make_shard_list.py``.

Training streams them (:mod:`pyutils.training.shard_source`, supervised and
label-free) with the pieces here: :func:`shard_order` shuffles the shards per
epoch, :func:`split_shards` splits them across ranks and then across the
DataLoader workers of each rank, :func:`iterate_shard` reads each one
sequentially (local path, or ``http(s)://`` opened as a stream) and
:func:`shuffle_buffer` mixes the samples.  Memory is the buffer and one
member, never the corpus.
"""
from __future__ import annotations

import io
import logging
import os
import random
import tarfile
import urllib.request
from typing import Dict, Iterable, Iterator, List, Optional, Sequence

import numpy as np
import soundfile as sf

from pyutils.data.audio import AudioReader
from pyutils.data.datadir import DataDir
from pyutils.data.formats import utt2spk_to_spk2utt
from pyutils.utils.fileio import atomic_output, write_lines

logger = logging.getLogger(__name__)

AUDIO_SUFFIXES = ("wav", "flac")
INT16 = 32768.0


def shard_name(index: int) -> str:
    return f"shards_{index:09d}.tar"


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _audio_member(value: str, segmented: bool) -> Optional[tuple]:
    """(suffix, bytes) of a plain wav/flac file entry, or None (must decode)."""
    suffix = value.rsplit(".", 1)[-1].lower()
    if segmented or value.endswith("|") or suffix not in AUDIO_SUFFIXES or not os.path.isfile(value):
        return None
    with open(value, "rb") as handle:
        return suffix, handle.read()


def _wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    out = io.BytesIO()
    sf.write(out, np.clip(samples / INT16, -1, 1 - 1 / INT16), rate, format="WAV",
             subtype="PCM_16")
    return out.getvalue()


def write_shards(data_dir: str, out_dir: str, utts_per_shard: int = 1000,
                 shuffle: bool = False, seed: int = 777) -> List[str]:
    """Pack the utterances of ``data_dir`` into ``out_dir/shards_*.tar`` and
    write ``out_dir/shard.list`` (absolute paths) with copies of the data dir's
    ``utt2spk`` and ``spk2utt``, so ``out_dir`` is the training data dir of
    ``data.format: shard``; return the shard paths.

    Utterances go in utt2spk order, or shuffled with ``seed`` (WeSpeaker
    shuffles before packing so each shard mixes speakers).  A data dir without
    ``utt2spk`` (unlabelled audio, for label-free training) is packed from
    ``segments`` or ``wav.scp`` without ``.spk`` members, and ``out_dir`` gets
    no ``utt2spk``/``spk2utt``.  Each shard is
    written to a temp file and renamed, so a killed run leaves whole shards.
    """
    if utts_per_shard < 1:
        raise ValueError(f"utts_per_shard must be >= 1, got {utts_per_shard}")
    data = DataDir(data_dir)
    labelled = data.has("utt2spk")
    utts = data.utts if labelled else sorted(data.segments or data.wav_scp)
    if shuffle:
        random.Random(seed).shuffle(utts)
    segmented = data.segments is not None
    reader = AudioReader(data)
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for start in range(0, len(utts), utts_per_shard):
        path = os.path.abspath(os.path.join(out_dir, shard_name(len(paths))))
        with atomic_output(path, "wb") as handle:
            with tarfile.open(fileobj=handle, mode="w") as tar:
                for utt in utts[start:start + utts_per_shard]:
                    member = None if segmented else _audio_member(data.wav_scp[utt], False)
                    if member is None:
                        samples, rate = reader.read(utt)
                        member = ("wav", _wav_bytes(samples, rate))
                    if labelled:
                        _add(tar, f"{utt}.spk", data.utt2spk[utt].encode("utf-8"))
                    _add(tar, f"{utt}.{member[0]}", member[1])
        paths.append(path)
        logger.info("%s: %d utterances", path, min(utts_per_shard, len(utts) - start))
    for name in os.listdir(out_dir):  # shards of an earlier, larger packing
        if name.startswith("shards_") and name.endswith(".tar") and \
                os.path.join(os.path.abspath(out_dir), name) not in paths:
            os.unlink(os.path.join(out_dir, name))
    # the shard dir is also the training data dir of data.format: shard (speakers, ids)
    if labelled:
        packed = [(u, data.utt2spk[u]) for u in sorted(utts)]
        write_lines(os.path.join(out_dir, "utt2spk"), [f"{u} {s}" for u, s in packed])
        write_lines(os.path.join(out_dir, "spk2utt"), [
            f"{s} {' '.join(us)}" for s, us in sorted(utt2spk_to_spk2utt(packed).items())])
    else:                # no labels: none left from an earlier, labelled packing
        for name in ("utt2spk", "spk2utt"):
            if os.path.exists(os.path.join(out_dir, name)):
                os.unlink(os.path.join(out_dir, name))
    write_lines(os.path.join(out_dir, "shard.list"), paths)
    return paths


def read_shard_list(path: str) -> List[str]:
    """Shard paths or URLs, one per line; relative paths are relative to the list."""
    base = os.path.dirname(os.path.abspath(path))
    shards = []
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            line = line.strip()
            if not line:
                raise ValueError(f"{path}:{lineno}: empty line")
            if not line.startswith(("http://", "https://", "/")):
                line = os.path.join(base, line)
            shards.append(line)
    return shards


def open_stream(source: str, timeout: float = 60.0):
    """A readable binary stream of a local shard or an ``http(s)://`` URL (not buffered whole)."""
    if source.startswith(("http://", "https://")):
        return urllib.request.urlopen(source, timeout=timeout)
    return open(source, "rb")


def iterate_shard(source: str, decode: bool = True) -> Iterator[Dict]:
    """Yield ``{key, spk, samples (int16 scale, float32), rate}`` of one shard, in order.

    The tar is read as a stream (mode ``r|``), so memory is one member.  A
    key whose audio member is missing is an error naming the shard; one without
    ``.spk`` (unlabelled audio) has ``spk`` None.
    With ``decode=False`` the audio stays the member's bytes (``audio``,
    ``suffix``), 2 bytes a sample or fewer instead of 4: what a shuffle buffer
    should hold; :func:`decode_sample` decodes it later.
    """
    with open_stream(source) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
        key, sample = None, {}
        for info in tar:
            if not info.isfile():
                continue
            name, _, suffix = info.name.rpartition(".")
            if name != key:
                if key is not None:
                    yield _finish(source, key, sample, decode)
                key, sample = name, {}
            sample[suffix] = tar.extractfile(info).read()
        if key is not None:
            yield _finish(source, key, sample, decode)


def _finish(source: str, key: str, members: Dict[str, bytes], decode: bool = True) -> Dict:
    suffix = next((s for s in AUDIO_SUFFIXES if s in members), None)
    if suffix is None:
        raise ValueError(f"{source}: utterance '{key}' lacks its audio member")
    spk = members["spk"].decode("utf-8").strip() if "spk" in members else None
    sample = {"key": key, "spk": spk, "audio": members[suffix], "suffix": suffix,
              "shard": source}
    return decode_sample(sample) if decode else sample


def decode_sample(sample: Dict) -> Dict:
    """Replace a sample's ``audio`` bytes by ``samples`` (int16 scale, float32) and ``rate``."""
    samples, rate = sf.read(io.BytesIO(sample["audio"]), dtype="float32", always_2d=True)
    out = {k: v for k, v in sample.items() if k not in ("audio", "suffix")}
    out.update(samples=samples[:, 0] * np.float32(INT16), rate=rate)
    return out


def random_chunk(samples: np.ndarray, length: int, rng) -> np.ndarray:
    """A random ``length``-row window (samples, or feature frames); shorter input
    is repeated to fill it (WeSpeaker's random_chunk pads by repetition too).
    ``rng``: a :class:`random.Random` or a numpy Generator."""
    if len(samples) >= length:
        span = len(samples) - length + 1
        start = int(rng.integers(span)) if hasattr(rng, "integers") else rng.randrange(span)
        return samples[start:start + length]
    return repeat_to(samples, length)


def repeat_to(samples: np.ndarray, length: int) -> np.ndarray:
    """``samples`` (rows) repeated end to end and cut to ``length`` rows."""
    reps = -(-length // len(samples))
    return np.tile(samples, (reps,) + (1,) * (samples.ndim - 1))[:length]


def shard_order(shards: Sequence[str], seed: int, epoch) -> List[str]:
    """The shard list shuffled by (``seed``, ``epoch``); ``epoch`` may be any
    hashable value (the training source uses (epoch, pass))."""
    shards = list(shards)
    random.Random(f"{seed}-{epoch}" if not isinstance(epoch, int) else seed + epoch).shuffle(shards)
    return shards


def split_shards(shards: Sequence[str], rank: int, world_size: int, worker: int = 0,
                 num_workers: int = 1) -> List[str]:
    """This rank's share, then this worker's share of it: disjoint, together all."""
    return list(shards)[rank::world_size][worker::num_workers]


def shuffle_buffer(samples: Iterable, size: int, rng) -> Iterator:
    """Yield ``samples`` through a buffer of ``size``: once full, each new sample
    replaces a random buffered one, which is yielded (WeSpeaker's shuffle);
    the rest come out shuffled at the end.  Memory is ``size`` samples."""
    pick = (lambda n: int(rng.integers(n))) if hasattr(rng, "integers") else rng.randrange
    buffer: List = []
    for sample in samples:
        buffer.append(sample)
        if len(buffer) >= size:
            index = pick(len(buffer))
            buffer[index], buffer[-1] = buffer[-1], buffer[index]
            yield buffer.pop()
    while buffer:
        index = pick(len(buffer))
        buffer[index], buffer[-1] = buffer[-1], buffer[index]
        yield buffer.pop()
