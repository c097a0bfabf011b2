"""Speaker models (mean + count), their store, and PLDA multi-enrolment scoring (Kaldi)."""
import os

import kaldiio
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from pyutils.backends.cosine import CosineBackend
from pyutils.backends.plda import Plda, PldaBackend
from pyutils.backends.speakers import (Speaker, read_store, score_models, speaker_model,
                                       validate_name, write_store)
from pyutils.extraction.speaker_means import speaker_means


def kaldi_llr(plda, enroll_mean_reduced, n, test_reduced):
    """ivector-plda-scoring --num-utts=n from plda.cc, written from its definitions:
    TransformIvector(n) scales y = T (x - mu) so that sum y^2 / (psi + 1/n) = dim; the
    LLR is log N(t; n psi/(n psi + 1) u, I + psi/(n psi + 1)) - log N(t; 0, I + psi)."""
    def transform(x, count):
        y = plda.transform @ (x - plda.mean)
        return y * np.sqrt(plda.dim / np.sum(y ** 2 / (plda.psi + 1.0 / count)))
    u, t, psi = transform(enroll_mean_reduced, n), transform(test_reduced, 1), plda.psi
    same = multivariate_normal(n * psi / (n * psi + 1) * u, np.diag(1 + psi / (n * psi + 1)))
    diff = multivariate_normal(np.zeros_like(psi), np.diag(1 + psi))
    return same.logpdf(t) - diff.logpdf(t)


def backend(seed=0, dim=6, lda_dim=4):
    rng = np.random.default_rng(seed)
    lda = np.hstack([rng.standard_normal((lda_dim, dim)), rng.standard_normal((lda_dim, 1))])
    A = rng.standard_normal((lda_dim, lda_dim))
    plda = Plda.from_covariances(rng.standard_normal(lda_dim) * 0.1, A @ A.T + np.eye(lda_dim),
                                 np.diag(rng.uniform(0.5, 5, lda_dim)))
    return PldaBackend(rng.standard_normal(dim), lda, plda)


def test_plda_multi_enrolment_scores_match_kaldis_formula():
    b = backend()
    rng = np.random.default_rng(1)
    clips = rng.standard_normal((3, 6)) + 1
    tests = rng.standard_normal((4, 6))
    mean, count = speaker_model(list(clips))
    assert count == 3
    got = score_models(b, mean[None], [count], tests)
    reduce = lambda x: (lambda y: y * np.sqrt(len(y)) / np.linalg.norm(y))(
        b.lda[:, :-1] @ (x - b.mean) + b.lda[:, -1])
    want = [kaldi_llr(b.plda, reduce(mean.astype(np.float64)), 3, reduce(t)) for t in tests]
    assert np.allclose(got[0], want, rtol=1e-9, atol=1e-9)
    # one utterance: the recipe's per-utterance PLDA score
    one = score_models(b, clips[:1], [1], tests)
    assert np.allclose(one[0], b.score(b.prepare(clips[:1].repeat(4, 0)), b.prepare(tests)))
    # more utterances of the same mean: a different (more confident) score
    assert not np.allclose(got[0], score_models(b, mean[None], [1], tests)[0])


def test_cosine_scores_the_renormalised_mean():
    b = CosineBackend(np.array([1.0, 0.0, 0.0]))
    clips = np.array([[3.0, 2.0, 0.0], [1.0, 0.0, 2.0]])
    mean, _ = speaker_model(list(clips))
    test = np.array([[2.0, 1.0, 1.0]])
    centred = mean.astype(np.float64) - [1, 0, 0]
    want = centred @ (test[0] - [1, 0, 0]) / np.linalg.norm(centred) / np.linalg.norm(test[0] - [1, 0, 0])
    assert score_models(b, mean[None], [2], test)[0, 0] == pytest.approx(want)


