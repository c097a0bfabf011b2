"""Protocol asc-v1: counts, ids, trials, both clip formats, missing corpus."""
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import ROOT

SCRIPT = os.path.join(ROOT, "local", "prepare_asc.py")


def run_prepare(*args, env=None):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": ROOT, **(env or {})})


def read_lines(path):
    with open(path) as handle:
        return [line.split() for line in handle]


def test_asc_v1_counts_on_the_real_corpus(asc_root, tmp_path):
    result = run_prepare("--corpus-root", asc_root, str(tmp_path))
    assert result.returncode == 0, result.stderr
    train, evaluation = tmp_path / "train", tmp_path / "eval"
    assert len(read_lines(train / "utt2spk")) == 360
    assert len(read_lines(train / "spk2utt")) == 18
    assert len(read_lines(evaluation / "utt2spk")) == 240
    trials = read_lines(evaluation / "trials")
    assert len(trials) == 28680
    assert sum(t[2] == "target" for t in trials) == 2280
    assert all(a < b for a, b, _ in trials)
    utts = [u for u, _ in read_lines(evaluation / "utt2spk")]
    assert "00000021-r03-g2" in utts and utts == sorted(utts)
    assert {u.split("-")[0] for u in utts} == {f"{i:08d}" for i in range(19, 31)}
    # group 4 holds the keyword folders with a space ('zoom in', 'zoom out')
    line = next(l for l in open(evaluation / "wav.scp") if l.startswith("00000019-r01-g4 "))
    assert "'" in line and "zoom in/00000019_NO_01.flac" in line


def make_fake_corpus(root, keywords, speakers, reps, ext):
    for kw in keywords:
        os.makedirs(root / "asc" / "dataset" / kw, exist_ok=True)
        for spk in speakers:
            for rep in reps:
                samples = np.full(1600, spk * 100 + rep, dtype=np.int16)
                sf.write(root / "asc" / "dataset" / kw / f"{spk:08d}_NO_{rep:02d}.{ext}",
                         samples, 16000, subtype="PCM_16")


def test_wav_original_with_ten_reps_and_audio_pipe(tmp_path):
    keywords = [f"kw{i:02d}" for i in range(7)] + ["zoom in"]  # 8 -> 4 groups of 2
    make_fake_corpus(tmp_path / "corpus", keywords, [1, 2, 19], range(1, 11), "wav")
    out = tmp_path / "data"
    result = run_prepare("--corpus-root", str(tmp_path / "corpus"), "--train-speakers", "1-2",
                         "--eval-speakers", "19", str(out))
    assert result.returncode == 0, result.stderr
    utts = [u for u, _ in read_lines(out / "train" / "utt2spk")]
    assert len(utts) == 2 * 10 * 4 and "00000002-r10-g4" in utts
    assert len(read_lines(out / "eval" / "trials")) == 40 * 39 // 2
    # the wav.scp pipe concatenates the clips in keyword order: 2 clips of 0.1 s
    value = dict(l.rstrip("\n").split(" ", 1) for l in open(out / "train" / "wav.scp"))
    audio = subprocess.run(value["00000002-r10-g4"].rstrip("| "), shell=True, capture_output=True,
                           env={**os.environ, "PYTHONPATH": ROOT,
                                "PATH": os.path.dirname(sys.executable) + os.pathsep
                                + os.environ["PATH"]}, check=True).stdout
    import io
    samples, rate = sf.read(io.BytesIO(audio), dtype="int16")
    assert rate == 16000 and len(samples) == 3200 and np.all(samples == 210)


def test_missing_corpus_offline_names_the_option(tmp_path):
    result = run_prepare("--corpus-root", str(tmp_path / "nowhere"),
                         "--url", "http://127.0.0.1:9/asc.zip", str(tmp_path / "data"))
    assert result.returncode != 0
    assert "--corpus-root" in result.stderr and "offline" in result.stderr
    assert not (tmp_path / "nowhere" / "asc").exists()


def test_download_from_local_mirror(tmp_path):
    import shutil
    make_fake_corpus(tmp_path / "src", [f"k{i}" for i in range(4)], [1, 19], [1], "flac")
    archive = shutil.make_archive(str(tmp_path / "mirror"), "zip", tmp_path / "src")
    result = run_prepare("--corpus-root", str(tmp_path / "corpora"), "--url", archive,
                         "--train-speakers", "1", "--eval-speakers", "19", str(tmp_path / "data"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "corpora" / "asc" / "dataset" / "k0").is_dir()
    assert len(read_lines(tmp_path / "data" / "train" / "utt2spk")) == 4


def test_calibration_speakers_are_held_out_of_training(tmp_path):
    keywords = [f"kw{i:02d}" for i in range(8)]
    make_fake_corpus(tmp_path / "corpus", keywords, [1, 2, 3, 19], range(1, 3), "wav")
    out = tmp_path / "data"
    common = ("--corpus-root", str(tmp_path / "corpus"), "--eval-speakers", "19")
    clash = run_prepare(*common, "--train-speakers", "1-3", "--calib-speakers", "3", str(out))
    assert clash.returncode != 0
    assert "--train-speakers and --calib-speakers overlap: 1 speaker(s) in both, e.g. 3" \
        in clash.stderr
    result = run_prepare(*common, "--train-speakers", "1-2", "--calib-speakers", "3", str(out))
    assert result.returncode == 0, result.stderr
    calib = {s for _, s in read_lines(out / "calib" / "utt2spk")}
    train = {s for _, s in read_lines(out / "train" / "utt2spk")}
    assert calib == {"00000003"} and train == {"00000001", "00000002"}
    assert len(read_lines(out / "calib" / "utt2spk")) == 2 * 4
    assert not (out / "calib" / "trials").exists()   # stage 6 makes the calibration trials
