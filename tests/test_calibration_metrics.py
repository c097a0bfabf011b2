"""Cllr, minCllr (PAV), actual DCF, prior-weighted calibration and the speaker bootstrap."""
import math

import numpy as np
import pytest

from pyutils.backends.calibration import LinearCalibration, load_calibration, save_calibration
from pyutils.metrics.bootstrap import replicate_weights, speaker_bootstrap_ci
from pyutils.metrics.cllr import actual_dcf, bayes_threshold, cllr, min_cllr
from pyutils.metrics.eer import compute_eer


def test_cllr_hand_computed():
    # LLR 0 everywhere costs exactly 1 bit.
    assert cllr([0.0, 0.0, 0.0], [1, 0, 0]) == pytest.approx(1.0)
    # tar llr ln3: log2(1+1/3); non llr -ln3: log2(1+1/3) -> 0.5*(2*log2(4/3)).
    assert cllr([math.log(3), -math.log(3)], [1, 0]) == pytest.approx(math.log2(4 / 3))
    # One target at +1, two non-targets at 0 and -2.
    expected = 0.5 * (math.log2(1 + math.exp(-1))
                      + (math.log2(2) + math.log2(1 + math.exp(-2))) / 2)
    assert cllr([1.0, 0.0, -2.0], [1, 0, 0]) == pytest.approx(expected)


def test_min_cllr_pav_hand_computed():
    # Perfectly separated scores: PAV gives posteriors 1/0, LLRs +-inf, minCllr 0.
    assert min_cllr([5.0, 4.0, -1.0, -3.0], [1, 1, 0, 0]) == pytest.approx(0.0)
    # Scores (labels) 1(t) 2(n) 3(t) 4(n): PAV pools all to 0.5 = prior -> LLR 0 -> 1 bit.
    assert min_cllr([1.0, 2.0, 3.0, 4.0], [1, 0, 1, 0]) == pytest.approx(1.0)
    # 1(n) 2(t) 3(n) 4(t): pools {1}=0, {2,3}=0.5, {4}=1: middle pair costs 1 bit each.
    # tar: 4 -> 0, 2 -> 1 bit; non: 1 -> 0, 3 -> 1 bit -> 0.5*(0.5+0.5) = 0.5.
    assert min_cllr([1.0, 2.0, 3.0, 4.0], [0, 1, 0, 1]) == pytest.approx(0.5)
    # minCllr never exceeds Cllr and is invariant to a monotonic rescaling.
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    scores = rng.normal(2.0 * labels, 1.0)
    assert min_cllr(scores, labels) <= cllr(scores, labels)
    assert min_cllr(3 * scores + 7, labels) == pytest.approx(min_cllr(scores, labels))


def test_actual_dcf_hand_computed():
    assert bayes_threshold(0.01) == pytest.approx(math.log(99))
    # p=0.5: threshold 0; tar [1, -1] -> one miss (0.5); non [-2, 0.5] -> one fa (0.5).
    # cost 0.5*0.5 + 0.5*0.5 = 0.5, / c_def 0.5 = 1.0.
    assert actual_dcf([1, -1, -2, 0.5], [1, 1, 0, 0], 0.5) == pytest.approx(1.0)
    # p=0.01: threshold ln 99 = 4.595; tar [5, 1] -> miss 0.5; non [-2, 0.5] -> fa 0.
    # (0.01*0.5)/0.01 = 0.5.
    assert actual_dcf([5, 1, -2, 0.5], [1, 1, 0, 0], 0.01) == pytest.approx(0.5)


def _prior_weighted_cost(llr, labels, prior):
    off = math.log(prior / (1 - prior))
    tar, non = llr[labels == 1], llr[labels == 0]
    return (prior * np.mean(np.logaddexp(0, -(tar + off)))
            + (1 - prior) * np.mean(np.logaddexp(0, non + off)))


def test_calibration_recovers_known_llr_map():
    # Scores whose true LLR is known: tar ~ N(m, 1), non ~ N(0, 1) give
    # llr(s) = m*s - m^2/2.  Raw scores are a shifted, scaled version.
    rng = np.random.default_rng(1)
    m = 2.0
    tar, non = rng.normal(m, 1, 20000), rng.normal(0, 1, 60000)
    raw = np.concatenate([tar, non]) * 0.25 + 3.0  # llr = 4m*(raw-3) - m^2/2
    labels = np.r_[np.ones(len(tar)), np.zeros(len(non))]
    for prior in (0.5, 0.01):
        cal = LinearCalibration.fit(raw, labels, prior=prior)
        assert cal.weights[0] == pytest.approx(4 * m, rel=0.05)
        assert cal.bias == pytest.approx(-12 * m - m * m / 2, rel=0.05)
    # The fit is the minimum of the prior-weighted objective (not plain LR with counts).
    cal = LinearCalibration.fit(raw, labels, prior=0.5)
    best = _prior_weighted_cost(cal(raw), labels, 0.5)
    for dw, db in ((0.1, 0), (-0.1, 0), (0, 0.1), (0, -0.1)):
        moved = (raw * (cal.weights[0] + dw) + cal.bias + db)
        assert _prior_weighted_cost(moved, labels, 0.5) > best
    assert cllr(cal(raw), labels) == pytest.approx(min_cllr(raw, labels), abs=0.01)


