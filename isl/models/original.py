"""What the paper's code did that isl does only when asked (``setup=original``, conf/setup/):
its initial weights (``model.init=tf``), its max-weight penalty (``model.max_weight_penalty``)
and its feedforward network's misaligned targets (``model.misalign_ffnn``)."""

from __future__ import annotations

import math

import torch


def misaligned(prediction):
    """The paper's code's FFNN (model.py): its predictions flattened time-major (row r is
    step r // B of sequence r % B), its targets batch-major (step r % T of sequence
    r // T), so row r's prediction is scored against another step's target."""
    return prediction.map(lambda t: t.transpose(0, 1).reshape(t.shape))


def max_weight(net) -> torch.Tensor:
    """The paper's code's ``max_weight_regularization`` (model.py getRegularizationTerm):
    max(0, the largest element of any trainable variable whose TF name contains no "Bias").
    Its LSTM and hidden-layer biases are named "biases"/"bias" (lower case), so only the
    output layer's bias is left out. Signed, not absolute, as written there."""
    largest = torch.stack([_as_tf_variable(net, name, p).max() for name, p in net.named_parameters()
                           if name != "head.linear.bias"])
    return largest.max().clamp_min(0)


def _as_tf_variable(net, name: str, p: torch.Tensor) -> torch.Tensor:
    """The parameter as the paper's TF variable holds it: with init=tf the forget gate's
    constant 1.0 lives in ``bias_ih`` here and in the cell there."""
    if net.hparams.init != "tf" or not name.startswith("backbone.lstm.bias_ih"):
        return p
    hidden = net.backbone.lstm.hidden_size
    return torch.cat([p[:hidden], p[hidden:2 * hidden] - 1.0, p[2 * hidden:]])


def tf_initialise(net) -> None:
    """The paper's code's initial weights (TF 1.x ``tf.get_variable`` defaults, no
    ``useInitializers``): Glorot-uniform for every weight and for the output layer's and the
    feedforward layers' biases (a 1-D variable has fan-in = fan-out = its size), zero LSTM
    biases with BasicLSTMCell's forget bias of 1.0 (added in the cell there, put in the bias
    here: the same function). An LSTM layer's kernel is one [input + hidden, 4 hidden] matrix
    in TF, so its Glorot limit is taken over that shape."""
    def glorot(t: torch.Tensor, fan_in: int, fan_out: int) -> None:
        limit = math.sqrt(6 / (fan_in + fan_out))
        torch.nn.init.uniform_(t, -limit, limit)

    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.startswith("backbone.lstm."):
                hidden = net.backbone.lstm.hidden_size
                if name.startswith("backbone.lstm.weight"):
                    layer = int(name.rsplit("l", 1)[1])
                    inputs = net.backbone.lstm.input_size if layer == 0 else hidden
                    glorot(p, inputs + hidden, 4 * hidden)
                else:  # bias_ih and bias_hh: their sum is the cell's bias
                    p.zero_()
                    if name.startswith("backbone.lstm.bias_ih"):
                        p[hidden:2 * hidden] = 1.0  # PyTorch's gate order: input, forget, cell, output
            elif p.dim() == 2:
                glorot(p, p.shape[1], p.shape[0])
            else:
                glorot(p, len(p), len(p))
