"""Every number of a submitted run is possible: finite, in its metric's range, consistent with its CI,
and (where ``samples.jsonl`` holds what it counts) re-derived from the samples.

``results.json`` ``results[task]`` rows hold, per metric ``M``: ``M``, ``M_ci95_low``, ``M_ci95_high``,
``M_std``, and counts ``n``, ``n_failed`` (and the judge's ``judge_n``, ``judge_n_failed``). Rules:

- every number is a finite int or float (not a JSON boolean);
- ``M`` and its CI ends lie in ``M``'s range: the metric class's ``lower_bound``/``upper_bound``
  (``mme3dr.metrics``: CLIP 0–100, FD ≥ 0, the script's RBF similarity 0–1; KD's unbiased estimator
  can be slightly negative, so its floor is a plausibility bound, −scale × :data:`FLOOR_IN_SCALES`)
  or :data:`EXTRA_RANGES` for per-asset diagnostics;
- ``M_std`` ≥ 0, and ``M_ci95_low`` ≤ ``M`` ≤ ``M_ci95_high``;
- counts are integers ≥ 0; ``n`` and ``n_failed`` of the overall row and of each category row equal
  the ``ok`` and ``failed`` records of ``samples.jsonl``; ``judge_n + judge_n_failed == n``;
- each sample's per-asset metric values are finite and in range; ``results.failures`` counts ≥ 0.

The means and CIs of per-asset metrics are recomputed from the samples by
``content_checks.check_aggregates``. Light module: standard library and ``mme3dr.metrics`` (numpy).
"""

from __future__ import annotations

import math
from collections import Counter

from leaderboard.content_checks import Problem
from mme3dr.results import Results, SampleRecord

#: Ranges of per-asset values that are not metric classes (100 × cosine; 100 × yes-fraction).
EXTRA_RANGES: dict[str, tuple[float | None, float | None]] = {"reference_clip": (0.0, 100.0),
                                                              "judge": (0.0, 100.0)}
COUNT_KEYS = ("n", "n_failed", "judge_n", "judge_n_failed")
SUFFIXES = ("_ci95_low", "_ci95_high", "_std")
#: Slack for ``low <= mean <= high`` (the values are rounded to 12 significant digits).
TOLERANCE = 1e-9


#: Plausibility floor of a metric the class leaves unbounded below (KD), in units of its ``scale``.
#: KD's unbiased MMD² estimator dips below 0 only by sampling noise, a small fraction of the kernel's
#: values; a raw MMD² of -1 (KD -100 at ×100) is far beyond any such noise, so anything lower is refused.
FLOOR_IN_SCALES = 1.0


