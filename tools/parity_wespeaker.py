"""WeSpeaker references: its own model code (``wespeaker/models``) on small random-weight
configurations.  ``--src`` is a checkout of wenet-e2e/wespeaker (only ``wespeaker/models``
is imported: plain torch; the package's own ``__init__``, which needs its CLI's dependencies,
is skipped).  Also used for 3D-Speaker (``parity_3dspeaker``).

For each case the fixture ``<source>_<case>.npz`` holds the source network's key names and
shapes, the seed of its weights (tools/parity_weights.py), the ``config.yaml`` the importer
reads, a fixed (frames x 80) fbank input (already CMN'd) and the source's embedding.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from parity_weights import random_state

FRAMES, SEED_INPUT = 230, 7

# case: (builder expression over the imported modules, WeSpeaker config.yaml model section)
CASES = {
    "resnet34": ("resnet.ResNet(resnet.BasicBlock, [3, 4, 6, 3], m_channels=8, feat_dim=80, "
                 "embed_dim=32, pooling_func='TSTP', two_emb_layer=False)",
                 {"model": "ResNet34", "model_args": {"feat_dim": 80, "embed_dim": 32,
                                                      "pooling_func": "TSTP",
                                                      "two_emb_layer": False}}),
    "resnet18_two_emb": ("resnet.ResNet(resnet.BasicBlock, [2, 2, 2, 2], m_channels=8, "
                         "feat_dim=80, embed_dim=24, pooling_func='TSTP', two_emb_layer=True)",
                         {"model": "ResNet18", "model_args": {"feat_dim": 80, "embed_dim": 24,
                                                              "pooling_func": "TSTP",
                                                              "two_emb_layer": True}}),
    # Bottleneck blocks (expansion 4): WeSpeaker's ResNet50 and ResNet101 stage sizes, 8 base
    # channels; the second one with two embedding layers
    "resnet50_m8": ("resnet.ResNet(resnet.Bottleneck, [3, 4, 6, 3], m_channels=8, feat_dim=80, "
                    "embed_dim=32, pooling_func='TSTP', two_emb_layer=False)",
                    {"model": "ResNet50", "model_args": {"feat_dim": 80, "embed_dim": 32,
                                                         "pooling_func": "TSTP",
                                                         "two_emb_layer": False}}),
    "resnet101_m8_two_emb": ("resnet.ResNet(resnet.Bottleneck, [3, 4, 23, 3], m_channels=8, "
                             "feat_dim=80, embed_dim=24, pooling_func='TSTP', "
                             "two_emb_layer=True)",
                             {"model": "ResNet101", "model_args": {
                                 "feat_dim": 80, "embed_dim": 24, "pooling_func": "TSTP",
                                 "two_emb_layer": True}}),
    "ecapa_glob_c32": ("ecapa_tdnn.ECAPA_TDNN(channels=32, feat_dim=80, embed_dim=24, "
                       "pooling_func='ASTP', global_context_att=True, emb_bn=False)",
                       {"model": "ECAPA_TDNN_GLOB_c512", "model_args": {
                           "feat_dim": 80, "embed_dim": 24, "pooling_func": "ASTP"}}),
    "ecapa_c32_emb_bn": ("ecapa_tdnn.ECAPA_TDNN(channels=32, feat_dim=80, embed_dim=24, "
                         "pooling_func='ASTP', global_context_att=False, emb_bn=True)",
                         {"model": "ECAPA_TDNN_c512", "model_args": {
                             "feat_dim": 80, "embed_dim": 24, "pooling_func": "ASTP",
                             "emb_bn": True}}),
    "eres2net_m8": ("eres2net.ERes2Net(8, [3, 4, 6, 3], feat_dim=80, embed_dim=24, "
                    "pooling_func='TSTP', two_emb_layer=False)",
                    {"model": "ERes2Net34_Base", "model_args": {
                        "feat_dim": 80, "embed_dim": 24, "pooling_func": "TSTP",
                        "two_emb_layer": False}}),
    "campplus": ("campplus.CAMPPlus(feat_dim=80, embed_dim=32, growth_rate=8, bn_size=2, "
                 "init_channels=32)",
                 {"model": "CAMPPlus", "model_args": {"feat_dim": 80, "embed_dim": 32,
                                                      "growth_rate": 8, "bn_size": 2,
                                                      "init_channels": 32}}),
}

# cases added after the first fixtures were committed keep their own seeds (case_seeds)
FIXED_SEEDS = {"resnet50_m8": 110, "resnet101_m8_two_emb": 111}


def fbank_input() -> np.ndarray:
    """A fixed CMN'd fbank-like matrix: log-energies with a spectral slope and noise."""
    rng = np.random.default_rng(SEED_INPUT)
    feats = 12.0 - 0.05 * np.arange(80)[None, :] + 2.0 * rng.standard_normal((FRAMES, 80))
    return (feats - feats.mean(axis=0)).astype(np.float32)


def case_seeds(cases: dict, fixed: dict) -> dict:
    """case -> weight seed: ``fixed`` ones as given, the others 100, 101, ... in name order
    (cases added later name their seed, so the earlier fixtures stay bit-identical)."""
    seeds = dict(fixed)
    seeds.update((case, seed) for seed, case in
                 enumerate(sorted(set(cases) - set(fixed)), start=100))
    return seeds


def run_cases(out: str, source: str, cases: dict, modules: dict, embed,
              fixed_seeds: dict = None) -> None:
    """Build each case with the source's code, load seeded weights, embed the fixed input."""
    import torch
    feats = fbank_input()
    seeds = case_seeds(cases, fixed_seeds or {})
    for case, (builder, config) in sorted(cases.items()):
        seed = seeds[case]
        torch.manual_seed(0)
        model = eval(builder, {}, modules).eval()           # noqa: S307 (our own table)
        keys = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
        state = {k: torch.from_numpy(v) for k, v in random_state(keys, seed).items()}
        model.load_state_dict(state, strict=True)
        with torch.no_grad():
            embedding = embed(model, torch.from_numpy(feats)[None])[0].numpy()
        np.savez(os.path.join(out, f"{source}_{case}.npz"), feats=feats, embedding=embedding,
                 seed=seed, keys=json.dumps(keys), config=json.dumps(config))
        print(f"{source} {case}: {sum(int(np.prod(s)) for _, s in keys)} values, "
              f"embedding {embedding.shape}")


def checkout_commit(src: str) -> str:
    try:
        return subprocess.run(["git", "-C", src, "rev-parse", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def make(out: str, src: str) -> dict:
    if not src:
        raise SystemExit("wespeaker: give --src, a checkout of wenet-e2e/wespeaker")
    import types
    package = types.ModuleType("wespeaker")           # wespeaker/__init__.py imports its CLI
    package.__path__ = [os.path.join(os.path.abspath(src), "wespeaker")]
    sys.modules.setdefault("wespeaker", package)
    import torch
    from wespeaker.models import campplus, ecapa_tdnn, eres2net, resnet

    def embed(model, feats):
        output = model(feats)
        return output[-1] if isinstance(output, tuple) else output   # (embed_a, embed_b)

    modules = {"resnet": resnet, "campplus": campplus, "ecapa_tdnn": ecapa_tdnn,
               "eres2net": eres2net}
    run_cases(out, "wespeaker", CASES, modules, embed, FIXED_SEEDS)
    return {"wespeaker_commit": os.environ.get("SOURCE_COMMIT") or checkout_commit(src),
            "torch": torch.__version__, "numpy": np.__version__}
