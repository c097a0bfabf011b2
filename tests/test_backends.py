"""LDA, PLDA, cosine, Kaldi text I/O, the streaming scorer and the backend CLIs."""
import os
import subprocess
import sys

import kaldiio
import numpy as np
import pytest
from scipy.linalg import eigh
from scipy.stats import multivariate_normal

from pyutils.backends.cosine import CosineBackend, cosine_similarity
from pyutils.backends.lda import apply_transform, compute_lda
from pyutils.backends.plda import (Plda, PldaBackend, length_normalize, read_matrix,
                                   read_vector, subtract_mean, train_plda, write_matrix,
                                   write_vector)
from pyutils.backends.scoring import score_trials
from pyutils.cli import score_trials as score_cli
from pyutils.cli import train_backend
from pyutils.metrics.eer import compute_eer
from pyutils.utils.arkio import write_scp_dict
from pyutils.utils.fileio import TableError
from pyutils.utils.markers import is_done

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def random_cov(rng, eigenvalues):
    q, _ = np.linalg.qr(rng.normal(size=(len(eigenvalues),) * 2))
    return (q * eigenvalues) @ q.T


def two_covariance_data(rng, mean, between, within, num_spk, min_utts=2, max_utts=8):
    """x = mean + y_spk + e with y ~ N(0, between), e ~ N(0, within)."""
    counts = rng.integers(min_utts, max_utts + 1, num_spk)
    labels = np.repeat(np.arange(num_spk), counts)
    zeros = np.zeros(len(mean))
    speakers = rng.multivariate_normal(zeros, between, num_spk)
    return mean + speakers[labels] + rng.multivariate_normal(zeros, within, labels.size), labels


def kaldi_lda_stats(X, labels):
    """Reference ivector-compute-lda covariances, with an explicit loop over speakers."""
    X = X - X.mean(axis=0)
    total = X.T @ X / len(X)
    between = sum(np.sum(labels == s) * np.outer(X[labels == s].mean(0), X[labels == s].mean(0))
                  for s in np.unique(labels)) / len(X)
    return total, total - between, between


# ---------------------------------------------------------------- LDA

@pytest.fixture(scope="module")
def lda_data():
    rng = np.random.default_rng(0)
    between = random_cov(rng, [5, 3, 1, 0, 0, 0]) + 1e-9 * np.eye(6)
    within = random_cov(rng, [2, 1.5, 1, 0.5, 0.3, 0.2])
    return two_covariance_data(rng, rng.normal(size=6) * 4, between, within, 60, 3, 15)


def test_lda_whitens_within_and_diagonalises_between(lda_data):
    X, labels = lda_data
    lda = compute_lda(X, labels, 3)
    assert lda.shape == (3, 7)
    total, within, between = kaldi_lda_stats(X, labels)
    linear = lda[:, :6]
    np.testing.assert_allclose(linear @ within @ linear.T, np.eye(3), atol=1e-9)
    projected_between = linear @ between @ linear.T
    np.testing.assert_allclose(projected_between, np.diag(np.diag(projected_between)), atol=1e-9)
    reference = eigh(between, within, eigvals_only=True)[::-1][:3]  # generalized eigenproblem
    np.testing.assert_allclose(np.diag(projected_between), reference, rtol=1e-9)
    np.testing.assert_allclose(apply_transform(lda, X).mean(axis=0), 0, atol=1e-9)


def test_lda_total_covariance_factor(lda_data):
    X, labels = lda_data
    linear = compute_lda(X, labels, 2, total_covariance_factor=1.0)[:, :6]
    total, _, _ = kaldi_lda_stats(X, labels)
    np.testing.assert_allclose(linear @ total @ linear.T, np.eye(2), atol=1e-9)


def test_lda_dimension_errors(lda_data):
    X, labels = lda_data
    with pytest.raises(ValueError, match="LDA dim 60 exceeds num_speakers - 1 = 59"):
        compute_lda(np.hstack([X] * 20), labels, 60)
    with pytest.raises(ValueError, match=r"LDA dim 7 must be in 1\.\.6"):
        compute_lda(X, labels, 7)
    with pytest.raises(ValueError, match="one utterance"):
        compute_lda(X[:20], np.arange(20), 2)


