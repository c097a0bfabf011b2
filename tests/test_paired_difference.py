"""pyutils.cli.paired_difference: two systems' score files of the same trials, their own
intervals (stage 7's) and the paired interval of B - A (known answers, small files)."""
import numpy as np
import pytest

from pyutils.cli import paired_difference
from pyutils.metrics.bootstrap import speaker_bootstrap_eer_dcf, speaker_sides
from pyutils.metrics.results import summarize


@pytest.fixture
def two_systems(tmp_path):
    """Every pair of 40 utterances of 8 speakers; B scores every target 2 higher than A."""
    rng = np.random.default_rng(0)
    utts = [f"s{s}-u{u}" for s in range(8) for u in range(5)]
    first, second = np.triu_indices(len(utts), k=1)
    target = np.array([utts[i][:2] == utts[j][:2] for i, j in zip(first, second)])
    a = rng.standard_normal(target.size) + target
    b = a + 2.0 * target
    (tmp_path / "utt2spk").write_text("".join(f"{u} {u[:2]}\n" for u in utts))
    (tmp_path / "trials").write_text("".join(
        f"{utts[i]} {utts[j]} {'target' if t else 'nontarget'}\n"
        for i, j, t in zip(first, second, target)))
    (tmp_path / "a").write_text("".join(f"{utts[i]} {utts[j]} {float(s)!r}\n"
                                        for i, j, s in zip(first, second, a)))
    lines = [f"{utts[i]} {utts[j]} {float(s)!r}\n" for i, j, s in zip(first, second, b)]
    (tmp_path / "b").write_text("".join(reversed(lines)))      # another order
    return tmp_path, a, b, target


def test_b_better_on_every_draw_and_own_intervals_are_stage_7s(two_systems):
    d, a, b, target = two_systems
    result = paired_difference.compare(str(d / "trials"), str(d / "utt2spk"), str(d / "a"),
                                       str(d / "b"), replicates=50)
    assert result["trials"] == 780 and result["speakers"] == 8
    for name, scores in (("a", a), ("b", b)):
        row = summarize(scores, target.astype(int))
        assert result[name]["eer"] == row["eer"]
        assert result[name]["min_dcf"] == row["min_dcf_0.01"]
    spk = np.repeat(np.arange(8), 5)
    i, j = np.triu_indices(40, k=1)
    sides = speaker_sides(i, j, [f"s{s}" for s in spk])
    assert result["a"]["eer_ci"] == list(speaker_bootstrap_eer_dcf(
        a, target.astype(int), *sides, 50)[0])
    low, high = result["eer_diff_ci"]
    assert low <= high < 0 and result["eer_diff"] < 0
    text = paired_difference.report(result)
    assert "B lower, the paired interval excludes 0" in text


def test_same_system_twice_is_not_a_difference(two_systems):
    d = two_systems[0]
    result = paired_difference.compare(str(d / "trials"), str(d / "utt2spk"), str(d / "a"),
                                       str(d / "a"), replicates=20)
    assert result["eer_diff_ci"] == [0.0, 0.0] and result["min_dcf_diff_ci"] == [0.0, 0.0]
    assert "holds 0: not a difference" in paired_difference.report(result)


def test_a_score_file_missing_a_trial_is_an_error_naming_it(two_systems, capsys):
    d = two_systems[0]
    lines = (d / "b").read_text().splitlines(keepends=True)
    (d / "short").write_text("".join(lines[1:]))
    with pytest.raises(SystemExit) as exit_info:
        paired_difference.main(["--trials", str(d / "trials"), "--utt2spk", str(d / "utt2spk"),
                                str(d / "a"), str(d / "short")])
    assert "paired_difference: error:" in str(exit_info.value)
    assert "short" in str(exit_info.value)
