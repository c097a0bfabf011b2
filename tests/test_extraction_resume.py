"""Embedding extraction: exact per-utterance results, and a SIGKILL midway through
steps/extract_embeddings.sh --nj 2 followed by a rerun gives the same files as an
uninterrupted run."""
import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
import yaml

from pyutils.extraction.extract import embed, extract, load_embedding_model, windows
from pyutils.features.pipeline import cmn_options, cmn_voiced
from pyutils.training.trainer import train
from pyutils.utils.arkio import load_scp_dict, write_scp_dict
from pyutils.utils.fileio import write_lines
from tests.conftest import ROOT

DIM = 30


def write_data_dir(directory, utts_per_spk, seed=0, with_vad=True):
    """feats.scp (+ vad.scp), utt2spk, spk2utt for {speaker: [num_frames, ...]}."""
    rng = np.random.default_rng(seed)
    feats, vad, utt2spk = {}, {}, {}
    for spk, lengths in utts_per_spk.items():
        centre = rng.normal(size=DIM) * 2
        for i, frames in enumerate(lengths):
            utt = f"{spk}-u{i}"
            feats[utt] = (centre + rng.normal(size=(frames, DIM))).astype(np.float32)
            vad[utt] = (rng.random(frames) > 0.2).astype(np.float32)
            utt2spk[utt] = spk
    os.makedirs(directory, exist_ok=True)
    write_scp_dict(os.path.join(directory, "feats.ark"), os.path.join(directory, "feats.scp"), feats)
    if with_vad:
        write_scp_dict(os.path.join(directory, "vad.ark"), os.path.join(directory, "vad.scp"), vad)
    write_lines(os.path.join(directory, "utt2spk"), (f"{u} {utt2spk[u]}" for u in sorted(utt2spk)))
    spks = sorted(set(utt2spk.values()))
    write_lines(os.path.join(directory, "spk2utt"),
                (spk + " " + " ".join(u for u in sorted(utt2spk) if utt2spk[u] == spk) for spk in spks))
    return feats, vad


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """A small x-vector TDNN trained for one epoch on synthetic features."""
    root = tmp_path_factory.mktemp("model")
    write_data_dir(str(root / "train"), {f"spk{s}": [260] * 4 for s in range(3)}, with_vad=False)
    config = {
        "model": {"name": "xvector", "embed_dim": 32, "frame_dims": [128, 128, 128, 128, 256]},
        "loss": {"name": "softmax"},
        "data": {"min_chunk_frames": 50, "max_chunk_frames": 80, "batch_size": 8,
                 "chunks_per_epoch": 16},
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        "scheduler": {"name": "exponential", "warmup_steps": 1, "final_lr_ratio": 0.1},
        "training": {"epochs": 1, "seed": 3, "num_threads": 1},
    }
    (root / "c.yaml").write_text(yaml.safe_dump(config))
    return train(str(root / "c.yaml"), str(root / "train"), str(root / "exp"))


def test_extract_equals_per_utterance_embed_whatever_the_split(tmp_path, model_path):
    feats, vad = write_data_dir(str(tmp_path / "d"), {"a": [400, 90, 30], "b": [700, 20]})
    cmn = cmn_options(os.path.join(ROOT, "conf", "cmvn.conf"))
    extract(model_path, str(tmp_path / "d" / "feats.scp"), str(tmp_path / "d" / "vad.scp"),
            str(tmp_path / "all.ark"), str(tmp_path / "all.scp"), cmn, chunk_size=300)
    got = load_scp_dict(str(tmp_path / "all.scp"))
    model = load_embedding_model(model_path)
    for utt in feats:
        want = embed(model, cmn_voiced(feats[utt], vad[utt], cmn), chunk_size=300)
        assert np.array_equal(got[utt], want), utt
    # one job per speaker: the same vectors, bit for bit
    for spk in ("a", "b"):
        keys = [u for u in sorted(feats) if u.startswith(spk)]
        with open(tmp_path / f"{spk}.feats.scp", "w") as out:
            out.writelines(l for l in open(tmp_path / "d" / "feats.scp") if l.split()[0] in keys)
        extract(model_path, str(tmp_path / f"{spk}.feats.scp"), str(tmp_path / "d" / "vad.scp"),
                str(tmp_path / f"{spk}.ark"), str(tmp_path / f"{spk}.scp"), cmn, chunk_size=300)
        for key, vector in load_scp_dict(str(tmp_path / f"{spk}.scp")).items():
            assert np.array_equal(vector, got[key])
    # sliding windows: one vector per window, each equal to embedding the window alone
    extract(model_path, str(tmp_path / "d" / "feats.scp"), str(tmp_path / "d" / "vad.scp"),
            str(tmp_path / "w.ark"), str(tmp_path / "w.scp"), cmn, window=100, window_shift=50)
    win = load_scp_dict(str(tmp_path / "w.scp"))
    voiced = cmn_voiced(feats["b-u0"], vad["b-u0"], cmn)
    spans = windows(len(voiced), 100, 50)
    assert sorted(k for k in win if k.startswith("b-u0-")) == [f"b-u0-{s:07d}-{e:07d}" for s, e in spans]
    for s, e in spans:
        assert np.array_equal(win[f"b-u0-{s:07d}-{e:07d}"], embed(model, voiced[s:e]))


