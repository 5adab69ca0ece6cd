"""The paper's task (``task vlm``): captions from a file, R_high and R_low from the served reward models.

Per generation batch (paper §5, paper-facts.md "Hi-GRPO"; design.md §6):

- M1 (step 1) and M2 (step 2; M1 again in one-step mode) are rendered to the 6 ``reward6`` views by
  :class:`ar3d_r1.rewards.geometry.Reward6Renderer` (mme3dr's renderer);
- step 1: HPS v2.1 + UnifiedReward-Think geometric alignment + Qwen2.5-VL category match, merged, then
  ``R_high = HPS₁ + Unified₁ + Consist₁`` (:func:`ar3d_r1.rewards.ensemble.r_high`);
- step 2: HPS v2.1 + UnifiedReward-2.0 + Qwen2.5-VL consistency + part completeness, then
  ``R_low = HPS₂ + Unified₂/3 + Consist₂/3 + Part₂/2`` (:func:`ar3d_r1.rewards.ensemble.r_low`).

The reward callables, their per-view max and the ensembles are those of :mod:`ar3d_r1.rewards`; this
module only routes samples to them. A sample without a shape (a malformed mesh segment) asks nothing;
a sample whose request failed or whose reply did not parse is NaN with its reason in
``Scores.failures1/2``, and the trainer applies ``malformed_reward``
(:func:`ar3d_r1.rewards.tasks.resolve_failures`).

**Known gap: the views are untextured.** The paper textures each decoded voxel shape with TRELLIS
stage 2 before rendering; we do not run TRELLIS, so the judges see the renderer's plain grey shape.
Rewards that read appearance (HPS, UnifiedReward-2.0 style, colour / material / texture consistency)
therefore judge an uncoloured shape. No colour is invented here.

**Prompts.** The paper trains on about 8,400 captions from Objaverse-XL, HSSD and ABO, which are not
released: the user gives a captions file (:func:`load_captions`).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ar3d_r1.rewards.endpoints import EndpointsError, RewardEndpoints, check_endpoints
from ar3d_r1.rewards.ensemble import STEP1_REWARDS, STEP2_REWARDS, r_high, r_low
from ar3d_r1.rewards.outputs import merge
from ar3d_r1.rewards.tasks import Scores
from ar3d_r1.rewards.vlm import VLM_REWARDS
from ar3d_r1.rollout.prompts import TaskPrompt

#: Column (csv) or key (jsonl) names a caption may be under, in order of preference.
CAPTION_COLUMNS = ("caption", "prompt", "text")
COUNTS = ("requests", "cached", "unparsed", "failed")
#: The longest caption a captions file may hold (characters). A caption is one short description (the
#: paper's are a sentence or two); a longer one is an unclosed CSV quote that swallowed the rows after it
#: or a pasted file, and would be the policy's prompt: a 1 MB caption took a rollout to 12 GB of memory.
MAX_CAPTION_CHARS = 2000
#: The most lines one quoted CSV caption may span before it counts as an unclosed quote.
MAX_CAPTION_LINES = 5


class RewardServerError(RuntimeError):
    """A reward server the task needs is unreachable or does not serve the configured model."""


def _utf8_text(path: Path) -> str:
    """The file's text; a byte that is not UTF-8 is a ValueError naming the file, line and byte."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                         "save the captions file as UTF-8") from None


