"""Finding an adapter from a ``--model`` string: the plug-in boundary (the one registry in mme3dr).

A ``--model`` value is one of:

- a built-in name: ``primitives``, ``oracle``, ``shap-e``, ``llama-mesh``, ``folder:DIR`` or
  ``cmd:PROGRAM ARGS...`` (lazy ``module:attr`` strings, so listing them imports nothing);
- the name of an installed plug-in: any distribution that declares an entry point in the
  ``mme3dr.models`` group, e.g. in its ``pyproject.toml``::

      [project.entry-points."mme3dr.models"]
      my-model = "my_pkg.adapter:MyModel"

- ``pkg.module:Attr``: an importable class or factory;
- ``path/to/file.py:Attr``: a class or factory in a Python file (no install needed).

The resolved object is called with the ``--model-args key=value,...`` pairs as keyword arguments
(values stay strings; the adapter converts them) and must return a ``TextTo3DModel``.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from mme3dr.errors import UserError
from mme3dr.hashing import file_sha256
from mme3dr.models.protocol import TextTo3DModel

__all__ = [
    "BUILTIN_MODELS",
    "ENTRY_POINT_GROUP",
    "LoadedModel",
    "ModelSpecError",
    "available_models",
    "load_model",
    "parse_model_args",
]

ENTRY_POINT_GROUP = "mme3dr.models"

#: Built-in adapters. ``folder`` takes its directory after a colon (``folder:DIR``), ``cmd`` its command
#: line (``cmd:PROGRAM ARGS...``).
BUILTIN_MODELS: dict[str, str] = {
    "primitives": "mme3dr.models.primitives:PrimitivesModel",
    "oracle": "mme3dr.models.oracle:OracleModel",
    "shap-e": "mme3dr.models.shap_e:ShapEModel",
    "llama-mesh": "mme3dr.models.llama_mesh:LlamaMeshModel",
    "folder": "mme3dr.models.folder:FolderModel",
    "cmd": "mme3dr.models.command:CommandModel",
}
#: Built-ins that take their argument after the colon, and the keyword it is passed as.
_COLON_BUILTINS = ("folder", "cmd")
_CMD_EXAMPLE = "--model 'cmd:/path/to/python generate.py'"


class ModelSpecError(UserError, ValueError):
    """A ``--model`` / ``--model-args`` value that cannot be resolved; the message says what to do."""


@dataclass
class LoadedModel:
    """The adapter instance and where it came from (recorded as ``results.adapter``)."""

    model: TextTo3DModel
    spec: str
    kind: str  # builtin | entry_point | module | file | folder | command
    target: str
    model_args: dict[str, str] = field(default_factory=dict)
    distribution: str | None = None
    distribution_version: str | None = None
    file_sha256: str | None = None

    def source_record(self) -> dict[str, Any]:
        """``results.adapter``: what identifies the adapter (kind, module or file name, class, the source
        file's sha256), never where it sat on this disk (:func:`public_spec`)."""
        return {
            "spec": public_spec(self.spec, self.kind),
            "kind": self.kind,
            "target": self.target,
            "model_args": dict(self.model_args),
            "distribution": self.distribution,
            "distribution_version": self.distribution_version,
            "file_sha256": self.file_sha256,
        }


def public_spec(spec: str, kind: str) -> str:
    """``spec`` as results record it: a ``file`` adapter by its file name and class
    (``/home/me/x/adapter.py:Model`` -> ``adapter.py:Model``; its sha256 is recorded beside it), a
    ``folder:DIR`` by the folder's name; other specs (module paths, names) as given."""
    if kind == "file":
        name, _, attr = spec.rpartition(":")
        return f"{Path(name).name}:{attr}"
    if kind == "folder":
        return f"folder:{Path(spec.partition(':')[2]).name}"
    return spec


def parse_model_args(text: str | None) -> dict[str, str]:
    """``"a=1,b=x"`` -> ``{"a": "1", "b": "x"}``. Values may contain ``=``; keys must be identifiers."""
    out: dict[str, str] = {}
    if not text:
        return out
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ModelSpecError(
                f"--model-args item {item!r} is not key=value (keys are Python identifiers); "
                "example: --model-args steps=50,guidance=7.5"
            )
        if key in out:
            raise ModelSpecError(f"--model-args gives {key!r} twice")
        out[key] = value.strip()
    return out


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def available_models() -> list[str]:
    """Built-in names and installed plug-in names, sorted (imports nothing)."""
    return sorted(set(BUILTIN_MODELS) | set(_entry_points()))


def _import_attr(module_name: str, attr: str, spec: str) -> Any:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):
            raise ModelSpecError(
                f"--model {spec!r}: module {module_name!r} is not importable ({e}); install it or pass "
                "a file path, e.g. --model path/to/adapter.py:MyModel"
            ) from e
        raise  # the adapter's own import failed: the original error is the useful one
    return _getattr(module, attr, spec)


def _getattr(module: Any, attr: str, spec: str) -> Any:
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(module) if not n.startswith("_")]
            hint = difflib.get_close_matches(attr, names, n=1)
            raise ModelSpecError(
                f"--model {spec!r}: {module.__name__!r} has no attribute {attr!r}"
                + (f"; did you mean {hint[0]!r}?" if hint else "")
            )
        obj = getattr(obj, part)
    return obj


