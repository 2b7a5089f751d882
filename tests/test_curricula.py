"""Curricula step the DataModule up as specified, on controlled training-RMSE sequences."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from isl.curricula.classes import Classes
from isl.curricula.length import Length
from isl.curricula.length_warmup import LengthWarmup
from isl.curricula.regular import Regular
from isl.curricula.sequences import Sequences
from isl.data.datamodule import StrokeDataModule
from isl.models.module import SequenceMDN
from conftest import REPO


class Trainee:
    """What a curriculum reads from the LightningModule: the last batch's error, the points."""

    def __init__(self):
        self.points_processed, self.error, self.logged = 0, (0.0, 0), []

    def feed(self, rmse: float, points: int):
        # A sum of squared errors over both coordinates, whose per-coordinate RMSE is ``rmse``.
        self.error = (2 * rmse ** 2 * points, points)
        self.points_processed += points

    def last_batch_error(self):
        return self.error

    def write_metrics(self, metrics):
        self.logged.append((self.points_processed, metrics))


class Run:
    def __init__(self, datamodule, callbacks=()):
        self.datamodule, self.callbacks = datamodule, list(callbacks)


@pytest.fixture
def dm(real_source):
    dm = StrokeDataModule(real_source, num_train=2000, num_test=100)
    dm.setup()
    return dm


def drive(curriculum, dm, rmses, points=1000, run=None):
    """Feed one batch per RMSE value; return the stage after each batch."""
    trainee, run = Trainee(), run or Run(dm)
    curriculum.on_train_start(run, trainee)
    stages = []
    for rmse in rmses:
        trainee.feed(rmse, points)
        curriculum.on_train_batch_end(run, trainee, None, None, 0)
        stages.append(curriculum.stage)
    return stages, trainee


def test_length_starts_at_two_steps_and_doubles_when_the_window_rmse_drops_below_threshold(dm):
    curriculum = Length(threshold=4.0, min_points=5000)
    assert int(dm.train.lengths.max()) <= 128
    stages, trainee = drive(curriculum, dm, [5.0] * 6 + [1.0] * 2)
    assert dm.curriculum.max_length == 4 and stages == [0] * 7 + [1]
    # The window is the fewest recent batches holding >= 5,000 points: the last five. After
    # batch 7 their mean squared error is (4 x 25 + 1) / 5 = 20.2 >= 16; after batch 8 it is
    # (3 x 25 + 2) / 5 = 15.4 < 16 = 4^2, so the step up comes exactly there.
    assert trainee.logged[-1] == (8000, {"curriculum/stage": 1.0})
    lengths = [dm.curriculum.max_length]
    for _ in range(8):
        drive_more(curriculum, dm, trainee, [0.5] * 5)
        lengths.append(dm.curriculum.max_length)
    assert lengths == [4, 8, 16, 32, 64, None, None, None, None]  # then whole sequences


def drive_more(curriculum, dm, trainee, rmses, points=1000):
    run = Run(dm)
    for rmse in rmses:
        trainee.feed(rmse, points)
        curriculum.on_train_batch_end(run, trainee, None, None, 0)


class SequenceTrainee(Trainee):
    """What the paper's code's window reads: the last batch's errors per sequence."""

    def feed_sequences(self, rmse: float, sequences: int, points: int):
        self.per_sequence = [(2 * rmse ** 2 * points, points)] * sequences
        self.points_processed += sequences * points

    def last_sequence_errors(self):
        return self.per_sequence


def test_the_original_window_is_a_ring_of_sequences_counting_coordinates(dm):
    curriculum, trainee, run = Length(min_points=5000, window="sequences"), SequenceTrainee(), Run(dm)
    curriculum.on_train_start(run, trainee)

    def batches(rmse, n):  # batches of 50 sequences, each as long as the stage's length
        stages = []
        for _ in range(n):
            trainee.feed_sequences(rmse, 50, curriculum.length(dm))
            curriculum.on_train_batch_end(run, trainee, None, None, 0)
            stages.append(curriculum.stage)
        return stages

    # Length 2: it counts once it holds 5,000 coordinates = 2,500 points = 1,250 sequences.
    assert batches(1.0, 25) == [0] * 24 + [1]
    # Length 4: a ring of ceil(5,000 / 4) = 1,250 sequences. After 40 bad batches and k good
    # ones it holds 1,250 - 50k bad sequences: mean squared error 25 - k < 16 from k = 10 on
    # (a window of all 2,000 + 50k sequences since the step up would need k = 23).
    assert batches(5.0, 40) == [1] * 40
    assert batches(0.0, 10) == [1] * 9 + [2]
    assert len(curriculum.window) == 0                      # rebuilt at the step up
    batches(5.0, 40)
    assert len(curriculum.window) == math.ceil(5000 / 8)   # length 8
    with pytest.raises(ValueError, match="curriculum.window"):
        Length(window="batches")


