"""WeSpeaker checkpoints (``avg_model.pt`` + ``config.yaml``) as toolkit models.

Supported ``model:`` values and what they become:

- ``ResNet18`` / ``ResNet34`` (BasicBlocks) and ``ResNet50`` / ``101`` / ``152`` / ``221`` /
  ``293`` (Bottleneck blocks), TSTP pooling, with or without ``two_emb_layer`` ->
  ``resnet18`` ... ``resnet293`` with ``pooling: tstp`` (WeSpeaker's unbiased-variance
  statistics); ``conv1/bn1 -> stem``, ``layerN -> stages.N-1``, ``seg_1 -> embedding``,
  ``seg_bn_1/seg_2 -> head`` (the blocks keep WeSpeaker's names); the base width comes from
  the weights;
- ``ECAPA_TDNN[_GLOB]_c512/c1024`` (ASTP) -> ``ecapa`` with ``layout: wespeaker`` (its Res2
  group order and pooling arithmetic), the sizes, global context and ``emb_bn`` from the
  weights;
- ``ERes2Net34_Base``/``_Large`` (TSTP) -> ``eres2net`` (3D-Speaker's layout: the first
  Res2 group's ``conv2_1``/``bn2_1`` of the fused blocks become ``convs.0``/``bns.0``);
- ``CAMPPlus`` -> ``campplus`` (same layout, matched in order; WeSpeaker's embedding layer
  has no bias, ours is set to zero).

``projection.*`` (the margin classifier of the training speakers) is dropped.  The front-end
is WeSpeaker's inference one: Kaldi fbank, ``num_mel_bins`` from the config, Hamming window,
dither 0, no energy; written to ``OUT/fbank.conf``.  Differences that remain (docs/pretrained.md):
WeSpeaker normalises by the whole-utterance mean and keeps every frame; this toolkit's stages
use sliding CMN (300 frames: the same for utterances up to 3 s) and drop the frames its energy
VAD calls silent; frames are not snipped at the edges (conf/fbank.conf explains why).
"""
from __future__ import annotations

import os

from pyutils.models import build_model
from pyutils.models.convert import layout
from pyutils.models.convert.common import ConversionError, load_checked, load_torch, read_yaml

RESNETS = {name: name.lower() for name in ("ResNet18", "ResNet34", "ResNet50", "ResNet101",
                                            "ResNet152", "ResNet221", "ResNet293")}
RESNET_RULES = [(r"^conv1\.", "stem.0."), (r"^bn1\.", "stem.1."),
                (r"^layer(\d)\.", lambda m: f"stages.{int(m.group(1)) - 1}."),
                (r"^seg_1\.", "embedding."), (r"^seg_bn_1\.", "head.1."), (r"^seg_2\.", "head.2.")]
ECAPAS = ("ECAPA_TDNN_GLOB_c512", "ECAPA_TDNN_GLOB_c1024", "ECAPA_TDNN_c512", "ECAPA_TDNN_c1024")
ECAPA_RULES = [
    (r"^layer1\.bn\.", "layer1.norm."),
    (r"^layer(\d)\.se_res2block\.([02])\.bn\.",
     lambda m: f"blocks.{int(m.group(1)) - 2}.body.{m.group(2)}.norm."),
    (r"^layer(\d)\.se_res2block\.([02])\.conv\.",
     lambda m: f"blocks.{int(m.group(1)) - 2}.body.{m.group(2)}.conv."),
    (r"^layer(\d)\.se_res2block\.1\.convs\.(\d+)\.",
     lambda m: f"blocks.{int(m.group(1)) - 2}.body.1.convs.{m.group(2)}.conv."),
    (r"^layer(\d)\.se_res2block\.1\.bns\.(\d+)\.",
     lambda m: f"blocks.{int(m.group(1)) - 2}.body.1.convs.{m.group(2)}.norm."),
    (r"^layer(\d)\.se_res2block\.3\.linear1\.",
     lambda m: f"blocks.{int(m.group(1)) - 2}.body.3.squeeze."),
    (r"^layer(\d)\.se_res2block\.3\.linear2\.",
     lambda m: f"blocks.{int(m.group(1)) - 2}.body.3.excite."),
    (r"^conv\.", "mfa.0."), (r"^pool\.linear1\.", "pooling.attention.0."),
    (r"^pool\.linear2\.", "pooling.attention.2."), (r"^bn\.", "pooling_norm."),
    (r"^linear\.", "embedding."), (r"^bn2\.", "embedding_norm.")]
