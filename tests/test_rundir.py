"""Run directories made by an earlier isl resume under today's: keys added since are in
``isl.rundir.ADDED`` with the value that computes what isl computed before them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from isl import rundir
from isl.baselines import compose
from isl.rundir import ADDED, _flat, prepare, results_config

SAVED = yaml.safe_load((Path(__file__).parent / "data" / "run-configs-2026-12-02.yaml").read_text())
# Keys added since whose value under those overrides is not the old behaviour, on purpose: such
# runs are refused, naming the key, and resume given the old value (ADDED's) and name=<directory>.
ON_PURPOSE = {"curriculum=length setup=original": {"budget.test_protocol": "original"}}


@pytest.mark.parametrize("overrides", sorted(SAVED))
def test_every_key_added_since_is_registered_with_its_default(overrides):
    old, now = _flat(SAVED[overrides]), _flat(results_config(compose(overrides.split() if overrides != "default" else [])))
    new = {k: now[k] for k in set(now) - set(old) if ON_PURPOSE.get(overrides, {}).get(k, k) != now[k]}
    unregistered = {k: v for k, v in new.items() if k not in ADDED or ADDED[k] != v}
    assert not unregistered, (f"keys added since 2026-12-02 without an isl.rundir.ADDED entry holding their "
                              f"default (runs made before them would be refused): {unregistered}")


def test_a_run_without_an_added_key_resumes_only_at_the_old_value(tmp_path, monkeypatch):
    before = {"model": {"hidden": 8}}
    prepare(tmp_path, before, budget=10)  # writes run-config.yaml as an older isl would
    rundir.finish(tmp_path, {"points": 10, "summary": "done"})
    monkeypatch.setitem(rundir.ADDED, "model.warmup", 0)
    assert prepare(tmp_path, {"model": {"hidden": 8, "warmup": 0}}, budget=10).finished  # the old value
    with pytest.raises(ValueError, match=r"model.warmup: '\(unset\)' -> 100"):
        prepare(tmp_path, {"model": {"hidden": 8, "warmup": 100}}, budget=10)
    with pytest.raises(ValueError, match=r"model.depth: '\(unset\)' -> 1"):  # not registered
        prepare(tmp_path, {"model": {"hidden": 8, "depth": 1}}, budget=10)
