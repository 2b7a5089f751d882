"""The digit scorer's network; ``isl.tools.score`` renders the digits, trains it and caches it."""

from __future__ import annotations

import torch
from torch import nn


class DigitClassifier(nn.Module):
    """Two 3x3 convolution blocks and a small dense layer: 28x28 -> ``classes`` logits."""

    def __init__(self, classes: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images.unsqueeze(1).float())
