"""The paper's Table 4 numbers, shown on the site as "reported in paper, not verified" rows.

Source: Tang et al., "Are We Ready for RL in Text-to-3D Generation? A Progressive Investigation",
arXiv 2512.10949, Table 4 (KD reported x100). These numbers were produced with the authors' own,
partly unreleased evaluation set-up (the MME-3DR case list is not public; renderer, views and metric
definitions differ from protocol v1: see ``docs/leaderboard.md``). They are therefore **not comparable**
with verified rows and are never placed in the same table as them: the site renders them in a separate,
labelled table, and ``leaderboard.csv`` leaves them out.

The values are typed in from the paper, not computed; there is nothing to verify them against.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The label every reference row carries, on the site and in ``leaderboard.json``.
REFERENCE_LABEL = "reported in paper, not verified"
PAPER_CITATION = "Tang et al., arXiv 2512.10949, Table 4"

#: Benchmark names as used by ``mme3dr.benchmark.manifest.load_manifest``.
PAPER_BENCHMARKS: dict[str, str] = {"mme3dr-v1": "MME-3DR", "toys4k-800": "Toys4K (800 random objects)"}


@dataclass(frozen=True)
class ReferenceRow:
    """One model's numbers on one benchmark as printed in the paper (``None``: not reported)."""

    benchmark: str
    model_name: str
    metrics: dict[str, float]
    source: str = PAPER_CITATION
    label: str = REFERENCE_LABEL


# model: (MME-3DR CLIP, KD_incep, KD_dinov2, FD_incep, Toys4K CLIP, KD_incep, KD_dinov2, FD_incep)
_TABLE4: dict[str, tuple[float, float, float, float, float, float, float, float]] = {
    "LGM": (16.3, 1.507, 49.10, 47.8, 20.6, 1.192, 36.79, 41.0),
    "3DTopia-XL": (15.9, 1.635, 78.41, 61.9, 18.8, 1.439, 56.23, 54.3),
    "SAR3D": (16.7, 1.374, 16.89, 38.6, 20.0, 0.650, 15.84, 29.5),
    "TRELLIS": (23.4, 0.302, 4.27, 27.5, 26.8, 0.175, 2.67, 23.1),
    "ShapeLLM-Omni": (19.8, 0.451, 6.73, 34.1, 22.7, 0.249, 3.27, 27.7),
    "AR3D-R1": (28.5, 0.194, 2.74, 25.9, 29.3, 0.156, 1.85, 20.4),
}
_COLUMNS = ("clip", "kd_incep", "kd_dinov2", "fd_incep")


def reference_rows(benchmark: str | None = None) -> list[ReferenceRow]:
    """Table 4 rows, in the paper's order, for one benchmark (or both when ``benchmark`` is None)."""
    if benchmark is not None and benchmark not in PAPER_BENCHMARKS:
        return []
    rows: list[ReferenceRow] = []
    for bench_index, bench in enumerate(PAPER_BENCHMARKS):
        if benchmark is not None and bench != benchmark:
            continue
        for model, values in _TABLE4.items():
            part = values[4 * bench_index : 4 * bench_index + 4]
            metrics = dict(zip(_COLUMNS, part, strict=True))
            rows.append(ReferenceRow(benchmark=bench, model_name=model, metrics=metrics))
    return rows
