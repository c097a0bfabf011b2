"""MoCo and DINO building blocks against hand-computed values (issue 12)."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pyutils.losses.dino import DINOLoss
from pyutils.losses.infonce import info_nce
from pyutils.models import build_model
from pyutils.training.selfsup import ssl_options
from pyutils.training.selfsup.dino import DINO, random_crops
from pyutils.training.selfsup.ema import ema_update, momentum_copy
from pyutils.training.selfsup.moco import MoCo


def test_info_nce_against_a_hand_computed_value():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    k = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
    queue = torch.tensor([[1.0, 0.0, -1.0], [0.0, 1.0, 0.0]])     # keys as columns
    t = 0.5
    # row 0: pos 0.6, negs (1, 0, -1); row 1: pos 1, negs (0, 1, 0)
    row0 = -0.6 / t + math.log(sum(math.exp(v / t) for v in (0.6, 1.0, 0.0, -1.0)))
    row1 = -1.0 / t + math.log(sum(math.exp(v / t) for v in (1.0, 0.0, 1.0, 0.0)))
    assert info_nce(q, k, queue, t).item() == pytest.approx((row0 + row1) / 2, rel=1e-6)


class Tiny(torch.nn.Module):
    """(batch, frames, dim) -> (batch, 4): mean over frames, a linear layer, batch norm."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3, 4)
        self.norm = torch.nn.BatchNorm1d(4)

    def forward(self, x):
        return self.norm(self.linear(x.mean(dim=1)))


def test_queue_is_fifo_and_the_key_encoder_is_the_ema_of_the_query_encoder():
    torch.manual_seed(0)
    moco = MoCo(Tiny(), embed_dim=4, queue_size=8, momentum=0.9, temperature=0.1,
                projection=False, bn_splits=2)
    before_k = [p.clone() for p in moco.encoder_k.parameters()]
    query = [p.clone() for p in moco.encoder_q.parameters()]
    keys_seen = []
    original = moco.enqueue

    def spy(keys):
        keys_seen.append(keys.clone())
        original(keys)

    moco.enqueue = spy
    loss = moco(torch.randn(4, 5, 3), torch.randn(4, 5, 3))
    assert loss.requires_grad and torch.isfinite(loss)
    for k, b, q in zip(moco.encoder_k.parameters(), before_k, query):
        assert torch.allclose(k, 0.9 * b + 0.1 * q)
        assert not k.requires_grad
    assert int(moco.queue_ptr) == 4
    assert torch.equal(moco.queue[:, :4], keys_seen[0].T)
    moco(torch.randn(4, 5, 3), torch.randn(4, 5, 3))
    assert int(moco.queue_ptr) == 0                        # wrapped around
    assert torch.equal(moco.queue[:, 4:], keys_seen[1].T)
    moco(torch.randn(4, 5, 3), torch.randn(4, 5, 3))
    assert torch.equal(moco.queue[:, :4], keys_seen[2].T)  # the oldest went first
    assert torch.equal(moco.queue[:, 4:], keys_seen[1].T)
    assert torch.allclose(moco.queue.norm(dim=0), torch.ones(8))


def test_moco_keys_do_not_depend_on_the_shuffle_when_batch_norm_is_frozen():
    torch.manual_seed(0)
    moco = MoCo(Tiny(), embed_dim=4, queue_size=8, projection=False, bn_splits=2).eval()
    x = torch.randn(4, 5, 3)
    a = moco.keys(x, torch.Generator().manual_seed(1))
    b = moco.keys(x, torch.Generator().manual_seed(2))
    assert torch.allclose(a, b, atol=1e-6)                 # unshuffled back to input order
    assert torch.allclose(a, F.normalize(moco.encoder_k(x), dim=1), atol=1e-6)


def test_queue_size_must_be_a_multiple_of_the_global_batch():
    assert ssl_options({"ssl": {"method": "moco", "queue_size": 1024}}, 64)["temperature"] == 0.07
    with pytest.raises(ValueError, match="not a multiple of the global batch 96"):
        ssl_options({"ssl": {"method": "moco", "queue_size": 1000}}, 96)
    with pytest.raises(ValueError, match="unknown key"):
        ssl_options({"ssl": {"method": "dino", "queue_size": 1024}}, 64)
    with pytest.raises(ValueError, match="moco or dino"):
        ssl_options({"ssl": {"method": "simclr"}}, 64)


def test_dino_centring_and_sharpening_on_a_hand_worked_example():
    loss = DINOLoss(out_dim=2, student_temp=1.0, teacher_temp=0.5, center_momentum=0.5)
    loss.center.copy_(torch.tensor([[1.0, 0.0]]))
    teacher = torch.tensor([[2.0, 0.0]])
    # centred: (1, 0); sharpened at T=0.5: softmax(2, 0) = (e^2, 1) / (e^2 + 1)
    p = loss.teacher_probs(teacher)
    e2 = math.exp(2.0)
    assert p[0].tolist() == pytest.approx([e2 / (e2 + 1), 1 / (e2 + 1)])
    # two views: teacher on view 0, student on views 0 and 1; only (t0, s1) is a pair
    s0, s1 = torch.tensor([[5.0, -5.0]]), torch.tensor([[0.0, 0.0]])
    value = loss([s0, s1], [teacher])
    assert value.item() == pytest.approx(math.log(2.0))    # cross-entropy with a uniform student
    # centre update: 0.5 * (1, 0) + 0.5 * (2, 0)
    assert loss.center.tolist() == [[1.5, 0.0]]


def test_dino_trains_any_encoder_and_the_teacher_follows_by_ema():
    torch.manual_seed(0)
    encoder = build_model("xvector", feat_dim=30, embed_dim=16,
                          frame_dims=[32, 32, 32, 32, 64])
    dino = DINO(encoder, embed_dim=16, out_dim=64, hidden_dim=32, bottleneck_dim=8,
                momentum=0.5)
    rng = np.random.default_rng(0)
    utterance = rng.normal(size=(400, 30)).astype(np.float32)
    crops = [random_crops(utterance, [200, 200, 100, 100], rng) for _ in range(4)]
    stack = [torch.from_numpy(np.stack([c[i] for c in crops])) for i in range(4)]
    teacher_before = [p.clone() for p in dino.teacher.parameters()]
    loss = dino(stack[:2], stack[2:])
    loss.backward()
    assert dino.encoder.frame_layers[0].affine.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in dino.teacher.parameters())
    dino.update_teacher()
    for t, b, s in zip(dino.teacher.parameters(), teacher_before, dino.student.parameters()):
        assert torch.allclose(t, 0.5 * b + 0.5 * s)


def test_random_crops_have_the_lengths_and_repeat_short_input():
    rng = np.random.default_rng(0)
    x = np.arange(50)[:, None]
    crops = random_crops(x, [30, 80], rng)
    assert [c.shape[0] for c in crops] == [30, 80]
    assert np.array_equal(np.diff(crops[0][:, 0]), np.ones(29))   # contiguous
    assert set(crops[1][:, 0]) <= set(range(50))


def test_ema_update_formula():
    source = torch.nn.Linear(2, 2)
    target = momentum_copy(source)
    with torch.no_grad():
        source.weight.fill_(1.0)
        target.weight.fill_(3.0)
    ema_update(target, source, 0.75)
    assert torch.allclose(target.weight, torch.full((2, 2), 2.5))
