"""Where model weights come from: a local weights directory, the Hugging Face cache, or a download.

Resolution order for a :class:`WeightSpec` (first hit wins):

1. ``--weights-dir`` / ``weights_dir=`` or else ``$MME3DR_WEIGHTS_DIR``: ``<dir>/<key>/<file>``;
2. the default local directory ``~/.cache/mme3dr/weights/<key>/<file>`` (where ``mme3dr weights download``
   puts files that have no hub repository);
3. the Hugging Face cache (``$HF_HUB_CACHE``, read at call time), for specs with a ``hub_repo``;
4. the torch hub checkpoint cache (``~/.cache/torch/hub/checkpoints/<file>``), for URL-only specs — where
   torch-fidelity/torchmetrics keep the FID Inception weights they downloaded;
5. a download, only when allowed and not offline (into ``<weights_dir>/<key>/`` when a weights
   directory is named, else the HF cache or, for URL-only files, the default directory). Offline
   (``HF_HUB_OFFLINE=1``, or the download host does not accept a connection within 3 s) or when the
   download fails, :class:`WeightsNotFoundError` names the model, the missing file and where to put
   it — at once.

Documented layout of a weights directory (``mme3dr weights list`` prints it)::

    <weights_dir>/clip-vit-b-32-openai/open_clip_model.safetensors
    <weights_dir>/clip-vit-l-14-openai/open_clip_model.safetensors
    <weights_dir>/inception-v3-fid/weights-inception-2015-12-05-6726825d.pth
    <weights_dir>/dinov2-base/config.json
    <weights_dir>/dinov2-base/model.safetensors
    <weights_dir>/dinov2-large/{config.json, model.safetensors}
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mme3dr.errors import UserError
from mme3dr.hashing import file_sha256 as content_sha256

WEIGHTS_DIR_ENV = "MME3DR_WEIGHTS_DIR"
DEFAULT_WEIGHTS_DIR = Path("~/.cache/mme3dr/weights")


class WeightsNotFoundError(UserError, FileNotFoundError):
    """A model's weight file is not present and could not be fetched. The message says where to put it."""


@dataclass(frozen=True)
class WeightSpec:
    """One model's weights: what to build (``kind``, ``arch``) and which files it needs from where.

    ``kind`` is ``open_clip``, ``inception`` or ``dinov2``; ``arch`` is the open_clip model name (for
    ``open_clip``); ``files`` are file names inside ``<weights_dir>/<key>/`` and inside ``hub_repo``.
    """

    key: str
    kind: str
    model_id: str
    files: tuple[str, ...]
    hub_repo: str | None = None
    url: str | None = None
    arch: str | None = None
    quick_gelu: bool = False
    description: str = ""


CATALOGUE: dict[str, WeightSpec] = {
    spec.key: spec
    for spec in (
        WeightSpec(
            key="clip-vit-b-32-openai",
            kind="open_clip",
            model_id="open_clip:ViT-B-32/openai",
            arch="ViT-B-32",
            quick_gelu=True,  # OpenAI's CLIP was trained with QuickGELU
            files=("open_clip_model.safetensors",),
            hub_repo="timm/vit_base_patch32_clip_224.openai",
            description="OpenAI CLIP ViT-B/32 (protocol default; the authors' script's model)",
        ),
        WeightSpec(
            key="clip-vit-l-14-openai",
            kind="open_clip",
            model_id="open_clip:ViT-L-14/openai",
            arch="ViT-L-14",
            quick_gelu=True,
            files=("open_clip_model.safetensors",),
            hub_repo="timm/vit_large_patch14_clip_224.openai",
            description="OpenAI CLIP ViT-L/14 (option)",
        ),
        WeightSpec(
            key="inception-v3-fid",
            kind="inception",
            model_id="torch-fidelity:inception-v3-compat/pool3",
            files=("weights-inception-2015-12-05-6726825d.pth",),
            url="https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
            "weights-inception-2015-12-05-6726825d.pth",
            description="FID Inception-v3 (TF 2015-12-05 graph ported by torch-fidelity), pool3 2048-d",
        ),
        WeightSpec(
            key="dinov2-base",
            kind="dinov2",
            model_id="facebook/dinov2-base",
            files=("config.json", "model.safetensors"),
            hub_repo="facebook/dinov2-base",
            description="DINOv2 ViT-B/14 CLS (protocol default)",
        ),
        WeightSpec(
            key="dinov2-large",
            kind="dinov2",
            model_id="facebook/dinov2-large",
            files=("config.json", "model.safetensors"),
            hub_repo="facebook/dinov2-large",
            description="DINOv2 ViT-L/14 CLS (option)",
        ),
    )
}


