"""``primitives``: a deterministic baseline that builds a scene of primitive shapes from the prompt's words.

**A baseline, not a model.** It reads the prompt's nouns, colour words and counts ("three red balls",
"a chair with five legs") and composes trimesh primitives: spheres, boxes, cylinders, cones, tori,
capsules, plus a few fixed composites (chair, table, car, tree, snowman, mushroom, house). It needs no
weights and no network, ignores the seed (the same prompt always gives the same bytes), and runs in
milliseconds. It exists as a lower bound for the metrics and as the runnable demo of the pipeline.
"""

from __future__ import annotations

import re
from pathlib import Path

import trimesh

from mme3dr.assets import primitive_shapes as ps
from mme3dr.models.protocol import BaseTextTo3DModel, GenerationRequest, ModelInfo

__all__ = ["NOUN_SHAPES", "PrimitivesModel", "parse_prompt", "build_parts"]

#: Noun -> simple shape. Plurals are handled by stripping a trailing "s"/"es".
NOUN_SHAPES: dict[str, str] = {
    **dict.fromkeys(["ball", "sphere", "orb", "globe", "planet", "apple", "orange", "marble", "bubble",
                     "head", "balloon", "melon", "tomato", "cherry", "pearl", "bead"], "sphere"),
    **dict.fromkeys(["egg", "lemon", "bird", "duck", "fish", "mouse", "body", "potato"], "ellipsoid"),
    **dict.fromkeys(["box", "cube", "block", "crate", "chest", "brick", "book", "dice", "die", "cabinet",
                     "drawer", "phone", "laptop", "building", "bed", "sofa", "couch", "keyboard"], "box"),
    **dict.fromkeys(["cup", "mug", "can", "bottle", "jar", "vase", "pillar", "column", "pipe", "tower",
                     "drum", "candle", "glass", "bucket", "pot", "barrel", "coin", "stump", "cake"],
                    "cylinder"),
    **dict.fromkeys(["cone", "hat", "spike", "carrot", "roof", "pyramid", "horn", "rocket"], "cone"),
    **dict.fromkeys(["ring", "donut", "doughnut", "tire", "tyre", "wheel", "bagel", "hoop"], "torus"),
    **dict.fromkeys(["pill", "capsule", "sausage", "banana", "worm", "bone", "pencil", "cucumber",
                     "candy", "crayon"], "capsule"),
    **dict.fromkeys(["chair", "stool"], "chair"),
    **dict.fromkeys(["table", "desk"], "table"),
    **dict.fromkeys(["car", "truck", "bus", "train", "vehicle"], "car"),
    **dict.fromkeys(["tree", "plant", "bush", "cactus"], "tree"),
    **dict.fromkeys(["snowman"], "snowman"),
    **dict.fromkeys(["mushroom", "toadstool"], "mushroom"),
    **dict.fromkeys(["house", "hut", "cottage", "barn"], "house"),
}
_NUMBERS = {"a": 1, "an": 1, "one": 1, "single": 1, "two": 2, "pair": 2, "three": 3, "four": 4, "five": 5,
            "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10}
_PART_COUNTS = {"leg", "wheel", "arm", "window", "layer", "tier"}
_MAX_COUNT = 8
_GREY = (204, 204, 204)  # 0.8 grey, the protocol's colour for uncoloured assets


def _singular(word: str) -> str:
    for suffix, repl in (("ies", "y"), ("oes", "o"), ("es", ""), ("s", "")):
        if word.endswith(suffix) and word[: -len(suffix)] + repl in NOUN_SHAPES | dict.fromkeys(_PART_COUNTS):
            return word[: -len(suffix)] + repl
    return word


def parse_prompt(prompt: str) -> tuple[list[tuple[str, str, int, tuple[int, int, int]]], dict[str, int]]:
    """Objects ``[(noun, shape, count, rgb)]`` and part counts (``{"leg": 5}``) found in ``prompt``.

    A count or colour word applies to the next noun; a noun without its own colour takes the prompt's
    first colour word. At most three objects are kept (the first ones named).
    """
    words = [_singular(w) for w in re.findall(r"[a-z0-9]+", prompt.lower())]
    # The prompt's "main" colour: the first colour word that does not describe a counted part
    # ("a blue car with four black wheels" is blue, not black).
    first_colour = next((ps.COLOURS[w] for i, w in enumerate(words)
                         if w in ps.COLOURS and (i + 1 >= len(words) or words[i + 1] not in _PART_COUNTS)),
                        None)
    objects: list[tuple[str, str, int, tuple[int, int, int]]] = []
    parts: dict[str, int] = {}
    count, colour = 1, None
    for w in words:
        if w.isdigit():
            count = max(1, min(int(w), _MAX_COUNT))
        elif w in _NUMBERS:
            count = _NUMBERS[w]
        elif w in ps.COLOURS:
            colour = ps.COLOURS[w]
        elif w in _PART_COUNTS and count > 1:
            parts[w] = count
            count, colour = 1, None
        elif w in NOUN_SHAPES:
            if len(objects) < 3 and all(noun != w for noun, *_ in objects):
                objects.append((w, NOUN_SHAPES[w], count, colour or first_colour or _GREY))
            count, colour = 1, None
    return objects, parts


def _composite(shape: str, rgb, parts: dict[str, int], x: float) -> list[trimesh.Trimesh]:
    legs = parts.get("leg", 4)
    if shape in ("chair", "table"):
        top_y = 0.45 if shape == "chair" else 0.7
        out = [ps.box((0.8, 0.08, 0.8), (x, top_y, 0), rgb)]
        for lx, lz in _ring_points(legs, 0.33):
            out.append(ps.cylinder(0.04, top_y, (x + lx, top_y / 2, lz), rgb, sections=12))
        if shape == "chair":
            out.append(ps.box((0.8, 0.7, 0.08), (x, top_y + 0.35, -0.36), rgb))
        return out
    if shape == "car":
        wheels = parts.get("wheel", 4)
        out = [ps.box((1.2, 0.35, 0.6), (x, 0.35, 0), rgb), ps.box((0.6, 0.25, 0.5), (x, 0.65, 0), rgb)]
        for k in range(wheels):
            wx = x - 0.4 + 0.8 * (k // 2) / max(1, (wheels - 1) // 2)
            wz = 0.32 if k % 2 == 0 else -0.32
            out.append(ps.cylinder(0.15, 0.1, (wx, 0.15, wz), ps.COLOURS["black"], 24, "z"))
        return out
    if shape == "tree":
        return [ps.cylinder(0.08, 0.6, (x, 0.3, 0), ps.COLOURS["brown"]),
                ps.sphere(0.35, (x, 0.85, 0), rgb if rgb != _GREY else ps.COLOURS["green"])]
    if shape == "snowman":
        return [ps.sphere(r, (x, y, 0), rgb if rgb != _GREY else ps.COLOURS["white"])
                for r, y in ((0.35, 0.35), (0.25, 0.9), (0.17, 1.3))]
    if shape == "mushroom":
        return [ps.cylinder(0.1, 0.4, (x, 0.2, 0), ps.COLOURS["white"]),
                ps.sphere(0.35, (x, 0.45, 0), rgb if rgb != _GREY else ps.COLOURS["red"], scale=(1, 0.5, 1))]
    if shape == "house":
        roof = ps.cone(0.65, 0.45, (x, 0.6, 0), ps.COLOURS["red"], sections=4)
        return [ps.box((0.8, 0.6, 0.8), (x, 0.3, 0), rgb), roof]
    raise KeyError(shape)


def _ring_points(n: int, r: float) -> list[tuple[float, float]]:
    import math

    return [(r * math.cos(2 * math.pi * (k + 0.5) / n), r * math.sin(2 * math.pi * (k + 0.5) / n))
            for k in range(n)]


def _simple(shape: str, rgb, x: float, y: float) -> trimesh.Trimesh:
    if shape == "sphere":
        return ps.sphere(0.3, (x, y + 0.3, 0), rgb)
    if shape == "ellipsoid":
        return ps.sphere(0.3, (x, y + 0.2, 0), rgb, scale=(1.3, 0.7, 0.8))
    if shape == "box":
        return ps.box((0.5, 0.5, 0.5), (x, y + 0.25, 0), rgb)
    if shape == "cylinder":
        return ps.cylinder(0.22, 0.6, (x, y + 0.3, 0), rgb)
    if shape == "cone":
        return ps.cone(0.3, 0.7, (x, y, 0), rgb)
    if shape == "torus":
        return ps.torus(0.3, 0.1, (x, y + 0.1, 0), rgb)
    if shape == "capsule":
        return ps.capsule(0.12, 0.5, (x, y + 0.37, 0), rgb)
    raise KeyError(shape)


def build_parts(prompt: str) -> list[trimesh.Trimesh]:
    """The coloured parts for ``prompt`` (a grey sphere when no known noun appears)."""
    objects, parts = parse_prompt(prompt)
    if not objects:
        objects = [("thing", "sphere", 1, _GREY)]
    meshes: list[trimesh.Trimesh] = []
    x = 0.0
    for _noun, shape, count, rgb in objects:
        for _k in range(count):
            if shape in ("sphere", "ellipsoid", "box", "cylinder", "cone", "torus", "capsule"):
                meshes.append(_simple(shape, rgb, x, 0.0))
                x += 0.75
            else:
                meshes.extend(_composite(shape, rgb, parts, x))
                x += 1.4
    return meshes


class PrimitivesModel(BaseTextTo3DModel):
    """The ``primitives`` baseline adapter (GLB with vertex colours)."""

    requirements = {"extra": "-", "weights": "-", "gpu": "no"}

    info = ModelInfo(name="primitives-baseline", revision="1", output_format="glb", license="Apache-2.0",
                     open_weights=True, deterministic=True)
    max_batch_size = 16

    def generate_one(self, request: GenerationRequest) -> Path:
        return ps.write_glb(build_parts(request.prompt), request.output_path("glb"))
