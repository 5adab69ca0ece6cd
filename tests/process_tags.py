"""Find a test's processes by a marker in their environment (``MME3DR_TEST_TAG=<tag>``), which every
child inherits: used to prove that a killed or interrupted run leaves nothing alive."""

from __future__ import annotations

from pathlib import Path


def tagged(tag: str) -> dict[int, str]:
    """Live (non-zombie) processes whose environment holds ``MME3DR_TEST_TAG=<tag>``: ``{pid: cmdline}``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            if f"MME3DR_TEST_TAG={tag}".encode() in (entry / "environ").read_bytes().split(b"\0"):
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue
    return found
