"""The mesh-token vocabulary (``<mesh-start>``, ``<mesh0>`` ... ``<meshK-1>``, ``<mesh-end>``), format, parse.

ShapeLLM-Omni writes a shape as ``<mesh-start>`` + N x ``<mesh{i}>`` + ``<mesh-end>`` (N = 1024, K = 8192;
shapellm-facts.md). Token ids are always read back from the tokenizer (``convert_tokens_to_ids``), never
hard-coded: the second-hand ids (151665 ... 159858) are only what the real checkpoint is said to use.

A malformed segment raises :class:`MeshTokenError` whose ``reason`` is one of :data:`MESH_TOKEN_REASONS`.
The authors' parser pads a short output by repeating the last code; here that is only the explicit
``pad="repeat"`` option (design.md §6: "never silently padded").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = [
    "MESH_END",
    "MESH_START",
    "MESH_TOKEN_REASONS",
    "MeshTokenError",
    "MeshVocab",
    "add_mesh_tokens",
    "code_token",
    "format_mesh_segment",
    "mesh_segment_span",
    "parse_mesh_segment",
    "parse_mesh_text",
]

MESH_START = "<mesh-start>"
MESH_END = "<mesh-end>"

#: Why a segment is malformed: no ``<mesh-start>``; no ``<mesh-end>`` after it; a non-mesh token inside
#: it; fewer / more than N codes; a second ``<mesh-start>`` in the output.
MESH_TOKEN_REASONS: tuple[str, ...] = (
    "no_start", "no_end", "stray_text", "too_short", "too_long", "multiple_segments",
)


def code_token(i: int) -> str:
    """The token string of code ``i``: ``"<mesh{i}>"``."""
    return f"<mesh{int(i)}>"


class MeshTokenError(ValueError):
    """A malformed mesh segment. ``reason`` is one of :data:`MESH_TOKEN_REASONS`; ``detail`` says where."""

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in MESH_TOKEN_REASONS:
            raise ValueError(f"unknown mesh-token reason {reason!r}")
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass(frozen=True)
class MeshVocab:
    """The mesh tokens' ids in one tokenizer.

    - ``start_id`` / ``end_id``: ids of ``<mesh-start>`` / ``<mesh-end>``;
    - ``code_ids``: ``code_ids[i]`` is the id of ``<mesh{i}>``, i in [0, K).
    """

    start_id: int
    end_id: int
    code_ids: tuple[int, ...]
    _id_to_code: dict[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "code_ids", tuple(int(i) for i in self.code_ids))
        ids = [self.start_id, self.end_id, *self.code_ids]
        if len(set(ids)) != len(ids):
            raise ValueError("mesh token ids are not distinct")
        object.__setattr__(self, "_id_to_code", {t: i for i, t in enumerate(self.code_ids)})

    @property
    def codebook_size(self) -> int:
        """K, the number of ``<mesh{i}>`` tokens."""
        return len(self.code_ids)

    @property
    def all_ids(self) -> tuple[int, ...]:
        """Every mesh-token id: start, end, then the K codes."""
        return (self.start_id, self.end_id, *self.code_ids)

    def codes_to_ids(self, codes: Sequence[int] | np.ndarray) -> list[int]:
        """(N,) codes in [0, K) -> the N token ids (without start/end)."""
        table = self.code_ids
        return [table[int(c)] for c in codes]

    def code_of(self, token_id: int) -> int | None:
        """The code of a token id, or ``None`` when it is not a ``<mesh{i}>`` token."""
        return self._id_to_code.get(int(token_id))

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, codebook_size: int) -> MeshVocab:
        """Read the ids with ``convert_tokens_to_ids``; raise ``ValueError`` naming missing tokens."""
        names = [MESH_START, MESH_END] + [code_token(i) for i in range(codebook_size)]
        ids = tokenizer.convert_tokens_to_ids(names)
        unk = getattr(tokenizer, "unk_token_id", None)
        missing = [n for n, i in zip(names, ids, strict=True) if i is None or (unk is not None and i == unk)]
        if missing:
            raise ValueError(
                f"the tokenizer lacks {len(missing)} of the {len(names)} mesh tokens (first: {missing[:3]}); "
                "load ShapeLLM-Omni's tokenizer, or add them with ar3d_r1.policy.mesh_tokens.add_mesh_tokens"
            )
        return cls(start_id=ids[0], end_id=ids[1], code_ids=tuple(ids[2:]))


def add_mesh_tokens(tokenizer: Any, codebook_size: int) -> MeshVocab:
    """Add ``<mesh-start>``, ``<mesh0>`` ... ``<mesh{K-1}>``, ``<mesh-end>`` (those not yet present) as
    whole tokens, and return the ids read back from the tokenizer.

    They are added as ordinary (non-special) added tokens, so ``decode(..., skip_special_tokens=True)``
    keeps them in the text. Resize the model's embeddings to ``len(tokenizer)`` afterwards.
    """
    names = [code_token(i) for i in range(codebook_size)] + [MESH_START, MESH_END]
    vocab = tokenizer.get_vocab()
    new = [n for n in names if n not in vocab]
    if new:
        tokenizer.add_tokens(new)
    return MeshVocab.from_tokenizer(tokenizer, codebook_size)


def format_mesh_segment(codes: Sequence[int] | np.ndarray) -> str:
    """(N,) integer codes -> ``"<mesh-start><mesh{c0}>...<mesh{cN-1}><mesh-end>"``."""
    return MESH_START + "".join(code_token(c) for c in np.asarray(codes, dtype=np.int64).ravel()) + MESH_END


def mesh_segment_span(token_ids: Sequence[int] | np.ndarray, vocab: MeshVocab) -> tuple[int, int] | None:
    """Positions ``(start, end)`` of the first ``<mesh-start>`` and the first ``<mesh-end>`` after it
    (``end`` is ``len(token_ids)`` when there is none), or ``None`` without a start.

    ``token_ids[start:end + 1]`` is the segment with its delimiters; the trainer uses it to tell
    reasoning tokens from mesh tokens.
    """
    ids = np.asarray(token_ids, dtype=np.int64).ravel()
    starts = np.flatnonzero(ids == vocab.start_id)
    if not len(starts):
        return None
    s = int(starts[0])
    ends = np.flatnonzero(ids[s + 1:] == vocab.end_id)
    return s, (s + 1 + int(ends[0])) if len(ends) else len(ids)


PadMode = Literal["error", "repeat"]


def _finish(codes: list[int], n_tokens: int, pad: PadMode, truncated: bool) -> np.ndarray:
    if len(codes) > n_tokens:
        raise MeshTokenError("too_long", f"{len(codes)} codes, expected {n_tokens}")
    if len(codes) < n_tokens:
        if pad != "repeat" or not codes:
            reason = "no_end" if truncated and pad != "repeat" else "too_short"
            raise MeshTokenError(reason, f"{len(codes)} codes, expected {n_tokens}"
                                 + (" (output ended before <mesh-end>)" if truncated else ""))
        # The authors' parser: repeat the last code up to N (an explicit option only).
        codes = codes + [codes[-1]] * (n_tokens - len(codes))
    elif truncated and pad != "repeat":
        raise MeshTokenError("no_end", f"{n_tokens} codes but no {MESH_END}")
    return np.asarray(codes, dtype=np.int64)


def parse_mesh_segment(
    token_ids: Sequence[int] | np.ndarray, vocab: MeshVocab, n_tokens: int, *, pad: PadMode = "error"
) -> np.ndarray:
    """Token ids of one output (reasoning text may come before the segment, eos/padding after it) ->
    (N,) int64 codes in [0, K).

    Rules: the first ``<mesh-start>`` opens the segment (none: ``no_start``); every token up to
    ``<mesh-end>`` must be a ``<mesh{i}>`` (else ``stray_text``); no ``<mesh-end>`` before the output
    ends: ``no_end``; fewer / more than ``n_tokens`` codes: ``too_short`` / ``too_long``; a second
    ``<mesh-start>`` anywhere: ``multiple_segments``. With ``pad="repeat"`` (the authors' behaviour) a
    short or unterminated segment is padded by repeating its last code instead.

    Raises:
        MeshTokenError: with ``reason`` in :data:`MESH_TOKEN_REASONS`.
    """
    if pad not in ("error", "repeat"):
        raise ValueError(f"pad must be 'error' or 'repeat', got {pad!r}")
    ids = np.asarray(token_ids, dtype=np.int64).ravel()
    span = mesh_segment_span(ids, vocab)
    if span is None:
        raise MeshTokenError("no_start", f"no {MESH_START} among {len(ids)} tokens")
    s, e = span
    if np.any(ids[s + 1:] == vocab.start_id):
        raise MeshTokenError("multiple_segments", f"a second {MESH_START} after position {s}")
    codes: list[int] = []
    for pos in range(s + 1, e):
        code = vocab.code_of(ids[pos])
        if code is None:
            raise MeshTokenError("stray_text", f"token id {int(ids[pos])} at {pos} is not a mesh code")
        codes.append(code)
    return _finish(codes, n_tokens, pad, truncated=e == len(ids))


_TOKEN_RE = re.compile(r"<mesh(-start|-end|\d+)>")


def parse_mesh_text(text: str, n_tokens: int, codebook_size: int, *, pad: PadMode = "error") -> np.ndarray:
    """The same rules as :func:`parse_mesh_segment` on decoded text (e.g. a server's reply).

    Whitespace between mesh tokens is allowed (tokenizers may add it when decoding); any other text inside
    the segment, or a code >= ``codebook_size``, is ``stray_text``.
    """
    if pad not in ("error", "repeat"):
        raise ValueError(f"pad must be 'error' or 'repeat', got {pad!r}")
    s = text.find(MESH_START)
    if s < 0:
        raise MeshTokenError("no_start", f"no {MESH_START} in {len(text)} characters")
    body_start = s + len(MESH_START)
    if text.find(MESH_START, body_start) >= 0:
        raise MeshTokenError("multiple_segments", f"a second {MESH_START} after character {s}")
    e = text.find(MESH_END, body_start)
    body = text[body_start: e if e >= 0 else len(text)]
    codes: list[int] = []
    pos = 0
    for m in _TOKEN_RE.finditer(body):
        gap = body[pos:m.start()]
        if gap.strip() or not m.group(1).isdigit() or int(m.group(1)) >= codebook_size:
            raise MeshTokenError("stray_text", f"{(gap.strip() or m.group(0))[:40]!r} inside the segment")
        codes.append(int(m.group(1)))
        pos = m.end()
    if body[pos:].strip():
        raise MeshTokenError("stray_text", f"{body[pos:].strip()[:40]!r} inside the segment")
    return _finish(codes, n_tokens, pad, truncated=e < 0)
