"""What the entry points print: the project's log lines reach the console, where a progress bar
on a terminal can put them above itself (Rich swaps sys.stdout/sys.stderr for its own proxies
while it draws)."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO

# Logging set up as each entry point has it, then sys.stdout/sys.stderr replaced as Rich's
# progress bar does: a log line must go to the replacement, not to the terminal beneath it.
SCRIPT = """
import io, logging, sys
from isl.core import console
{setup}
swapped = io.StringIO()
setattr(sys, {stream!r}, swapped)
logging.getLogger("isl.curricula.base").info("Curriculum step up")
logging.getLogger("lightning.pytorch").info("GPU available")
sys.__stdout__.write(repr(swapped.getvalue()))
"""


def logged_while_swapped(setup: str, stream: str) -> str:
    result = subprocess.run([sys.executable, "-c", SCRIPT.format(setup=setup, stream=stream)],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_isl_cli_prints_the_projects_info_lines_where_the_progress_bar_can_place_them():
    setup = ("logging.getLogger('lightning').addHandler(logging.StreamHandler())  # as Lightning does\n"
             "logging.getLogger('lightning').setLevel(logging.INFO)\nconsole.log_to_console()")
    assert logged_while_swapped(setup, "stderr") == repr("Curriculum step up\nGPU available\n")


def test_run_py_routes_lightning_through_hydras_console_handler_above_the_progress_bar():
    setup = ("logging.basicConfig(level=logging.INFO, stream=sys.stdout, format='%(message)s')"
             "  # as Hydra's job logging\nconsole.route_lightning_logs()")
    assert logged_while_swapped(setup, "stdout") == repr("Curriculum step up\nGPU available\n")
