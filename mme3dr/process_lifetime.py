"""Child processes that never outlive the process that started them.

``kill -9`` of ``mme3dr evaluate --workers 2`` must not leave render workers (about 300 MB each), the
adapter process or multiprocessing's resource tracker re-parented to PID 1. Every child we spawn calls
:func:`die_with_parent` first thing:

- on Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` (``man 2 prctl``): the kernel kills the child the moment
  its parent dies, even while the child is inside a long C call. The signal follows the *thread* that
  started the child, so children are started from the main thread (``RenderPool``, ``AdapterProcess``);
- everywhere, a daemon thread that polls ``os.getppid()`` twice a second and exits when the parent has
  changed (the fallback where ``prctl`` is missing);
- if the parent died before either took effect, the child exits at once.

The resource tracker needs nothing of its own: it exits when the last process holding its pipe (the
parent and the spawned workers) is gone.

The parent's side: Python runs no ``finally`` block and no context manager exit on an unhandled SIGTERM
(the default action kills the process). A command that holds resources to release calls
:func:`exit_on_sigterm` so SIGTERM (``kill``, a batch scheduler's stop) becomes an ordinary
``SystemExit(143)`` that unwinds the stack.

Light module: standard library only.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import sys
import threading
import time

__all__ = ["die_with_parent", "exit_on_sigterm", "spawn_context"]

_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_POLL_S = 0.5


def spawn_context():
    """The multiprocessing context for every child of mme3dr: ``spawn`` (a fresh interpreter; forking a
    process that holds OpenGL or torch threads is unsafe)."""
    return mp.get_context("spawn")


def _set_pdeathsig() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent_pid: int) -> None:
    while True:
        time.sleep(_POLL_S)
        if os.getppid() != parent_pid:
            os._exit(1)


def die_with_parent(parent_pid: int | None = None) -> None:
    """Make this process die when its parent does (see the module docstring).

    Args:
        parent_pid: the parent's pid as the parent saw it (``os.getpid()`` passed to the child); defaults
            to the current ``os.getppid()``.
    """
    parent_pid = os.getppid() if parent_pid is None else parent_pid
    _set_pdeathsig()
    threading.Thread(target=_watch, args=(parent_pid,), name="mme3dr-die-with-parent", daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)


def exit_on_sigterm(code: int = 128 + signal.SIGTERM) -> None:
    """Make SIGTERM raise ``SystemExit(code)`` in the main thread, once, so ``finally`` blocks and context
    managers run (143 = 128 + 15, the shell's code for death by SIGTERM). A second SIGTERM during the
    clean-up gets the default action again (the process dies at once; its children go with it through
    :func:`die_with_parent`). Call it from the main thread (``signal.signal`` requires it).
    """

    def handler(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise SystemExit(code)

    signal.signal(signal.SIGTERM, handler)
