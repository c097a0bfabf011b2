"""Extraction engines (pyutils.extraction.engines) and batched windows: every engine
gives the eager PyTorch embeddings within 1e-4, and batching the equal-length windows
of an utterance gives its one-at-a-time embeddings (and the same bytes whatever the
job split)."""
import os

import numpy as np
import pytest

from pyutils.extraction.extract import extract
from pyutils.features.pipeline import cmn_options
from pyutils.training import checkpoint
from pyutils.utils.arkio import load_scp_dict, write_scp_dict
from pyutils.utils.fileio import write_lines
from tests.conftest import ROOT

# Each network at reduced width (the layer types of conf/<model>.yaml), random weights.
SMALL = {
    "xvector": ({"frame_dims": [64, 64, 64, 64, 128], "embed_dim": 32}, 30),
    "resnet34": ({"m_channels": 8, "embed_dim": 32}, 80),
    "ecapa_c512": ({"embed_dim": 32}, 80),
    "campplus": ({"growth_rate": 8, "init_channels": 32, "embed_dim": 32,
                  "blocks": [[2, 3, 1], [2, 3, 2], [2, 3, 2]]}, 80),
    "eres2net": ({"m_channels": 8, "num_blocks": [1, 1, 1, 1], "embed_dim": 32}, 80),
}


def _model(root, name):
    import torch

    from pyutils.models import build_model
    config, dim = SMALL[name]
    torch.manual_seed(1)
    model = build_model(name, feat_dim=dim, **config)
    path = os.path.join(root, "final.pt")
    checkpoint.save(path, {"config": {"model": {"name": name, **config}}, "feat_dim": dim,
                           "model": model.state_dict()})
    return path


def _features(root, dim, lengths, seed=0, unvoiced=0.1):
    rng = np.random.default_rng(seed)
    feats = {f"u{i}": rng.normal(size=(n, dim)).astype(np.float32) for i, n in enumerate(lengths)}
    vad = {u: (rng.random(x.shape[0]) >= unvoiced).astype(np.float32) for u, x in feats.items()}
    os.makedirs(root, exist_ok=True)
    write_scp_dict(os.path.join(root, "feats.ark"), os.path.join(root, "feats.scp"), feats)
    write_scp_dict(os.path.join(root, "vad.ark"), os.path.join(root, "vad.scp"), vad)
    return os.path.join(root, "feats.scp"), os.path.join(root, "vad.scp")


def _extract(tmp, name, model, feats, vad, **kw):
    cmn = cmn_options(os.path.join(ROOT, "conf", "cmvn.conf"))
    ark, scp = os.path.join(tmp, name + ".ark"), os.path.join(tmp, name + ".scp")
    counts = extract(model, feats, vad, ark, scp, cmn, **kw)
    return load_scp_dict(scp), counts


CASES = ([pytest.param(n, "onnx", marks=[] if n == "xvector" else pytest.mark.slow) for n in SMALL]
         + [pytest.param("xvector", "compiled", marks=pytest.mark.slow)])


@pytest.mark.parametrize("name,engine", CASES)
def test_engine_matches_eager_pytorch(name, engine, tmp_path):
    model = _model(str(tmp_path), name)
    feats, vad = _features(str(tmp_path / "d"), SMALL[name][1], [90, 317, 1200])
    want, _ = _extract(str(tmp_path), "torch", model, feats, vad, chunk_size=500)
    onnx = str(tmp_path / "extract" / "embedding.onnx")
    got, _ = _extract(str(tmp_path), engine, model, feats, vad, chunk_size=500, engine=engine,
                      onnx_path=onnx)
    if engine == "onnx":
        assert os.path.exists(onnx), "the network should have exported"
    for utt, vector in want.items():
        np.testing.assert_allclose(got[utt], vector, rtol=1e-4,
                                   atol=1e-4 * float(np.abs(vector).max()))


