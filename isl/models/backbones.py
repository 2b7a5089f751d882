"""Backbones: step inputs (B, T, inputs) -> hidden states (B, T, H) for the mixture-density head;
the inputs are a row ``dx dy eos eod``, followed by the one-hot class where the model is
class-conditional (``model.class_inputs``).

Both take and return a ``state`` so that generation can feed one step at a time; the
feedforward network has none, which is the point of it: it sees only the current step.
"""

from __future__ import annotations

import torch
from torch import nn

INPUT_SIZE = 4  # dx, dy, end of stroke, end of digit


class LSTMBackbone(nn.Module):
    """Stacked LSTM (the fused nn.LSTM: one cuDNN call on a GPU)."""

    def __init__(self, hidden: int = 200, layers: int = 2, inputs: int = INPUT_SIZE):
        super().__init__()
        self.hidden_size = hidden
        self.lstm = nn.LSTM(inputs, hidden, layers, batch_first=True)

    def forward(self, x: torch.Tensor, state=None):
        return self.lstm(x, state)


class FeedForwardBackbone(nn.Module):
    """ReLU layers applied to every step on its own: the paper's control without context."""

    def __init__(self, hidden: int = 200, layers: int = 2, inputs: int = INPUT_SIZE):
        super().__init__()
        self.hidden_size = hidden
        sizes = [inputs] + [hidden] * layers
        self.net = nn.Sequential(*[m for a, b in zip(sizes, sizes[1:]) for m in (nn.Linear(a, b), nn.ReLU())])

    def forward(self, x: torch.Tensor, state=None):
        return self.net(x), None


BACKBONES = {"lstm": LSTMBackbone, "ffnn": FeedForwardBackbone}
