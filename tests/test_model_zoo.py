"""Every registered network: shapes, receptive field and frame shift measured on
the network itself, gradients, parameter counts (documented and derived from
the layer sizes), eval-mode determinism; plus attentive statistics pooling."""
import copy
import functools
import math
import sys

import pytest
import torch
from torch import nn

from pyutils.models import MODELS, build_model
from pyutils.models.campplus import ContextMask
from pyutils.models.ecapa import SqueezeExcitation
from pyutils.models.pooling import AttentiveStatsPooling, StatsPooling

FEAT_DIM = {"xvector": 30}          # the others take 80-dim fbank (or a waveform)

# Exact parameter counts of the default configurations, as the docstrings state them.
PARAMETERS = {
    "xvector": 4_482_524,          # Kaldi's count: non-affine batch norm
    "resnet18": 4_105_440,
    "resnet34": 6_634_336,
    "resnet50": 11_131_360,        # Bottleneck blocks: WeSpeaker's own modules give the same
    "resnet101": 15_892_448,
    "resnet152": 19_814_880,
    "resnet221": 23_792_224,
    "resnet293": 28_626_016,
    "ecapa": 6_191_104,
    "ecapa_c512": 6_191_104,
    "ecapa_c1024": 14_657_472,
    "wav2spk": 5_912_933,
    "campplus": 7_176_736,
    "eres2net": 6_610_688,
}

# (receptive field, frame shift, zero-padded 'same' convolutions?)
GEOMETRY = {
    "xvector": (15, 1, False),
    "resnet18": (109, 8, True),
    "resnet34": (225, 8, True),
    "resnet50": (107, 8, True),
    "resnet101": (243, 8, True),
    "resnet152": (363, 8, True),
    "resnet221": (497, 8, True),
    "resnet293": (649, 8, True),
    "ecapa": (131, 1, True),
    "ecapa_c512": (131, 1, True),
    "ecapa_c1024": (131, 1, True),
    "wav2spk": (1745, 160, False),
    "campplus": (393, 2, True),
    "eres2net": (239, 8, True),
}


# the two deepest networks take 10-20 s per test on the shared 2-core CPU
SLOW = ("campplus", "eres2net")
ALL = [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in sorted(MODELS)]


def test_every_registered_model_is_covered():
    assert set(MODELS) == set(PARAMETERS) == set(GEOMETRY)


# the Bottleneck ResNets' behaviour tests run 8 base channels, not 32: the layout (receptive
# field, shift, interface) does not depend on the width, and full width costs minutes per test
NARROW = {"resnet50", "resnet101", "resnet152", "resnet221", "resnet293"}


@functools.lru_cache(maxsize=None)
def _model(name, full_width=False):
    torch.manual_seed(0)
    width = {} if full_width or name not in NARROW else {"m_channels": 8}
    return build_model(name, feat_dim=FEAT_DIM.get(name, 80), **width).eval()


def model_copy(name):
    return copy.deepcopy(_model(name))


def make_input(name, batch, length, seed=0, narrow=False):
    """(batch, length, feat_dim) features or (batch, length) int16-scale waveforms.

    ``narrow``: for the frame-level part of the ResNets, whose convolutions take
    any number of frequency bins, use 16 instead of 80 (the time axis is what
    is measured, and it is 5x cheaper)."""
    gen = torch.Generator().manual_seed(seed)
    if _model(name).input_type == "waveform":
        return torch.randn(batch, length, generator=gen) * 3000.0
    feat_dim = 16 if narrow and name.startswith("resnet") else FEAT_DIM.get(name, 80)
    return torch.randn(batch, length, feat_dim, generator=gen)


def frame_level(model, x):
    """The frame-level part's output, (batch, dim, frames)."""
    if hasattr(model, "frame_level"):
        return model.frame_level(x)
    return model.frame_layers(x.transpose(1, 2))            # XVectorTDNN


