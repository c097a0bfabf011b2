"""``import_model --from hf``: the transformers *ForXVector conversion behind the same command."""
import numpy as np
import torch

from pyutils.cli import import_model
from pyutils.extraction.extract import load_embedding_model
from tests.test_ssl_encoder import build_tiny, hf_inputs, transformers, waveforms


def test_import_model_from_hf_equals_transformers(tmp_path, capsys):
    path = build_tiny("wavlm", tmp_path / "hf", xvector=True)
    assert import_model.main(["--from", "hf", path, str(tmp_path / "out" / "final.pt")]) == 0
    assert (tmp_path / "out" / ".done").exists()
    model = load_embedding_model(str(tmp_path / "out" / "final.pt"))
    x = waveforms(1, 12000, seed=4)
    hf = transformers.WavLMForXVector.from_pretrained(path).eval()
    with torch.no_grad():
        ours, theirs = model(x)[0].numpy(), hf(hf_inputs(x)).embeddings[0].numpy()
    assert np.abs(ours - theirs).max() < 1e-5
    assert import_model.main(["--from", "hf", path, str(tmp_path / "o2"),
                              "--checkpoint", "x.pt"]) == 1
    assert "do not apply to --from hf" in capsys.readouterr().err
