"""The fast scoring paths (numpy parsing and id search, bilinear scores, one format
operation per block, threads) give exactly what the plain per-trial computation gives."""
import os
import subprocess
import sys

import numpy as np
import pytest

from pyutils.backends import trials
from pyutils.backends.cosine import CosineBackend
from pyutils.backends.plda import Plda, PldaBackend, write_matrix, write_vector
from pyutils.backends.embeddings import load_embeddings
from pyutils.backends.scoring import bilinear_form, score_trials
from pyutils.utils.arkio import load_scp_dict, write_scp_dict
from pyutils.utils.fileio import TableError
from tests.conftest import ROOT


def test_score_lines_equal_python_g8():
    """Tiny, huge, negative, tied and non-finite scores, variable-length ids."""
    rng = np.random.default_rng(0)
    values = np.concatenate([
        rng.normal(size=20000) * 10.0 ** rng.integers(-9, 11, 20000),
        rng.normal(size=5000), np.round(rng.normal(size=5000) * 1000, 3),
        [0.0, -0.0, 1.0, -1.0, 1e-4, 9.99999995e-5, 1e-5, 0.001, 0.1, 0.5, 1.5, 2.5, 10.0,
         12345678.0, 99999999.0, 99999999.5, 99999995.0, 123456785.0, 1e8, 1e7, 9999999.95,
         0.30000000000000004, 1 / 3, 2 / 3, 1e22, 1e100, -1e-300, 5e-324, 1.7976931348623157e308,
         np.inf, -np.inf, np.nan, 0.000123456785, 1.00000005, 1.000000050000001, -123.456e-7]])
    keys = [f"u{i}" + "x" * (i % 7) for i in range(50)] + ["é-1"]
    ids = trials.TrialIds(sorted(keys))
    r1 = rng.integers(0, len(keys), values.size)
    r2 = rng.integers(0, len(keys), values.size)
    got = trials.score_lines(ids, r1, ids, r2, values)
    want = "".join("%s %s %.8g\n" % (ids.keys[a], ids.keys[b], v)
                   for a, b, v in zip(r1.tolist(), r2.tolist(), values.tolist())).encode()
    assert got == want
    assert trials.score_lines(ids, r1[:0], ids, r2[:0], values[:0]) == b""


def test_trial_ids_find_by_binary_search():
    keys = ["b", "a", "abc", "ab", "zz-1", "a-9"]
    ids = trials.TrialIds(keys)
    text = b"ab abc zz-1 q a-9 abcd a b zz- "
    tokens = text.split()
    starts = np.array([text.index(t + b" ") if t != b"a" else text.index(b" a ") + 1
                       for t in tokens])
    lengths = np.array([len(t) for t in tokens])
    padded = np.zeros(len(text) + ids.width, dtype=np.uint8)
    padded[:len(text)] = np.frombuffer(text, dtype=np.uint8)
    got = ids.find(padded, starts, lengths).tolist()
    assert got == [keys.index(t.decode()) if t.decode() in keys else -1 for t in tokens]


def random_key(rng, i):
    return f"spk{rng.integers(100):02d}-" + "x" * int(rng.integers(0, 12)) + f"-{i:04d}"


@pytest.fixture
def data(tmp_path):
    """Variable-length ids, enroll != test, a PLDA model and trials in 3 layouts."""
    rng = np.random.default_rng(1)
    dim = 12
    enroll = {random_key(rng, i): rng.normal(size=dim).astype(np.float32) for i in range(40)}
    test = {random_key(rng, i + 100): rng.normal(size=dim).astype(np.float32) for i in range(60)}
    pairs = [(list(enroll)[rng.integers(40)], list(test)[rng.integers(60)]) for _ in range(3000)]
    psi = np.sort(rng.uniform(0.05, 4.0, 5))[::-1]
    plda = Plda(rng.normal(size=5) * 0.1, np.linalg.qr(rng.normal(size=(5, 5)))[0] * 1.3, psi)
    backends = {"cosine": CosineBackend(rng.normal(size=dim) * 0.2),
                "plda": PldaBackend(rng.normal(size=dim) * 0.2, rng.normal(size=(5, dim + 1)), plda)}
    return enroll, test, pairs, backends


