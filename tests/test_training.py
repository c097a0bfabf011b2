"""Chunk sampling, training, resumption (also after SIGKILL) and extraction."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml

from pyutils.extraction.chunked_embedding import pad_chunk
from pyutils.extraction.extract import embed, load_embedding_model
from pyutils.training.chunk_sampling import epoch_batches
from pyutils.training.trainer import train
from pyutils.utils.arkio import write_scp_dict
from pyutils.utils.fileio import write_lines
from tests.conftest import ROOT


def test_epoch_batches_are_reproducible_and_valid():
    lengths = [300, 450, 500, 1000]
    a = epoch_batches(lengths, 200, 400, 8, 64, seed=1, epoch=3)
    assert a == epoch_batches(lengths, 200, 400, 8, 64, seed=1, epoch=3)
    assert a != epoch_batches(lengths, 200, 400, 8, 64, seed=1, epoch=4)
    assert len(a) == 8
    for batch in a:
        assert len({n for _, _, n in batch}) == 1          # one length per batch
        for utt, offset, frames in batch:
            assert 200 <= frames <= 400 and 0 <= offset <= lengths[utt] - frames


def test_utterance_sampling_gives_every_utterance_one_chunk_per_pass():
    """data.sampling: utterance (WeSpeaker, tar shards): passes over the utterances in a
    new order each; short ones are given whole (offset 0) for the loader to repeat."""
    lengths = [300, 450, 500, 1000, 150]
    batches = epoch_batches(lengths, 200, 400, 5, 20, seed=1, epoch=3, sampling="utterance")
    assert batches == epoch_batches(lengths, 200, 400, 5, 20, 1, 3, sampling="utterance")
    picks = [u for batch in batches for u, _, _ in batch]
    passes = [picks[i:i + 5] for i in range(0, 20, 5)]
    assert all(sorted(p) == [0, 1, 2, 3, 4] for p in passes)      # each utterance once a pass
    assert len({tuple(p) for p in passes}) > 1                     # in a new order
    for batch in batches:
        assert len({n for _, _, n in batch}) == 1
        for u, offset, frames in batch:
            assert (0 <= offset <= lengths[u] - frames) if lengths[u] >= frames else offset == 0
    # speed copies (items 5-9 at speed 1, 10-14 at speed 2, shares 0.5/0.25/0.25): each
    # original once a pass, as one of its versions, about half of them perturbed
    groups = [0] * 5 + [1] * 5 + [2] * 5
    many = epoch_batches(lengths * 3, 100, 100, 5, 4000, 2, 1, prior=(groups, [0.5, 0.25, 0.25]),
                         sampling="utterance")
    items = [u for batch in many for u, _, _ in batch]
    assert all(sorted(i % 5 for i in items[k:k + 5]) == [0, 1, 2, 3, 4] for k in range(0, 4000, 5))
    assert abs(np.mean([i >= 5 for i in items]) - 0.5) < 0.03
    with pytest.raises(ValueError, match="data.sampling must be one of length, utterance"):
        epoch_batches(lengths, 200, 400, 5, 20, 1, 3, sampling="random")


def test_loader_repeats_an_utterance_shorter_than_its_chunk(tmp_path):
    from pyutils.training.data import PrecomputedFeatures, read_utt2spk
    from pyutils.training.loader import ChunkDataset, ChunkSpec
    feats = make_training_data(tmp_path, num_spk=1, utts=1, frames=30)
    source = PrecomputedFeatures(str(tmp_path / "feats.scp"), read_utt2spk(str(tmp_path)))
    chunk, _ = ChunkDataset(source)[ChunkSpec(0, 0, 70, 1, 1, 0, 0)]
    whole = feats["spk0-u0"]
    np.testing.assert_array_equal(chunk, np.concatenate([whole, whole, whole[:10]]))


def make_training_data(directory, num_spk=3, utts=4, frames=260, dim=10):
    rng = np.random.default_rng(0)
    feats, utt2spk = {}, {}
    for s in range(num_spk):
        centre = rng.normal(size=dim) * 2
        for u in range(utts):
            utt = f"spk{s}-u{u}"
            feats[utt] = (centre + rng.normal(size=(frames, dim))).astype(np.float32)
            utt2spk[utt] = f"spk{s}"
    write_scp_dict(str(directory / "feats.ark"), str(directory / "feats.scp"), feats)
    write_lines(str(directory / "utt2spk"), (f"{u} {utt2spk[u]}" for u in sorted(utt2spk)))
    return feats


def write_config(path, epochs=3):
    config = {
        "model": {"name": "xvector", "embed_dim": 32, "frame_dims": [32, 32, 32, 32, 64]},
        "loss": {"name": "softmax"},
        "data": {"min_chunk_frames": 50, "max_chunk_frames": 80, "batch_size": 8,
                 "chunks_per_epoch": 32},
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        "scheduler": {"name": "exponential", "warmup_steps": 2, "final_lr_ratio": 0.1},
        "training": {"epochs": epochs, "seed": 3, "num_threads": 1},
    }
    path.write_text(yaml.safe_dump(config))
    return str(path)


def final_weights(exp_dir):
    return torch.load(os.path.join(exp_dir, "final.pt"), weights_only=False)["model"]


def test_resume_gives_the_same_model_as_an_uninterrupted_run(tmp_path):
    make_training_data(tmp_path)
    config = write_config(tmp_path / "c.yaml")
    args = (config, str(tmp_path))
    train(*args, str(tmp_path / "straight"))
    train(*args, str(tmp_path / "resumed"), max_epochs=1)
    assert not os.path.exists(tmp_path / "resumed" / ".done")
    train(*args, str(tmp_path / "resumed"))
    a, b = final_weights(tmp_path / "straight"), final_weights(tmp_path / "resumed")
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the summary counts each epoch once, resumed or not: 3 epochs x 4 batches x 8 chunks
    for run in ("straight", "resumed"):
        summary = json.loads((tmp_path / run / "train_summary.json").read_text())
        assert summary["chunks"] == 96 and summary["epochs"] == 3
        assert summary["parameters"] == sum(v.numel() for k, v in a.items()
                                            if "running" not in k and "num_batches" not in k)
        assert summary["train_seconds"] > 0
        # train_seconds is rounded to 1 ms, chunks_per_s to 0.01
        assert abs(96 / summary["chunks_per_s"] - summary["train_seconds"]) <= 0.0006
    # a finished run is skipped: final.pt is not rewritten
    mtime = os.path.getmtime(tmp_path / "straight" / "final.pt")
    train(*args, str(tmp_path / "straight"))
    assert os.path.getmtime(tmp_path / "straight" / "final.pt") == mtime


def test_training_killed_mid_run_resumes_from_its_last_checkpoint(tmp_path):
    make_training_data(tmp_path, frames=400)
    config = write_config(tmp_path / "c.yaml", epochs=6)
    cmd = [sys.executable, "-m", "pyutils.cli.train", "--config", config, "--data", str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": ROOT}
    killed = tmp_path / "killed"
    proc = subprocess.Popen(cmd + ["--exp-dir", str(killed)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (killed / "models" / "epoch_2.pt").exists():
        assert time.time() < deadline and proc.poll() is None, "training ended too early"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / ".done").exists()
    rerun = subprocess.run(cmd + ["--exp-dir", str(killed)], env=env, capture_output=True,
                           text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming from" in rerun.stderr and "epoch 1/6" not in rerun.stderr
    straight = tmp_path / "straight"
    subprocess.run(cmd + ["--exp-dir", str(straight)], env=env, check=True, capture_output=True)
    a, b = final_weights(killed), final_weights(straight)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_chunked_embedding_is_the_frame_weighted_mean(tmp_path):
    make_training_data(tmp_path)
    train(write_config(tmp_path / "c.yaml", epochs=1), str(tmp_path), str(tmp_path / "exp"))
    model = load_embedding_model(str(tmp_path / "exp" / "final.pt"))
    feats = np.random.default_rng(1).normal(size=(250, 10)).astype(np.float32)
    whole = embed(model, feats, chunk_size=10000)
    with torch.no_grad():
        direct = model(torch.from_numpy(feats)[None])[0].numpy()
        parts = [model(torch.from_numpy(pad_chunk(feats[s:s + 100], 25))[None])[0].numpy()
                 for s in (0, 100, 200)]
    np.testing.assert_allclose(whole, direct, rtol=1e-5, atol=1e-5)
    expected = (parts[0] * 100 + parts[1] * 100 + parts[2] * 50) / 250
    np.testing.assert_allclose(embed(model, feats, chunk_size=100), expected, rtol=1e-5, atol=1e-5)


def test_pad_chunk_repeats_edge_frames_like_kaldi():
    chunk = np.arange(6, dtype=np.float32).reshape(3, 2)
    padded = pad_chunk(chunk, 8)          # 5 missing: 2 before, 3 after
    assert padded.shape == (8, 2)
    np.testing.assert_array_equal(padded[:2], [[0, 1], [0, 1]])
    np.testing.assert_array_equal(padded[-3:], [[4, 5]] * 3)
