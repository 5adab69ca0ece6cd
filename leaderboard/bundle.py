"""The submission bundle: one reproducible ``.tar.gz`` holding a run's results and evidence.

Layout inside the archive (every path relative, regular files only)::

    bundle.json           BundleManifest: format, submitter metadata, asset list, sha256 + size of
                          every other file in the archive
    results.json          the run's results, byte for byte
    samples.jsonl         one line per (case, sample), byte for byte
    assets/<sha256>.<ext> the generated files (absent with --no-assets; bundle.json still lists them)
    thumbnails/<case_id>.png  a few small renders, for the site

The archive is deterministic (sorted members, zero mtimes/uids, gzip mtime 0), so packing the same run
with the same metadata gives the same bytes and the same bundle sha256. The submitter's metadata lives
in ``bundle.json``, never in ``results.json``: the run's own files are untouched.

Light module: standard library + pydantic.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mme3dr.hashing import file_sha256 as sha256_file

BUNDLE_FORMAT = "mme3dr-bundle-1"
MANIFEST_NAME = "bundle.json"
RESULTS_NAME = "results.json"
SAMPLES_NAME = "samples.jsonl"
ASSETS_DIR = "assets"
THUMBNAILS_DIR = "thumbnails"
_SHA256 = r"^[0-9a-f]{64}$"
#: bundle.json lists files and assets; even 10,000 assets stay far below this.
MAX_MANIFEST_BYTES = 64 * 1024**2


class BundleError(ValueError):
    """A bundle could not be made or read; the message says what and what to do."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Submitter(_Strict):
    """Who submits what. Shown on the site as text (escaped), never as markup."""

    model_name: str = Field(min_length=1, max_length=200, description="display name of the model")
    revision: str = Field(min_length=1, max_length=200, description="checkpoint hash, tag or version")
    evaluator: str = Field(min_length=1, max_length=200, description="person or lab who generated and scored")
    evaluator_relationship: Literal["first-party", "third-party"] = Field(
        description="first-party: the model's authors ran it; third-party: someone else did"
    )
    contact: str = Field(min_length=3, max_length=320,
                         description="e-mail address or http(s) URL for questions")
    licence: str = Field("unknown", max_length=200, description="licence of the model weights")
    link: str | None = Field(None, max_length=2000, description="http(s) URL: paper, code or model card")
    description: str = Field("", max_length=4000)

    @field_validator("model_name", "revision", "evaluator")
    @classmethod
    def _visible_name(cls, v: str) -> str:
        # A bidi override reverses the text after it on the page; a zero-width character makes two
        # names look the same. Neither belongs in a name.
        from leaderboard.names import forbidden_name_chars

        bad = forbidden_name_chars(v)
        if bad:
            raise ValueError(f"must not hold bidi controls or zero-width characters; {v!r} holds {bad}")
        return v

    @field_validator("contact")
    @classmethod
    def _reachable(cls, v: str) -> str:
        # An e-mail address (one @, a dotted domain, no spaces) or an http(s) URL with a host.
        from urllib.parse import urlsplit

        if v.startswith(("https://", "http://")):
            try:
                ok = bool(urlsplit(v).hostname) and not any(c.isspace() for c in v)
            except ValueError:
                ok = False
        else:
            ok = re.fullmatch(r"[^@\s<>,;:\"]+@[^@\s<>,;:\"]+\.[^@\s<>,;:\".]{2,}", v) is not None
        if not ok:
            raise ValueError(f"contact must be an e-mail address or an http(s) URL, got {v[:60]!r}")
        return v

    @field_validator("link")
    @classmethod
    def _http_only(cls, v: str | None) -> str | None:
        # Only http(s): a javascript: or data: URL would become an active link on the site.
        if v is not None and not v.startswith(("https://", "http://")):
            raise ValueError(f"link must start with https:// or http://, got {v[:60]!r}")
        return v