def naive_lines(pairs, enroll, test, backend):
    lines = []
    for a, b in pairs:
        e = backend.prepare(enroll[a][None].astype(np.float64))
        t = backend.prepare(test[b][None].astype(np.float64))
        lines.append(f"{a} {b} {float(backend.score(e, t)[0]):.8g}\n")
    return "".join(lines)


def write_trials(path, pairs, layout):
    with open(path, "w", newline="") as out:
        for i, (a, b) in enumerate(pairs):
            label = "target" if i % 3 == 0 else "nontarget"
            if layout == "two":
                out.write(f"{a} {b}\n")
            elif layout == "three":
                out.write(f"{a} {b} {label}\n")
            elif layout == "mixed":         # 2 or 3 fields, tabs and runs of blanks
                out.write(f"{a}\t{b}  {label}\n" if i % 2 else f" {a} {b}\n")
            elif layout == "crlf":
                out.write(f"{a} {b} {label}\r\n")


@pytest.mark.parametrize("layout", ["two", "three", "mixed", "crlf"])
@pytest.mark.parametrize("kind", ["cosine", "plda"])
def test_fast_paths_equal_the_per_trial_computation(tmp_path, data, layout, kind):
    enroll, test, pairs, backends = data
    backend = backends[kind]
    write_trials(tmp_path / "trials", pairs, layout)
    want = naive_lines(pairs, enroll, test, backend)
    for block_size, threads in ((700, 1), (1000, 3), (10 ** 6, 1)):
        out = tmp_path / f"scores.{block_size}.{threads}"
        n = score_trials(str(tmp_path / "trials"), enroll, test, backend, str(out),
                         block_size=block_size, num_threads=threads, double=True)
        assert n == len(pairs)
        assert out.read_text() == want, (layout, kind, block_size, threads)
    # default (single precision for cosine): same ids, scores within float32 rounding
    score_trials(str(tmp_path / "trials"), enroll, test, backend, str(tmp_path / "single"))
    got = [line.split() for line in open(tmp_path / "single")]
    ref = [line.split() for line in want.splitlines()]
    assert [g[:2] for g in got] == [r[:2] for r in ref]
    np.testing.assert_allclose([float(g[2]) for g in got], [float(r[2]) for r in ref],
                               rtol=1e-6, atol=1e-6)


def test_fast_parser_is_used_and_agrees_with_the_plain_one(tmp_path, data):
    enroll, test, pairs, backends = data
    side1 = trials.TrialIds(sorted(enroll))
    side2 = trials.TrialIds(sorted(test))
    for layout in ("two", "three", "mixed"):
        write_trials(tmp_path / "t", pairs, layout)
        raw = (tmp_path / "t").read_bytes()
        fast = trials.fast_parse(raw, side1, side2)
        assert fast is not None, layout
        plain = trials.plain_parse(raw, "t", 0, side1, side2)
        np.testing.assert_array_equal(fast[0], plain[0])
        np.testing.assert_array_equal(fast[1], plain[1])


def test_bilinear_form_reproduces_the_backends(data):
    enroll, _, _, backends = data
    X = np.stack(list(enroll.values())).astype(np.float64)
    for backend in backends.values():
        P, bias = bilinear_form(backend, X)
        prepared = backend.prepare(X)
        i, j = np.meshgrid(np.arange(len(X)), np.arange(len(X)))
        want = backend.score(prepared[i.ravel()], prepared[j.ravel()])
        got = np.einsum("ij,ij->i", P[i.ravel()], P[j.ravel()])
        if bias is not None:
            got += bias[i.ravel()] + bias[j.ravel()]
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_subclass_overriding_score_uses_its_own_score(tmp_path, data):
    enroll, test, pairs, _ = data

    class Doubled(CosineBackend):
        def score(self, e, t):
            return 2 * super().score(e, t)

    write_trials(tmp_path / "trials", pairs[:50], "three")
    score_trials(str(tmp_path / "trials"), enroll, test, Doubled(), str(tmp_path / "s"))
    plain = naive_lines(pairs[:50], enroll, test, CosineBackend())
    got = [float(line.split()[2]) for line in open(tmp_path / "s")]
    np.testing.assert_allclose(got, [2 * float(l.split()[2]) for l in plain.splitlines()],
                               rtol=1e-7)


