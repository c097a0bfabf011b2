"""Training GE2E on a corpus (the issue-19 demonstration): the training utterances prepared
as Resemblyzer prepares them (``features.prepare: ge2e``), a training chunk embedded as one
partial, an imported model kept as it is (``training.epochs: 0``) and the summary saying how
each run started (scratch / fine-tuned / as-is)."""
import json
import os

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from pyutils.features import ge2e_mel
from pyutils.features.pipeline import FeaturePipeline
from pyutils.models.ge2e import GE2E
from pyutils.training import checkpoint
from pyutils.training.data import WaveformStore
from pyutils.training.trainer import train
from pyutils.utils.fileio import write_lines

pytest.importorskip("webrtcvad")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures", "parity")


def resemblyzer_waves():
    data = np.load(os.path.join(FIX, "resemblyzer_waves.npz"))
    return {name: data[name] for name in ("long", "short")}


def test_prepared_training_audio_is_resemblyzers_preprocess_wav():
    """features.prepare: ge2e gives the samples resemblyzer.preprocess_wav keeps (its own
    output, tests/fixtures/parity), on the int16 scale; digital silence stays as it is."""
    pipeline = FeaturePipeline.from_config({"type": "waveform", "prepare": "ge2e"})
    ref = np.load(os.path.join(FIX, "resemblyzer_small.npz"))
    for name, pcm in resemblyzer_waves().items():
        ours = pipeline.training_waveform(pcm.astype(np.float32), 16000) / 32768.0
        np.testing.assert_allclose(ours, ref[f"{name}_preprocessed"], rtol=1e-5, atol=1e-7)
    silence = np.zeros(8000, np.float32)
    assert np.array_equal(pipeline.training_waveform(silence, 16000), silence)
    plain = FeaturePipeline.from_config({"type": "waveform"})
    assert np.array_equal(plain.training_waveform(silence + 3, 16000), silence + 3)
    with pytest.raises(ValueError, match="features.prepare: 'ge2e' .*features.type: fbank"):
        FeaturePipeline.from_config({"type": "fbank", "prepare": "ge2e"})


def wav_dir(root, speakers=2, utts=2):
    """Pieces of the speech-like parity waveform between 0.5 s silences (the VAD trims
    those), one pitch per speaker, int16 wav files."""
    root.mkdir(parents=True, exist_ok=True)
    long = resemblyzer_waves()["long"].astype(np.float64)
    wav, spk = [], []
    for s in range(speakers):
        for u in range(utts):
            piece = long[u * 16000:u * 16000 + 32000]
            piece = np.interp(np.arange(0, len(piece), 1 + 0.1 * s), np.arange(len(piece)), piece)
            x = np.concatenate([np.zeros(8000), piece, np.zeros(8000)])
            path = root / f"s{s}u{u}.wav"
            sf.write(str(path), x.astype(np.int16), 16000)
            wav.append(f"s{s}-u{u} {path}")
            spk.append(f"s{s}-u{u} s{s}")
    write_lines(str(root / "wav.scp"), wav)
    write_lines(str(root / "utt2spk"), spk)
    return str(root)


def test_waveform_store_cuts_chunks_from_prepared_utterances(tmp_path):
    data = wav_dir(tmp_path / "data", speakers=1, utts=1)
    pipeline = FeaturePipeline.from_config({"type": "waveform", "prepare": "ge2e"})
    store = WaveformStore(data, pipeline=pipeline)
    samples = sf.read(str(tmp_path / "data" / "s0u0.wav"), dtype="int16")[0]
    expected = ge2e_mel.preprocess(samples / 32768.0) * 32768.0
    assert len(expected) < len(samples) - 8000      # the silences are gone
    np.testing.assert_allclose(store.audio[0], expected, atol=1e-2)
    assert store.lengths[0] == len(expected)
    assert WaveformStore(data).lengths[0] == len(samples)   # no prepare: the audio as is


def test_a_training_chunk_is_embedded_as_one_partial():
    """A chunk shorter than 1.6 s is zero-padded to a partial as embed_utterance pads a
    short utterance: training and extraction give the same embedding (VAD off, a level
    above -30 dBFS so the volume is left alone)."""
    torch.manual_seed(0)
    model = GE2E(hidden_size=16, num_layers=2, embed_dim=12, vad=False)
    rng = np.random.default_rng(0)
    wav = (rng.normal(size=9000) * 8000).astype(np.float32)[None]      # 0.56 s
    with torch.no_grad():
        model.train()
        trained = model(torch.from_numpy(wav))
        model.eval()
        extracted = model(torch.from_numpy(wav))
    np.testing.assert_allclose(trained.numpy(), extracted.numpy(), rtol=1e-5, atol=1e-6)
    model.train()
    assert model.partial_mels(np.zeros(32000)).shape == (200, 40)     # longer: its own frames