def test_calibration_fusion_and_roundtrip(tmp_path):
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 3000)
    a = rng.normal(2 * labels, 1)
    b = rng.normal(2 * labels, 1) * 10  # same information, other scale
    fused = LinearCalibration.fit(np.c_[a, b], labels)
    assert fused.weights[0] == pytest.approx(10 * fused.weights[1], rel=0.25)
    assert cllr(fused(np.c_[a, b]), labels) < cllr(LinearCalibration.fit(a, labels)(a), labels)
    fused.save(str(tmp_path / "cal.json"))
    again = LinearCalibration.load(str(tmp_path / "cal.json"))
    np.testing.assert_allclose(again(np.c_[a, b]), fused(np.c_[a, b]))
    with pytest.raises(ValueError, match="both target"):
        LinearCalibration.fit([1.0, 2.0], [1, 1])


def _simulate(rng, num_speakers, trials_per_speaker):
    """Speaker effects make a speaker's trials dependent."""
    spk = np.repeat(np.arange(num_speakers), trials_per_speaker)
    offset = rng.normal(0, 0.7, num_speakers)[spk]
    labels = (rng.random(len(spk)) < 0.3).astype(int)
    scores = rng.normal(2.0 * labels, 1.0) + offset * labels
    return scores, labels, spk.astype(str)


def _eer(scores, labels):
    return compute_eer(scores[labels == 1], scores[labels == 0])[0]


def test_save_load_calibration_keys_and_roundtrip(tmp_path):
    import json
    cal = LinearCalibration([2.5], -1.25, 0.01)
    path = tmp_path / "cosine_asnorm.json"
    save_calibration(str(path), cal, {"eer": 0.3, "bayes_p0.01_llr": 4.59512},
                     backend="cosine_asnorm", trained_on="trials_cal")
    data = json.loads(path.read_text())
    assert data["slope"] == 2.5 and data["offset"] == -1.25 and data["prior"] == 0.01
    assert data["thresholds"] == {"eer": 0.3, "bayes_p0.01_llr": 4.59512}
    assert data["backend"] == "cosine_asnorm" and data["trained_on"] == "trials_cal"
    back, thresholds, info = load_calibration(str(path))
    assert back.weights == [2.5] and back.bias == -1.25 and back.prior == 0.01
    assert thresholds == {"eer": 0.3, "bayes_p0.01_llr": 4.59512}
    assert info == {"backend": "cosine_asnorm", "trained_on": "trials_cal"}
    assert back([1.0, 0.0]) == pytest.approx([1.25, -1.25])
    with pytest.raises(ValueError, match="reserved"):
        save_calibration(str(path), cal, {}, slope=3)
    path.write_text('{"slope": 1}')
    with pytest.raises(ValueError, match="bad calibration file"):
        load_calibration(str(path))


def test_speaker_bootstrap_coverage_about_95_percent():
    rng = np.random.default_rng(3)
    big = _simulate(rng, 20000, 20)
    true_eer = _eer(big[0], big[1])
    runs, covered = 200, 0
    for _ in range(runs):
        scores, labels, spk = _simulate(rng, 30, 20)
        low, high = speaker_bootstrap_ci(_eer, scores, labels, spk, num_replicates=200)
        covered += low <= true_eer <= high
    assert 0.88 <= covered / runs <= 0.99, covered / runs


def _eer_of_sorted(scores, labels):
    """EER of trials already in ascending score order (no sort: the coverage test
    calls it 40,000 times).  A replicate keeps the trials in their list order, so a
    list sorted by score gives sorted replicates; checked, not assumed."""
    assert scores[0] <= scores[-1] and np.all(scores[1:] >= scores[:-1])
    fnr = np.cumsum(labels) / labels.sum()
    fpr = 1 - np.cumsum(1 - labels) / (len(labels) - labels.sum())
    i = np.argmin(np.abs(fnr - fpr))
    return (fnr[i] + fpr[i]) / 2


