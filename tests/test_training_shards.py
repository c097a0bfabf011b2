"""Training from tar shards (data.format: shard, pyutils.training.shard_source):
the same features and speaker indices as the raw path, disjoint shards per rank and
worker, reproducible epochs, a tiny run whose loss falls, resume, and clear errors."""
import json
import os
import subprocess
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from pyutils.data.shards import write_shards
from pyutils.training.data import OnTheFlyFeatures, WaveformStore
from pyutils.training.shard_source import ChunkFrontend, ShardSource, step_lengths
from pyutils.training.trainer import train
from pyutils.utils.fileio import read_key_value, write_lines
from tests.conftest import ROOT

CONF = {k: os.path.join(ROOT, "conf", f) for k, f in
        (("mfcc", "mfcc.conf"), ("vad", "vad.conf"), ("cmvn", "cmvn.conf"))}


def speech_dir(d, num_spk=3, utts=4, seconds=2.0, seed=0):
    """Speaker s: tone bursts at its own pitch (+ noise), so MFCCs tell speakers apart."""
    rng = np.random.default_rng(seed)
    os.makedirs(d / "audio", exist_ok=True)
    wav, u2s = [], []
    for s in range(num_spk):
        for u in range(utts):
            utt, n = f"s{s}-u{u}", int(16000 * seconds)
            t = np.arange(n) + int(rng.integers(8000))
            speech = 6000 * np.sin(t * 0.04 * (s + 1)) * ((t // 4000) % 3 != 0)
            path = d / "audio" / f"{utt}.wav"
            sf.write(path, (speech + rng.normal(0, 30, n)).astype(np.int16), 16000)
            wav.append(f"{utt} {path}")
            u2s.append(f"{utt} s{s}")
    write_lines(str(d / "wav.scp"), sorted(wav))
    write_lines(str(d / "utt2spk"), sorted(u2s))
    return d


def level_dir(d, num_utts=8, spks=4, samples=4000):
    """Utterance i is the constant i + 1 (scaled): a chunk says which utterance it came from."""
    os.makedirs(d / "audio", exist_ok=True)
    wav, u2s = [], []
    for i in range(num_utts):
        utt = f"spk{i % spks}-u{i:03d}"
        path = d / "audio" / f"{utt}.wav"
        sf.write(path, np.full(samples, 100 * (i + 1), np.int16), 16000)
        wav.append(f"{utt} {path}")
        u2s.append(f"{utt} spk{i % spks}")
    write_lines(str(d / "wav.scp"), sorted(wav))
    write_lines(str(d / "utt2spk"), sorted(u2s))
    return d


MFCC = {"type": "mfcc", "conf": CONF["mfcc"], "on_the_fly": True}


def test_shard_features_equal_the_raw_on_the_fly_source(tmp_path):
    data = speech_dir(tmp_path / "data", num_spk=2, utts=2)
    write_shards(str(data), str(tmp_path / "shards"), utts_per_shard=3)
    raw = OnTheFlyFeatures(str(data), "mfcc", CONF["mfcc"], CONF["vad"], CONF["cmvn"],
                           CONF["mfcc"], speeds=(1.0, 0.9))
    frontend = ChunkFrontend(MFCC)
    for i, (u, k) in enumerate(raw.versions):
        utt = raw.utts[u]
        samples, rate = sf.read(str(tmp_path / "data" / "audio" / f"{utt}.wav"), dtype="int16")
        mine = frontend(utt, samples.astype(np.float32), rate, raw.speeds[k], None, None)
        expected = raw.features(i)           # dither 1.0: seeded by the utterance id in both
        assert mine.shape == expected.shape and mine.shape[0] > 100
        if raw.speeds[k] == 1.0:
            np.testing.assert_array_equal(mine, expected)
        else:   # the resampler's float32/float64 rounding differs between versions
            np.testing.assert_allclose(mine, expected, atol=2e-3)


def batches_of(source, epoch=1, steps=4, batch=2, chunk=(1000, 1000), rank=0, world=1, seed=5):
    loader = source.epoch_loader(seed, epoch, steps, batch, chunk, rank, world)
    return [(x.clone(), y.clone()) for x, y in loader]


def test_speaker_indices_equal_the_raw_paths(tmp_path):
    data = level_dir(tmp_path / "data", num_utts=8, spks=4)
    write_shards(str(data), str(tmp_path / "shards"), utts_per_shard=3)
    utt2spk = read_key_value(str(data / "utt2spk"))
    raw = WaveformStore(str(data))
    source = ShardSource(str(tmp_path / "shards" / "shard.list"), utt2spk, sorted(utt2spk),
                         {"type": "waveform"}, shuffle_buffer_size=4)
    assert source.speakers == raw.speakers == ["spk0", "spk1", "spk2", "spk3"]
    assert source.num_classes == raw.num_classes == 4 and len(source) == 8
    raw_label = {int(raw.audio[i][0]): int(raw.labels[i]) for i in range(len(raw))}
    seen = set()
    for x, y in batches_of(source, steps=8, batch=2):
        assert x.shape == (2, 1000)
        for chunk, label in zip(x, y):
            level = int(chunk[0])
            assert torch.all(chunk == level) and raw_label[level] == int(label)
            seen.add(level)
    assert seen == set(raw_label)          # 16 chunks from 8 utterances: every one was read


def test_ranks_and_workers_read_disjoint_shards(tmp_path):
    data = level_dir(tmp_path / "data", num_utts=8, spks=2)
    write_shards(str(data), str(tmp_path / "shards"), utts_per_shard=1)   # 8 shards
    utt2spk = read_key_value(str(data / "utt2spk"))
    shard_of_level = {100 * (i + 1): i for i in range(8)}   # utt i -> its shard, in sorted order
    by_worker = {}
    for rank in range(2):
        source = ShardSource(str(tmp_path / "shards" / "shard.list"), utt2spk, sorted(utt2spk),
                             {"type": "waveform"}, shuffle_buffer_size=1, num_workers=2)
        # 2 ranks x 2 workers: 2 shards each per pass; each worker makes 2 steps of 1 chunk,
        # steps alternate between the workers (step i from worker i % 2)
        steps = batches_of(source, steps=4, batch=2, chunk=(500, 500), rank=rank, world=2)
        for i, (x, _) in enumerate(steps):
            by_worker.setdefault((rank, i % 2), set()).add(shard_of_level[int(x[0, 0])])
    assert all(len(s) == 2 for s in by_worker.values()), by_worker
    shards = [s for ws in by_worker.values() for s in ws]
    assert sorted(shards) == list(range(8))               # disjoint, and together all
    # too many readers for the shards: a clear error
    source = ShardSource(str(tmp_path / "shards" / "shard.list"), utt2spk, sorted(utt2spk),
                         {"type": "waveform"}, num_workers=0)
    with pytest.raises(ValueError, match="8 shards for 9 process"):
        batches_of(source, steps=1, batch=9, rank=8, world=9)


def test_an_epoch_is_a_function_of_seed_epoch_rank_and_workers(tmp_path):
    data = level_dir(tmp_path / "data", num_utts=12, spks=3)
    write_shards(str(data), str(tmp_path / "shards"), utts_per_shard=2)
    utt2spk = read_key_value(str(data / "utt2spk"))

    def run(epoch, workers):
        source = ShardSource(str(tmp_path / "shards" / "shard.list"), utt2spk, sorted(utt2spk),
                             {"type": "waveform"}, shuffle_buffer_size=3, num_workers=workers)
        return [(x[:, 0].tolist(), y.tolist()) for x, y in
                batches_of(source, epoch, steps=6, batch=3, chunk=(100, 300))]
    first = run(1, 2)
    assert first == run(1, 2)                       # reproducible with worker processes
    assert run(1, 0) == run(1, 0) and run(2, 2) != first
    lengths = step_lengths(5, 1, 6, (100, 300))
    assert len(set(lengths)) > 1 and all(100 <= n <= 300 for n in lengths)
    source = ShardSource(str(tmp_path / "shards" / "shard.list"), utt2spk, sorted(utt2spk),
                         {"type": "waveform"})
    assert [x.shape[1] for x, _ in batches_of(source, 1, 6, 3, (100, 300))] == lengths


def traced_peak_mb(make_loader) -> float:
    """Peak traced memory (MB; numpy arrays and bytes included) while building a
    loader and reading every batch of it in this process (``num_workers: 0``)."""
    tracemalloc.start()
    try:
        for _ in make_loader():
            pass
        return tracemalloc.get_traced_memory()[1] / 2 ** 20
    finally:
        tracemalloc.stop()


@pytest.mark.slow     # ~6 s of CPU: 2,100 tiny wav files written and packed
def test_shard_source_memory_stays_flat_in_the_corpus_size(tmp_path):
    """What training uses (ShardSource and its DataLoader), over the same 4 batches,
    from 100 vs 2,000 one-second utterances (64 MB as int16 at 2,000).  A shuffle
    buffer as large as the corpus holds all of it: that the same measurement sees
    it grow shows the test can fail."""
    from tests.test_shards import make_data
    peaks = {}
    for n in (100, 2000):
        make_data(tmp_path / f"d{n}", n, seconds=1.0, spks=20)
        write_shards(str(tmp_path / f"d{n}"), str(tmp_path / f"s{n}"), utts_per_shard=100)
        utt2spk = read_key_value(str(tmp_path / f"d{n}" / "utt2spk"))

        def loader(buffer):
            source = ShardSource(str(tmp_path / f"s{n}" / "shard.list"), utt2spk, sorted(utt2spk),
                                 MFCC, shuffle_buffer_size=buffer)
            return source.epoch_loader(1, 1, 4, 8, (50, 80))
        peaks[n] = traced_peak_mb(lambda: loader(20))
        if n == 2000:
            peaks["whole corpus buffered"] = traced_peak_mb(lambda: loader(n))
    print({k: round(v, 1) for k, v in peaks.items()})
    assert peaks[2000] - peaks[100] < 8, peaks
    assert peaks["whole corpus buffered"] - peaks[100] > 50, peaks


def write_config(path, epochs=3, **data):
    config = {
        "features": dict(MFCC),
        "model": {"name": "xvector", "embed_dim": 32, "frame_dims": [32, 32, 32, 32, 64]},
        "loss": {"name": "softmax"},
        "data": {"format": "shard", "min_chunk_frames": 60, "max_chunk_frames": 80,
                 "batch_size": 8, "chunks_per_epoch": 48, "shuffle_buffer": 6, **data},
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        "scheduler": {"name": "exponential", "warmup_steps": 2, "final_lr_ratio": 0.2},
        "training": {"epochs": epochs, "seed": 3, "num_threads": 1},
    }
    path.write_text(yaml.safe_dump(config))
    return str(path)


@pytest.mark.slow
def test_tiny_training_from_shards_learns_and_resumes(tmp_path):
    data = speech_dir(tmp_path / "data")
    shards = tmp_path / "shards"
    write_shards(str(data), str(shards), utts_per_shard=4)
    config = write_config(tmp_path / "c.yaml")
    train(config, str(shards), str(tmp_path / "straight"))
    stats = [torch.load(tmp_path / "straight" / "models" / f"epoch_{e}.pt",
                        weights_only=False)["stats"] for e in (1, 2, 3)]
    assert stats[2]["loss"] < 0.7 * stats[0]["step_losses"][0], [s["loss"] for s in stats]
    assert stats[2]["accuracy"] > 0.6
    summary = json.loads((tmp_path / "straight" / "train_summary.json").read_text())
    assert summary["chunks"] == 3 * 48
    final = torch.load(tmp_path / "straight" / "final.pt", weights_only=False)
    assert final["speakers"] == ["s0", "s1", "s2"]
    # resumed after epoch 1: the same weights as the uninterrupted run
    train(config, str(shards), str(tmp_path / "resumed"), max_epochs=1)
    train(config, str(shards), str(tmp_path / "resumed"))
    a = final["model"]
    b = torch.load(tmp_path / "resumed" / "final.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_steps_train_sh_trains_on_a_shard_dir_and_reruns_after_repacking(tmp_path):
    data = speech_dir(tmp_path / "data", num_spk=2, utts=3, seconds=1.5)
    config = write_config(tmp_path / "c.yaml", epochs=1, chunks_per_epoch=16,
                          num_workers=1)
    shards = tmp_path / "shards"
    run = lambda *cmd: subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)  # noqa: E731
    made = run("steps/make_shards.sh", "--utts-per-shard", "2", str(data), str(shards))
    assert made.returncode == 0, made.stderr
    assert sorted(os.listdir(shards)) == [".done", "log", "shard.list", "shards_000000000.tar",
                                          "shards_000000001.tar", "shards_000000002.tar",
                                          "spk2utt", "utt2spk"]
    first = run("steps/train.sh", config, str(shards), str(tmp_path / "exp"))
    assert first.returncode == 0, first.stderr + first.stdout
    assert "epoch 1/1" in (tmp_path / "exp" / "log" / "train.log").read_text()
    again = run("steps/train.sh", config, str(shards), str(tmp_path / "exp"))
    assert again.returncode == 0 and "is trained with this config and data" in again.stdout
    # repacked shards (a new .done marker in the shard dir): the model is trained again
    run("steps/make_shards.sh", "--utts-per-shard", "3", str(data), str(shards))
    third = run("steps/train.sh", config, str(shards), str(tmp_path / "exp"))
    assert third.returncode == 0 and "is trained with" not in third.stdout


def test_shard_format_errors_name_what_to_change(tmp_path):
    data = speech_dir(tmp_path / "data", num_spk=2, utts=1, seconds=1.0)
    config = yaml.safe_load(open(write_config(tmp_path / "c.yaml")))
    with pytest.raises(ValueError, match="shard list, and .*shard.list does not exist"):
        train(write_yaml(tmp_path / "a.yaml", config), str(data), str(tmp_path / "e1"))
    write_shards(str(data), str(tmp_path / "shards"))
    config["features"] = {"type": "mfcc"}
    with pytest.raises(ValueError, match="set features.on_the_fly: true"):
        train(write_yaml(tmp_path / "b.yaml", config), str(tmp_path / "shards"),
              str(tmp_path / "e2"))
    config["data"]["format"] = "lmdb"
    with pytest.raises(ValueError, match="data.format must be raw or shard, got 'lmdb'"):
        train(write_yaml(tmp_path / "c2.yaml", config), str(tmp_path / "shards"),
              str(tmp_path / "e3"))
    config["data"].update(format="shard", sampling="length")
    with pytest.raises(ValueError, match="data.sampling must be utterance"):
        train(write_yaml(tmp_path / "d.yaml", config), str(tmp_path / "shards"),
              str(tmp_path / "e4"))


def write_yaml(path, config):
    path.write_text(yaml.safe_dump(config))
    return str(path)


@pytest.mark.slow
def test_two_processes_train_from_shards_under_torchrun(tmp_path):
    """DDP (gloo, 2 CPU processes): each rank streams its own shards, both make the
    same number of steps (no hang), the global batch is split between them."""
    data = speech_dir(tmp_path / "data", num_spk=2, utts=4, seconds=1.5)
    write_shards(str(data), str(tmp_path / "shards"), utts_per_shard=2)     # 4 shards
    config = write_config(tmp_path / "c.yaml", epochs=1, chunks_per_epoch=32)
    env = {k: v for k, v in os.environ.items() if k != "SV_ROOT"}
    proc = subprocess.run(["steps/train.sh", "--nproc-per-node", "2", config,
                           str(tmp_path / "shards"), str(tmp_path / "exp")],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    log = (tmp_path / "exp" / "log" / "train.log")
    assert proc.returncode == 0, proc.stderr + (log.read_text() if log.exists() else "")
    summary = json.loads((tmp_path / "exp" / "train_summary.json").read_text())
    assert summary["processes"] == 2 and summary["chunks"] == 32
    stats = torch.load(tmp_path / "exp" / "models" / "epoch_1.pt", weights_only=False)["stats"]
    assert len(stats["step_losses"]) == 4
