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
# data -> models -> curricula -> training -> tools; the helpers below them serve all.
LAYERS = [
    ("isl.checks", "isl.files", "isl.console"),
    ("isl.data", "isl.viz"),
    ("isl.models",),
    ("isl.curricula",),
    ("isl.callbacks", "isl.checkpoints", "isl.config", "isl.devices", "isl.loggers", "isl.rundir",
     "isl.schedule", "isl.train", "isl.usage", "isl.wandb_offline"),
    ("isl.analyze", "isl.baselines", "isl.bench", "isl.cli", "isl.generate", "isl.quality", "isl.records",
     "isl.report",
     "isl.score",
     "isl.scribbles", "isl.sweeps", "isl.timing", "isl.transfer"),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(name: str) -> int:
    for i, prefixes in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return i
    raise AssertionError(f"{name} is in no layer: add it to LAYERS")


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


def test_curricula_use_the_model_they_are_handed_and_the_config_schema_imports_no_tools():
    curricula = {n for p in (PACKAGE / "curricula").glob("*.py") for n in isl_imports(p)}
    assert "isl.models.module" not in curricula
    assert isl_imports(PACKAGE / "config.py") == set()


def test_no_two_modules_define_a_public_function_of_the_same_name():
    names = Counter(node.name for p in PACKAGE.rglob("*.py") for node in ast.parse(p.read_text()).body
                    if isinstance(node, ast.FunctionDef) and not node.name.startswith("_")
                    and node.name != "main")  # every command's entry point is main
    assert [name for name, count in names.items() if count > 1] == []


def test_run_py_imports_no_lightning_before_hydra_configures_logging():
    """run.py's module-level imports (isl.config, isl.transfer and what they import) must leave
    Lightning alone: imported before Hydra configures logging, its loggers bypass run.log."""
    code = "import sys, isl.config, isl.transfer; print(sorted(m for m in sys.modules if m.startswith('lightning')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


TOOLS = sorted(module_name(p) for p in PACKAGE.rglob("*.py") if 'if __name__ == "__main__":' in p.read_text())
HEAVY = {"torch", "lightning", "matplotlib", "scipy"}


# isl.cli is a LightningCLI: its --help is made from the signatures of the classes it configures.
@pytest.mark.parametrize("tool", [t for t in TOOLS if t != "isl.cli"])
def test_every_command_answers_help_before_importing_torch(tool):
    """``python -m <tool> --help`` needs none of torch, Lightning, matplotlib and scipy: a tool imports
    them in the functions that use them, after its arguments are parsed."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", tool, "--help"], cwd=REPO,
                         capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout, out.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in out.stderr.splitlines()
                if line.startswith("import time:")}
    assert imported & HEAVY == set()