@pytest.mark.parametrize("text,line,message", [
    ("{a} {b}\n{a} nobody\n{a} {b}\n", 2, "utterance 'nobody' has no test embedding"),
    ("{a} {b}\nnobody {b} target\n", 2, "utterance 'nobody' has no enroll embedding"),
    ("{a} {b}\n{a}\n", 2, "expected at least 2 fields, got 1"),
    ("{a} {b}\n{a} {b} target extra\n", 2, "expected at most 3 fields, got 4"),
    ("{a} {b}\n\n{a} {b}\n", 2, "empty line"),
    ("{a} {b}\n{a} {b}\r\n{a} {b}\n{a}\n", 4, "expected at least 2 fields, got 1"),
])
def test_errors_name_the_line(tmp_path, data, text, line, message):
    enroll, test, pairs, backends = data
    a, b = pairs[0]
    body = "".join(f"{x} {y}\n" for x, y in pairs[:500])      # a fast first block
    (tmp_path / "trials").write_bytes((body + text.format(a=a, b=b)).encode())
    for threads in (1, 2):
        with pytest.raises(TableError) as err:
            score_trials(str(tmp_path / "trials"), enroll, test, backends["plda"],
                         str(tmp_path / "s"), block_size=200, num_threads=threads)
        assert str(err.value) == f"{tmp_path / 'trials'}:{500 + line}: {message}"
        assert not (tmp_path / "s").exists()


def test_last_line_without_newline_and_non_ascii_ids(tmp_path):
    rng = np.random.default_rng(3)
    table = {k: rng.normal(size=4).astype(np.float32) for k in ("é-1", "b", "ccc")}
    (tmp_path / "trials").write_text("é-1 b\nb ccc target\nccc é-1", encoding="utf-8")
    backend = CosineBackend()
    assert score_trials(str(tmp_path / "trials"), table, table, backend,
                        str(tmp_path / "s"), double=True) == 3
    pairs = [("é-1", "b"), ("b", "ccc"), ("ccc", "é-1")]
    assert (tmp_path / "s").read_text(encoding="utf-8") == naive_lines(pairs, table, table, backend)


def test_load_embeddings_equals_kaldiio(tmp_path):
    rng = np.random.default_rng(4)
    table = {f"u{i}": rng.normal(size=7).astype(np.float32) for i in range(20)}
    write_scp_dict(str(tmp_path / "a.ark"), str(tmp_path / "a.scp"), table)
    write_scp_dict(str(tmp_path / "b.ark"), str(tmp_path / "b.scp"),
                   {"d": rng.normal(size=7), "m": rng.normal(size=(1, 7)).astype(np.float32)})
    with open(tmp_path / "all.scp", "w") as out:
        out.write((tmp_path / "a.scp").read_text() + (tmp_path / "b.scp").read_text())
    got, want = load_embeddings(str(tmp_path / "all.scp")), load_scp_dict(str(tmp_path / "all.scp"))
    assert sorted(got) == sorted(want)
    for key in want:   # a 1 x N matrix is read as the vector it holds (as train_backend did)
        assert np.array_equal(got[key], np.ravel(want[key])) and got[key].dtype == want[key].dtype
        assert got[key].ndim == 1
    write_scp_dict(str(tmp_path / "c.ark"), str(tmp_path / "c.scp"),
                   {"ok": np.ones(7), "mat": np.ones((2, 7)), "short": np.ones(5)})
    with pytest.raises(TableError, match=r"c\.scp:1: embedding 'mat' is a \(2, 7\) matrix"):
        load_embeddings(str(tmp_path / "c.scp"))
    write_scp_dict(str(tmp_path / "c.ark"), str(tmp_path / "c.scp"),
                   {"ok": np.ones(7), "short": np.ones(5)})
    with pytest.raises(TableError, match="c.scp:2: embedding 'short' has dimension 5 but 'ok'"):
        load_embeddings(str(tmp_path / "c.scp"))
    (tmp_path / "bad.scp").write_text(f"x {tmp_path / 'a.ark'}:1\n")
    with pytest.raises(TableError, match="bad.scp:1: cannot read"):
        load_embeddings(str(tmp_path / "bad.scp"))