@dataclass(frozen=True)
class ResolvedWeights:
    """Where a spec's files were found: ``directory`` holds every file in ``spec.files``."""

    spec: WeightSpec
    directory: Path
    source: str  # "weights-dir", "default-dir", "hf-cache", "torch-hub-cache", "download"

    def path(self, name: str | None = None) -> Path:
        return self.directory / (name or self.spec.files[-1])

    def sha256(self) -> str:
        """sha256 of the main weight file (the last of ``spec.files``) for the metric card."""
        return file_sha256(self.path())


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes (memoised on path, size and mtime: weight files are large)."""
    st = path.stat()
    memo = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if memo not in _SHA_CACHE:
        _SHA_CACHE[memo] = content_sha256(path)
    return _SHA_CACHE[memo]


def get_spec(key: str) -> WeightSpec:
    try:
        return CATALOGUE[key]
    except KeyError:
        raise KeyError(f"unknown weights {key!r}; known: {', '.join(sorted(CATALOGUE))}") from None


def is_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set (read at call time, so tests and CLIs can set it late)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def local_dirs(weights_dir: str | Path | None = None) -> list[Path]:
    """The local directories searched, in order: explicit/env dir (if any), then the default dir."""
    dirs = []
    explicit = weights_dir or os.environ.get(WEIGHTS_DIR_ENV)
    if explicit:
        dirs.append(Path(explicit).expanduser())
    dirs.append(DEFAULT_WEIGHTS_DIR.expanduser())
    return dirs


def _hf_cache_dir() -> str | None:
    return os.environ.get("HF_HUB_CACHE") or (
        str(Path(os.environ["HF_HOME"]) / "hub") if os.environ.get("HF_HOME") else None
    )


def _find_in_hf_cache(spec: WeightSpec) -> Path | None:
    if not spec.hub_repo:
        return None
    from huggingface_hub import try_to_load_from_cache

    found = []
    for name in spec.files:
        hit = try_to_load_from_cache(spec.hub_repo, name, cache_dir=_hf_cache_dir())
        if not isinstance(hit, str):
            return None
        found.append(Path(hit))
    # All files of one snapshot share a directory (the snapshot folder).
    parents = {p.parent for p in found}
    return found[0].parent if len(parents) == 1 else None


def _find_in_torch_hub(spec: WeightSpec) -> Path | None:
    if not spec.url or len(spec.files) != 1:
        return None
    torch_home = Path(os.environ.get("TORCH_HOME", "~/.cache/torch")).expanduser()
    hit = torch_home / "hub" / "checkpoints" / spec.files[0]
    return hit.parent if hit.is_file() else None


def _missing_message(spec: WeightSpec, missing: str, dirs: list[Path], reason: str,
                     dir_option: str | None = None) -> str:
    target = dirs[0] / spec.key / missing
    where = [f"  - put {missing!r} at {target}"]
    if spec.hub_repo:
        where.append(f"  - or place it in the Hugging Face cache (repo {spec.hub_repo}, file {missing})")
    if dir_option is None:  # mme3dr's own encoders: its CLI downloads them and takes --weights-dir
        where.append("  - or, on a machine with network, run `mme3dr weights download` (then copy the "
                     "directory)")
        choose = f"set {WEIGHTS_DIR_ENV} or pass --weights-dir to choose the directory"
    else:
        choose = f"choose the directory with {dir_option} or {WEIGHTS_DIR_ENV}"
    return (
        f"Weights for {spec.model_id} ({spec.key}) not found: file {missing!r} is missing ({reason}).\n"
        "To fix:\n" + "\n".join(where) + f"\n  ({choose})"
    )


def resolve_weights(
    spec: WeightSpec | str, weights_dir: str | Path | None = None, *, download: bool = True,
    dir_option: str | None = None,
) -> ResolvedWeights:
    """Find (or, if allowed and online, fetch) the files of ``spec``; see the module docstring for the order.

    ``dir_option`` names how the caller's user chooses ``weights_dir`` (e.g. ``"hps.weights_dir in the
    endpoints YAML"``) for the missing-file message; None: mme3dr's ``--weights-dir`` and
    ``mme3dr weights download``.

    Raises:
        WeightsNotFoundError: a file is missing and cannot be fetched (offline, download not allowed, or
            the download failed); the message names the model, the file and where to put it.
    """
    spec = get_spec(spec) if isinstance(spec, str) else spec
    dirs = local_dirs(weights_dir)
    for i, base in enumerate(dirs):
        folder = base / spec.key
        if all((folder / name).is_file() for name in spec.files):
            explicit = i == 0 and len(dirs) == 2
            return ResolvedWeights(spec, folder, "weights-dir" if explicit else "default-dir")
    hit = _find_in_hf_cache(spec)
    if hit is not None:
        return ResolvedWeights(spec, hit, "hf-cache")
    hit = _find_in_torch_hub(spec)
    if hit is not None:
        return ResolvedWeights(spec, hit, "torch-hub-cache")
    missing = next(n for n in spec.files if not (dirs[0] / spec.key / n).is_file())
    if is_offline():
        raise WeightsNotFoundError(_missing_message(spec, missing, dirs, "offline: HF_HUB_OFFLINE is set",
                                                    dir_option))
    if not download:
        raise WeightsNotFoundError(_missing_message(spec, missing, dirs, "downloads are disabled",
                                                    dir_option))
    host = _download_host(spec)
    if not _reachable(host):
        # Probe first: without it the hub client retries for tens of seconds before giving up.
        reason = f"no network: {host} is unreachable"
        raise WeightsNotFoundError(_missing_message(spec, missing, dirs, reason, dir_option))
    try:
        return _download(spec, dirs)
    except WeightsNotFoundError:
        raise
    except Exception as exc:  # network errors come in many library-specific types
        reason = f"download failed: {type(exc).__name__}: {exc}"
        raise WeightsNotFoundError(_missing_message(spec, missing, dirs, reason, dir_option)) from exc


_REACHABLE: dict[str, bool] = {}


def _download_host(spec: WeightSpec) -> str:
    if spec.hub_repo:
        from urllib.parse import urlparse

        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
        return urlparse(endpoint).hostname or "huggingface.co"
    from urllib.parse import urlparse

    return urlparse(spec.url or "").hostname or ""


def _reachable(host: str, timeout: float = 3.0) -> bool:
    """Whether ``host:443`` accepts a TCP connection (memoised per process; assumed behind a proxy)."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True  # a direct probe says nothing about a proxied route
    if host not in _REACHABLE:
        import socket

        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            _REACHABLE[host] = True
        except OSError:
            _REACHABLE[host] = False
    return _REACHABLE[host]


