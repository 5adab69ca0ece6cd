"""Calling an adapter safely: a worker thread with a timeout, exceptions and bad returns recorded.

Light module. ``generate_batch`` never raises for adapter misbehaviour; every request comes back as a
``GenerationOutcome`` with either an asset or a failure reason from ``mme3dr.results.FAILURE_REASONS``:

- ``adapter_error``: ``generate`` raised (the detail is ``"<ExceptionType>: <message>"``);
- ``adapter_timeout``: no answer within ``timeout`` seconds per request of the batch. Python cannot kill
  a thread, so the call runs in a *daemon* thread that is abandoned: the run goes on and the process can
  still exit; the abandoned call writes only into its own request directories, which are never reused;
- ``adapter_wrong_count``: not exactly one asset per request (the whole batch fails: with a wrong count
  the harness cannot know which asset answers which request);
- ``adapter_bad_return``: an element is not an ``Asset`` or a path;
- ``missing_output``: the returned path does not exist.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mme3dr.models.protocol import Asset, GenerationRequest, TextTo3DModel

__all__ = ["GenerationOutcome", "generate_batch"]


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
        return _fail(requests, "adapter_error", f"{type(e).__name__}: {e}"[:2000], share)
    assets = box.get("assets")
    try:
        items = list(assets)  # type: ignore[arg-type]
    except TypeError:
        return _fail(requests, "adapter_bad_return",
                     f"generate() returned {type(assets).__name__}, not a list of Asset", share)
    if len(items) != len(requests):
        return _fail(requests, "adapter_wrong_count",
                     f"generate() returned {len(items)} assets for {len(requests)} requests", share)
    out = []
    for request, item in zip(requests, items, strict=True):
        asset = _as_asset(item)
        if asset is None:
            out.append(GenerationOutcome(request, None, "adapter_bad_return",
                                         f"got {type(item).__name__}, expected Asset or a path", share))
        elif not Path(asset.path).is_file():
            detail = f"the adapter returned {Path(asset.path).name!r}, which does not exist"
            seconds = asset.seconds if asset.seconds is not None else share
            out.append(GenerationOutcome(request, None, "missing_output", detail, seconds))
        else:
            out.append(GenerationOutcome(request, asset, None, None,
                                         asset.seconds if asset.seconds is not None else share))
    return out
