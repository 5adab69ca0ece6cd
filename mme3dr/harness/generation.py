"""Calling an adapter safely and classifying what it returned.

Light module. ``mme3dr evaluate`` calls the adapter in a child process
(:class:`mme3dr.harness.adapter_process.AdapterProcess`: a crash costs only its requests,
``adapter_crashed``); ``generate_batch`` calls it in this process, in a worker thread with a timeout.
Both classify the answer with :func:`classify_return` and never raise for adapter misbehaviour; every
request comes back as a ``GenerationOutcome`` with either an asset or a failure reason from
``mme3dr.results.FAILURE_REASONS``:

- ``adapter_error``: ``generate`` raised (the detail is ``"<ExceptionType>: <message>"``);
- ``adapter_timeout``: no answer within ``timeout`` seconds per request of the batch. Python cannot kill
  a thread, so the call runs in a *daemon* thread that is abandoned: the run goes on and the process can
  still exit; the abandoned call writes only into its own request directories, which are never reused;
- ``adapter_wrong_count``: not exactly one asset per request (the whole batch fails: with a wrong count
  the harness cannot know which asset answers which request);
- ``adapter_bad_return``: an element is not an ``Asset`` or a path;
- ``missing_output``: the returned path does not exist (the detail is the adapter's own
  ``Asset.meta["missing"]`` when it gives one, e.g. the folder adapter's "the folder has no file for
  case X");
- ``asset_refused``: the adapter refused the file it found (``Asset.meta["refused"]`` says why: two
  files match the case, or a symlink leaves the adapter's folder).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mme3dr.models.protocol import Asset, GenerationRequest, TextTo3DModel

__all__ = ["GenerationOutcome", "classify_return", "generate_batch"]


@dataclass(frozen=True)
class GenerationOutcome:
    request: GenerationRequest
    asset: Asset | None
    failure: str | None = None
    detail: str | None = None
    seconds: float | None = None


def _fail(requests: Sequence[GenerationRequest], reason: str, detail: str, seconds: float | None):
    return [GenerationOutcome(r, None, reason, detail, seconds) for r in requests]


def _as_asset(item: object) -> Asset | None:
    if isinstance(item, Asset):
        return item
    if isinstance(item, (str, Path)):
        return Asset(path=Path(item))
    return None


def generate_batch(
    model: TextTo3DModel, requests: Sequence[GenerationRequest], timeout: float | None = None
) -> list[GenerationOutcome]:
    """Call ``model.generate(requests)`` with a per-request ``timeout`` (seconds; ``None`` = no limit)."""
    requests = list(requests)
    box: dict[str, object] = {}

    def call() -> None:
        try:
            box["assets"] = model.generate(requests)
        except BaseException as e:  # noqa: BLE001 - any adapter failure is recorded, not raised
            box["error"] = e

    t0 = time.perf_counter()
    worker = threading.Thread(target=call, name="mme3dr-generate", daemon=True)
    worker.start()
    worker.join(None if timeout is None else timeout * len(requests))
    elapsed = time.perf_counter() - t0
    share = elapsed / max(1, len(requests))
    if worker.is_alive():
        return _fail(requests, "adapter_timeout",
                     f"no assets after {timeout:g} s per request; raise --timeout if the model is slow", None)
    if "error" in box:
        e = box["error"]
        return classify_return(requests, error=f"{type(e).__name__}: {e}", share=share)
    return classify_return(requests, items=box.get("assets"), share=share)


def classify_return(requests: Sequence[GenerationRequest], *, items: object = None, error: str | None = None,
                    share: float | None = None) -> list[GenerationOutcome]:
    """One outcome per request from what ``generate`` did: raised (``error``, ``"Type: message"``) or
    returned ``items``. ``share`` is the call's seconds per request (used when an asset has none).
    Elements that are neither an ``Asset`` nor a path are ``adapter_bad_return``."""
    requests = list(requests)
    if error is not None:
        return _fail(requests, "adapter_error", error[:2000], share)
    try:
        items = list(items)  # type: ignore[arg-type]
    except TypeError:
        name = getattr(items, "type_name", None) or type(items).__name__
        return _fail(requests, "adapter_bad_return", f"generate() returned {name}, not a list of Asset",
                     share)
    if len(items) != len(requests):
        return _fail(requests, "adapter_wrong_count",
                     f"generate() returned {len(items)} assets for {len(requests)} requests", share)
    out = []
    for request, item in zip(requests, items, strict=True):
        asset = _as_asset(item)
        if asset is None:
            name = getattr(item, "type_name", None) or type(item).__name__
            out.append(GenerationOutcome(request, None, "adapter_bad_return",
                                         f"got {name}, expected Asset or a path", share))
        elif isinstance(asset.meta, dict) and asset.meta.get("refused"):
            seconds = asset.seconds if asset.seconds is not None else share
            out.append(GenerationOutcome(request, None, "asset_refused", str(asset.meta["refused"]), seconds))
        elif not Path(asset.path).is_file():
            detail = asset.meta.get("missing") if isinstance(asset.meta, dict) else None
            detail = str(detail or f"the adapter returned {Path(asset.path).name!r}, which does not exist")
            seconds = asset.seconds if asset.seconds is not None else share
            out.append(GenerationOutcome(request, None, "missing_output", detail[:2000], seconds))
        else:
            out.append(GenerationOutcome(request, asset, None, None,
                                         asset.seconds if asset.seconds is not None else share))
    return out
