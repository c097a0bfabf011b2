"""Imported models whose front-end is numpy (Resemblyzer GE2E, SpeechBrain ECAPA) on ONNX
Runtime: ``sv package`` exports the network after the front-end, and the package's ``onnx``
runtime and stage 4's ``onnx`` engine run the model's numpy front-end, then that graph, giving
PyTorch's embeddings (and the source toolkits' own, from the parity fixtures)."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
from deploy_helpers import CONF, blocked_import_env

pytest.importorskip("onnxruntime")
pytest.importorskip("webrtcvad")
FIX = os.path.join(ROOT, "tests", "fixtures", "parity")
# the agreement asked of ONNX Runtime with PyTorch (measured: about 1e-7)
RTOL = 1e-5


def relative(ours, ref):
    return float(np.linalg.norm(np.ravel(ours) - np.ravel(ref)) / np.linalg.norm(np.ravel(ref)))


def imported_final(name, directory):
    """final.pt of a tiny imported checkpoint, as ``sv import`` writes it, and the source
    toolkit's own embedding of a waveform: {int16-scale waveform: embedding}."""
    from pyutils.models.convert.common import write_model_dir
    if name == "ge2e":
        from pyutils.models.convert import resemblyzer
        model, config, sources = resemblyzer.convert(os.path.join(FIX, "resemblyzer_small.pt"))
        waves, ref = np.load(os.path.join(FIX, "resemblyzer_waves.npz")), \
            np.load(os.path.join(FIX, "resemblyzer_small.npz"))
        known = [(waves[k].astype(np.float32), ref[f"{k}_embedding"]) for k in ("long", "short")]
    else:
        from pyutils.models.convert import speechbrain
        from test_import_speechbrain import model_dir
        data = model_dir(os.path.join(directory, "sb"))
        model, config, sources = speechbrain.convert(os.path.join(directory, "sb"))
        known = [(data["wav"].astype(np.float32), data["embedding"])]
    return write_model_dir(model, config, os.path.join(directory, name), sources, "test"), known


def package_of(final, out, chunk_size=150):
    """The package of ``final`` (chunks of 1.5 s, so longer audio is cut and averaged)."""
    from pyutils.deploy.package_build import build_package
    return build_package(final, out, os.path.join(CONF, "mfcc.conf"),
                         os.path.join(CONF, "vad.conf"), os.path.join(CONF, "cmvn.conf"),
                         chunk_size=chunk_size)


# GE2E's LSTM exports in about 15 s of CPU (torch.export unrolls it over its 160 frames)
@pytest.fixture(scope="module", params=["sb_ecapa", pytest.param("ge2e", marks=pytest.mark.slow)])
def packaged(request, tmp_path_factory):
    root = str(tmp_path_factory.mktemp(request.param))
    final, known = imported_final(request.param, root)
    package = os.path.join(root, "package")
    return request.param, package_of(final, package), known, package, final


def test_package_holds_the_network_part_onnx(packaged):
    name, manifest, _, package, _ = packaged
    onnx = manifest["exports"]["onnx"]
    assert onnx["file"] == "embedding.onnx" and onnx["min_cosine_to_pytorch"] > 0.9999
    assert onnx["frontend"]["name"] == {"ge2e": "ge2e_partials", "sb_ecapa": "sb_fbank"}[name]
    assert onnx["min_input_rows"] == 0
    assert "numpy" in manifest["export_errors"]["torchscript"]
    with open(os.path.join(package, "manifest.json")) as src:
        assert json.load(src)["exports"]["onnx"]["frontend"] == onnx["frontend"]


def test_unknown_frontend_in_a_manifest_is_a_package_error(packaged, tmp_path):
    from pyutils.deploy.package import Package, PackageError
    package = str(tmp_path / "copy")
    shutil.copytree(packaged[3], package)
    with open(os.path.join(package, "manifest.json")) as src:
        manifest = json.load(src)
    manifest["exports"]["onnx"]["frontend"]["name"] = "future_fbank"
    with open(os.path.join(package, "manifest.json"), "w") as out:
        json.dump(manifest, out)
    with pytest.raises(PackageError, match="names numpy front-end 'future_fbank', which this "
                                           "version does not know"):
        Package(package).embedder("onnx")


