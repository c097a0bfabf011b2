"""What a speaker-embedding network provides: the base class of every network.

Training, extraction, ONNX export and the deployed package treat every network
the same way, through these names only (a new network subclasses
:class:`EmbeddingNet`, sets them, and is registered in ``pyutils.models.registry.MODELS``):

``forward(x) -> (batch, embed_dim)``
    the embedding that extraction writes.  ``x`` is (batch, frames, feat_dim)
    features for ``input_type = "feats"``, or a (batch, samples) waveform on
    the int16 scale for ``input_type = "waveform"``.
``input_type``
    ``"feats"`` (the default) or ``"waveform"``: which input the data
    pipeline gives (training checks it against the config's features; the
    package records it, so the deployed front-end computes the same input).
``embed_dim``
    the size of ``forward``'s output.
``head``, ``head_dim``
    the classifier-side layers used only in supervised training: the loss
    (``pyutils.losses``, which holds the speaker classifier) is applied to
    ``head(forward(x))``, a (batch, head_dim) tensor.  Most networks feed the
    embedding to the loss directly (``head`` the identity, ``head_dim ==
    embed_dim``); the Kaldi x-vector keeps its tdnn6 nonlinearity and tdnn7
    there, because its embedding is the affine output of tdnn6.
``frame_shift``
    for a waveform network, the input samples per frame of the chunk and
    window options of training and extraction (which stay in 10 ms frames:
    160 at 16 kHz), recorded in the package; for a feature network, the
    input frames per output frame of its frame-level part (1 by default).
``receptive_field``
    input frames (samples for a waveform network) seen by one output frame of
    the frame-level part; extraction does not cut windows shorter than it.
``num_parameters()``
    the number of weights (logged by training; the model zoo tests compare it
    with each network's documented count).

The base class holds nothing but these: no weights, so a network's
``state_dict`` keys and parameter order are its own.
"""
from __future__ import annotations

from typing import Optional

from torch import nn

INPUT_TYPES = ("feats", "waveform")


class EmbeddingNet(nn.Module):
    """Base class of the speaker-embedding networks (the interface: module docstring).

    A subclass sets ``input_type`` (and ``frame_shift``, ``receptive_field``)
    as class attributes or properties, and calls :meth:`set_head` in its
    constructor where its classifier-side head is built (so the order of its
    modules, hence of its parameters and of a checkpoint's keys, is unchanged).
    """

    input_type: str = "feats"
    frame_shift: int = 1
    embed_dim: int
    head_dim: int
    head: nn.Module

    def set_head(self, embed_dim: int, head: Optional[nn.Module] = None,
                 head_dim: Optional[int] = None) -> None:
        """Set ``embed_dim`` and the training-only ``head`` (identity by default)
        whose output size is ``head_dim`` (``embed_dim`` by default)."""
        self.head = nn.Identity() if head is None else head
        self.embed_dim = embed_dim
        self.head_dim = embed_dim if head_dim is None else head_dim

    def num_parameters(self) -> int:
        """Number of weights (trainable or not)."""
        return sum(p.numel() for p in self.parameters())


def check_network_class(cls) -> None:
    """Refuse a class that is not an :class:`EmbeddingNet` with a valid ``input_type``."""
    if not (isinstance(cls, type) and issubclass(cls, EmbeddingNet)):
        raise TypeError(f"{getattr(cls, '__name__', cls)!r} is not a pyutils.models.base."
                        f"EmbeddingNet subclass; every network must be one (see its docstring)")
    if cls.input_type not in INPUT_TYPES:
        raise TypeError(f"{cls.__name__}.input_type is {cls.input_type!r}; "
                        f"expected one of {', '.join(INPUT_TYPES)}")


def check_network(model: EmbeddingNet) -> EmbeddingNet:
    """Refuse a built network that did not set ``embed_dim``, ``head`` and ``head_dim``
    (:meth:`EmbeddingNet.set_head`); return it."""
    missing = [name for name in ("embed_dim", "head_dim", "head") if not hasattr(model, name)]
    if missing:
        raise TypeError(f"{type(model).__name__} did not set {', '.join(missing)} "
                        f"(call EmbeddingNet.set_head in its constructor)")
    if not isinstance(model.head, nn.Module):
        raise TypeError(f"{type(model).__name__}.head is not a torch.nn.Module")
    return model
