"""Tar shards (pyutils.data.shards): WeSpeaker's layout, round trip, the
rank/worker split, the shuffle buffer, http streaming and flat memory."""
import functools
import http.server
import os
import random
import subprocess
import sys
import tarfile
import threading

import numpy as np
import pytest
import soundfile as sf
import torch

from pyutils.data.audio import read_wav_scp_entry
from pyutils.data.shards import (ShardDataset, iterate_shard, random_chunk, read_shard_list,
                                 write_shards)
from tests.conftest import ROOT


def make_data(d, n_utts, seconds=0.05, spks=4):
    """A data dir of n_utts wav files (and the first one as flac), distinct content."""
    audio = os.path.join(d, "audio")
    os.makedirs(audio, exist_ok=True)
    rows = []
    for i in range(n_utts):
        spk = f"spk{i % spks}"
        utt = f"{spk}-utt{i:05d}"
        ext = "flac" if i == 0 else "wav"
        path = os.path.join(audio, f"{utt}.{ext}")
        samples = ((np.arange(int(16000 * seconds)) * (i + 1)) % 2000 - 1000).astype(np.int16)
        sf.write(path, samples, 16000, subtype="PCM_16")
        rows.append((utt, spk, path))
    rows.sort()
    with open(os.path.join(d, "utt2spk"), "w") as u2s, open(os.path.join(d, "wav.scp"), "w") as wav:
        for utt, spk, path in rows:
            u2s.write(f"{utt} {spk}\n")
            wav.write(f"{utt} {path}\n")
    return {utt: (spk, path) for utt, spk, path in rows}


def test_round_trip_in_wespeaker_layout(tmp_path):
    utts = make_data(tmp_path / "data", 5)
    # one entry as a pipe: decoded and stored as wav
    pipe_utt = sorted(utts)[1]
    wav_scp = (tmp_path / "data" / "wav.scp").read_text().replace(
        f"{pipe_utt} {utts[pipe_utt][1]}", f"{pipe_utt} cat {utts[pipe_utt][1]} |")
    (tmp_path / "data" / "wav.scp").write_text(wav_scp)
    paths = write_shards(str(tmp_path / "data"), str(tmp_path / "shards"), utts_per_shard=2)
    assert [os.path.basename(p) for p in paths] == [
        "shards_000000000.tar", "shards_000000001.tar", "shards_000000002.tar"]
    assert read_shard_list(str(tmp_path / "shards" / "shard.list")) == paths
    with tarfile.open(paths[0]) as tar:
        first = sorted(utts)[0]
        assert tar.getnames() == [f"{first}.spk", f"{first}.flac",
                                  f"{pipe_utt}.spk", f"{pipe_utt}.wav"]
        assert tar.extractfile(f"{first}.spk").read() == utts[first][0].encode()
        # a plain file is stored byte for byte
        assert tar.extractfile(f"{first}.flac").read() == open(utts[first][1], "rb").read()
    seen = {}
    for path in paths:
        for sample in iterate_shard(path):
            seen[sample["key"]] = sample
    assert sorted(seen) == sorted(utts)
    for utt, (spk, path) in utts.items():
        expected, rate = read_wav_scp_entry(path)
        assert seen[utt]["spk"] == spk and seen[utt]["rate"] == rate == 16000
        np.testing.assert_array_equal(seen[utt]["samples"], expected)


def test_a_missing_member_names_the_shard(tmp_path):
    path = tmp_path / "shards_000000000.tar"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("a-1.spk")
        info.size = 1
        import io
        tar.addfile(info, io.BytesIO(b"a"))
    with pytest.raises(ValueError, match=r"shards_000000000.tar: utterance 'a-1' lacks its audio"):
        list(iterate_shard(str(path)))


def keys_of(dataset, workers):
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=workers,
                                         collate_fn=lambda s: s["key"])
    return list(loader)


