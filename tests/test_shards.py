"""Tar shards (pyutils.data.shards): WeSpeaker's layout, round trip, the
rank/worker split, the shuffle buffer and http streaming (flat memory: what
training streams, tests/test_training_shards.py)."""
import functools
import http.server
import os
import subprocess
import tarfile
import threading

import numpy as np
import pytest
import soundfile as sf

from pyutils.data.audio import read_wav_scp_entry
from pyutils.data.shards import (iterate_shard, random_chunk, read_shard_list, shard_order,
                                 shuffle_buffer, split_shards, write_shards)
from pyutils.training.shard_source import StreamSource
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


def test_a_data_dir_without_labels_is_packed_without_spk_members(tmp_path):
    utts = make_data(tmp_path / "data", 3, seconds=0.01)
    os.unlink(tmp_path / "data" / "utt2spk")                # wav.scp only: unlabelled audio
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "utt2spk").write_text("stale labels\n")
    paths = write_shards(str(tmp_path / "data"), str(tmp_path / "shards"), utts_per_shard=2)
    with tarfile.open(paths[0]) as tar:
        assert tar.getnames() == [f"{u}.{'flac' if i == 0 else 'wav'}"
                                  for i, u in enumerate(sorted(utts)[:2])]
    samples = [s for p in paths for s in iterate_shard(p)]
    assert [s["key"] for s in samples] == sorted(utts) and {s["spk"] for s in samples} == {None}
    assert sorted(os.listdir(tmp_path / "shards")) == sorted(
        [os.path.basename(p) for p in paths] + ["shard.list"])


def test_rank_then_worker_split_is_disjoint_and_complete(tmp_path):
    utts = make_data(tmp_path / "data", 24, seconds=0.01)
    paths = write_shards(str(tmp_path / "data"), str(tmp_path / "shards"), utts_per_shard=2)
    assert len(paths) == 12
    order = shard_order(paths, 1, 3)
    mine = {(rank, worker): split_shards(order, rank, 2, worker, 2)
            for rank in range(2) for worker in range(2)}
    assert all(len(shards) == 3 for shards in mine.values())
    assert sorted(s for shards in mine.values() for s in shards) == sorted(paths)
    keys = [s["key"] for shards in mine.values() for shard in shards
            for s in iterate_shard(shard, decode=False)]
    assert sorted(keys) == sorted(utts)                # disjoint, and together all
    # the shard order is a function of (seed, epoch)
    assert shard_order(paths, 1, 3) == order and sorted(shard_order(paths, 1, 4)) == paths
    assert shard_order(paths, 1, 4) != order and shard_order(paths, 2, 3) != order


def test_shuffle_buffer_mixes_and_is_reproducible(tmp_path):
    utts = make_data(tmp_path / "data", 30, seconds=0.01)
    paths = write_shards(str(tmp_path / "data"), str(tmp_path / "shards"), utts_per_shard=30,
                         shuffle=False)
    plain = [s["key"] for s in iterate_shard(paths[0], decode=False)]
    assert plain == sorted(utts)

    def shuffled(seed):
        return [s["key"] for s in shuffle_buffer(iterate_shard(paths[0], decode=False), 10,
                                                 np.random.default_rng(seed))]
    assert shuffled(0) == shuffled(0) and shuffled(0) != plain and sorted(shuffled(0)) == plain
    assert shuffled(1) != shuffled(0)


def test_random_chunks_and_repetition(tmp_path):
    make_data(tmp_path / "data", 3, seconds=0.05)
    paths = write_shards(str(tmp_path / "data"), str(tmp_path / "shards"))
    rng = np.random.default_rng(0)
    chunks = [random_chunk(s["samples"], 500, rng) for s in iterate_shard(paths[0])]
    assert [len(c) for c in chunks] == [500, 500, 500]
    whole = [s["samples"] for s in iterate_shard(paths[0])]
    assert all(any(np.array_equal(c, w[i:i + 500]) for i in range(len(w) - 499))
               for c, w in zip(chunks, whole))
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
        # what training reads: a StreamSource's units, each read as a stream
        source = StreamSource(read_shard_list(str(tmp_path / "urls.list")), "urls.list")
        samples = [source.decode(s) for unit in source.units for s in source.read(unit)]
        assert sorted(s["key"] for s in samples) == sorted(utts)
        assert all(len(s["samples"]) == 160 for s in samples)
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
