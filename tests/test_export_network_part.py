"""ONNX of the networks behind a numpy front-end (GE2E, SpeechBrain ECAPA): the graph takes
the front-end's output, and ONNX Runtime on it equals the eager model on the waveform."""
import numpy as np
import pytest
import torch

from pyutils.deploy.export import export_network_part
from pyutils.models import build_model

pytest.importorskip("onnxruntime")
pytest.importorskip("webrtcvad")


@pytest.mark.slow   # the LSTM export takes about a minute on a loaded 2-core machine
@pytest.mark.parametrize("name, options", [
    ("ge2e", {"hidden_size": 24, "num_layers": 2, "embed_dim": 16}),
    ("sb_ecapa", {"channels": 32, "mfa_channels": 96, "embed_dim": 16,
                  "attention_bottleneck": 8, "se_bottleneck": 8, "scale": 4})])
def test_onnx_network_part_equals_the_eager_model(tmp_path, name, options):
    import onnxruntime as ort
    torch.manual_seed(0)
    model = build_model(name, **options).eval()
    path = str(tmp_path / "part.onnx")
    assert export_network_part(model, path) <= 1e-4
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    wave = np.random.default_rng(5).normal(size=40000) * 2000     # 2.5 s: another length
    with torch.inference_mode():
        eager = model(torch.from_numpy(wave.astype(np.float32))[None]).numpy()
    ours = session.run(None, {"input": model.frontend(wave / 32768.0)})[0]
    assert ours.shape == eager.shape == (1, 16)
    np.testing.assert_allclose(ours, eager, atol=1e-4)