def test_wrong_feature_dimension_is_a_clear_error(tmp_path, model_path):
    rng = np.random.default_rng(0)
    write_scp_dict(str(tmp_path / "f.ark"), str(tmp_path / "f.scp"),
                   {"u": rng.normal(size=(50, 12)).astype(np.float32)})
    write_scp_dict(str(tmp_path / "v.ark"), str(tmp_path / "v.scp"), {"u": np.ones(50, np.float32)})
    cmn = cmn_options(os.path.join(ROOT, "conf", "cmvn.conf"))
    with pytest.raises(ValueError, match="expects 30 dimensions"):
        extract(model_path, str(tmp_path / "f.scp"), str(tmp_path / "v.scp"),
                str(tmp_path / "o.ark"), str(tmp_path / "o.scp"), cmn)
    assert not (tmp_path / "o.scp").exists()


def run_step(model_path, data, out, **popen):
    cmd = [os.path.join(ROOT, "steps", "extract_embeddings.sh"), "--nj", "2",
           model_path, str(data), str(out)]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, **popen)


def snapshot(out):
    """Every published file of an embeddings dir (logs aside), as bytes."""
    files = {}
    for name in sorted(os.listdir(out)):
        path = os.path.join(out, name)
        if os.path.isfile(path):
            with open(path, "rb") as handle:
                files[name] = handle.read()
    return files


def test_sigkill_midway_then_rerun_gives_the_same_files(tmp_path, model_path):
    # job 1 (speaker a) is quick, job 2 (speaker b) is long: kill while only job 1 is done
    data = tmp_path / "data"
    write_data_dir(str(data), {"a": [300, 250], "b": [30000] * 4})
    out = tmp_path / "emb"
    straight = run_step(model_path, data, out)
    log = straight.communicate()[0]
    assert straight.returncode == 0, log
    reference = snapshot(out)
    assert {"xvector.scp", "xvector.1.ark", "xvector.2.ark", "spk_xvector.scp", ".done"} <= set(reference)
    shutil.rmtree(out)

    killed = run_step(model_path, data, out, start_new_session=True)
    deadline = time.time() + 120
    while not (out / "xvector.1.scp.done").exists():
        assert killed.poll() is None and time.time() < deadline, "extraction ended too early"
        time.sleep(0.01)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    assert not (out / "xvector.2.scp.done").exists(), "job 2 finished before the kill"
    assert not (out / "xvector.scp").exists() and not (out / ".done").exists()

    rerun = run_step(model_path, data, out)
    log = rerun.communicate()[0]
    assert rerun.returncode == 0, log
    assert "job already done" in (out / "log" / "extract.1.log").read_text()
    assert "job already done" not in (out / "log" / "extract.2.log").read_text()
    again = snapshot(out)
    assert sorted(again) == sorted(reference)            # no temp files left behind
    for name in reference:
        if name == ".done":   # the step's marker: same inputs' stamp, a new run id
            assert again[name].splitlines()[0] == reference[name].splitlines()[0]
            assert again[name] != reference[name]
        else:
            assert again[name] == reference[name], name


