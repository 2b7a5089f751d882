"""``logger=wandb``: the W&B run of a job, offline here, read back from its ``.wandb`` file.

wandb 0.31 has no Python reader for its transaction log, so ``read_records`` decodes it: a
7-byte file header (``:W&B``, magic 0xBEE1, version), then LevelDB-log records in 32 KiB blocks,
each with a 7-byte header (CRC-32 of type and data, length, type FULL/FIRST/MIDDLE/LAST), holding
``wandb_internal_pb2.Record`` messages.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from lightning.pytorch.loggers import CSVLogger
from omegaconf import OmegaConf

from conftest import MNIST_DIR, REPO
from isl.loggers import (REDACTED, IslWandbLogger, build_loggers, credentials_source, redact,
                         redact_text, resolve_mode)

pytest.importorskip("wandb")
from wandb.proto import wandb_internal_pb2  # noqa: E402

TINY = ("budget.points=3000", "budget.eval_every=1000", "data.num_train=200", "data.num_test=50",
        "trainer.log_every_n_steps=2")
DUMMY_KEY = "0123456789abcdef0123456789abcdef01234567"  # a well-formed, unusable API key


# --- the .wandb reader ----------------------------------------------------------------------------
BLOCK, HEADER = 32 * 1024, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path: Path) -> list[wandb_internal_pb2.Record]:
    data = path.read_bytes()
    ident, magic, _version = struct.unpack("<4sHB", data[:7])
    assert ident == b":W&B" and magic == 0xBEE1, f"{path} is not a W&B transaction log"
    records, parts, pos = [], [], 7
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # the rest of a block too short for a header is padding
            pos += left
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        if kind == 0 and length == 0:  # zero padding at the end of a block or of the file
            pos += left
            continue
        chunk = data[pos + HEADER:pos + HEADER + length]
        assert len(chunk) == length, f"truncated record at byte {pos} of {path}"
        assert zlib.crc32(bytes([kind]) + chunk) == crc, f"bad checksum at byte {pos} of {path}"
        pos += HEADER + length
        if kind == FULL:
            parts = [chunk]
        elif kind == FIRST:
            parts = [chunk]
            continue
        elif kind == MIDDLE:
            parts.append(chunk)
            continue
        elif kind == LAST:
            parts.append(chunk)
        else:
            raise AssertionError(f"unknown record type {kind} at byte {pos} of {path}")
        record = wandb_internal_pb2.Record()
        record.ParseFromString(b"".join(parts))
        records.append(record)
    return records


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
        subprocess.run([sys.executable, "-m", "isl.data.build", "--mnist-dir", str(MNIST_DIR),
                        "--split", split, "--limit", "300", "--format", "original",
                        "--out", str(out)], check=True, cwd=REPO, capture_output=True)
    return out


def run_py(*overrides, tmp_path, sequences, env_extra=None, multirun=False):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("WANDB_") and k not in ("NETRC",)}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env.update(HOME=str(home), ISL_DATA_DIR=str(tmp_path / "data"), **(env_extra or {}))
    return subprocess.run([sys.executable, "run.py", *(["-m"] if multirun else []), "logger=wandb", *TINY, "data=original",
                           f"data.path={sequences}",
                           f"paths.runs_dir={tmp_path / 'runs'}", *overrides],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


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