# An all-pairs list (asc-v1, so762-v1): every pair of 48 utterances, 16 speakers x 3.
# A non-target score is u_a + u_b (both speakers' effects), a target score mu + v_a,
# plus an utterance effect per side and noise.  Target scores are N(mu, 1 + SV^2 + 2 SW^2),
# non-target ones N(0, 1 + 2 SU^2 + 2 SW^2) over the speaker population, so its EER is
# Phi(-mu / (sd_target + sd_nontarget)): the truth each interval should cover.
MU, SU, SV, SW = 3.0, 1.0, 0.2, 0.2


def _all_pairs_population(rng, num_speakers=16, utts_per_speaker=3):
    spk = np.repeat(np.arange(num_speakers), utts_per_speaker)
    u, v = rng.normal(0, SU, num_speakers), rng.normal(0, SV, num_speakers)
    w = rng.normal(0, SW, len(spk))
    i, j = np.triu_indices(len(spk), 1)
    a, b = spk[i], spk[j]
    same = a == b
    scores = np.where(same, MU + v[a], u[a] + u[b]) + w[i] + w[j] + rng.normal(size=len(i))
    order = np.argsort(scores)
    return scores[order], same[order].astype(int), np.stack([a, b], axis=1)[order]


def test_speaker_bootstrap_covers_the_truth_on_all_pairs_lists():
    """Resampling both sides' speakers covers the population EER at about 95 %;
    the old scheme (each trial its first utterance's speaker) covered it in 83.5 %
    of the same 200 populations: it misses the dependence through the second side."""
    sd_target, sd_nontarget = math.sqrt(1 + SV ** 2 + 2 * SW ** 2), math.sqrt(
        1 + 2 * SU ** 2 + 2 * SW ** 2)
    true_eer = 0.5 * math.erfc(MU / (sd_target + sd_nontarget) / math.sqrt(2))
    rng = np.random.default_rng(1)
    runs, covered = 200, 0
    for _ in range(runs):
        scores, labels, pairs = _all_pairs_population(rng)
        low, high = speaker_bootstrap_ci(_eer_of_sorted, scores, labels, pairs, num_replicates=200)
        covered += low <= true_eer <= high
    assert 0.88 <= covered / runs <= 0.99, covered / runs


def test_speaker_bootstrap_replicate_weights():
    """Speakers drawn 2, 0 and 3 times: a trial between two of them counts
    k_a * k_b times, a trial within one k_a times; one speaker per trial = both sides."""
    counts = np.array([2, 0, 3])
    side1, side2 = np.array([0, 0, 1, 2, 2]), np.array([2, 0, 2, 0, 2])
    assert replicate_weights(counts, side1, side2).tolist() == [6, 2, 0, 6, 3]
    rng = np.random.default_rng(7)
    scores, labels, spk = _simulate(rng, 8, 20)
    assert speaker_bootstrap_ci(_eer, scores, labels, spk, num_replicates=50) == \
        speaker_bootstrap_ci(_eer, scores, labels, np.stack([spk, spk], 1), num_replicates=50)
    with pytest.raises(ValueError, match="one speaker or one"):
        speaker_bootstrap_ci(_eer, scores, labels, np.stack([spk, spk, spk], 1))


def test_speaker_bootstrap_fixed_seed_and_errors():
    rng = np.random.default_rng(4)
    scores, labels, spk = _simulate(rng, 10, 20)
    first = speaker_bootstrap_ci(_eer, scores, labels, spk, num_replicates=100)
    assert first == speaker_bootstrap_ci(_eer, scores, labels, spk, num_replicates=100)
    assert first[0] <= _eer(scores, labels) <= first[1]
    with pytest.raises(ValueError, match="at least 2 speakers"):
        speaker_bootstrap_ci(_eer, scores, labels, ["a"] * len(scores))


def test_compute_metrics_cli_adds_speaker_bootstrap_ci(tmp_path):
    import json

    from pyutils.cli import compute_metrics
    rng = np.random.default_rng(5)
    scores, labels, spk = _simulate(rng, 6, 30)
    utts = [f"s{s}-u{i}" for i, s in enumerate(spk)]
    (tmp_path / "trials").write_text("".join(
        f"{u} t{i} {'target' if l else 'nontarget'}\n" for i, (u, l) in enumerate(zip(utts, labels))))
    (tmp_path / "scores").write_text("".join(
        f"{u} t{i} {s:.6f}\n" for i, (u, s) in enumerate(zip(utts, scores))))
    (tmp_path / "utt2spk").write_text("".join(f"{u} s{s}\n" for u, s in zip(utts, spk)))
    md = tmp_path / "results.md"
    assert compute_metrics.main(["--trials", str(tmp_path / "trials"), "--scores",
                                 f"cosine={tmp_path / 'scores'}", "--det-png",
                                 str(tmp_path / "det.png"), "--results-md", str(md),
                                 "--system", "x", "--utt2spk", str(tmp_path / "utt2spk"),
                                 "--bootstrap", "50"]) == 0
    row = json.loads((tmp_path / "results.json").read_text())[0]
    low, high = row["eer_ci"]
    assert low <= row["eer"] <= high and low < high
    assert row["min_cllr"] == pytest.approx(min_cllr(np.round(scores, 6), labels))
    assert "95% CI" in md.read_text()


