"""The judge stage: ask the VLM judge about every scored sample and add its metric to the results.

- :func:`judge_stage` is a stage of the harness pipeline: ``mme3dr evaluate --judge`` (and
  ``mme3dr.harness.evaluate(EvalConfig(..., judge=URL))``) run it between scoring and writing the
  results, so ``results.json`` is written once, with the judge in it.
- :func:`judge_run` (``mme3dr judge RUN_DIR``) runs the same stage on a finished run: it reads
  ``samples.jsonl`` and the render directories the run recorded (``shard.json``) and rewrites the
  results with the judge added.

Either way, one checklist question per scored sample over its eval views (``mme3dr.judge.evaluation``):

- ``metrics.judge`` (0–100, or null when the judge failed) on each scored sample, and ``samples_sha256``;
- ``judge``, ``judge_ci95_low``, ``judge_ci95_high``, ``judge_n``, ``judge_n_failed`` in the task's and
  every category's results (``mme3dr.harness.scoring.add_judge_rows``),
  ``higher_is_better[task]["judge"] = true`` and ``metric_card.judge``;
- ``RUN_DIR/judge.jsonl`` (checklist, answers, raw reply, failure per sample).

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

from mme3dr.errors import UserError
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
from mme3dr.results import Results, dump_results, load_results, read_samples, shard_render_dirs, write_samples


class JudgeRunError(UserError, RuntimeError):
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


def judge_cases_of(samples, render_dirs: dict[str, str], views: tuple[int, ...] = JUDGE_VIEWS
                   ) -> tuple[list[JudgeCase], list[CaseJudgement]]:
    """The judgeable (scored) ``samples`` and judgements for scored samples whose views are missing;
    ``render_dirs`` maps a render sha256 to its view folder."""
    cases, missing = [], []
    for s in samples:
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


def run_cases(run_dir: Path, shard_dirs: list[Path] | None = None, views: tuple[int, ...] = JUDGE_VIEWS
              ) -> tuple[list[JudgeCase], list[CaseJudgement]]:
    """The run's judgeable samples, and judgements for scored samples whose views are missing."""
    render_dirs = shard_render_dirs([run_dir, *(shard_dirs or [])])
    return judge_cases_of(read_samples(run_dir / "samples.jsonl"), render_dirs, views)


def judge_stage(samples, render_dirs: dict[str, str], config: JudgeConfig, cache_dir: Path, *,
                run_dir: Path, decoding: Decoding = JUDGE_DECODING, template_name: str = JUDGE_TEMPLATE,
                earlier: tuple[dict | None, Path] | None = None) -> tuple[list[CaseJudgement], dict]:
    """The judge stage of a run: judge every scored sample (replies cached in ``cache_dir``), set
    ``metrics["judge"]`` on each (in place; null when the judge failed), and return the judgements and
    the judge's metric card (rows: :func:`mme3dr.harness.scoring.add_judge_rows`).

    ``earlier`` is ``(the run's metric_card.judge, its judge.jsonl)`` from a previous judge run: when that
    card is this judge's, a sample that fails now keeps its earlier score (:func:`keep_earlier_scores`).

    Raises:
        NoJudgeAnswer: no sample got a score; the samples are left unchanged (``run_dir`` names the run).
    """
    template = load_template(template_name)
    card = judge_card(config, template, decoding)
    cases, missing = judge_cases_of(samples, render_dirs)
    judged = judge_cases(cases, config, ResponseCache(Path(cache_dir)), template, decoding) + missing
    if not any(j.score is not None for j in judged):
        raise NoJudgeAnswer(_no_answer_message(run_dir, judged))
    if earlier is not None and earlier[0] == json.loads(json.dumps(card)):
        judged = keep_earlier_scores(judged, earlier[1])
    by_key = {(j.case_id, j.sample_index): j for j in judged}
    for rec in samples:
        j = by_key.get((rec.case_id, rec.sample_index))
        if j is not None:
            rec.metrics["judge"] = None if j.score is None else round(j.score, 6)
    return judged, card


def write_judge_log(run_dir: Path, judged: list[CaseJudgement]) -> None:
    """``RUN_DIR/judge.jsonl``: checklist, answers, raw reply and failure per sample (whole or not at all)."""
    atomic_write_text(Path(run_dir) / "judge.jsonl", "".join(
        json.dumps(j.record(), ensure_ascii=False, sort_keys=True) + "\n"
        for j in sorted(judged, key=lambda j: (j.case_id, j.sample_index))))


def judge_run(run_dir: str | Path, config: JudgeConfig, *, decoding: Decoding = JUDGE_DECODING,
              template_name: str = JUDGE_TEMPLATE, shard_dirs: list[Path] | None = None,
              cache_dir: str | Path | None = None) -> JudgeRunSummary:
    """``mme3dr judge``: judge a finished run's samples and write the judge metric into its results
    (module docstring).

    Raises:
        JudgeRunError: ``results.json`` or ``samples.jsonl`` is missing.
        ValueError: the decoding settings are not allowed by ``config.profile``.
    """
    from mme3dr.harness.scoring import add_judge_rows

    run_dir = Path(run_dir)
    for name in ("results.json", "samples.jsonl"):
        if not (run_dir / name).is_file():
            raise JudgeRunError(f"{run_dir / name} not found: run `mme3dr evaluate --out {run_dir}` first")
    records = read_samples(run_dir / "samples.jsonl")
    results = load_results(run_dir / "results.json")
    render_dirs = shard_render_dirs([run_dir, *(shard_dirs or [])])
    earlier_card = results.metric_card.model_dump(by_alias=True, mode="json").get("judge")
    judged, card = judge_stage(records, render_dirs, config,
                               Path(cache_dir) if cache_dir else run_dir / "cache" / "judge",
                               decoding=decoding, template_name=template_name, run_dir=run_dir,
                               earlier=(earlier_card, run_dir / "judge.jsonl"))
    samples_sha = write_samples(records, run_dir / "samples.jsonl")
    write_judge_log(run_dir, judged)
    task = results.benchmark.name
    add_judge_rows(results.results, judged, task)
    results.higher_is_better.setdefault(task, {})["judge"] = True
    results.metric_card = results.metric_card.model_copy(update={"judge": card})
    results.samples_sha256 = samples_sha
    dump_results(Results.model_validate(results.model_dump(by_alias=True, mode="json")),
                 run_dir / "results.json")
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
