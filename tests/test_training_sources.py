"""Training sources: on-the-fly features equal precomputed ones; validation split;
speed perturbation as new speakers; checkpoint averaging."""
import os
import subprocess
import sys

import numpy as np
import soundfile as sf
import torch

from pyutils.training import checkpoint
from pyutils.training.data import (OnTheFlyFeatures, PrecomputedFeatures, WaveformStore,
                                   split_validation)
from pyutils.utils.fileio import read_key_value, write_lines
from tests.conftest import ROOT


def make_audio_dir(tmp_path, num_spk=2, utts=2, seconds=3):
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    wav, u2s = [], []
    for s in range(num_spk):
        for u in range(utts):
            utt = f"s{s}-u{u}"
            n = 16000 * seconds
            t = np.arange(n)
            speech = 6000 * np.sin(t * 0.03 * (s + 1)) * ((t // 8000) % 2 == 0)
            path = tmp_path / "audio" / f"{utt}.flac"
            os.makedirs(path.parent, exist_ok=True)
            sf.write(path, (speech + rng.normal(0, 20, n)).astype(np.int16), 16000)
            wav.append(f"{utt} {path}")
            u2s.append(f"{utt} s{s}")
    write_lines(str(data / "wav.scp"), wav)
    write_lines(str(data / "utt2spk"), u2s)
    write_lines(str(data / "spk2utt"),
                (f"s{s} " + " ".join(f"s{s}-u{u}" for u in range(utts)) for s in range(num_spk)))
    return data


def no_dither_conf(tmp_path, name):
    lines = [l for l in open(os.path.join(ROOT, "conf", name)) if "dither" not in l]
    path = tmp_path / name
    path.write_text("".join(lines) + "--dither=0\n")
    return str(path)


def run_cli(*args):
    subprocess.run([sys.executable, "-m", *args], check=True, capture_output=True,
                   env={**os.environ, "PYTHONPATH": ROOT}, cwd=ROOT)


def test_on_the_fly_features_equal_the_precomputed_pipeline(tmp_path):
    data = make_audio_dir(tmp_path)
    mfcc_conf = no_dither_conf(tmp_path, "mfcc.conf")
    vad_conf, cmvn_conf = (os.path.join(ROOT, "conf", c) for c in ("vad.conf", "cmvn.conf"))
    run_cli("pyutils.cli.compute_mfcc_vad", "--mfcc-config", mfcc_conf, "--vad-config", vad_conf,
            str(data), str(tmp_path / "raw"), str(tmp_path / "vad"))
    run_cli("pyutils.cli.prepare_feats", "--cmvn-config", cmvn_conf, str(tmp_path / "raw.scp"),
            str(tmp_path / "vad.scp"), str(tmp_path / "egs"))
    utt2spk = read_key_value(str(data / "utt2spk"))
    pre = PrecomputedFeatures(str(tmp_path / "egs.scp"), utt2spk)
    fly = OnTheFlyFeatures(str(data), "mfcc", mfcc_conf, vad_conf, cmvn_conf, mfcc_conf)
    assert pre.utts == fly.utts and list(pre.lengths) == list(fly.lengths)
    for i in range(len(pre)):
        np.testing.assert_allclose(fly.chunk(i, 10, 50), pre.chunk(i, 10, 50), atol=1e-4)
    assert list(pre.labels) == list(fly.labels) == [0, 0, 1, 1]


def test_speed_perturbation_makes_new_speakers(tmp_path):
    data = make_audio_dir(tmp_path)
    store = WaveformStore(str(data), speeds=(1.0, 0.9, 1.1))
    assert store.num_classes == 6 and len(store) == 12
    assert sorted(set(store.labels)) == [0, 1, 2, 3, 4, 5]
    n = 48000
    assert list(store.lengths[:4]) == [n] * 4
    assert abs(store.lengths[4] - n / 0.9) <= 1 and abs(store.lengths[8] - n / 1.1) <= 1


def test_validation_split_holds_out_the_last_utterances_per_speaker():
    utt2spk = {"a-1": "a", "a-2": "a", "a-3": "a", "b-1": "b", "c-1": "c", "c-2": "c"}
    train, valid = split_validation(utt2spk, 1)
    assert valid == ["a-3", "c-2"] and train == ["a-1", "a-2", "b-1", "c-1"]
    assert split_validation(utt2spk, 0) == (sorted(utt2spk), [])


def test_checkpoint_averaging(tmp_path):
    for epoch, value in ((1, 1.0), (2, 2.0), (3, 6.0)):
        checkpoint.save(checkpoint.epoch_path(str(tmp_path), epoch),
                        {"model": {"w": torch.full((2,), value),
                                   "n": torch.tensor(epoch, dtype=torch.long)}})
    averaged = checkpoint.average(str(tmp_path), 3, 2)
    assert torch.equal(averaged["w"], torch.full((2,), 4.0)) and averaged["n"].item() == 3
    assert torch.equal(checkpoint.average(str(tmp_path), 3, 1)["w"], torch.full((2,), 6.0))