ERES2NETS = ("ERes2Net34_Base", "ERes2Net34_Large")
ERES2NET_RULES = [   # 3D-Speaker's top-level names, then WeSpeaker's split first group
    (r"^(layer[34]\.\d+)\.conv2_1\.", r"\1.convs.0."),
    (r"^(layer[34]\.\d+)\.bn2_1\.", r"\1.bns.0."),
    (r"^(layer[34]\.\d+)\.convs\.(\d+)\.", lambda m: f"{m.group(1)}.convs.{int(m.group(2)) + 1}."),
    (r"^(layer[34]\.\d+)\.bns\.(\d+)\.", lambda m: f"{m.group(1)}.bns.{int(m.group(2)) + 1}."),
    (r"^(layer[34]\.\d+)\.fuse_models\.", r"\1.fuse.")]
DROP = ("projection.", "margin")


def importable() -> str:
    return ", ".join(sorted([*RESNETS, *ECAPAS, *ERES2NETS, "CAMPPlus"]))


def fbank_options(num_mel_bins: int, window: str = "hamming") -> dict:
    """Kaldi fbank options of a torchaudio ``compliance.kaldi.fbank`` front-end at inference."""
    return {"sample-frequency": 16000, "frame-length": 25, "frame-shift": 10,
            "num-mel-bins": int(num_mel_bins), "low-freq": 20, "high-freq": 0,
            "window-type": window, "dither": 0.0, "use-energy": "false",
            "snip-edges": "false", "allow-downsample": "false", "allow-upsample": "false"}


