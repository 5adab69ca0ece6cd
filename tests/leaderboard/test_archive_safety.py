"""Archive safety: hostile bundles are refused before anything is written outside the target."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from leaderboard.archive_safety import ArchiveLimits, UnsafeArchiveError, safe_extract, scan_archive


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b"hello") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _link(name: str, target: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def _snapshot(root: Path) -> set[Path]:
    return set(root.rglob("*"))


@pytest.fixture()
def sandbox(tmp_path: Path) -> Path:
    """A directory holding the archive and the target; nothing else may appear in it."""
    (tmp_path / "target").mkdir()
    return tmp_path


def test_good_archive_extracts_every_file(sandbox: Path) -> None:
    archive = _tar(sandbox / "ok.tar.gz", [_file("a.json", b"{}"), _file("assets/x.glb", b"glTF")])
    written = safe_extract(archive, sandbox / "target")
    assert sorted(p.relative_to(sandbox / "target").as_posix() for p in written) == ["a.json", "assets/x.glb"]
    assert (sandbox / "target" / "assets" / "x.glb").read_bytes() == b"glTF"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../evil.txt", "'..'"),
        ("assets/../../evil.txt", "'..'"),
        ("/tmp/evil_abs.txt", "absolute path"),
        ("C:/evil.txt", "absolute path"),
        ("a\\..\\evil.txt", "backslash"),
    ],
)
def test_escaping_paths_are_refused_and_nothing_written(sandbox: Path, name: str, message: str) -> None:
    archive = _tar(sandbox / "bad.tar.gz", [_file("results.json", b"{}"), _file(name, b"pwned")])
    before = _snapshot(sandbox)
    with pytest.raises(UnsafeArchiveError, match=message):
        safe_extract(archive, sandbox / "target")
    assert _snapshot(sandbox) == before
    assert not list((sandbox / "target").iterdir())
    assert not Path("/tmp/evil_abs.txt").exists() or name != "/tmp/evil_abs.txt"


@pytest.mark.parametrize(("kind", "word"), [(tarfile.SYMTYPE, "symlink"), (tarfile.LNKTYPE, "hardlink")])
def test_links_are_refused(sandbox: Path, kind: bytes, word: str) -> None:
    outside = sandbox / "outside.txt"
    outside.write_text("secret")
    archive = _tar(
        sandbox / "link.tar.gz",
        [_link("assets/x.glb", str(outside), kind), _file("assets/x.glb.2", b"overwrite")],
    )
    before = _snapshot(sandbox)
    with pytest.raises(UnsafeArchiveError, match=word):
        safe_extract(archive, sandbox / "target")
    assert _snapshot(sandbox) == before
    assert outside.read_text() == "secret"


def test_symlink_then_file_through_it_is_refused(sandbox: Path) -> None:
    # The classic escape: a symlinked directory followed by a file written "inside" it.
    members = [_link("assets", str(sandbox), tarfile.SYMTYPE), _file("assets/p.txt")]
    archive = _tar(sandbox / "dirlink.tar.gz", members)
    with pytest.raises(UnsafeArchiveError, match="symlink"):
        safe_extract(archive, sandbox / "target")
    assert not (sandbox / "p.txt").exists()


def test_device_and_fifo_members_are_refused(sandbox: Path) -> None:
    info = tarfile.TarInfo("fifo")
    info.type = tarfile.FIFOTYPE
    archive = _tar(sandbox / "fifo.tar", [(info, None)], mode="w")
    with pytest.raises(UnsafeArchiveError, match="not a regular file"):
        scan_archive(archive)


def test_decompression_bomb_is_refused_by_ratio(sandbox: Path) -> None:
    # 64 MiB of zeros gzip to ~64 KiB: a ratio of ~1000x, far beyond any real mesh or PNG.
    big = tarfile.TarInfo("assets/bomb.bin")
    big.size = 64 * 1024**2
    archive = sandbox / "bomb.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.addfile(big, io.BytesIO(bytes(big.size)))
    assert archive.stat().st_size < 1024**2
    before = _snapshot(sandbox)
    with pytest.raises(UnsafeArchiveError, match="decompression bomb"):
        safe_extract(archive, sandbox / "target")
    assert _snapshot(sandbox) == before


def test_total_size_and_file_count_limits(sandbox: Path) -> None:
    archive = _tar(sandbox / "many.tar.gz", [_file(f"f{i}.txt", b"x" * 100) for i in range(20)])
    with pytest.raises(UnsafeArchiveError, match="more than 10 members"):
        safe_extract(archive, sandbox / "target", ArchiveLimits(max_files=10))
    with pytest.raises(UnsafeArchiveError, match="more than 1000 bytes"):
        safe_extract(archive, sandbox / "target", ArchiveLimits(max_total_bytes=1000))
    with pytest.raises(UnsafeArchiveError, match="per file"):
        safe_extract(archive, sandbox / "target", ArchiveLimits(max_file_bytes=50))
    assert not list((sandbox / "target").iterdir())


def test_duplicate_member_names_are_refused(sandbox: Path) -> None:
    archive = _tar(sandbox / "dup.tar.gz", [_file("results.json", b"{}"), _file("./results.json", b"{1}")])
    with pytest.raises(UnsafeArchiveError, match="appears twice"):
        safe_extract(archive, sandbox / "target")


def test_not_an_archive_is_refused_with_a_clear_message(sandbox: Path) -> None:
    junk = sandbox / "junk.tar.gz"
    junk.write_bytes(b"this is not a tarball")
    with pytest.raises(UnsafeArchiveError, match="not a readable tar archive"):
        safe_extract(junk, sandbox / "target")


def test_non_empty_target_is_refused(sandbox: Path) -> None:
    archive = _tar(sandbox / "ok.tar.gz", [_file("a.json", b"{}")])
    (sandbox / "target" / "existing").write_text("keep me")
    with pytest.raises(UnsafeArchiveError, match="not empty"):
        safe_extract(archive, sandbox / "target")
    assert (sandbox / "target" / "existing").read_text() == "keep me"
