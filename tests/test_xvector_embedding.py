"""The x-vector's embedding is the affine output of the first segment layer,
before its ReLU (Kaldi extracts 'tdnn6.affine'); the model-zoo tests cover the
rest (shapes, context, gradients, parameter counts)."""
import torch

from pyutils.models import build_model


def test_embedding_is_affine_output_before_nonlinearity():
    torch.manual_seed(0)
    model = build_model("xvector", feat_dim=30).eval()
    emb = model(torch.randn(4, 120, 30))
    assert (emb < 0).any()            # a ReLU output would be non-negative
    assert isinstance(model.head[0], torch.nn.ReLU)
