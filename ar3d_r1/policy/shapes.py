"""Procedural shapes: primitives and compositions of them, as a small spec that renders to a trimesh.

The ``tiny-cpu`` pipeline's data (design.md §6): the VQVAE is fitted on these shapes voxelised, and the
trainer's toy task asks for them by description ("a wide table with 5 legs") and rewards proportions,
part counts and silhouettes. A :class:`ShapeSpec` is plain data (JSON-able, hashable), so a prompt's
target can be stored and re-built exactly.

Frame: Y up; :meth:`ShapeSpec.to_mesh` returns the parts concatenated (overlapping closed solids) with
their bounding box spanning ``proportions`` (width x, height y, depth z) before any normalisation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import trimesh

__all__ = [
    "COMPOSITIONS",
    "PART_NAMES",
    "PRIMITIVES",
    "SHAPE_KINDS",
    "ShapeSpec",
    "sample_shape_spec",
    "shape_grids",
    "voxelise_shape",
]

PRIMITIVES: tuple[str, ...] = ("box", "sphere", "cylinder", "cone", "torus", "capsule")
COMPOSITIONS: tuple[str, ...] = ("table", "chair", "snowman", "tower", "dumbbell", "mushroom", "lamp", "arch")
SHAPE_KINDS: tuple[str, ...] = PRIMITIVES + COMPOSITIONS
#: Kinds whose ``parts`` is a count the prompt names, with the word for one part and the allowed range.
PART_NAMES: dict[str, tuple[str, int, int]] = {
    "table": ("leg", 3, 6), "chair": ("leg", 3, 5), "snowman": ("ball", 2, 4), "tower": ("tier", 2, 5),
}
_SECTIONS = 24


def _box(extents, centre) -> trimesh.Trimesh:
    return trimesh.creation.box(extents=extents, transform=trimesh.transformations.translation_matrix(centre))


def _cylinder(radius, height, centre, sections=_SECTIONS) -> trimesh.Trimesh:
    # trimesh cylinders run along z; turn them to stand along y (the up axis).
    m = trimesh.creation.cylinder(radius=radius, height=height, sections=sections)
    m.apply_transform(trimesh.transformations.rotation_matrix(-math.pi / 2, (1, 0, 0)))
    m.apply_translation(centre)
    return m


def _sphere(radius, centre) -> trimesh.Trimesh:
    m = trimesh.creation.icosphere(subdivisions=2, radius=radius)
    m.apply_translation(centre)
    return m


def _unit_primitive(kind: str) -> trimesh.Trimesh:
    """A primitive fitting [-0.5, 0.5]^3 (before scaling to the proportions), standing along y."""
    if kind == "box":
        return _box((1, 1, 1), (0, 0, 0))
    if kind == "sphere":
        return _sphere(0.5, (0, 0, 0))
    if kind == "cylinder":
        return _cylinder(0.5, 1.0, (0, 0, 0))
    if kind == "cone":
        m = trimesh.creation.cone(radius=0.5, height=1.0, sections=_SECTIONS)
        m.apply_transform(trimesh.transformations.rotation_matrix(-math.pi / 2, (1, 0, 0)))
        m.apply_translation((0, -0.5, 0))
        return m
    if kind == "torus":  # lying flat (ring in the x-z plane), tube radius 0.15 of the whole
        m = trimesh.creation.torus(major_radius=0.35, minor_radius=0.15, major_sections=32, minor_sections=12)
        m.apply_transform(trimesh.transformations.rotation_matrix(-math.pi / 2, (1, 0, 0)))
        return m
    if kind == "capsule":
        m = trimesh.creation.capsule(height=0.5, radius=0.25, count=(12, 12))
        m.apply_transform(trimesh.transformations.rotation_matrix(-math.pi / 2, (1, 0, 0)))
        return m
    raise KeyError(kind)


def _ring(n: int, radius: float) -> list[tuple[float, float]]:
    return [(radius * math.cos(2 * math.pi * (k + 0.5) / n), radius * math.sin(2 * math.pi * (k + 0.5) / n))
            for k in range(n)]


def _composition(kind: str, parts: int) -> list[trimesh.Trimesh]:
    """The parts of a composition in a roughly unit box, standing on y = 0."""
    if kind in ("table", "chair"):
        seat_y = 0.7 if kind == "table" else 0.45
        out = [_box((1.0, 0.1, 1.0), (0, seat_y, 0))]
        out += [_cylinder(0.06, seat_y, (x, seat_y / 2, z), 12) for x, z in _ring(parts, 0.55)]
        if kind == "chair":
            out.append(_box((1.0, 0.6, 0.1), (0, seat_y + 0.35, -0.45)))
        return out
    if kind == "snowman":
        out, y = [], 0.0
        for i in range(parts):
            r = 0.35 * 0.78 ** i
            out.append(_sphere(r, (0, y + r, 0)))
            y += 1.7 * r
        return out
    if kind == "tower":
        out, y = [], 0.0
        for i in range(parts):
            w, h = 1.0 - 0.6 * i / parts, 0.35
            out.append(_box((w, h, w), (0, y + h / 2, 0)))
            y += h
        return out
    if kind == "dumbbell":
        return [_cylinder(0.08, 1.0, (0, 0, 0), 12).apply_transform(
            trimesh.transformations.rotation_matrix(math.pi / 2, (0, 0, 1))),
            _sphere(0.25, (-0.5, 0, 0)), _sphere(0.25, (0.5, 0, 0))]
    if kind == "mushroom":
        cap = _sphere(0.5, (0, 0.5, 0))
        cap.apply_scale((1.0, 0.5, 1.0))
        return [_cylinder(0.15, 0.5, (0, 0.25, 0)), cap]
    if kind == "lamp":
        shade = trimesh.creation.cone(radius=0.4, height=0.4, sections=_SECTIONS)
        shade.apply_transform(trimesh.transformations.rotation_matrix(-math.pi / 2, (1, 0, 0)))
        shade.apply_translation((0, 0.8, 0))
        return [_cylinder(0.35, 0.08, (0, 0.04, 0)), _cylinder(0.04, 0.85, (0, 0.45, 0), 12), shade]
    if kind == "arch":
        return [_box((0.25, 0.9, 0.4), (-0.45, 0.45, 0)), _box((0.25, 0.9, 0.4), (0.45, 0.45, 0)),
                _box((1.15, 0.25, 0.4), (0, 1.0, 0))]
    raise KeyError(kind)


@dataclass(frozen=True)
class ShapeSpec:
    """One procedural shape.

    - ``kind``: one of :data:`SHAPE_KINDS` (a primitive or a composition);
    - ``proportions``: (width, height, depth) of its bounding box, each > 0 (only ratios matter once the
      shape is normalised);
    - ``parts``: the counted parts of a composition in :data:`PART_NAMES` (legs, balls, tiers); 1 else.
    """

    kind: str
    proportions: tuple[float, float, float] = (1.0, 1.0, 1.0)
    parts: int = 1

    def __post_init__(self) -> None:
        if self.kind not in SHAPE_KINDS:
            raise ValueError(f"unknown shape kind {self.kind!r}; known: {', '.join(SHAPE_KINDS)}")
        props = tuple(float(p) for p in self.proportions)
        if len(props) != 3 or not all(p > 0 and math.isfinite(p) for p in props):
            raise ValueError(f"proportions must be three positive numbers, got {self.proportions!r}")
        object.__setattr__(self, "proportions", props)
        if self.kind in PART_NAMES:
            _, lo, hi = PART_NAMES[self.kind]
            if not lo <= int(self.parts) <= hi:
                raise ValueError(f"a {self.kind} has {lo}..{hi} parts, got {self.parts}")
        elif self.parts != 1:
            raise ValueError(f"a {self.kind} has no counted parts (parts must be 1)")

    def to_mesh(self) -> trimesh.Trimesh:
        """The shape's triangles (float64, Y up), its bounding box spanning ``proportions`` centred at 0."""
        if self.kind in PRIMITIVES:
            pieces = [_unit_primitive(self.kind)]
        else:
            pieces = _composition(self.kind, int(self.parts))
        mesh = trimesh.util.concatenate(pieces)
        lo, hi = mesh.bounds
        mesh.apply_translation(-(lo + hi) / 2)
        mesh.vertices = mesh.vertices / (hi - lo) * np.asarray(self.proportions)
        return mesh

    def describe(self) -> str:
        """A short English description usable as a prompt, e.g. ``"a wide table with 5 legs"``."""
        w, h, d = self.proportions
        aspect = ("tall " if h > 1.4 * max(w, d) else "flat " if h < 0.6 * max(w, d)
                  else "long " if max(w, d) > 1.6 * min(w, d) else "")
        text = f"a {aspect}{self.kind}"
        if self.kind in PART_NAMES:
            text += f" with {self.parts} {PART_NAMES[self.kind][0]}s"
        return text.replace("a a", "an a")

    def to_dict(self) -> dict:
        return {**asdict(self), "proportions": list(self.proportions)}

    @classmethod
    def from_dict(cls, data: dict) -> ShapeSpec:
        return cls(kind=data["kind"], proportions=tuple(data["proportions"]), parts=int(data.get("parts", 1)))


