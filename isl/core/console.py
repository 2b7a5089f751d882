"""What a run prints, from either entry point (run.py through Hydra's logging, isl.training.cli through
Lightning's own console handler): Lightning's messages once, the project's own (curriculum
step-ups, resuming) beside them, and nothing a user cannot act on."""

from __future__ import annotations

import logging
import re
import sys
import warnings

# Lightning's promotion of its hosted logger, logged at INFO by every Trainer.
_ADVERT = "💡 Tip:"


# Lightning's device banner: "GPU available: False, used: False", "TPU available: False, using: 0
# TPU cores", ...; a line is kept only where the device is used.
_UNUSED_DEVICE = re.compile(r"^\w+ available: \w+, (used: False|using: 0 )")


def _not_advert(record: logging.LogRecord) -> bool:
    text = str(record.msg)
    return not (text.startswith(_ADVERT) or _UNUSED_DEVICE.match(text))


class _Current:
    """``sys.stdout`` or ``sys.stderr`` as it is at each write: while the progress bar is drawn
    on a terminal, Rich's proxy, which prints a line above the bar instead of into it."""

    def __init__(self, name: str):
        self.name = name

    def write(self, text: str) -> int:
        return getattr(sys, self.name).write(text)

    def flush(self) -> None:
        getattr(sys, self.name).flush()


def _above_progress_bar(logger: logging.Logger) -> None:
    for handler in logger.handlers:
        for name in ("stdout", "stderr"):
            if type(handler) is logging.StreamHandler and handler.stream is getattr(sys, name):
                handler.setStream(_Current(name))


def quiet_lightning() -> None:
    """Drop Lightning's adverts, its lines about devices not used, and a deprecation warning it
    triggers in torch."""
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if _not_advert not in rank_zero.filters:
        rank_zero.addFilter(_not_advert)
    # Raised inside Lightning by torch's pytree deprecation; nothing a user can change.
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                            category=FutureWarning)


def route_lightning_logs() -> None:
    """For run.py, once Hydra has configured logging. The ``lightning`` package gives its logger
    a console handler of its own and lets records propagate too, so each line would be printed
    twice, and only one copy would reach ``run.log``."""
    lightning = logging.getLogger("lightning")
    for handler in list(lightning.handlers):
        lightning.removeHandler(handler)
    _above_progress_bar(logging.getLogger())  # Hydra's console handler
    quiet_lightning()


def log_to_console() -> None:
    """For isl.training.cli, where nothing configures logging: the project's INFO messages go to the
    console as Lightning's own do (otherwise Python shows only warnings)."""
    isl = logging.getLogger("isl")
    if not isl.handlers:
        isl.addHandler(logging.StreamHandler())
        isl.setLevel(logging.INFO)
        isl.propagate = False
    for logger in (isl, logging.getLogger("lightning")):
        _above_progress_bar(logger)
    quiet_lightning()