def campplus_config(state: dict) -> dict:
    """CAM++ sizes read from the weights (3D-Speaker's key names = WeSpeaker's)."""
    try:
        growth = state["xvector.block1.tdnnd1.cam_layer.linear_local.weight"].shape[0]
        return {"name": "campplus",
                "embed_dim": int(state["xvector.dense.linear.weight"].shape[0]),
                "growth_rate": int(growth),
                "bn_size": int(state["xvector.block1.tdnnd1.linear1.weight"].shape[0] // growth),
                "init_channels": int(state["xvector.tdnn.linear.weight"].shape[0])}
    except KeyError as err:
        raise ConversionError(f"key {err} is missing: not a CAM++ checkpoint") from None


def build_campplus(state: dict, feat_dim: int, source: str, stats_eps: float = 1e-7):
    config = {**campplus_config(state), "stats_eps": stats_eps}
    model = build_model(feat_dim=feat_dim, **config)
    return load_checked(model, layout.positional(state, model, source,
                                                 zero=("embedding.bias",)), source), config


def build_resnet(name: str, state: dict, args: dict, source: str):
    if args.get("pooling_func", "TSTP") != "TSTP":
        raise ConversionError(f"{source}: pooling_func {args['pooling_func']}: only TSTP "
                              f"ResNets are importable")
    if "conv1.weight" not in state:
        raise ConversionError(f"{source}: key 'conv1.weight' is missing: not a WeSpeaker ResNet")
    config = {"name": RESNETS[name],
              "embed_dim": int(args.get("embed_dim", state["seg_1.weight"].shape[0])),
              "m_channels": int(state["conv1.weight"].shape[0]),
              "two_emb_layer": bool(args.get("two_emb_layer", False)), "pooling": "tstp"}
    model = build_model(feat_dim=int(args.get("feat_dim", 80)), **config)
    renamed, origin = layout.rename(state, RESNET_RULES)
    return load_checked(model, renamed, source, origin=origin), config


def build_ecapa(state: dict, args: dict, source: str):
    if args.get("pooling_func", "ASTP") != "ASTP":
        raise ConversionError(f"{source}: pooling_func {args['pooling_func']}: only ASTP "
                              f"ECAPA-TDNNs are importable")
    try:
        mfa = int(state["conv.weight"].shape[0])
        config = {"name": "ecapa", "channels": int(state["layer1.conv.weight"].shape[0]),
                  "embed_dim": int(state["linear.weight"].shape[0]), "mfa_channels": mfa,
                  "attention_bottleneck": int(state["pool.linear1.weight"].shape[0]),
                  "se_bottleneck": int(state["layer2.se_res2block.3.linear1.weight"].shape[0]),
                  "global_context": int(state["pool.linear1.weight"].shape[1]) == 3 * mfa,
                  "final_bn": "bn2.weight" in state, "layout": "wespeaker"}
    except KeyError as err:
        raise ConversionError(f"{source}: key {err} is missing: not a WeSpeaker ECAPA_TDNN") \
            from None
    model = build_model(feat_dim=int(args.get("feat_dim", 80)), **config)
    renamed, origin = layout.rename(state, ECAPA_RULES)
    return load_checked(model, renamed, source, origin=origin), config


def build_eres2net(state: dict, args: dict, source: str):
    if args.get("pooling_func", "TSTP") != "TSTP" or args.get("two_emb_layer", False):
        raise ConversionError(f"{source}: only TSTP ERes2Nets with one embedding layer are "
                              f"importable")
    if "seg_1.weight" not in state or "conv1.weight" not in state:
        raise ConversionError(f"{source}: key 'seg_1.weight' is missing: not an ERes2Net")
    config = {"name": "eres2net", "embed_dim": int(state["seg_1.weight"].shape[0]),
              "m_channels": int(state["conv1.weight"].shape[0])}
    model = build_model(feat_dim=int(args.get("feat_dim", 80)), **config)
    renamed, origin = layout.rename(state, ERES2NET_RULES + [
        rule for rule in layout.ERES2NET_3DSPEAKER_RULES if "fuse_models" not in rule[0]])
    return load_checked(model, renamed, source, origin=origin), config


def convert(src: str, checkpoint: str = None, config: str = None):
    """(network, toolkit config, files read) from a WeSpeaker model directory ``src``."""
    weights = checkpoint or os.path.join(src, "avg_model.pt")
    config_path = config or os.path.join(src, "config.yaml")
    if not os.path.isfile(weights) and os.path.isdir(src):
        found = sorted(f for f in os.listdir(src) if f.endswith((".pt", ".pth")))
        if len(found) == 1:
            weights = os.path.join(src, found[0])
    saved = read_yaml(config_path)
    name, args = saved.get("model"), dict(saved.get("model_args") or {})
    state = load_torch(weights)
    state = layout.strip(state.get("model", state) if isinstance(state, dict) else {}, DROP)
    if not state:
        raise ConversionError(f"{weights}: holds no tensors")
    feat_dim = int(args.get("feat_dim", 80))
    if name in RESNETS:
        model, model_cfg = build_resnet(name, state, args, weights)
    elif name == "CAMPPlus":
        model, model_cfg = build_campplus(state, feat_dim, weights)
    elif name in ECAPAS:
        model, model_cfg = build_ecapa(state, args, weights)
    elif name in ERES2NETS:
        model, model_cfg = build_eres2net(state, args, weights)
    else:
        raise ConversionError(f"{config_path}: model '{name}' is not importable from WeSpeaker "
                              f"(importable: {importable()})")
    fbank = (saved.get("dataset_args") or {}).get("fbank_args") or {}
    bins = int(fbank.get("num_mel_bins", feat_dim))
    if bins != feat_dim:
        raise ConversionError(f"{config_path}: fbank_args.num_mel_bins {bins} but model_args."
                              f"feat_dim {feat_dim}")
    config = {"features": {"type": "fbank", "kaldi_options": fbank_options(bins)},
              "model": model_cfg, "loss": {"name": "aam", "scale": 32, "margin": 0.2}}
    return model, config, [weights, config_path]
