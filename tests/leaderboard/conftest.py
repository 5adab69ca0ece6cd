"""Session fixtures for the leaderboard tests: a synthetic eligible run, its bundle, a registry, a site."""

from __future__ import annotations

from pathlib import Path

import pytest
from bundle_factory import HOSTILE, make_run, submitter

from leaderboard.admission import add_bundle
from leaderboard.pack import pack_run
from leaderboard.site import build_from_registry


@pytest.fixture(scope="session")
def run_template(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("runs") / "eligible")


@pytest.fixture(scope="session")
def good_bundle(tmp_path_factory, run_template) -> Path:
    out = tmp_path_factory.mktemp("bundles") / "good.tar.gz"
    pack_run(run_template, out, submitter())
    return out


@pytest.fixture(scope="session")
def registry(tmp_path_factory, good_bundle) -> Path:
    """Three accepted submissions (one with a hostile name and description) on mme3dr-v1."""
    root = tmp_path_factory.mktemp("registry")
    work = tmp_path_factory.mktemp("more-runs")
    add_bundle(good_bundle, root, date="2026-11-20")
    for seed, name in ((1, HOSTILE), (2, "Plain Model")):
        run = make_run(work / f"run{seed}", seed=seed, with_renders=seed == 1)
        bundle = work / f"b{seed}.tar.gz"
        pack_run(run, bundle, submitter(model_name=name, revision=f"v{seed}", description=HOSTILE))
        add_bundle(bundle, root, date=f"2026-11-2{seed}")
    return root


@pytest.fixture(scope="session")
def site(tmp_path_factory, registry) -> Path:
    out = tmp_path_factory.mktemp("site") / "site"
    build_from_registry(registry, out)
    return out