def test_apply_transform_linear_and_affine():
    matrix = np.array([[1.0, 2.0, 10.0], [0.0, -1.0, 20.0]])
    x = np.array([[1.0, 1.0], [2.0, 0.0]])
    np.testing.assert_allclose(apply_transform(matrix, x), [[13, 19], [12, 20]])
    np.testing.assert_allclose(apply_transform(matrix[:, :2], x[0]), [3, -1])
    with pytest.raises(ValueError, match="dimension 4 and the transform has 3 columns"):
        apply_transform(matrix, np.ones(4))


# ---------------------------------------------------------------- PLDA

D = 8


@pytest.fixture(scope="module")
def plda_truth():
    rng = np.random.default_rng(1)
    within = random_cov(rng, [6, 4, 2, 1, 0.5, 0.3, 0.2, 0.1])
    between = random_cov(rng, [3, 2, 1.5, 1, 0.8, 0.5, 0.3, 0.2])
    return rng.normal(size=D) * 3, within, between


@pytest.fixture(scope="module")
def trained(plda_truth):
    mean, within, between = plda_truth
    X, labels = two_covariance_data(np.random.default_rng(2), mean, between, within, 3000)
    return train_plda(X, labels, num_em_iters=10), X


@pytest.fixture(scope="module")
def eval_trials(plda_truth):
    """Held-out speakers: one target and one non-target trial per speaker."""
    mean, within, between = plda_truth
    X, labels = two_covariance_data(np.random.default_rng(3), mean, between, within, 400, 2, 2)
    first, second = np.arange(0, len(X), 2), np.arange(1, len(X), 2)
    enroll = np.concatenate([X[first], X[first]])
    test = np.concatenate([X[second], np.roll(X[second], 1, axis=0)])
    return enroll, test, np.repeat([True, False], len(first))


def closed_form_llr(mean, within, between, enroll_mean, num_utts, test):
    """log N([u;x]) - log N(u) - log N(x) for the true two-covariance model,
    where u is the mean of num_utts enrolment utterances."""
    enroll_cov = between + within / num_utts
    joint = np.block([[enroll_cov, between], [between, between + within]])
    return (multivariate_normal(np.r_[mean, mean], joint).logpdf(np.hstack([enroll_mean, test]))
            - multivariate_normal(mean, enroll_cov).logpdf(enroll_mean)
            - multivariate_normal(mean, between + within).logpdf(test))


def test_from_covariances_diagonalises(plda_truth):
    mean, within, between = plda_truth
    plda = Plda.from_covariances(mean, within, between)
    np.testing.assert_allclose(plda.transform @ within @ plda.transform.T, np.eye(D), atol=1e-10)
    np.testing.assert_allclose(plda.transform @ between @ plda.transform.T, np.diag(plda.psi),
                               atol=1e-10)
    assert np.all(np.diff(plda.psi) <= 0)
    np.testing.assert_allclose(plda.within_covariance(), within, atol=1e-10)
    np.testing.assert_allclose(plda.between_covariance(), between, atol=1e-10)


@pytest.mark.parametrize("num_utts", [1, 3])
def test_llr_equals_closed_form_of_true_model(plda_truth, eval_trials, num_utts):
    mean, within, between = plda_truth
    enroll, test, _ = eval_trials
    plda = Plda.from_covariances(mean, within, between)
    e = plda.transform_embeddings(enroll, normalize_length=False)
    t = plda.transform_embeddings(test, normalize_length=False)
    expected = closed_form_llr(mean, within, between, enroll, num_utts, test)
    np.testing.assert_allclose(plda.log_likelihood_ratio(e, num_utts, t), expected, atol=1e-8)
    per_row = np.where(np.arange(len(e)) % 2 == 0, 1, num_utts)
    got = plda.log_likelihood_ratio(e, per_row, t)
    np.testing.assert_allclose(got[1::2], expected[1::2], atol=1e-8)


