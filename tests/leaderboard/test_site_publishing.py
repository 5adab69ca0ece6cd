"""Publishing refuses what it cannot show truthfully (issue 26, kind 6): a build is all or nothing and
names the registry entry it refuses; bidi controls never reach a page raw; look-alike names are
flagged at `leaderboard add`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from bundle_factory import make_run, submitter
from typer.testing import CliRunner

from leaderboard.admission import add_bundle
from leaderboard.cli import app
from leaderboard.names import name_warnings, neutralise_bidi, skeleton
from leaderboard.pack import pack_run
from leaderboard.registry import RegistryError
from leaderboard.site import build_from_registry

runner = CliRunner()
RLO = "\u202e"


def snapshot(site: Path) -> dict[str, bytes]:
    return {p.relative_to(site).as_posix(): p.read_bytes() for p in sorted(site.rglob("*")) if p.is_file()}


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".building-" in p.name or ".old-" in p.name)


@pytest.fixture
def built(tmp_path, registry):
    """A private copy of the session registry and a site built from it."""
    reg = tmp_path / "registry"
    shutil.copytree(registry, reg)
    out = tmp_path / "site"
    build_from_registry(reg, out)
    return reg, out


def test_an_impossible_entry_in_the_registry_is_named_and_the_old_site_is_kept(built):
    reg, out = built
    before = snapshot(out)
    # as a laxer, older version would have accepted it: FD -100 in a filed entry
    folder = sorted(reg.glob("mme3dr-v1/*/"))[1]
    res = json.loads((folder / "results.json").read_text())
    res["results"]["mme3dr-v1"]["fd_incep"] = -100.0
    (folder / "results.json").write_text(json.dumps(res))
    with pytest.raises(RegistryError, match=rf"registry entry {folder} cannot be published.*fd_incep"):
        build_from_registry(reg, out)
    assert snapshot(out) == before and leftovers(out.parent) == []
    result = runner.invoke(app, ["build", "--out", str(out), "--registry", str(reg)])
    assert result.exit_code == 1 and folder.name in result.output and "Nothing was built" in result.output
    assert snapshot(out) == before


def test_a_registry_entry_with_duplicate_keys_is_refused_at_build(built):
    reg, out = built
    folder = sorted(reg.glob("mme3dr-v1/*/"))[0]
    raw = (folder / "entry.json").read_bytes()
    (folder / "entry.json").write_bytes(raw.replace(b"{", b'{"tier": "reproduced", ', 1))
    with pytest.raises(RegistryError, match="duplicate key 'tier'"):
        build_from_registry(reg, out)


def test_a_build_that_fails_half_way_leaves_the_previous_site(built):
    reg, out = built
    before = snapshot(out)
    folder = sorted(reg.glob("mme3dr-v1/*/"))[-1]
    (folder / "thumbnails" / "zz-broken.png").mkdir(parents=True)  # not a file: copying it fails
    with pytest.raises(RegistryError, match="could not be built.*is as it was"):
        build_from_registry(reg, out)
    assert snapshot(out) == before and leftovers(out.parent) == []


def test_a_first_build_that_fails_leaves_nothing(tmp_path, registry):
    reg = tmp_path / "registry"
    shutil.copytree(registry, reg)
    (sorted(reg.glob("mme3dr-v1/*/"))[0] / "thumbnails" / "zz.png").mkdir()
    with pytest.raises(RegistryError):
        build_from_registry(reg, tmp_path / "site")
    assert not (tmp_path / "site").exists() and leftovers(tmp_path) == []


@pytest.fixture(scope="module")
def lookalike_registry(tmp_path_factory, good_bundle):
    """The good bundle ("Synthetic Tetra"), then one whose description holds a right-to-left override (a
    name may not hold one: validation refuses it, see tests/leaderboard/test_validate.py)."""
    root = tmp_path_factory.mktemp("lookalike")
    reg = root / "registry"
    add_bundle(good_bundle, reg, date="2026-11-20")
    run = make_run(root / "run", seed=5, with_renders=False)
    bundle = root / "bidi.tar.gz"
    with pytest.raises(ValueError, match="U\\+202E"):
        submitter(model_name=f"Shape{RLO}X-3D")
    pack_run(run, bundle, submitter(model_name="ShapeX-3D", revision="v1",
                                    description=f"reads {RLO}backwards"))
    folder = add_bundle(bundle, reg, date="2026-11-21")
    return root, reg, folder


def test_a_right_to_left_override_never_reaches_a_page_raw(lookalike_registry, tmp_path):
    root, reg, folder = lookalike_registry
    out = tmp_path / "site"
    build_from_registry(reg, out)
    pages = [out / "index.html", *out.glob("submissions/*/*/index.html"), out / "leaderboard.csv"]
    assert len(pages) == 4
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert RLO not in text, page
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "ShapeX-3D" in index
    assert any("reads \ufffdbackwards" in p.read_text() for p in out.glob("submissions/*/*/index.html"))


def test_a_look_alike_name_is_flagged_at_add_naming_the_entry_it_resembles(lookalike_registry):
    root, reg, _ = lookalike_registry
    run = make_run(root / "run-cyrillic", seed=6, with_renders=False)
    bundle = root / "cyrillic.tar.gz"
    pack_run(run, bundle, submitter(model_name="Synthetic T\u0435tra", revision="v9"))  # Cyrillic е
    result = runner.invoke(app, ["add", str(bundle), "--registry", str(reg), "--date", "2026-11-22"])
    assert result.exit_code == 0, result.output
    assert "reads like the existing entry 'Synthetic Tetra'" in result.output
    assert "U+0435 CYRILLIC SMALL LETTER IE" in result.output


def test_name_skeletons():
    assert skeleton("Sh\u0430pe") == skeleton("Shape") == skeleton("Sha\u200bpe") == skeleton("\uff33hape")
    assert skeleton("Model-l") != skeleton("Model-1")  # ASCII stays itself
    assert name_warnings("Shape", ["Shape", "Other"]) == []
    assert name_warnings("نموذج", ["Shape"]) == []  # another script on its own is no warning
    assert "invisible character(s) U+200B ZERO WIDTH SPACE" in name_warnings("Sha\u200bpe", [])[0]
    assert neutralise_bidi("a\u2066b\u200fc\u061c") == "a\ufffdb\ufffdc\ufffd"


def test_a_verification_record_with_duplicate_keys_is_refused_at_add(good_bundle, tmp_path):
    record = tmp_path / "verification.json"
    record.write_text('{"passed": false, "passed": true}')
    result = runner.invoke(app, ["add", str(good_bundle), "--registry", str(tmp_path / "reg"),
                                 "--verification", str(record)])
    assert result.exit_code == 1 and "duplicate key 'passed'" in result.output
    assert not (tmp_path / "reg").exists()