def test_cli_threads_give_identical_files(tmp_path):
    rng = np.random.default_rng(5)
    dim, lda_dim = 16, 6
    emb = {f"utt{i:03d}": rng.normal(size=dim).astype(np.float32) for i in range(300)}
    write_scp_dict(str(tmp_path / "x.ark"), str(tmp_path / "x.scp"), emb)
    write_vector(str(tmp_path / "mean.vec"), rng.normal(size=dim) * 0.1)
    write_matrix(str(tmp_path / "lda.mat"), rng.normal(size=(lda_dim, dim + 1)))
    Plda(np.zeros(lda_dim), np.eye(lda_dim), np.linspace(3, 0.1, lda_dim)).save(str(tmp_path / "plda"))
    keys = sorted(emb)
    with open(tmp_path / "trials", "w") as out:
        for _ in range(20000):
            out.write(f"{keys[rng.integers(300)]} {keys[rng.integers(300)]} nontarget\n")
    env = {**os.environ, "PYTHONPATH": ROOT}
    for kind in ("cosine", "plda"):
        outs = []
        for threads in ("1", "2"):
            out = tmp_path / f"{kind}.{threads}"
            subprocess.run([sys.executable, "-m", "pyutils.cli.score_trials", "--backend", kind,
                            "--backend-dir", str(tmp_path), "--enroll-scp", str(tmp_path / "x.scp"),
                            "--test-scp", str(tmp_path / "x.scp"), "--trials",
                            str(tmp_path / "trials"), "--out", str(out), "--block-size", "3000",
                            "--num-threads", threads], env=env, check=True, capture_output=True)
            outs.append(out.read_bytes())
        assert outs[0] == outs[1] and outs[0].count(b"\n") == 20000


@pytest.mark.parametrize("kind", ["cosine", "plda", "generic"])
def test_asnorm_equals_the_per_trial_definition(tmp_path, data, kind):
    """Adaptive s-norm: each side standardised by the mean/std (numpy, ddof=0) of
    its top-k cohort scores, the two halves averaged (WeSpeaker score_norm.py)."""
    enroll, test, pairs, backends = data

    class Generic(CosineBackend):          # not bilinear-checked: the generic path
        def score(self, e, t):
            return super().score(e, t) ** 3

    backend = Generic(backends["cosine"].mean) if kind == "generic" else backends[kind]
    rng = np.random.default_rng(5)
    cohort = {f"c{i:03d}": rng.normal(size=12).astype(np.float32) for i in range(30)}
    C = backend.prepare(np.stack([cohort[k] for k in sorted(cohort)]).astype(np.float64))

    def stats(x):
        x = backend.prepare(x[None].astype(np.float64))
        top = np.sort(backend.score(np.repeat(x, len(C), axis=0), C))[-7:]
        return top.mean(), top.std()

    write_trials(tmp_path / "trials", pairs[:400], "three")
    score_trials(str(tmp_path / "trials"), enroll, test, backend, str(tmp_path / "s"),
                 double=True, cohort=cohort, top_k=7)
    got = [line.split() for line in open(tmp_path / "s")]
    assert [g[:2] for g in got] == [list(p) for p in pairs[:400]]
    for (a, b), (_, _, value) in zip(pairs[:400], got):
        raw = float(backend.score(backend.prepare(enroll[a][None].astype(np.float64)),
                                  backend.prepare(test[b][None].astype(np.float64)))[0])
        (m1, s1), (m2, s2) = stats(enroll[a]), stats(test[b])
        assert float(value) == pytest.approx(0.5 * ((raw - m1) / s1 + (raw - m2) / s2),
                                             rel=1e-6, abs=1e-6)
