"""Output folders and files: a clear error for a folder that cannot be used, and files that a reader
never sees half-written, even when the disk fills up.

:func:`prepare_output_dir` checks an ``--out`` folder before anything is written: a path naming a
regular file, a path under a file, or one that cannot be created or written to (``/proc/...``, a
read-only mount) raises :class:`OutputDirError` with one line saying what to pass instead.

Every file mme3dr writes for a run (``run.json``, state records, ``samples.jsonl``, ``results.json``,
``shard.json``, feature arrays, the report) goes through :func:`atomic_path`: the bytes go to a
temporary file beside the target, which replaces the target in one ``os.replace`` only once it is
complete. A failed write (``ENOSPC``, ``EDQUOT``, a kill) leaves the old file or no file, never a cut
one, and the temporary file is removed again on any exception. A ``SIGKILL`` mid-write can leave a
``.<name>.<pid>.tmp`` file behind; it is never read, and the next write of that target replaces it.

:func:`is_disk_full` tells a full disk from other ``OSError``s, so the command line can end the run with
one clear line ("free space, then ``--resume``") instead of a traceback.

Light module: standard library only.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mme3dr.errors import UserError

__all__ = ["DISK_FULL_ERRNOS", "OutputDirError", "atomic_path", "atomic_write_bytes", "atomic_write_text",
           "is_disk_full", "prepare_output_dir"]

#: errno values meaning "no room to write": device full, quota exceeded, file size limit.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class OutputDirError(UserError, ValueError):
    """An output folder that cannot be used; the message names the flag, the reason and the fix."""


def prepare_output_dir(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Create ``path`` as a folder if needed and check that files can be written in it.

    Raises :class:`OutputDirError` (one line) when ``path`` is a regular file, lies under a regular
    file, or cannot be created or written to.
    """
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise OutputDirError(f"{flag} {p} is a file, not a folder; pass a folder path (it is created if "
                             "missing)")
    blocker = next((a for a in p.parents if a.exists() and not a.is_dir()), None)
    if blocker is not None:
        raise OutputDirError(f"{flag} {p}: {blocker} is a file, so no folder can be made under it; pass "
                             "another path")
    try:
        p.mkdir(parents=True, exist_ok=True)
        probe = p / f".mme3dr-write-test.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise OutputDirError(f"{flag} {p} cannot be used ({e.strerror or e}); pass a folder you can write "
                             "to") from None
    return p


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) is an ``OSError`` for a full disk or quota."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without an exception it replaces
    ``path`` (``os.replace``, atomic on POSIX), otherwise it is removed and the exception propagates.

    ``suffix`` is appended to the temporary name for writers that insist on an extension
    (``np.savez`` adds ``.npz`` to a name without one).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Process and thread in the name: two encoder threads may write the same features file at once.
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp{suffix}")
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_path`)."""
    atomic_write_bytes(path, text.encode("utf-8"))