def test_a_window_shorter_than_min_points_never_steps(dm):
    stages, _ = drive(Length(threshold=4.0, min_points=5000), dm, [0.1] * 4)
    assert stages == [0, 0, 0, 0] and dm.curriculum.max_length == 2


def test_classes_double_from_digit_zero_to_all_ten(dm):
    curriculum = Classes(threshold=4.0, min_points=2000)
    seen = []
    trainee, run = Trainee(), Run(dm)
    curriculum.on_train_start(run, trainee)
    for _ in range(6):
        seen.append(dm.curriculum.classes)
        drive_more(curriculum, dm, trainee, [1.0] * 2)
    assert seen == [(0,), (0, 1), (0, 1, 2, 3), tuple(range(8)), tuple(range(10)), tuple(range(10))]


def test_sequences_double_from_ten_with_a_window_of_fifty_points_per_sequence(dm):
    curriculum = Sequences(threshold=4.0, start_sequences=10, window_factor=50)
    trainee, run = Trainee(), Run(dm)
    curriculum.on_train_start(run, trainee)
    assert dm.curriculum.num_sequences == 10 and curriculum.window_points(dm) == 500
    drive_more(curriculum, dm, trainee, [1.0], points=499)
    assert curriculum.stage == 0                              # 499 < 500 points
    drive_more(curriculum, dm, trainee, [1.0], points=1)
    assert dm.curriculum.num_sequences == 20 and curriculum.window_points(dm) == 1000
    counts = [20]
    while dm.curriculum.num_sequences is not None:
        drive_more(curriculum, dm, trainee, [1.0], points=curriculum.window_points(dm))
        counts.append(dm.curriculum.num_sequences)
    assert counts == [20, 40, 80, 160, 320, 640, 1280, None]  # 2,000 sequences in all


def test_the_sequences_curriculum_takes_no_min_points_it_would_ignore():
    """Its window is window_factor points per sequence in use: a min_points in its config would
    be a setting that does nothing."""
    config = OmegaConf.load(REPO / "conf" / "curriculum" / "sequences.yaml")
    assert "min_points" not in config
    with pytest.raises(TypeError, match="min_points"):
        Sequences(min_points=5000)
    assert instantiate(config).window_factor == 50


def test_regular_never_steps_and_uses_everything(dm):
    dm.curriculum.max_length, dm.curriculum.classes = 3, [1]
    stages, _ = drive(Regular(), dm, [0.1] * 20)
    assert set(stages) == {0}
    assert (dm.curriculum.max_length, dm.curriculum.classes, dm.curriculum.num_sequences) == \
        (None, tuple(range(10)), None)


def test_curriculum_state_and_window_survive_a_checkpoint_round_trip(dm):
    first = Length(threshold=4.0, min_points=5000)
    stages, trainee = drive(first, dm, [1.0] * 5 + [5.0] * 3)   # stage 1, window half full
    resumed = Length(threshold=4.0, min_points=5000)
    resumed.load_state_dict(first.state_dict())
    assert resumed.stage == first.stage == 1
    rest = [3.0, 3.0, 1.0, 1.0, 1.0]
    drive_more(first, dm, trainee, rest)
    stage_a = first.stage
    dm.curriculum.max_length = 2                                 # a fresh process
    resumed.apply(dm)
    drive_more(resumed, dm, trainee, rest)
    assert resumed.stage == stage_a and resumed.state_dict() == first.state_dict()


@pytest.mark.parametrize("rmse", [100.0, 0.1])
def test_length_warmup_doubles_on_a_fixed_schedule_of_points_whatever_the_error(dm, rmse):
    curriculum = LengthWarmup(duration=6000)
    assert 64 < int(dm.train.lengths.max()) <= 128
    stages, trainee = drive(curriculum, dm, [rmse] * 2, points=999)
    assert stages == [0, 1] and dm.curriculum.max_length == 4    # stage k from k/6 of 6,000 points
    lengths = [dm.curriculum.max_length]
    for _ in range(6):
        drive_more(curriculum, dm, trainee, [rmse], points=1000)
        lengths.append(dm.curriculum.max_length)
    assert lengths == [4, 8, 16, 32, 64, None, None]              # full length from 6,000 points on
    assert [points for points, _ in trainee.logged] == [0, 1998, 2998, 3998, 4998, 5998, 6998]
    assert [m["curriculum/stage"] for _, m in trainee.logged] == [0, 1, 2, 3, 4, 5, 6]