def load_captions(path: str | Path) -> list[str]:
    """Training captions from ``path``: ``.txt`` (one a line; blank lines and ``#`` comments skipped),
    ``.jsonl`` (one JSON string or object a line, the caption under ``caption``, ``prompt`` or ``text``),
    ``.json`` (a JSON list of such strings or objects, e.g. the authors' ``data/sampled_prompt.json`` of
    ``{"prompt", "task_type", "category"}`` objects; other keys are ignored) or ``.csv`` (a header row
    with one of those columns, matched case-insensitively; a quoted caption may span up to
    :data:`MAX_CAPTION_LINES` lines and keeps its newlines). Captions are stripped; order and repeats kept.

    Raises:
        FileNotFoundError: no such file. IsADirectoryError: ``path`` is a directory.
        ValueError: another suffix, text that is not UTF-8, a line or row without a caption, a CSV quote
            that is never closed or runs over more than :data:`MAX_CAPTION_LINES` lines, a caption longer
            than :data:`MAX_CAPTION_CHARS` (each names its line), or no caption.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"prompts_file {path} is a directory; give a captions file (.txt one a line, "
                                ".jsonl, .json or .csv)")
    if not path.is_file():
        raise FileNotFoundError(f"prompts_file {path} does not exist (task 'vlm' trains on its captions)")
    suffix = path.suffix.lower()
    if suffix not in (".txt", ".jsonl", ".json", ".csv"):
        raise ValueError(f"{path}: prompts_file must be .txt (one caption a line), .jsonl, .json or .csv, "
                         f"not {suffix or 'a file without a suffix'!r}")
    text = _utf8_text(path)
    captions: list[str] = []
    if suffix == ".txt":
        captions = [_check_length(f"{path}:{n}", s) for n, line in enumerate(text.splitlines(), 1)
                    if (s := line.strip()) and not s.startswith("#")]
    elif suffix == ".jsonl":
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: not JSON ({exc.msg})") from None
            captions.append(_check_length(f"{path}:{n}", _json_caption(item, f"{path}:{n}")))
    elif suffix == ".json":
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{exc.lineno}: not JSON ({exc.msg})") from None
        if not isinstance(items, list):
            raise ValueError(f"{path}: a .json prompts_file is a JSON list of captions or of objects with "
                             f"{' / '.join(CAPTION_COLUMNS)}, got a {type(items).__name__}")
        captions = [_check_length(f"{path}: item {k}", _json_caption(item, f"{path}: item {k}"))
                    for k, item in enumerate(items)]
    else:
        captions = _csv_captions(path)
    if not captions:
        raise ValueError(f"{path}: no captions")
    return captions


def _json_caption(item, where: str) -> str:
    """The caption of one JSON item (a string, or an object with caption / prompt / text), stripped;
    ValueError naming ``where`` otherwise."""
    found = item if isinstance(item, str) else next(
        (item[k] for k in CAPTION_COLUMNS if isinstance(item, dict) and isinstance(item.get(k), str)), None)
    if not found or not found.strip():
        raise ValueError(f"{where}: no caption (a JSON string, or an object with a non-empty "
                         f"{' / '.join(CAPTION_COLUMNS)})")
    return found.strip()


def _check_length(where: str, caption: str) -> str:
    """``caption``, unless longer than :data:`MAX_CAPTION_CHARS`: ValueError naming ``where`` (file:line)."""
    if len(caption) > MAX_CAPTION_CHARS:
        raise ValueError(f"{where}: a caption of {len(caption):,} characters; the most is "
                         f"{MAX_CAPTION_CHARS:,} (a caption is one short description: shorten it, or close "
                         "the quote or remove the text pasted there)")
    return caption


def _csv_captions(path: Path) -> list[str]:
    """The captions of a CSV file (:func:`load_captions`), each row's first line named in its errors."""
    captions = []
    with path.open(newline="", encoding="utf-8-sig") as f:  # newline="": quoted newlines survive
        reader = csv.DictReader(f, strict=True)  # strict: a quote open at the end of the file is an error
        start = 2
        try:
            by_lower = {name.strip().lower(): name for name in reader.fieldnames or []}
            column = next((by_lower[c] for c in CAPTION_COLUMNS if c in by_lower), None)
            if column is None:
                raise ValueError(f"{path}: no caption column ({' / '.join(CAPTION_COLUMNS)}, any case); "
                                 f"the header has {reader.fieldnames}")
            start = reader.line_num + 1
            for row in reader:
                if reader.line_num - start + 1 > MAX_CAPTION_LINES:
                    raise ValueError(f"{path}:{start}: a quoted field opened on this line runs to line "
                                     f"{reader.line_num} ({reader.line_num - start + 1} lines): an unclosed "
                                     "quote? Close it, or put each caption on its own line")
                caption = (row.get(column) or "").strip()
                if not caption:
                    raise ValueError(f"{path}:{start}: empty {column!r}")
                captions.append(_check_length(f"{path}:{start}", caption))
                start = reader.line_num + 1
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                raise ValueError(f"{path}:{start}: a quote opened on this line is never closed (the rest of "
                                 "the file would be one caption); close it") from None
            raise ValueError(f"{path}:{reader.line_num}: not CSV ({exc})") from None
    return captions


def require_servers(endpoints: RewardEndpoints, names: Sequence[str]) -> None:
    """Check once that each endpoint in ``names`` is in the file and serves its model.

    Raises:
        EndpointsError: the file lacks an endpoint the task needs.
        RewardServerError: a server is unreachable or does not serve its model (each one is named).
    """
    missing = sorted(set(names) - set(endpoints.endpoints))
    if missing:
        raise EndpointsError(f"{endpoints.source} has no endpoints {missing}, which task 'vlm' needs "
                             f"(it has {sorted(endpoints.endpoints)})")
    problems = {n: p for n, p in check_endpoints(endpoints).items() if p is not None and n in names}
    if problems:
        lines = "; ".join(f"{n}: {p}" for n, p in sorted(problems.items()))
        raise RewardServerError(f"reward server(s) not ready ({endpoints.source}): {lines}. Start them as "
                                "docs/rewards.md shows, or fix the endpoints file")


