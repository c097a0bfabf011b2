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
