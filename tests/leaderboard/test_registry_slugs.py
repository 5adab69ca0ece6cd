"""The registry: folder names never collide, and a taken folder is never mistaken for the same model."""

from __future__ import annotations

from pathlib import Path

import pytest
from bundle_factory import make_run, submitter

from leaderboard.admission import add_bundle
from leaderboard.pack import pack_run
from leaderboard.registry import RegistryError, entry_slug, iter_entries


def test_names_that_slugify_alike_get_different_disambiguated_folders() -> None:
    names = [("Tetra/X", "r1"), ("Tetra X", "r1"), ("Tetra-X", "r1"), ("Tetra", "X__r1"), ("Tetra__X", "r1"),
             ("a" * 81, "r1"), ("a" * 80, "r1")]
    plain = [entry_slug(submitter(model_name=m, revision=r)) for m, r in names]
    assert plain[0] == plain[1] == plain[2] == "Tetra-X__r1"  # the collision the registry must handle
    hashed = [entry_slug(submitter(model_name=m, revision=r), disambiguate=True) for m, r in names]
    assert len(set(hashed)) == len(hashed), hashed


def test_tetra_slash_x_and_tetra_space_x_are_both_added(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    for seed, name in ((11, "Tetra/X"), (12, "Tetra X")):
        run = make_run(tmp_path / f"run{seed}", seed=seed, with_renders=False)
        bundle = tmp_path / f"b{seed}.tar.gz"
        pack_run(run, bundle, submitter(model_name=name), include_assets=False)
        add_bundle(bundle, registry, date="2026-11-30")
    folders = {e.submitter.model_name: folder.name for folder, e in iter_entries(registry)}
    assert folders["Tetra/X"] == "Tetra-X__r1"  # first come keeps the plain folder name
    assert folders["Tetra X"] == entry_slug(submitter(model_name="Tetra X"), disambiguate=True)
    # Each model finds its own folder again (--replace updates it, never the other one's).
    run = make_run(tmp_path / "run12b", seed=12, with_renders=False)
    pack_run(run, tmp_path / "b12b.tar.gz", submitter(model_name="Tetra X", description="v2"),
             include_assets=False)
    assert add_bundle(tmp_path / "b12b.tar.gz", registry, date="2026-11-30", replace=True).name == \
        folders["Tetra X"]


def test_a_folder_of_another_model_is_refused_by_name(tmp_path: Path, monkeypatch) -> None:
    import leaderboard.admission as adm

    registry = tmp_path / "registry"
    bundles = []
    for seed, name in ((13, "Model A"), (14, "Model B")):
        run = make_run(tmp_path / f"run{seed}", seed=seed, with_renders=False)
        bundles.append(tmp_path / f"b{seed}.tar.gz")
        pack_run(run, bundles[-1], submitter(model_name=name), include_assets=False)
    monkeypatch.setattr(adm, "entry_slug", lambda sub, disambiguate=False: "same")  # force a clash
    add_bundle(bundles[0], registry, date="2026-11-30")
    with pytest.raises(RegistryError, match="holds another submission \\('Model A'"):
        add_bundle(bundles[1], registry, date="2026-11-30", replace=True)
