"""``logger=wandb``: the W&B run of a job, offline here, read back from its ``.wandb`` files
(``isl.training.wandb_offline.read_records``)."""

from __future__ import annotations

import csv
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from lightning.pytorch.loggers import CSVLogger
from omegaconf import OmegaConf

import preloaded
from conftest import MNIST_DIR, REPO
from isl.data.build import main as build_cli
from isl.training.loggers import (REDACTED, IslWandbLogger, build_loggers, credentials_source, redact,
                         redact_text, resolve_mode)
from isl.training.wandb_offline import read_records

wandb = pytest.importorskip("wandb")

TINY = ("budget.points=3000", "budget.eval_every=1000", "data.num_train=200", "data.num_test=50",
        "trainer.log_every_n_steps=2")
DUMMY_KEY = "0123456789abcdef0123456789abcdef01234567"  # a well-formed, unusable API key


def by_type(records, kind: str) -> list:
    return [getattr(r, kind) for r in records if r.WhichOneof("record_type") == kind]


def history(records) -> list[dict]:
    return [{item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in h.item}
            for h in by_type(records, "history")]


def config(records) -> dict:
    """The run's config: the run record's, then every later config update (values unwrapped)."""
    result = {}
    for update in [r.config for r in by_type(records, "run")] + by_type(records, "config"):
        for item in update.update:
            result[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return {k: v["value"] if isinstance(v, dict) and "value" in v else v for k, v in result.items()}


# --- running the real entry point -----------------------------------------------------------------
@pytest.fixture(scope="module")
def sequences(tmp_path_factory):
    """300 training and 300 test digits in the published format: seconds, not the full build."""
    if MNIST_DIR is None:
        pytest.skip("real MNIST files not found: set ISL_MNIST_DIR or provide ../shared/data/mnist")
    out = tmp_path_factory.mktemp("published") / "sequences"
    for split in ("train", "test"):
        build_cli(["--mnist-dir", str(MNIST_DIR), "--split", split, "--limit", "300",
                   "--format", "original", "--out", str(out)])
    return out


def job_env(tmp_path, env_extra=None) -> dict:
    """No W&B settings or credentials of the machine's: offline, in a home of the test's own."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("WANDB_") and k not in ("NETRC",)}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env.update(HOME=str(home), ISL_DATA_DIR=str(tmp_path / "data"), **(env_extra or {}))
    return env


def run_py_args(*overrides, tmp_path, sequences, multirun=False, tiny=TINY) -> list[str]:
    return [sys.executable, "run.py", *(["-m"] if multirun else []), "logger=wandb", *tiny,
            "data=original", f"data.path={sequences}", f"paths.runs_dir={tmp_path / 'runs'}", *overrides]


def run_py(*overrides, tmp_path, sequences, env_extra=None, multirun=False):
    return preloaded.run(run_py_args(*overrides, tmp_path=tmp_path, sequences=sequences, multirun=multirun),
                         cwd=REPO, env=job_env(tmp_path, env_extra), capture_output=True, text=True,
                         timeout=300)


def wandb_files(runs_dir: Path) -> list[Path]:
    return sorted(runs_dir.rglob("offline-run-*/run-*.wandb"))


@pytest.mark.slow
def test_a_run_logs_history_by_points_and_the_resolved_config_and_never_a_secret(sequences,
                                                                                  tmp_path):
    result = run_py("logger.wandb.mode=offline", "+logger.wandb.api_key=SECRET123",
                    tmp_path=tmp_path, sequences=sequences,
                    env_extra={"WANDB_API_KEY": DUMMY_KEY})
    assert result.returncode == 0, result.stderr
    [path] = wandb_files(tmp_path / "runs")
    job_dir = path.parents[2]
    assert path.parents[1] == job_dir / "wandb" and (job_dir / "metrics.csv").is_file()
    records = read_records(path)

    rows = history(records)
    keys = set().union(*rows)
    assert {"points", "train/loss", "train/rmse_sampled", "test/rmse_sampled", "test/loss",
            "trainer/global_step"} <= keys
    assert all("points" in row for row in rows)
    assert max(row["points"] for row in rows) >= 3000
    assert any("test/rmse_sampled" in row and row["points"] == 0 for row in rows)  # at the start

    metrics = {m.glob_name or m.name: m for m in by_type(records, "metric")}
    assert metrics["*"].step_metric == "points" and "points" in metrics

    [run] = by_type(records, "run")
    assert run.project == "isl" and run.run_group == ""  # a single run: no group
    assert run.display_name == "regular-sequences-lstm-seed1"
    assert list(run.tags) == ["curriculum=regular", "batching=sequences", "model=lstm"]
    cfg = config(records)
    assert cfg["model"]["network"] == "lstm" and cfg["budget"]["points"] == 3000
    assert cfg["data"]["num_train"] == 200 and cfg["seed"] == 1
    assert cfg["choices"] == {"data": "original", "curriculum": "regular", "batching": "sequences",
                              "model": "lstm"}
    assert cfg["logger"]["wandb"]["api_key"] == REDACTED
    assert cfg["hparams"]["hidden"] == 200  # the module's hyperparameters, as Lightning logs them
    assert "$" not in json.dumps(cfg)  # resolved: no interpolation left
    [exit_record] = by_type(records, "exit")
    assert exit_record.exit_code == 0

    assert "never put credentials in the config" in result.stdout + result.stderr  # no value
    for secret in ("SECRET123", DUMMY_KEY):
        assert secret not in result.stdout + result.stderr
        for file in (job_dir / "wandb").rglob("*"):
            if file.is_file():
                assert secret.encode() not in file.read_bytes(), f"{secret} in {file}"
    assert f"+logger.wandb.api_key={REDACTED}".encode() in path.read_bytes()  # the recorded argv


@pytest.mark.slow
def test_a_sweep_shares_a_group_offline_without_credentials(sequences, tmp_path):
    result = run_py("seed=1,2", tmp_path=tmp_path, sequences=sequences, multirun=True)
    assert result.returncode == 0, result.stderr
    assert "W&B mode offline: no W&B credentials" in result.stdout + result.stderr
    paths = wandb_files(tmp_path / "runs")
    assert len(paths) == 2
    runs = [by_type(read_records(p), "run")[0] for p in paths]
    sweep_dir = next((tmp_path / "runs" / "multirun").glob("*"))
    group = sweep_dir.relative_to(tmp_path / "runs").as_posix()
    assert [r.run_group for r in runs] == [group, group]
    assert sorted(r.display_name for r in runs) == ["0-regular-sequences-lstm-seed1",
                                                    "1-regular-sequences-lstm-seed2"]
    assert len({r.run_id for r in runs}) == 2
    assert {config(read_records(p))["seed"] for p in paths} == {1, 2}
    for path in paths:
        assert by_type(read_records(path), "exit")[0].exit_code == 0


# --- killed and resumed: W&B holds every row of metrics.csv once -----------------------------------
KILLED = ("budget.points=20000", "budget.eval_every=5000", "checkpoint.every_points=4000",
          "batching.size=5", "data.num_train=200", "data.num_test=50", "trainer.log_every_n_steps=2")
TIMING = ("time/", "points_per_sec")  # wall-clock columns differ between the attempts


def wandb_history(job: Path) -> list[tuple[int, dict]]:
    """(W&B step, row) of every history row in the job's offline W&B files."""
    return [(h.step.num, {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in h.item})
            for path in sorted(job.glob("wandb/offline-run-*/run-*.wandb"))
            for h in by_type(read_records(path), "history")]


def assert_wandb_holds_metrics_csv_once(job: Path) -> None:
    rows = list(csv.DictReader((job / "metrics.csv").open()))
    logged = wandb_history(job)
    assert sorted(step for step, _ in logged) == list(range(len(rows)))  # every row, once
    for step, row in logged:
        expected = {("trainer/global_step" if k == "step" else k): float(v) for k, v in rows[step].items()
                    if v and not any(t in k for t in TIMING)}
        got = {k: float(v) for k, v in row.items() if not k.startswith("_") and not any(t in k for t in TIMING)}
        assert got == expected, step


@pytest.mark.slow
def test_a_run_killed_while_wandb_had_unwritten_rows_holds_every_row_once_after_resuming(sequences,
                                                                                         tmp_path):
    """W&B writes its offline file in blocks: a run killed just after a checkpoint leaves rows
    that metrics.csv keeps and W&B never wrote. The resumed run sends them from metrics.csv."""
    cmd = run_py_args("name=killed", "logger.wandb.mode=offline", tmp_path=tmp_path,
                      sequences=sequences, tiny=KILLED)
    env, job = job_env(tmp_path), tmp_path / "runs" / "killed"
    proc = preloaded.Popen(cmd, cwd=REPO, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not (job / "checkpoints" / "last.ckpt").is_file():
            assert proc.poll() is None, "the run ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint in time"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # W&B's own process ends with the run, unwritten rows lost
        proc.wait()
    kept = [r for r in csv.DictReader((job / "metrics.csv").open())]
    assert len(wandb_history(job)) < len(kept)          # W&B lacked rows that metrics.csv holds

    resumed = preloaded.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming from" in resumed.stdout + resumed.stderr
    assert "sent the others from metrics.csv" in resumed.stdout + resumed.stderr
    assert_wandb_holds_metrics_csv_once(job)


def csv_row(i: int) -> dict[str, float]:
    return {"points": 100.0 * i, "train/loss": i / 7, "test/rmse_sampled": 3.0 + i / 3}


def attempt(tmp_path, rows: range, kept: int) -> None:
    """One attempt of a run in ``tmp_path`` that resumed with metrics.csv holding ``kept`` rows
    (written as the CSV holds them) and logs ``rows`` itself."""
    logger = IslWandbLogger(save_dir=str(tmp_path), project="isl", mode="offline", id="attempts",
                            resume="allow", csv_rows=[{**{k: repr(v) for k, v in csv_row(i).items()},
                                                       "step": str(i)} for i in range(kept)])
    for i in rows:
        logger.log_metrics(csv_row(i), step=i)
    logger.finalize("success")
    wandb.teardown()  # W&B's service writes out its files, as when an attempt's process ends


def test_wandb_gets_the_rows_it_lacks_from_metrics_csv_and_never_a_row_twice(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("WANDB_MODE", "offline")
    attempt(tmp_path, range(0, 10), kept=0)              # W&B writes rows 0-9
    with caplog.at_level("INFO", logger="isl.training.loggers"):
        attempt(tmp_path, range(6, 12), kept=6)          # killed after row 9, checkpoint at row 6
        assert "holds 10 rows of metrics.csv's 6; the resumed run sends only the later ones" in caplog.text
        attempt(tmp_path, range(16, 18), kept=16)        # as if rows 12-15 were logged, never written
        assert "holds 12 rows of metrics.csv's 16; sent the others from metrics.csv" in caplog.text
    logged = wandb_history(tmp_path)
    assert sorted(step for step, _ in logged) == list(range(18))
    for step, row in logged:
        assert {k: row[k] for k in csv_row(step)} == csv_row(step) and row["trainer/global_step"] == step


# --- the pieces, without a run --------------------------------------------------------------------
def test_mode_auto_is_offline_without_credentials_and_online_with_them(tmp_path):
    home = {"HOME": str(tmp_path)}
    assert resolve_mode("auto", home)[0] == "offline"
    assert resolve_mode("auto", {**home, "WANDB_API_KEY": DUMMY_KEY}) == (
        "online", "credentials from WANDB_API_KEY")
    (tmp_path / ".netrc").write_text("machine example.org login user password other\n")
    assert resolve_mode("auto", home)[0] == "offline"
    (tmp_path / ".netrc").write_text(f"machine api.wandb.ai\n  login user\n  password {DUMMY_KEY}\n")
    mode, reason = resolve_mode("auto", home)
    assert mode == "online" and str(tmp_path / ".netrc") in reason and DUMMY_KEY not in reason
    assert resolve_mode("auto", {**home, "WANDB_BASE_URL": "https://wandb.example.org"})[0] == "offline"
    assert resolve_mode("auto", {**home, "WANDB_MODE": "offline"})[0] == "offline"
    assert resolve_mode("auto", {**home, "WANDB_MODE": "dryrun"})[0] == "offline"
    assert resolve_mode("offline", {**home, "WANDB_API_KEY": DUMMY_KEY})[0] == "offline"
    assert resolve_mode("online", {"HOME": str(tmp_path / "none")})[0] == "online"
    (tmp_path / "other.netrc").write_text("machine wandb.example.org login user password x\n")
    assert credentials_source({"NETRC": str(tmp_path / "other.netrc"),
                               "WANDB_BASE_URL": "https://wandb.example.org"}) == str(
        tmp_path / "other.netrc")
    (tmp_path / ".netrc").write_text("this is not a netrc file \"")
    assert resolve_mode("auto", home)[0] == "offline"
    with pytest.raises(ValueError, match="logger.wandb.mode"):
        resolve_mode("cloud", home)


def test_credential_like_keys_and_overrides_are_redacted():
    config = {"logger": {"wandb": {"api_key": "k1", "project": "isl"}},
              "x": [{"password": "k2", "tokens": 5, "access_token": "k3"}], "WANDB_API_KEY": "k4",
              "client_secret": "k5", "model": {"hidden": 200}, "empty_token": None}
    text = json.dumps(redact(config))
    assert not any(f"k{i}" in text for i in range(1, 6))
    assert redact(config)["x"][0]["tokens"] == 5 and redact(config)["model"] == {"hidden": 200}
    assert redact_text("+logger.wandb.api_key=abc") == f"+logger.wandb.api_key={REDACTED}"
    assert redact_text("0-+logger.wandb.api_key=abc,seed=2") == (
        f"0-+logger.wandb.api_key={REDACTED},seed=2")
    assert redact_text("model=ffnn,seed=2") == "model=ffnn,seed=2"


def cfg_with(logger):
    return OmegaConf.create({"seed": 1, "model": {"network": "lstm"}, "logger": logger,
                             "paths": {"runs_dir": "/nowhere"}})


def test_build_loggers_outside_hydra(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    [csv] = build_loggers(cfg_with({"wandb": None}), tmp_path)
    assert isinstance(csv, CSVLogger)
    wandb_cfg = OmegaConf.load(REPO / "conf" / "logger" / "wandb.yaml")
    csv, wb = build_loggers(cfg_with(wandb_cfg), tmp_path / "job")
    assert isinstance(csv, CSVLogger) and isinstance(wb, IslWandbLogger)
    init = wb._wandb_init  # what wandb.init will get: nothing is started before the fit
    assert wb._experiment is None
    assert init["mode"] == "offline" and init["project"] == "isl" and init["dir"] == str(tmp_path / "job")
    assert init["group"] is None and init["tags"] is None and init["name"] == "job"
    assert init["config"]["model"] == {"network": "lstm"} and "choices" not in init["config"]


class FakeRun:
    def __init__(self):
        self.exit_codes = []

    def finish(self, exit_code=None):
        self.exit_codes.append(exit_code)


@pytest.mark.parametrize(("status", "code"), [("success", 0), ("failed", 1)])
def test_the_run_is_finished_with_the_fit_so_the_next_sweep_job_gets_its_own(status, code):
    run = FakeRun()
    logger = IslWandbLogger(experiment=run, project="isl")
    logger.finalize(status)
    logger.finalize(status)  # once only
    assert run.exit_codes == [code]


def test_the_value_of_a_secret_environment_variable_is_redacted_wherever_it_is(monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", DUMMY_KEY)
    config = OmegaConf.create({"notes": "${oc.env:WANDB_API_KEY}", "seed": 1})
    assert redact(OmegaConf.to_container(config, resolve=True)) == {"notes": REDACTED, "seed": 1}