def small_config(path, **training):
    cfg = {"model": {"name": "ge2e", "num_mels": 40, "hidden_size": 16, "num_layers": 1,
                     "embed_dim": 32},
           "features": {"type": "waveform", "prepare": "ge2e"},
           "loss": {"name": "aam", "scale": 16, "margin": 0.2},
           "data": {"min_chunk_frames": 50, "max_chunk_frames": 50, "batch_size": 2,
                    "chunks_per_epoch": 2},
           "optimizer": {"name": "sgd", "lr": 0.01},
           "training": {"epochs": 1, "seed": 1, "num_threads": 1, **training}}
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_epochs_0_keeps_the_init_model_as_it_is(tmp_path):
    """training.epochs: 0 (conf/asis.yaml): final.pt is the init_from network unchanged,
    no epoch runs, and the summary says as-is and where the model came from."""
    data = wav_dir(tmp_path / "data")
    scratch = train(small_config(tmp_path / "scratch.yaml"), data, str(tmp_path / "scratch"))
    summary = json.load(open(tmp_path / "scratch" / "train_summary.json"))
    assert (summary["start"], summary["init_from"], summary["init_source"]) == \
        ("scratch", None, None)
    final = train(small_config(tmp_path / "asis.yaml", epochs=0, init_from=scratch), data,
                  str(tmp_path / "asis"))
    ours, theirs = checkpoint.load(final)["model"], checkpoint.load(scratch)["model"]
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert not os.listdir(tmp_path / "asis" / "models")
    summary = json.load(open(tmp_path / "asis" / "train_summary.json"))
    assert (summary["start"], summary["init_from"], summary["epochs"], summary["chunks"]) == \
        ("as-is", scratch, 0, 0)
    tuned = train(small_config(tmp_path / "ft.yaml", init_from=scratch), data,
                  str(tmp_path / "ft"))
    assert json.load(open(tmp_path / "ft" / "train_summary.json"))["start"] == "fine-tuned"
    assert not torch.equal(checkpoint.load(tuned)["model"]["linear.weight"],
                           theirs["linear.weight"])
    with pytest.raises(ValueError, match=r"training.epochs must be at least 1 \(0 keeps "):
        train(small_config(tmp_path / "none.yaml", epochs=0), data, str(tmp_path / "none"))


def test_imported_resemblyzer_summary_names_its_source(tmp_path):
    from pyutils.cli import import_model
    from pyutils.training.trainer import start_fields
    small = os.path.join(FIX, "resemblyzer_small.pt")
    assert import_model.main(["--from", "resemblyzer", small, str(tmp_path / "ge2e")]) == 0
    fields = start_fields(str(tmp_path / "ge2e" / "final.pt"), 0)
    assert fields["start"] == "as-is"
    assert fields["init_source"] == {"from": [os.path.abspath(small)],
                                     "converted_by": "pyutils.models.convert.resemblyzer"}


def test_demonstration_configs_share_network_data_and_budget():
    """The from-scratch baseline trains the imported network (Resemblyzer's sizes) with
    GE2E's front-end, on the data and budget of the fine-tuning it is compared with."""
    base = yaml.safe_load(open(os.path.join(ROOT, "conf", "ge2e.yaml")))
    ft = yaml.safe_load(open(os.path.join(ROOT, "conf", "ge2e_ft.yaml")))
    assert base["model"] == {"name": "ge2e", "num_mels": 40, "hidden_size": 256,
                             "num_layers": 3, "embed_dim": 256}
    assert base["features"] == ft["features"] == {"type": "waveform", "prepare": "ge2e"}
    assert base["data"] == ft["data"] and base["loss"] == ft["loss"]
    assert base["training"]["epochs"] == ft["training"]["epochs"]
    assert ft["training"]["init_head"] == "fresh" and "init_from" not in base["training"]
    assert ft["optimizer"]["lr"] * ft["scheduler"]["final_lr_ratio"] <= 5e-5
    asis = yaml.safe_load(open(os.path.join(ROOT, "conf", "asis.yaml")))
    assert asis["training"]["epochs"] == 0
