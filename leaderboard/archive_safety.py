"""Safe extraction of submission archives (tar, optionally gzip-compressed).

A submission is an archive from a stranger, so extraction refuses, *before writing anything*, every
member that could escape or exhaust the target directory: absolute paths, ``..`` components, links
(symbolic or hard), devices and FIFOs, duplicate names, too many files, too many bytes, and a
compression ratio typical of decompression bombs. Sizes are checked against the tar headers during a
first pass over the archive and again while writing, so a lying header cannot sneak extra bytes in.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath


class UnsafeArchiveError(ValueError):
    """The archive was refused; nothing was written outside (or left inside) the target directory."""


@dataclass(frozen=True)
class ArchiveLimits:
    """Upper bounds for one submission archive.

    The defaults admit a full 249-case bundle with assets (a few GB at most) and nothing pathological.
    """

    max_files: int = 20_000
    max_total_bytes: int = 8 * 1024**3
    max_file_bytes: int = 1 * 1024**3
    # Meshes and PNGs compress a few times at most; a bomb compresses thousands of times.
    max_ratio: float = 200.0
    # Below this many bytes the ratio is not checked: tiny JSON files compress well and are harmless.
    ratio_floor_bytes: int = 16 * 1024**2


def _check_member_name(name: str) -> PurePosixPath:
    """Return the member's relative path or raise: no absolute paths, no ``..``, no odd separators."""
    if not name or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"archive member {name!r} has an absolute path; refusing the archive")
    if "\\" in name or "\x00" in name:
        raise UnsafeArchiveError(f"archive member {name!r} contains a backslash or NUL; refusing the archive")
    path = PurePosixPath(name)
    if any(part == ".." for part in path.parts):
        raise UnsafeArchiveError(f"archive member {name!r} climbs out with '..'; refusing the archive")
    parts = [p for p in path.parts if p not in ("", ".")]
    if not parts:
        raise UnsafeArchiveError(f"archive member {name!r} has an empty path; refusing the archive")
    return PurePosixPath(*parts)


def scan_archive(archive: Path, limits: ArchiveLimits = ArchiveLimits()) -> list[tuple[PurePosixPath, int]]:
    """First pass: check every header; return ``[(relative path, size)]`` of the regular files.

    Raises :class:`UnsafeArchiveError` naming the first offending member. Reads the stream once and
    writes nothing.
    """
    archive = Path(archive)
    compressed = archive.stat().st_size
    files: list[tuple[PurePosixPath, int]] = []
    seen: set[PurePosixPath] = set()
    total = 0
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            for count, member in enumerate(tar, start=1):
                if count > limits.max_files:
                    raise UnsafeArchiveError(
                        f"archive has more than {limits.max_files} members; refusing it (decompression bomb?)"
                    )
                rel = _check_member_name(member.name)
                if member.issym() or member.islnk():
                    raise UnsafeArchiveError(
                        f"archive member {member.name!r} is a {'symlink' if member.issym() else 'hardlink'}; "
                        "bundles may only contain regular files"
                    )
                if member.isdir():
                    continue
                if not member.isfile():
                    raise UnsafeArchiveError(
                        f"archive member {member.name!r} is not a regular file (device, FIFO, ...); refusing"
                    )
                if rel in seen:
                    raise UnsafeArchiveError(f"archive member {member.name!r} appears twice; refusing it")
                seen.add(rel)
                if member.size > limits.max_file_bytes:
                    raise UnsafeArchiveError(
                        f"archive member {member.name!r} is {member.size} bytes, over the "
                        f"{limits.max_file_bytes}-byte limit per file"
                    )
                total += member.size
                if total > limits.max_total_bytes:
                    raise UnsafeArchiveError(
                        f"archive expands to more than {limits.max_total_bytes} bytes; refusing it "
                        "(decompression bomb?)"
                    )
                if total > limits.ratio_floor_bytes and total > limits.max_ratio * max(compressed, 1):
                    raise UnsafeArchiveError(
                        f"archive expands {total / max(compressed, 1):.0f}x (limit {limits.max_ratio:.0f}x); "
                        "refusing it as a decompression bomb"
                    )
                files.append((rel, member.size))
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise UnsafeArchiveError(f"{archive} is not a readable tar archive: {exc}") from exc
    # A file and a directory of the same name cannot both exist; refuse rather than guess.
    names = {str(p) for p, _ in files}
    for rel, _ in files:
        for parent in rel.parents:
            if str(parent) in names:
                raise UnsafeArchiveError(f"archive member {str(rel)!r} lies under the file {str(parent)!r}")
    return files


def safe_extract(archive: Path, target: Path, limits: ArchiveLimits = ArchiveLimits()) -> list[Path]:
    """Extract the regular files of ``archive`` into the (new or empty) directory ``target``.

    Returns the written paths. On any refusal, nothing is written outside ``target`` and whatever was
    written inside it is removed again.
    """
    target = Path(target)
    if target.exists() and any(target.iterdir()):
        raise UnsafeArchiveError(f"extraction target {target} is not empty; pass a fresh directory")
    plan = scan_archive(archive, limits)
    wanted = {rel: size for rel, size in plan}
    created_target = not target.exists()
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    written: list[Path] = []
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                rel = _check_member_name(member.name)
                if rel not in wanted:  # the stream changed between passes
                    raise UnsafeArchiveError(f"archive member {member.name!r} was not in the first pass")
                dest = root.joinpath(*rel.parts)
                # Belt and braces: the resolved parent must still lie inside the target.
                dest.parent.mkdir(parents=True, exist_ok=True)
                if not dest.parent.resolve().is_relative_to(root):
                    raise UnsafeArchiveError(f"member {member.name!r} would be written outside {target}")
                src = tar.extractfile(member)
                if src is None:
                    raise UnsafeArchiveError(f"archive member {member.name!r} has no data")
                # O_EXCL + O_NOFOLLOW: never write through an existing file or link.
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                fd = os.open(dest, flags, stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IROTH)
                written.append(dest)
                with os.fdopen(fd, "wb") as out:
                    n = 0
                    while chunk := src.read(1 << 20):
                        n += len(chunk)
                        if n > wanted[rel]:
                            raise UnsafeArchiveError(f"member {member.name!r} is longer than its header")
                        out.write(chunk)
    except BaseException:
        # Leave no partial extraction behind.
        if created_target:
            shutil.rmtree(target, ignore_errors=True)
        else:
            for child in list(target.iterdir()):
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        raise
    return written
