"""The training loader (issue 8): fp32 pooling statistics under autocast, GPU RNG
states in checkpoints, the batch plan, worker processes that do not change the
batches, chunk-span features, speed.prob."""
import numpy as np
import pytest
import torch

from pyutils.models.pooling import AttentiveStatsPooling, StatsPooling
from pyutils.training import checkpoint


# --------------------------------------------------------------------------
# (1) pooling statistics in fp32, CUDA RNG states
# --------------------------------------------------------------------------

def _offset_frames(seed=0):
    """Frames with a large mean and a small spread: bf16 statistics lose the spread."""
    gen = torch.Generator().manual_seed(seed)
    return (30.0 + 0.5 * torch.randn(2, 8, 200, generator=gen)).bfloat16()


def test_stats_pooling_computes_in_fp32_under_bf16_autocast():
    x = _offset_frames()
    pool = StatsPooling()
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        out = pool(x)
    assert out.dtype == torch.float32
    xf = x.float()
    reference = torch.cat([xf.mean(2), xf.var(2, unbiased=False).sqrt()], dim=1)
    torch.testing.assert_close(out, reference, rtol=1e-3, atol=1e-3)
    # the same formula in bf16 gets the standard deviation badly wrong: the check can fail
    naive_var = (x * x).mean(2) - x.mean(2) * x.mean(2)
    naive_std = naive_var.float().clamp(min=1e-10).sqrt()
    assert (naive_std - reference[:, 8:]).abs().max() > 0.1


def test_attentive_pooling_statistics_and_softmax_in_fp32_under_autocast():
    torch.manual_seed(0)
    pool = AttentiveStatsPooling(8, bottleneck=4)
    x = _offset_frames(1)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        out = pool(x)
    assert out.dtype == torch.float32
    reference = pool(x.float())                        # all fp32
    std = reference[:, 8:]
    # the attention weights come from bf16 convolutions; the statistics themselves do
    # not lose digits: the std stays near the true 0.5, not bf16's spacing at 30 (0.125)
    torch.testing.assert_close(out, reference, rtol=2e-2, atol=5e-2)
    assert ((out[:, 8:] - std).abs() < 0.05).all()


def test_checkpoint_rng_state_cpu_round_trip_and_no_gpu_key_without_cuda():
    state = checkpoint.rng_state()
    if not torch.cuda.is_available():
        assert "cuda" not in state
    expected = (torch.rand(3), np.random.rand(), __import__("random").random())
    # a checkpoint written on a GPU machine resumes on a CPU one: its GPU states are ignored
    checkpoint.set_rng_state({**state, "cuda": [torch.zeros(16, dtype=torch.uint8)]}
                             if not torch.cuda.is_available() else state)
    again = (torch.rand(3), np.random.rand(), __import__("random").random())
    assert torch.equal(expected[0], again[0]) and expected[1:] == again[1:]


def test_checkpoint_saves_and_restores_every_gpu_rng_state(monkeypatch):
    saved = [torch.full((4,), 7, dtype=torch.uint8), torch.full((4,), 9, dtype=torch.uint8)]
    restored = {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: saved)
    monkeypatch.setattr(torch.cuda, "set_rng_state",
                        lambda new, device: restored.__setitem__(device, new.clone()))
    state = checkpoint.rng_state()
    assert [t.tolist() for t in state["cuda"]] == [t.tolist() for t in saved]
    checkpoint.set_rng_state(state)
    assert sorted(restored) == [0, 1]
    assert restored[1].tolist() == [9, 9, 9, 9]


# --------------------------------------------------------------------------
# (2) the batch plan and worker processes
# --------------------------------------------------------------------------

import os  # noqa: E402

import soundfile as sf  # noqa: E402
import yaml  # noqa: E402

from pyutils.augment import Augmenter  # noqa: E402
from pyutils.training.chunk_sampling import epoch_batches  # noqa: E402
from pyutils.training.data import OnTheFlyFeatures, PrecomputedFeatures, read_utt2spk  # noqa: E402
from pyutils.training.loader import BatchPlan, ChunkLoader  # noqa: E402
from tests.conftest import ROOT  # noqa: E402
from tests.test_training import make_training_data  # noqa: E402
from tests.test_training_sources import make_audio_dir  # noqa: E402