def test_train_recovers_covariances(plda_truth, trained):
    mean, within, between = plda_truth
    plda, _ = trained
    rel = lambda a, b: np.linalg.norm(a - b) / np.linalg.norm(b)
    assert rel(plda.within_covariance(), within) < 0.03
    assert rel(plda.between_covariance(), between) < 0.12
    assert np.linalg.norm(plda.mean - mean) < 0.2


def test_trained_llr_matches_true_model(plda_truth, trained, eval_trials):
    plda, _ = trained
    enroll, test, _ = eval_trials
    e = plda.transform_embeddings(enroll, normalize_length=False)
    t = plda.transform_embeddings(test, normalize_length=False)
    got = plda.log_likelihood_ratio(e, 1, t)
    expected = closed_form_llr(*plda_truth, enroll, 1, test)
    assert np.corrcoef(got, expected)[0, 1] > 0.999
    assert np.median(np.abs(got - expected)) < 0.05 * np.std(expected)


def test_plda_beats_cosine(trained, eval_trials):
    plda, train_x = trained
    enroll, test, is_target = eval_trials
    plda_scores = plda.log_likelihood_ratio(plda.transform_embeddings(enroll), 1,
                                            plda.transform_embeddings(test))
    mean = train_x.mean(axis=0)
    cos_scores = cosine_similarity(enroll - mean, test - mean)
    plda_eer = compute_eer(plda_scores[is_target], plda_scores[~is_target])[0]
    cos_eer = compute_eer(cos_scores[is_target], cos_scores[~is_target])[0]
    assert plda_eer < cos_eer - 0.05


def test_transform_length_normalisation(trained, eval_trials):
    plda, _ = trained
    enroll = eval_trials[0]
    for n in (1, 4):
        y = plda.transform_embeddings(enroll, num_utts=n)
        np.testing.assert_allclose(np.sum(y ** 2 / (plda.psi + 1.0 / n), axis=1), D)
    y = plda.transform_embeddings(enroll, simple_length_norm=True)
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), np.sqrt(D))


def test_smoothing_adds_between_to_within(plda_truth):
    mean, within, between = plda_truth
    plda = Plda.from_covariances(mean, within, between)
    plda.smooth_within_class_covariance(0.1)
    np.testing.assert_allclose(plda.within_covariance(), within + 0.1 * between, atol=1e-10)
    np.testing.assert_allclose(plda.between_covariance(), between, atol=1e-10)
    with pytest.raises(ValueError, match="smoothing"):
        plda.smooth_within_class_covariance(1.5)


def test_train_needs_repeated_speakers():
    with pytest.raises(ValueError, match="no speakers with multiple utterances"):
        train_plda(np.random.default_rng(0).normal(size=(5, 3)), np.arange(5))