def sample_shape_spec(rng: np.random.Generator, kinds: tuple[str, ...] = SHAPE_KINDS) -> ShapeSpec:
    """A random spec: a kind from ``kinds``, proportions each in [0.4, 1.0], a part count in its range."""
    kind = str(rng.choice(list(kinds)))
    props = tuple(float(p) for p in rng.uniform(0.4, 1.0, size=3))
    parts = 1
    if kind in PART_NAMES:
        _, lo, hi = PART_NAMES[kind]
        parts = int(rng.integers(lo, hi + 1))
    return ShapeSpec(kind, props, parts)


def voxelise_shape(
    spec: ShapeSpec, resolution: int, *, fill: bool = True, frame: str = "canonical"
) -> np.ndarray:
    """``spec`` -> (R, R, R) bool occupancy via :func:`ar3d_r1.policy.voxels.voxelise`."""
    from ar3d_r1.policy.voxels import voxelise

    return voxelise(spec.to_mesh(), resolution, frame=frame, fill=fill)  # type: ignore[arg-type]


def shape_grids(
    n: int, resolution: int, *, seed: int = 0, fill: bool = True, kinds: tuple[str, ...] = SHAPE_KINDS
) -> tuple[list[ShapeSpec], np.ndarray]:
    """``n`` random specs from ``seed`` and their (n, R, R, R) bool grids (deterministic in the seed)."""
    rng = np.random.default_rng(seed)
    specs = [sample_shape_spec(rng, kinds) for _ in range(n)]
    grids = np.stack([voxelise_shape(s, resolution, fill=fill) for s in specs]) if n else np.zeros(
        (0, resolution, resolution, resolution), dtype=bool)
    return specs, grids