def test_onnx_runtime_gives_pytorch_and_the_source_toolkit_embeddings(packaged, tmp_path):
    """Package.embedder('onnx') against 'torch' on the fixture speech (cut in the package's
    1.5 s chunks, and whole), a 0.1 s clip (padded to the shortest chunk) and a batch of
    equal-length clips; whole, both equal the source toolkit's own embedding."""
    from pyutils.deploy.network_part import NetworkPartOnnxEmbedder
    from pyutils.deploy.package import Package
    _, _, known, package, _ = packaged
    rng = np.random.default_rng(3)
    clips = [wave for wave, _ in known] + [wave[:1600] for wave, _ in known]
    same = [rng.normal(size=24000).astype(np.float32) * 3000 for _ in range(3)]
    onnx, torch_ = Package(package).embedder("onnx"), Package(package).embedder("torch")
    assert isinstance(onnx, NetworkPartOnnxEmbedder)
    worst = 0.0
    for chunk in (onnx.chunk_size, 10 ** 9):
        onnx.chunk_size = torch_.chunk_size = chunk
        for clip in clips:
            worst = max(worst, relative(onnx.embed(clip), torch_.embed(clip)))
        for a, b in zip(onnx.embed_many(same, 4), torch_.embed_many(same, 4)):
            worst = max(worst, relative(a, b))
    print(f"largest |ONNX - PyTorch| / |PyTorch|: {worst:.2e}")
    assert worst < RTOL
    for wave, reference in known:     # chunk: whole utterances, as the source toolkit
        assert relative(onnx.embed(wave), reference) < 1e-4


def test_sv_embed_runtime_onnx_needs_no_torch(packaged, tmp_path):
    """`sv embed --runtime onnx` of the package in a process where `import torch` fails
    equals `sv embed --runtime torch`."""
    import soundfile as sf
    _, _, known, package, _ = packaged
    env = blocked_import_env(tmp_path)
    wavs = []
    for i, (wave, _) in enumerate(known):
        wavs.append(str(tmp_path / f"{i}.wav"))
        sf.write(wavs[-1], wave.astype(np.int16), 16000)
    outputs = {}
    for runtime, run_env in (("onnx", env), ("torch", None)):
        out = str(tmp_path / f"{runtime}.npy")
        result = subprocess.run([sys.executable, "-m", "pyutils.cli", "embed", "-p", package,
                                 "--runtime", runtime, "-q", *wavs, "-o", out], cwd=ROOT,
                                env=run_env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        outputs[runtime] = np.load(out)
    assert outputs["onnx"].shape == (len(wavs), known[0][1].shape[0])
    for a, b in zip(outputs["onnx"], outputs["torch"]):
        assert relative(a, b) < RTOL


def test_stage_4_onnx_engine_runs_the_network_part(packaged, tmp_path, caplog):
    """extract(engine='onnx') of a data dir: the package's network part behind the model's
    front-end gives PyTorch's embeddings (the engine's own export: the CLI test below)."""
    import soundfile as sf

    from pyutils.deploy.network_part import NetworkPartOnnxEmbedder
    from pyutils.extraction.engines import build_embedder
    from pyutils.extraction.extract import extract, load_model_and_dim
    from pyutils.utils.arkio import load_scp_dict
    _, _, known, package, final = packaged
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(4)
    waves = [w for w, _ in known] + [rng.normal(size=20000).astype(np.float32) * 2000]
    for i, wave in enumerate(waves):
        sf.write(str(tmp_path / f"{i}.wav"), wave.astype(np.int16), 16000)
    (data / "wav.scp").write_text("".join(f"u{i} {tmp_path}/{i}.wav\n" for i in range(len(waves))))
    (data / "utt2spk").write_text("".join(f"u{i} s{i}\n" for i in range(len(waves))))
    onnx = os.path.join(package, "embedding.onnx")
    got = {}
    for engine in ("torch", "onnx"):
        with caplog.at_level("INFO"):
            extract(final, None, None, str(tmp_path / f"{engine}.ark"),
                    str(tmp_path / f"{engine}.scp"), data_dir=str(data), chunk_size=150,
                    engine=engine, onnx_path=onnx if engine == "onnx" else None)
        got[engine] = load_scp_dict(str(tmp_path / f"{engine}.scp"))
    assert "extracting with PyTorch" not in caplog.text
    model, _ = load_model_and_dim(final)
    assert isinstance(build_embedder("onnx", model, 24000, 4000, onnx_path=onnx),
                      NetworkPartOnnxEmbedder)
    assert sorted(got["onnx"]) == [f"u{i}" for i in range(len(waves))]
    for utt, vector in got["torch"].items():
        assert relative(got["onnx"][utt], vector) < RTOL, utt


def test_export_onnx_cli_retries_a_failed_export_recorded_before_network_parts_exported(
        tmp_path):
    """A `<out>.done` that records a failed export, as stage 4 wrote it for these models before
    they exported their network part (and before the marker fingerprinted the exporter), is
    redone: the network part exports."""
    from pyutils.cli import export_onnx
    from pyutils.utils.fileio import write_lines
    from pyutils.utils.markers import fingerprint
    final, _ = imported_final("sb_ecapa", str(tmp_path))
    out = str(tmp_path / "sb_extract" / "embedding.onnx")
    os.makedirs(os.path.dirname(out))
    write_lines(out + ".done", [fingerprint(final, "25"), export_onnx.FAILED])
    export_onnx.main(["--model", final, "--out", out])
    assert os.path.exists(out)
    with open(out + ".done") as src:
        assert src.read().splitlines()[-1] == "onnx"
