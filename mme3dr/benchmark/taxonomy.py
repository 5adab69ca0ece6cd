"""The MME-3DR reasoning taxonomy: five categories and the ``Case`` record.

Light module: standard library only (no numpy, no torch, no OpenGL), so the leaderboard and the results
schema can import it anywhere.

The five categories, their display names and the v1 counts are the paper's (Tang et al., 2025,
"Are We Ready for RL in Text-to-3D Generation?", MME-3DR section; 54 vs 53 for mechanical/biological
is the most consistent reading of its figure). The definitions are ours, in our own words.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = [
    "CATEGORIES",
    "CATEGORY_IDS",
    "V1_COUNTS",
    "V1_TOTAL",
    "Case",
    "Category",
    "CaseError",
    "get_category",
]


class CaseError(ValueError):
    """A case record that does not follow the manifest schema (the message says which field and why)."""


@dataclass(frozen=True)
class Category:
    """One reasoning category of MME-3DR.

    ``id`` is the stable key written into manifests and results; never rename it within a version.
    """

    id: str
    name: str
    reasoning: str
    definition: str
    v1_count: int


CATEGORIES: tuple[Category, ...] = (
    Category(
        id="spatial",
        name="Spatial & Structural Geometry",
        reasoning="spatial reasoning",
        definition=(
            "Objects whose identity lies in how many parts there are and where they sit relative to one "
            "another: legs under a seat, rungs along rails, keys on a grid, layers in a stack. A model "
            "must plan a layout (counts, symmetry, support, containment) before it can draw the surface."
        ),
        v1_count=40,
    ),
    Category(
        id="mechanical",
        name="Mechanical Affordances",
        reasoning="physical reasoning",
        definition=(
            "Tools, vehicles, appliances and instruments defined by what they do: a handle one can grip, "
            "wheels that touch the ground, a blade with an edge, a hinge that opens. The shape has to "
            "carry its function, so the model must reason about how the parts would physically work."
        ),
        v1_count=54,
    ),
    Category(
        id="biological",
        name="Biological & Organic Shapes",
        reasoning="dynamic reasoning",
        definition=(
            "Animals, plants and fruit: smooth, non-rigid bodies with anatomy that follows growth and "
            "movement (limbs that bend, petals that curl, a tail that balances). Plausible pose and "
            "proportion matter more than straight edges."
        ),
        v1_count=53,
    ),
    Category(
        id="knowledge",
        name="World-Knowledge Rare Objects",
        reasoning="knowledge-based reasoning",
        definition=(
            "Low-frequency or fine-grained concepts that a caption alone does not describe fully: a "
            "particular dinosaur, a chess knight rather than a pawn, a moose rather than a deer. Getting "
            "them right needs facts about the world that are rare in 3D training data."
        ),
        v1_count=38,
    ),
    Category(
        id="stylized",
        name="Stylized Representation",
        reasoning="abstract reasoning",
        definition=(
            "Cartoon, toy-like, low-poly or otherwise abstracted versions of everyday things (sweets, "
            "food, toy figures), where the model must keep the concept recognisable while following a "
            "style rather than realism."
        ),
        v1_count=64,
    ),
)

#: Stable category ids, in the order used everywhere (manifest case ids, tables, plots).
CATEGORY_IDS: tuple[str, ...] = tuple(c.id for c in CATEGORIES)
#: Cases per category in MME-3DR v1 (paper-facts: 40/54/53/38/64, 249 in all).
V1_COUNTS: dict[str, int] = {c.id: c.v1_count for c in CATEGORIES}
V1_TOTAL: int = sum(V1_COUNTS.values())


def get_category(category_id: str) -> Category:
    """The category with this id; ``KeyError`` naming the valid ids otherwise."""
    for c in CATEGORIES:
        if c.id == category_id:
            return c
    raise KeyError(f"unknown MME-3DR category {category_id!r}; valid ids: {', '.join(CATEGORY_IDS)}")


_CASE_FIELDS = ("case_id", "category", "toys4k_category", "file_identifier", "sha256", "prompt")


@dataclass(frozen=True)
class Case:
    """One benchmark case: a Toys4K object and (once captions are resolved) its prompt.

    - ``case_id``: e.g. ``"mme3dr-v1-000"``; unique within a manifest.
    - ``category``: a reasoning category id (``CATEGORY_IDS``).
    - ``toys4k_category``: the Toys4K class, e.g. ``"chair"``.
    - ``file_identifier``: ``"<category>/<name>_NNN/<name>_NNN.blend"``, the object's path inside the
      official ``toys4k_blend_files.zip`` and the key of TRELLIS's ``Toys4k.csv``.
    - ``sha256``: TRELLIS's sha256 of the object file, when known (from the captions CSV).
    - ``prompt``: the text prompt, when resolved (captions[1] if present, else captions[0]).
    """

    case_id: str
    category: str
    toys4k_category: str
    file_identifier: str
    sha256: str | None = None
    prompt: str | None = None
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self) -> dict:
        """The JSON record (fixed key order; ``extra`` is not serialised)."""
        d = asdict(self)
        d.pop("extra")
        return {k: d[k] for k in _CASE_FIELDS}

    @classmethod
    def from_dict(cls, record: dict, *, where: str = "case") -> Case:
        """Parse and check one JSON record; raises ``CaseError`` saying which field is wrong."""
        if not isinstance(record, dict):
            raise CaseError(f"{where}: expected a JSON object, got {type(record).__name__}")
        missing = [k for k in _CASE_FIELDS[:4] if k not in record]
        if missing:
            need = ", ".join(_CASE_FIELDS[:4])
            raise CaseError(f"{where}: missing field(s) {', '.join(missing)}; every case needs {need}")
        for k in ("case_id", "category", "toys4k_category", "file_identifier"):
            if not isinstance(record[k], str) or not record[k]:
                raise CaseError(f"{where}: field {k!r} must be a non-empty string, got {record[k]!r}")
        for k in ("sha256", "prompt"):
            if record.get(k) is not None and not isinstance(record[k], str):
                raise CaseError(f"{where}: field {k!r} must be a string or null, got {record[k]!r}")
        sha = record.get("sha256")
        if sha is not None and (len(sha) != 64 or any(ch not in "0123456789abcdef" for ch in sha)):
            raise CaseError(f"{where}: field 'sha256' must be 64 lowercase hex digits, got {sha!r}")
        extra = {k: v for k, v in record.items() if k not in _CASE_FIELDS}
        return cls(
            case_id=record["case_id"],
            category=record["category"],
            toys4k_category=record["toys4k_category"],
            file_identifier=record["file_identifier"],
            sha256=sha,
            prompt=record.get("prompt"),
            extra=extra,
        )
