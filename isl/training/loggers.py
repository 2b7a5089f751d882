"""The loggers of one run, from the Hydra group ``logger``: CSV always, for the local report;
``logger=wandb`` adds a Weights & Biases run beside it.

The W&B run is offline unless credentials are set (``logger.wandb.mode: auto``), with its files in
the job's directory (``<out_dir>/wandb/``), so ``wandb sync <out_dir>/wandb/offline-run-*`` can
upload it later. Runs of one sweep share a group, the Hydra choices are tags, the resolved config
is the run's config, and every chart is drawn against ``points`` (sequence points processed).
metrics.csv is the record: every row goes to W&B at W&B step = its row number there, so that
after a kill and a resume W&B holds each row once (see ``IslWandbLogger``).
Nothing that looks like a credential reaches W&B: such config values and command-line values are
replaced by ``<redacted>``.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import netrc
import os
import re
import sys
import uuid
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from isl.training.wandb_offline import logged_rows

log = logging.getLogger(__name__)

MODES = ("auto", "online", "offline", "disabled")
TAG_GROUPS = ("curriculum", "batching", "model", "arm")  # Hydra choices that become tags (arm: experiment=warmup)
CHOICE_GROUPS = ("data", *TAG_GROUPS, "experiment")  # Hydra choices kept in the run's config
STEP_METRIC = "points"  # written with every metric by SequenceMDN.write_metrics
DEFAULT_HOST = "https://api.wandb.ai"
REDACTED = "<redacted>"
# A config key or command-line key that holds a credential.
SECRET_KEY = re.compile(r"(?:^|[^a-z0-9])(?:(?:api|access|private|secret)[_-]?key|token|secret|"
                        r"password|passwd|credentials?)(?:$|[^a-z0-9])", re.IGNORECASE)
# key=value inside a command-line argument or a Hydra override_dirname ("a=1,b.api_key=x").
_ASSIGNMENT = re.compile(r"(?P<key>[\w.+~/-]*?[\w.-]+)=(?P<value>[^,\s]*)")
_NAME_LIMIT = 128  # W&B limits run names and groups to 128 characters, tags to 64


def build_loggers(cfg: DictConfig, out_dir: Path, resume_step: int | None = None) -> list[Logger]:
    """CSV into ``out_dir/metrics.csv`` (see ``resume_csv``), plus W&B when ``cfg.logger.wandb``
    is set."""
    csv_logger = CSVLogger(save_dir=out_dir, name="", version="")
    kept = resume_csv(csv_logger, resume_step)
    loggers: list[Logger] = [csv_logger]
    wandb_cfg = OmegaConf.select(cfg, "logger.wandb", default=None)
    if wandb_cfg is not None:
        loggers.append(build_wandb_logger(cfg, out_dir, csv_rows=kept))
    elif _sweep_job() == 0:  # a sweep's first job says it, once
        log.info("dashboards: this sweep logs CSV only (metrics.csv per job); add logger=wandb for "
                 "W&B (offline without credentials, synced later with `wandb sync`)")
    return loggers


def resume_csv(csv_logger: CSVLogger, resume_step: int | None) -> list[dict]:
    """Before anything is logged: a run resumed from the checkpoint at optimizer step
    ``resume_step`` keeps the CSV rows up to it; the later ones (written before the run was
    killed) are dropped, to be logged again. Returns the rows kept."""
    # Lightning warns that the directory holds files and that an old metrics.csv "will be
    # deleted": the directory always holds the run's config, and the rows worth keeping are
    # kept just below, so the warning would only alarm.
    warnings.filterwarnings("ignore", message=r"Experiment logs directory .* exists and is not empty")
    metrics = Path(csv_logger.log_dir) / "metrics.csv"
    kept = _rows_until(metrics, resume_step) if resume_step is not None and metrics.is_file() else []
    if kept:
        writer = csv_logger.experiment  # Lightning's writer removes the old file on creation
        writer.metrics = kept
        writer.save()
    return kept


def _rows_until(path: Path, step: int) -> list[dict]:
    """The rows of a metrics CSV logged at optimizer steps <= ``step``, without empty cells
    (a row cut short by a kill has no valid step and is dropped)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    kept = []
    for row in rows:
        try:
            if int(float(row.get("step") or "nan")) <= step:
                kept.append({k: v for k, v in row.items() if k is not None and v not in ("", None)})
        except ValueError:
            continue
    return kept


