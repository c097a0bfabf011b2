"""The sv command (embed, verify, score, eval) against a tiny packaged model."""
import contextlib
import io
import json
import math
import os
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from conftest import ROOT
from deploy_helpers import asc_clip, build_tiny_package


def sv(*args):
    """Run ``sv ARGS`` in this process (what ``python -m pyutils.cli`` runs; no interpreter
    and torch start-up per call); returncode, stdout and stderr as subprocess gives them."""
    from pyutils.cli.sv import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exit_:
            code = exit_.code
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def cosine(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    return build_tiny_package(str(tmp_path_factory.mktemp("pkg")), export=False)


@pytest.fixture(scope="module")
def uncalibrated(tmp_path_factory):
    return build_tiny_package(str(tmp_path_factory.mktemp("raw")), export=False, calibrated=False)


def verify_json(package, *args):
    result = sv("verify", "-p", package, "--json", "-q", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_verify_scores_calibrates_and_decides(package, asc_root):
    """A file against itself: cosine 1, LLR = 10 * 1 - 5 (the packaged calibration),
    accepted at every saved threshold; a threshold above 1 rejects it."""
    clip = asc_clip(asc_root, 21)
    out = verify_json(package, clip, clip)
    assert out["score"] == pytest.approx(1.0, abs=1e-6)
    assert out["llr"] == pytest.approx(5.0, abs=1e-5)
    assert (out["decision"], out["threshold"], out["backend"]) == ("accept", 0.5, "cosine")
    assert verify_json(package, clip, clip, "--threshold", "min_dcf")["threshold"] == 0.8
    bayes = verify_json(package, clip, clip, "--threshold", "bayes", "--p-target", "0.01")
    assert bayes["threshold"] == pytest.approx((math.log(99) + 5) / 10)
    assert verify_json(package, clip, clip, "--threshold", "1.5")["decision"] == "reject"
    text = sv("verify", "-p", package, "-q", clip, clip)
    assert "decision: ACCEPT (same speaker)" in text.stdout and "LLR: 5" in text.stdout
    assert text.stderr == ""              # --quiet: no progress line either


def test_verify_enrols_the_mean_of_several_files(package, asc_root, tmp_path):
    clips = [asc_clip(asc_root, 21, k) for k in ("backward", "cancel")] + [asc_clip(asc_root, 25)]
    for i, clip in enumerate(clips):   # two share a file name: embedded one by one
        result = sv("embed", "-p", package, "-q", clip, "-o", tmp_path / f"e{i}.npy")
        assert result.returncode == 0, result.stderr
    e = np.concatenate([np.load(tmp_path / f"e{i}.npy") for i in range(3)]).astype(np.float64)
    out = verify_json(package, *clips)
    assert out["score"] == pytest.approx(cosine((e[0] + e[1]) / 2, e[2]), abs=1e-6)
    assert out["llr"] == pytest.approx(10 * out["score"] - 5, abs=1e-6)
    assert out["decision"] == ("accept" if out["score"] >= 0.5 else "reject")
    assert "same id" in sv("embed", "-p", package, *clips, "-o", tmp_path / "x.npy").stderr


def test_verify_without_calibration_says_why(uncalibrated, asc_root):
    clip = asc_clip(asc_root, 21)
    out = verify_json(uncalibrated, clip, clip)
    assert out["llr"] is None and out["decision"] is None and "no calibration" in out["why"]
    assert verify_json(uncalibrated, clip, clip, "--threshold", "0.3")["decision"] == "accept"
    text = sv("verify", "-p", uncalibrated, "-q", clip, clip).stdout
    assert "score (cosine): 1" in text and "decision: none: the package has no calibration" in text


def test_bad_audio_is_named_refused_or_resampled(package, asc_root, tmp_path):
    clip = asc_clip(asc_root, 21)
    garbage = tmp_path / "noise.wav"
    garbage.write_bytes(b"this is not audio" * 100)
    result = sv("embed", "-p", package, garbage, "-o", tmp_path / "x.ark")
    assert result.returncode == 1 and str(garbage) in result.stderr
    assert not os.path.exists(tmp_path / "x.ark")
    missing = sv("verify", "-p", package, clip, tmp_path / "absent.wav")
    assert missing.returncode == 1 and "no such audio file" in missing.stderr
    samples, rate = sf.read(clip)
    slow = tmp_path / "slow.wav"
    sf.write(slow, samples[::2], rate // 2)
    refused = sv("embed", "-p", package, slow, "-o", tmp_path / "s.npy")
    assert refused.returncode == 1
    assert "sample rate is 8000 Hz but --sample-frequency=16000" in refused.stderr
    assert "--resample" in refused.stderr
    assert sv("embed", "-p", package, "-q", slow, "--resample", "-o",
              tmp_path / "s.npy").returncode == 0
    assert np.load(tmp_path / "s.npy").shape == (1, 16)
    skipped = sv("embed", "-p", package, "-q", clip, garbage, "--skip-errors", "-o",
                 tmp_path / "k.ark")
    assert skipped.returncode == 0, skipped.stderr
    assert open(tmp_path / "k.skipped").read().split()[0] == "noise"
    assert sv("verify", "-p", tmp_path, clip, clip).stderr.strip().endswith(
        "(no manifest.json); build one with steps/package_model.sh or ./run.sh --stage 8")


def test_score_uses_the_packaged_backends(package, asc_root, tmp_path):
    """Trials + sv embed's scp -> the back-end's scores (cosine = the plain cosine of the
    mean-subtracted vectors; mean.vec is 0 here), calibrated LLRs with --llr, and PLDA."""
    clips = [asc_clip(asc_root, s) for s in (21, 22, 25)]
    assert sv("embed", "-p", package, "-q", *clips, "-o", tmp_path / "e.ark").returncode == 0
    assert sv("embed", "-p", package, "-q", *clips, "-o", tmp_path / "e.npy").returncode == 0
    e = dict(zip(open(tmp_path / "e.keys").read().split(), np.load(tmp_path / "e.npy")))
    keys = sorted(e)
    trials = tmp_path / "trials"
    trials.write_text(f"{keys[0]} {keys[1]} nontarget\n{keys[0]} {keys[2]} nontarget\n")
    for extra, expect in (((), lambda s: s), (("--llr",), lambda s: 10 * s - 5)):
        result = sv("score", "-p", package, "--trials", trials, "--enroll-scp",
                    tmp_path / "e.scp", "--out", tmp_path / "scores", *extra)
        assert result.returncode == 0, result.stderr
        lines = [line.split() for line in open(tmp_path / "scores")]
        assert [line[:2] for line in lines] == [[keys[0], keys[1]], [keys[0], keys[2]]]
        for (a, b, value) in lines:
            assert float(value) == pytest.approx(expect(cosine(e[a], e[b])), abs=1e-5)
    plda = sv("score", "-p", package, "--trials", trials, "--enroll-scp", tmp_path / "e.scp",
              "--out", tmp_path / "plda", "--backend", "plda")
    assert plda.returncode == 0, plda.stderr
    assert len(open(tmp_path / "plda").readlines()) == 2
    assert "no calibration for 'plda'" in sv(
        "score", "-p", package, "--trials", trials, "--enroll-scp", tmp_path / "e.scp",
        "--out", tmp_path / "p2", "--backend", "plda", "--llr").stderr


def test_eval_scores_a_folder_data_dir_in_one_command(package, asc_root, tmp_path):
    """utils/folder_to_data_dir.sh --trials over a folder of two speakers' clips, then
    sv eval: embeddings, cosine and PLDA scores, the metrics table, the calibrated table."""
    root = tmp_path / "audio"
    for speaker in (21, 25):
        (root / f"spk{speaker}").mkdir(parents=True)
        for keyword in ("backward", "cancel"):
            shutil.copy(asc_clip(asc_root, speaker, keyword), root / f"spk{speaker}" / f"{keyword}.flac")
    (root / "spk25" / "broken.flac").write_bytes(b"not audio")
    data = tmp_path / "data"
    prep = subprocess.run(["bash", "-c", f'. ./path.sh && utils/folder_to_data_dir.sh --trials '
                           f'"{root}" "{data}"'], cwd=ROOT, capture_output=True, text=True)
    assert prep.returncode == 0, prep.stderr
    result = sv("eval", "-p", package, data, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    assert len(open(out / "embeddings" / "xvector.scp").readlines()) == 4
    assert open(out / "skipped").read().split()[1:] == ["not", "audio"]
    assert len(open(out / "trials").readlines()) == 6    # pairs of the 4 readable files
    results = open(out / "results.md").read()
    assert "| xvector | cosine |" in results and "| xvector | plda |" in results
    assert "| cosine | 0.5: " in open(out / "decisions.md").read()    # the saved eer threshold
    assert len(open(out / "scores" / "cosine" / "llr").readlines()) == 6
    calibrated = [line for line in results.splitlines() if "| cosine |" in line][-1]
    assert calibrated.split("|")[-3].strip() != "-"                   # Cllr from the LLRs
    assert os.path.getsize(out / "det.png") > 0
    assert "results in" in result.stdout


def test_cuda_device_fails_cleanly_without_a_gpu(package, asc_root, tmp_path):
    """The CUDA path exists (the model moved to the GPU) and, on a machine without one,
    stops with one line saying what is missing (ONNX Runtime's: tests/test_deploy.py)."""
    import torch
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the CUDA path runs instead of failing")
    result = sv("embed", "-p", package, "--device", "cuda", asc_clip(asc_root, 21),
                "-o", tmp_path / "c.npy")
    assert result.returncode == 1 and "no CUDA device is available" in result.stderr
    assert result.stderr.count("\n") == 1 and "--device cuda" in result.stderr
    assert not os.path.exists(tmp_path / "c.npy")


def test_embed_a_folder_names_files_by_relative_path(package, asc_root, tmp_path):
    """A folder is searched recursively; ids are relative paths without extension, '/' ->
    '-', whitespace -> '_'; the rows of the .npy follow the .keys; non-audio is ignored."""
    root = tmp_path / "audio"
    (root / "spk 21" / "day1").mkdir(parents=True)
    (root / "spk25").mkdir()
    shutil.copy(asc_clip(asc_root, 21), root / "spk 21" / "day1" / "a.flac")
    shutil.copy(asc_clip(asc_root, 25), root / "spk25" / "b.flac")
    (root / "spk25" / "notes.txt").write_text("not audio, not listed")
    result = sv("embed", "-p", package, "-q", root, "-o", tmp_path / "out" / "e.npy")
    assert result.returncode == 0, result.stderr
    assert open(tmp_path / "out" / "e.keys").read().split() == ["spk_21-day1-a", "spk25-b"]
    rows = np.load(tmp_path / "out" / "e.npy")
    assert rows.shape == (2, 16)
    scp = tmp_path / "one.scp"                   # the same file under the same id, alone
    scp.write_text(f"spk25-b {root / 'spk25' / 'b.flac'}\n")
    assert sv("embed", "-p", package, "-q", scp, "-o", tmp_path / "one.npy").returncode == 0
    np.testing.assert_allclose(np.load(tmp_path / "one.npy")[0], rows[1], rtol=1e-5, atol=1e-6)
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = sv("embed", "-p", package, empty, "-o", tmp_path / "x.npy")
    assert nothing.returncode == 1 and "no audio files" in nothing.stderr


def test_onnx_runtime_of_a_package_without_exports_names_the_cause(package, tmp_path):
    """A package built with export off: --runtime onnx says so and what works; it does
    not blame the device (it once said "--device cpu: ... has no ONNX export")."""
    wav = tmp_path / "a.wav"
    sf.write(str(wav), (np.random.default_rng(0).normal(size=16000) * 3000).astype(np.int16),
             16000)
    result = sv("embed", "-p", package, "--runtime", "onnx", wav, "-o", tmp_path / "e.npy")
    assert result.returncode == 1
    assert "has no ONNX export: it was built without exports" in result.stderr
    assert "use --runtime torch" in result.stderr and "--device" not in result.stderr
