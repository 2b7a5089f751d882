"""Weights from elsewhere: another run's checkpoint as a starting point (``model.init_from``,
transfer to classification), checked to be the same network fed the same inputs."""

from __future__ import annotations

import torch


def load_weights(model, path: str, same_units: bool = False) -> None:
    """Start from the weights of another run's checkpoint (e.g. a predictor, for transfer to
    classification). Every weight must match: the networks must have the same shape; with
    ``same_units``, its input units must be those already set from this run's data (a
    network fed offsets in other units than it learned on would silently start from noise)."""
    try:
        checkpoint = torch.load(path, map_location=model.device, weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"model.init_from: no checkpoint at {path}") from None
    except Exception as err:  # a corrupt or foreign file
        raise ValueError(f"model.init_from: cannot read {path} as a checkpoint ({err})") from err
    weights = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if weights is None:
        raise ValueError(f"model.init_from: {path} holds no state_dict")
    # Before the shapes: a class-conditional network differs in its first layer only, and
    # the key says why better than a weight's shape does.
    theirs, ours = bool(checkpoint.get("hyper_parameters", {}).get("class_inputs", False)), \
        model.hparams.class_inputs
    if theirs != ours:
        raise ValueError(f"model.init_from: {path} was trained with model.class_inputs={_yaml(theirs)}, "
                         f"this run has model.class_inputs={_yaml(ours)}: a network must be fed the "
                         "inputs it was trained on")
    ours = model.state_dict()
    wrong = [f"{k} {tuple(v.shape)} vs ours {tuple(ours[k].shape)}" for k, v in weights.items()
             if k in ours and v.shape != ours[k].shape]
    missing, unexpected = sorted(set(ours) - set(weights)), sorted(set(weights) - set(ours))
    if wrong or missing or unexpected:
        raise ValueError(f"model.init_from: {path} is a different network: "
                         + "; ".join(filter(None, [", ".join(wrong), "missing " + ", ".join(missing)
                                                   if missing else "", "unexpected " + ", ".join(unexpected)
                                                   if unexpected else ""])))
    units = ("offset_shift", "offset_scale")
    if same_units and not all(torch.allclose(weights[k], ours[k], rtol=1e-5, atol=1e-6) for k in units):
        raise ValueError(
            f"model.init_from: {path} was trained on offsets in other input units (shift, "
            f"scale in pixels: {_rounded([weights[k] for k in units])}) than this run's data "
            f"gives ({_rounded([ours[k] for k in units])}): run with the data settings it was "
            "trained with (data.scaling, data.num_train)")
    model.load_state_dict(weights)


def check_class_inputs(model, wanted: bool, who: str, what: str = "this model") -> None:
    """Refuse ``model`` (``what``, e.g. its checkpoint) unless its ``class_inputs`` is ``wanted``,
    naming the key and both values; ``who`` is the tool or option that feeds it."""
    have = bool(model.hparams.class_inputs)
    if have != wanted:
        raise ValueError(f"{who} needs a model with model.class_inputs={_yaml(wanted)}; {what} has "
                         f"model.class_inputs={_yaml(have)}")


def _yaml(flag: bool) -> str:
    return "true" if flag else "false"


def _rounded(tensors: list[torch.Tensor]) -> list:
    return [[round(v, 3) for v in t.tolist()] for t in tensors]
