"""Raw vs shard loading throughput: one Markdown table on this CPU.

Reads N synthetic 3 s utterances (16 kHz, 16-bit wav, written once to a temp
dir) two ways, decoding every sample, 1 process:

* ``raw``    one file per utterance through pyutils.data.audio.AudioReader
             (the training loader's path for audio: wav.scp, random access);
* ``shard``  the same utterances packed by pyutils.data.shards.write_shards
             (1,000 per tar) and streamed by ShardDataset (shuffle buffer 1,000).

Run: ``.venv/bin/python bench/bench_shards.py [--utts 2000]``.  The page cache
is warm for both (the files were just written), so this compares the
per-file overhead, not disk or network seeks, where shards gain most.
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
from pyutils.data.shards import ShardDataset, write_shards  # noqa: E402


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--utts", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        os.makedirs(data)
        make_data(data, args.utts)
        reader = AudioReader(data)
        rows = [timed("raw (AudioReader, file per utterance)",
                      (reader.read(u)[0] for u in reader.data.utts), args.utts)]
        write_shards(data, os.path.join(tmp, "shards"), 1000, shuffle=True)
        ds = ShardDataset.from_list(os.path.join(tmp, "shards", "shard.list"), rank=0, world_size=1)
        rows.append(timed("shard (ShardDataset, streamed tar)", (s["samples"] for s in ds),
                          args.utts))
    print("| loader | utterances | utterances/s | x real time |\n|---|---|---|---|")
    print("\n".join(rows))
    print(f"\npeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
