"""isl.tools.quality: the digit scorer on the weights a sweep kept along training, resumable, one figure."""

from __future__ import annotations

import csv
import shutil
import tarfile

import lightning as L
import matplotlib.figure
import pytest
import yaml

import isl.tools.quality
from isl.training.callbacks import PointsSchedule
from isl.training.checkpoints import AtomicCheckpointIO, PointsCheckpoint
from isl.curricula.regular import Regular
from isl.data.datamodule import StrokeDataModule
from isl.models.module import SequenceMDN
from isl.data.published import read_generated
from isl.tools.quality import main, served
from isl.tools.score import load_classifier, score
from isl.training.train import kept_points

from conftest import MNIST_DIR

BUDGET, PER_DECADE = 30_000, 1   # copies kept at 300, 3,000 and 30,000 points (30: the first batch's)


@pytest.fixture(scope="module")
def copies(real_source, tmp_path_factory):
    """The checkpoints/ folder of a small LSTM trained to BUDGET points keeping its copies."""
    folder = tmp_path_factory.mktemp("trained") / "checkpoints"
    L.seed_everything(1, verbose=False)
    dm = StrokeDataModule(real_source, num_train=200, num_test=20, batching={"by": "sequences", "size": 8}, seed=1)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, max_epochs=-1, enable_checkpointing=False, plugins=[AtomicCheckpointIO()],
                        callbacks=[Regular(), PointsSchedule(BUDGET, BUDGET),
                                   PointsCheckpoint(10**9, folder, keep_at=kept_points(BUDGET, PER_DECADE))])
    trainer.fit(SequenceMDN(hidden=16, components=3), datamodule=dm)
    return folder


def make_job(sweep, num: int, curriculum: str, seed: int, copies) -> None:
    """A job directory as a Hydra sweep leaves it, holding ``copies``' kept weights."""
    job = sweep / f"{num}-curriculum={curriculum},seed={seed}"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(
        {"seed": seed, "budget": {"points": BUDGET}, "checkpoint": {"keep_per_decade": PER_DECADE}}))
    (job / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {
        "job": {"num": num}, "overrides": {"task": [f"curriculum={curriculum}", f"seed={seed}"]},
        "runtime": {"choices": {"curriculum": curriculum, "batching": "sequences", "model": "lstm"}}}}))
    shutil.copytree(copies, job / "checkpoints")
    (job / "checkpoints" / "last.ckpt").unlink(missing_ok=True)


def rows(job) -> list[dict]:
    with (job / "generation.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_every_kept_copy_is_scored_once_and_seeds_align_by_kept_point(copies, small_scorer, tmp_path,
                                                                      monkeypatch, capsys):
    sweep = tmp_path / "sweep"
    for num, (curriculum, seed) in enumerate([("regular", 1), ("regular", 2), ("length", 1), ("length", 2)]):
        make_job(sweep, num, curriculum, seed, copies)
    unfinished = sweep / "3-curriculum=length,seed=2"
    kept = sorted(p.name for p in copies.glob("points-*.ckpt"))
    assert len(kept) == 3
    (unfinished / "checkpoints" / kept[-1]).unlink()      # that seed has not reached the end yet
    args = [str(sweep), "--n", "20", "--data-dir", str(small_scorer.data_dir), "--mnist-dir", str(MNIST_DIR)]

    titles = []
    with monkeypatch.context() as patch:
        patch.setattr(matplotlib.figure.Figure, "suptitle", lambda self, text, **kw: titles.append(text))
        assert main(args) == 0
    assert "purple: the same scorer on real test digits" in titles[0]   # not "trivial predictors"
    out = capsys.readouterr().out
    first = {job.name: rows(job) for job in sweep.glob("*-curriculum=*")}
    assert [len(r) for _, r in sorted(first.items())] == [3, 3, 3, 2]
    regular = first["0-curriculum=regular,seed=1"]
    assert [int(r["points"]) for r in regular] == sorted(int(k[7:17]) for k in kept)
    assert all(0 <= float(r["recognised"]) <= 1 and r["n"] == "20" and r["class_accuracy"] == "" for r in regular)
    assert all(0 <= float(r["recognised_centred"]) <= 1 and 0 <= float(r["off_canvas"]) <= 1 for r in regular)
    # The same weights under the same settings score the same in every job: starts and sampling are seeded.
    assert first["1-curriculum=regular,seed=2"] == regular == first["2-curriculum=length,seed=1"]
    # Both curricula appear with their seeds; the unfinished seed's missing point is left out and named.
    table = (sweep / "report" / "generation.md").read_text()
    assert (sweep / "report" / "generation.png").stat().st_size > 0
    assert table.count("| regular | 2 |") == 3 and table.count("| length | 2 |") == 2
    rows_of_table = [line for line in table.splitlines() if line.startswith("|")]
    assert "| recognised centred | off canvas |" in rows_of_table[0]
    assert {line.count("|") for line in rows_of_table} == {rows_of_table[0].count("|")}   # one cell per heading
    assert f"3-curriculum=length,seed=2: no copy scored yet at {BUDGET:,} points" in table
    assert "Real test digits (first 20)" in table
    assert "20 unprimed digits per copy; temperature 1, bias 0; recognised" in table   # what was drawn
    assert table.split("\n\n", 1)[1] in out                    # the table is printed too

    # A rerun reads the scores back instead of generating again, and scores a new copy only.
    shutil.copy(copies / kept[-1], unfinished / "checkpoints" / kept[-1])
    scored = []
    real_generate_copy = isl.tools.quality.generate_copy
    monkeypatch.setattr(isl.tools.quality, "generate_copy",
                        lambda path, *a: scored.append(path.name) or real_generate_copy(path, *a))
    assert main(args) == 0
    assert scored == [kept[-1]]
    assert rows(unfinished) == first["0-curriculum=regular,seed=1"]
    assert "no copy scored yet" not in (sweep / "report" / "generation.md").read_text()
    # Other settings are scored anew, beside the rows already there.
    scored.clear()
    assert main([*args[:1], "--n", "10", *args[3:]]) == 0
    assert len(scored) == 12 and len(rows(unfinished)) == 6


