"""Stages 6-7 at so762-v1's size: the array readers, the one-pass bootstrap, the DET
thinning and the QMF features give exactly what the plain per-trial code gives."""
from functools import partial

import numpy as np
import pytest
from scipy.special import ndtri

from pyutils.backends.qmf import code_features, pair_features
from pyutils.cli import calibrate as calibrate_cli
from pyutils.metrics import det
from pyutils.metrics.bootstrap import (eer_dcf_replicates, paired_difference_ci,
                                       speaker_bootstrap_ci, speaker_bootstrap_eer_dcf,
                                       speaker_sides, trial_speaker_index)
from pyutils.metrics.dcf import compute_min_dcf, error_rates
from pyutils.metrics.eer import compute_eer
from pyutils.metrics.pair_table import read_pair_table
from pyutils.metrics.results import TrialList, read_score_lines, summarize
from pyutils.utils.fileio import TableError


def _eer(scores, labels):
    target = labels.astype(bool)
    return compute_eer(scores[target], scores[~target], presorted=True)[0]


def _min_dcf(scores, labels):
    return compute_min_dcf(scores, labels, 0.01, presorted=True)[0]


def _all_pairs(speakers: int, per_speaker: int, rng, decimals: int):
    """Every pair of utterances of ``speakers`` speakers, scores rounded (ties)."""
    spk = np.repeat(np.arange(speakers), per_speaker)
    first, second = np.triu_indices(spk.size, k=1)
    labels = (spk[first] == spk[second]).astype(np.int64)
    scores = np.round(rng.normal(2.0 * labels, 1.0), decimals)
    return scores, labels, spk[first], spk[second]


@pytest.mark.parametrize("seed,decimals", [(0, 1), (1, 2), (2, 6)])
def test_one_pass_bootstrap_gives_the_intervals_of_the_metrics_on_each_replicate(seed, decimals):
    rng = np.random.default_rng(seed)
    scores, labels, a, b = _all_pairs(7, 5, rng, decimals)
    speakers = [(f"s{x}", f"s{y}") for x, y in zip(a, b)]
    want_eer = speaker_bootstrap_ci(_eer, scores, labels, speakers, 60)
    want_dcf = speaker_bootstrap_ci(_min_dcf, scores, labels, speakers, 60)
    num, side1, side2 = trial_speaker_index(speakers)
    got_eer, got_dcf = speaker_bootstrap_eer_dcf(scores, labels, num, side1, side2, 60)
    assert got_eer == want_eer and got_dcf == want_dcf
    assert want_eer[0] < want_eer[1]            # a real interval, not a degenerate one


def test_replicates_are_those_of_speaker_bootstrap_ci_one_by_one():
    """Replicate by replicate, eer_dcf_replicates gives the EER and minDCF the plain
    speaker_bootstrap_ci computes on its replicates (same draws, same redraws), for any
    scores of the same trials: what makes the paired difference paired."""
    rng = np.random.default_rng(4)
    scores, labels, a, b = _all_pairs(8, 5, rng, 3)
    other = scores + rng.standard_normal(scores.size)
    pairs = np.stack([a, b], axis=1)
    num, side1, side2 = trial_speaker_index(pairs)
    seen = {"eer": [], "dcf": []}

    def eer(s, l):
        seen["eer"].append(_eer(s, l))
        return seen["eer"][-1]

    def dcf(s, l):
        seen["dcf"].append(_min_dcf(s, l))
        return seen["dcf"][-1]
    speaker_bootstrap_ci(eer, scores, labels, pairs, 50)
    speaker_bootstrap_ci(dcf, other, labels, pairs, 50)
    got_a = eer_dcf_replicates(scores, labels, num, side1, side2, 50)
    got_b = eer_dcf_replicates(other, labels, num, side1, side2, 50)
    assert got_a.shape == got_b.shape == (50, 2)
    assert got_a[:, 0].tolist() == seen["eer"] and got_b[:, 1].tolist() == seen["dcf"]
    assert len(set(seen["eer"])) > 5                   # the replicates do differ


