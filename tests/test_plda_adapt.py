"""Unsupervised PLDA adaptation against the closed forms of Kaldi's PldaUnsupervisedAdaptor."""
import os

import numpy as np
import pytest

from pyutils.backends.adapt import adapt_backend, adapt_plda
from pyutils.backends.plda import Plda, read_matrix, read_vector, write_matrix, write_vector


def data_with_moments(mean, cov, n=4000, seed=0):
    """Rows whose sample mean and (biased) covariance are exactly ``mean`` and ``cov``."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, len(mean)))
    z -= z.mean(axis=0)
    z = z @ np.linalg.inv(np.linalg.cholesky(z.T @ z / n)).T       # identity covariance
    return mean + z @ np.linalg.cholesky(cov).T


def test_diagonal_case_by_hand():
    # transform I, psi (4, 1): total variances 5 and 2.  In-domain variances 10 and 1,
    # mean (0.5, 0): with the mean shift, 10.25 and 1.  Dim 0: s = 10.25/5 = 2.05,
    # excess 1.05 in the unit-total space = 5.25 in the input space; dim 1: s = 0.5 < 1.
    plda = Plda(np.zeros(2), np.eye(2), np.array([4.0, 1.0]))
    X = data_with_moments(np.array([0.5, 0.0]), np.diag([10.0, 1.0]))
    adapted = adapt_plda(plda, X)     # Kaldi defaults 0.3 / 0.7 / 1.0
    within = np.diag([1 + 0.3 * 5.25, 1.0])
    between = np.diag([4 + 0.7 * 5.25, 1.0])
    assert np.allclose(adapted.mean, [0.5, 0.0])
    assert np.allclose(adapted.within_covariance(), within)
    assert np.allclose(adapted.between_covariance(), between)
    assert np.allclose(adapted.psi, [(4 + 0.7 * 5.25) / (1 + 0.3 * 5.25), 1.0])
    # scales and mean_diff_scale as ivector-adapt-plda's options
    other = adapt_plda(plda, X, within_covar_scale=0.5, between_covar_scale=0.5,
                       mean_diff_scale=0.0)
    assert np.allclose(other.within_covariance(), np.diag([1 + 0.5 * 5.0, 1.0]))
    assert np.allclose(other.between_covariance(), np.diag([4 + 0.5 * 5.0, 1.0]))


def test_general_case_where_the_in_domain_variance_exceeds_the_model_everywhere():
    # When every generalised eigenvalue of (V, W + B) exceeds 1 the adaptor adds the
    # whole excess V - (W + B): W' = W + 0.3 (V - T), B' = B + 0.7 (V - T).
    rng = np.random.default_rng(3)
    dim = 5
    A = rng.standard_normal((dim, dim))
    within, between = A @ A.T + dim * np.eye(dim), np.diag(rng.uniform(1, 4, dim))
    plda = Plda.from_covariances(rng.standard_normal(dim), within, between)
    total = within + between
    R = np.linalg.qr(rng.standard_normal((dim, dim)))[0]
    V = 2.0 * total + R @ np.diag(rng.uniform(0.5, 2.0, dim)) @ R.T
    in_mean = plda.mean + 0.1
    X = data_with_moments(in_mean, V, seed=4)
    V_eff = V + np.outer(in_mean - plda.mean, in_mean - plda.mean)   # mean_diff_scale 1
    adapted = adapt_plda(plda, X)
    assert np.allclose(adapted.mean, in_mean)
    assert np.allclose(adapted.within_covariance(), within + 0.3 * (V_eff - total), atol=1e-8)
    assert np.allclose(adapted.between_covariance(), between + 0.7 * (V_eff - total), atol=1e-8)
    assert np.all(np.diff(adapted.psi) <= 0)                          # sorted as Kaldi


def test_bad_adaptation_data_is_refused():
    plda = Plda(np.zeros(2), np.eye(2), np.ones(2))
    with pytest.raises(ValueError, match="dimension 2"):
        adapt_plda(plda, np.zeros((3, 3)))


def test_adapt_backend_uses_the_in_domain_mean_and_keeps_lda(tmp_path):
    src, out = tmp_path / "backend", tmp_path / "backend_adapt"
    src.mkdir()
    write_vector(str(src / "mean.vec"), np.zeros(4))
    lda = np.hstack([np.eye(2, 4), np.zeros((2, 1))])
    write_matrix(str(src / "lda.mat"), lda)
    Plda(np.zeros(2), np.eye(2), np.array([3.0, 1.0])).save(str(src / "plda"))
    X = np.random.default_rng(0).standard_normal((50, 4)) * 3 + 1.0
    summary = adapt_backend(str(src), X, str(out))
    assert summary == {"adapt_vectors": 50, "plda_dim": 2}
    assert np.allclose(read_vector(str(out / "mean.vec")), X.mean(axis=0))
    assert np.array_equal(read_matrix(str(out / "lda.mat")), read_matrix(str(src / "lda.mat")))
    adapted = Plda.load(str(out / "plda"))
    # adaptation vectors are centred on their own mean before LDA and length norm
    assert np.allclose(adapted.mean, 0.0, atol=0.2)
    assert os.path.getsize(out / "plda") > 0


def test_adapt_backend_step_writes_an_adapted_backend_and_skips_a_rerun(tmp_path):
    """steps/adapt_backend.sh as stage 5 runs it: backend_adapt/ with the in-domain mean and
    the adapted PLDA; a rerun with the same inputs does nothing."""
    import subprocess

    from conftest import ROOT
    from pyutils.utils.arkio import write_scp_dict
    src = tmp_path / "backend"
    src.mkdir()
    write_vector(str(src / "mean.vec"), np.zeros(3))
    write_matrix(str(src / "lda.mat"), np.eye(2, 3))
    Plda(np.zeros(2), np.eye(2), np.array([2.0, 1.0])).save(str(src / "plda"))
    (src / ".done").write_text("trained\n")
    rng = np.random.default_rng(5)
    emb = tmp_path / "embeddings_adapt"
    table = {f"u{i}": (rng.standard_normal(3) * 4 + 2).astype(np.float32) for i in range(40)}
    write_scp_dict(str(emb / "xvector.ark"), str(emb / "xvector.scp"), table)
    (emb / ".done").write_text("done\n")
    out = tmp_path / "backend_adapt"
    cmd = ["steps/adapt_backend.sh", str(src), str(emb), str(out)]
    first = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    X = np.stack([table[k] for k in sorted(table)]).astype(np.float64)
    assert np.allclose(read_vector(str(out / "mean.vec")), X.mean(axis=0), atol=1e-6)
    assert Plda.load(str(out / "plda")).dim == 2
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 0 and "is complete" in again.stdout