def test_length_warmup_in_fixed_steps_to_a_last_length_over_a_fraction_of_the_budget(dm):
    budget = type("Schedule", (), {"budget": 8000})()             # the points schedule's budget
    curriculum = LengthWarmup(min_seq_length=2, max_seq_length=70, step_size=30, duration=0.5)
    assert curriculum.lengths(dm) == [2, 32, 62, 70]
    stages, _ = drive(curriculum, dm, [5.0] * 6, points=1000, run=Run(dm, [budget]))
    assert curriculum.duration_points == 4000                      # 0.5 x 8,000
    assert stages == [0, 1, 2, 3, 3, 3] and dm.curriculum.max_length == 70  # from 1,333, 2,667, 4,000
    with pytest.raises(ValueError, match="curriculum.duration=0.5 is a fraction"):
        LengthWarmup(duration=0.5).on_train_start(Run(dm), Trainee())


def test_length_warmup_keeps_its_schedule_through_a_checkpoint(dm):
    """Resumed (even with a larger budget, extending the run), it keeps the points it started with."""
    first = LengthWarmup(duration=0.5)
    schedule = type("Schedule", (), {"budget": 12000})()
    _, trainee = drive(first, dm, [5.0] * 2, run=Run(dm, [schedule]))
    assert first.duration_points == 6000 and first.stage == 2
    resumed = LengthWarmup(duration=0.5)
    resumed.load_state_dict(first.state_dict())
    dm.curriculum.max_length = None                                # a fresh process
    longer = type("Schedule", (), {"budget": 120000})()
    resumed.on_train_start(Run(dm, [longer]), trainee)
    assert resumed.duration_points == 6000 and resumed.stage == 2 and dm.curriculum.max_length == 8
    other = Trainee()
    other.points_processed = trainee.points_processed
    drive_more(resumed, dm, trainee, [5.0])
    drive_more(first, dm, other, [5.0])
    assert resumed.state_dict() == first.state_dict() and first.stage == 3  # 3,000 points of 6,000


@pytest.mark.parametrize("make, key", [(lambda: Length(threshold=0), "curriculum.threshold"),
                                       (lambda: Length(threshold=-1.0), "curriculum.threshold"),
                                       (lambda: Length(min_points=0), "curriculum.min_points"),
                                       (lambda: Length(start_length=1), "curriculum.start_length"),
                                       (lambda: Sequences(start_sequences=0), "curriculum.start_sequences"),
                                       (lambda: Sequences(window_factor=True), "curriculum.window_factor"),
                                       (lambda: LengthWarmup(min_seq_length=1), "curriculum.min_seq_length"),
                                       (lambda: LengthWarmup(max_seq_length=1), "curriculum.max_seq_length"),
                                       (lambda: LengthWarmup(step_size="triple"), "curriculum.step_size"),
                                       (lambda: LengthWarmup(step_size=0), "curriculum.step_size"),
                                       (lambda: LengthWarmup(duration=0), "curriculum.duration"),
                                       (lambda: LengthWarmup(duration=1.5), "curriculum.duration"),
                                       (lambda: LengthWarmup(duration="1e5"), "curriculum.duration")])
def test_bad_curriculum_settings_are_refused_naming_the_key(make, key):
    with pytest.raises(ValueError, match=key):
        make()


def test_in_real_training_the_length_curriculum_reaches_full_length(real_source):
    """With an easy threshold the LSTM climbs every stage; batches follow the stage."""
    widths = []

    class Widths(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            widths.append(batch.steps.shape[1])

    dm = StrokeDataModule(real_source, num_train=500, num_test=50)
    curriculum = Length(threshold=50.0, min_points=300)
    trainer = L.Trainer(accelerator="cpu", max_steps=40, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        callbacks=[curriculum, Widths()])
    trainer.fit(SequenceMDN(hidden=16), datamodule=dm)
    assert widths[:2] == [2, 2] and max(widths) > 64
    early = widths[:next(i for i, w in enumerate(widths) if w > 32)]
    assert early == sorted(early) and set(early) == {2, 4, 8, 16, 32}   # one stage after another
    assert curriculum.stage == curriculum.num_stages(dm) - 1 and dm.curriculum.max_length is None
