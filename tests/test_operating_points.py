"""Thresholds with their error rates, and picking one for a target rate."""
import numpy as np
import pytest

from pyutils.backends.operating_points import (binomial_interval, describe, error_rates_at,
                                               pick_threshold, read_cal_scores,
                                               write_cal_scores)


def test_error_rates_and_exact_binomial_intervals():
    target = np.arange(100) / 100.0          # 0.00 .. 0.99
    nontarget = np.arange(-100, 100) / 200.0  # -0.5 .. 0.495
    p = error_rates_at(0.095, target, nontarget)
    assert p["p_miss"] == 0.10 and p["p_fa"] == 81 / 200    # 0..0.09 missed; 0.095.. accepted
    assert p["num_target"] == 100 and p["num_nontarget"] == 200
    # Clopper-Pearson 95 % for 10/100 (R binom.test: 0.04900469 0.17622260)
    assert p["p_miss_ci"] == pytest.approx([0.04900469, 0.17622260], abs=1e-7)
    assert binomial_interval(0, 50) == pytest.approx((0.0, 0.07112174), abs=1e-7)
    assert "10.00 % misses" in describe(p) and "300 held-out" in describe(p)


def test_pick_threshold_for_a_target_false_alarm_or_miss_rate():
    target = np.arange(100) / 100.0
    nontarget = np.arange(100) / 100.0
    t = pick_threshold(target, nontarget, far=0.05)
    assert error_rates_at(t, target, nontarget)["p_fa"] == 0.05     # 0.95..0.99
    assert t > 0.94 and error_rates_at(np.nextafter(0.94, -1), target, nontarget)["p_fa"] > 0.05
    t = pick_threshold(target, nontarget, frr=0.05)
    assert t == 0.05 and error_rates_at(t, target, nontarget)["p_miss"] == 0.05
    assert pick_threshold(target, nontarget, far=0.0) > 0.99
    with pytest.raises(ValueError, match="exactly one"):
        pick_threshold(target, nontarget, far=0.1, frr=0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        pick_threshold(target, nontarget, far=1.5)


def test_cal_scores_round_trip_and_bad_lines(tmp_path):
    path = tmp_path / "cosine.cal_scores"
    write_cal_scores(str(path), [0.5, -0.25, 0.125], [1, 0, 1])
    target, nontarget = read_cal_scores(str(path))
    assert target.tolist() == [0.5, 0.125] and nontarget.tolist() == [-0.25]
    path.write_text("0.5 target\n0.1 maybe\n")
    with pytest.raises(ValueError, match="cosine.cal_scores:2: label 'maybe'"):
        read_cal_scores(str(path))