def local_only(model, linear=False):
    """A copy without the utterance-wide statistics inside the frame-level part
    (ECAPA's squeeze-excitation, Wav2Spk's instance norm), leaving the local
    convolutional path whose context the receptive field describes; ``linear``:
    its ReLUs made identities too (as for CAM++, below)."""
    model = copy.deepcopy(model).eval()
    dense = linear or any(isinstance(m, ContextMask) for m in model.modules())
    for module in list(model.modules()):
        for child_name, child in module.named_children():
            if isinstance(child, (SqueezeExcitation, nn.InstanceNorm1d)):
                setattr(module, child_name, nn.Identity())
            elif isinstance(child, ContextMask):             # CAM++'s context masks
                setattr(module, child_name, _Ones())
            elif dense and isinstance(child, nn.ReLU):
                # CAM++'s 52 dense BN-ReLU layers at random init zero the window's
                # edges exactly (measured: +-114 of +-196); linear, they show the layout's
                setattr(module, child_name, nn.Identity())
    return model


class _Ones(nn.Module):
    def forward(self, x):
        return 1.0


def expected_frames(name, length):
    field, shift, padded = GEOMETRY[name]
    if padded:
        return math.ceil(length / shift)
    return (length - field) // shift + 1


def window(name, t):
    """First and last input index seen by output frame t."""
    field, shift, padded = GEOMETRY[name]
    start = t * shift - (field - 1) // 2 if padded else t * shift
    return start, start + field - 1


@pytest.mark.parametrize("name", ALL)
def test_output_shapes_and_interface(name):
    model = _model(name)
    length = 4000 if model.input_type == "waveform" else 50
    with torch.no_grad():
        emb = model(make_input(name, 3, length))
        out = model.head(emb)
    assert emb.shape == (3, model.embed_dim) and out.shape == (3, model.head_dim)
    assert model.input_type in ("feats", "waveform")
    assert (model.receptive_field, model.frame_shift) == GEOMETRY[name][:2]
    if name != "xvector":
        assert isinstance(model.head, nn.Identity) and model.head_dim == model.embed_dim


@pytest.mark.parametrize("name", ALL)
def test_frame_count_gives_the_frame_shift(name):
    model = _model(name)
    field, shift, padded = GEOMETRY[name]
    start = 1 if padded else field       # zero-padded networks give a frame for any input
    with torch.no_grad():
        for length in (start, start + 1, start + shift - 1, start + shift, start + 2 * shift + 5):
            frames = frame_level(model, make_input(name, 1, length, narrow=True)).shape[-1]
            assert frames == expected_frames(name, length), (name, length)