def _download(spec: WeightSpec, dirs: list[Path]) -> ResolvedWeights:
    explicit = len(dirs) == 2  # a weights dir was named (flag or env): download into it
    if spec.hub_repo:
        from huggingface_hub import hf_hub_download

        local = {"local_dir": str(dirs[0] / spec.key)} if explicit else {"cache_dir": _hf_cache_dir()}
        paths = [Path(hf_hub_download(spec.hub_repo, name, etag_timeout=10, **local)) for name in spec.files]
        return ResolvedWeights(spec, paths[0].parent, "download")
    if spec.url:
        import urllib.request

        folder = dirs[0] / spec.key
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / spec.files[0]
        partial = target.with_suffix(target.suffix + ".partial")
        with urllib.request.urlopen(spec.url, timeout=30) as resp, open(partial, "wb") as out:
            while block := resp.read(1 << 20):
                out.write(block)
        partial.replace(target)  # atomic: a half-written file never looks present
        return ResolvedWeights(spec, folder, "download")
    raise WeightsNotFoundError(_missing_message(spec, spec.files[0], dirs, "no download source is known"))


def weights_status(keys: list[str], weights_dir: str | Path | None = None) -> list[dict]:
    """For each key: ``{"key", "model_id", "present", "source", "directory", "files"}`` (never downloads)."""
    rows = []
    for key in keys:
        spec = get_spec(key)
        try:
            res = resolve_weights(spec, weights_dir, download=False)
            rows.append({"key": key, "model_id": spec.model_id, "present": True, "source": res.source,
                         "directory": str(res.directory), "files": list(spec.files)})
        except WeightsNotFoundError:
            rows.append({"key": key, "model_id": spec.model_id, "present": False, "source": None,
                         "directory": str(local_dirs(weights_dir)[0] / key), "files": list(spec.files)})
    return rows
