"""Resemblyzer's GE2E encoder imported: parity with the package's own embeddings.

References: tests/fixtures/parity/resemblyzer_* (tools/make_parity_fixtures.py resemblyzer,
run with the package; versions in VERSIONS.json).
"""
import hashlib
import importlib.util
import os

import numpy as np
import pytest
import torch

from pyutils.features import ge2e_mel
from pyutils.models.convert import resemblyzer as conv
from pyutils.models.convert.common import ConversionError

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "fixtures", "parity")
pytest.importorskip("webrtcvad")


def waves():
    data = np.load(os.path.join(FIX, "resemblyzer_waves.npz"))
    return {name: data[name] for name in ("long", "short")}


def relative(ours, ref):
    return float(np.linalg.norm(ours - ref) / np.linalg.norm(ref))


def real_weights():
    path = os.environ.get("RESEMBLYZER_WEIGHTS")
    if not path:
        spec = importlib.util.find_spec("resemblyzer")     # not imported: needs librosa
        if spec is None or not spec.submodule_search_locations:
            return None
        path = os.path.join(list(spec.submodule_search_locations)[0], "pretrained.pt")
    return path if os.path.isfile(path) else None


def test_preprocessing_equals_resemblyzer():
    """Volume normalisation + WebRTC VAD trimming keep exactly the package's samples."""
    ref = np.load(os.path.join(FIX, "resemblyzer_small.npz"))
    for name, pcm in waves().items():
        ours = ge2e_mel.preprocess(pcm.astype(np.float64) / 32768.0)
        expected = ref[f"{name}_preprocessed"]
        assert ours.shape == expected.shape, name
        assert len(expected) < len(pcm) or name == "short"
        np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-7)


def test_trimming_drops_a_long_pause():
    """3 s of speech-like sound, 1 s of silence, 1 s more: most of the pause goes."""
    pcm = waves()["long"].astype(np.float64) / 32768.0
    silence = np.zeros(16000)
    wav = np.concatenate([pcm[:16000], silence, pcm[16000:32000]])
    kept = ge2e_mel.trim_long_silences(ge2e_mel.normalize_volume(wav))
    assert len(kept) < len(wav) - 16000 + 2 * 7 * 480


def test_partial_slices_known_answer():
    """1.3 partials/s: a step of round(16000/1.3/160) = 77 frames; 3 s -> 3 windows."""
    _, mel = ge2e_mel.partial_slices(48000)
    assert [(s.start, s.stop) for s in mel] == [(0, 160), (77, 237), (154, 314)]
    _, mel = ge2e_mel.partial_slices(8000)          # shorter than a window: one, padded
    assert [(s.start, s.stop) for s in mel] == [(0, 160)]


def test_mel_filters_slaney():
    """Slaney scale: 1 kHz is mel 15; each triangle has unit area in Hz (norm='slaney')."""
    assert float(ge2e_mel.hz_to_mel(1000.0)) == pytest.approx(15.0)
    assert float(ge2e_mel.mel_to_hz(ge2e_mel.hz_to_mel(3456.0))) == pytest.approx(3456.0)
    weights = ge2e_mel.mel_filters()
    assert weights.shape == (40, 201)
    area = weights.sum(axis=1) * 40.0             # bins 40 Hz apart
    np.testing.assert_allclose(area[5:], 1.0, rtol=0.05)


def _check(model, ref):
    model.eval()
    for name, pcm in waves().items():
        with torch.no_grad():
            ours = model(torch.from_numpy(pcm.astype(np.float32))[None])[0].numpy()
        assert relative(ours, ref[f"{name}_embedding"]) < 1e-4, name


def test_small_random_encoder_matches_resemblyzer():
    model, config, _ = conv.convert(os.path.join(FIX, "resemblyzer_small.pt"))
    assert config["model"] == {"name": "ge2e", "num_mels": 40, "hidden_size": 24,
                               "num_layers": 3, "embed_dim": 16}
    ref = np.load(os.path.join(FIX, "resemblyzer_small.npz"))
    _check(model, ref)
    for name, pcm in waves().items():         # each partial too
        wav = ge2e_mel.preprocess(pcm.astype(np.float64) / 32768.0)
        with torch.no_grad():
            partials = model.embed_mels(torch.from_numpy(ge2e_mel.partial_mels(wav))).numpy()
        assert partials.shape == ref[f"{name}_partials"].shape
        assert relative(partials, ref[f"{name}_partials"]) < 1e-4


