"""run.sh --aug true: Kaldi's offline augmentation path (egs/voxceleb/v2 stages 2-3)
on a slice of ASC: copies per kind of conf/augment.conf, combined with the clean
set, the VAD of the copies taken from the clean audio, skipped when complete."""
import os
import subprocess

import pytest

from tests.conftest import ROOT


def table(path):
    with open(path) as handle:
        return dict(line.rstrip("\n").split(" ", 1) for line in handle)


@pytest.mark.slow
def test_aug_true_trains_on_clean_plus_copies_with_clean_vad(asc_root, tmp_path):
    cmd = ["./run.sh", "--stage", "0", "--stop-stage", "2", "--aug", "true", "--reps", "01",
           "--train-speakers", "1-2", "--eval-speakers", "19-20", "--corpus-root", asc_root,
           "--data", str(tmp_path / "data"), "--exp", str(tmp_path / "exp")]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    combined = tmp_path / "data" / "train_combined"
    clean_vad = table(tmp_path / "data" / "train" / "vad.scp")
    vad = table(combined / "vad.scp")
    assert len(clean_vad) == 8 and len(vad) == 24  # clean + reverb + noise copies
    for utt in clean_vad:
        # Kaldi: no new VAD for the copies; each points at its clean utterance's VAD
        assert vad[f"{utt}-reverb"] == vad[f"{utt}-noise"] == clean_vad[utt]
    feats = table(combined / "feats.scp")
    assert feats[f"{next(iter(clean_vad))}-noise"] != feats[next(iter(clean_vad))]
    assert len(table(tmp_path / "data" / "train_combined_no_sil" / "feats.scp")) == 24
    # the copies are augmented on read: pipes through pyutils.cli.augment_audio
    assert "augment_audio" in table(combined / "wav.scp")[f"{next(iter(clean_vad))}-reverb"]
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 0 and f"{combined} is complete" in again.stdout


def test_aug_true_refuses_online_augmenting_configs(tmp_path):
    result = subprocess.run(["./run.sh", "--stage", "3", "--stop-stage", "3", "--aug", "true",
                             "--model", "ecapa_c512_aug", "--data", str(tmp_path / "d"),
                             "--exp", str(tmp_path / "e")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 1 and "--aug true needs precomputed features" in result.stderr
