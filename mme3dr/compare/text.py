"""One sentence per metric for ``mme3dr compare`` ("oracle is higher on CLIP by 1.8 [0.9, 2.7] …")."""

from __future__ import annotations

from typing import Any

__all__ = ["metric_title", "sentence"]


def metric_title(name: str) -> str:
    """The metric class's ``title`` (``name`` for metrics without a class, e.g. ``judge``)."""
    from mme3dr.metrics.definitions import METRICS

    return METRICS[name].title if name in METRICS else name


def _num(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:.0f}"


def _p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def sentence(label: str, baseline: str, metric: str, stats: dict[str, Any], higher_is_better: bool,
             correction: str | None = None) -> str:
    """``"<label> is higher on <title> by |Δ| [low, high] than <baseline>, p = …, N pairs."`` plus whether
    that is better, and a note when the 95% interval includes 0 (not significant). The interval is
    that of the amount in the sentence's direction (for "lower", the negated CI of Δ)."""
    delta = stats["delta"]
    if delta == 0:
        head = f"{label} and {baseline} tie on {metric_title(metric)} (0 [{_num(stats['ci95_low'])}, " \
               f"{_num(stats['ci95_high'])}])"
    else:
        word = "higher" if delta > 0 else "lower"
        better = (delta > 0) == higher_is_better
        # "lower by 0.5 [0.2, 0.9]": the interval of the amount, in the sentence's direction
        low, high = (stats["ci95_low"], stats["ci95_high"]) if delta > 0 else (-stats["ci95_high"],
                                                                              -stats["ci95_low"])
        head = (f"{label} is {word} on {metric_title(metric)} by {_num(abs(delta))} "
                f"[{_num(low)}, {_num(high)}] than {baseline} "
                f"({'better' if better else 'worse'})")
    parts = [head]
    if stats.get("p_value") is not None:
        parts.append(_p(stats["p_value"]) + (" (Holm-adjusted)" if correction == "holm" else ""))
        parts.append(f"{stats['n_pairs']} pairs")
    else:
        parts.append(f"{stats['n_cases']} cases resampled jointly")
    text = ", ".join(parts) + "."
    if delta != 0 and stats["ci95_low"] <= 0 <= stats["ci95_high"]:
        text += " The 95% interval includes 0: not a significant difference."
    return text
