"""The PyTorch embedder: the network of a package (or of ``final.pt``) in eval mode."""
from __future__ import annotations

import numpy as np
import torch

from pyutils.deploy.runtime import Embedder
from pyutils.models import build_model
from pyutils.training.device import resolve_device
from pyutils.utils.threads import set_threads


def build_network(state: dict) -> torch.nn.Module:
    """The network of a ``final.pt``-layout dict (``config.model``, ``feat_dim``, ``model``)."""
    config = state["config"]["model"]
    model = build_model(config["name"], feat_dim=state["feat_dim"],
                        **{k: v for k, v in config.items() if k != "name"})
    model.load_state_dict(state["model"])
    return model.eval()


class TorchEmbedder(Embedder):
    """Runs ``model`` under ``torch.inference_mode`` on ``device`` with ``num_threads``."""

    def __init__(self, model: torch.nn.Module, chunk_size: int = 10000, min_chunk_size: int = 25,
                 num_threads: int = 1, device: str = "cpu"):
        super().__init__(chunk_size, min_chunk_size)
        set_threads(num_threads)
        self.device = resolve_device(device)
        self.model = model.eval().to(self.device)

    @torch.inference_mode()
    def forward(self, batch: np.ndarray) -> np.ndarray:
        return self.model(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
                          .to(self.device)).float().cpu().numpy()
