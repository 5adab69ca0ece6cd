"""The registry: folder names never collide, and a taken folder is never mistaken for the same model."""

from __future__ import annotations

from pathlib import Path

import pytest
from bundle_factory import make_run, submitter

from leaderboard.admission import add_bundle
from leaderboard.pack import pack_run
from leaderboard.registry import RegistryError, entry_slug, iter_entries


def test_names_that_slugify_alike_get_different_folders() -> None:
    names = [("Tetra/X", "r1"), ("Tetra X", "r1"), ("Tetra-X", "r1"), ("Tetra", "X__r1"), ("Tetra__X", "r1"),
             ("a" * 81, "r1"), ("a" * 80, "r1")]
    slugs = [entry_slug(submitter(model_name=m, revision=r)) for m, r in names]
    assert len(set(slugs)) == len(slugs), slugs
    # A name that is already folder-safe keeps its plain folder name.
    assert entry_slug(submitter(model_name="Tetra-X", revision="r1")) == "Tetra-X__r1"


def test_tetra_slash_x_and_tetra_space_x_are_both_added(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    for seed, name in ((11, "Tetra/X"), (12, "Tetra X")):
        run = make_run(tmp_path / f"run{seed}", seed=seed, with_renders=False)
        bundle = tmp_path / f"b{seed}.tar.gz"
        pack_run(run, bundle, submitter(model_name=name), include_assets=False)
        add_bundle(bundle, registry, date="2026-11-30")
    names = sorted(e.submitter.model_name for _, e in iter_entries(registry))
    assert names == ["Tetra X", "Tetra/X"]


def test_a_folder_of_another_model_is_refused_by_name(tmp_path: Path, monkeypatch) -> None:
    import leaderboard.admission as adm

    registry = tmp_path / "registry"
    bundles = []
    for seed, name in ((13, "Model A"), (14, "Model B")):
        run = make_run(tmp_path / f"run{seed}", seed=seed, with_renders=False)
        bundles.append(tmp_path / f"b{seed}.tar.gz")
        pack_run(run, bundles[-1], submitter(model_name=name), include_assets=False)
    monkeypatch.setattr(adm, "entry_slug", lambda sub: "same")  # force a clash
    add_bundle(bundles[0], registry, date="2026-11-30")
    with pytest.raises(RegistryError, match="holds another submission \\('Model A'"):
        add_bundle(bundles[1], registry, date="2026-11-30", replace=True)