@pytest.mark.parametrize("name", ALL)
def test_receptive_field_from_input_gradient(name):
    """The input positions one interior output frame depends on: exactly its window."""
    # the 100 to 300 chained convolutions of the deepest ResNets reach the window's edges
    # only below float32, and at random init through ReLUs that are closed (measured:
    # ResNet293 sees 167..505 of 12..660): linear and float64 they show the layout's
    deep = name in ("resnet152", "resnet221", "resnet293")
    model = local_only(_model(name), linear=deep)
    field, shift, padded = GEOMETRY[name]
    t = 2 if not padded else math.ceil((field // 2) / shift) + 1
    length = window(name, t)[1] + 1 + shift
    x = make_input(name, 1, length, narrow=True)
    if name == "campplus" or deep:   # its 52-layer chains reach the window's edges below float32
        model, x = model.double(), x.double()
    x.requires_grad_(True)
    frame_level(model, x)[..., t].sum().backward()
    sensitivity = x.grad.abs()[0]
    if sensitivity.dim() == 2:
        sensitivity = sensitivity.sum(dim=1)                # over feature dims
    seen = torch.nonzero(sensitivity > 0).flatten()
    assert (seen.min().item(), seen.max().item()) == window(name, t)
    assert seen.numel() == field                            # no holes either


@pytest.mark.parametrize("name", ALL)
def test_perturbing_one_input_changes_exactly_the_frames_that_see_it(name):
    # float64: the effect through ECAPA's longest Res2 chain is ~1e-14 of the outputs,
    # below float32 resolution; frames that do not see the input stay bit-identical.
    model = local_only(_model(name)).double()
    field, shift, padded = GEOMETRY[name]
    # the changed frames must not reach either end of the output, so both
    # edges of the window are checked
    position = (field // 2 if padded else field) + 2 * shift + 3
    length = position + field + 2 * shift
    x = make_input(name, 1, length, narrow=True).double()
    y = x.clone()
    y[:, position] += 1000.0 if model.input_type == "waveform" else 5.0
    with torch.no_grad():
        diff = (frame_level(model, x) - frame_level(model, y)).abs().sum(dim=1)[0]
    changed = torch.nonzero(diff > 0).flatten().tolist()
    expected = [t for t in range(diff.numel())
                if window(name, t)[0] <= position <= window(name, t)[1]]
    assert changed == expected
    assert 0 < expected[0] and expected[-1] < diff.numel() - 1


@pytest.mark.parametrize("name", ["ecapa_c512", "wav2spk"])
def test_utterance_statistics_reach_every_frame(name):
    """What ``local_only`` removes is real: with squeeze-excitation (ECAPA) or
    instance norm (Wav2Spk) in place, one input changes every output frame."""
    model = _model(name)
    field, shift, _ = GEOMETRY[name]
    x = make_input(name, 1, 3 * field)
    y = x.clone()
    y[:, 5] += 1000.0 if model.input_type == "waveform" else 5.0
    with torch.no_grad():
        diff = (frame_level(model, x) - frame_level(model, y)).abs().sum(dim=1)[0]
    assert (diff > 0).all() and diff.numel() > field // shift


@pytest.mark.parametrize("name", ALL)
def test_gradients_reach_the_first_layer(name):
    model = model_copy(name).train()
    length = 4000 if model.input_type == "waveform" else 40
    torch.manual_seed(1)
    out = model.head(model(make_input(name, 4, length)))
    (out * torch.randn_like(out)).sum().backward()   # a plain sum is flat after a BatchNorm
    first_name, first = next(iter(model.named_parameters()))
    assert first.dim() >= 2, first_name             # a weight of the input layer
    assert first.grad is not None and first.grad.abs().sum() > 0
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing


@pytest.mark.parametrize("name", ALL)
def test_parameter_count_is_the_documented_one(name):
    model = _model(name, full_width=True)
    assert model.num_parameters() == PARAMETERS[name]
    docs = [sys.modules[type(model).__module__].__doc__]
    if name not in ("xvector", "campplus", "eres2net"):   # class docstrings without a count
        docs.append(type(model).__doc__)
    for doc in docs:
        assert f"{PARAMETERS[name]:,}" in " ".join(doc.split())


@pytest.mark.parametrize("name", ALL)
def test_eval_mode_is_deterministic_and_batch_independent(name):
    model = _model(name)
    length = 4000 if model.input_type == "waveform" else 40
    x = make_input(name, 3, length, seed=5)
    with torch.no_grad():
        first, second = model(x), model(x)
        alone = model(x[1:2])
    assert torch.equal(first, second)
    assert torch.allclose(alone[0], first[1], rtol=1e-4, atol=1e-4)


def _bn(c):
    return 2 * c


def resnet_parameters(blocks, feat_dim=80, m=32, embed=256, bottleneck=False):
    total = 9 * m + _bn(m)                           # stem
    in_ch = m
    for stage, n in enumerate(blocks):
        ch = m * 2 ** stage
        out = 4 * ch if bottleneck else ch
        for b in range(n):
            if bottleneck:                           # 1x1, 3x3, 1x1 to 4x the channels
                total += in_ch * ch + _bn(ch) + 9 * ch * ch + _bn(ch) + ch * out + _bn(out)
            else:
                total += 9 * in_ch * ch + _bn(ch) + 9 * ch * ch + _bn(ch)
            if in_ch != out or (b == 0 and stage > 0):
                total += in_ch * out + _bn(out)      # 1x1 projection shortcut
            in_ch = out
    pooled = 2 * in_ch * math.ceil(feat_dim / 8)
    return total + pooled * embed + embed


def ecapa_parameters(c, feat_dim=80, mfa=1536, embed=192, final_bn=True):
    w = c // 8
    conv_bn = lambda i, o, k: i * o * k + o + _bn(o)
    block = (2 * conv_bn(c, c, 1) + 7 * conv_bn(w, w, 3)
             + c * 128 + 128 + 128 * c + c)          # SE
    attention = 3 * mfa * 128 + 128 + 128 * mfa + mfa
    return (conv_bn(feat_dim, c, 5) + 3 * block + 3 * c * mfa + mfa + attention
            + _bn(2 * mfa) + 2 * mfa * embed + embed + (_bn(embed) if final_bn else 0))


def test_campplus_and_eres2net_published_sizes():
    # CAM++: 7.18 M (WeSpeaker and 3D-Speaker READMEs); ERes2Net-base: 3D-Speaker's
    # ERes2Net.py prints 6.61 M, its README says 4.6 M: the count without seg_1
    assert round(PARAMETERS["campplus"] / 1e6, 2) == 7.18
    assert round(PARAMETERS["eres2net"] / 1e6, 2) == 6.61
    eres = _model("eres2net")
    assert eres.embedding.in_features == 2 * 512 * 10
    assert round((PARAMETERS["eres2net"] - 10_240 * 192 - 192) / 1e6, 1) == 4.6


def test_parameter_counts_follow_from_the_layer_sizes():
    assert resnet_parameters([3, 4, 6, 3]) == PARAMETERS["resnet34"]
    assert resnet_parameters([2, 2, 2, 2]) == PARAMETERS["resnet18"]
    for name, blocks in [("resnet50", [3, 4, 6, 3]), ("resnet101", [3, 4, 23, 3]),
                         ("resnet152", [3, 8, 36, 3]), ("resnet221", [6, 16, 48, 3]),
                         ("resnet293", [10, 20, 64, 3])]:       # WeSpeaker's stage sizes
        assert resnet_parameters(blocks, bottleneck=True) == PARAMETERS[name], name
    assert ecapa_parameters(512) == PARAMETERS["ecapa_c512"]
    assert ecapa_parameters(1024) == PARAMETERS["ecapa_c1024"]
    encoder = sum(i * o * k + o + 2 * o for i, o, k in
                  [(1, 40, 10), (40, 200, 8), (200, 300, 4), (300, 512, 4), (512, 512, 4)])
    frames = 4 * (512 * 512 * 3 + 512 + _bn(512))
    segment = 1024 * 512 + 512 + _bn(512) + 512 * 512 + 512
    assert encoder + 513 + frames + segment == PARAMETERS["wav2spk"]


def test_published_sizes():
    # WeSpeaker's README: ResNet34 6.700M (with its second embedding layer),
    # ECAPA_TDNN_GLOB_c512 6.190M (no final BN),
    # c1024 with its 3C-wide MFA 20.761M; the ECAPA paper: 6.2M and 14.7M.
    assert 6.5e6 < PARAMETERS["resnet34"] < 6.7e6
    assert 23.79e6 <= PARAMETERS["resnet221"] < 23.80e6    # README: 23.79M
    assert 28.62e6 <= PARAMETERS["resnet293"] < 28.63e6    # README: 28.62M
    two_layers = build_model("resnet34", feat_dim=80, two_emb_layer=True)
    assert round(two_layers.num_parameters() / 1e6, 3) == 6.700      # WeSpeaker's README
    assert ecapa_parameters(512, final_bn=False) == 6_190_720
    assert build_model("ecapa_c512", feat_dim=80, final_bn=False).num_parameters() == 6_190_720
    assert round(ecapa_parameters(1024, mfa=3072, final_bn=False) / 1e6, 3) == 20.761
    assert round(PARAMETERS["ecapa_c1024"] / 1e5) == 147
    assert build_model("ecapa", feat_dim=80, channels=1024).num_parameters() == \
        PARAMETERS["ecapa_c1024"]


def test_resnet_pools_the_flattened_channel_by_frequency_map():
    model = _model("resnet34")
    with torch.no_grad():
        frames = model.frame_level(torch.randn(1, 50, 80))
    assert frames.shape == (1, 256 * 10, 7) and model.embedding.in_features == 2 * 2560
    assert build_model("resnet34", feat_dim=30).frame_dim == 256 * 4   # ceil(30 / 8)


def test_wav2spk_geometry_and_gate():
    model = _model("wav2spk")
    assert model.encoder_receptive_field == 465 and model.frame_shift == 160
    assert model.num_frames(32000) == (32000 - 1745) // 160 + 1
    with pytest.raises(ValueError):
        model.frame_level(torch.zeros(1, 1744))
    with torch.no_grad():                                        # forward pads short input
        short = model(make_input("wav2spk", 2, 1000))
    assert short.shape == (2, 512) and torch.isfinite(short).all()
    x = make_input("wav2spk", 1, 8000)
    with torch.no_grad():
        encoded = model.encoder(x.unsqueeze(1) / 32768.0)
        gates = torch.sigmoid(model.gate.score(encoded))
        gated = model.gate(encoded)
    assert gates.shape == (1, 1, encoded.shape[-1])            # one gate per frame
    assert torch.allclose(gated, encoded * gates)
    # instance norm: every encoder channel is standardised over the utterance
    mean, std = encoded.mean(dim=2), encoded.std(dim=2, unbiased=False)
    norm = model.encoder[-1].norm
    assert torch.allclose(mean, norm.bias.expand_as(mean), atol=1e-4)
    assert torch.allclose(std, norm.weight.abs().expand_as(std), atol=1e-2)


def test_attentive_pooling_with_uniform_attention_is_mean_and_std():
    torch.manual_seed(0)
    pool = AttentiveStatsPooling(6, bottleneck=4)
    nn.init.zeros_(pool.attention[2].weight)
    nn.init.zeros_(pool.attention[2].bias)           # equal scores -> uniform weights
    x = torch.randn(3, 6, 50)
    assert torch.allclose(pool(x), StatsPooling()(x), atol=1e-5)


def test_attentive_pooling_weights_are_per_channel_and_use_global_context():
    torch.manual_seed(0)
    pool = AttentiveStatsPooling(4, bottleneck=8)
    assert pool.attention[0].in_channels == 12       # frame + utterance mean + std
    assert AttentiveStatsPooling(4, 8, global_context=False).attention[0].in_channels == 4
    x = torch.randn(2, 4, 30)
    out = pool(x)
    assert out.shape == (2, 8)
    # each channel's mean is a convex combination of its own frames
    assert ((out[:, :4] >= x.min(dim=2).values - 1e-6)
            & (out[:, :4] <= x.max(dim=2).values + 1e-6)).all()
    # whatever its attention weights, a constant channel pools to (value, ~0)
    x[:, 2] = 7.0
    out = pool(x)
    assert torch.allclose(out[:, 2], torch.full((2,), 7.0))
    assert (out[:, 6] < 1e-4).all()


def test_xvector_batch_norm_is_kaldis_non_affine_one(tmp_path):
    """Kaldi's BatchNormComponent has no scale/offset; ``bn_affine: true`` adds them
    (9,144 parameters), and a checkpoint with them still loads from its own config."""
    from pyutils.extraction.extract import load_embedding_model
    from pyutils.training import checkpoint
    plain = _model("xvector")
    norms = [m for m in plain.modules() if isinstance(m, nn.BatchNorm1d)]
    assert len(norms) == 7 and not any(m.affine or m.weight is not None for m in norms)
    torch.manual_seed(3)
    affine = build_model("xvector", feat_dim=30, bn_affine=True).eval()
    assert affine.num_parameters() - plain.num_parameters() == 2 * (4 * 512 + 1500 + 2 * 512)
    with torch.no_grad():                      # non-trivial scales, as a trained model has
        for m in affine.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.weight.uniform_(0.5, 2.0), m.bias.uniform_(-1.0, 1.0)
    # an old final.pt: affine BN weights, a config without bn_affine
    path = str(tmp_path / "final.pt")
    checkpoint.save(path, {"model": affine.state_dict(), "config": {"model": {"name": "xvector"}},
                           "feat_dim": 30})
    loaded = load_embedding_model(path)
    x = make_input("xvector", 2, 60, seed=4)
    with torch.no_grad():
        assert torch.equal(loaded(x), affine(x))
    # and the non-affine model loads a non-affine state dict strictly
    fresh = build_model("xvector", feat_dim=30)
    fresh.load_state_dict(plain.state_dict())
    assert not fresh.bn_affine