def test_paired_difference_is_zero_for_a_monotone_rescoring_and_positive_when_worse():
    """Same ranking on every replicate: the paired interval is exactly (0, 0) while each
    system's own interval is wide; scoring every target lower is worse on every draw."""
    rng = np.random.default_rng(5)
    scores, labels, a, b = _all_pairs(8, 5, rng, 6)
    num, side1, side2 = trial_speaker_index(np.stack([a, b], axis=1))
    same = paired_difference_ci(scores, 3 * scores - 1, labels, num, side1, side2, 40)
    assert same == ((0.0, 0.0), (0.0, 0.0))
    own_low, own_high = speaker_bootstrap_eer_dcf(scores, labels, num, side1, side2, 40)[0]
    assert own_high - own_low > 0.02
    worse = np.where(labels == 1, scores - 3.0, scores)
    (low, high), (dcf_low, _) = paired_difference_ci(scores, worse, labels, num, side1, side2, 40)
    assert 0 < low <= high and dcf_low > 0
    (low, high), _ = paired_difference_ci(worse, scores, labels, num, side1, side2, 40)
    assert low <= high < 0


def test_one_pass_bootstrap_one_speaker_per_trial_and_label_noise():
    rng = np.random.default_rng(3)
    n = 300
    spk = rng.integers(0, 9, n)
    labels = rng.integers(0, 2, n)
    scores = np.round(rng.normal(labels, 1.0), 1)
    want = [speaker_bootstrap_ci(m, scores, labels, spk, 40) for m in (_eer, _min_dcf)]
    num, side1, side2 = trial_speaker_index(spk)
    assert list(speaker_bootstrap_eer_dcf(scores, labels, num, side1, side2, 40)) == want


def test_speaker_sides_from_codes_equal_the_string_index():
    names = ["u3", "u1", "u2", "u0"]
    speaker_of = ["b", "a", "b", "c"]
    first, second = np.array([0, 1, 2, 0]), np.array([1, 2, 0, 2])
    pairs = [(speaker_of[i], speaker_of[j]) for i, j in zip(first, second)]
    num, s1, s2 = speaker_sides(first, second, speaker_of)
    want = trial_speaker_index(pairs)
    assert num == want[0] == 2 and list(s1) == list(want[1]) and list(s2) == list(want[2])
    assert names  # codes index names; "c" (utterance u0) is in no trial, so not counted


