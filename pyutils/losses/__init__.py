"""Training losses, built by name from the config (``build_loss``)."""
from pyutils.losses.softmax import SoftmaxLoss

LOSSES = {"softmax": SoftmaxLoss}


def build_loss(name: str, in_dim: int, num_classes: int, **kwargs):
    """Instantiate loss ``name``; it owns the speaker classifier weights."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss '{name}'; known: {', '.join(sorted(LOSSES))}")
    return LOSSES[name](in_dim, num_classes, **kwargs)