def test_compute_metrics_cli_resamples_both_sides_speakers(tmp_path):
    """On an all-pairs list the CLI's intervals are those of (speaker of utt1,
    speaker of utt2) pairs; they were those of utt1's speaker alone."""
    import json

    from pyutils.cli import compute_metrics
    rng = np.random.default_rng(8)
    utts = [f"s{s}-u{i}" for s in range(8) for i in range(3)]
    spk = {u: u.split("-")[0] for u in utts}
    pairs = [(a, b) for n, a in enumerate(utts) for b in utts[n + 1:]]
    labels = np.array([spk[a] == spk[b] for a, b in pairs], dtype=int)
    effect = {s: rng.normal() for s in sorted(set(spk.values()))}   # not set order (hash seed)
    scores = np.round(np.array([2.0 * lab + effect[spk[a]] + effect[spk[b]] for (a, b), lab
                                in zip(pairs, labels)]) + rng.normal(size=len(pairs)), 6)
    (tmp_path / "trials").write_text("".join(
        f"{a} {b} {'target' if lab else 'nontarget'}\n" for (a, b), lab in zip(pairs, labels)))
    (tmp_path / "scores").write_text("".join(f"{a} {b} {x:.6f}\n"
                                             for (a, b), x in zip(pairs, scores)))
    (tmp_path / "utt2spk").write_text("".join(f"{u} {spk[u]}\n" for u in utts))
    assert compute_metrics.main(["--trials", str(tmp_path / "trials"), "--scores",
                                 f"cosine={tmp_path / 'scores'}", "--det-png",
                                 str(tmp_path / "det.png"), "--results-md",
                                 str(tmp_path / "results.md"), "--system", "x", "--utt2spk",
                                 str(tmp_path / "utt2spk"), "--bootstrap", "50"]) == 0
    row = json.loads((tmp_path / "results.json").read_text())[0]
    both = [(spk[a], spk[b]) for a, b in pairs]
    assert row["eer_ci"] == list(speaker_bootstrap_ci(_eer, scores, labels, both, 50))
    first_only = speaker_bootstrap_ci(_eer, scores, labels, [s for s, _ in both], 50)
    assert row["eer_ci"] != list(first_only)


def test_compute_metrics_cli_cllr_and_actual_dcf_of_llrs(tmp_path, capsys):
    import json

    from pyutils.cli import compute_metrics
    rng = np.random.default_rng(6)
    scores, labels, spk = _simulate(rng, 6, 30)
    pairs = [(f"s{s}-u{i}", f"t{i}") for i, s in enumerate(spk)]
    (tmp_path / "trials").write_text("".join(
        f"{a} {b} {'target' if l else 'nontarget'}\n" for (a, b), l in zip(pairs, labels)))
    (tmp_path / "scores").write_text("".join(f"{a} {b} {s:.6f}\n"
                                             for (a, b), s in zip(pairs, scores)))
    llrs = 3.0 * np.round(scores, 6) - 1.0
    (tmp_path / "llr").write_text("".join(f"{a} {b} {x!r}\n"
                                          for (a, b), x in zip(pairs, llrs.tolist())))
    md = tmp_path / "results.md"
    args = ["--trials", str(tmp_path / "trials"), "--scores", f"cosine={tmp_path / 'scores'}",
            f"plda={tmp_path / 'scores'}", "--det-png", str(tmp_path / "det.png"),
            "--results-md", str(md), "--system", "x"]
    assert compute_metrics.main(args + ["--llr", f"cosine={tmp_path / 'llr'}"]) == 0
    rows = json.loads((tmp_path / "results.json").read_text())
    assert rows[0]["cllr"] == pytest.approx(cllr(llrs, labels))
    assert rows[0]["act_dcf_0.01"] == pytest.approx(actual_dcf(llrs, labels, 0.01))
    assert "cllr" not in rows[1] and rows[1]["min_cllr"] == pytest.approx(rows[0]["min_cllr"])
    assert rows[0]["scores_path"] == str(tmp_path / "scores")
    text = md.read_text()
    assert f"| x | cosine | - | - | {rows[0]['min_cllr']:.3f} | {rows[0]['cllr']:.3f} | " in text
    assert f"| x | plda | - | - | {rows[1]['min_cllr']:.3f} | - | - |" in text
    assert compute_metrics.main(args + ["--llr", f"lsa={tmp_path / 'llr'}"]) == 1
    assert "--llr name 'lsa' is not a --scores name" in capsys.readouterr().err
