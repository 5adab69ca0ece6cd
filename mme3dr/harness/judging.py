"""Judge a finished run: ask the VLM judge about every scored sample and add its metric to the results.

``judge_run(RUN_DIR, config)`` is what ``mme3dr judge RUN_DIR`` and ``mme3dr evaluate --judge`` call
after the run's ``results.json`` is written. It reads ``samples.jsonl`` and the render directories the
run recorded (``shard.json``), asks one checklist question per generated sample over its eval views
(``mme3dr.judge.evaluation``), and then:

- sets ``metrics.judge`` (0–100, or null when the judge failed) on each scored sample in
  ``samples.jsonl`` and refreshes ``samples_sha256``;
- adds ``judge``, ``judge_ci95_low``, ``judge_ci95_high``, ``judge_n``, ``judge_n_failed`` to the task's
  and every category's results, ``higher_is_better[task]["judge"] = true`` and ``metric_card.judge``;
- writes ``RUN_DIR/judge.jsonl`` (checklist, answers, raw reply, failure per sample).

When no sample got a score (the server never answered, every reply failed), nothing is written and
:class:`NoJudgeAnswer` says why. A sample that fails now but holds a score from an earlier run of the
same judge (same ``metric_card.judge``) keeps that score: a failed re-run never turns a score into null.

Nothing else in the results changes (CLIP, KD, FD, failures, eligibility). Replies are cached in
``RUN_DIR/cache/judge/`` as they arrive, so a killed judge run loses nothing it was told and a re-run
asks only the questions not yet answered.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from mme3dr.harness.merge import shard_render_dirs
from mme3dr.judge import Decoding, JudgeConfig, ResponseCache, load_template
from mme3dr.judge.evaluation import (
    JUDGE_DECODING,
    JUDGE_TEMPLATE,
    JUDGE_VIEWS,
    CaseJudgement,
    JudgeCase,
    judge_card,
    judge_cases,
    summarise,
    view_paths,
)
from mme3dr.output_files import atomic_write_text
from mme3dr.results import Results, dump_results, load_results, read_samples, write_samples


class JudgeRunError(RuntimeError):
    """The run directory cannot be judged (no results yet); the message says what to run."""


class NoJudgeAnswer(JudgeRunError):
    """No sample got a judge score; the run directory was left unchanged. The message counts the reasons."""


@dataclass
class JudgeRunSummary:
    """What a judge run did: samples judged, scored, failed; questions answered from the cache."""

    n_judged: int
    n_scored: int
    n_failed: int
    n_cached: int
    overall: dict
    judgements: list[CaseJudgement]


def run_cases(run_dir: Path, shard_dirs: list[Path] | None = None, views: tuple[int, ...] = JUDGE_VIEWS
              ) -> tuple[list[JudgeCase], list[CaseJudgement]]:
    """The run's judgeable samples, and judgements for scored samples whose views are missing."""
    render_dirs = shard_render_dirs([run_dir, *(shard_dirs or [])])
    cases, missing = [], []
    for s in read_samples(run_dir / "samples.jsonl"):
        if s.status != "ok":
            continue
        where = render_dirs.get(s.render_sha256 or "")
        try:
            if where is None:
                raise FileNotFoundError(f"no render directory recorded for render {s.render_sha256}")
            cases.append(JudgeCase(s.case_id, s.sample_index, s.category, s.prompt, view_paths(where, views)))
        except FileNotFoundError as exc:
            missing.append(CaseJudgement(s.case_id, s.sample_index, s.category, [], failure=f"views: {exc}"))
    return cases, missing


