"""On-disk response cache: ask a judge each question once, across re-runs, resumes and processes.

Key = sha256 of the canonical JSON of::

    {"model": server model id, "template_sha256": ..., "text_sha256": sha256 of the filled-in prompt,
     "images": [sha256 of each encoded image, in order], "decoding": the decoding settings sent}

The issue's key is (model id, template sha256, image hashes, decoding settings); the filled-in text is
added because one template asks different questions for different prompts. The server URL is left
out on purpose: the same model answers the same question wherever it is served.

One JSON file per key, ``<root>/<key[:2]>/<key>.json``, written atomically (temp file + rename), so a
killed run leaves either a whole entry or none, and parallel writers of the same key cannot corrupt it.
Only replies the server returned (HTTP 200 with a message holding text, at most the client's
``max_reply_bytes``) are stored; transport failures are not, so they are asked again. A reply that
later fails to parse, or that the server marked cut short (``finish_reason`` "length"), stays cached
with its ``finish_reason``: the server did say it, and the same question gets the same failure.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


def cache_key(model: str, template_sha256: str, text: str, image_sha256s: list[str], decoding: dict) -> str:
    """Hex sha256 of the canonical key JSON (sorted keys, no whitespace)."""
    payload = {
        "model": model,
        "template_sha256": template_sha256,
        "text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "images": list(image_sha256s),
        "decoding": decoding,
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CachedReply:
    """A stored reply: ``content`` (message text), ``finish_reason`` and ``usage`` as the server sent them."""

    content: str
    finish_reason: str | None = None
    usage: dict | None = None


class ResponseCache:
    """Reply store under ``root``. ``get`` returns ``None`` on a miss or an unreadable entry."""

    def __init__(self, root: str | Path, max_entry_bytes: int = 4 * 1024**2):
        self.root = Path(root)
        self.max_entry_bytes = max_entry_bytes  # a larger file is not read (a miss): no reply is that long

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> CachedReply | None:
        path = self.path(key)
        try:
            if path.stat().st_size > self.max_entry_bytes:
                return None
            entry = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(entry.get("content"), str):
                return None
            return CachedReply(entry["content"], entry.get("finish_reason"), entry.get("usage"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            return None  # a damaged entry is a miss; the next put rewrites it whole

    def put(self, key: str, reply: CachedReply, meta: dict | None = None) -> None:
        """Store ``reply`` (and ``meta``, e.g. template id and model, for humans reading the file)."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = {"content": reply.content, "finish_reason": reply.finish_reason, "usage": reply.usage,
                 "meta": meta or {}}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(entry, fh, ensure_ascii=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("*/*.json")) if self.root.is_dir() else 0
