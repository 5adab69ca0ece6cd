"""The built-in ``demo`` benchmark: 15 small procedural cases (3 per category), runnable anywhere, offline.

**A demo, never a benchmark result.** Its reference objects are built here from trimesh primitives
(deterministically: the same bytes on every machine with the same trimesh), and its prompts were
written for them. It exists so the whole pipeline (generate → store → render → features → metrics →
report) can run without Toys4K. Results on it are always ``leaderboard_eligible: false``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import trimesh

from mme3dr.assets import primitive_shapes as ps
from mme3dr.benchmark.manifest import Manifest, parse_manifest
from mme3dr.benchmark.taxonomy import Case

__all__ = ["DEMO_CASES", "DEMO_NAME", "DEMO_VERSION", "build_reference", "demo_manifest", "write_references"]

DEMO_NAME = "mme3dr-demo"
DEMO_VERSION = "1"
C = ps.COLOURS


def _table():
    legs = [ps.cylinder(0.05, 0.7, (x, 0.35, z), C["brown"], 12) for x in (-0.5, 0.5) for z in (-0.3, 0.3)]
    return [ps.box((1.2, 0.08, 0.8), (0, 0.74, 0), C["wooden"]), *legs]


def _block_stack():
    return [ps.box((0.6, 0.3, 0.6), (0, 0.15, 0), C["red"]),
            ps.box((0.5, 0.3, 0.5), (0, 0.45, 0), C["green"]),
            ps.box((0.4, 0.3, 0.4), (0, 0.75, 0), C["blue"])]


def _stool():
    legs = [ps.cylinder(0.035, 0.6, (0.22 * x, 0.3, 0.22 * z), C["black"], 12)
            for x, z in ((1, 0), (-0.5, 0.87), (-0.5, -0.87))]
    return [ps.cylinder(0.3, 0.06, (0, 0.63, 0), C["red"]), *legs]


def _toy_car():
    wheels = [ps.cylinder(0.14, 0.1, (x, 0.14, z), C["black"], 24, "z")
              for x in (-0.4, 0.4) for z in (-0.3, 0.3)]
    return [ps.box((1.2, 0.3, 0.55), (0, 0.32, 0), C["blue"]),
            ps.box((0.6, 0.25, 0.5), (-0.1, 0.6, 0), C["blue"]),
            *wheels]


def _hammer():
    return [ps.cylinder(0.04, 0.9, (0, 0.45, 0), C["wooden"], 16),
            ps.box((0.4, 0.12, 0.12), (0, 0.92, 0), C["grey"])]


def _mug():
    return [ps.cylinder(0.25, 0.5, (0, 0.25, 0), C["red"]),
            ps.torus(0.14, 0.04, (0.27, 0.27, 0), C["red"], "z")]


def _mushroom():
    return [ps.cylinder(0.09, 0.45, (0, 0.22, 0), C["white"]),
            ps.sphere(0.35, (0, 0.45, 0), C["red"], scale=(1.0, 0.55, 1.0))]


def _cactus():
    return [ps.capsule(0.13, 0.8, (0, 0.53, 0), C["green"]),
            ps.capsule(0.07, 0.25, (0.22, 0.7, 0), C["green"]),
            ps.capsule(0.07, 0.2, (-0.22, 0.55, 0), C["green"]),
            ps.cylinder(0.2, 0.2, (0, 0.1, 0), C["brown"])]


def _duck():
    return [ps.sphere(0.3, (0, 0.3, 0), C["yellow"], scale=(1.3, 0.9, 1.0)),
            ps.sphere(0.18, (0.3, 0.62, 0), C["yellow"]),
            ps.cone(0.06, 0.18, (0.45, 0.6, 0), C["orange"], 16)]


def _pawn():
    return [ps.cylinder(0.3, 0.12, (0, 0.06, 0), C["white"]), ps.cone(0.22, 0.6, (0, 0.1, 0), C["white"]),
            ps.torus(0.12, 0.04, (0, 0.5, 0), C["white"]), ps.sphere(0.15, (0, 0.65, 0), C["white"])]


def _saturn():
    return [ps.sphere(0.35, (0, 0.5, 0), C["golden"]), ps.torus(0.55, 0.05, (0, 0.5, 0), C["silver"])]


def _pyramid():
    # A four-sided cone is a square pyramid; rotated 45° by construction order of trimesh's sections.
    return [ps.cone(0.7, 0.7, (0, 0, 0), C["yellow"], 4)]


def _snowman():
    return [ps.sphere(0.35, (0, 0.35, 0), C["white"]), ps.sphere(0.25, (0, 0.9, 0), C["white"]),
            ps.sphere(0.17, (0, 1.3, 0), C["white"]), ps.cone(0.04, 0.2, (0, 1.3, 0.15), C["orange"], 12)]


def _donut():
    return [ps.torus(0.3, 0.13, (0, 0.13, 0), C["brown"]), ps.torus(0.3, 0.1, (0, 0.19, 0), C["pink"])]


def _rocket():
    return [ps.cylinder(0.15, 0.8, (0, 0.5, 0), C["white"]), ps.cone(0.15, 0.3, (0, 0.9, 0), C["red"]),
            *[ps.box((0.04, 0.25, 0.2), (0.15 * sx, 0.2, 0.0), C["red"]) for sx in (1, -1)]]


#: (case_id suffix, category, object name, prompt, builder)
DEMO_CASES: tuple[tuple[str, str, str, str, Callable[[], list[trimesh.Trimesh]]], ...] = (
    ("000", "spatial", "table", "A wooden table with four legs and a rectangular top.", _table),
    ("001", "spatial", "block_stack", "A stack of three blocks, red at the bottom, then green, then blue.",
     _block_stack),
    ("002", "spatial", "stool", "A round red stool standing on three black legs.", _stool),
    ("003", "mechanical", "toy_car", "A blue toy car with four black wheels.", _toy_car),
    ("004", "mechanical", "hammer", "A hammer with a wooden handle and a grey metal head.", _hammer),
    ("005", "mechanical", "mug", "A red mug with a handle on its side.", _mug),
    ("006", "biological", "mushroom", "A mushroom with a red cap on a white stem.", _mushroom),
    ("007", "biological", "cactus", "A green cactus with two arms in a brown pot.", _cactus),
    ("008", "biological", "duck", "A yellow duck with an orange beak.", _duck),
    ("009", "knowledge", "chess_pawn", "A white chess pawn.", _pawn),
    ("010", "knowledge", "saturn", "The planet Saturn with its ring.", _saturn),
    ("011", "knowledge", "pyramid", "An Egyptian pyramid with a square base.", _pyramid),
    ("012", "stylized", "snowman", "A cartoon snowman made of three white balls with a carrot nose.",
     _snowman),
    ("013", "stylized", "donut", "A toy donut with pink icing.", _donut),
    ("014", "stylized", "rocket", "A low-poly toy rocket with a red nose cone and fins.", _rocket),
)


def demo_manifest() -> Manifest:
    """The demo manifest (prompts included), hashed like any manifest file: sha256 of its JSONL bytes."""
    header = {"manifest": {"name": DEMO_NAME, "version": DEMO_VERSION,
                           "note": "built-in demo; not MME-3DR; never leaderboard-eligible"}}
    lines = [json.dumps(header, sort_keys=True)]
    for suffix, category, name, prompt, _build in DEMO_CASES:
        case = Case(case_id=f"demo-{suffix}", category=category, toys4k_category=name,
                    file_identifier=f"demo/{name}.glb", prompt=prompt)
        lines.append(json.dumps(case.to_dict(), sort_keys=True))
    return parse_manifest(("\n".join(lines) + "\n").encode("utf-8"), name=DEMO_NAME)


def build_reference(case_id: str) -> bytes:
    """The GLB bytes of a demo case's reference object."""
    for suffix, _cat, _name, _prompt, build in DEMO_CASES:
        if f"demo-{suffix}" == case_id:
            return ps.mesh_glb_bytes(build())
    raise KeyError(f"no demo case {case_id!r}; demo cases are demo-000 … demo-014")


def write_references(out_dir: str | Path) -> dict[str, Path]:
    """Write every reference GLB into ``out_dir`` (only when its bytes changed); ``case_id -> path``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for suffix, _cat, name, _prompt, _build in DEMO_CASES:
        case_id = f"demo-{suffix}"
        data = build_reference(case_id)
        path = out / f"{case_id}_{name}.glb"
        if not path.is_file() or path.read_bytes() != data:
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        paths[case_id] = path
    return paths