class FileEntry(_Strict):
    sha256: str = Field(pattern=_SHA256)
    size: int = Field(ge=0)


class AssetEntry(_Strict):
    """One generated asset. ``path`` is its main file in the archive (``None`` with --no-assets); an
    OBJ or glTF keeps its side files (materials, textures, buffers) beside it in ``assets/<sha256>/``."""

    sha256: str = Field(pattern=_SHA256)
    format: str = Field(pattern=r"^[a-z0-9]{1,8}$")
    path: str | None = Field(None, pattern=r"^assets/[^/]+(/[^/]+)?$")


class BundleManifest(_Strict):
    """``bundle.json``."""

    format: Literal["mme3dr-bundle-1"] = BUNDLE_FORMAT
    submitter: Submitter
    assets_included: bool
    assets: list[AssetEntry] = Field(description="every distinct generated asset, sorted by sha256")
    thumbnails: dict[str, str] = Field(default_factory=dict, description="case_id -> archive path")
    files: dict[str, FileEntry] = Field(description="every other archive member: path -> sha256, size")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def asset_set_sha256(asset_sha256s: list[str] | set[str]) -> str:
    """Identity of a set of generated assets: sha256 of the sorted, newline-joined hashes."""
    return sha256_bytes("".join(s + "\n" for s in sorted(set(asset_sha256s))).encode("ascii"))


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    # Zeroed metadata: the archive's bytes depend only on the files' names and contents.
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_bundle(out: Path, members: dict[str, bytes | Path], submitter: Submitter, *,
                 assets: list[AssetEntry], thumbnails: dict[str, str], assets_included: bool) -> str:
    """Write ``members`` (archive path -> bytes or file) plus ``bundle.json``; return the bundle sha256."""
    files: dict[str, FileEntry] = {}
    for name, src in members.items():
        if isinstance(src, Path):
            files[name] = FileEntry(sha256=sha256_file(src), size=src.stat().st_size)
        else:
            files[name] = FileEntry(sha256=sha256_bytes(src), size=len(src))
    manifest = BundleManifest(submitter=submitter, assets_included=assets_included, assets=assets,
                              thumbnails=thumbnails, files=dict(sorted(files.items())))
    manifest_bytes = (json.dumps(manifest.model_dump(mode="json"), sort_keys=True, indent=2,
                                 ensure_ascii=False) + "\n").encode("utf-8")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_tarinfo(MANIFEST_NAME, len(manifest_bytes)), io.BytesIO(manifest_bytes))
        for name in sorted(members):
            src = members[name]
            if isinstance(src, Path):
                with open(src, "rb") as f:
                    tar.addfile(_tarinfo(name, src.stat().st_size), f)
            else:
                tar.addfile(_tarinfo(name, len(src)), io.BytesIO(src))
    tmp.replace(out)
    return sha256_file(out)


def read_manifest(extracted: Path) -> BundleManifest:
    """Parse ``bundle.json`` of an extracted bundle; ``BundleError`` saying what is wrong."""
    path = Path(extracted) / MANIFEST_NAME
    if path.is_file() and path.stat().st_size > MAX_MANIFEST_BYTES:
        raise BundleError(f"{MANIFEST_NAME} is over the {MAX_MANIFEST_BYTES}-byte limit; refusing the bundle")
    if not path.is_file():
        raise BundleError(f"{MANIFEST_NAME} is missing: this is not an mme3dr submission bundle "
                          "(make one with `mme3dr submit RUN_DIR --out BUNDLE`)")
    from leaderboard.json_input import StrictJsonError, strict_loads

    raw = path.read_bytes()
    try:
        strict_loads(raw, MANIFEST_NAME)
    except StrictJsonError as exc:
        raise BundleError(str(exc)) from None
    try:
        return BundleManifest.model_validate_json(raw)
    except ValueError as exc:
        raise BundleError(f"{MANIFEST_NAME} does not follow the bundle schema: {exc}") from None
