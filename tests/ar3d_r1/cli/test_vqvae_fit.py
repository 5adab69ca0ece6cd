"""``ar3d-r1 vqvae fit`` (ar3d_r1/cli/__init__.py): an unusable ``--out`` is one ``error:`` line before
any training (so no fit is lost at the save)."""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")

from ar3d_r1.cli import app, out_dir_problem  # noqa: E402


def test_out_that_is_a_file_or_under_one_is_refused_before_training(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out in (afile, afile / "sub"):
        result = CliRunner().invoke(app, ["vqvae", "fit", "--preset", "smoke", "--steps", "2",
                                          "--out", str(out)])
        assert result.exit_code == 2, result.output
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: --out: "), result.stderr
        assert "vqvae fit:" not in result.stderr  # refused before the fit started
    assert afile.read_text() == "x"
    assert out_dir_problem(tmp_path / "new" / "dir") is None


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_out_in_a_read_only_folder_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert "not writable" in out_dir_problem(ro / "fit")
    finally:
        ro.chmod(0o700)
