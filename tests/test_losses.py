"""Margin losses (AM / AAM softmax): values by hand, margin schedule, gradients."""
import math

import numpy as np
import pytest
import torch

from pyutils.losses import build_loss
from pyutils.losses.margin import MarginSchedule

# 3 classes in 2-D; sample 2's target class (0) points the opposite way, so
# its theta is ~174 degrees and theta + m > pi for m = 0.2
WEIGHT = np.array([[1.0, 0.0], [0.6, 0.8], [-0.3, 2.0]])
X = np.array([[2.0, 0.5], [0.1, 1.0], [-1.0, 0.1], [0.3, -0.4]])
LABELS = np.array([0, 1, 0, 2])
SCALE, MARGIN = 10.0, 0.2


def _cosines():
    x = X / np.linalg.norm(X, axis=1, keepdims=True)
    w = WEIGHT / np.linalg.norm(WEIGHT, axis=1, keepdims=True)
    return x @ w.T


def _cross_entropy(logits, labels):
    logits = logits - logits.max(axis=1, keepdims=True)
    log_prob = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return -log_prob[np.arange(len(labels)), labels].mean()


def _expected(kind, margin):
    cos = _cosines()
    rows = np.arange(len(LABELS))
    target = cos[rows, LABELS]
    if kind == "am":
        new = target - margin
    else:
        theta = np.arccos(target)
        new = np.where(theta + margin < np.pi, np.cos(theta + margin),
                       target - (1.0 - np.cos(margin)))
    logits = cos.copy()
    logits[rows, LABELS] = new
    return _cross_entropy(SCALE * logits, LABELS), SCALE * cos


def _loss(name, **kw):
    loss = build_loss(name, 2, 3, scale=SCALE, margin=MARGIN, **kw)
    with torch.no_grad():
        loss.weight.copy_(torch.tensor(WEIGHT, dtype=torch.float32))
    return loss


def _run(loss):
    x = torch.tensor(X, dtype=torch.float32, requires_grad=True)
    value, logits = loss(x, torch.tensor(LABELS))
    return x, value, logits


@pytest.mark.parametrize("name", ["am", "aam"])
def test_loss_matches_hand_computation(name):
    expected, expected_logits = _expected(name, MARGIN)
    _, value, logits = _run(_loss(name))
    assert value.item() == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose(logits.detach().numpy(), expected_logits, rtol=1e-5, atol=1e-5)


def test_aam_case_beyond_pi_uses_the_continuous_fallback():
    cos = _cosines()[2, 0]
    assert np.arccos(cos) + MARGIN > np.pi  # the fixture really exercises the branch
    loss = _loss("aam")
    target = loss.target_logit(torch.tensor([[cos]], dtype=torch.float64))
    assert target.item() == pytest.approx(cos - (1 - math.cos(MARGIN)), abs=1e-12)
    # continuous at theta = pi - m: both branches give -1
    edge = torch.tensor([[math.cos(math.pi - MARGIN)]], dtype=torch.float64)
    assert loss.target_logit(edge).item() == pytest.approx(-1.0, abs=1e-9)
    assert loss.target_logit(edge + 1e-9).item() == pytest.approx(-1.0, abs=1e-6)


@pytest.mark.parametrize("name", ["am", "aam"])
def test_zero_margin_is_scaled_cosine_softmax(name):
    loss = build_loss(name, 2, 3, scale=SCALE, margin=0.0)
    with torch.no_grad():
        loss.weight.copy_(torch.tensor(WEIGHT, dtype=torch.float32))
    _, value, logits = _run(loss)
    plain = torch.nn.functional.cross_entropy(logits, torch.tensor(LABELS))
    assert value.item() == pytest.approx(plain.item(), rel=1e-6)
    assert value.item() == pytest.approx(_cross_entropy(SCALE * _cosines(), LABELS), rel=1e-5)


@pytest.mark.parametrize("name", ["am", "aam"])
def test_warmup_start_gives_zero_margin_loss(name):
    loss = _loss(name, margin_warmup={"start_step": 10, "end_step": 20})
    loss.set_step(3)
    assert loss.current_margin == 0.0
    _, value, _ = _run(loss)
    assert value.item() == pytest.approx(_expected(name, 0.0)[0], rel=1e-5)
    loss.set_step(20)
    _, value, _ = _run(loss)
    assert value.item() == pytest.approx(_expected(name, MARGIN)[0], rel=1e-5)


def test_margin_schedule_values():
    exp = MarginSchedule.from_config(0.2, {"start_step": 100, "end_step": 200})
    lin = MarginSchedule.from_config(0.2, {"start_step": 100, "end_step": 200,
                                           "increase": "linear"})
    for sched in (exp, lin):
        assert sched(0) == 0.0 and sched(99) == 0.0
        assert sched(100) == pytest.approx(0.0, abs=1e-12)
        assert sched(200) == 0.2 and sched(10_000) == 0.2
    assert lin(150) == pytest.approx(0.1)
    assert lin(175) == pytest.approx(0.15)
    # WeSpeaker's exponential rise: 1 - 1e-3 ** progress
    assert exp(110) == pytest.approx(0.2 * (1 - 10 ** -0.3))
    assert exp(150) == pytest.approx(0.2 * (1 - 10 ** -1.5))
    assert exp(199) == pytest.approx(0.2 * (1 - 10 ** -2.97))
    values = [exp(s) for s in range(90, 210)]
    assert all(b >= a for a, b in zip(values, values[1:]))
    assert MarginSchedule.from_config(0.3)(0) == 0.3  # no warm-up: fixed margin


def test_set_step_is_stateless_so_resume_is_exact():
    a = build_loss("aam", 4, 5, margin=0.2, margin_warmup={"start_step": 0, "end_step": 50})
    b = build_loss("aam", 4, 5, margin=0.2, margin_warmup={"start_step": 0, "end_step": 50})
    for step in range(40):
        a.set_step(step)
    b.set_step(39)  # a resumed run jumps straight to the restored global step
    assert a.current_margin == b.current_margin


def test_bad_warmup_config_is_rejected():
    with pytest.raises(ValueError):
        build_loss("am", 2, 3, margin_warmup={"start_step": 10})
    with pytest.raises(ValueError):
        build_loss("am", 2, 3, margin_warmup={"start_step": 10, "end_step": 5})
    with pytest.raises(ValueError):
        build_loss("am", 2, 3, margin_warmup={"start_step": 0, "end_step": 5, "curve": "x"})


@pytest.mark.parametrize("name", ["am", "aam"])
def test_gradients_flow_to_input_and_weights(name):
    torch.manual_seed(0)
    loss = build_loss(name, 8, 6, scale=30.0, margin=0.3)
    x = torch.randn(5, 8, requires_grad=True)
    value, logits = loss(x, torch.tensor([0, 1, 2, 3, 5]))
    assert logits.shape == (5, 6)
    value.backward()
    for grad in (x.grad, loss.weight.grad):
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_aam_gradient_finite_when_embedding_on_class_axis():
    loss = build_loss("aam", 2, 2, margin=0.2)
    with torch.no_grad():
        loss.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    x = torch.tensor([[3.0, 0.0], [-2.0, 0.0]], requires_grad=True)
    value, _ = loss(x, torch.tensor([0, 0]))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(x.grad).all()
    assert torch.isfinite(loss.weight.grad).all()
