"""The rewards of the authors' released one-step trainer, as the ``hps-unified2`` task (preset ``3dgen-r1``).

Source: ``Ivan-Tang-3D/3DGen-R1`` at commit 290cb73 (``src/gen3d-r1/src/utils/reward_hps.py``,
``reward_unified_3d.py`` and ``open_r1/trainer/grpo_3d_trainer.py``, run with ``--reward_funcs hps
unified --unified_aggregate_method max --unified_reward_temperature 0.1``). What it reproduces:

- **HPS v2.1** (:class:`MaxHPS`): per view the image-text cosine (our :class:`~ar3d_r1.rewards.hps.HPSReward`,
  the same open_clip ViT-H-14 + ``HPS_v2.1_compressed.pt`` features); the sample's reward is the max over
  its views *starting from 0*, i.e. ``max(0, max_v cos_v)``.
- **UnifiedReward-2.0** (:class:`UnifiedReward2Sum`): one request per view (our client, template
  ``unifiedreward2-pointwise`` and response cache); each of the reply's Alignment, Coherence and Style
  scores is read without range check, then clamped to [1, 5]; a missing score is 1 (theirs is 0, then
  clamped); a request that failed counts as an empty reply (1 + 1 + 1); per view the three are summed;
  the sample's reward is the max over views (3-15).
- **Sum** (:func:`sum_reward_columns`): the reward functions' columns are added with no per-dimension
  normalisation (``rewards_per_func.sum(dim=1)``).
- **A reward function that raises** fills its whole column with 0.5, and a sample without views scores 0
  in each column: their behaviour, the ``malformed_reward: half-column`` mode. Under ``zero`` / ``mask``
  a raised column and a sample without views are NaN with their reason instead, resolved by the trainer
  (:func:`ar3d_r1.rewards.tasks.resolve_failures`). Every raise is counted in the step's log
  (``rewards/raised/<name>``) and its reason written to ``reward_failures.jsonl``.

Differences that remain (docs/training.md, "The authors' released trainer"): our UnifiedReward-2.0
instruction wording (the reply format is the one the model was trained on); when a label occurs twice we
read the last occurrence, their regex the first; the views are untextured (the known gap of
:mod:`ar3d_r1.rewards.vlm_task`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ar3d_r1.rewards.outputs import RewardBatch
from ar3d_r1.rewards.vlm import UnifiedReward2, _reason
from mme3dr.judge import JudgeRequest, JudgeResult
from mme3dr.judge.parsers import parse_reply

#: The score a reward function's whole column gets when it raises (their trainer's ``* 0.5``).
RAISED_COLUMN_VALUE = 0.5


class MaxHPS:
    """HPS v2.1 as the authors aggregate it: ``max(0, max over views of the cosine)``; dimension ``hps``.

    ``hps``: an :class:`~ar3d_r1.rewards.hps.HPSReward` (anything with ``scores(prompts, views) -> (N, V)``).
    """

    name = "hps"
    dimensions = ("hps",)

    def __init__(self, hps) -> None:
        self.hps = hps

    def __call__(self, prompts: Sequence[str], views: Sequence[np.ndarray], **columns) -> RewardBatch:
        """``prompts (N,)``, ``views[i] (V, H, W, 3|4) uint8`` → ``hps (N,) float64`` in [0, 1]."""
        per_view = np.asarray(self.hps.scores(prompts, views), dtype=np.float64)
        best = np.maximum(per_view.max(axis=1), 0.0)
        return RewardBatch({"hps": best}, [None] * len(prompts), {"hps": {"per_view": per_view.tolist()}})


def clamped_scores(template, reply: str | None) -> dict[str, float]:
    """Each ``scores`` field of ``template`` read from ``reply`` with no range check, clamped to the
    field's [min, max]; a field that is missing (or an empty reply) gets its min (1 for UnifiedReward-2.0).
    Returns field name → float."""
    out = {}
    for spec in template.parser["fields"]:
        lo, hi = float(spec["min"]), float(spec["max"])
        parsed = parse_reply({"kind": "scores", "fields": [{**spec, "min": None, "max": None}]}, reply)
        value = parsed.values[spec["name"]] if parsed.ok else lo
        out[spec["name"]] = min(hi, max(lo, value))
    return out


class UnifiedReward2Sum(UnifiedReward2):
    """UnifiedReward-2.0 as the authors aggregate it: per view alignment + coherence + style (each
    clamped to [1, 5], missing or failed → 1), max over views; dimension ``unified`` in [3, 15].

    Same requests, client and cache as :class:`~ar3d_r1.rewards.vlm.UnifiedReward2` (one per view)."""

    name = "unified2_sum"
    dimensions = ("unified",)
    ranges = {"unified": (3.0, 15.0)}

    def collect(self, requests: list[list[JudgeRequest]], results: list[list[JudgeResult]]) -> RewardBatch:
        """Never a failure: a failed request is an empty reply, an unparsed one keeps what it has.
        ``meta[name]["per_view"]``: the per-view sums; ``counts`` as the base class."""
        per_view = [[sum(clamped_scores(self.template, r.reply if r.failure is None else "").values())
                     for r in res] for res in results]
        values = np.array([max(v) if v else 0.0 for v in per_view], dtype=np.float64)
        flat = [r for res in results for r in res]
        counts = {"requests": len(flat), "cached": sum(r.cached for r in flat),
                  "unparsed": sum(r.failure is None and not r.ok for r in flat),
                  "failed": sum(r.failure is not None for r in flat)}
        notes = [[_reason(r) for r in res if not r.ok] for res in results]
        meta = {**self.card(), "counts": counts, "per_view": per_view, "notes": notes}
        return RewardBatch({"unified": values}, [None] * len(results), {self.name: meta})


@dataclasses.dataclass
class ColumnSum:
    """:func:`sum_reward_columns`'s result over B samples: ``total (B,)``, each function's ``columns``
    (name → ``(B,) float64``), ``raised`` (name → reason, for the functions that raised), ``failures``
    (per sample None or what happened to it, for ``reward_failures.jsonl``) and the functions' ``meta``."""

    total: np.ndarray
    columns: dict[str, np.ndarray]
    raised: dict[str, str]
    failures: list[str | None]
    meta: dict


