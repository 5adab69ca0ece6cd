"""The evaluation judge: per case, a checklist from the prompt, answered yes/no over the eval views.

Score of one case (one generated sample) = 100 × (yes answers) / (checklist items), so 0–100, higher is
better ("checklist pass rate, %"). Benchmark and category scores are the mean over the judged samples
with a 95% percentile bootstrap CI (1,000 resamples, seed 0; the protocol's CLIP rule, design.md §3).
A sample whose request failed or whose reply did not parse has no score: it is counted in
``judge_n_failed`` with its reason, never given a default.

Views: ``JUDGE_VIEWS`` picks 8 of the 24 ``eval24`` views (every third index), as PNG; which views and
the judge model, template sha256 and decoding settings go into the metric card (:func:`judge_card`).
The checklist rules are versioned (``CHECKLIST_VERSION``). The judge is its own metric: it never
changes CLIP, KD or FD.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mme3dr.judge.cache import ResponseCache
from mme3dr.judge.checklist import CHECKLIST_VERSION, derive_checklist, numbered
from mme3dr.judge.client import Decoding, JudgeConfig, JudgeRequest, JudgeResult, ask_all_sync
from mme3dr.judge.images import encode_image
from mme3dr.judge.templates import PromptTemplate, load_template

JUDGE_TEMPLATE = "eval-checklist"
JUDGE_VIEWS = tuple(range(0, 24, 3))
#: Greedy, seeded, room for one short line per question.
JUDGE_DECODING = Decoding(temperature=0.0, max_tokens=256, seed=0)


@dataclass(frozen=True)
class JudgeCase:
    """One generated sample to judge: ``views`` are image paths (or ``(H, W, 3|4) uint8`` arrays)."""

    case_id: str
    sample_index: int
    category: str
    prompt: str
    views: tuple


@dataclass
class CaseJudgement:
    """A judged sample: ``score`` in [0, 100] or None with ``failure``; ``answers`` per checklist item."""

    case_id: str
    sample_index: int
    category: str
    checklist: list[str]
    score: float | None = None
    answers: list[float] | None = None
    failure: str | None = None
    reply: str | None = None
    cached: bool = False
    cache_key: str = ""
    kinds: list[str] = field(default_factory=list)

    def record(self) -> dict:
        """The ``judge.jsonl`` line."""
        return {"case_id": self.case_id, "sample_index": self.sample_index, "category": self.category,
                "score": self.score, "checklist": self.checklist, "kinds": self.kinds,
                "answers": self.answers,
                "failure": self.failure, "reply": self.reply, "cache_key": self.cache_key}


def case_request(case: JudgeCase, template: PromptTemplate, decoding: Decoding) -> tuple[JudgeRequest, list]:
    """The request for one case and its checklist items."""
    items = derive_checklist(case.prompt)
    images = tuple(encode_image(v, "png") for v in case.views)
    questions = numbered([i.question for i in items])
    variables = {"prompt": case.prompt, "checklist": questions, "n_items": len(items)}
    return JudgeRequest(template, images, variables, decoding), items


def judgement_from(case: JudgeCase, items: list, result: JudgeResult) -> CaseJudgement:
    out = CaseJudgement(case.case_id, case.sample_index, case.category, [i.question for i in items],
                        reply=result.reply, cached=result.cached, cache_key=result.key,
                        kinds=[i.kind for i in items])
    if result.failure is not None:
        out.failure = f"request failed ({result.failure.reason}): {result.failure.detail}"
    elif not result.ok:
        out.failure = f"unparsed reply: {result.parsed.reason}"
    else:
        out.answers = [item["answer"] for item in result.parsed.items]
        out.score = 100.0 * float(np.mean(out.answers))
    return out


def judge_cases(cases: Sequence[JudgeCase], config: JudgeConfig, cache: ResponseCache | None = None,
                template: PromptTemplate | None = None, decoding: Decoding = JUDGE_DECODING
                ) -> list[CaseJudgement]:
    """Ask the judge about every case (concurrently, cached); results in input order."""
    template = template or load_template(JUDGE_TEMPLATE)
    built = [case_request(c, template, decoding) for c in cases]
    results = ask_all_sync(config, [req for req, _ in built], cache)
    return [judgement_from(c, items, r) for c, (_, items), r in zip(cases, built, results, strict=True)]


def summarise(judgements: Sequence[CaseJudgement], n_boot: int = 1000, seed: int = 0) -> dict[str, dict]:
    """``{"": overall, category: ...}`` each ``{"judge", "judge_ci95_low", "judge_ci95_high",
    "judge_n", "judge_n_failed"}`` (score keys None when nothing was judged)."""
    from mme3dr.metrics.bootstrap import bootstrap_ci

    groups: dict[str, list[CaseJudgement]] = {"": list(judgements)}
    for j in judgements:
        groups.setdefault(j.category, []).append(j)
    out = {}
    for name, group in groups.items():
        scores = np.array([j.score for j in group if j.score is not None], dtype=np.float64)
        row = {"judge": None, "judge_ci95_low": None, "judge_ci95_high": None,
               "judge_n": int(scores.size), "judge_n_failed": len(group) - int(scores.size)}
        if scores.size:
            low, high = bootstrap_ci(scores, n=n_boot, seed=seed)
            row.update(judge=float(scores.mean()), judge_ci95_low=low, judge_ci95_high=high)
        out[name] = row
    return out


def judge_card(config: JudgeConfig, template: PromptTemplate, decoding: Decoding,
               views: Sequence[int] = JUDGE_VIEWS) -> dict:
    """The judge's entry in the metric card."""
    return {"model": config.model, "server_profile": config.profile, "template": template.card(),
            "decoding": decoding.card(), "checklist_rules": CHECKLIST_VERSION, "views": list(views),
            "image_format": "png", "score": "100 x yes answers / checklist items, per sample",
            "ci": "95% percentile bootstrap over samples, 1000 resamples, seed 0"}


def view_paths(render_dir: str | Path, views: Sequence[int] = JUDGE_VIEWS) -> tuple[Path, ...]:
    """The judged view files of a render directory (``000.png`` …); raises FileNotFoundError naming
    the first missing one."""
    paths = tuple(Path(render_dir) / f"{i:03d}.png" for i in views)
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"render view {missing[0]} is missing (judge views {list(views)})")
    return paths
