"""SpeechBrain ECAPA (spkrec-ecapa-voxceleb layout) imported: its Fbank front-end and network
against SpeechBrain's own code (tests/fixtures/parity/speechbrain_ecapa.npz, made by
``tools/make_parity_fixtures.py speechbrain``; versions in VERSIONS.json)."""
import json
import os
import sys

import numpy as np
import pytest
import torch

from pyutils.features import sb_fbank
from pyutils.models.convert import speechbrain
from pyutils.models.convert.common import ConversionError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures", "parity", "speechbrain_ecapa.npz")
sys.path.insert(0, os.path.join(ROOT, "tools"))
from parity_weights import random_state  # noqa: E402

HYPERPARAMS = """n_mels: 80
compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: !ref <n_mels>
mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
    std_norm: False
embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
    input_size: !ref <n_mels>
    channels: [32, 32, 32, 32, 96]
    kernel_sizes: [5, 3, 3, 3, 1]
    dilations: [1, 2, 3, 4, 1]
    attention_channels: 16
    lin_neurons: 24
"""


def model_dir(directory, hyperparams=HYPERPARAMS):
    data = np.load(FIX)
    keys = json.loads(str(data["keys"]))
    state = {k: torch.from_numpy(v) for k, v in random_state(keys, int(data["seed"])).items()}
    os.makedirs(directory, exist_ok=True)
    torch.save(state, os.path.join(directory, "embedding_model.ckpt"))
    with open(os.path.join(directory, "hyperparams.yaml"), "w") as out:
        out.write(hyperparams)
    return data


def relative(ours, ref):
    return float(np.linalg.norm(ours - ref) / np.linalg.norm(ref))


def test_fbank_equals_speechbrain():
    data = np.load(FIX)
    wav = data["wav"].astype(np.float64) / 32768.0
    ours = sb_fbank.fbank(wav)
    assert ours.shape == data["fbank"].shape
    # dB; measured at most 3.3e-4 (SpeechBrain's STFT is float32)
    np.testing.assert_allclose(ours, data["fbank"], atol=1e-3)
    np.testing.assert_allclose(sb_fbank.features(wav), data["normed"], atol=1e-3)


def test_network_and_front_end_match_speechbrain(tmp_path):
    data = model_dir(str(tmp_path / "sb"))
    model, config, sources = speechbrain.convert(str(tmp_path / "sb"))
    assert config["model"] == {"name": "sb_ecapa", "num_mels": 80, "channels": 32,
                               "mfa_channels": 96, "embed_dim": 24, "attention_bottleneck": 16,
                               "se_bottleneck": 128, "scale": 8}
    assert len(sources) == 2
    with torch.no_grad():       # the network alone, on SpeechBrain's own features
        net = model.ecapa(torch.from_numpy(data["normed"])[None])[0].numpy()
        full = model(torch.from_numpy(data["wav"].astype(np.float32))[None])[0].numpy()
    assert relative(net, data["embedding"]) < 1e-4
    assert relative(full, data["embedding"]) < 1e-4


def test_unsupported_hyperparams_refused(tmp_path):
    model_dir(str(tmp_path / "sb"), HYPERPARAMS.replace("std_norm: False", "std_norm: True"))
    with pytest.raises(ConversionError, match="only sentence mean normalisation"):
        speechbrain.convert(str(tmp_path / "sb"))
    model_dir(str(tmp_path / "sb2"), HYPERPARAMS.replace("[1, 2, 3, 4, 1]", "[1, 2, 2, 2, 1]"))
    with pytest.raises(ConversionError, match="dilations"):
        speechbrain.convert(str(tmp_path / "sb2"))