def sum_reward_columns(functions: Mapping[str, Callable], prompts: Sequence[str],
                       views: Sequence[np.ndarray | None], mode: str) -> ColumnSum:
    """Call each reward function on the samples that have views and add the columns (no normalisation).

    Args:
        functions: name → reward callable returning a :class:`RewardBatch` with one dimension.
        prompts: ``(B,)`` captions. views: ``(B,)``, each ``(V, H, W, 3|4) uint8`` or None (no shape).
        mode: ``half-column`` (the authors': a raise → its column is 0.5 for every sample, a sample
            without views → 0) or ``zero`` / ``mask`` (both NaN with the reason in ``failures``).

    Returns:
        :class:`ColumnSum`; ``total`` is NaN where any column is.
    """
    n = len(prompts)
    authors = mode == "half-column"
    rows = [i for i, v in enumerate(views) if v is not None]
    no_views = "no views (scored 0)" if authors else "no views"
    failures: list[str | None] = [None if views[i] is not None else no_views for i in range(n)]
    columns, raised, meta = {}, {}, {}
    for name, fn in functions.items():
        col = np.full(n, 0.0 if authors else np.nan)
        try:
            if rows:
                batch = fn([prompts[i] for i in rows], [views[i] for i in rows])
                (dim,) = batch.values
                col[rows] = batch.values[dim]
                meta.update(batch.meta)
                for i, reason in zip(rows, batch.failures, strict=True):
                    if reason is not None:
                        failures[i] = reason if failures[i] is None else f"{failures[i]}; {reason}"
        except Exception as exc:  # noqa: BLE001 (their trainer catches every exception of a reward function)
            raised[name] = f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:500]
            col = np.full(n, RAISED_COLUMN_VALUE if authors else np.nan)
            note = f"{name} raised ({'column set to 0.5' if authors else 'NaN'}): {raised[name]}"
            failures = [note if f is None else f"{f}; {note}" for f in failures]
        columns[name] = col
    total = np.sum(list(columns.values()), axis=0) if columns else np.zeros(n)
    return ColumnSum(total, columns, raised, failures, meta)


