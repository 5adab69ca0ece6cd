"""The one class of user mistakes: bad flags, unusable files, a run folder in the wrong state.

Every error a user can fix by changing what they typed or the files they pointed at derives from
:class:`UserError`; the command line catches exactly this class and prints its message as one
``error:`` line (exit 2). Anything else that escapes is a bug and keeps its traceback.

The specific classes (``BenchmarkInputError``, ``ModelSpecError``, ``RunStateError``, ...) also keep
their historical base (``ValueError``, ``RuntimeError``, ``FileNotFoundError``) so that code catching
those still works.
"""

from __future__ import annotations

__all__ = ["UserError", "one_line"]


class UserError(Exception):
    """A mistake in the user's input; the message names the flag, file or key and what to do."""


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (``KeyError`` keeps its message without the repr quotes;
    a multi-line message such as ``WeightsNotFoundError``'s list of fixes is joined with spaces)."""
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    parts = [line[2:] if line.startswith("- ") else line for line in lines]
    return " ".join(parts)
