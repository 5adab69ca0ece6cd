"""What ``mme3dr models`` prints: every built-in and installed adapter, with what it needs.

Each adapter class may declare ``requirements``, a dict with ``extra`` (the ``pip install
"mme3dr[EXTRA]"`` that brings its libraries, ``"-"`` for none), ``weights`` (hub id or ``"-"``),
``gpu`` (``"no"``, ``"recommended …"``, ``"yes …"``) and ``imports`` (the top-level modules that extra
provides). Listing imports the adapter *modules* (each imports its heavy libraries only when the adapter
is built), never the libraries themselves: whether those are installed is read with
``importlib.util.find_spec``.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import asdict, dataclass

from mme3dr.models.registry import BUILTIN_MODELS, ENTRY_POINT_GROUP, _entry_points

__all__ = ["AdapterEntry", "list_adapters"]

#: How each built-in is spelled on the command line (the colon ones take an argument).
_SPELLING = {"folder": "folder:DIR", "cmd": "cmd:PROGRAM ARGS..."}


@dataclass(frozen=True)
class AdapterEntry:
    """One row of ``mme3dr models``."""

    model: str  # what to pass to --model
    source: str  # "built-in" or "installed (<distribution> <version>)"
    target: str  # module:attr
    extra: str
    weights: str
    gpu: str
    ready: str  # "yes" or "no: pip install ..." (its libraries are importable or not)
    summary: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _describe(model: str, source: str, target: str, factory) -> AdapterEntry:
    req = dict(getattr(factory, "requirements", {}) or {})
    missing = [m for m in req.get("imports", ()) if importlib.util.find_spec(m) is None]
    extra = req.get("extra", "?")
    ready = "yes" if not missing else f"no: pip install \"mme3dr[{extra}]\" ({', '.join(missing)} missing)"
    doc = (getattr(factory, "__doc__", None) or "").strip().splitlines()
    return AdapterEntry(model, source, target, extra, req.get("weights", "?"), req.get("gpu", "?"), ready,
                        doc[0].replace("``", "") if doc else "")


def list_adapters() -> list[AdapterEntry]:
    """Built-ins first (in registry order), then the ``mme3dr.models`` entry points, by name. An entry
    point that fails to import is listed with the error as its summary."""
    rows = []
    for name, target in BUILTIN_MODELS.items():
        module, attr = target.split(":")
        rows.append(_describe(_SPELLING.get(name, name), "built-in", target,
                              getattr(importlib.import_module(module), attr)))
    for name, ep in sorted(_entry_points().items()):
        dist = getattr(ep, "dist", None)
        source = f"installed ({dist.name} {dist.version})" if dist else f"installed ({ENTRY_POINT_GROUP})"
        try:
            factory = ep.load()
        except Exception as e:  # noqa: BLE001 - a broken plug-in must not hide the others
            rows.append(AdapterEntry(name, source, ep.value, "?", "?", "?", "no", f"import failed: {e}"))
            continue
        rows.append(_describe(name, source, ep.value, factory))
    return rows