def metric_range(name: str) -> tuple[float | None, float | None]:
    """``(lower, upper)`` bounds of metric ``name`` (None: unbounded on that side). A metric class
    without a lower bound (KD) gets the plausibility floor ``-scale × FLOOR_IN_SCALES``."""
    from mme3dr.metrics import METRICS

    cls = METRICS.get(name)
    if cls is not None:
        low = cls.lower_bound if cls.lower_bound is not None else -cls.scale * FLOOR_IN_SCALES
        return low, cls.upper_bound
    return EXTRA_RANGES.get(name, (None, None))


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(value: float | int) -> bool:
    """``math.isfinite`` that also refuses an int too large for a float (JSON allows 1 followed by 400
    zeros; ``math.isfinite`` would raise OverflowError on it)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _out_of(value: float, bounds: tuple[float | None, float | None]) -> bool:
    low, high = bounds
    return (low is not None and value < low - TOLERANCE) or (high is not None and value > high + TOLERANCE)


def _split(key: str) -> tuple[str, str]:
    for suffix in SUFFIXES:
        if key.endswith(suffix):
            return key[: -len(suffix)], suffix
    return key, ""


def check_row(task: str, row: dict) -> list[Problem]:
    """The numbers of one ``results[task]`` row, on their own (finite, ranges, std, CI order)."""
    out: list[Problem] = []
    where = f"results[{task!r}]"
    for key, value in sorted(row.items()):
        if key == "alias" or value is None or isinstance(value, str):
            continue
        if not _number(value):
            out.append(Problem("numbers", f"{where}[{key!r}] is {value!r}, not a number"))
            continue
        if not _finite(value):
            shown = value if isinstance(value, float) else f"an integer of {len(str(value))} digits"
            out.append(Problem("numbers", f"{where}[{key!r}] is {shown}: every number must be finite"))
            continue
        if key in COUNT_KEYS:
            if value < 0 or value != int(value) or isinstance(value, float):
                out.append(Problem("numbers", f"{where}[{key!r}] is {value}, not a count (an integer >= 0)"))
            continue
        name, suffix = _split(key)
        if suffix == "_std":
            if value < 0:
                out.append(Problem("numbers", f"{where}[{key!r}] is {value}: a standard deviation is >= 0"))
        elif _out_of(value, metric_range(name)):
            low, high = metric_range(name)
            span = f"[{'-inf' if low is None else f'{low:g}'}, {'inf' if high is None else f'{high:g}'}]"
            out.append(Problem("numbers", f"{where}[{key!r}] is {value}, outside {name}'s range {span}"))
    for key, value in row.items():
        low, high = row.get(f"{key}_ci95_low"), row.get(f"{key}_ci95_high")
        trio = (value, low, high)
        if (all(_number(v) and _finite(v) for v in trio)
                and not low - TOLERANCE <= value <= high + TOLERANCE):
            out.append(Problem("numbers", f"{where}: {key} {value} is not inside its 95% CI [{low}, {high}]"))
    return out


def check_counts(res: Results, samples: list[SampleRecord]) -> list[Problem]:
    """``n``/``n_failed`` (and the judge's counts) of the overall and category rows against samples."""
    bench = res.benchmark.name
    ok = Counter(s.category for s in samples if s.status == "ok")
    failed = Counter(s.category for s in samples if s.status != "ok")
    judged = Counter(s.category for s in samples if s.status == "ok" and s.metrics.get("judge") is not None)
    out: list[Problem] = []
    groups = {bench: None, **{f"{bench}/{c}": c for c in res.benchmark.categories}}
    for task, cat in groups.items():
        row = res.results.get(task)
        if row is None:
            continue
        expect = {"n": sum(ok.values()) if cat is None else ok[cat],
                  "n_failed": sum(failed.values()) if cat is None else failed[cat],
                  "judge_n": sum(judged.values()) if cat is None else judged[cat]}
        for key, want in expect.items():
            got = row.get(key)
            if got is not None and _number(got) and got != want:
                out.append(Problem("numbers", f"results[{task!r}][{key!r}] is {got}, but samples.jsonl "
                                              f"has {want}"))
        jn, jf, n = row.get("judge_n"), row.get("judge_n_failed"), row.get("n")
        if all(_number(v) for v in (jn, jf, n)) and jn + jf != n:
            out.append(Problem("numbers", f"results[{task!r}]: judge_n {jn} + judge_n_failed {jf} is not "
                                          f"n {n}"))
    return out


def check_raw_booleans(parsed: object) -> list[Problem]:
    """JSON ``true``/``false`` where ``results.json``'s ``results`` rows hold numbers (the schema would
    read ``true`` as 1.0)."""
    rows = parsed.get("results") if isinstance(parsed, dict) else None
    out = []
    for task, row in sorted(rows.items()) if isinstance(rows, dict) else ():
        for key, value in sorted(row.items()) if isinstance(row, dict) else ():
            if isinstance(value, bool):
                word = "true" if value else "false"
                out.append(Problem("numbers", f"results[{task!r}][{key!r}] is {word}, not a number"))
    return out


def check_numbers(res: Results, samples: list[SampleRecord]) -> list[Problem]:
    """Every rule of the module docstring; problems tagged ``numbers``."""
    out: list[Problem] = []
    for task, row in sorted(res.results.items()):
        out += check_row(task, row)
    out += check_counts(res, samples)
    for reason, count in sorted(res.failures.items()):
        if not _number(count) or count < 0:
            out.append(Problem("numbers", f"results.failures[{reason!r}] is {count}, not a count"))
    for task, counts in sorted(res.n_samples.items()):
        for key, count in sorted(counts.items()):
            if not _number(count) or count < 0 or count != int(count):
                out.append(Problem("numbers", f"n-samples[{task!r}][{key!r}] is {count!r}, not a count"))
    bad_samples = 0
    for s in samples:
        for name, value in sorted(s.metrics.items()):
            if value is None:
                continue
            if not _number(value) or not _finite(value) or _out_of(value, metric_range(name)):
                bad_samples += 1
                if bad_samples <= 5:
                    low, high = metric_range(name)
                    out.append(Problem("numbers", f"case {s.case_id} sample {s.sample_index}: {name} {value} "
                                                  f"is not a finite value in [{low}, {high}]"))
    if bad_samples > 5:
        out.append(Problem("numbers", f"... {bad_samples - 5} more impossible per-sample values"))
    return out
