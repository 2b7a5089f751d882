"""The model's settings (``conf/model/*.yaml``, SequenceMDN's arguments) checked before a
network is built: each wrong value is one error naming its key, the value and what is allowed."""

from __future__ import annotations

from isl.core.checks import positive_int
from isl.models.backbones import BACKBONES

HEADS = ("mdn", "moves")
INITS = ("torch", "tf")


def check_settings(*, head, network, hidden, layers, components, grad_clip, prediction_weight,
                   class_loss_weight, sigma_floor_px, rho_bound, max_weight_penalty, nll_epsilon,
                   misalign_ffnn, lr_warmup_points, lr_warmup_start, init, class_inputs, class_dropout,
                   **others) -> None:
    """Raise ValueError on the first wrong value (SequenceMDN's arguments, by name; ``others``:
    those any value of their type suits)."""
    if head not in HEADS:
        raise ValueError(f"model.head must be one of {HEADS}, got {head!r}")
    if network not in BACKBONES:
        raise ValueError(f"model.network must be one of {sorted(BACKBONES)}, got {network!r}")
    for key, value in (("hidden", hidden), ("layers", layers), ("components", components)):
        positive_int(f"model.{key}", value)
    if grad_clip is not None and not grad_clip > 0:
        raise ValueError(f"model.grad_clip must be > 0 or null (no clipping), got {grad_clip!r}")
    for key, value in (("prediction_weight", prediction_weight), ("class_loss_weight", class_loss_weight)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"model.{key} must be a number >= 0, got {value!r}")
    if sigma_floor_px is not None and not (isinstance(sigma_floor_px, (int, float)) and sigma_floor_px > 0):
        raise ValueError(f"model.sigma_floor_px must be > 0 (pixels) or null (no floor), got {sigma_floor_px!r}")
    if not (isinstance(rho_bound, (int, float)) and 0 < rho_bound < 1):
        raise ValueError(f"model.rho_bound must be in (0, 1), got {rho_bound!r}")
    if isinstance(max_weight_penalty, bool) or not isinstance(max_weight_penalty, (int, float)) \
            or max_weight_penalty < 0:
        raise ValueError(f"model.max_weight_penalty must be a number >= 0, got {max_weight_penalty!r}")
    if isinstance(nll_epsilon, bool) or not isinstance(nll_epsilon, (int, float)) or not 0 <= nll_epsilon < 1:
        raise ValueError(f"model.nll_epsilon must be a number in [0, 1), got {nll_epsilon!r}")
    if not isinstance(misalign_ffnn, bool) or (misalign_ffnn and network != "ffnn"):
        raise ValueError(f"model.misalign_ffnn must be true or false, and true only with network=ffnn "
                         f"(got {misalign_ffnn!r} with network={network!r})")
    if isinstance(lr_warmup_points, bool) or not isinstance(lr_warmup_points, int) or lr_warmup_points < 0:
        raise ValueError("model.lr_warmup_points must be an integer >= 0 (training points; 0: no "
                         f"warm-up), got {lr_warmup_points!r}")
    if isinstance(lr_warmup_start, bool) or not isinstance(lr_warmup_start, (int, float)) \
            or not 0 <= lr_warmup_start < 1:
        raise ValueError("model.lr_warmup_start must be a fraction of model.lr in [0, 1), "
                         f"got {lr_warmup_start!r}")
    if init not in INITS:
        raise ValueError(f"model.init must be one of {INITS}, got {init!r}")
    if prediction_weight == 0 and class_loss_weight == 0:
        raise ValueError("model.prediction_weight and model.class_loss_weight are both 0: nothing to learn")
    if not isinstance(class_inputs, bool):
        raise ValueError(f"model.class_inputs must be true or false, got {class_inputs!r}")
    if isinstance(class_dropout, bool) or not isinstance(class_dropout, (int, float)) \
            or not 0 <= class_dropout < 1 or (class_dropout and not class_inputs):
        raise ValueError("model.class_dropout must be a fraction in [0, 1), above 0 only with "
                         f"model.class_inputs=true, got {class_dropout!r}")
    if class_inputs and class_loss_weight:
        raise ValueError("model.class_inputs=true with model.class_loss_weight > 0 (task=classify): "
                         "the class to predict would be one of the inputs")
