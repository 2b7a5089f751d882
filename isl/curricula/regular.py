"""Regular training: all sequences, all classes, full length, from the first step on."""

from isl.curricula.base import Curriculum


class Regular(Curriculum):
    def apply(self, datamodule) -> None:
        datamodule.curriculum.max_length = None
        datamodule.curriculum.classes = range(10)
        datamodule.curriculum.num_sequences = None

    def describe(self, datamodule) -> str:
        return "all data"
