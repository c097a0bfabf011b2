"""The x-vector TDNN: shapes, Kaldi context, embedding position, gradients."""
import torch

from pyutils.models import build_model


def test_shapes_and_receptive_field():
    model = build_model("xvector", feat_dim=30).eval()
    frames = model.frame_layers(torch.zeros(2, 30, 100))
    # contexts [-2..2], {-2,0,2}, {-3,0,3}: 14 frames lost, receptive field 15
    assert frames.shape == (2, 1500, 100 - 14) and model.receptive_field == 15
    assert model(torch.randn(3, 200, 30)).shape == (3, 512)


def test_frame_output_depends_only_on_its_15_frame_window():
    torch.manual_seed(0)
    model = build_model("xvector", feat_dim=30).eval()
    x = torch.randn(1, 30, 40)
    y = x.clone()
    y[:, :, 20] += 10.0        # perturb input frame 20
    diff = (model.frame_layers(x) - model.frame_layers(y)).abs().sum(dim=1)[0]
    changed = torch.nonzero(diff > 1e-6).flatten().tolist()
    # output t sees inputs t..t+14, so outputs 6..20 change
    assert changed == list(range(6, 21))


def test_embedding_is_affine_output_before_nonlinearity():
    torch.manual_seed(0)
    model = build_model("xvector", feat_dim=30).eval()
    emb = model(torch.randn(4, 120, 30))
    assert (emb < 0).any()            # a ReLU output would be non-negative
    assert isinstance(model.head[0], torch.nn.ReLU)


def test_gradients_reach_the_first_layer():
    model = build_model("xvector", feat_dim=30)
    model.head(model(torch.randn(4, 60, 30))).sum().backward()
    grad = model.frame_layers[0].affine.weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_parameter_count_matches_the_kaldi_layer_sizes():
    model = build_model("xvector", feat_dim=30)
    affine = (150 * 512 + 512) + (1536 * 512 + 512) * 2 + (512 * 512 + 512) + (512 * 1500 + 1500)
    segment = (3000 * 512 + 512) + (512 * 512 + 512)
    batchnorm = 2 * (512 * 4 + 1500 + 512 * 2)
    assert model.num_parameters() == affine + segment + batchnorm
