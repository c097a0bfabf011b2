"""Raw vs shard loading throughput: one Markdown table on this CPU.

Reads N synthetic 3 s utterances (16 kHz, 16-bit wav, written once to a temp
dir) two ways, decoding every sample, 1 process:

* ``raw``    one file per utterance through pyutils.data.audio.AudioReader
             (the training loader's path for audio: wav.scp, random access);
* ``shard``  the same utterances packed by pyutils.data.shards.write_shards
             (1,000 per tar) and streamed as training streams them
             (pyutils.training.shard_source.StreamSource: each shard read as a
             tar stream, the encoded samples through a shuffle buffer of 1,000,
             then decoded).

A second table is what training sees: batches of 64 random 2-4 s chunks of
30-dim MFCC + sliding CMN + voiced frames computed in the loader, from the raw
source (``OnTheFlyFeatures``: all audio decoded into RAM first, then chunks by
index) and from the shard source (``ShardSource``: streamed, decoded and
featurised per utterance), with 0 and 1 loader worker processes.

Run: ``.venv/bin/python bench/bench_shards.py [--utts 2000] [--train-utts 300]``.
The page cache is warm for both (the files were just written), so this
compares the per-file overhead, not disk or network seeks, where shards gain
most.
"""
import argparse
import os
import resource
import sys
import tempfile
import time

import numpy as np
import soundfile as sf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pyutils.data.audio import AudioReader  # noqa: E402
from pyutils.data.shards import read_shard_list, shuffle_buffer, write_shards  # noqa: E402
from pyutils.training.chunk_sampling import epoch_batches  # noqa: E402
from pyutils.training.data import OnTheFlyFeatures  # noqa: E402
from pyutils.training.shard_source import ShardSource, StreamSource  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONF = {k: os.path.join(ROOT, "conf", f"{k}.conf") for k in ("mfcc", "vad", "cmvn")}
BATCH, STEPS, CHUNKS = 64, 8, (200, 400)


def make_data(root, n):
    rng = np.random.default_rng(0)
    audio = os.path.join(root, "audio")
    os.makedirs(audio)
    with open(os.path.join(root, "utt2spk"), "w") as u2s, open(os.path.join(root, "wav.scp"), "w") as wav:
        for i in range(n):
            utt = f"spk{i % 50:03d}-{i:06d}"
            path = os.path.join(audio, f"{utt}.wav")
            sf.write(path, (rng.standard_normal(48000) * 1000).astype(np.int16), 16000)
            u2s.write(f"{utt} {utt[:6]}\n")
            wav.write(f"{utt} {path}\n")
    # utt2spk must be sorted
    for name in ("utt2spk", "wav.scp"):
        lines = sorted(open(os.path.join(root, name)))
        open(os.path.join(root, name), "w").writelines(lines)


def timed(label, iterator, n_utts):
    start = time.perf_counter()
    samples = sum(len(x) for x in iterator)
    seconds = time.perf_counter() - start
    return f"| {label} | {n_utts} | {n_utts / seconds:,.0f} | {samples / 16000 / seconds:,.0f} |"


def speech_data(root, n, seconds=6.0):
    """n utterances of 20 speakers: tone bursts (voiced) in noise, so the VAD keeps frames."""
    rng = np.random.default_rng(1)
    audio = os.path.join(root, "audio")
    os.makedirs(audio)
    rows = []
    for i in range(n):
        utt, samples = f"spk{i % 20:03d}-{i:06d}", int(16000 * seconds)
        t = np.arange(samples)
        tone = 6000 * np.sin(t * 0.01 * (1 + i % 20)) * ((t // 4000) % 3 != 0)
        path = os.path.join(audio, f"{utt}.wav")
        sf.write(path, (tone + rng.normal(0, 30, samples)).astype(np.int16), 16000)
        rows.append((utt, path))
    rows.sort()
    with open(os.path.join(root, "utt2spk"), "w") as u2s, open(os.path.join(root, "wav.scp"), "w") as wav:
        for utt, path in rows:
            u2s.write(f"{utt} {utt[:6]}\n")
            wav.write(f"{utt} {path}\n")


def chunk_rows(tmp, n_utts):
    """chunks/s of training batches (MFCC in the loader): raw source vs shard source."""
    data = os.path.join(tmp, "train")
    os.makedirs(data)
    speech_data(data, n_utts)
    rows = []
    start = time.perf_counter()
    raw = OnTheFlyFeatures(data, "mfcc", CONF["mfcc"], CONF["vad"], CONF["cmvn"], CONF["mfcc"])
    loaded = time.perf_counter() - start
    batches = epoch_batches(raw.lengths, *CHUNKS, BATCH, BATCH * STEPS, 1, 1)
    start = time.perf_counter()
    for batch in batches:
        np.stack([raw.chunk(u, o, f) for u, o, f in batch])
    seconds = time.perf_counter() - start
    rows.append(f"| raw (OnTheFlyFeatures, audio in RAM) | 0 | {BATCH * STEPS / seconds:,.1f} "
                f"| {loaded:.1f} s to load {n_utts} utterances |")
    write_shards(data, os.path.join(tmp, "train_shards"), 50, shuffle=True)
    utt2spk = dict(line.split() for line in open(os.path.join(data, "utt2spk")))
    feats = {"type": "mfcc", "conf": CONF["mfcc"], "on_the_fly": True}
    for workers in (0, 1):
        source = ShardSource(os.path.join(tmp, "train_shards", "shard.list"), utt2spk,
                             sorted(utt2spk), feats, shuffle_buffer_size=200, num_workers=workers)
        start = time.perf_counter()
        for _ in source.epoch_loader(1, 1, STEPS, BATCH, CHUNKS):
            pass
        seconds = time.perf_counter() - start
        rows.append(f"| shard (ShardSource, streamed) | {workers} | {BATCH * STEPS / seconds:,.1f} "
                    f"| no load step |")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--utts", type=int, default=2000)
    parser.add_argument("--train-utts", type=int, default=300,
                        help="utterances of 6 s for the training-batch table (0: skip it)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        os.makedirs(data)
        make_data(data, args.utts)
        reader = AudioReader(data)
        rows = [timed("raw (AudioReader, file per utterance)",
                      (reader.read(u)[0] for u in reader.data.utts), args.utts)]
        write_shards(data, os.path.join(tmp, "shards"), 1000, shuffle=True)
        source = StreamSource(read_shard_list(os.path.join(tmp, "shards", "shard.list")), "shards")
        encoded = (s for unit in source.units for s in source.read(unit))
        stream = shuffle_buffer(encoded, 1000, np.random.default_rng(0))
        rows.append(timed("shard (StreamSource, streamed tar)",
                          (source.decode(s)["samples"] for s in stream), args.utts))
    print("| loader | utterances | utterances/s | x real time |\n|---|---|---|---|")
    print("\n".join(rows))
    if args.train_utts > 0:
        with tempfile.TemporaryDirectory() as tmp:
            rows = chunk_rows(tmp, args.train_utts)
        print(f"\nTraining batches ({BATCH} chunks of {CHUNKS[0]}-{CHUNKS[1]} frames, 30-dim MFCC "
              f"+ CMN + VAD in the loader, {STEPS} batches)\n")
        print("| source | loader workers | chunks/s | set-up |\n|---|---|---|---|")
        print("\n".join(rows))
    print(f"\npeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