def test_batch_plan_is_this_ranks_share_of_the_trainers_chunk_lists():
    lengths = [300, 450, 500, 1000]
    for rank in (0, 1):
        plan = BatchPlan(lengths, 200, 400, 8, 64, seed=1, rank=rank, world=2)
        plan.set_epoch(3)
        expected = epoch_batches(lengths, 200, 400, 8, 64, seed=1, epoch=3)
        got = list(plan)
        assert len(got) == len(plan) == 8
        for number, (share, batch) in enumerate(zip(got, expected)):
            assert [(s.index, s.offset, s.length) for s in share] == batch[rank::2]
            assert [s.item for s in share] == list(range(rank, 8, 2))
            assert {(s.seed, s.epoch, s.batch) for s in share} == {(1, 3, number)}
    # the chunks the trainer drew before the loader existed (known answer)
    assert expected[0] == [(1, 2, 289), (3, 538, 289), (3, 157, 289), (3, 297, 289),
                           (1, 128, 289), (3, 397, 289), (3, 518, 289), (3, 161, 289)]
    plan.set_epoch(4)
    assert [(s.index, s.offset) for s in next(iter(plan))] != \
        [(u, o) for u, o, _ in epoch_batches(lengths, 200, 400, 8, 64, 1, 3)[0][1::2]]


def _all_batches(source, workers, epochs=(1, 2), batch=4, chunks=16, frames=(40, 60)):
    plan = BatchPlan(source.lengths, *frames, batch, chunks, seed=5)
    loader = ChunkLoader(source, plan, num_workers=workers)
    return [(x.clone(), y.clone()) for e in epochs for x, y in loader.epoch(e)]


def _assert_same_batches(a, b):
    assert len(a) == len(b) > 0
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_zero_and_two_workers_give_identical_batches_of_precomputed_features(tmp_path):
    make_training_data(tmp_path, frames=120)
    source = PrecomputedFeatures(str(tmp_path / "feats.scp"), read_utt2spk(str(tmp_path)))
    in_process, workers = _all_batches(source, 0), _all_batches(source, 2)
    _assert_same_batches(in_process, workers)
    # the batches are the plan's chunks of the features
    plan = BatchPlan(source.lengths, 40, 60, 4, 16, seed=5)
    first = [(s.index, s.offset, s.length) for s in next(iter(plan))]
    expected = np.stack([source.matrix(u)[o:o + n] for u, o, n in first])
    np.testing.assert_array_equal(in_process[0][0].numpy(), expected)
    assert in_process[0][1].tolist() == [int(source.labels[u]) for u, _, _ in first]


def _rir_dir(path):
    rng = np.random.default_rng(3)
    t = np.arange(1600)
    rir = rng.normal(0, 1, len(t)) * np.exp(-t / 300.0)
    rir[0] = 8.0
    os.makedirs(path, exist_ok=True)
    sf.write(os.path.join(path, "room.wav"), (rir / np.abs(rir).max() * 30000).astype(np.int16),
             16000)
    return str(path)


def augmented_fbank_source(tmp_path, speeds=(1.0, 1.1)):
    data = make_audio_dir(tmp_path)
    noise = tmp_path / "noise" / "hum.wav"
    os.makedirs(noise.parent, exist_ok=True)
    sf.write(noise, np.random.default_rng(1).normal(0, 2000, 32000).astype(np.int16), 16000)
    augmenter = Augmenter({"noise": {"prob": 0.6, "dirs": [str(noise.parent)], "snr": [0, 15]},
                           "reverb": {"prob": 0.5, "rir_dirs": [_rir_dir(tmp_path / "rir")]}})
    conf = lambda name: os.path.join(ROOT, "conf", name)  # noqa: E731
    return OnTheFlyFeatures(str(data), "fbank", conf("fbank.conf"), conf("vad.conf"),
                            conf("cmvn.conf"), conf("mfcc.conf"), augmenter=augmenter,
                            speeds=speeds)