def _write(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


def test_array_join_equals_the_plain_reader_in_score_file_order(tmp_path):
    rng = np.random.default_rng(4)
    utts = [f"spk{s}-utt{u}" for s in range(6) for u in range(4)]
    pairs = [(a, b) for i, a in enumerate(utts) for b in utts[i + 1:]]
    labels = ["target" if a[:4] == b[:4] else "nontarget" for a, b in pairs]
    trials = _write(tmp_path / "trials", [f"{a} {b} {lab}" for (a, b), lab in zip(pairs, labels)])
    order = rng.permutation(len(pairs))
    values = np.round(rng.normal(size=len(pairs)), 3)
    scores = _write(tmp_path / "scores", [f"{pairs[i][0]} {pairs[i][1]} {values[i]:.8g}"
                                          for i in order])
    trial_list = TrialList(trials)
    assert trial_list.table is not None          # read as arrays
    joined = trial_list.join_codes(scores)
    want_scores, want_labels, want_pairs = trial_list.join_with_pairs(scores)
    assert np.array_equal(joined.scores, want_scores)
    assert np.array_equal(joined.labels, want_labels)
    names = np.asarray(joined.names, dtype=object)
    assert list(zip(names[joined.first], names[joined.second])) == want_pairs
    assert summarize(joined.scores, joined.labels)["num_trials"] == len(pairs)
    # another layout (tabs, CRLF) goes through the plain reader, with the same result
    other = tmp_path / "scores_tabs"
    other.write_bytes((tmp_path / "scores").read_bytes().replace(b" ", b"\t")
                      .replace(b"\n", b"\r\n"))
    assert read_pair_table(str(other), labels=False) is None
    tabbed = trial_list.join_codes(str(other))
    assert np.array_equal(tabbed.scores, want_scores)
    # a subgroup list: its mask over the joined trials
    subset = _write(tmp_path / "sub", [f"{a} {b} {lab}" for (a, b), lab in
                                       zip(pairs, labels) if a.startswith("spk0")])
    mask = trial_list.subset_mask(joined, trial_list.subset(subset))
    assert list(mask) == [p[0].startswith("spk0") for p in want_pairs]


@pytest.mark.parametrize("line,message", [
    ("u1 u3 0.5", "score for 'u1 u3' which is not a trial"),
    ("u1 u2 nan", "NaN/inf"),
    ("u1 u2 0.5 x", "expected at most 3 fields"),
])
def test_array_join_errors_are_the_plain_readers(tmp_path, line, message):
    trials = _write(tmp_path / "trials", ["u1 u2 target", "u2 u3 nontarget"])
    scores = _write(tmp_path / "scores", ["u2 u3 0.25", "u1 u2 0.5", line])
    with pytest.raises(TableError, match=message) as err:
        TrialList(trials).join_codes(scores)
    assert f"{scores}:3:" in str(err.value)       # the file and line


def test_duplicate_trial_is_the_plain_readers_error(tmp_path):
    trials = _write(tmp_path / "trials", ["u1 u2 target", "u2 u3 nontarget", "u1 u2 target"])
    with pytest.raises(TableError, match="duplicate trial 'u1 u2' .first on line 1"):
        TrialList(trials)


def test_summarize_with_one_sort_equals_each_metric_sorting_itself():
    rng = np.random.default_rng(5)
    labels = (rng.random(2000) < 0.1).astype(np.int64)
    scores = np.round(rng.normal(2.0 * labels, 1.0), 1)        # many ties
    got = summarize(scores, labels)
    target = labels.astype(bool)
    assert got["eer"] == compute_eer(scores[target], scores[~target])[0]
    assert got["min_dcf_0.01"] == compute_min_dcf(scores, labels, 0.01)[0]
    assert got["min_dcf_0.001"] == compute_min_dcf(scores, labels, 0.001)[0]


def test_det_thinning_keeps_the_first_point_of_each_cell():
    rng = np.random.default_rng(6)
    labels = (rng.random(50000) < 0.05).astype(int)
    scores = np.round(rng.normal(2.0 * labels, 1.0), 2)
    fnrs, fprs, _ = error_rates(scores, labels)
    x = ndtri(np.clip(fprs, det._CLIP, 1 - det._CLIP))
    y = ndtri(np.clip(fnrs, det._CLIP, 1 - det._CLIP))
    cells = np.stack([np.round(x / det._GRID), np.round(y / det._GRID)], axis=1)
    keep = np.sort(np.unique(cells, axis=0, return_index=True)[1])
    got_x, got_y = det.det_points(scores, labels)
    assert np.array_equal(got_x, x[keep]) and np.array_equal(got_y, y[keep])
    assert 100 < keep.size < labels.size


def test_llr_files_and_qmf_features_as_the_per_trial_code(tmp_path):
    rng = np.random.default_rng(7)
    utts = [f"u{i:03d}" for i in range(30)]
    pairs = [(a, b) for i, a in enumerate(utts) for b in utts[i + 1:]]
    values = rng.normal(size=len(pairs)) * 10.0 ** rng.integers(-6, 6, len(pairs))
    first = _write(tmp_path / "a", [f"{a} {b} {v:.8g}" for (a, b), v in zip(pairs, values)])
    shuffled = rng.permutation(len(pairs))
    second = _write(tmp_path / "b", [f"{pairs[i][0]} {pairs[i][1]} {values[i] / 3:.8g}"
                                     for i in shuffled])
    table, x = calibrate_cli.aligned_table([first, second])
    want_pairs, want_x = calibrate_cli.aligned_scores([first, second])
    assert np.array_equal(x, want_x)
    llr = x @ np.array([1.5, -2.0]) + 0.25
    table.write(str(tmp_path / "llr"), llr)
    assert (tmp_path / "llr").read_text() == "".join(
        f"{a} {b} {s:.8g}\n" for (a, b), s in zip(want_pairs, llr.tolist()))
    durations = {u: float(d) for u, d in zip(utts, rng.uniform(0.0, 9.0, len(utts)))}
    quality = {"dur": durations, "mag": {u: 2.0 * d for u, d in durations.items()}}
    got = code_features(["dur", "mag"], quality, quality, table.vocab.names, table.first,
                        table.second)
    assert np.array_equal(got, pair_features(["dur", "mag"], quality, quality, want_pairs))
    del quality["mag"][utts[3]]
    with pytest.raises(ValueError, match=f"utterance '{utts[3]}' has no utt2magnitude"):
        code_features(["dur", "mag"], quality, quality, table.vocab.names, table.first,
                      table.second)
    assert read_score_lines(first)[pairs[0]][0] == float(f"{values[0]:.8g}")


def test_plain_and_array_bootstrap_agree_through_compute_metrics(tmp_path):
    """The CLI's intervals are those of the generic bootstrap with Kaldi's metrics."""
    from pyutils.cli import compute_metrics
    rng = np.random.default_rng(8)
    utts = [(f"s{s}_{u}", f"s{s}") for s in range(6) for u in range(4)]
    pairs = [(a, b) for i, a in enumerate(utts) for b in utts[i + 1:]]
    labels = np.array([a[1] == b[1] for a, b in pairs], dtype=np.int64)
    scores = np.round(rng.normal(2.0 * labels, 1.0), 2)
    trials = _write(tmp_path / "trials", [f"{a[0]} {b[0]} {'target' if t else 'nontarget'}"
                                          for (a, b), t in zip(pairs, labels)])
    score_file = _write(tmp_path / "scores", [f"{a[0]} {b[0]} {s:.8g}"
                                              for (a, b), s in zip(pairs, scores)])
    utt2spk = _write(tmp_path / "utt2spk", [f"{u} {s}" for u, s in utts])
    assert compute_metrics.main(["--trials", trials, "--scores", f"x={score_file}",
                                 "--det-png", str(tmp_path / "det.png"), "--results-md",
                                 str(tmp_path / "r.md"), "--system", "s", "--utt2spk",
                                 utt2spk, "--bootstrap", "50"]) == 0
    import json
    row = json.loads((tmp_path / "r.json").read_text())[0]
    speakers = [(a[1], b[1]) for a, b in pairs]
    assert row["eer_ci"] == list(speaker_bootstrap_ci(_eer, scores, labels, speakers, 50))
    assert row["min_dcf_0.01_ci"] == list(speaker_bootstrap_ci(partial(_min_dcf), scores,
                                                               labels, speakers, 50))


def test_blocks_with_new_ids_later_in_the_file(tmp_path, monkeypatch):
    """Ids first seen in a later block get new codes; each block is looked up or grown."""
    from pyutils.metrics import pair_table
    monkeypatch.setattr(pair_table, "_BLOCK_LINES", 7)
    utts = [f"utt{i:02d}" for i in range(12)]
    pairs = [(a, b) for i, a in enumerate(utts) for b in utts[i + 1:]]
    trials = _write(tmp_path / "trials", [f"{a} {b} {'target' if a[-1] == b[-1] else 'nontarget'}"
                                          for a, b in pairs])
    table = read_pair_table(trials, labels=True)
    names = np.asarray(table.vocab.names, dtype=object)
    assert list(zip(names[table.first], names[table.second])) == pairs
    assert sorted(table.vocab.names) == utts
    scores = _write(tmp_path / "scores", [f"{a} {b} {i / 7:.8g}" for i, (a, b) in
                                          enumerate(reversed(pairs))])
    joined = TrialList(trials).join_codes(scores)
    assert np.array_equal(joined.scores, TrialList(trials).join_with_pairs(scores)[0])
    unknown = _write(tmp_path / "unknown", [f"{a} {b} 0.5" for a, b in pairs[:-1]]
                     + ["utt00 zzz 0.5"])
    assert read_pair_table(unknown, labels=False, vocab=table.vocab) is None
