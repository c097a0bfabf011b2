"""Weight-name translation shared by the importers: prefix renames and positional matching."""
from __future__ import annotations

import re
from typing import Dict, Iterable, List, Sequence, Tuple

import torch

from pyutils.models.convert.common import ConversionError

NBT = "num_batches_tracked"


def strip(state: Dict[str, torch.Tensor], drop: Sequence[str] = ()) -> Dict[str, torch.Tensor]:
    """Tensors only, DataParallel's ``module.`` removed, keys under ``drop`` prefixes left out."""
    out = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue
        key = key[len("module."):] if key.startswith("module.") else key
        if drop and key.startswith(tuple(drop)):
            continue
        out[key] = value
    return out


def rename(state: Dict[str, torch.Tensor], rules: Iterable[Tuple[str, object]]):
    """Apply the first matching (regex, replacement) of ``rules`` to every key; returns the
    renamed state and {new key: source key} (for error messages in the source's names)."""
    rules = [(re.compile(pattern), repl) for pattern, repl in rules]
    out, origin = {}, {}
    for key, value in state.items():
        new = key
        for pattern, repl in rules:
            if pattern.match(key):
                new = pattern.sub(repl, key, count=1)
                break
        out[new], origin[new] = value, key
    return out, origin


def positional(state: Dict[str, torch.Tensor], model: torch.nn.Module, source: str,
               zero: Sequence[str] = ()) -> Dict[str, torch.Tensor]:
    """Pair the source's tensors with the network's in definition order (batch-norm counters
    aside); shapes must agree up to trailing singleton dims (a 1x1 Conv1d as a Linear).
    ``zero``: the network's tensors the source lacks (e.g. a bias), set to zeros."""
    ours = [(k, v) for k, v in model.state_dict().items() if not k.endswith(NBT) and k not in zero]
    theirs: List[Tuple[str, torch.Tensor]] = [(k, v) for k, v in state.items()
                                             if not k.endswith(NBT)]
    out = {k: torch.zeros_like(v) for k, v in model.state_dict().items() if k in zero}
    for (key, value), (src_key, src_value) in zip(ours, theirs):
        if tuple(value.shape) != tuple(src_value.shape):
            squeezed = src_value.reshape(value.shape) if value.numel() == src_value.numel() \
                and [n for n in src_value.shape if n != 1] == [n for n in value.shape if n != 1] \
                else None
            if squeezed is None:
                raise ConversionError(f"{source}: key '{src_key}' has shape "
                                      f"{tuple(src_value.shape)}, the {type(model).__name__} "
                                      f"network expects {tuple(value.shape)} ('{key}')")
            src_value = squeezed
        out[key] = src_value
    if len(ours) != len(theirs):
        extra = theirs[len(ours)] if len(theirs) > len(ours) else ours[len(theirs)]
        where = "unexpected" if len(theirs) > len(ours) else "missing"
        raise ConversionError(f"{source}: key '{extra[0]}' {tuple(extra[1].shape)} is {where} "
                              f"({len(theirs)} tensors in the checkpoint, the "
                              f"{type(model).__name__} network has {len(ours)})")
    for key, value in model.state_dict().items():
        if key.endswith(NBT):
            out[key] = value
    return out


# 3D-Speaker's ERes2Net names -> ours (also the top level of WeSpeaker's ERes2Net).
ERES2NET_3DSPEAKER_RULES = [
    (r"^fuse_mode12\.", "fuse.0."), (r"^fuse_mode123\.", "fuse.1."),
    (r"^fuse_mode1234\.", "fuse.2."),
    (r"^layer(\d)_downsample\.", lambda m: f"downsample.{int(m.group(1)) - 1}."),
    (r"^seg_1\.", "embedding."),
    (r"^(layer\d\.\d+)\.fuse_models\.", r"\1.fuse.")]
