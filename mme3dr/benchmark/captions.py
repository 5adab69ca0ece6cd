"""TRELLIS captions -> prompts: read ``Toys4k.csv`` (or any TRELLIS metadata CSV) and attach prompts.

Light module (standard library only; ``huggingface_hub`` is imported lazily by ``fetch_captions``).

TRELLIS-500K's ``Toys4k.csv`` has one row per object with at least ``sha256`` (of the object's source
file), ``file_identifier`` (``<category>/<name>_NNN/<name>_NNN.blend``) and ``captions`` (a JSON list of
strings, longest first), plus other columns we ignore. The prompt rule is design.md §4:
**captions[1] when present, else captions[0]** (the paper's rose prompt is that rose's captions[1]).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from mme3dr.benchmark.taxonomy import Case
from mme3dr.errors import UserError

__all__ = [
    "CAPTIONS_FILE",
    "CAPTIONS_REPO",
    "CaptionsError",
    "CaptionRecord",
    "CaptionTable",
    "attach_prompts",
    "default_captions_path",
    "fetch_captions",
    "prompt_from_captions",
    "prompt_sha256",
    "read_captions_csv",
]

CAPTIONS_REPO = "JeffreyXiang/TRELLIS-500K"
CAPTIONS_FILE = "Toys4k.csv"
CAPTIONS_URL = f"https://huggingface.co/datasets/{CAPTIONS_REPO}/resolve/main/{CAPTIONS_FILE}"
# the file itself (…/resolve/…), not the web page that shows it (…/blob/…)
REQUIRED_COLUMNS = ("sha256", "captions")


class CaptionsError(UserError, ValueError):
    """A captions CSV that cannot be used; the message says what is wrong and what to do."""


def default_captions_path() -> Path:
    """``$MME3DR_HOME/toys4k/Toys4k.csv`` (``MME3DR_HOME`` defaults to ``~/.cache/mme3dr``)."""
    home = Path(os.environ.get("MME3DR_HOME", Path.home() / ".cache" / "mme3dr"))
    return home / "toys4k" / CAPTIONS_FILE


def prompt_from_captions(captions: list[str]) -> str | None:
    """captions[1] if present, else captions[0]; ``None`` for an empty list (design.md §4).

    >>> prompt_from_captions(["A long caption.", "A shorter one.", "Short."])
    'A shorter one.'
    >>> prompt_from_captions(["Only one."])
    'Only one.'
    """
    if len(captions) >= 2:
        return captions[1]
    return captions[0] if captions else None


def prompt_sha256(prompt: str) -> str:
    """sha256 of the prompt's UTF-8 bytes (recorded per sample in samples.jsonl)."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CaptionRecord:
    """One CSV row: ``captions`` parsed from JSON; ``row`` keeps every column as read."""

    sha256: str
    file_identifier: str | None
    captions: tuple[str, ...]
    row: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def prompt(self) -> str | None:
        return prompt_from_captions(list(self.captions))


@dataclass
class CaptionTable:
    """Rows of a captions CSV indexed by ``file_identifier`` and by ``sha256``; ``problems`` lists rows
    that could not be read (one line each), which are skipped."""

    path: Path
    by_identifier: dict[str, CaptionRecord]
    by_sha256: dict[str, CaptionRecord]
    problems: list[str]

    def lookup(self, case: Case) -> CaptionRecord | None:
        """The row of a case: by ``file_identifier`` first, then by the case's ``sha256`` if it has one."""
        rec = self.by_identifier.get(case.file_identifier)
        if rec is None and case.sha256:
            rec = self.by_sha256.get(case.sha256)
        return rec


