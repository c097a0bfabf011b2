"""The one feature pipeline: built from each shipped training config, every consumer
(stage 1 + CMN/voiced frames, the raw on-the-fly source and its chunk spans, the
shard front-end, label-free views, the deployed package's front-end) gives the
same arrays for the same clip."""
import glob
import os
import subprocess
import sys

import kaldiio
import numpy as np
import pytest
import soundfile as sf
import yaml

from pyutils.cli import compute_mfcc_vad, prepare_feats
from pyutils.deploy.network_input import AudioFrontend
from pyutils.features.pipeline import DEFAULT_CONFS, FeaturePipeline, conf_paths
from pyutils.training.data import OnTheFlyFeatures, WaveformStore
from pyutils.training.selfsup.data import LabelFreeSource
from pyutils.training.shard_source import ChunkFrontend
from pyutils.utils.fileio import write_lines
from tests.conftest import ROOT

YAMLS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "conf", "*.yaml")))
UTT = "s0-u0"


def clip_dir(tmp_path):
    """A data dir of one 3 s synthetic clip: tone bursts (voiced) between quiet noise."""
    rng = np.random.default_rng(3)
    t = np.arange(48000)
    tone = 5000 * np.sin(t * 0.031) + 1500 * np.sin(t * 0.117)
    samples = (tone * ((t // 7000) % 2 == 0) + rng.normal(0, 30, len(t))).astype(np.int16)
    data = tmp_path / "data"
    os.makedirs(data)
    sf.write(tmp_path / "clip.flac", samples, 16000)
    write_lines(str(data / "wav.scp"), [f"{UTT} {tmp_path / 'clip.flac'}"])
    write_lines(str(data / "utt2spk"), [f"{UTT} s0"])
    return data, samples


def stage_one(tmp_path, data, pipeline, name):
    """Stages 1 + 2 as the recipe runs them: features + VAD, then CMN'd voiced frames."""
    confs, out = pipeline.confs, str(tmp_path / name)
    compute_mfcc_vad.compute(str(data), confs["vad_feat_conf"], confs["vad_conf"], out + "_raw",
                             out + "_vad", confs["conf"] if pipeline.kind == "fbank" else "")
    prepare_feats.prepare(out + "_raw.scp", out + "_vad.scp", out + "_egs", pipeline.cmn)
    vad = kaldiio.load_mat(dict(l.split() for l in open(out + "_vad.scp"))[UTT])
    return kaldiio.load_mat(dict(l.split() for l in open(out + "_egs.scp"))[UTT]), vad


def no_dither(tmp_path, path):
    target = tmp_path / ("nodither_" + os.path.basename(path))
    lines = [l for l in open(path) if not l.lstrip().startswith("--dither")]
    target.write_text("".join(lines) + "--dither=0\n")
    return str(target)


def run_of(rows, matrix):
    """The offsets where ``rows`` is a contiguous run of ``matrix``'s rows (to 1e-5)."""
    return [o for o in range(len(matrix) - len(rows) + 1)
            if np.allclose(matrix[o:o + len(rows)], rows, atol=1e-5, rtol=0)]


@pytest.mark.parametrize("config", YAMLS)
def test_every_consumer_gives_the_arrays_of_the_configs_pipeline(config, tmp_path):
    with open(os.path.join(ROOT, "conf", config)) as handle:
        features = (yaml.safe_load(handle) or {}).get("features")
    pipeline = FeaturePipeline.from_config(features, root=ROOT)
    data, samples = clip_dir(tmp_path)
    if pipeline.kind == "waveform":
        wave = samples.astype(np.float32)
        np.testing.assert_array_equal(AudioFrontend("waveform").network_input(samples, 16000, UTT),
                                      wave)
        np.testing.assert_array_equal(ChunkFrontend(features)(UTT, wave, 16000, 1.0, None, None),
                                      wave)
        np.testing.assert_array_equal(WaveformStore(str(data)).chunk(0, 0, len(wave)), wave)
        return
    # the configs' own confs (dither 1.0, seeded by the utterance id): equal to the bit
    expected, vad = stage_one(tmp_path, data, pipeline, "dither")
    assert 50 < len(expected) < len(vad) and expected.shape[1] == pipeline.feat_dim
    section = {**(features or {}), **pipeline.confs, "on_the_fly": True}
    confs = pipeline.confs
    deploy = AudioFrontend("feats", confs["vad_feat_conf"], confs["vad_conf"], confs["cmvn_conf"],
                           confs["conf"] if pipeline.kind == "fbank" else None)
    paths = {"deploy": deploy.network_input(samples, 16000, UTT),
             "raw on the fly": OnTheFlyFeatures(str(data), pipeline=pipeline).features(0),
             "shards": ChunkFrontend(section)(UTT, samples.astype(np.float32), 16000, 1.0, None,
                                             None)}
    for path, got in paths.items():
        np.testing.assert_array_equal(got, expected, err_msg=path)
    # dither 0: a training chunk computed on its span equals the whole utterance's rows
    quiet = FeaturePipeline(pipeline.kind, no_dither(tmp_path, confs["conf"]), confs["vad_conf"],
                            confs["cmvn_conf"], no_dither(tmp_path, confs["vad_feat_conf"]),
                            on_the_fly=True)
    whole, _ = stage_one(tmp_path, data, quiet, "quiet")
    source = OnTheFlyFeatures(str(data), pipeline=quiet)
    length = 60
    for offset in (0, len(whole) // 2 - length // 2, len(whole) - length):
        np.testing.assert_allclose(source.chunk(0, offset, length), whole[offset:offset + length],
                                   atol=1e-5, rtol=0)
    views = LabelFreeSource([str(data)], {**section, **quiet.confs}, None, [length])
    version = views.version({"key": UTT, "samples": samples, "rate": 16000, "shard": "-"}, 0)
    np.testing.assert_array_equal(version[1], vad)     # the VAD does not dither-depend here
    view = views.view(UTT, version, length, np.random.default_rng(0))
    assert run_of(view, whole)


def test_one_set_of_default_confs(tmp_path, monkeypatch):
    """Every consumer resolves a config's missing conf paths the same way: fbank
    without a conf takes conf/fbank.conf (label-free training used to take
    conf/mfcc.conf for it, and failed on its --num-ceps)."""
    assert conf_paths({"type": "fbank"}) == {
        "conf": DEFAULT_CONFS["fbank"], "vad_conf": DEFAULT_CONFS["vad"],
        "cmvn_conf": DEFAULT_CONFS["cmvn"], "vad_feat_conf": DEFAULT_CONFS["mfcc"]}
    assert conf_paths(None, root="/r")["conf"] == "/r/conf/mfcc.conf"
    assert conf_paths({"type": "waveform"}) == {}
    fbank = FeaturePipeline.from_config({"type": "fbank"}, root=ROOT)
    assert fbank.feat_dim == 80 and fbank.vad_computer.dim == 30 and not fbank.on_the_fly
    data, _ = clip_dir(tmp_path)
    monkeypatch.chdir(ROOT)
    assert LabelFreeSource([str(data)], {"type": "fbank", "on_the_fly": True}, None,
                           [50]).feat_dim == 80
    with pytest.raises(ValueError, match="features.type must be mfcc, fbank or waveform"):
        FeaturePipeline.from_config({"type": "spectrogram"})


def test_the_pipeline_and_the_deployed_front_end_import_no_torch():
    code = ("import sys, pyutils.features.pipeline, pyutils.deploy.network_input; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": ROOT}).returncode == 0
