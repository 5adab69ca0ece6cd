"""The 24 proper rotations of the cube (quarter turns about the axes and their compositions), named.

Light module (numpy only). Each rotation is a signed permutation matrix with determinant +1 in the
canonical Y-up frame of the renderer; its name gives the axis and angle in the right-hand sense:

- identity;
- ±90° and 180° about X, Y or Z (9);
- 180° about a face diagonal, e.g. ``180° about X+Y`` (6);
- ±120° about a body diagonal, e.g. ``+120° about X+Y+Z`` (8).

The axis is written with its first non-zero component positive (a rotation by θ about −a is the
rotation by −θ about a).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

__all__ = ["CUBE_ROTATIONS", "IDENTITY", "rotation_name", "up_axis_hint"]


def _axis_text(axis: np.ndarray) -> str:
    parts = []
    for value, letter in zip(axis, "XYZ", strict=True):
        if value != 0:
            parts.append(("+" if value > 0 else "−") + letter)
    text = "".join(parts)
    return text[1:] if text.startswith("+") else text


def rotation_name(rot: np.ndarray) -> str:
    """Human name of a proper cube rotation ``rot (3, 3)``: ``identity``, ``+90° about X``, …"""
    r = np.asarray(rot, dtype=np.float64)
    cos = (np.trace(r) - 1.0) / 2.0
    angle = round(math.degrees(math.acos(max(-1.0, min(1.0, cos)))))
    if angle == 0:
        return "identity"
    if angle == 180:
        axis = np.round(np.sqrt(np.clip((np.diagonal(r) + 1.0) / 2.0, 0.0, None)) * 1e6) / 1e6
        # signs of the off-diagonal terms fix the relative signs of the axis components
        k = int(np.argmax(axis))
        for j in range(3):
            if j != k and axis[j] > 0 and r[k, j] + r[j, k] < 0:
                axis[j] = -axis[j]
        axis = np.sign(axis).astype(int)
        if axis[np.nonzero(axis)[0][0]] < 0:
            axis = -axis
        return f"180° about {_axis_text(axis)}"
    axis = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    axis = np.sign(np.round(axis, 9)).astype(int)
    sign = "+"
    if axis[np.nonzero(axis)[0][0]] < 0:
        axis, sign = -axis, "−"
    return f"{sign}{angle}° about {_axis_text(axis)}"


def _all_rotations() -> list[tuple[str, np.ndarray]]:
    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            m = np.zeros((3, 3))
            for row, (col, s) in enumerate(zip(perm, signs, strict=True)):
                m[row, col] = s
            if round(np.linalg.det(m)) == 1:
                out.append((rotation_name(m), m))
    out.sort(key=lambda item: (item[0] != "identity", item[0]))
    return out


#: ``[(name, R (3, 3) float64)]``, the identity first; R acts on column vectors (p' = R p).
CUBE_ROTATIONS: list[tuple[str, np.ndarray]] = _all_rotations()
IDENTITY = 0


def up_axis_hint(turn: np.ndarray, declared_up: str) -> str:
    """What to do about generated assets turned by ``turn`` relative to the references.

    Loading with ``up_axis="z"`` applies (x, y, z) → (x, z, −y), a −90° turn about X; an asset written
    Z-up but declared Y-up therefore looks turned +90° about X, and the cure is to declare ``z`` (and
    the reverse). Any other turn has no up-axis cure: the adapter's export must rotate its assets.
    """
    plus_x = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])  # +90° about X
    if declared_up == "y" and np.allclose(turn, plus_x):
        return "declare up_axis=z"
    if declared_up == "z" and np.allclose(turn, plus_x.T):
        return "declare up_axis=y (the default)"
    return "rotate them back in the adapter (no up_axis setting undoes this turn)"