def read_captions_csv(path: str | Path) -> CaptionTable:
    """Read a TRELLIS metadata CSV (``sha256``, ``captions``; ``file_identifier`` when present).

    Raises ``CaptionsError`` for a missing file or missing columns; bad rows go to ``problems``.
    """
    p = Path(path)
    if not p.is_file():
        raise CaptionsError(
            f"captions file not found: {p}; run `mme3dr data fetch-captions` or download {CAPTIONS_FILE} "
            f"from {CAPTIONS_URL} and place it at {p}"
        )
    csv.field_size_limit(1 << 24)  # caption lists are long JSON strings
    with open(p, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        missing = [c for c in REQUIRED_COLUMNS if c not in cols]
        if missing:
            raise CaptionsError(
                f"{p}: missing column(s) {', '.join(missing)} (found: {', '.join(cols) or 'none'}); expected "
                f"TRELLIS's {CAPTIONS_FILE} with columns sha256, file_identifier, captions"
            )
        by_id: dict[str, CaptionRecord] = {}
        by_sha: dict[str, CaptionRecord] = {}
        problems: list[str] = []
        for lineno, row in enumerate(reader, start=2):
            raw = row.get("captions") or ""
            try:
                caps = json.loads(raw) if raw.strip() else []
            except json.JSONDecodeError:
                problems.append(f"{p.name}:{lineno}: captions is not a JSON list; row skipped")
                continue
            if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
                problems.append(f"{p.name}:{lineno}: captions must be a JSON list of strings; row skipped")
                continue
            rec = CaptionRecord(
                sha256=(row.get("sha256") or "").strip(),
                file_identifier=(row.get("file_identifier") or "").strip() or None,
                captions=tuple(caps),
                row=dict(row),
            )
            if rec.file_identifier:
                by_id[rec.file_identifier] = rec
            if rec.sha256:
                by_sha[rec.sha256] = rec
    return CaptionTable(p, by_id, by_sha, problems)


def attach_prompts(cases: list[Case] | tuple[Case, ...], table: CaptionTable) -> tuple[list[Case], list[str]]:
    """Cases with ``sha256`` and ``prompt`` filled from the table, and the ids of cases left without one.

    A case whose manifest already names a ``sha256`` that disagrees with the CSV keeps its own and is
    reported as missing (the object is not the one the captions describe).
    """
    out: list[Case] = []
    missing: list[str] = []
    for c in cases:
        rec = table.lookup(c)
        if rec is None or rec.prompt is None or (c.sha256 and rec.sha256 and c.sha256 != rec.sha256):
            out.append(c)
            missing.append(c.case_id)
            continue
        out.append(replace(c, sha256=c.sha256 or rec.sha256 or None, prompt=rec.prompt))
    return out, missing


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    """A quick TCP check of the hub endpoint, so offline machines get the manual instruction at once
    instead of after huggingface_hub's ~20 s of retries."""
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def fetch_captions(dest: str | Path | None = None) -> Path:
    """Download TRELLIS-500K ``Toys4k.csv`` from the Hugging Face hub to ``dest`` (a file path).

    Offline, or without ``huggingface_hub``, raises ``CaptionsError`` saying exactly which file to
    place where.
    """
    target = Path(dest) if dest is not None else default_captions_path()
    if target.is_dir() or target.suffix.lower() != ".csv":
        target = target / CAPTIONS_FILE
    manual = (
        f"download {CAPTIONS_FILE} from {CAPTIONS_URL} (dataset {CAPTIONS_REPO}) and place it at {target}"
    )
    try:
        from huggingface_hub import hf_hub_download  # lazy: optional dependency
    except ImportError as e:
        raise CaptionsError(f"huggingface_hub is not installed ({e}); {manual}") from None
    if not _hub_reachable():
        raise CaptionsError(f"the Hugging Face hub is not reachable from here (offline); {manual}")
    try:
        got = hf_hub_download(
            repo_id=CAPTIONS_REPO, filename=CAPTIONS_FILE, repo_type="dataset", local_dir=str(target.parent)
        )
    except Exception as e:  # offline, blocked, or hub error: all end in the same manual instruction
        raise CaptionsError(f"could not download {CAPTIONS_FILE} ({type(e).__name__}); {manual}") from None
    got_path = Path(got)
    if got_path.resolve() != target.resolve():
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(got_path, target)
    return target