def judge_run(run_dir: str | Path, config: JudgeConfig, *, decoding: Decoding = JUDGE_DECODING,
              template_name: str = JUDGE_TEMPLATE, shard_dirs: list[Path] | None = None,
              cache_dir: str | Path | None = None) -> JudgeRunSummary:
    """Judge ``run_dir``'s samples and write the judge metric into its results (module docstring).

    Raises:
        JudgeRunError: ``results.json`` or ``samples.jsonl`` is missing.
        ValueError: the decoding settings are not allowed by ``config.profile``.
    """
    run_dir = Path(run_dir)
    for name in ("results.json", "samples.jsonl"):
        if not (run_dir / name).is_file():
            raise JudgeRunError(f"{run_dir / name} not found: run `mme3dr evaluate --out {run_dir}` first")
    template = load_template(template_name)
    cases, missing = run_cases(run_dir, shard_dirs)
    cache = ResponseCache(Path(cache_dir) if cache_dir else run_dir / "cache" / "judge")
    judged = judge_cases(cases, config, cache, template, decoding) + missing
    if not any(j.score is not None for j in judged):
        raise NoJudgeAnswer(_no_answer_message(run_dir, judged))
    results = load_results(run_dir / "results.json").model_dump(by_alias=True, mode="json")
    card = judge_card(config, template, decoding)
    if results["metric_card"].get("judge") == json.loads(json.dumps(card)):
        judged = keep_earlier_scores(judged, run_dir / "judge.jsonl")
    by_key = {(j.case_id, j.sample_index): j for j in judged}

    records = read_samples(run_dir / "samples.jsonl")
    for rec in records:
        j = by_key.get((rec.case_id, rec.sample_index))
        if j is not None:
            rec.metrics["judge"] = None if j.score is None else round(j.score, 6)
    samples_sha = write_samples(records, run_dir / "samples.jsonl")
    atomic_write_text(run_dir / "judge.jsonl", "".join(  # whole or not at all, even on a full disk
        json.dumps(j.record(), ensure_ascii=False, sort_keys=True) + "\n"
        for j in sorted(judged, key=lambda j: (j.case_id, j.sample_index))))

    task = results["benchmark"]["name"]
    for group, row in summarise(judged).items():
        key = task if group == "" else f"{task}/{group}"
        results["results"].setdefault(key, {"alias": group} if group else {}).update(row)
    results["higher_is_better"].setdefault(task, {})["judge"] = True
    results["metric_card"]["judge"] = card
    results["samples_sha256"] = samples_sha
    dump_results(Results.model_validate(results), run_dir / "results.json")
    scored = sum(j.score is not None for j in judged)
    return JudgeRunSummary(len(judged), scored, len(judged) - scored, sum(j.cached for j in judged),
                           summarise(judged)[""], judged)


def _no_answer_message(run_dir: Path, judged: list[CaseJudgement]) -> str:
    if not judged:
        return f"{run_dir} has no generated sample to judge; nothing was written"
    from collections import Counter

    reasons = Counter((j.failure or "no score").split(":")[0] for j in judged)
    counts = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
    return (f"no judge answer for any of {len(judged)} samples ({counts}; first: {judged[0].failure}); "
            f"{run_dir} was left unchanged")


def keep_earlier_scores(judged: list[CaseJudgement], earlier_jsonl: Path) -> list[CaseJudgement]:
    """``judged`` with each failed sample replaced by its scored record in ``earlier_jsonl`` (the same
    judge's earlier ``judge.jsonl``), when there is one; unreadable lines are ignored."""
    earlier: dict[tuple, dict] = {}
    if earlier_jsonl.is_file():
        for line in earlier_jsonl.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
                if isinstance(rec.get("score"), (int, float)):
                    earlier[(rec["case_id"], rec["sample_index"])] = rec
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
    out = []
    for j in judged:
        rec = earlier.get((j.case_id, j.sample_index)) if j.score is None else None
        if rec is None:
            out.append(j)
            continue
        out.append(CaseJudgement(j.case_id, j.sample_index, j.category, rec.get("checklist") or [],
                                 score=float(rec["score"]), answers=rec.get("answers"),
                                 reply=rec.get("reply"), cached=True, cache_key=rec.get("cache_key", ""),
                                 kinds=rec.get("kinds") or []))
    return out