def _import_file(path: Path, attr: str, spec: str) -> tuple[Any, str]:
    if not path.is_file():
        raise ModelSpecError(f"--model {spec!r}: no such file {path}; give path/to/file.py:ClassName")
    digest = file_sha256(path)
    # A unique module name per file content, so that two adapters named adapter.py do not collide.
    module_name = f"mme3dr_plugin_{path.stem}_{digest[:12]}"
    module = sys.modules.get(module_name)
    if module is None:
        file_spec = importlib.util.spec_from_file_location(module_name, path)
        if file_spec is None or file_spec.loader is None:
            raise ModelSpecError(f"--model {spec!r}: cannot import {path} as a Python module")
        module = importlib.util.module_from_spec(file_spec)
        sys.modules[module_name] = module
        try:
            file_spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise
    return _getattr(module, attr, spec), digest


def _instantiate(factory: Callable[..., Any], args: dict[str, str], spec: str) -> TextTo3DModel:
    try:
        model = factory(**args)
    except TypeError as e:
        raise ModelSpecError(f"--model {spec!r} did not accept --model-args {args}: {e}") from e
    if not isinstance(model, TextTo3DModel):
        raise ModelSpecError(
            f"--model {spec!r} built a {type(model).__name__}, which is not a TextTo3DModel: it needs an "
            "`info` (ModelInfo) attribute and a `generate(requests)` method (see docs/evaluate.md)"
        )
    return model


def _source_file_sha256(obj: Any) -> str | None:
    import inspect

    try:
        src = inspect.getsourcefile(obj)
    except TypeError:
        return None
    return file_sha256(src) if src and Path(src).is_file() else None


def _command_sha256(command: str) -> str | None:
    """sha256 of the first existing file among the command's words (the script a ``cmd:`` adapter runs,
    e.g. ``generate.py`` in ``cmd:python generate.py``), so results name the code that made the assets."""
    import shlex

    try:
        words = shlex.split(command)
    except ValueError:
        return None
    for word in words[1:] + words[:1]:
        if not word.startswith("-") and Path(word).expanduser().is_file():
            return file_sha256(Path(word).expanduser())
    return None


def load_model(spec: str, model_args: dict[str, str] | str | None = None) -> LoadedModel:
    """Resolve ``spec`` (see the module docstring) and build the adapter; raises ``ModelSpecError``."""
    args = parse_model_args(model_args) if isinstance(model_args, str) or model_args is None else model_args
    spec = spec.strip()
    name, sep, rest = spec.partition(":")

    if name == "folder" and sep:
        if not Path(rest).expanduser().is_dir():
            raise ModelSpecError(f"--model {spec!r}: {Path(rest).expanduser()} is not a directory; pass "
                                 "--model folder:DIR with the pre-generated assets named <case_id>.glb (or "
                                 "<case_id>_<sample>.<ext>)")
        module_name, attr = BUILTIN_MODELS["folder"].split(":")
        factory = _import_attr(module_name, attr, spec)
        model = _instantiate(factory, {"root": rest, **args}, spec)
        return LoadedModel(model, spec, "folder", BUILTIN_MODELS["folder"], args,
                           file_sha256=_source_file_sha256(factory))
    if name == "cmd" and sep:
        if not rest.strip():
            raise ModelSpecError(f"--model cmd: needs a command line: {_CMD_EXAMPLE}")
        module_name, attr = BUILTIN_MODELS["cmd"].split(":")
        factory = _import_attr(module_name, attr, spec)
        model = _instantiate(factory, {"command": rest, **args}, spec)
        return LoadedModel(model, spec, "command", BUILTIN_MODELS["cmd"], args,
                           file_sha256=_command_sha256(rest))
    if not sep and spec in BUILTIN_MODELS:
        if spec in _COLON_BUILTINS:
            raise ModelSpecError("--model folder needs a directory: --model folder:path/to/assets"
                                 if spec == "folder" else
                                 f"--model cmd needs a command line: {_CMD_EXAMPLE}")
        module_name, attr = BUILTIN_MODELS[spec].split(":")
        factory = _import_attr(module_name, attr, spec)
        return LoadedModel(_instantiate(factory, args, spec), spec, "builtin", BUILTIN_MODELS[spec], args,
                           file_sha256=_source_file_sha256(factory))
    eps = _entry_points()
    if not sep and spec in eps:
        ep = eps[spec]
        factory = ep.load()
        dist = getattr(ep, "dist", None)
        return LoadedModel(_instantiate(factory, args, spec), spec, "entry_point", ep.value, args,
                           distribution=dist.name if dist else None,
                           distribution_version=dist.version if dist else None,
                           file_sha256=_source_file_sha256(factory))
    if sep and (name.endswith(".py") or "/" in name or "\\" in name):
        path = Path(name).expanduser().resolve()
        factory, digest = _import_file(path, rest, spec)
        return LoadedModel(_instantiate(factory, args, spec), spec, "file", f"{path.name}:{rest}", args,
                           file_sha256=digest)
    if sep and rest:
        factory = _import_attr(name, rest, spec)
        top = name.split(".")[0]
        dist_name = dist_version = None
        for dist in metadata.packages_distributions().get(top, [])[:1]:
            dist_name, dist_version = dist, metadata.version(dist)
        return LoadedModel(_instantiate(factory, args, spec), spec, "module", spec, args,
                           distribution=dist_name, distribution_version=dist_version,
                           file_sha256=_source_file_sha256(factory))
    known = available_models()
    hint = difflib.get_close_matches(spec, known + ["folder:DIR"], n=1)
    raise ModelSpecError(
        f"unknown model {spec!r}"
        + (f"; did you mean {hint[0]!r}?" if hint else "")
        + f" Known: {', '.join(known)}. Or pass pkg.module:Class, path/to/file.py:Class or folder:DIR."
    )
