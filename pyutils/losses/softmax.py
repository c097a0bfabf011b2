"""Softmax cross-entropy over training speakers (the Kaldi x-vector output layer)."""
import torch
from torch import nn


class SoftmaxLoss(nn.Module):
    """Affine classifier + cross-entropy; returns (loss, logits)."""

    def __init__(self, in_dim: int, num_classes: int):
        super().__init__()
        self.classifier = nn.Linear(in_dim, num_classes)
        self.criterion = nn.CrossEntropyLoss()

    def forward(self, x: torch.Tensor, labels: torch.Tensor):
        logits = self.classifier(x)
        return self.criterion(logits, labels), logits
