"""The model package, TorchScript/ONNX export and the torch-free ONNX Runtime path."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
from deploy_helpers import CONF, asc_clip, build_tiny_package, tiny_model_dir, blocked_import_env


def cosine(a, b):
    a, b = np.ravel(a), np.ravel(b)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def rel_error(a, b):
    """||a - b|| / ||b||: how far ``a`` is from the reference ``b``."""
    a, b = np.ravel(a), np.ravel(b)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    return build_tiny_package(str(tmp_path_factory.mktemp("pkg")))


def test_manifest_describes_and_hashes_every_file(package):
    """Every file of the package is listed with what it is and its sha256, and
    nothing else is there; the model facts are those of the checkpoint."""
    from pyutils.deploy.package import Package, sha256
    manifest = json.load(open(os.path.join(package, "manifest.json")))
    on_disk = {os.path.relpath(os.path.join(d, f), package)
               for d, _, names in os.walk(package) for f in names} - {"manifest.json"}
    assert on_disk == set(manifest["files"])
    assert {"model.pt", "embedding.onnx", "embedding.ts", "conf/mfcc.conf", "conf/vad.conf",
            "conf/cmvn.conf", "backend/mean.vec", "backend/lda.mat", "backend/plda",
            "calibration/cosine.json", "config.yaml"} == on_disk
    for rel, info in manifest["files"].items():
        assert info["sha256"] == sha256(os.path.join(package, rel)) and info["what"]
    assert manifest["model"]["input_type"] == "feats" and manifest["model"]["embed_dim"] == 16
    assert manifest["features"] == {"type": "mfcc", "sample_rate": 16000, "conf": {
        "mfcc": "conf/mfcc.conf", "vad": "conf/vad.conf", "cmvn": "conf/cmvn.conf"}}
    assert manifest["backends"] == ["cosine", "plda"]
    assert manifest["versions"]["torch"] and manifest["versions"]["onnxruntime"]
    assert manifest["exports"]["onnx"]["min_cosine_to_pytorch"] > 0.9999
    pkg = Package(package)
    assert pkg.calibration("cosine").llr([0.5, 1.0]).tolist() == [0.0, 5.0]
    assert pkg.calibration("plda") is None


def test_changed_or_missing_file_is_refused(package, tmp_path):
    from pyutils.deploy.package import Package, PackageError
    copy = str(tmp_path / "copy")
    shutil.copytree(package, copy)
    with open(os.path.join(copy, "backend", "mean.vec"), "a") as out:
        out.write(" ")
    with pytest.raises(PackageError, match=r"backend/mean.vec does not match its sha256"):
        Package(copy)
    os.unlink(os.path.join(copy, "conf", "vad.conf"))
    with pytest.raises(PackageError, match=r"conf/vad.conf .* is missing"):
        Package(copy, verify=True)
    with pytest.raises(PackageError, match="not a model package"):
        Package(str(tmp_path))


def test_archive_loads_like_the_directory(tmp_path):
    from pyutils.deploy.package import Package
    from pyutils.deploy.package_build import build_package
    model_dir = tiny_model_dir(str(tmp_path / "m"))
    out = str(tmp_path / "pkg")
    build_package(os.path.join(model_dir, "final.pt"), out, os.path.join(CONF, "mfcc.conf"),
                  os.path.join(CONF, "vad.conf"), os.path.join(CONF, "cmvn.conf"),
                  backend_dir=os.path.join(model_dir, "backend"), export=False, archive=True)
    shutil.rmtree(out)
    pkg = Package(out + ".tar.gz")
    assert pkg.name == "xvector" and pkg.backends == ["cosine", "plda"]
    assert pkg.manifest["exports"] == {} and pkg.manifest["calibration"] == {}


# Each network at reduced width/depth (same layer types): export cost grows with depth.
SMALL = {
    "xvector": ({"frame_dims": [64, 64, 64, 64, 128], "embed_dim": 32}, "mfcc"),
    "resnet34": ({"m_channels": 8, "embed_dim": 32}, "fbank"),
    "ecapa_c512": ({"embed_dim": 32}, "fbank"),
    "wav2spk": ({"embed_dim": 32}, "waveform"),
    "campplus": ({"growth_rate": 8, "init_channels": 32, "embed_dim": 32,
                  "blocks": [[2, 3, 1], [2, 3, 2], [2, 3, 2]]}, "fbank"),
    "eres2net": ({"m_channels": 8, "num_blocks": [1, 1, 1, 1], "embed_dim": 32}, "fbank"),
    # SSL front-ends: a tiny random transformers encoder (test_ssl_encoder.build_tiny:
    # hidden 32, 2 layers) + a head.  WavLM's relative position bias is an nn.Embedding:
    # its graph value "embedding" once collided with the graph output's name.
    "ssl_wavlm": ({"name": "xvector_hf", "embed_dim": 32, "tdnn_dim": [48, 48, 48, 48, 96],
                   "tdnn_kernel": [5, 3, 3, 1, 1], "tdnn_dilation": [1, 2, 3, 1, 1]}, "waveform"),
    "ssl_wav2vec2": ({"name": "ecapa_c512", "embed_dim": 32}, "waveform"),
    "ssl_hubert": ({"name": "xvector", "frame_dims": [64, 64, 64, 64, 128], "embed_dim": 32},
                   "waveform"),
}


def small_model(name, root):
    """The network ``name`` of SMALL (seeded); an SSL one on a tiny checkpoint under ``root``."""
    import torch

    from pyutils.models import build_model
    config, features = SMALL[name]
    feat_dim = {"mfcc": 30, "fbank": 80, "waveform": None}[features]
    torch.manual_seed(1)
    if not name.startswith("ssl_"):
        return build_model(name, feat_dim=feat_dim, **config).eval(), feat_dim
    pytest.importorskip("transformers")
    from test_ssl_encoder import build_tiny
    kind = name[len("ssl_"):]
    path = build_tiny(kind, os.path.join(root, kind))
    return build_model("ssl", frontend={"type": kind, "path": path}, head=dict(config)).eval(), None


@pytest.mark.parametrize("name", [pytest.param(n, marks=[] if n == "xvector" else pytest.mark.slow)
                                  for n in SMALL])
def test_onnx_and_torchscript_match_pytorch_on_asc_audio(name, asc_root, tmp_path):
    """Every network family, SSL front-ends included: ONNX Runtime and TorchScript
    embeddings of real ASC speech (a 1 s clip and 3 s of three clips: two lengths,
    neither the export's; and the shortest chunk) agree with PyTorch to cosine > 0.9999
    and relative error < 1e-3."""
    import torch

    from pyutils.deploy.export import export_all, min_length
    from pyutils.deploy.network_input import AudioFrontend
    from pyutils.deploy.torch_runtime import TorchEmbedder
    features = SMALL[name][1]
    model, feat_dim = small_model(name, str(tmp_path))
    paths, worst, errors = export_all(model, feat_dim, str(tmp_path))
    assert errors == {} and min(worst.values()) > 0.9999
    from pyutils.deploy.runtime import OnnxEmbedder, pad_input
    if features == "waveform":
        frontend = AudioFrontend("waveform")
    else:
        frontend = AudioFrontend("feats", os.path.join(CONF, "mfcc.conf"),
                                 os.path.join(CONF, "vad.conf"), os.path.join(CONF, "cmvn.conf"),
                                 os.path.join(CONF, "fbank.conf") if features == "fbank" else None)
    clips = [frontend.read(asc_clip(asc_root, 21, k)) for k in ("backward", "cancel", "close")]
    one = frontend.network_input(*clips[0], "u1")
    three = frontend.network_input(np.concatenate([c[0] for c in clips]), 16000, "u3")
    assert one.shape[0] != three.shape[0]
    unit = int(model.frame_shift) if features == "waveform" else 1
    reference = TorchEmbedder(model, 10000 * unit, 25 * unit)
    shortest = min_length(model)
    onnx = OnnxEmbedder(paths["onnx"], 10000 * unit, 25 * unit, min_input_rows=shortest)
    scripted = torch.jit.load(paths["torchscript"])
    for x in (one, three, one[:25 * unit]):
        expected = reference.embed(x)
        assert np.all(np.isfinite(expected))
        assert cosine(onnx.embed(x), expected) > 0.9999
        assert rel_error(onnx.embed(x), expected) < 1e-3
        with torch.inference_mode():
            traced = scripted(torch.from_numpy(pad_input(x[None], shortest))).numpy()
        assert cosine(traced, expected) > 0.9999 and rel_error(traced, expected) < 1e-3


def test_sv_embed_of_a_wav_scp_reproduces_the_recipe(package, asc_root, tmp_path):
    """`sv embed data/wav.scp` gives the embeddings of stages 1 + 4 (MFCC with the
    utterance-seeded dither, VAD, sliding CMN, voiced frames, extraction)."""
    from pyutils.backends.embeddings import load_embeddings
    from pyutils.cli import compute_mfcc_vad
    from pyutils.extraction.extract import extract
    from pyutils.features.pipeline import cmn_options
    data = tmp_path / "data"
    data.mkdir()
    utts = {f"spk21-u{i}": asc_clip(asc_root, 21, k) for i, k in enumerate(("backward", "cancel"))}
    (data / "wav.scp").write_text("".join(f"{u} {p}\n" for u, p in utts.items()))
    (data / "utt2spk").write_text("".join(f"{u} spk21\n" for u in utts))
    compute_mfcc_vad.compute(str(data), os.path.join(CONF, "mfcc.conf"),
                             os.path.join(CONF, "vad.conf"), str(tmp_path / "feats"),
                             str(tmp_path / "vad"))
    extract(os.path.join(package, "model.pt"), str(tmp_path / "feats.scp"),
            str(tmp_path / "vad.scp"), str(tmp_path / "rec.ark"), str(tmp_path / "rec.scp"),
            cmn_options(os.path.join(CONF, "cmvn.conf")))
    result = subprocess.run([sys.executable, "-m", "pyutils.cli", "embed", "-p", package, "-q",
                             str(data / "wav.scp"), "-o", str(tmp_path / "sv.ark")],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    recipe, sv = load_embeddings(str(tmp_path / "rec.scp")), load_embeddings(str(tmp_path / "sv.scp"))
    assert sorted(sv) == sorted(utts)
    for utt in utts:
        np.testing.assert_allclose(sv[utt], recipe[utt], rtol=1e-5, atol=1e-6)


def test_onnx_runtime_path_needs_no_torch(package, asc_root, tmp_path):
    """`sv embed --runtime onnx` runs in a process where `import torch` fails
    (a sitecustomize that blocks it), and gives PyTorch's embeddings."""
    env = blocked_import_env(tmp_path)
    blocked = subprocess.run([sys.executable, "-c", "import torch"], env=env,
                             capture_output=True, text=True)
    assert "torch is blocked" in blocked.stderr
    clips = [asc_clip(asc_root, 21), asc_clip(asc_root, 25, "close")]
    outputs = {}
    for runtime, run_env in (("onnx", env), ("torch", None)):
        out = str(tmp_path / f"{runtime}.npy")
        result = subprocess.run([sys.executable, "-m", "pyutils.cli", "embed", "-p", package,
                                 "--runtime", runtime, *clips, "-o", out], cwd=ROOT, env=run_env,
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        outputs[runtime] = np.load(out)
    assert outputs["onnx"].shape == (2, 16)
    for a, b in zip(outputs["onnx"], outputs["torch"]):
        assert cosine(a, b) > 0.9999


def test_batched_embedding_equals_one_at_a_time():
    """Equal-length inputs share a forward pass with the same results (float rounding)."""
    from pyutils.deploy.runtime import Embedder

    class Mean(Embedder):
        calls = 0

        def forward(self, batch):
            Mean.calls += 1
            return np.concatenate([batch.mean(axis=1), batch.std(axis=1)], axis=1)

    rng = np.random.default_rng(0)
    inputs = [rng.normal(size=(n, 3)).astype(np.float32) for n in (40, 40, 7, 40, 12000)]
    embedder = Mean(chunk_size=10000, min_chunk_size=25)
    batched = embedder.embed_many(inputs, batch_size=8)
    calls = Mean.calls
    single = [embedder.embed(x) for x in inputs]
    assert calls == 1 + 1 + 2   # three 40-row inputs at once, the 7 padded, 12000 in 2 chunks
    for a, b in zip(batched, single):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_onnx_cuda_provider_missing_is_a_clear_error(package, asc_root, tmp_path):
    import onnxruntime
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    result = subprocess.run([sys.executable, "-m", "pyutils.cli", "embed", "-p", package,
                             "--runtime", "onnx", "--device", "cuda", asc_clip(asc_root, 21),
                             "-o", str(tmp_path / "c.npy")], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 1
    assert "--device cuda: this onnxruntime has no CUDA provider" in result.stderr
    assert "install onnxruntime-gpu or use --device cpu" in result.stderr


def test_failed_onnx_export_keeps_torchscript_and_sv_names_the_cause(tmp_path, monkeypatch,
                                                                     capsys):
    """An ONNX export that fails leaves the TorchScript one and the PyTorch runtime; the
    reason is in the manifest and the summary, and `sv embed --runtime onnx` names it
    (not the device, and no rebuild that cannot help)."""
    import soundfile as sf

    import pyutils.deploy.export as export
    from pyutils.cli.sv import main
    from pyutils.deploy.package import Package, PackageError
    from pyutils.deploy.package_build import build_package

    def fail(*_args, **_kwargs):
        raise RuntimeError("unsupported operator aten::something\nlong trace")

    monkeypatch.setattr(export, "export_onnx", fail)
    model_dir = tiny_model_dir(str(tmp_path / "m"))
    out = str(tmp_path / "pkg")
    manifest = build_package(os.path.join(model_dir, "final.pt"), out,
                             os.path.join(CONF, "mfcc.conf"), os.path.join(CONF, "vad.conf"),
                             os.path.join(CONF, "cmvn.conf"),
                             backend_dir=os.path.join(model_dir, "backend"))
    assert list(manifest["exports"]) == ["torchscript"]
    assert manifest["export_errors"] == {
        "onnx": "RuntimeError: unsupported operator aten::something"}
    from pyutils.deploy.package import export_summary
    assert export_summary(manifest).startswith("torchscript ok (cosine 1.0")
    assert export_summary(manifest).endswith(
        "onnx FAILED (RuntimeError: unsupported operator aten::something)")
    with pytest.raises(PackageError, match=r"has no ONNX export: the onnx export failed when "
                                           r"the package was built \(RuntimeError: unsupported"):
        Package(out).embedder("onnx")
    assert Package(out).embedder("torch").embed(np.zeros((30, 30), np.float32)).shape == (16,)
    wav = str(tmp_path / "a.wav")
    sf.write(wav, (np.random.default_rng(0).normal(size=16000) * 3000).astype(np.int16), 16000)
    assert main(["embed", "-p", out, "--runtime", "onnx", wav, "-o", str(tmp_path / "e.npy")]) == 1
    message = capsys.readouterr().err
    assert "the onnx export failed when the package was built (RuntimeError: unsupported " \
           "operator aten::something; recorded in manifest.json); use --runtime torch" in message
    assert "--device" not in message and "rebuild" not in message


def test_package_stage_reruns_after_its_inputs_change(tmp_path):
    """steps/package_model.sh (stage 8) skips when nothing changed and repackages when an
    upstream marker (training, back-end, a calibration) or a config changes."""
    model_dir = tiny_model_dir(str(tmp_path / "m"))
    for marker in (".done", "backend/.done", "calibration/cosine.json.done"):
        with open(os.path.join(model_dir, marker), "w") as out:
            out.write("stamp\nrun-1\n")

    def package():
        result = subprocess.run(["steps/package_model.sh", "--export", "false", model_dir,
                                 os.path.join(model_dir, "package")], cwd=ROOT,
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    assert "packaging" in package()
    assert "is up to date" in package()
    for marker in (".done", "backend/.done", "calibration/cosine.json.done"):
        with open(os.path.join(model_dir, marker), "w") as out:
            out.write(f"stamp\nrun-2 {marker}\n")
        assert "packaging" in package(), marker
    manifest = json.load(open(os.path.join(model_dir, "package", "manifest.json")))
    assert manifest["calibration"] == {"cosine": "calibration/cosine.json"}
    assert manifest["exports"] == {} and manifest["export_errors"] == {}
    missing = subprocess.run(["steps/package_model.sh", str(tmp_path / "nothing"),
                              str(tmp_path / "p")], cwd=ROOT, capture_output=True, text=True)
    assert missing.returncode == 1 and "train the model and its back-end first" in missing.stderr


def test_stage_8_summary_line_shows_a_failed_onnx_export(tmp_path):
    """A failed ONNX export (here: onnxscript cannot be imported, as on an install
    without it) is in stage 8's summary line with its reason; TorchScript still
    exports.  (It used to say only "exports: none".)"""
    env = blocked_import_env(tmp_path, "onnxscript")
    model_dir = tiny_model_dir(str(tmp_path / "m"), calibrated=False)
    result = subprocess.run(["steps/package_model.sh", model_dir,
                             os.path.join(model_dir, "package")], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert "| exports: torchscript ok (cosine 1.0" in summary
    assert summary.endswith("onnx FAILED (ImportError: onnxscript is blocked in this test)")


def test_package_stage_repackages_when_the_exporter_changes(tmp_path):
    """stage 8's marker holds the exporter's version: the same inputs are up to date, a
    bumped EXPORT_VERSION (as a changed exporter would carry) packages again."""
    env = blocked_import_env(tmp_path, "onnxscript")   # no ONNX: keeps the export fast
    model_dir = tiny_model_dir(str(tmp_path / "m"), calibrated=False)

    def package():
        result = subprocess.run(["steps/package_model.sh", model_dir,
                                 os.path.join(model_dir, "package")], cwd=ROOT, env=env,
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    assert "packaging" in package()
    assert "is up to date" in package()
    with open(os.path.join(str(tmp_path), "shim", "sitecustomize.py"), "a") as out:
        out.write("import pyutils.deploy.export\npyutils.deploy.export.EXPORT_VERSION += 1\n")
    assert "packaging" in package()
    assert "is up to date" in package()
