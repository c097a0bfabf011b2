"""Z-, T-, S- and AS-norm against hand-computed values and the per-trial definitions;
Kaldi's uncentred cosine; scoring stays vectorised (no N x N, no per-trial calls)."""
import math
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

from pyutils.backends.base import backend_names, load_backend
from pyutils.backends.cosine import CosineBackend
from pyutils.backends.plda import Plda, PldaBackend, write_matrix, write_vector
from pyutils.backends.scoring import score_trials
from pyutils.utils.arkio import write_scp_dict
from tests.conftest import ROOT


def scores_of(path):
    return [float(line.split()[2]) for line in open(path)]


def test_norms_hand_computed(tmp_path):
    """Unit vectors, no centring: e=(1,0), t=(.6,.8); cohort (1,0), (0,1), (-1,0).
    s(e,t)=.6; e's cohort scores 1, 0, -1; t's .6, .8, -.6 (ddof=0 deviations)."""
    enroll = {"e": np.array([1.0, 0.0])}
    test = {"t": np.array([0.6, 0.8])}
    cohort = {"c1": np.array([1.0, 0.0]), "c2": np.array([0.0, 1.0]),
              "c3": np.array([-1.0, 0.0])}
    (tmp_path / "trials").write_text("e t target\n")
    mu_t = 0.8 / 3
    sd_e = math.sqrt(2 / 3)
    sd_t = math.sqrt(((0.6 - mu_t) ** 2 + (0.8 - mu_t) ** 2 + (-0.6 - mu_t) ** 2) / 3)
    z, t = 0.6 / sd_e, (0.6 - mu_t) / sd_t
    # AS-norm top 2: e's {1, 0} (mean .5, sd .5), t's {.8, .6} (mean .7, sd .1)
    want = {"znorm": z, "tnorm": t, "snorm": (z + t) / 2,
            "asnorm": 0.5 * ((0.6 - 0.5) / 0.5 + (0.6 - 0.7) / 0.1)}
    assert want["asnorm"] == pytest.approx(-0.4)
    for norm, value in want.items():
        out = tmp_path / norm
        score_trials(str(tmp_path / "trials"), enroll, test, CosineBackend(None), str(out),
                     double=True, cohort=cohort, top_k=2, norm=norm)
        assert scores_of(out) == [pytest.approx(value, abs=1e-7)], norm


@pytest.fixture
def data():
    rng = np.random.default_rng(11)
    dim = 10
    enroll = {f"e{i:02d}": rng.normal(size=dim) for i in range(25)}
    test = {f"t{i:02d}": rng.normal(size=dim) for i in range(30)}
    cohort = {f"c{i:02d}": rng.normal(size=dim) for i in range(40)}
    pairs = [(f"e{rng.integers(25):02d}", f"t{rng.integers(30):02d}") for _ in range(300)]
    psi = np.sort(rng.uniform(0.1, 3.0, 4))[::-1]
    plda = Plda(np.zeros(4), np.linalg.qr(rng.normal(size=(4, 4)))[0], psi)
    backends = {"cosine": CosineBackend(rng.normal(size=dim) * 0.3),
                "plda": PldaBackend(rng.normal(size=dim) * 0.3, rng.normal(size=(4, dim + 1)),
                                    plda)}
    return enroll, test, cohort, pairs, backends


