"""The data-location flags (--data-dir, --mnist-dir) are written once, in isl.data.flags, and every
tool that offers them takes them, and their help, from there."""

from __future__ import annotations

import ast
import importlib

import pytest

from conftest import REPO
from isl.data.flags import DATA_DIR_HELP, LOCAL_DATA_DIR, LOCAL_MNIST_DIR, MNIST_DIR_HELP

PACKAGE = REPO / "isl"
FLAGS = {"--data-dir", "--mnist-dir"}
USERS = {".".join(p.relative_to(REPO).with_suffix("").parts): p.read_text()
         for p in sorted(PACKAGE.rglob("*.py")) if "add_data_flags(" in p.read_text() and p.name != "flags.py"}
SUBCOMMAND = {"isl.tools.bench": ["real"]}  # the subcommand that reads data


def test_no_module_but_the_helper_adds_the_flags_itself():
    adders = {str(p.relative_to(REPO)) for p in PACKAGE.rglob("*.py") for node in ast.walk(ast.parse(p.read_text()))
              if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument"
              and any(isinstance(a, ast.Constant) and a.value in FLAGS for a in node.args)}
    assert adders == {"isl/data/flags.py"}


def test_the_helper_is_used_by_every_tool_that_offers_the_flags():
    assert set(USERS) == {"isl.data.build", "isl.tools.analyze", "isl.tools.bench", "isl.tools.generate",
                          "isl.tools.quality", "isl.tools.score"}


@pytest.mark.parametrize("tool", sorted(USERS))
def test_each_tool_shows_the_helpers_help_and_the_defaults_it_resolves(tool, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "1000")  # one line per flag: the texts are compared whole
    with pytest.raises(SystemExit) as stop:
        importlib.import_module(tool).main([*SUBCOMMAND.get(tool, []), "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert f"{MNIST_DIR_HELP} (default: " in out
    assert (f"{DATA_DIR_HELP} (default: " in out) == (tool != "isl.data.build")  # build has no data folder
    if "local_mnist(args.data_dir, args.mnist_dir)" in USERS[tool]:
        assert f"{DATA_DIR_HELP} (default: {LOCAL_DATA_DIR})" in out
        assert f"{MNIST_DIR_HELP} (default: {LOCAL_MNIST_DIR})" in out