def test_zero_and_two_workers_give_identical_batches_of_augmented_on_the_fly_fbank(tmp_path):
    source = augmented_fbank_source(tmp_path)
    in_process, workers = _all_batches(source, 0), _all_batches(source, 2)
    _assert_same_batches(in_process, workers)
    assert in_process[0][0].shape == (4, in_process[0][0].shape[1], 80)
    # augmentation did something, drawn per chunk: the clean chunk differs
    plan = BatchPlan(source.lengths, 40, 60, 4, 16, seed=5)
    first = next(iter(plan))
    clean = np.stack([source.chunk(s.index, s.offset, s.length) for s in first])
    assert not np.allclose(clean, in_process[0][0].numpy(), atol=1e-3)


def test_short_training_run_has_the_same_losses_with_zero_and_two_workers(tmp_path):
    from pyutils.training.trainer import train
    data = make_audio_dir(tmp_path)
    noise = tmp_path / "noise" / "hum.wav"
    os.makedirs(noise.parent, exist_ok=True)
    sf.write(noise, np.random.default_rng(1).normal(0, 2000, 32000).astype(np.int16), 16000)
    losses = {}
    for workers in (0, 2):
        config = {
            "features": {"type": "fbank", "conf": os.path.join(ROOT, "conf", "fbank.conf"),
                         "on_the_fly": True,
                         "vad_conf": os.path.join(ROOT, "conf", "vad.conf"),
                         "cmvn_conf": os.path.join(ROOT, "conf", "cmvn.conf"),
                         "vad_feat_conf": os.path.join(ROOT, "conf", "mfcc.conf")},
            "augmentation": {"noise": {"prob": 0.5, "dirs": [str(noise.parent)],
                                       "snr": [0, 10]}},
            "model": {"name": "xvector", "embed_dim": 16, "frame_dims": [16, 16, 16, 16, 32]},
            "loss": {"name": "softmax"},
            "data": {"min_chunk_frames": 50, "max_chunk_frames": 80, "batch_size": 4,
                     "chunks_per_epoch": 16, "num_workers": workers},
            "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
            "training": {"epochs": 2, "seed": 3, "num_threads": 1},
        }
        path = tmp_path / f"c{workers}.yaml"
        path.write_text(yaml.safe_dump(config))
        exp = tmp_path / f"exp{workers}"
        train(str(path), str(data), str(exp))
        losses[workers] = [checkpoint.load(str(exp / "models" / f"epoch_{e}.pt"))["stats"]
                           ["step_losses"] for e in (1, 2)]
    assert len(losses[0][0]) == 4
    assert losses[0] == losses[2]


# --------------------------------------------------------------------------
# (3) features of the chunk's span
# --------------------------------------------------------------------------

@pytest.mark.parametrize("cmvn", ["--center=true\n--cmn-window=300\n",
                                  "--center=false\n--cmn-window=200\n--min-cmn-window=50\n",
                                  "--center=true\n--norm-vars=true\n--cmn-window=120\n"
                                  "--min-cmn-window=40\n"])
