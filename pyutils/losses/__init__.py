"""Training losses, built by name from the config (``build_loss``).

``softmax``: affine classifier + cross-entropy.  ``am`` (CosFace) and ``aam``
(ArcFace): cosine classifier with a margin on the target logit, options
``scale``, ``margin``, ``margin_warmup: {start_step, end_step, increase}``
(``aam`` also ``easy_margin``); see :mod:`pyutils.losses.margin`.  Losses
with a margin schedule have ``set_step(step)`` and ``current_margin``.
"""
from pyutils.losses.margin import (AdditiveAngularMarginLoss, AdditiveMarginLoss,
                                   MarginSchedule)
from pyutils.losses.softmax import SoftmaxLoss

LOSSES = {"softmax": SoftmaxLoss, "am": AdditiveMarginLoss, "aam": AdditiveAngularMarginLoss}


def build_loss(name: str, in_dim: int, num_classes: int, **kwargs):
    """Instantiate loss ``name``; it owns the speaker classifier weights."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss '{name}'; known: {', '.join(sorted(LOSSES))}")
    return LOSSES[name](in_dim, num_classes, **kwargs)