def test_waveform_model_extraction_reads_the_audio(tmp_path):
    """--input waveform: every utterance of wav.scp embedded from its samples,
    equal to the network run on the whole waveform (no VAD, no CMN)."""
    import soundfile
    import torch
    from pyutils.models import build_model
    from pyutils.training import checkpoint

    torch.manual_seed(0)
    config = {"name": "wav2spk", "embed_dim": 16, "encoder_channels": [8, 8, 8, 8, 8],
              "aggregator_dims": [8, 8], "segment_dim": 8}
    model = build_model(config["name"], feat_dim=1,
                        **{k: v for k, v in config.items() if k != "name"}).eval()
    model_file = str(tmp_path / "final.pt")
    checkpoint.save(model_file, {"config": {"model": config}, "feat_dim": 1,
                                 "model": model.state_dict()})
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    audio = {}
    for spk in ("s1", "s2"):
        for i, seconds in enumerate((0.5, 1.3)):
            utt = f"{spk}-u{i}"
            audio[utt] = (rng.normal(size=int(16000 * seconds)) * 3000).astype(np.int16)
            soundfile.write(str(tmp_path / f"{utt} x.wav"), audio[utt], 16000)
    write_lines(str(data / "wav.scp"), (f"{u} {tmp_path}/{u} x.wav" for u in sorted(audio)))
    write_lines(str(data / "utt2spk"), (f"{u} {u[:2]}" for u in sorted(audio)))
    write_lines(str(data / "spk2utt"), ("s1 s1-u0 s1-u1", "s2 s2-u0 s2-u1"))
    out = tmp_path / "emb"
    result = subprocess.run([os.path.join(ROOT, "steps", "extract_embeddings.sh"), "--nj", "2",
                             "--input", "waveform", "--chunk-size", "60", model_file, str(data),
                             str(out)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    got = load_scp_dict(str(out / "xvector.scp"))
    assert sorted(got) == sorted(audio)
    for utt, samples in audio.items():
        # chunks of 60 frames = 9600 samples, averaged weighted by length
        assert np.allclose(got[utt], embed(model, samples.astype(np.float32), 9600, 25 * 160),
                           atol=1e-6), utt
    assert sorted(load_scp_dict(str(out / "spk_xvector.scp"))) == ["s1", "s2"]


def test_padded_utterances_are_warned_about_and_counted(tmp_path, model_path, caplog):
    """The README's promise: every utterance with fewer voiced frames than
    --min-chunk-size is padded, named in a warning and counted, in the job's log
    line and in the step's summary line (summed over the jobs); an utterance with
    no voiced frame is skipped and counted apart."""
    import logging

    data = tmp_path / "data"
    feats, vad = write_data_dir(str(data), {"a": [200, 12, 300], "b": [20, 250, 40]})
    vad["b-u2"][:] = 0                     # no voiced frame: skipped, not padded
    write_scp_dict(str(data / "vad.ark"), str(data / "vad.scp"), vad)
    voiced = {u: int(v.sum()) for u, v in vad.items()}
    short = sorted(u for u, n in voiced.items() if 0 < n < 25)
    assert short == ["a-u1", "b-u0"]       # 12 and 20 frames, about 80 % voiced

    with caplog.at_level(logging.WARNING):
        counts = extract(model_path, str(data / "feats.scp"), str(data / "vad.scp"),
                         str(tmp_path / "o.ark"), str(tmp_path / "o.scp"),
                         cmn_options(os.path.join(ROOT, "conf", "cmvn.conf")))
    assert (counts["done"], counts["padded"], counts["skipped"]) == (5, 2, 1)
    padded = [r.getMessage() for r in caplog.records if "padded by" in r.getMessage()]
    assert padded == [f"{u}: {voiced[u]} voiced frames, fewer than --min-chunk-size 25: padded "
                      f"by repeating its edge frames (Kaldi --pad-input); its embedding is "
                      f"unreliable (raise --min-duration in the feature config to skip such "
                      f"audio)" for u in short]

    out = tmp_path / "emb"
    step = run_step(model_path, data, out)
    log = step.communicate()[0]
    assert step.returncode == 0, log
    assert (f"5 embeddings in {out}; 2 padded (fewer voiced frames than --min-chunk-size 25), "
            f"1 skipped (no voiced frames): named in {out}/log/extract.*.log") in log
    for job, utt in ((1, "a-u1"), (2, "b-u0")):   # split by speaker: a in job 1, b in job 2
        text = (out / "log" / f"extract.{job}.log").read_text()
        assert f"{utt}: {voiced[utt]} voiced frames, fewer than --min-chunk-size 25" in text
        assert "; 1 padded: shorter than --min-chunk-size)" in text