@pytest.mark.parametrize("kind", ["cosine", "plda"])
@pytest.mark.parametrize("norm", ["znorm", "tnorm", "snorm", "asnorm"])
def test_norms_equal_the_per_trial_definition(tmp_path, data, kind, norm):
    enroll, test, cohort, pairs, backends = data
    backend = backends[kind]
    C = backend.prepare(np.stack([cohort[k] for k in sorted(cohort)]))
    top_k = 9 if norm == "asnorm" else len(C)

    def stats(x):
        top = np.sort(backend.score(np.repeat(backend.prepare(x[None]), len(C), axis=0), C))
        return top[-top_k:].mean(), top[-top_k:].std()

    (tmp_path / "trials").write_text("".join(f"{a} {b}\n" for a, b in pairs))
    score_trials(str(tmp_path / "trials"), enroll, test, backend, str(tmp_path / "s"),
                 double=True, cohort=cohort, top_k=9, norm=norm)
    for (a, b), got in zip(pairs, scores_of(tmp_path / "s")):
        raw = float(backend.score(backend.prepare(enroll[a][None]),
                                  backend.prepare(test[b][None]))[0])
        (m1, s1), (m2, s2) = stats(enroll[a]), stats(test[b])
        want = {"znorm": (raw - m1) / s1, "tnorm": (raw - m2) / s2,
                "snorm": 0.5 * ((raw - m1) / s1 + (raw - m2) / s2)}.get(
            norm, 0.5 * ((raw - m1) / s1 + (raw - m2) / s2))
        assert got == pytest.approx(want, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("kind", ["cosine", "plda"])
def test_asnorm_with_the_whole_cohort_is_snorm(tmp_path, data, kind):
    enroll, test, cohort, pairs, backends = data
    (tmp_path / "trials").write_text("".join(f"{a} {b}\n" for a, b in pairs))
    out = {}
    for norm, top_k in (("snorm", 3), ("asnorm", len(cohort)), ("asnorm", 10 ** 6),
                        ("asnorm", 5)):
        path = tmp_path / f"{norm}.{top_k}"
        score_trials(str(tmp_path / "trials"), enroll, test, backends[kind], str(path),
                     double=True, cohort=cohort, top_k=top_k, norm=norm)
        out[norm, top_k] = np.array(scores_of(path))
    np.testing.assert_allclose(out["asnorm", len(cohort)], out["snorm", 3], rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(out["asnorm", 10 ** 6], out["snorm", 3], rtol=1e-7, atol=1e-7)
    assert np.max(np.abs(out["asnorm", 5] - out["snorm", 3])) > 0.1   # top-5 is not S-norm


def test_norm_errors(tmp_path, data):
    enroll, test, cohort, pairs, backends = data
    (tmp_path / "trials").write_text("e00 t00\n")
    with pytest.raises(ValueError, match="unknown score normalisation 'xnorm'"):
        score_trials(str(tmp_path / "trials"), enroll, test, backends["cosine"],
                     str(tmp_path / "s"), cohort=cohort, norm="xnorm")
    with pytest.raises(ValueError, match="at least 2 embeddings"):
        score_trials(str(tmp_path / "trials"), enroll, test, backends["cosine"],
                     str(tmp_path / "s"), cohort={"c": cohort["c00"]}, norm="znorm")
    same = {"c1": cohort["c00"], "c2": cohort["c00"]}
    with pytest.raises(ValueError, match="cohort scores of 'e00' are all equal"):
        score_trials(str(tmp_path / "trials"), enroll, test, backends["cosine"],
                     str(tmp_path / "s"), cohort=same, norm="znorm")


def test_registry_builds_backends_by_config_word(tmp_path):
    assert {"cosine", "plda"} <= set(backend_names())
    rng = np.random.default_rng(2)
    write_vector(str(tmp_path / "mean.vec"), rng.normal(size=6))
    write_matrix(str(tmp_path / "lda.mat"), rng.normal(size=(3, 7)))
    Plda(np.zeros(3), np.eye(3), np.array([2.0, 1.0, 0.5])).save(str(tmp_path / "plda"))
    assert isinstance(load_backend("plda", str(tmp_path)), PldaBackend)
    assert load_backend("cosine", str(tmp_path)).mean is not None
    assert load_backend("cosine", str(tmp_path), cosine_mean="none").mean is None
    with pytest.raises(ValueError, match="unknown backend 'lsa'.*cosine, plda"):
        load_backend("lsa", str(tmp_path))
    with pytest.raises(ValueError, match="cosine mean 'both'"):
        load_backend("cosine", str(tmp_path), cosine_mean="both")


def test_cosine_mean_none_is_kaldi_cosine(tmp_path):
    """--cosine-mean none: the dot product of length-normalised raw embeddings
    (Kaldi cosine_scoring.sh); the default subtracts mean.vec first."""
    rng = np.random.default_rng(3)
    emb = {f"u{i}": (rng.normal(size=8) + 2.0).astype(np.float32) for i in range(12)}
    write_scp_dict(str(tmp_path / "x.ark"), str(tmp_path / "x.scp"), emb)
    mean = rng.normal(size=8)
    write_vector(str(tmp_path / "mean.vec"), mean)
    pairs = [(f"u{i}", f"u{j}") for i in range(12) for j in range(i + 1, 12)]
    (tmp_path / "trials").write_text("".join(f"{a} {b} nontarget\n" for a, b in pairs))
    env = {**os.environ, "PYTHONPATH": ROOT}
    got = {}
    for mode in ("none", "train"):
        subprocess.run([sys.executable, "-m", "pyutils.cli.score_trials", "--backend", "cosine",
                        "--backend-dir", str(tmp_path), "--enroll-scp", str(tmp_path / "x.scp"),
                        "--test-scp", str(tmp_path / "x.scp"), "--trials",
                        str(tmp_path / "trials"), "--out", str(tmp_path / mode),
                        "--cosine-mean", mode], env=env, check=True, capture_output=True)
        got[mode] = scores_of(tmp_path / mode)

    def unit(x):
        x = np.asarray(x, dtype=np.float64)
        return x / np.linalg.norm(x)

    kaldi = [float(unit(emb[a]) @ unit(emb[b])) for a, b in pairs]
    centred = [float(unit(emb[a] - mean) @ unit(emb[b] - mean)) for a, b in pairs]
    np.testing.assert_allclose(got["none"], kaldi, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got["train"], centred, rtol=1e-6, atol=1e-6)
    assert np.max(np.abs(np.array(kaldi) - centred)) > 0.05       # the two differ here


def test_scoring_is_vectorised_no_n_by_n_no_per_trial_calls(tmp_path):
    """3,000 utterances: an N x N score matrix would be 72 MB; the scorer's peak
    allocation stays far below, and backend.score is called only to check the
    bilinear form (16 pairs), never per trial or per block."""
    rng = np.random.default_rng(4)
    n, dim = 3000, 32
    table = {f"utt{i:05d}": rng.normal(size=dim).astype(np.float32) for i in range(n)}
    cohort = {f"c{i}": rng.normal(size=dim).astype(np.float32) for i in range(200)}
    keys = sorted(table)
    i, j = rng.integers(0, n, (2, 20000))
    (tmp_path / "trials").write_text("".join(f"{keys[a]} {keys[b]}\n" for a, b in zip(i, j)))
    calls = []

    class Counting(CosineBackend):
        def score(self, e, t):
            calls.append(len(e))
            return super().score(e, t)

        bilinear_form = CosineBackend.bilinear_form     # trusted: defined on this class

    tracemalloc.start()
    score_trials(str(tmp_path / "trials"), table, table, Counting(), str(tmp_path / "s"),
                 block_size=5000, cohort=cohort, top_k=50)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert calls == [16, 16], calls          # form checks of the trial side and the cohort
    assert peak < 0.25 * n * n * 8, peak
    assert len(open(tmp_path / "s").readlines()) == 20000
