"""Where a hub model's checkpoint folder comes from (the Shap-E and LLaMA-Mesh adapters).

:func:`resolve_checkpoint` turns a ``checkpoint=`` model argument into a local folder, first hit wins:

1. an existing directory: used as is, once it holds every required file;
2. ``<weights dir>/<owner--name>/`` for a hub id, in the weights code's local directories
   (:func:`mme3dr.features.weights.local_dirs`: ``weights_dir=`` or ``$MME3DR_WEIGHTS_DIR``, then
   ``~/.cache/mme3dr/weights``);
3. the Hugging Face cache (``$HF_HUB_CACHE``), a complete snapshot of the repo;
4. a download into the Hugging Face cache, unless offline (``HF_HUB_OFFLINE=1``, or the hub does not
   accept a connection within 3 s).

Otherwise :class:`~mme3dr.features.weights.WeightsNotFoundError` names the folder to fill and the command
that fills it, at once. Light module (``huggingface_hub`` is imported only for a hub id).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

from mme3dr.features.weights import WeightsNotFoundError, _reachable, is_offline, local_dirs

__all__ = ["checkpoint_revision", "is_hub_id", "resolve_checkpoint"]


def is_hub_id(source: str) -> bool:
    """``owner/name`` (one slash, not a path that starts with ``.``, ``/`` or ``~``)."""
    return source.count("/") == 1 and not source.startswith((".", "/", "~")) and all(source.split("/"))


def _missing(folder: Path, required: Sequence[str]) -> list[str]:
    return [name for name in required if not (folder / name).exists()]


def _fill_message(what: str, repo: str, folder: Path, reason: str) -> str:
    return (f"{what} weights {repo!r} not found ({reason}). To fix, fill the folder {folder}: on a machine "
            f"with network run `hf download {repo} --local-dir {folder}` and copy it here, or pass "
            "checkpoint=DIR (a folder holding the repo's files), or put the repo in the Hugging Face cache")


def resolve_checkpoint(source: str, required: Sequence[str], *, what: str,
                       weights_dir: str | Path | None = None) -> tuple[Path, str]:
    """The local folder of ``source`` (a directory or a hub id) and how it was found
    (``"directory"``, ``"weights-dir"``, ``"hf-cache"``, ``"download"``).

    ``required``: paths relative to the folder that must exist (``model_index.json``, ``config.json``);
    ``what``: the model's name for messages (``"Shap-E"``).

    Raises:
        WeightsNotFoundError: a directory lacks a required file, or a hub id is in no local folder or
            cache and cannot be downloaded; the message names the folder to fill.
        ValueError: ``source`` is neither an existing directory nor a hub id.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        missing = _missing(path, required)
        if missing:
            raise WeightsNotFoundError(f"{what} checkpoint folder {path} lacks {', '.join(missing)}; copy "
                                       "the hub repo's files there (`hf download OWNER/NAME --local-dir "
                                       f"{path}`)")
        return path, "directory"
    if not is_hub_id(source):
        raise ValueError(f"{what}: checkpoint {source!r} is neither a directory nor a hub id (owner/name)")
    dirs = local_dirs(weights_dir)
    key = source.replace("/", "--")
    for folder in (d / key for d in dirs):
        if folder.is_dir() and not _missing(folder, required):
            return folder, "weights-dir"
    from huggingface_hub import snapshot_download

    target = dirs[0] / key
    try:
        hit = Path(snapshot_download(source, local_files_only=True))
        if not _missing(hit, required):
            return hit, "hf-cache"
    except Exception:  # noqa: BLE001 - not in the cache (the library raises several types)
        pass
    if is_offline():
        raise WeightsNotFoundError(_fill_message(what, source, target, "offline: HF_HUB_OFFLINE is set"))
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    if not _reachable(host):
        raise WeightsNotFoundError(_fill_message(what, source, target, f"no network: {host} is unreachable"))
    try:
        return Path(snapshot_download(source, etag_timeout=10)), "download"
    except Exception as exc:  # noqa: BLE001 - network errors come in many library-specific types
        reason = f"download failed: {exc}"[:300]
        raise WeightsNotFoundError(_fill_message(what, source, target, reason)) from exc


def checkpoint_revision(checkpoint: str, folder: Path, weight_files: Sequence[str]) -> str:
    """What results record as the model's revision: ``<hub id>@<commit[:12]>`` for a Hugging Face cache
    snapshot (its folder is named by the commit), else ``<folder name>@<sha256[:12]>`` of the first of
    ``weight_files`` that exists in ``folder``, else ``checkpoint`` as given."""
    from mme3dr.hashing import file_sha256

    if folder.parent.name == "snapshots":
        return f"{checkpoint}@{folder.name[:12]}"
    for name in weight_files:
        if (folder / name).is_file():
            return f"{folder.name}@{file_sha256(folder / name)[:12]}"
    return checkpoint
