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

Grandchildren: the adapter process may start processes of its own and detach them (a double fork,
``setsid``), which re-parents them to PID 1 and out of reach of the signal above. :func:`keep_tree`
splits the adapter's process in two at its start: a small *keeper* (the process the harness started)
that becomes a child subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``, ``man 2 prctl``: orphans anywhere below
it are re-parented to it instead of PID 1, so every detached descendant stays in its tree), and the
adapter process proper, forked from it. When the adapter process ends (it returns, crashes or is
killed), or the keeper is sent SIGTERM (the harness stopping it, or the harness dying: the keeper's
death signal is SIGTERM), the keeper SIGKILLs every process left below it and exits with the adapter's
own exit status or signal. Linux only; elsewhere the adapter runs without a keeper.

The parent's side: Python runs no ``finally`` block and no context manager exit on an unhandled SIGTERM
(the default action kills the process). A command that holds resources to release calls
:func:`exit_on_sigterm` so SIGTERM (``kill``, a batch scheduler's stop) becomes an ordinary
``SystemExit(143)`` that unwinds the stack.

Light module: standard library only.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import signal
import sys
import threading
import time

__all__ = ["descendants", "die_with_parent", "exit_on_sigterm", "keep_tree", "kill_descendants",
           "process_state", "run_in_kept_tree", "spawn_context"]

_PR_SET_PDEATHSIG, _PR_SET_CHILD_SUBREAPER = 1, 36  # linux/prctl.h
_POLL_S = 0.5


def spawn_context():
    """The multiprocessing context for every child of mme3dr: ``spawn`` (a fresh interpreter; forking a
    process that holds OpenGL or torch threads is unsafe)."""
    return mp.get_context("spawn")


def _prctl(option: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _set_pdeathsig(signum: int = signal.SIGKILL) -> bool:
    return _prctl(_PR_SET_PDEATHSIG, int(signum))


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


_STATES = {"R": "running", "S": "sleeping", "D": "disk wait", "T": "stopped", "t": "stopped (traced)",
           "Z": "exited"}


def process_state(pid: int) -> str:
    """What process ``pid`` is doing, from ``/proc/<pid>/stat``: ``running``, ``sleeping``, ``disk wait``,
    ``stopped`` (SIGSTOP), ``stopped (traced)``, ``exited`` (a zombie), or ``unknown``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            letter = f.read().rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, IndexError):
        return "unknown"
    return _STATES.get(letter, letter)


def _parents() -> dict[int, tuple[int, str]]:
    """{pid: (parent pid, state letter)} of every process in /proc (empty where there is no /proc)."""
    out = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return out
    for name in entries:
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
                out[int(name)] = (int(fields[1]), fields[0].decode())
            except (OSError, IndexError, ValueError):
                continue
    return out


def descendants(pid: int) -> list[int]:
    """Live (not zombie) processes below ``pid``: children, grandchildren, ... (from /proc)."""
    table = _parents()
    children: dict[int, list[int]] = {}
    for p, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(p)
    out, stack = [], list(children.get(pid, []))
    while stack:
        p = stack.pop()
        if table[p][1] != "Z":
            out.append(p)
        stack.extend(children.get(p, []))
    return out


def _reap() -> None:
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                return
        except ChildProcessError:
            return


def kill_descendants(timeout: float = 5.0) -> int:
    """SIGKILL every process below this one until none is left (or ``timeout`` seconds pass), reaping
    the children; returns how many were killed. In a subreaper, the children of a killed process come
    here and are found by the next pass; stopped processes die too (SIGKILL needs no SIGCONT)."""
    killed, deadline = 0, time.monotonic() + timeout
    while True:
        _reap()
        live = descendants(os.getpid())
        if not live or time.monotonic() > deadline:
            return killed
        for pid in live:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
        time.sleep(0.01)


class _Stop(Exception):
    pass


def _keeper(child: int, parent_pid: int) -> None:
    """The keeper's life (see the module docstring); never returns."""

    def stop(signum, frame):
        raise _Stop

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the harness's to handle
    signal.signal(signal.SIGTERM, stop)
    status = None
    try:
        _set_pdeathsig(signal.SIGTERM)
        # No thread and no blocking wait here: a signal may be delivered to any thread, and one that
        # lands beside a main thread blocked in waitpid() would never run the handler.
        while status is None:
            try:
                pid, st = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == child:
                status = st
            elif pid == 0:
                if os.getppid() != parent_pid:
                    raise _Stop
                time.sleep(0.05)
    except _Stop:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if status is None:  # (once reaped, its pid may belong to someone else)
            with contextlib.suppress(OSError):
                os.kill(child, signal.SIGKILL)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # nothing may interrupt the clean-up
    kill_descendants()
    if status is not None and os.WIFSIGNALED(status):  # mirror a crash: the harness reports the signal
        sig = os.WTERMSIG(status)
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    os._exit(os.WEXITSTATUS(status) if status is not None and os.WIFEXITED(status) else 128 + 15)


def keep_tree(parent_pid: int, close_in_keeper=()) -> bool:
    """Split this process into a keeper and the process that goes on (module docstring). Returns in the
    process that goes on (which then dies with the keeper, :func:`die_with_parent`), True when a keeper
    watches it. ``close_in_keeper``: objects with ``close()`` (pipes to the harness) that only the process
    that goes on may hold. Call it first thing in a fresh process with no other thread. Linux only: on
    other systems, or when the subreaper cannot be set, it does nothing and returns False."""
    if not _prctl(_PR_SET_CHILD_SUBREAPER, 1):
        die_with_parent(parent_pid)
        return False
    keeper = os.getpid()
    child = os.fork()
    if child == 0:
        die_with_parent(keeper)
        return True
    for item in close_in_keeper:
        with contextlib.suppress(OSError):
            item.close()
    _keeper(child, parent_pid)
    return False  # never reached: the keeper exits


def run_in_kept_tree(parent_pid: int, target: str, *args) -> None:
    """A spawned process's target: :func:`keep_tree` first, before this process imports anything of its
    own (so no library has started a thread the fork would lose; spawn may already have re-imported the
    parent's ``__main__``), then ``target``
    (``"package.module:function"``) called with ``args``. Pipes to the harness (connections) are what
    only the process that goes on may keep: any connection among ``args`` is closed in the keeper."""
    import importlib

    keep_tree(parent_pid, close_in_keeper=[a for a in args if hasattr(a, "close") and hasattr(a, "recv")])
    module, _, name = target.partition(":")
    getattr(importlib.import_module(module), name)(*args)