def test_length_normalize_and_subtract_mean():
    X = np.array([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(length_normalize(X), [[3 / 5 * np.sqrt(2), 4 / 5 * np.sqrt(2)], [0, 0]])
    np.testing.assert_allclose(subtract_mean(X), [[1.5, 2.0], [-1.5, -2.0]])
    np.testing.assert_allclose(subtract_mean(X, [1.0, 1.0]), [[2.0, 3.0], [-1.0, -1.0]])


# ---------------------------------------------------------------- Kaldi text I/O

def test_text_round_trip(tmp_path, trained):
    plda, _ = trained
    vector, matrix = np.array([0.1, -2.5e-7, 3.0]), np.random.default_rng(0).normal(size=(3, 4))
    write_vector(str(tmp_path / "v"), vector)
    write_matrix(str(tmp_path / "m"), matrix)
    plda.save(str(tmp_path / "plda"))
    assert (tmp_path / "v").read_text().startswith(" [ 0.1 ")
    assert np.array_equal(read_vector(str(tmp_path / "v")), vector)
    assert np.array_equal(read_matrix(str(tmp_path / "m")), matrix)
    loaded = Plda.load(str(tmp_path / "plda"))
    for name in ("mean", "transform", "psi"):
        assert np.array_equal(getattr(loaded, name), getattr(plda, name))
    assert (tmp_path / "plda").read_text().startswith("<Plda>  [ ")
    assert sorted(os.listdir(tmp_path)) == ["m", "plda", "v"]


def test_reads_kaldi_written_files(tmp_path):
    (tmp_path / "plda").write_text("<Plda>  [ 1 2 ]\n [\n  1 0 \n  0 0.5 ]\n [ 3 1 ]\n</Plda> \n")
    plda = Plda.load(str(tmp_path / "plda"))
    assert plda.transform.tolist() == [[1, 0], [0, 0.5]] and plda.psi.tolist() == [3, 1]
    kaldiio.save_mat(str(tmp_path / "bin.vec"), np.array([1.5, 2.5], dtype=np.float32))
    assert read_vector(str(tmp_path / "bin.vec")).tolist() == [1.5, 2.5]
    (tmp_path / "bad").write_text("<Plda>  [ 1 2 ]\n")
    with pytest.raises(ValueError, match="not a Kaldi text PLDA"):
        Plda.load(str(tmp_path / "bad"))


# ---------------------------------------------------------------- streaming scorer

class RecordingBackend(CosineBackend):
    """Cosine backend that records how many rows each score call receives."""

    def __init__(self):
        super().__init__(mean=np.ones(4))
        self.calls = []

    def score(self, enroll, test):
        self.calls.append(len(enroll))
        return super().score(enroll, test)


@pytest.fixture
def scorer_data(tmp_path):
    rng = np.random.default_rng(5)
    enroll = {f"e{i}": rng.normal(size=4).astype(np.float32) for i in range(9)}
    test = {f"t{i}": rng.normal(size=4).astype(np.float32) for i in range(11)}
    pairs = [(f"e{rng.integers(9)}", f"t{rng.integers(11)}") for _ in range(50)]
    trials = tmp_path / "trials"
    trials.write_text("".join(f"{a} {b} {'target' if i % 3 else 'nontarget'}\n"
                              for i, (a, b) in enumerate(pairs)))
    return enroll, test, pairs, str(trials)


def read_score_file(path):
    rows = [line.split() for line in open(path)]
    return [(a, b) for a, b, _ in rows], np.array([float(s) for _, _, s in rows])


def test_scorer_equals_naive_loop_in_blocks(tmp_path, scorer_data):
    enroll, test, pairs, trials = scorer_data
    backend = RecordingBackend()
    out = str(tmp_path / "scores")
    assert score_trials(trials, enroll, test, backend, out, block_size=7) == 50
    assert max(backend.calls) <= 7 and len(backend.calls) == 8
    got_pairs, got = read_score_file(out)
    assert got_pairs == pairs
    naive = [cosine_similarity(enroll[a][None] - 1.0, test[b][None] - 1.0)[0] for a, b in pairs]
    np.testing.assert_allclose(got, naive, rtol=1e-7, atol=1e-8)

    plda = Plda.from_covariances(np.zeros(3), np.eye(3), np.diag([3.0, 2.0, 1.0]))
    lda = np.random.default_rng(6).normal(size=(3, 5))
    backend = PldaBackend(np.full(4, 0.5), lda, plda)
    score_trials(trials, enroll, test, backend, out, block_size=16)
    naive = []
    for a, b in pairs:  # the recipe's chain, one trial at a time
        e, t = (plda.transform_embeddings(length_normalize(apply_transform(lda, x - 0.5)))
                for x in (enroll[a], test[b]))
        naive.append(plda.log_likelihood_ratio(e, 1, t)[0])
    np.testing.assert_allclose(read_score_file(out)[1], naive, rtol=1e-7, atol=1e-7)


def test_scorer_unknown_utterance_names_line(tmp_path, scorer_data):
    enroll, test, _, trials = scorer_data
    with open(trials, "a") as handle:
        handle.write("e1 t1 target\ne1 nobody target\n")
    with pytest.raises(TableError, match=r"trials:52: utterance 'nobody' has no test embedding"):
        score_trials(trials, enroll, test, CosineBackend(), str(tmp_path / "s"), block_size=10)
    assert not (tmp_path / "s").exists()


# ---------------------------------------------------------------- CLIs end to end

def test_cli_end_to_end(tmp_path, caplog):
    rng = np.random.default_rng(7)
    dim = 16
    mean, within = rng.normal(size=dim), random_cov(rng, np.linspace(0.2, 2, dim))
    between = random_cov(rng, np.linspace(0.5, 3, dim))
    train_x, train_spk = two_covariance_data(rng, mean, between, within, 12, 8, 8)
    train = {f"s{s:02d}-u{i:03d}": x.astype(np.float32)
             for i, (x, s) in enumerate(zip(train_x, train_spk))}
    write_scp_dict(str(tmp_path / "train.ark"), str(tmp_path / "train.scp"), train)
    (tmp_path / "utt2spk").write_text("".join(f"{k} {k[:3]}\n" for k in sorted(train)))
    eval_x, eval_spk = two_covariance_data(rng, mean, between, within, 10, 4, 4)
    evals = {f"e{s}-u{i:02d}": x.astype(np.float32) for i, (x, s) in enumerate(zip(eval_x, eval_spk))}
    write_scp_dict(str(tmp_path / "eval.ark"), str(tmp_path / "eval.scp"), evals)
    keys = sorted(evals)
    (tmp_path / "trials").write_text("".join(
        f"{a} {b} {'target' if a.split('-')[0] == b.split('-')[0] else 'nontarget'}\n"
        for i, a in enumerate(keys) for b in keys[i + 1:]))

    out = tmp_path / "backend"
    assert train_backend.main(["--train-scp", str(tmp_path / "train.scp"), "--utt2spk",
                               str(tmp_path / "utt2spk"), "--lda-dim", "200",
                               "--out-dir", str(out)]) == 0
    assert "LDA dim 200 > num_speakers - 1; using 11" in caplog.text
    assert is_done(str(out)) and read_matrix(str(out / "lda.mat")).shape == (11, dim + 1)

    common = ["--backend-dir", str(out), "--enroll-scp", str(tmp_path / "eval.scp"),
              "--test-scp", str(tmp_path / "eval.scp"), "--trials", str(tmp_path / "trials")]
    for kind in ("cosine", "plda"):
        assert score_cli.main(["--backend", kind, "--out", str(tmp_path / kind), *common]) == 0

    # PLDA scores follow the recipe chain computed directly with the library.
    X = np.stack([train[k] for k in sorted(train)]).astype(np.float64)
    labels = np.array([k[:3] for k in sorted(train)])
    centered = X - X.mean(axis=0)
    lda = compute_lda(centered, labels, 11)
    plda = train_plda(length_normalize(apply_transform(lda, centered)), labels)
    prep = lambda k: plda.transform_embeddings(
        length_normalize(apply_transform(lda, evals[k] - X.mean(axis=0))))
    pairs, got = read_score_file(str(tmp_path / "plda"))
    expected = [plda.log_likelihood_ratio(prep(a), 1, prep(b))[0] for a, b in pairs]
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)

    from pyutils.cli import compute_metrics
    assert compute_metrics.main(["--trials", str(tmp_path / "trials"), "--scores",
                                 f"cosine={tmp_path / 'cosine'}", f"plda={tmp_path / 'plda'}",
                                 "--det-png", str(tmp_path / "det.png"), "--results-md",
                                 str(tmp_path / "results.md"), "--system", "synthetic"]) == 0
    table = (tmp_path / "results.md").read_text()
    assert "| synthetic | cosine |" in table and "| synthetic | plda |" in table

    (tmp_path / "bad_trials").write_text(f"{keys[0]} {keys[1]}\nunknown {keys[1]}\n")
    result = subprocess.run(
        [sys.executable, "-m", "pyutils.cli.score_trials", "--backend", "plda",
         "--out", str(tmp_path / "bad_scores"), *common[:-1], str(tmp_path / "bad_trials")],
        cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"score_trials: error: {tmp_path / 'bad_trials'}:2: "
        "utterance 'unknown' has no enroll embedding")
    assert not (tmp_path / "bad_scores").exists()