def test_batched_windows_equal_single_windows_and_do_not_depend_on_the_split(tmp_path):
    model = _model(str(tmp_path), "xvector")
    feats, vad = _features(str(tmp_path / "d"), 30, [700, 1000, 450])
    opts = dict(window=100, window_shift=50)
    single, _ = _extract(str(tmp_path), "single", model, feats, vad, batch_size=1, **opts)
    batched, _ = _extract(str(tmp_path), "batched", model, feats, vad, batch_size=16, **opts)
    assert sorted(single) == sorted(batched) and len(single) > 20
    for key in single:
        np.testing.assert_allclose(batched[key], single[key], rtol=1e-5, atol=1e-6)
    # one utterance alone: the same bytes as in the whole set (batches never span utterances)
    lines = [l for l in open(feats) if l.startswith("u1 ")]
    write_lines(str(tmp_path / "one.scp"), [l.rstrip("\n") for l in lines])
    alone, _ = _extract(str(tmp_path), "alone", model, str(tmp_path / "one.scp"), vad,
                        batch_size=16, **opts)
    for key, vector in alone.items():
        assert np.array_equal(vector, batched[key]), key


@pytest.mark.parametrize("window", [0, 100])
def test_length_buckets_equal_one_at_a_time_extraction(tmp_path, monkeypatch, window):
    """Length buckets (issue 21 item 3): the equal-length inputs of several utterances
    (whole ones, or windows) go through the network as one dense batch; every embedding
    equals its one-at-a-time one to float rounding, in feats.scp order, whatever the
    job split; an utterance longer than a chunk or shorter than the minimum still
    goes alone."""
    from pyutils.deploy.torch_runtime import TorchEmbedder
    model = _model(str(tmp_path), "xvector")
    lengths = [300, 170, 300, 20, 170, 300, 650, 300, 300, 250]
    feats, vad = _features(str(tmp_path / "d"), 30, lengths, unvoiced=0.0)
    opts = dict(chunk_size=500, window=window, window_shift=window // 2)
    single, _ = _extract(str(tmp_path), "single", model, feats, vad, **opts)
    shapes = []
    forward = TorchEmbedder.forward
    monkeypatch.setattr(TorchEmbedder, "forward",
                        lambda self, batch: (shapes.append(batch.shape[:2]),
                                             forward(self, batch))[1])
    bucketed, counts = _extract(str(tmp_path), "bucketed", model, feats, vad, batch_size=4,
                                bucket=8, **opts)
    assert counts["done"] == len(lengths) and list(bucketed) == list(single)  # scp order kept
    for key in single:
        np.testing.assert_allclose(bucketed[key], single[key], rtol=1e-5, atol=1e-6)
    if window == 0:   # first 8: 4 x 300, 2 x 170 batched; 20 padded, 650 in chunks, alone
        # (then u8's 300 and u9's 250 are a block of their own: one each)
        assert sorted(shapes) == sorted([(4, 300), (2, 170), (1, 25), (1, 500), (1, 150),
                                         (1, 300), (1, 250)]), shapes
    else:
        assert max(b for b, _ in shapes) == 4 and {t for _, t in shapes if t != 25} == {100}
    # another job split (the last four utterances alone): the same to float rounding
    tail = [l.rstrip("\n") for l in open(feats)][-4:]
    write_lines(str(tmp_path / "tail.scp"), tail)
    alone, _ = _extract(str(tmp_path), "tail", model, str(tmp_path / "tail.scp"), vad,
                        batch_size=4, bucket=8, **opts)
    assert alone and all(k.split("-")[0] in {l.split()[0] for l in tail} for k in alone)
    for key, vector in alone.items():
        np.testing.assert_allclose(vector, single[key], rtol=1e-5, atol=1e-6)


def test_a_network_that_does_not_export_falls_back_to_pytorch(tmp_path, monkeypatch, caplog):
    import pyutils.deploy.export as export

    def fail(*_args, **_kwargs):
        raise RuntimeError("Duplicate definition of name (embedding)")
    monkeypatch.setattr(export, "export_onnx", fail)   # under engines.export_for_extraction
    model = _model(str(tmp_path), "xvector")
    feats, vad = _features(str(tmp_path / "d"), 30, [200, 300])
    want, _ = _extract(str(tmp_path), "torch", model, feats, vad)
    onnx = str(tmp_path / "extract" / "embedding.onnx")
    with caplog.at_level("WARNING"):
        got, counts = _extract(str(tmp_path), "onnx", model, feats, vad, engine="onnx",
                               onnx_path=onnx)
    assert not os.path.exists(onnx)
    assert "ONNX export of the network failed" in caplog.text
    assert all(np.array_equal(got[u], want[u]) for u in want)


def test_export_method_names_the_exporter_version_and_the_export_path(monkeypatch):
    import torch

    import pyutils.deploy.export as export
    from pyutils.models import build_model

    class NetworkPart(torch.nn.Module):      # what ge2e / sb_ecapa declare
        def network_part(self):
            return self

        def frontend_spec(self):
            return {"num_mels": 80, "name": "sb_fbank"}

    version = f"onnx export v{export.EXPORT_VERSION} opset 18 torch {torch.__version__}"
    whole = export.export_method(build_model("xvector", feat_dim=30, **SMALL["xvector"][0]))
    assert whole == f"{version}: whole network"
    assert export.export_method(NetworkPart()) == \
        f'{version}: network part after numpy front-end {{"name": "sb_fbank", "num_mels": 80}}'
    monkeypatch.setattr(export, "EXPORT_VERSION", export.EXPORT_VERSION + 1)
    assert export.export_method(NetworkPart()).startswith(
        f"onnx export v{export.EXPORT_VERSION} opset 18")


def test_export_onnx_cli_redoes_an_export_exactly_when_model_or_exporter_changed(tmp_path,
                                                                                  monkeypatch):
    """``<out>.done`` fingerprints the exporter too: the same one skips the export (done or
    failed), another one (or a marker of the code before it was fingerprinted) redoes it."""
    import pyutils.deploy.export as export
    from pyutils.cli import export_onnx
    from pyutils.utils.markers import fingerprint

    model = _model(str(tmp_path), "xvector")
    calls, works = [], [True]

    def fake_export(_model, _dim, path, _min_chunk):     # a file, or None: it failed
        calls.append(path)
        if works[0]:
            write_lines(path, ["graph"])
            return path
        return None
    monkeypatch.setattr(export_onnx, "export_for_extraction", fake_export)

    def run(out):
        before = len(calls)
        export_onnx.main(["--model", model, "--out", out])
        with open(out + ".done") as src:
            summary = src.read().splitlines()[-1]   # the summary line
        return len(calls) - before, summary

    out = str(tmp_path / "extract" / "embedding.onnx")
    os.makedirs(os.path.dirname(out))
    assert run(out) == (1, "onnx")
    assert run(out) == (0, "onnx")                       # same model and exporter: skipped
    os.unlink(out)
    assert run(out) == (1, "onnx")                       # the file it vouches for is gone
    monkeypatch.setattr(export, "EXPORT_VERSION", export.EXPORT_VERSION + 1)
    assert run(out) == (1, "onnx")                       # another exporter: redone
    assert run(out) == (0, "onnx")

    works[0] = False
    failed = str(tmp_path / "failed" / "embedding.onnx")
    os.makedirs(os.path.dirname(failed))
    assert run(failed) == (1, export_onnx.FAILED)
    assert run(failed) == (0, export_onnx.FAILED)        # a failure is not retried as such
    assert not os.path.exists(failed)
    monkeypatch.setattr(export, "EXPORT_VERSION", export.EXPORT_VERSION + 1)
    assert run(failed) == (1, export_onnx.FAILED)        # ... but by another exporter
    # a failure recorded by the code before the marker fingerprinted the exporter
    write_lines(failed + ".done", [fingerprint(model, "25"), export_onnx.FAILED])
    works[0] = True
    assert run(failed) == (1, "onnx")
    assert os.path.exists(failed)
