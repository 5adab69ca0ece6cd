"""The 24 cube rotations, their names, and the audit's decision rule."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from mme3dr.audit.frame import MARGIN, decide
from mme3dr.audit.rotations import CUBE_ROTATIONS, IDENTITY, up_axis_hint


def _rodrigues(axis: np.ndarray, degrees: float) -> np.ndarray:
    k = axis / np.linalg.norm(axis)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    t = math.radians(degrees)
    return np.eye(3) + math.sin(t) * kx + (1 - math.cos(t)) * kx @ kx


def _from_name(name: str) -> np.ndarray:
    if name == "identity":
        return np.eye(3)
    m = re.fullmatch(r"([+−]?)(\d+)° about ([+−]?[XYZ](?:[+−][XYZ])*)", name)
    assert m, name
    sign, angle, axis_text = m.groups()
    axis = np.zeros(3)
    for s, letter in re.findall(r"([+−]?)([XYZ])", axis_text):
        axis["XYZ".index(letter)] = -1.0 if s == "−" else 1.0
    return _rodrigues(axis, -float(angle) if sign == "−" else float(angle))


def test_24_distinct_proper_rotations_named_by_axis_and_angle():
    assert len(CUBE_ROTATIONS) == 24 and CUBE_ROTATIONS[IDENTITY][0] == "identity"
    mats = [r for _, r in CUBE_ROTATIONS]
    assert len({tuple(r.ravel()) for r in mats}) == 24
    for name, rot in CUBE_ROTATIONS:
        assert np.allclose(rot @ rot.T, np.eye(3)) and round(np.linalg.det(rot)) == 1
        assert np.allclose(_from_name(name), rot, atol=1e-9), name


def test_plus_90_about_x_is_what_an_undeclared_z_up_asset_looks_like():
    turn = dict(CUBE_ROTATIONS)["+90° about X"]
    assert np.allclose(turn @ [0, 1, 0], [0, 0, 1])  # the asset's +Y (its declared up) ends up on +Z
    assert up_axis_hint(turn, "y") == "declare up_axis=z"
    assert "rotate them back" in up_axis_hint(dict(CUBE_ROTATIONS)["180° about Y"], "y")


def _ious(rng, n, best=None):
    ious = rng.uniform(0.3, 0.5, size=(n, 24))
    ious[:, IDENTITY] = 0.5
    if best is not None:
        ious[:, best] = 0.5 + 2 * MARGIN
    return ious


def test_decide_flags_a_rotation_most_samples_prefer():
    rng = np.random.default_rng(0)
    best, share, _ = decide(_ious(rng, 20, best=5))
    assert best == 5 and share == 1.0


def test_decide_is_silent_when_orientations_agree_or_disagree_at_random():
    rng = np.random.default_rng(1)
    agree = _ious(rng, 20)
    assert decide(agree)[0] is None
    random_best = np.array([rng.uniform(0.2, 0.9, 24) for _ in range(30)])  # each sample its own favourite
    assert decide(random_best)[0] is None
    few = _ious(rng, 2, best=5)  # two samples are not enough to accuse anyone
    assert decide(few)[0] is None
    with pytest.raises(ValueError, match="ious must be"):
        decide(np.zeros((3, 5)))
