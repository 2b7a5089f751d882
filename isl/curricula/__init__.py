"""Curricula: Lightning callbacks that step a StrokeDataModule's curriculum up during training.

One callback per curriculum (regular, length, classes, sequences, length_warmup), each a
subclass of ``Curriculum``; ``conf/curriculum/<name>.yaml`` names it with ``_target_``. A new
curriculum is a new subclass (``stages`` and ``apply``) plus a YAML file: no core code changes.
"""

from isl.curricula.base import Curriculum

__all__ = ["Curriculum"]