def test_a_sweep_without_kept_copies_is_refused(tmp_path, capsys):
    (tmp_path / "0-curriculum=regular,seed=1" / ".hydra").mkdir(parents=True)
    assert main([str(tmp_path)]) == 2
    assert "kept copies of its weights (checkpoint.keep_per_decade)" in capsys.readouterr().err


def test_a_copy_serves_the_last_kept_point_at_or_below_it():
    kept = kept_points(BUDGET, PER_DECADE)
    assert kept == [30, 300, 3000, 30_000]
    assert served([310, 3_250, 30_100], kept) == [300, 3000, 30_000]


def test_a_finished_jobs_last_digits_are_kept_and_rescore_to_its_row(copies, small_scorer, tmp_path):
    """The digits behind a finished job's final scores, packed in generated/<set>.tar.gz: a job
    scored before they were kept gets them on the next call, with no new row; scored again from
    the unpacked folder (isl.tools.score --sequences) they give the row's numbers."""
    sweep = tmp_path / "sweep"
    make_job(sweep, 0, "regular", 1, copies)
    job = sweep / "0-curriculum=regular,seed=1"
    args = [str(sweep), "--n", "20", "--data-dir", str(small_scorer.data_dir), "--mnist-dir", str(MNIST_DIR)]
    assert main(args) == 0
    assert not (job / "generated").exists()                      # not finished: nothing kept yet
    (job / "result.json").write_text("{}")
    before = rows(job)
    assert main(args) == 0
    assert rows(job) == before                                   # no scoring again
    packed = job / "generated" / "unprimed-t1-n20.tar.gz"
    with tarfile.open(packed) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    sequences, labels = read_generated(tmp_path / "unpacked" / "unprimed-t1-n20")
    assert len(sequences) == 20 and labels is None
    again = score(load_classifier(small_scorer), sequences)
    assert f"{again['recognised']:.4f}" == before[-1]["recognised"]
    assert f"{again['off_canvas']:.4f}" == before[-1]["off_canvas"]


def test_guidance_is_a_setting_of_its_own_and_older_score_files_gain_its_column(tmp_path):
    from isl.tools.quality import FIELDS, _add_columns, read_scores, set_name
    path = tmp_path / "generation.csv"
    old = [f for f in FIELDS if f != "guidance"]                  # written before --guidance existed
    path.write_text(",".join(old) + "\n" + "20100,1000,0,0.0,100,1.0,0.5,0.6,0.7,0.4,0.1\n"
                    "35895,1000,0,0.0,100,0.7,0.6,0.7,0.8,0.5,0.0\n")
    plain = {"n": 1000, "seed": 0, "bias": 0.0, "max_steps": 100, "temperature": 1.0, "guidance": 0.0}
    assert list(read_scores(path, plain)) == [20100] and read_scores(path, {**plain, "guidance": 1.0}) == {}
    _add_columns(path)
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        kept = list(reader)
    assert tuple(reader.fieldnames) == FIELDS and [r["guidance"] for r in kept] == ["0.0", "0.0"]
    assert [r["class_accuracy"] for r in kept] == ["0.7", "0.8"] and kept[1]["temperature"] == "0.7"
    assert list(read_scores(path, plain)) == [20100]
    assert set_name({**plain, "guidance": 1.0}, True) == "conditional-t1-g1"


def test_guidance_is_refused_for_a_model_not_trained_for_it(copies, tmp_path, capsys):
    make_job(tmp_path, 0, "regular", 1, copies)                  # not class-conditional
    with pytest.raises(SystemExit) as stop:
        main([str(tmp_path), "--guidance", "1"])
    assert stop.value.code == 2
    assert "--guidance needs class-conditional models trained with model.class_dropout > 0; not so: " \
           "0-curriculum=regular,seed=1" in capsys.readouterr().err
