"""Bad inputs the other robustness tests do not feed through a real stage.

Each test runs a steps/*.sh script or the pyutils.cli module a stage runs, on a
known bad input, and checks the exact error (file, line, key) or the count in
the stage summary: repeated or NaN/inf embeddings in score_trials, NaN/inf
features in extraction (named by feats.scp line), scp paths holding spaces,
data-dir defects refused by the feature stage, speakers emptied by it, hostile
file names in every step that builds a pipe, and scoring memory.
"""
import os
import re
import shlex
import subprocess
import sys
import tracemalloc

import kaldiio
import numpy as np
import pytest
import soundfile as sf

from pyutils.backends.plda import Plda, write_matrix, write_vector
from tests.conftest import ROOT
from tests.test_robustness_audio import tone, write_data_dir
from tests.test_robustness_datadir import DEFECTS as DATADIR_DEFECTS
from tests.test_robustness_datadir import make_dir

RATE = 16000


def cli(module, *args, **kwargs):
    return subprocess.run([sys.executable, "-m", f"pyutils.cli.{module}", *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, **kwargs)


def step(script, *args, **kwargs):
    return subprocess.run([os.path.join(ROOT, "steps", script), *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, **kwargs)


def write_ark(folder, name, table):
    """ark/scp with kaldiio directly (the toolkit's writer refuses NaN); returns the scp."""
    os.makedirs(folder, exist_ok=True)
    scp = os.path.join(folder, f"{name}.scp")
    with kaldiio.WriteHelper(f"ark,scp:{os.path.join(folder, name)}.ark,{scp}") as writer:
        for key in sorted(table):
            writer(key, np.asarray(table[key]))
    return scp


def scp_lines(scp):
    with open(scp) as handle:
        return handle.read().splitlines()


def canaries(root):
    return sorted(f for f in os.listdir(root) if f.startswith("CANARY"))


# ---------------------------------------------------------------- data dir defects, real stage

@pytest.mark.parametrize("defect", sorted(DATADIR_DEFECTS))
def test_make_mfcc_vad_refuses_each_invalid_dir_naming_file_and_line(tmp_path, defect):
    """Unsorted ids, ids with a space, utt2spk/spk2utt disagreeing, duplicates and trials
    with unknown utterances stop steps/make_mfcc_vad.sh before any job, naming file:line
    (tests/test_robustness_datadir.py checks utils/validate_data_dir.sh alone, and the
    stage only for a duplicate id)."""
    overrides, expected = DATADIR_DEFECTS[defect]
    data = make_dir(tmp_path / "data", overrides)
    result = step("make_mfcc_vad.sh", "--nj", "1", data, tmp_path / "log", tmp_path / "mfcc")
    assert result.returncode == 1
    for message in expected:
        assert os.path.join(data, message.format(data=data)) in result.stderr, result.stderr
    assert f"{len(expected)} problem(s) in {data}" in result.stderr
    assert f"{data} is not a valid data dir" in result.stderr
    assert not (tmp_path / "log").exists() and not (tmp_path / "mfcc").exists()
    assert not os.path.exists(os.path.join(data, ".mfcc_vad.done"))


# ---------------------------------------------------------------- duplicate ids in embedding scps

def small_embeddings(tmp_path, dim=4):
    """3 speakers x 4 utterances (s0-u0 .. s2-u3, scp lines 1..12) and their utt2spk."""
    rng = np.random.default_rng(0)
    table = {}
    for s in range(3):
        centre = 3 * rng.normal(size=dim)
        for u in range(4):
            table[f"s{s}-u{u}"] = (centre + rng.normal(size=dim)).astype(np.float32)
    scp = write_ark(str(tmp_path / "emb"), "xvector", table)
    (tmp_path / "utt2spk").write_text("".join(f"{k} {k[:2]}\n" for k in sorted(table)))
    return table, scp


def with_duplicate(scp, path, at, key, source_line):
    """Copy ``scp`` to ``path`` with a second line for ``key`` (pointing at another
    embedding's data) inserted at 0-based index ``at``."""
    lines = scp_lines(scp)
    lines.insert(at, f"{key} {lines[source_line].split(' ', 1)[1]}")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_train_backend_refuses_a_duplicate_embedding_id(tmp_path):
    table, scp = small_embeddings(tmp_path)
    dup = with_duplicate(scp, tmp_path / "dup.scp", 2, "s0-u1", 5)
    result = cli("train_backend", "--train-scp", dup, "--utt2spk", tmp_path / "utt2spk",
                 "--lda-dim", 2, "--out-dir", tmp_path / "backend")
    assert result.returncode == 1
    assert (f"train_backend: error: {dup}:3: duplicate key 's0-u1' (first on line 2)"
            in result.stderr), result.stderr
    assert not (tmp_path / "backend" / ".done").exists()


def cosine_backend_dir(tmp_path, dim=4):
    backend = tmp_path / "backend"
    backend.mkdir(exist_ok=True)
    write_vector(str(backend / "mean.vec"), np.zeros(dim))
    return backend


def score(tmp_path, scp, trials="s0-u0 s0-u1 target\ns0-u0 s1-u0 nontarget\n"):
    (tmp_path / "trials").write_text(trials)
    return cli("score_trials", "--backend", "cosine", "--backend-dir",
               cosine_backend_dir(tmp_path), "--enroll-scp", scp, "--test-scp", scp,
               "--trials", tmp_path / "trials", "--out", tmp_path / "scores")


def test_score_trials_refuses_a_duplicate_embedding_id(tmp_path):
    table, scp = small_embeddings(tmp_path)
    dup = with_duplicate(scp, tmp_path / "dup.scp", 1, "s0-u0", 4)
    result = score(tmp_path, dup)
    assert result.returncode == 1, (result.stderr, (tmp_path / "scores").read_text())
    assert re.search(rf"{re.escape(dup)}:2: duplicate key 's0-u0'", result.stderr), result.stderr
    assert not (tmp_path / "scores").exists()


# ---------------------------------------------------------------- NaN/inf where not yet covered

@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_score_trials_names_a_non_finite_embedding(tmp_path, value):
    table, scp = small_embeddings(tmp_path)
    table["s0-u1"] = table["s0-u1"].copy()
    table["s0-u1"][2] = value
    scp = write_ark(str(tmp_path / "bad"), "xvector", table)
    result = score(tmp_path, scp)
    assert result.returncode == 1, (result.stderr, (tmp_path / "scores").read_text())
    assert f"{scp}:2:" in result.stderr and "'s0-u1'" in result.stderr, result.stderr
    assert not (tmp_path / "scores").exists()


def test_prepare_feats_names_infinite_features(tmp_path):
    """tests/test_robustness_audio.py checks a NaN; an inf takes the same path."""
    rng = np.random.default_rng(0)
    feats = {f"u{i}": rng.normal(size=(40, 5)).astype(np.float32) for i in range(3)}
    feats["u1"][5, 1] = -np.inf
    feats_scp = write_ark(str(tmp_path), "feats", feats)
    vad_scp = write_ark(str(tmp_path), "vad", {k: np.ones(40, np.float32) for k in feats})
    result = cli("prepare_feats", "--cmvn-config", os.path.join(ROOT, "conf", "cmvn.conf"),
                 feats_scp, vad_scp, tmp_path / "out")
    assert result.returncode == 1
    assert re.search(rf"{re.escape(feats_scp)}:2: utterance 'u1': features at "
                     r"'.*feats\.ark:\d+' hold 1 NaN/inf value", result.stderr), result.stderr
    assert not (tmp_path / "out.scp").exists()


@pytest.fixture(scope="module")
def random_model(tmp_path_factory):
    """An untrained x-vector checkpoint (final.pt layout) for 5-dim features."""
    import torch

    from pyutils.models import build_model
    from pyutils.training import checkpoint
    torch.manual_seed(0)
    config = {"name": "xvector", "embed_dim": 8, "frame_dims": [16, 16, 16, 16, 32]}
    model = build_model("xvector", feat_dim=5, **{k: v for k, v in config.items() if k != "name"})
    path = str(tmp_path_factory.mktemp("model") / "final.pt")
    checkpoint.save(path, {"config": {"model": config}, "feat_dim": 5,
                           "model": model.state_dict()})
    return path


def extract(tmp_path, model, value):
    rng = np.random.default_rng(0)
    feats = {f"u{i}": rng.normal(size=(60, 5)).astype(np.float32) for i in range(3)}
    feats["u1"][10, 2] = value
    folder = str(tmp_path / "in")
    feats_scp = write_ark(folder, "feats", feats)
    vad_scp = write_ark(folder, "vad", {k: np.ones(60, np.float32) for k in feats})
    result = cli("extract_embeddings", "--model", model, "--feats-scp", feats_scp,
                 "--vad-scp", vad_scp, "--cmvn-config", os.path.join(ROOT, "conf", "cmvn.conf"),
                 "--ark", tmp_path / "xvector.1.ark", "--scp", tmp_path / "xvector.1.scp")
    return result, feats_scp


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_extract_embeddings_stops_on_non_finite_features(tmp_path, random_model, value):
    """The extraction job (steps/extract_embeddings.sh) fails naming the utterance and
    publishes nothing."""
    result, _ = extract(tmp_path, random_model, value)
    assert result.returncode == 1
    assert "'u1'" in result.stderr, result.stderr
    assert not (tmp_path / "xvector.1.scp").exists()
    assert not (tmp_path / "xvector.1.scp.done").exists()


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_extract_embeddings_names_the_feats_scp_line(tmp_path, random_model, value):
    result, feats_scp = extract(tmp_path, random_model, value)
    assert result.returncode == 1
    assert re.search(rf"{re.escape(feats_scp)}:2: .*'u1'.*NaN/inf", result.stderr), result.stderr


# ---------------------------------------------------------------- empty speakers

@pytest.fixture(scope="module")
def speaker_lost_in_make_mfcc(tmp_path_factory):
    """Speaker b's two recordings are both missing: b is left with no utterance."""
    root = tmp_path_factory.mktemp("lost")
    entries = {}
    for u in range(2):
        path = str(root / f"a{u}.wav")
        sf.write(path, tone(RATE, seed=u), RATE)
        entries[f"a-{u}"] = path
    entries["b-0"], entries["b-1"] = str(root / "gone0.wav"), str(root / "gone1.wav")
    data = root / "data"
    write_data_dir(data, entries)
    return data, step("make_mfcc_vad.sh", "--nj", "1", data, root / "log", root / "mfcc")


def test_make_mfcc_vad_counts_a_speaker_left_without_utterances(speaker_lost_in_make_mfcc):
    data, result = speaker_lost_in_make_mfcc
    assert result.returncode == 0, result.stderr
    assert "done 2 of 4 utterances (2 failed: 2 missing file)" in result.stdout
    assert "fix_data_dir: spk2utt: kept 1 of 2 lines (removed 1)" in result.stderr
    assert (data / "spk2utt").read_text() == "a a-0 a-1\n"
    assert (data / "utt2spk").read_text() == "a-0 a\na-1 a\n"


def test_make_mfcc_vad_names_a_speaker_left_without_utterances(speaker_lost_in_make_mfcc):
    _, result = speaker_lost_in_make_mfcc
    assert "speaker b: removed (no utterances left)" in result.stderr, result.stderr


# ---------------------------------------------------------------- file names and shells

HOSTILE = ["x;touch {c}", "$(touch {c})", "`touch {c}`", "q&touch {c}", "it's \"q\""]


def test_augment_data_dir_pipes_quote_hostile_names(tmp_path):
    """steps/augment_data_dir.sh writes wav.scp pipes holding the audio and noise file
    names; names with ';', '$(...)', backticks, '&' and quotes reach them unchanged and
    run nothing when steps/make_mfcc_vad.sh reads them (test_augment.py only tries
    spaces and quotes)."""
    sandbox = tmp_path / "work"
    sandbox.mkdir()
    canary = str(sandbox / "CANARY")
    noise = tmp_path / f"noi se;touch {canary}N" / "n.wav"
    noise.parent.mkdir(parents=True)
    sf.write(noise, tone(RATE, seed=9, freqs=(700.0,)), RATE)
    entries, paths = {}, {}
    for i, pattern in enumerate(HOSTILE):
        path = tmp_path / "audio" / (pattern.format(c=f"{canary}{i}") + ".wav")
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, tone(RATE, seed=i), RATE)
        utt = f"s{i % 2}-u{i}"
        paths[utt] = str(path)
        entries[utt] = str(path) if i % 2 == 0 else f"cat {shlex.quote(str(path))} |"
    src, dst = tmp_path / "src", tmp_path / f"ds t;touch {canary}D"
    write_data_dir(src, entries)
    result = step("augment_data_dir.sh", "--noise-dir", noise, "--snrs", "5", "--suffix",
                  "-noise", src, dst)
    assert result.returncode == 0, result.stderr
    wav = dict(line.split(" ", 1) for line in (dst / "wav.scp").read_text().splitlines())
    assert sorted(wav) == sorted(f"{u}-noise" for u in entries)
    for utt, value in wav.items():
        tokens = shlex.split(value)
        assert str(noise) in tokens, value           # one word, exactly the name
        source = paths[utt[:-len("-noise")]]
        assert source in tokens, value
    run = step("make_mfcc_vad.sh", "--nj", "2", dst, tmp_path / "log", tmp_path / "mfcc")
    assert run.returncode == 0, run.stderr
    assert f"done {len(entries)} of {len(entries)} utterances (0 failed)" in run.stdout
    assert canaries(sandbox) == [] and canaries(ROOT) == []


def test_backend_scoring_and_metric_steps_quote_hostile_dir_names(tmp_path):
    """steps/train_backend.sh, score_trials.sh and compute_metrics.sh with every dir and
    the trials file named with spaces, quotes, ';', '$(...)', backticks, '|' and '&'
    (the other robustness tests only run make_mfcc_vad.sh so)."""
    sandbox = tmp_path / "work"
    sandbox.mkdir()
    c = str(sandbox / "CANARY")

    def hostile(name):
        path = tmp_path / name.format(c=c)
        path.mkdir(parents=True)
        return path

    embdir, data = hostile("em b;touch {c}E"), hostile("da'ta $(touch {c}D)")
    backend, scores = tmp_path / "b`touch {c}B`".format(c=c), tmp_path / 'sc"o|touch {c}S'.format(c=c)
    metrics, trials_dir = tmp_path / "me&touch {c}M".format(c=c), hostile("tri als;touch {c}T")
    rng = np.random.default_rng(0)
    table = {}
    for s in range(4):
        centre = 3 * rng.normal(size=8)
        for u in range(6):
            table[f"s{s}-u{u}"] = (centre + rng.normal(size=8)).astype(np.float32)
    write_ark(str(embdir), "xvector", table)   # ark paths hold the hostile name too
    (data / "utt2spk").write_text("".join(f"{k} {k[:2]}\n" for k in sorted(table)))
    keys = sorted(table)
    trials = trials_dir / "trials"
    trials.write_text("".join(f"{a} {b} {'target' if a[:2] == b[:2] else 'nontarget'}\n"
                              for i, a in enumerate(keys) for b in keys[i + 1:]))
    result = step("train_backend.sh", "--lda-dim", 3, embdir, data, backend)
    assert result.returncode == 0, result.stderr
    assert (backend / "plda").exists()
    for kind in ("cosine", "plda"):
        result = step("score_trials.sh", "--backend", kind, backend, embdir, trials,
                      scores / kind)
        assert result.returncode == 0, result.stderr
        assert len((scores / kind / "scores").read_text().splitlines()) == len(keys) * 23 // 2
    result = step("compute_metrics.sh", trials, scores, metrics)
    assert result.returncode == 0, result.stderr
    table_md = (metrics / "results.md").read_text()
    assert "| cosine |" in table_md and "| plda |" in table_md
    assert canaries(sandbox) == [] and canaries(ROOT) == []
    # a retrained model rewrites the arks at the same offsets (xvector.scp unchanged) and a
    # new extraction marker: the back-end and the scores are redone, not trusted
    old_scp, old_scores = (embdir / "xvector.scp").read_text(), (scores / "plda" / "scores").read_text()
    write_ark(str(embdir), "xvector", {k: rng.normal(size=8).astype(np.float32) for k in table})
    assert (embdir / "xvector.scp").read_text() == old_scp
    (embdir / ".done").write_text("model of the second training run\n")
    assert step("train_backend.sh", "--lda-dim", 3, embdir, data, backend).returncode == 0
    result = step("score_trials.sh", "--backend", "plda", backend, embdir, trials, scores / "plda")
    assert result.returncode == 0 and "up to date" not in result.stdout, result.stdout
    assert (scores / "plda" / "scores").read_text() != old_scores


def test_score_trials_reads_scp_values_with_spaces(tmp_path):
    rng = np.random.default_rng(0)
    table = {f"s{s}-u{u}": rng.normal(size=4).astype(np.float32) for s in range(2)
             for u in range(2)}
    result = score(tmp_path, write_ark(str(tmp_path / "with space;x"), "xvector", table))
    assert result.returncode == 0, result.stderr
    assert len((tmp_path / "scores").read_text().splitlines()) == 2


def test_extract_embeddings_reads_scp_values_with_spaces(tmp_path, random_model):
    rng = np.random.default_rng(0)
    folder = str(tmp_path / "with space;x")
    feats = {f"u{i}": rng.normal(size=(60, 5)).astype(np.float32) for i in range(2)}
    result = cli("extract_embeddings", "--model", random_model,
                 "--feats-scp", write_ark(folder, "feats", feats),
                 "--vad-scp", write_ark(folder, "vad", {k: np.ones(60, np.float32) for k in feats}),
                 "--cmvn-config", os.path.join(ROOT, "conf", "cmvn.conf"),
                 "--ark", tmp_path / "x.ark", "--scp", tmp_path / "x.scp")
    assert result.returncode == 0, result.stderr
    assert [line.split()[0] for line in scp_lines(tmp_path / "x.scp")] == ["u0", "u1"]


SHELL_CALLS = re.compile(
    r"shell\s*=\s*True|os\.system\s*\(|os\.popen\s*\(|subprocess\.getoutput|"
    r"subprocess\.getstatusoutput|pty\.spawn|[\[(]\s*['\"](/bin/)?(ba|da|z)?sh['\"]\s*,\s*['\"]-c['\"]"
    r"|(^\s*|[;&|(]\s*)(eval|(ba)?sh\s+-c)(\s|$)")
# The wav.scp pipe (docs/robustness.md "Trust boundary") and utils/run.py, which runs a line of
# words it quoted itself with shlex.quote (to_shell).
ALLOWED = {"pyutils/data/audio.py", "utils/run.py"}


def test_no_shell_command_outside_the_two_reviewed_places():
    """Wider than tests/test_robustness_shell.py's scan: also utils/, local/ and the
    top-level scripts, and argv-style ``["bash", "-c", ...]`` calls."""
    assert SHELL_CALLS.search('subprocess.call(["bash", "-c", line])')   # the scan works
    assert SHELL_CALLS.search("x=$(sh -c \"$y\")") and SHELL_CALLS.search("  eval \"$line\"")
    assert not SHELL_CALLS.search("eval=$data/eval")
    found = {}
    files = [os.path.join(ROOT, f) for f in ("run.sh", "cmd.sh", "path.sh")]
    for top in ("pyutils", "steps", "utils", "local"):
        for folder, _, names in os.walk(os.path.join(ROOT, top)):
            files += [os.path.join(folder, n) for n in names if n.endswith((".py", ".sh"))]
    for path in files:
        rel = os.path.relpath(path, ROOT)
        with open(path, encoding="utf-8") as handle:
            for lineno, line in enumerate(handle, 1):
                if SHELL_CALLS.search(line) and not line.lstrip().startswith("#"):
                    found.setdefault(rel, []).append(f"{lineno}: {line.strip()}")
    assert set(found) <= ALLOWED, {k: v for k, v in found.items() if k not in ALLOWED}
    assert all(len(v) == 1 for v in found.values()), found


# ---------------------------------------------------------------- scoring streams

def test_score_trials_cli_never_holds_an_n_by_n_matrix(tmp_path):
    """Through pyutils.cli.score_trials (the job of steps/score_trials.sh): 4000
    utterances scored against each other on 30000 trials peak at well under one
    4000 x 4000 float32 matrix (64 MB), for cosine and PLDA."""
    from pyutils.cli import score_trials as score_cli
    n, dim, lda_dim = 4000, 16, 6
    rng = np.random.default_rng(3)
    table = {f"u{i:05d}": rng.normal(size=dim).astype(np.float32) for i in range(n)}
    scp = write_ark(str(tmp_path), "x", table)
    write_vector(str(tmp_path / "mean.vec"), np.zeros(dim))
    write_matrix(str(tmp_path / "lda.mat"), rng.normal(size=(lda_dim, dim + 1)))
    Plda(np.zeros(lda_dim), np.eye(lda_dim), np.linspace(3, 0.1, lda_dim)).save(
        str(tmp_path / "plda"))
    keys = sorted(table)
    pairs = rng.integers(0, n, size=(30000, 2))
    (tmp_path / "trials").write_text("".join(f"{keys[a]} {keys[b]} nontarget\n" for a, b in pairs))
    matrix_bytes = n * n * 4
    for kind in ("cosine", "plda"):
        out = tmp_path / f"{kind}.scores"
        tracemalloc.start()
        try:
            code = score_cli.main(["--backend", kind, "--backend-dir", str(tmp_path),
                                   "--enroll-scp", scp, "--test-scp", scp, "--trials",
                                   str(tmp_path / "trials"), "--out", str(out),
                                   "--block-size", "5000"])
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert code == 0
        assert peak < matrix_bytes // 4, (kind, peak)
        lines = out.read_text().splitlines()
        assert len(lines) == 30000
        a, b, value = lines[123].split()
        assert (a, b) == (keys[pairs[123][0]], keys[pairs[123][1]])
        if kind == "cosine":
            x, y = table[a].astype(np.float64), table[b].astype(np.float64)
            assert abs(float(value) - x @ y / np.linalg.norm(x) / np.linalg.norm(y)) < 1e-5
