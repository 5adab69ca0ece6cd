"""The ``tiny-cpu`` task's prompt set, and the plans a well-behaved policy writes (the SFT targets).

The chat messages of the two steps are the evaluation adapter's (:func:`ar3d_r1.policy.generation.
build_messages`, versioned by its ``PROMPT_VERSION``), so a policy is trained exactly as it is asked at
evaluation: step 1 is the wrapped prompt + the semantic instruction, step 2 continues that conversation
with the plan s and the visual instruction.

The prompts are descriptions of procedural shapes (:class:`ar3d_r1.policy.shapes.ShapeSpec`, e.g. "a
tall sphere", "a tower with 5 tiers", "a long arch"); each keeps its spec, so the geometric rewards can
compare a generated shape with the described one, and the SFT warm start can build its targets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def step1_messages(prompt: str) -> list[dict]:
    """Step 1's chat messages (the adapter's ``build_messages(prompt, 1)``)."""
    from ar3d_r1.policy.generation import build_messages

    return build_messages(prompt, 1)


def step2_messages(prompt: str, plan: str) -> list[dict]:
    """Step 2's chat messages: step 1's turn, its plan s, the visual instruction."""
    from ar3d_r1.policy.generation import build_messages

    return build_messages(prompt, 2, plan)


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
        return f"visual reasoning: {count}"


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