def test_rank_then_worker_split_is_disjoint_and_complete(tmp_path):
    utts = make_data(tmp_path / "data", 24, seconds=0.01)
    paths = write_shards(str(tmp_path / "data"), str(tmp_path / "shards"), utts_per_shard=2)
    assert len(paths) == 12
    per_rank, shards_per_rank = [], []
    for rank in range(2):
        ds = ShardDataset(paths, shuffle_buffer=5, seed=1, rank=rank, world_size=2)
        ds.set_epoch(3)
        shards_per_rank.append(ds.my_shards())
        per_rank.append(keys_of(ds, workers=2))
    assert not set(shards_per_rank[0]) & set(shards_per_rank[1])
    assert not set(per_rank[0]) & set(per_rank[1])
    assert sorted(per_rank[0] + per_rank[1]) == sorted(utts)
    assert len(per_rank[0]) == len(per_rank[1]) == 12
    # the shard order is a function of (seed, epoch)
    ds = ShardDataset(paths, seed=1, rank=0, world_size=1)
    ds.set_epoch(3)
    order3 = ds.my_shards()
    ds.set_epoch(4)
    assert ds.my_shards() != order3 and sorted(ds.my_shards()) == sorted(paths)
    ds.set_epoch(3)
    assert ds.my_shards() == order3


def test_shuffle_buffer_mixes_and_is_reproducible(tmp_path):
    utts = make_data(tmp_path / "data", 30, seconds=0.01)
    paths = write_shards(str(tmp_path / "data"), str(tmp_path / "shards"), utts_per_shard=30,
                         shuffle=False)
    plain = [s["key"] for s in ShardDataset(paths, shuffle=False, rank=0, world_size=1)]
    assert plain == sorted(utts)
    shuffled = [s["key"] for s in ShardDataset(paths, shuffle_buffer=10, rank=0, world_size=1)]
    again = [s["key"] for s in ShardDataset(paths, shuffle_buffer=10, rank=0, world_size=1)]
    assert shuffled == again and shuffled != plain and sorted(shuffled) == plain


def test_transform_cuts_random_chunks(tmp_path):
    make_data(tmp_path / "data", 3, seconds=0.05)
    paths = write_shards(str(tmp_path / "data"), str(tmp_path / "shards"))
    rng = random.Random(0)
    cut = lambda s: {**s, "samples": random_chunk(s["samples"], 2000, rng)}  # noqa: E731
    lengths = [len(s["samples"]) for s in ShardDataset(paths, transform=cut, rank=0, world_size=1)]
    assert lengths == [2000, 2000, 2000]
    short = np.arange(3.0)
    np.testing.assert_array_equal(random_chunk(short, 7, rng), [0, 1, 2, 0, 1, 2, 0])


def test_streams_shards_over_http(tmp_path):
    utts = make_data(tmp_path / "data", 6, seconds=0.01)
    write_shards(str(tmp_path / "data"), str(tmp_path / "shards"), utts_per_shard=4)
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass
    handler = functools.partial(Quiet, directory=str(tmp_path / "shards"))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        (tmp_path / "urls.list").write_text(f"{url}/shards_000000000.tar\n"
                                            f"{url}/shards_000000001.tar\n")
        ds = ShardDataset.from_list(str(tmp_path / "urls.list"), rank=0, world_size=1)
        assert sorted(s["key"] for s in ds) == sorted(utts)
    finally:
        httpd.shutdown()


def test_make_shards_step_is_skipped_when_complete(tmp_path):
    make_data(tmp_path / "data", 5, seconds=0.01)
    run = lambda: subprocess.run(  # noqa: E731
        [os.path.join(ROOT, "steps", "make_shards.sh"), "--utts-per-shard", "2",
         str(tmp_path / "data"), str(tmp_path / "shards")],
        cwd=ROOT, capture_output=True, text=True)
    first = run()
    assert first.returncode == 0, first.stderr
    assert "3 shards" in first.stdout
    second = run()
    assert second.returncode == 0 and "is complete" in second.stdout
    # a changed data dir repacks: one utterance fewer
    for name in ("utt2spk", "wav.scp"):
        table = (tmp_path / "data" / name).read_text().splitlines()
        (tmp_path / "data" / name).write_text("\n".join(table[:-1]) + "\n")
    third = run()
    assert third.returncode == 0 and "is complete" not in third.stdout
    assert "2 shards" in third.stdout
    assert sorted(os.listdir(tmp_path / "shards"))[:2] == [".done", "log"]
    assert len([f for f in os.listdir(tmp_path / "shards") if f.endswith(".tar")]) == 2