def test_chunk_span_features_equal_the_whole_utterance_cut(tmp_path, cmvn):
    from tests.test_training_sources import no_dither_conf
    data = make_audio_dir(tmp_path, num_spk=1, utts=2, seconds=8)
    (tmp_path / "cmvn.conf").write_text(cmvn)
    conf = lambda name: os.path.join(ROOT, "conf", name)  # noqa: E731
    source = OnTheFlyFeatures(str(data), "fbank", no_dither_conf(tmp_path, "fbank.conf"),
                              conf("vad.conf"), str(tmp_path / "cmvn.conf"), conf("mfcc.conf"))
    spans = []
    compute = source.computer.compute
    source.computer.compute = lambda *a, **k: spans.append(k.get("frames")) or compute(*a, **k)
    for index in range(len(source)):
        whole = source.features(index)
        frames = len(source.vad[index])
        length = 100
        for offset in (0, len(whole) // 2 - length // 2, len(whole) - length):
            spans.clear()
            chunk = source.chunk(index, offset, length)
            np.testing.assert_allclose(chunk, whole[offset:offset + length], atol=1e-5, rtol=0)
            first, stop = spans[0]
            assert stop - first < frames       # only the span was featurised
        assert first > 0 and stop <= frames    # (the last chunk's span starts inside)
    with pytest.raises(ValueError, match="past the"):
        source.chunk(0, len(whole) - 10, 20)


# --------------------------------------------------------------------------
# (4) speed.prob, one resampler
# --------------------------------------------------------------------------

def test_speed_prob_half_perturbs_about_half_of_the_chunks(tmp_path):
    from pyutils.training.data import WaveformStore, speed_versions
    from pyutils.training.trainer import build_sources
    data = make_audio_dir(tmp_path, num_spk=2, utts=3, seconds=2)
    config = {"features": {"type": "waveform"}, "data": {},
              "augmentation": {"speed": {"prob": 0.5, "factors": [0.9, 1.1]}}}
    store, _ = build_sources(config, str(data))
    assert isinstance(store, WaveformStore) and store.speeds == [1.0, 0.9, 1.1]
    assert store.num_classes == 6
    num_batches, batch = 200, 20
    plan = BatchPlan(store.lengths, 16000, 16000, batch, num_batches * batch, seed=0,
                     prior=store.version_prior)
    speed_index = np.array([store.versions[s.index][1] for e in (1, 2) for b in
                            (plan.set_epoch(e) or list(plan)) for s in b])
    n = len(speed_index)
    perturbed = int((speed_index > 0).sum())
    # binomial: 4.5 standard deviations around n/2 (fails with odds below 1e-5)
    assert abs(perturbed - n / 2) < 4.5 * np.sqrt(n * 0.25), (perturbed, n)
    # both factors equally likely among the perturbed chunks
    at_09 = int((speed_index == 1).sum())
    assert abs(at_09 - perturbed / 2) < 4.5 * np.sqrt(perturbed * 0.25)
    # prob 0: no perturbed copies at all (today's behaviour ignored prob); prob 1: no clean
    assert speed_versions({"prob": 0.0, "factors": [0.9, 1.1]}) == ([1.0], 0.0)
    store.speed_prob = 1.0
    plan = BatchPlan(store.lengths, 16000, 16000, batch, 50 * batch, 0, prior=store.version_prior)
    assert all(store.versions[s.index][1] > 0 for b in plan for s in b)
    with pytest.raises(ValueError, match="prob"):
        speed_versions({"prob": 1.5})


def test_speed_versions_use_the_one_resampler(tmp_path):
    from pyutils.augment.speed import speed_perturb
    from pyutils.training.data import WaveformStore
    import pyutils.training.data as data_module
    assert not hasattr(data_module, "speed_change")
    data = make_audio_dir(tmp_path, num_spk=1, utts=1, seconds=2)
    store = WaveformStore(str(data), speeds=(1.0, 0.9, 1.1))
    clean = store.audio[0].astype(np.float64)
    for k, factor in ((1, 0.9), (2, 1.1)):
        expected = speed_perturb(clean, factor).astype(np.float32)
        np.testing.assert_array_equal(store.audio[k], expected)
        assert abs(len(expected) - len(clean) / factor) <= 1


class _NiceSource:
    """Each chunk holds the CPU priority of the process that loaded it."""
    lengths, labels = np.array([10, 10]), np.array([0, 1])

    def __len__(self):
        return 2

    def chunk(self, index, offset, length, rng=None):
        return np.full((length, 1), os.nice(0), dtype=np.float32)


def test_worker_nice_lowers_only_the_workers_priority():
    base = os.nice(0)
    plan = BatchPlan(_NiceSource.lengths, 4, 4, 2, 4, seed=0)
    loaded = [x for x, _ in ChunkLoader(_NiceSource(), plan, 1, worker_nice=5).epoch(1)]
    assert loaded and all(float(x.min()) == min(base + 5, 19) for x in loaded)
    assert os.nice(0) == base
    in_process = [x for x, _ in ChunkLoader(_NiceSource(), plan, 0, worker_nice=5).epoch(1)]
    assert all(float(x.max()) == base for x in in_process)
