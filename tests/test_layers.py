"""The code reads one way: each layer imports only those before it, and a name means one thing;
a command parses its arguments before it imports the heavy libraries."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from conftest import REPO

PACKAGE = REPO / "isl"
# The layers are the package's folders, each importing only those before it:
# core (helpers) -> data, viz -> models -> curricula -> training (composing a run) -> tools.
LAYERS = [("core",), ("data", "viz"), ("models",), ("curricula",), ("training",), ("tools",)]


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(name: str) -> int:
    if name == "isl":
        return 0  # isl/__init__.py imports nothing of its own
    folder = name.split(".")[1]
    for i, folders in enumerate(LAYERS):
        if folder in folders:
            return i
    raise AssertionError(f"{name} is in no layer: put it in one of the folders of LAYERS")


def test_the_top_of_the_package_holds_the_layers_folders_only():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == {f for layer_folders in LAYERS for f in layer_folders}
    assert [p.name for p in PACKAGE.glob("*.py")] == ["__init__.py"]


def isl_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return {n for n in names if n.startswith("isl.") and is_module(n)}


def is_module(name: str) -> bool:
    path = PACKAGE.parent / name.replace(".", "/")
    return path.with_suffix(".py").is_file() or path.is_dir()


def test_each_layer_imports_only_the_layers_before_it():
    wrong = [f"{module_name(p)} imports {name}" for p in sorted(PACKAGE.rglob("*.py"))
             for name in sorted(isl_imports(p)) if layer(name) > layer(module_name(p))]
    assert wrong == []


def test_models_take_their_units_from_core_not_from_the_data():
    imports = {n for p in (PACKAGE / "models").glob("*.py") for n in isl_imports(p)}
    assert {n for n in imports if n.startswith("isl.data")} == set()


def test_no_module_is_longer_than_350_lines():
    lines = {module_name(p): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {name: n for name, n in lines.items() if n > 350} == {}


def test_curricula_use_the_model_they_are_handed_and_the_config_schema_imports_no_tools():
    curricula = {n for p in (PACKAGE / "curricula").glob("*.py") for n in isl_imports(p)}
    assert "isl.models.module" not in curricula
    assert isl_imports(PACKAGE / "training" / "config.py") == set()


def test_no_two_modules_define_a_public_function_of_the_same_name():
    names = Counter(node.name for p in PACKAGE.rglob("*.py") for node in ast.parse(p.read_text()).body
                    if isinstance(node, ast.FunctionDef) and not node.name.startswith("_")
                    and node.name != "main")  # every command's entry point is main
    assert [name for name, count in names.items() if count > 1] == []


def test_run_py_imports_no_lightning_before_hydra_configures_logging():
    """run.py's module-level imports (isl.training.config, isl.tools.transfer and what they import) must leave
    Lightning alone: imported before Hydra configures logging, its loggers bypass run.log."""
    code = "import sys, isl.training.config, isl.tools.transfer; print(sorted(m for m in sys.modules if m.startswith('lightning')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


TOOLS = sorted(module_name(p) for p in PACKAGE.rglob("*.py") if 'if __name__ == "__main__":' in p.read_text())
HEAVY = {"torch", "lightning", "matplotlib", "scipy"}


# isl.training.cli is a LightningCLI: its --help is made from the signatures of the classes it configures.
@pytest.mark.parametrize("tool", [t for t in TOOLS if t != "isl.training.cli"])
def test_every_command_answers_help_before_importing_torch(tool):
    """``python -m <tool> --help`` needs none of torch, Lightning, matplotlib and scipy: a tool imports
    them in the functions that use them, after its arguments are parsed."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", tool, "--help"], cwd=REPO,
                         capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout, out.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in out.stderr.splitlines()
                if line.startswith("import time:")}
    assert imported & HEAVY == set()
