"""The entry points (``python run.py ...``, ``python -m isl.training.cli ...``) in a process of their own,
as a user runs them, but forked from a server that imported torch, Hydra and the other heavy
packages once per test session: a launch then costs about a second of CPU, not the ~12 s a
fresh interpreter spends importing (most of the suite's time when each of its ~70 launches
started one).

Only third-party packages are preloaded: each process imports the project's modules afresh, so
an import a script lacks fails here as it would for a user. Each process gets its own
environment, working directory, session, stdout and stderr files and exit code, so that tests
can kill, signal or limit it. Processes they start in turn (DDP ranks, submitit and joblib
workers) are ordinary fresh interpreters. ``tests/test_console.py`` and the first test of
``tests/test_run.py`` use plain subprocesses: what a fresh interpreter prints."""

from __future__ import annotations

import atexit
import functools
import itertools
import multiprocessing
import os
import runpy
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
from multiprocessing import forkserver, process
from pathlib import Path

# The heavy imports, but not Lightning's own packages (those take a few tenths of a second):
# how their loggers print depends on whether logging was configured when they were imported
# (run.py imports them after Hydra configured it, isl.training.cli before).
PRELOAD = ["torch", "torch._dynamo", "torchmetrics", "scipy.signal", "scipy.ndimage", "hydra.utils",
           "omegaconf", "matplotlib.pyplot", "rich.console"]

_context = multiprocessing.get_context("forkserver")
_launches = itertools.count()


@functools.cache
def _outputs() -> tempfile.TemporaryDirectory:
    """The folder of every launch's stdout and stderr (removed at exit); made on first use, so
    that the launched processes, which import this module too, make none."""
    return tempfile.TemporaryDirectory(prefix="preloaded-")


def _start_server() -> None:
    """Start the server (once) with one OpenMP thread: with more, torch's import starts a worker
    thread that forked processes lack, and their multi-threaded code then runs several times
    slower. Each launch sets the threads its own environment asks for."""
    _context.set_forkserver_preload(PRELOAD)
    saved = dict(os.environ)
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        forkserver.ensure_running()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _exit_code(exit: SystemExit) -> int:
    """The status ``python`` exits with on this SystemExit."""
    if exit.code is None or isinstance(exit.code, int):
        return exit.code or 0
    print(exit.code, file=sys.stderr)
    return 1


def _main(args, cwd, env, out, err, new_session, preexec_fn) -> None:
    """In the forked process: become ``python *args`` started in ``cwd`` with ``env``."""
    if new_session:
        os.setsid()
    for fd, path in ((1, out), (2, err)):
        with open(path, "wb") as file:
            os.dup2(file.fileno(), fd)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    import torch
    # OMP_NUM_THREADS, else what a fresh interpreter's torch takes: every CPU it may run on
    torch.set_num_threads(int(env.get("OMP_NUM_THREADS") or len(os.sched_getaffinity(0))))
    if preexec_fn is not None:
        preexec_fn()
    main = process.current_process()  # multiprocessing's record: the main process, as under `python`
    main._name, main._identity, process._parent_process = "MainProcess", (), None
    code = 0
    try:
        if args[0] == "-m":
            sys.argv = list(args[1:])  # runpy puts the module's path in sys.argv[0]
            sys.path.insert(0, cwd)
            runpy.run_module(args[1], run_name="__main__", alter_sys=True)
        else:
            sys.argv = list(args)
            sys.path.insert(0, str(Path(cwd, args[0]).resolve().parent))
            runpy.run_path(args[0], run_name="__main__")
    except SystemExit as exit:
        code = _exit_code(exit)
    except BaseException:
        traceback.print_exc()
        code = 1
    try:  # the interpreter's own shutdown: other threads joined, then atexit handlers
        threading._shutdown()
        atexit._run_exitfuncs()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class Popen:
    """``subprocess.Popen([sys.executable, *args], cwd=..., env=...)`` for a preloaded process.
    Its stdout and stderr always go to files of their own (``communicate`` reads them), so the
    ``stdout``, ``stderr``, ``capture_output`` and ``text`` arguments are accepted and ignored."""

    def __init__(self, cmd, *, cwd, env=None, start_new_session=False, preexec_fn=None, **_):
        assert cmd[0] == sys.executable, f"not a Python command: {cmd}"
        _start_server()
        self.args = list(map(str, cmd))
        self.new_session = start_new_session
        number = next(_launches)
        self._out, self._err = (os.path.join(_outputs().name, f"{number}.{stream}")
                                for stream in ("stdout", "stderr"))
        self._process = _context.Process(
            target=_main, args=(self.args[1:], str(cwd), dict(os.environ if env is None else env),
                                self._out, self._err, start_new_session, preexec_fn))
        self._process.start()
        self.pid = self._process.pid
        self.returncode = None

    def poll(self) -> int | None:
        if self.returncode is None and not self._process.is_alive():
            self._process.join()
            self.returncode = self._process.exitcode
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self.poll() is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            (os.killpg if self.new_session else os.kill)(self.pid, signal.SIGKILL)

    def communicate(self) -> tuple[str, str]:
        self.wait()
        return tuple(Path(path).read_text(errors="replace") for path in (self._out, self._err))


def run(cmd, *, cwd, env=None, timeout=None, check=False, preexec_fn=None,
        **_) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd, capture_output=True, text=True, ...)`` for a preloaded process."""
    proc = Popen(cmd, cwd=cwd, env=env, preexec_fn=preexec_fn)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    result = subprocess.CompletedProcess(proc.args, proc.returncode, *proc.communicate())
    if check:
        result.check_returncode()
    return result