class VLMTask:
    """``prompts`` (one :class:`TaskPrompt` per caption, ``spec`` None) and ``score(rollout) -> Scores``.

    Args:
        endpoints: the loaded endpoints file (``reward_servers``); its ``cache_dir`` is the response cache.
        captions: the training captions.
        render_size: pixel size of the reward renders. rig: their camera rig (``reward6``, the paper's).
        hps: the HPS callable; default ``hps_from_options(endpoints.hps)``.
        check: ask every server once for its models (:func:`require_servers`).
    """

    def __init__(self, endpoints: RewardEndpoints, captions: Sequence[str], render_size: int, *, hps=None,
                 check: bool = True, rig: str = "reward6") -> None:
        from ar3d_r1.rewards.geometry import Reward6Renderer
        from mme3dr.judge import ResponseCache

        served = {name for name in (*STEP1_REWARDS, *STEP2_REWARDS) if name in VLM_REWARDS}
        if check:
            require_servers(endpoints, sorted({VLM_REWARDS[n][1] for n in served}))
        if hps is None:
            from ar3d_r1.rewards.hps import hps_from_options

            hps = hps_from_options(endpoints.hps)
        self.prompts: list[TaskPrompt] = [TaskPrompt(text=c, spec=None) for c in captions]
        self.render = Reward6Renderer(render_size, rig=rig)
        self.hps = hps
        cache = ResponseCache(endpoints.cache_dir) if endpoints.cache_dir else None

        def build(rewards: dict) -> dict:
            return {n: VLM_REWARDS[n][0](endpoints[VLM_REWARDS[n][1]], cache) for n in rewards if n in served}

        self.step1, self.step2 = build(STEP1_REWARDS), build(STEP2_REWARDS)

    def state_dict(self) -> dict:
        """The in-memory reward cache a checkpoint keeps: the reward6 renders of recent grids (the served
        replies live in the on-disk response cache)."""
        return {"render": self.render.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.render.load_state_dict(state["render"])

    def score(self, rollout) -> Scores:
        """Score ``rollout`` (``prompts``, ``step1``/``step2`` outcomes with ``grid``): ``r_high``, ``r_low``
        ``(B,) float64`` with NaN for a failed sample, per-dimension means, failure reasons, and request
        counts in ``stats`` (``requests/stepK/{sent,cached,unparsed,failed}``, ``samples/stepK/failed``)."""
        prompts = list(rollout.prompts)
        m2 = rollout.step2 if rollout.step2 is not None else rollout.step1
        values1, means1, fail1, stats1 = self.score_step("step1", prompts, rollout.step1, self.step1,
                                                         STEP1_REWARDS)
        values2, means2, fail2, stats2 = self.score_step("step2", prompts, m2, self.step2, STEP2_REWARDS)
        return Scores(r_high(values1), r_low(values2), {**means1, **means2}, fail1, fail2,
                      {**stats1, **stats2})

    def score_step(self, step: str, prompts: list[str], outcomes, rewards: dict, ensemble: dict):
        """One step's rewards on the samples that have a shape: ``(values, dimension means, failures,
        stats)``, ``values`` mapping every dimension of ``ensemble`` to ``(B,)`` with NaN where failed."""
        n = len(prompts)
        values = {d: np.full(n, np.nan) for dims in ensemble.values() for d in dims}
        failures: list[str | None] = [None] * n
        views: dict[int, np.ndarray] = {}
        for i, o in enumerate(outcomes):
            if o.grid is None:
                failures[i] = f"no shape ({o.failure or 'nothing decoded'})"
                continue
            try:
                views[i] = self.render(o.grid)
            except ValueError as exc:  # an empty grid has no surface to draw
                failures[i] = f"no views: {exc}"
        counts = dict.fromkeys(COUNTS, 0)
        if views:
            rows = sorted(views)
            sub_prompts, sub_views = [prompts[i] for i in rows], [views[i] for i in rows]
            batch = merge(self.hps(sub_prompts, sub_views),
                          *(reward(sub_prompts, sub_views) for reward in rewards.values()))
            for d, v in batch.values.items():
                values[d][rows] = v
            for i, reason in zip(rows, batch.failures, strict=True):
                failures[i] = reason
            for name in rewards:
                for k in COUNTS:
                    counts[k] += batch.meta[name]["counts"][k]
        means = {f"{step}/{d}": float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
                 for d, v in values.items()}
        stats = {f"requests/{step}/sent": float(counts["requests"] - counts["cached"]),
                 f"requests/{step}/cached": float(counts["cached"]),
                 f"requests/{step}/unparsed": float(counts["unparsed"]),
                 f"requests/{step}/failed": float(counts["failed"]),
                 f"samples/{step}/failed": float(sum(f is not None for f in failures))}
        return values, means, failures, stats