class HPSUnifiedTask:
    """Task ``hps-unified2``: captions from a file, one reward per sample, ``HPS + UnifiedReward-2.0``.

    Scores the last mesh of each sample (step 2's when the rollout has one, else step 1's), rendered from
    ``rig`` (``video6``: the frames the authors' trainer picks from its orbit video). There is one reward,
    the final mesh's: it goes in ``Scores.r_low`` (what ``advantage_mode: shared`` normalises) and
    ``r_high`` is 0.

    Args:
        endpoints: the endpoints file (only ``unifiedreward2`` and ``hps`` are used).
        captions: the training captions. render_size: view size in px. rig: a rig of ``mme3dr.render``.
        malformed_reward: the config's mode (:func:`sum_reward_columns`).
        hps: the HPS callable (default ``hps_from_options(endpoints.hps)``); check: ask the server once.
    """

    def __init__(self, endpoints, captions: Sequence[str], render_size: int, *, rig: str = "video6",
                 malformed_reward: str = "half-column", hps=None, check: bool = True) -> None:
        from ar3d_r1.rewards.geometry import Reward6Renderer
        from ar3d_r1.rewards.vlm_task import require_servers
        from ar3d_r1.rollout.prompts import TaskPrompt
        from mme3dr.judge import ResponseCache

        if check:
            require_servers(endpoints, ["unifiedreward2"])
        if hps is None:
            from ar3d_r1.rewards.hps import hps_from_options

            hps = hps_from_options(endpoints.hps)
        cache = ResponseCache(endpoints.cache_dir) if endpoints.cache_dir else None
        self.prompts = [TaskPrompt(text=c, spec=None) for c in captions]
        self.render = Reward6Renderer(render_size, rig=rig)
        self.mode = malformed_reward
        self.functions = {"hps": MaxHPS(hps),
                          "unified": UnifiedReward2Sum(endpoints["unifiedreward2"], cache)}

    def state_dict(self) -> dict:
        return {"render": self.render.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.render.load_state_dict(state["render"])

    def views(self, outcomes) -> tuple[list[np.ndarray | None], list[str | None]]:
        """Each outcome's rendered views (None without a shape) and why it has none."""
        views, why = [], []
        for o in outcomes:
            v, reason = None, None
            if o.grid is None:
                reason = f"no shape ({o.failure or 'nothing decoded'})"
            else:
                try:
                    v = self.render(o.grid)
                except ValueError as exc:  # an empty grid has no surface to draw
                    reason = f"no views: {exc}"
            views.append(v)
            why.append(reason)
        return views, why

    def score(self, rollout):
        """``Scores`` of ``rollout``: ``r_low`` the summed reward ``(B,) float64``, ``r_high`` zeros,
        per-function means, failure notes, and per-step counts in ``stats``: ``rewards/raised/<name>``
        (1 when that function raised this batch), ``samples/no_views``, ``requests/unified/{sent,cached,
        unparsed,failed}``."""
        from ar3d_r1.rewards.tasks import Scores

        prompts = list(rollout.prompts)
        final = rollout.step2 if rollout.step2 is not None else rollout.step1
        views, why = self.views(final)
        out = sum_reward_columns(self.functions, prompts, views, self.mode)
        notes = [w if w is not None else f for w, f in zip(why, out.failures, strict=True)]
        counts = out.meta.get(self.functions["unified"].name, {}).get("counts", {})
        stats = {f"rewards/raised/{name}": float(name in out.raised) for name in self.functions}
        stats["samples/no_views"] = float(sum(v is None for v in views))
        for k, label in (("requests", "asked"), ("cached", "cached"), ("unparsed", "unparsed"),
                         ("failed", "failed")):
            stats[f"requests/unified/{label}"] = float(counts.get(k, 0))
        dims = {f"final/{name}": float(np.nanmean(c)) if np.isfinite(c).any() else float("nan")
                for name, c in out.columns.items()}
        n = len(prompts)
        return Scores(np.zeros(n), out.total, dims, [None] * n, notes, stats)