def test_store_keeps_mean_and_count_exactly_and_kaldi_reads_it(tmp_path):
    rng = np.random.default_rng(2)
    clips = rng.standard_normal((5, 8)).astype(np.float32)
    mean, count = speaker_model(list(clips))
    assert np.array_equal(mean, clips.astype(np.float64).mean(axis=0).astype(np.float32))
    store = tmp_path / "enrolled"
    write_store(str(store), {"alice": Speaker(mean, count, ["a1", "a2"], {"dur": 12.5, "mag": 3.0}),
                             "bob": Speaker(clips[0], 1)})
    back = read_store(str(store))
    assert sorted(back) == ["alice", "bob"]
    assert np.array_equal(back["alice"].mean, mean) and back["alice"].count == 5
    assert back["alice"].utts == ["a1", "a2"] and back["alice"].quality == {"dur": 12.5, "mag": 3.0}
    # Kaldi tools: the scp points into the ark; num_utts.ark is "spk count" text
    table = dict(kaldiio.load_scp(str(store / "spk_xvector.scp")))
    assert np.array_equal(table["alice"], mean)
    assert (store / "num_utts.ark").read_text() == "alice 5\nbob 1\n"
    # replacing the store leaves no temporary directories
    write_store(str(store), {"bob": Speaker(clips[1], 1)})
    assert sorted(read_store(str(store))) == ["bob"]
    assert sorted(os.listdir(tmp_path)) == ["enrolled"]
    # an update killed between its two renames: the old store is back on the next read
    os.replace(store, str(store) + ".old-123")
    assert sorted(read_store(str(store))) == ["bob"] and sorted(os.listdir(tmp_path)) == ["enrolled"]


def test_recipe_speaker_means_use_the_same_model_and_format(tmp_path):
    from pyutils.utils.arkio import write_scp_dict
    rng = np.random.default_rng(3)
    vectors = {f"u{i}": rng.standard_normal(4).astype(np.float32) for i in range(3)}
    write_scp_dict(str(tmp_path / "xvector.ark"), str(tmp_path / "xvector.scp"), vectors)
    (tmp_path / "spk2utt").write_text("s1 u0 u1\ns2 u2\n")
    speaker_means(str(tmp_path / "spk2utt"), str(tmp_path / "xvector.scp"), str(tmp_path))
    store = read_store(str(tmp_path))
    assert store["s1"].count == 2 and np.array_equal(
        store["s1"].mean, speaker_model([vectors["u0"], vectors["u1"]])[0])


def test_names_and_empty_models_are_refused():
    with pytest.raises(ValueError, match="whitespace"):
        validate_name("a b")
    with pytest.raises(ValueError, match="at least one embedding"):
        speaker_model([])


def test_recipe_scores_speaker_model_trials_with_their_counts(tmp_path):
    """score_trials --enroll-num-utts: the utt1 side are spk_xvector means scored with
    num_utts.ark, the same numbers as score_models (what sv verify --speaker uses)."""
    from pyutils.cli import score_trials
    from pyutils.backends.plda import write_matrix, write_vector
    from pyutils.utils.arkio import write_scp_dict
    b = backend(seed=4)
    bdir = tmp_path / "backend"
    bdir.mkdir()
    write_vector(str(bdir / "mean.vec"), b.mean)
    write_matrix(str(bdir / "lda.mat"), b.lda)
    b.plda.save(str(bdir / "plda"))
    rng = np.random.default_rng(5)
    models = {"s1": rng.standard_normal(6).astype(np.float32),
              "s2": rng.standard_normal(6).astype(np.float32)}
    tests = {f"t{i}": rng.standard_normal(6).astype(np.float32) for i in range(3)}
    write_scp_dict(str(tmp_path / "spk.ark"), str(tmp_path / "spk.scp"), models)
    write_scp_dict(str(tmp_path / "t.ark"), str(tmp_path / "t.scp"), tests)
    (tmp_path / "num_utts.ark").write_text("s1 4\ns2 1\n")
    (tmp_path / "trials").write_text("s2 t1 target\ns1 t0 nontarget\ns1 t2 target\n")
    assert score_trials.main(["--backend", "plda", "--backend-dir", str(bdir), "--enroll-scp",
                              str(tmp_path / "spk.scp"), "--test-scp", str(tmp_path / "t.scp"),
                              "--trials", str(tmp_path / "trials"), "--out",
                              str(tmp_path / "scores"), "--enroll-num-utts",
                              str(tmp_path / "num_utts.ark")]) == 0
    lines = [l.split() for l in open(tmp_path / "scores")]
    assert [l[:2] for l in lines] == [["s2", "t1"], ["s1", "t0"], ["s1", "t2"]]
    loaded = PldaBackend.from_dir(str(bdir))
    for (spk, utt, value), n in zip(lines, (1, 4, 4)):
        want = score_models(loaded, models[spk][None], [n], tests[utt][None])[0, 0]
        assert float(value) == pytest.approx(want, rel=1e-7)
    assert float(lines[1][2]) != pytest.approx(
        score_models(loaded, models["s1"][None], [1], tests["t0"][None])[0, 0], rel=1e-3)
