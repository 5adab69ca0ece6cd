"""The text side of the two-step rollout: instructions, chat messages, and the procedural prompt set.

Hi-GRPO (Tang et al. 2025, §5) asks each sample twice:

1. prompt + a high-level *semantic* instruction → plan s (subcategory, layout of key parts) → mesh t;
2. prompt + s + a low-level *visual* instruction → plan v (counts, symmetry, appearance) → mesh o.

The paper does not publish its instruction wording; ours is written here, versioned by
:data:`INSTRUCTIONS_VERSION`. The prompt wrapper is ShapeLLM-Omni's ("Please generate a 3D mesh based on
the prompt I provided: …", shapellm-facts.md).

The ``tiny-cpu`` task's prompts are descriptions of procedural shapes
(:class:`ar3d_r1.policy.shapes.ShapeSpec`, e.g. "a tall box", "a snowman with 3 balls"); each prompt
keeps its spec, so the geometric rewards can compare a generated shape with the described one, and the
SFT warm start can build target plans and target mesh tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INSTRUCTIONS_VERSION = "hi-grpo-instructions-v1"
PROMPT_WRAPPER = "Please generate a 3D mesh based on the prompt I provided: "
SEMANTIC_INSTRUCTION = (
    "Think about the object's category, the layout of its parts and its proportions, then answer with a mesh."
)
VISUAL_INSTRUCTION = (
    "Think about its counts, symmetry, colour, material and texture, then answer with a refined mesh."
)


def step1_messages(prompt: str) -> list[dict]:
    """Chat messages of step 1: the semantic instruction and the wrapped prompt."""
    return [{"role": "user", "content": f"{SEMANTIC_INSTRUCTION}\n{PROMPT_WRAPPER}{prompt}"}]


def step2_messages(prompt: str, plan: str) -> list[dict]:
    """Chat messages of step 2: the wrapped prompt, step 1's plan s, and the visual instruction."""
    return [{"role": "user", "content": f"{PROMPT_WRAPPER}{prompt}\n{plan}\n{VISUAL_INSTRUCTION}"}]


@dataclass(frozen=True)
class TaskPrompt:
    """One prompt of the geometry task: its text and the :class:`ShapeSpec` it describes."""

    text: str
    spec: object  # ar3d_r1.policy.shapes.ShapeSpec (kept untyped so this module imports no trimesh)

    def semantic_plan(self) -> str:
        """The plan s a well-behaved policy writes in step 1 (the SFT target)."""
        return f"semantic reasoning: the object is {self.spec.describe()}"

    def visual_plan(self) -> str:
        """The plan v a well-behaved policy writes in step 2 (the SFT target)."""
        from ar3d_r1.policy.shapes import PART_NAMES

        kind = self.spec.kind
        count = f"{self.spec.parts} {PART_NAMES[kind][0]}s" if kind in PART_NAMES else "one part"
        hole = "a hole" if kind in ("torus", "arch") else "no hole"
        return f"visual reasoning: {count}, symmetric left right, {hole}"


def geometry_prompts(n: int, seed: int = 0) -> list[TaskPrompt]:
    """``n`` procedural prompts with distinct texts, deterministic in ``seed``.

    Kinds cycle through every primitive and composition before repeating, so a small set still covers
    each reward dimension (part counts from compositions, holes from tori and arches).
    """
    from ar3d_r1.policy.shapes import PART_NAMES, SHAPE_KINDS, ShapeSpec

    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    rng = np.random.default_rng(seed)
    kinds = list(SHAPE_KINDS)
    rng.shuffle(kinds)
    out: list[TaskPrompt] = []
    seen: set[str] = set()
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 100 * n:
            raise ValueError(f"could not draw {n} distinct prompts; ask for fewer")
        kind = kinds[len(out) % len(kinds)] if attempts <= n else str(rng.choice(kinds))
        # proportions from a few distinct aspect classes, so "tall", "flat" and "long" all occur
        aspect = rng.choice(["tall", "flat", "long", "plain"])
        props = {"tall": (0.5, 1.0, 0.5), "flat": (1.0, 0.4, 1.0), "long": (1.0, 0.6, 0.5),
                 "plain": (1.0, 0.9, 0.9)}[str(aspect)]
        parts = int(rng.integers(PART_NAMES[kind][1], PART_NAMES[kind][2] + 1)) if kind in PART_NAMES else 1
        spec = ShapeSpec(kind, props, parts)
        text = spec.describe()
        if text in seen:
            continue
        seen.add(text)
        out.append(TaskPrompt(text=text, spec=spec))
    return out
