"""What a Hydra run prints: Lightning's messages once, through Hydra's logging (console and the
job's ``run.log``), without what a user cannot act on."""

from __future__ import annotations

import logging
import warnings

# Lightning's promotion of its hosted logger, logged at INFO by every Trainer.
_ADVERT = "💡 Tip:"


def _not_advert(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(_ADVERT)


def route_lightning_logs() -> None:
    """Call once Hydra has configured logging. The ``lightning`` package gives its logger a
    console handler of its own and lets records propagate too, so each line would be printed
    twice, and only one copy would reach ``run.log``."""
    lightning = logging.getLogger("lightning")
    for handler in list(lightning.handlers):
        lightning.removeHandler(handler)
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if _not_advert not in rank_zero.filters:
        rank_zero.addFilter(_not_advert)
    # Raised inside Lightning by torch's pytree deprecation; nothing a user can change.
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                            category=FutureWarning)