# --- W&B ------------------------------------------------------------------------------------------
class IslWandbLogger(WandbLogger):
    """Lightning's WandbLogger with ``points`` as the x-axis of every chart, the model's
    hyperparameters under ``hparams`` (the whole config is already the run's config), no
    credentials in the recorded command line, and the run finished with the fit, so that the
    next job of a sweep (same process) starts a run of its own.

    Every row holds what the same row of metrics.csv holds and is logged at W&B step = its row
    number there. ``csv_rows`` are the rows metrics.csv kept when a killed run resumes. When the
    run starts, what W&B holds already is known: online, the steps the server has (W&B resumes
    a run at its next step); offline, the steps in the job's earlier offline run files. The
    rows it lacks (logged but never written by the killed process's W&B) are sent again from
    metrics.csv, and rows it has (written after the last checkpoint, before the kill) are not
    sent again when the resumed run logs them anew. Reading back is the only sure way: W&B
    writes in the background and a kill loses whatever it had not written yet."""

    def __init__(self, *args: Any, csv_rows: list[dict] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self._wandb_init.get("anonymous") is None:  # wandb warns about the setting, even None
            self._wandb_init.pop("anonymous", None)
        self._finished = False
        self._csv_rows = list(csv_rows or [])
        self._next_row = len(self._csv_rows)  # metrics.csv row number of the next logged row
        self._held = 0                        # rows the W&B run holds from earlier attempts

    @property
    def experiment(self):
        created = self._experiment is None and rank_zero_only.rank == 0
        held_offline = logged_rows(Path(self.save_dir) / "wandb") if created and self.save_dir else 0
        with _redacted_argv():  # wandb records sys.argv in the run's metadata
            run = super().experiment
        if created and self._experiment is not None and hasattr(run, "define_metric"):
            run.define_metric(STEP_METRIC)
            run.define_metric("*", step_metric=STEP_METRIC, step_sync=True, overwrite=True)
            self._catch_up(run, held_offline)
        return run

    def _catch_up(self, run, held_offline: int) -> None:
        """Send the rows of metrics.csv that the W&B run lacks."""
        self._held = max(getattr(run, "starting_step", 0), held_offline)
        for row in range(self._held, len(self._csv_rows)):
            csv_row = self._csv_rows[row]
            run.log({("trainer/global_step" if k == "step" else k): int(v) if k == "step" else float(v)
                     for k, v in csv_row.items()}, step=row, commit=True)
        if self._held != len(self._csv_rows):
            log.info("W&B run %s holds %d rows of metrics.csv's %d; %s", run.id, self._held,
                     len(self._csv_rows), "sent the others from metrics.csv"
                     if self._held < len(self._csv_rows) else "the resumed run sends only the later ones")

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        run = self.experiment
        row, self._next_row = self._next_row, self._next_row + 1
        if row >= self._held:  # else the W&B run holds this row already
            extra = {} if step is None else {"trainer/global_step": step}
            run.log({**metrics, **extra}, step=row, commit=True)

    def log_hyperparams(self, params) -> None:
        params = params if isinstance(params, dict) else vars(params)
        super().log_hyperparams({"hparams": redact(dict(params))})

    def finalize(self, status: str) -> None:
        super().finalize(status)
        if self._experiment is not None and not self._finished and hasattr(self._experiment, "finish"):
            self._finished = True
            self._experiment.finish(exit_code=0 if status in ("success", "finished") else 1)


def build_wandb_logger(cfg: DictConfig, out_dir: Path, csv_rows: list[dict] | None = None) -> IslWandbLogger:
    """The W&B logger of ``cfg.logger.wandb`` (mode, project, entity, group, name, tags, notes);
    ``csv_rows``: the rows a resumed run's metrics.csv kept."""
    settings = cfg.logger.wandb
    unknown = sorted(set(settings) - {"mode", "project", "entity", "group", "name", "tags", "notes"})
    if unknown:
        shown = [k if not SECRET_KEY.search(k) else f"{k} (never put credentials in the config: "
                 "set WANDB_API_KEY or run `wandb login`)" for k in unknown]
        log.warning("ignoring unknown logger.wandb key(s): %s", ", ".join(shown))
    mode, reason = resolve_mode(settings.get("mode", "auto"))
    log.info("W&B mode %s: %s", mode, reason)
    hydra = _hydra_context(cfg, out_dir)
    config = redact(OmegaConf.to_container(cfg, resolve=True))
    if hydra["choices"]:
        config["choices"] = hydra["choices"]
    config["out_dir"] = str(out_dir)
    tags = [*hydra["tags"], *(settings.get("tags") or [])]
    return IslWandbLogger(
        save_dir=str(out_dir), project=settings.get("project") or "isl",
        entity=settings.get("entity"), name=_clip(settings.get("name") or hydra["name"]),
        group=_clip(settings.get("group") or hydra["group"]),
        tags=[str(t)[:64] for t in tags] or None, notes=settings.get("notes"),
        config=config, mode=mode, log_model=False, id=_run_id(out_dir), resume="allow",
        csv_rows=csv_rows)


def _run_id(out_dir: Path) -> str:
    """The W&B run id of this job directory, made once and kept, so that a resumed run goes on
    logging into the same W&B run."""
    path = Path(out_dir) / "wandb" / "run-id"
    if path.is_file() and (saved := path.read_text().strip()):
        return saved
    run_id = uuid.uuid4().hex[:12]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(run_id + "\n")
    return run_id


def resolve_mode(setting: str = "auto", environ: dict[str, str] | None = None) -> tuple[str, str]:
    """The W&B mode for ``logger.wandb.mode`` and why: ``auto`` follows ``WANDB_MODE`` if set,
    else is online when credentials are set (``WANDB_API_KEY``, ``WANDB_IDENTITY_TOKEN_FILE``
    or a netrc entry for the W&B host), else offline. Never contacts the server, never reads
    the key's value beyond checking that it is there."""
    environ = os.environ if environ is None else environ
    if setting not in MODES:
        raise ValueError(f"logger.wandb.mode must be one of {MODES}, got {setting!r}")
    if setting != "auto":
        return setting, "set by logger.wandb.mode"
    if env_mode := environ.get("WANDB_MODE"):
        mapped = {"dryrun": "offline", "run": "online"}.get(env_mode, env_mode)
        if mapped in MODES[1:]:
            return mapped, f"WANDB_MODE={env_mode}"
    if source := credentials_source(environ):
        return "online", f"credentials from {source}"
    host = _host(environ)
    return "offline", (f"no W&B credentials (no WANDB_API_KEY, no entry for {host} in "
                       f"{_netrc_path(environ)}); log in with `wandb login` for online runs")


def credentials_source(environ: dict[str, str] | None = None) -> str | None:
    """Where W&B would find credentials for its host (not their value), or None."""
    environ = os.environ if environ is None else environ
    for name in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE"):
        if environ.get(name):
            return name
    path = _netrc_path(environ)
    try:
        entry = netrc.netrc(str(path)).authenticators(_host(environ))
    except (OSError, netrc.NetrcParseError):
        return None
    return str(path) if entry and entry[2] else None


def _host(environ) -> str:
    return urlsplit(environ.get("WANDB_BASE_URL") or DEFAULT_HOST).netloc or "api.wandb.ai"


def _netrc_path(environ) -> Path:
    """As wandb finds it: $NETRC, else ~/.netrc, else ~/_netrc (Windows)."""
    if environ.get("NETRC"):
        return Path(environ["NETRC"]).expanduser()
    home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
    unix, windows = home / ".netrc", home / "_netrc"
    return windows if not unix.exists() and (windows.exists() or sys.platform == "win32") else unix


def _hydra_context(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    """Group, name, tags and choices from Hydra; the job directory's name outside Hydra.

    Names read like ``3-length-points-lstm-seed1`` (job number in a sweep, the curriculum,
    batching and model choices, the seed); a sweep's group is its directory under
    ``paths.runs_dir``, e.g. ``multirun/experiment-exp1``."""
    context: dict[str, Any] = {"group": None, "name": redact_text(out_dir.name), "tags": [],
                               "choices": {}}
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode
    except ImportError:
        return context
    if not HydraConfig.initialized():
        return context
    hydra = HydraConfig.get()
    choices = hydra.runtime.choices
    context["choices"] = {g: choices[g] for g in CHOICE_GROUPS if choices.get(g) is not None}
    picked = [context["choices"][g] for g in TAG_GROUPS if g in context["choices"]]
    context["tags"] = [f"{g}={context['choices'][g]}" for g in TAG_GROUPS if g in context["choices"]]
    seed = OmegaConf.select(cfg, "seed", default=None)
    name = [*picked, *([f"seed{seed}"] if seed is not None else [])]
    if hydra.mode == RunMode.MULTIRUN:
        runs_dir = OmegaConf.select(cfg, "paths.runs_dir", default=None)
        context["group"] = redact_text(_relative(Path(hydra.sweep.dir), runs_dir))
        name.insert(0, str(hydra.job.num))
    if name:
        context["name"] = redact_text("-".join(name))
    return context


def _sweep_job() -> int | None:
    """This job's number in a Hydra sweep; None outside one."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return HydraConfig.get().job.num
    return None


def _relative(path: Path, base) -> str:
    """``path`` relative to ``base`` where it lies under it, else its last component."""
    if base is not None:
        with contextlib.suppress(ValueError):
            return Path(path).resolve().relative_to(Path(base).resolve()).as_posix()
    return Path(path).name


def _clip(text: str | None) -> str | None:
    return text if text is None or len(text) <= _NAME_LIMIT else text[:_NAME_LIMIT - 1] + "…"


# --- redaction ------------------------------------------------------------------------------------
def redact(value: Any, secrets: frozenset[str] | None = None) -> Any:
    """A copy of a config container with the value of every credential-like key replaced, and
    every string holding the value of a credential-like environment variable (WANDB_API_KEY...),
    as ``${oc.env:WANDB_API_KEY}`` under an innocent key would."""
    secrets = _env_secrets() if secrets is None else secrets
    if isinstance(value, dict):
        return {k: REDACTED if SECRET_KEY.search(str(k)) and v is not None else redact(v, secrets)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v, secrets) for v in value]
    if isinstance(value, str):
        return REDACTED if any(secret in value for secret in secrets) else redact_text(value)
    return value


def _env_secrets() -> frozenset[str]:
    return frozenset(v for k, v in os.environ.items() if SECRET_KEY.search(k) and len(v) >= 8)


def redact_text(text: str) -> str:
    """``key=value`` assignments (command-line overrides, Hydra's override_dirname) with a
    credential-like key get their value replaced: ``+logger.wandb.api_key=<redacted>``."""
    return _ASSIGNMENT.sub(lambda m: f"{m['key']}={REDACTED}" if SECRET_KEY.search(m["key"])
                           else m[0], text)


@contextlib.contextmanager
def _redacted_argv():
    saved = sys.argv
    sys.argv = [redact_text(arg) for arg in saved]
    try:
        yield
    finally:
        sys.argv = saved