def test_real_pretrained_weights_match_resemblyzer():
    path = real_weights()
    if path is None:
        if os.environ.get("SV_REQUIRE_RESEMBLYZER"):     # CI (.ci/run): must run, not skip
            pytest.fail("SV_REQUIRE_RESEMBLYZER is set but RESEMBLYZER_WEIGHTS names no file and "
                        "resemblyzer is not installed (utils/fetch_resemblyzer.sh)")
        pytest.skip("resemblyzer is not installed (its pretrained.pt ships in the package; "
                    "utils/fetch_resemblyzer.sh)")
    ref = np.load(os.path.join(FIX, "resemblyzer_real.npz"))
    with open(path, "rb") as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == str(ref["sha256"])
    model, config, _ = conv.convert(os.path.dirname(path))
    assert config["model"]["hidden_size"] == 256 and config["model"]["num_layers"] == 3
    _check(model, ref)


def test_imported_model_dir_reloads(tmp_path):
    """final.pt from the importer rebuilds through extraction's loader to the same embedding."""
    from pyutils.extraction.extract import load_embedding_model
    from pyutils.models.convert.common import write_model_dir
    model, config, sources = conv.convert(os.path.join(FIX, "resemblyzer_small.pt"))
    final = write_model_dir(model, config, str(tmp_path / "ge2e"), sources, "test")
    assert (tmp_path / "ge2e" / ".done").exists() and (tmp_path / "ge2e" / "config.yaml").exists()
    _check(load_embedding_model(final), np.load(os.path.join(FIX, "resemblyzer_small.npz")))


def test_mismatching_checkpoint_is_one_line(tmp_path):
    saved = torch.load(os.path.join(FIX, "resemblyzer_small.pt"), weights_only=True)
    saved["model_state"]["lstm.weight_hh_l1"] = torch.zeros(96, 20)
    bad = tmp_path / "bad.pt"
    torch.save(saved, bad)
    with pytest.raises(ConversionError) as err:
        conv.convert(str(bad))
    message = str(err.value)
    assert "\n" not in message and "lstm.weight_hh_l1" in message
    assert "(96, 20)" in message and "(96, 24)" in message
    with pytest.raises(ConversionError, match="lstm.weight_ih_l0"):
        torch.save({"model_state": {"linear.weight": torch.zeros(2, 2)}}, tmp_path / "x.pt")
        conv.convert(str(tmp_path / "x.pt"))


def test_ge2e_network_interface():
    """Default GE2E: Resemblyzer's size; eval embeds whole utterances, train mode chunks,
    both unit-norm and non-negative (ReLU before the norm); gradients reach the LSTM."""
    from pyutils.models import build_model
    torch.manual_seed(0)
    model = build_model("ge2e", feat_dim=1, vad=False)
    assert model.num_parameters() == 1_423_616
    assert model.input_type == "waveform" and model.frame_shift == 160
    x = torch.randn(2, 8000) * 3000.0
    with torch.no_grad():
        emb = model.eval()(x)
    assert emb.shape == (2, 256) and torch.allclose(emb.norm(dim=1), torch.ones(2))
    assert (emb >= 0).all()
    out = model.train()(x)
    (out * torch.randn_like(out)).sum().backward()
    assert model.lstm.weight_ih_l0.grad.abs().sum() > 0


def test_cli_and_sv_import(tmp_path, capsys):
    """One command for every source: ``import_model --from resemblyzer`` and ``sv import``."""
    from pyutils.cli import import_model
    from pyutils.cli.sv import main as sv_main
    small = os.path.join(FIX, "resemblyzer_small.pt")
    out = str(tmp_path / "a" / "final.pt")
    assert import_model.main(["--from", "resemblyzer", small, out]) == 0
    assert sv_main(["import", "--from", "resemblyzer", small, str(tmp_path / "b"), "-q"]) == 0
    first = torch.load(tmp_path / "a" / "final.pt", weights_only=False)
    second = torch.load(tmp_path / "b" / "final.pt", weights_only=False)
    assert first["config"]["model"] == second["config"]["model"]
    assert all(torch.equal(v, second["model"][k]) for k, v in first["model"].items())
    capsys.readouterr()
    assert import_model.main(["--from", "resemblyzer", str(tmp_path / "none.pt"),
                              str(tmp_path / "c")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("import_model: error: ") and "none.pt" in err and "\n" not in err
