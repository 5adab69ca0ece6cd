"""The content checks of a submission: each a pure function of the parsed run returning its problems.

``validate.py`` runs them all after the archive, file hashes and schemas passed. Every check fails
closed: something it cannot confirm is a problem, never a pass. Light: standard library, numpy (via
``mme3dr.metrics``), and the light ``mme3dr`` modules (manifest, cameras, models.protocol, results).

Policy on missing cases (docs/leaderboard.md): ``samples.jsonl`` must hold one record for every case of
the benchmark and every sample index. A generation that failed is an explicit ``status: "failed"``
record with its reason, and it counts as a failure in the results. A case with no record at all is
treated as tampering (cherry-picking) and the bundle is rejected.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass

from mme3dr.benchmark.captions import prompt_sha256
from mme3dr.results import Results, SampleRecord

#: Benchmarks ranked on the leaderboard (fail closed: anything else, e.g. ``mme3dr-demo``, is refused).
LEADERBOARD_BENCHMARKS: tuple[str, ...] = ("mme3dr-v1", "toys4k-800")
#: Profiles that are never eligible (tiny random encoders; the authors' script's definitions).
INELIGIBLE_PROFILES: tuple[str, ...] = ("smoke", "ar3d-r1-script")
#: The rig every eligible run renders with.
EVAL_RIG = "eval24"
#: Tolerance when recomputing aggregates from samples.jsonl (float summation order only).
AGGREGATE_ATOL = 1e-6


@dataclass(frozen=True)
class Problem:
    """One reason a bundle is rejected: ``check`` names the rule, ``message`` says what is wrong."""

    check: str
    message: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.message}"


def _profile(name: str):
    from mme3dr.features.profiles import get_profile

    try:
        return get_profile(name)
    except KeyError:
        return None


def check_eligibility(res: Results) -> list[Problem]:
    """Profile, benchmark, --limit and the run's own eligibility flag."""
    out = []
    profile = _profile(res.profile)
    if profile is None:
        out.append(Problem("eligibility", f"profile {res.profile!r} is unknown to this mme3dr version"))
    elif res.profile in INELIGIBLE_PROFILES or not profile.leaderboard_eligible:
        from mme3dr.features.profiles import PROFILES

        eligible = [n for n, p in PROFILES.items() if p.leaderboard_eligible and n not in INELIGIBLE_PROFILES]
        out.append(Problem("eligibility", f"profile {res.profile!r} is never leaderboard-eligible; re-run "
                                          f"mme3dr evaluate with --profile {' or '.join(eligible)}"))
    if res.benchmark.name not in LEADERBOARD_BENCHMARKS:
        out.append(Problem("eligibility", f"benchmark {res.benchmark.name!r} is not ranked; "
                                          f"submit a run on one of {', '.join(LEADERBOARD_BENCHMARKS)}"))
    if not res.leaderboard_eligible:
        # the profile's own reason is the problem above already: say each reason once
        said = f"profile {res.profile!r}" if out else None
        reasons = [r for r in res.ineligible_reasons if not (said and r.startswith(said))]
        if reasons or not out:
            listed = "; ".join(reasons) or "no reason given"
            out.append(Problem("eligibility", f"the run marks itself ineligible: {listed}"))
    limit = res.config.get("limit")
    if limit not in (None, 0, False):
        out.append(Problem("eligibility", f"the run used --limit {limit}: a partial run is not comparable"))
    for task, counts in res.n_samples.items():
        if counts.get("effective") != counts.get("original"):
            msg = (f"n-samples[{task}]: {counts.get('effective')} of {counts.get('original')} cases "
                   "evaluated (--limit or a filter)")
            out.append(Problem("eligibility", msg))
    return out


def _card(message: str) -> Problem:
    return Problem("metric-card", message)


def _expected_model_id(key: str) -> str:
    """The ``model_id`` an encoder card of weights key ``key`` carries (``smoke-*``: ``smoke:...``)."""
    from mme3dr.features.weights import CATALOGUE

    spec = CATALOGUE.get(key)
    return spec.model_id if spec is not None else "smoke:"


def _encoder_problems(res: Results, profile) -> list[Problem]:
    """Each encoder the claimed profile uses must be on the card, with that encoder's model id."""
    out = []
    for role in ("clip", "inception", "dinov2"):
        key, enc = getattr(profile, role), res.metric_card.encoders.get(role)
        if key is None:
            continue
        want = _expected_model_id(key)
        smoke = want == "smoke:"
        matches = enc is not None and (enc.model_id.startswith(want) if smoke else enc.model_id == want)
        if not matches:
            out.append(_card(f"metric_card does not name the {res.profile!r} profile's encoder "
                             f"{key!r} ({want}) as encoders.{role}: the card and the profile "
                             "disagree"))
        if enc is not None and enc.model_id.startswith("smoke:") and want != "smoke:":
            out.append(_card(f"metric_card names the smoke encoder {enc.model_id!r}, but the "
                             f"run claims {res.profile!r}"))
    return out


def _facts_problems(res: Results) -> list[Problem]:
    """The card's metric facts, KD and bootstrap settings are mme3dr's own (read from the classes)."""
    from mme3dr.metrics import METRICS, ClipScore, KernelDistance

    card, out = res.metric_card, []
    for name, facts in card.metrics.items():
        cls = METRICS.get(name)
        if cls is None or facts.model_dump() != cls.facts():
            out.append(_card(f"metric_card metrics.{name} differs from mme3dr's definition "
                             f"of {name!r}"))
    kd = {"scale": KernelDistance.scale, "subsets": KernelDistance.subsets,
          "subset_size_max": KernelDistance.subset_size, "seed": KernelDistance.seed}
    boot = {"resamples": ClipScore.bootstrap_resamples, "seed": ClipScore.bootstrap_seed,
            "level": ClipScore.bootstrap_level}
    for key, want in (("kd", kd), ("clip_bootstrap", boot)):
        if getattr(card, key).model_dump() != want:
            out.append(_card(f"metric_card {key} is {getattr(card, key).model_dump()}, not the "
                             f"protocol's {want}"))
    if card.rig_hash != res.rig_hash or card.renderer != res.renderer:
        out.append(_card("metric_card rig/renderer differ from the run's rig_hash/renderer"))
    return out


def check_metric_card(res: Results) -> list[Problem]:
    """The metric card (``mme3dr.results.MetricCard``, typed) must describe the profile the run claims,
    field by field (a forged ``profile`` is caught here): its ``profile`` and ``leaderboard_eligible``
    agree with the run's, each encoder of the claimed profile is on it with that encoder's model id (a
    smoke encoder under a real profile is named), and the metric facts, KD and bootstrap settings, rig
    and renderer are mme3dr's and the run's own."""
    profile = _profile(res.profile)
    if profile is None:
        return [Problem("metric-card", f"cannot check the metric card of unknown profile {res.profile!r}")]
    card, out = res.metric_card, []
    if card.profile != res.profile:
        out.append(_card(f"metric_card profile is {card.profile!r} but the run says profile "
                         f"{res.profile!r}: the card and the profile disagree"))
    if not card.leaderboard_eligible and profile.leaderboard_eligible:
        out.append(_card("metric_card leaderboard_eligible is false: the feature suite that "
                         "scored this run is not eligible"))
    return out + _encoder_problems(res, profile) + _facts_problems(res)


def load_benchmark_manifest(name: str):
    """The manifest a results file names: a built-in benchmark, or the built-in demo (so that a demo
    run validates fully and fails only on eligibility)."""
    from mme3dr.benchmark.demo import DEMO_NAME, demo_manifest
    from mme3dr.benchmark.manifest import load_manifest

    return demo_manifest() if name == DEMO_NAME else load_manifest(name)


def check_metric_facts(res: Results) -> list[Problem]:
    """``higher_is_better`` in the results agrees with the metric classes (``mme3dr.metrics``): a
    flipped direction would re-order the leaderboard."""
    from mme3dr.metrics import METRICS

    out = []
    for task, facts in sorted(res.higher_is_better.items()):
        for name, hib in sorted(facts.items()):
            cls = METRICS.get(name)
            if cls is not None and bool(hib) != bool(cls.higher_is_better):
                msg = f"higher_is_better[{task!r}][{name!r}] is {hib}, but {name} is {cls.higher_is_better}"
                out.append(Problem("metric-card", msg))
    return out


def check_benchmark(res: Results) -> list[Problem]:
    """The manifest hash, case count and seed namespace are the benchmark's own; every ``results`` task
    is the benchmark or ``<benchmark>/<category>`` of one of its categories."""
    bench = res.benchmark
    try:
        manifest = load_benchmark_manifest(bench.name)
    except (ValueError, OSError) as exc:
        return [Problem("manifest", f"cannot load benchmark {bench.name!r}: {exc}")]
    out = []
    if bench.manifest_sha256 != manifest.sha256:
        msg = (f"manifest sha256 {bench.manifest_sha256} is not the sha256 of {manifest.name} "
               f"({manifest.sha256}): the run used another case list")
        out.append(Problem("manifest", msg))
    if bench.n_cases != len(manifest):
        msg = f"benchmark.n_cases is {bench.n_cases}, {manifest.name} has {len(manifest)} cases"
        out.append(Problem("manifest", msg))
    if bench.seed_namespace != manifest.name:
        out.append(Problem("seeds", f"seed namespace {bench.seed_namespace!r} is not {manifest.name!r}"))
    tasks = {bench.name, *(f"{bench.name}/{c.category}" for c in manifest.cases)}
    for task in sorted(set(res.results) - tasks):
        msg = (f"results has task {task!r}, which is neither the benchmark {bench.name!r} nor one of its "
               f"categories ({bench.name}/<category>)")
        out.append(Problem("manifest", msg))
    return out


def check_protocol(res: Results) -> list[Problem]:
    """Protocol version and rig (name and hash) are the current ones."""
    from mme3dr import PROTOCOL_VERSION
    from mme3dr.render.cameras import get_rig

    out = []
    if res.protocol_version != PROTOCOL_VERSION:
        msg = (f"protocol {res.protocol_version!r} is not the current {PROTOCOL_VERSION!r}; "
               "re-score with this mme3dr version")
        out.append(Problem("protocol", msg))
    rig_hash = get_rig(EVAL_RIG).hash
    if res.renderer.rig != EVAL_RIG:
        msg = f"rendered with rig {res.renderer.rig!r}, the protocol's is {EVAL_RIG!r}"
        out.append(Problem("protocol", msg))
    for where, value in (("rig_hash", res.rig_hash), ("renderer.rig_hash", res.renderer.rig_hash)):
        if value != rig_hash:
            out.append(Problem("protocol", f"{where} {value} is not the {EVAL_RIG} rig's hash {rig_hash}"))
    return out


def check_cases(res: Results, samples: list[SampleRecord]) -> list[Problem]:
    """Every case and sample index present exactly once, in its category, with the derived seed."""
    from mme3dr.models.protocol import derive_seed

    try:
        manifest = load_benchmark_manifest(res.benchmark.name)
    except (ValueError, OSError) as exc:
        return [Problem("cases", f"cannot load benchmark {res.benchmark.name!r} to check cases: {exc}")]
    out: list[Problem] = []
    by_case: dict[str, list[SampleRecord]] = defaultdict(list)
    for s in samples:
        by_case[s.case_id].append(s)
    expected = {c.case_id: c for c in manifest.cases}
    missing = [c for c in expected if c not in by_case]
    if missing:
        msg = (f"{len(missing)} case(s) missing from samples.jsonl (first: {missing[0]}); failed "
               "generations must be explicit 'failed' records, never dropped")
        out.append(Problem("cases", msg))
    unknown = sorted(set(by_case) - set(expected))
    if unknown:
        msg = f"samples.jsonl has {len(unknown)} case(s) not in {manifest.name} (first: {unknown[0]})"
        out.append(Problem("cases", msg))
    counts = Counter(len(v) for v in by_case.values())
    if len(counts) > 1:
        out.append(Problem("cases", f"cases differ in number of samples: {dict(sorted(counts.items()))}"))
    for case_id, recs in by_case.items():
        indices = sorted(r.sample_index for r in recs)
        if indices != list(range(len(recs))):
            msg = f"case {case_id}: sample indices {indices} are not 0..{len(recs) - 1}"
            out.append(Problem("cases", msg))
        case = expected.get(case_id)
        for r in recs:
            where = f"case {case_id} sample {r.sample_index}"
            if case is not None and r.category != case.category:
                msg = f"{where} is in category {case.category!r}, samples.jsonl says {r.category!r}"
                out.append(Problem("cases", msg))
            seed = derive_seed(res.benchmark.seed_namespace, r.case_id, r.sample_index)
            if r.seed != seed:
                out.append(Problem("seeds", f"{where}: seed {r.seed} is not the derived seed {seed}"))
            if prompt_sha256(r.prompt) != r.prompt_sha256:
                out.append(Problem("cases", f"{where}: prompt_sha256 does not match its prompt"))
            if case is not None and case.prompt is not None and r.prompt != case.prompt:
                out.append(Problem("cases", f"{where}: the prompt is not the benchmark's prompt"))
    return out


def check_failures(res: Results, samples: list[SampleRecord]) -> list[Problem]:
    """Failures are explicit with a reason and add up to ``results.failures``; 'ok' samples have assets."""
    out = []
    counted: Counter[str] = Counter()
    for s in samples:
        where = f"case {s.case_id} sample {s.sample_index}"
        if s.status == "failed":
            if not s.failure:
                out.append(Problem("failures", f"{where} failed with no reason"))
            else:
                counted[s.failure] += 1
        elif not s.asset_sha256:
            out.append(Problem("failures", f"{where} is 'ok' but has no asset"))
    reported = {k: v for k, v in res.failures.items() if v}
    if dict(counted) != reported:
        msg = (f"results.failures {dict(sorted(reported.items()))} does not match the failed records "
               f"in samples.jsonl {dict(sorted(counted.items()))}")
        out.append(Problem("failures", msg))
    return out


def check_duplicate_assets(samples: list[SampleRecord]) -> list[Problem]:
    """One generated file may answer one case only (a copy across cases is not a generation)."""
    cases_of: dict[str, set[str]] = defaultdict(set)
    for s in samples:
        if s.asset_sha256:
            cases_of[s.asset_sha256].add(s.case_id)
    out = []
    for sha, cases in sorted(cases_of.items()):
        if len(cases) > 1:
            msg = f"asset {sha[:12]}… is submitted for {len(cases)} cases ({', '.join(sorted(cases)[:3])}, …)"
            out.append(Problem("duplicates", msg))
    return out


def _close(got: object, value: float) -> bool:
    return isinstance(got, (int, float)) and abs(got - value) <= AGGREGATE_ATOL


def check_aggregates(res: Results, samples: list[SampleRecord]) -> list[Problem]:
    """Recompute every per-asset metric's mean and 95% CI from samples.jsonl; compare with results.

    Catches an edited metric value in either file (samples.jsonl is also bound to results by
    ``samples_sha256``). Set metrics (KD, FD) need features: the ``re-scored`` tier checks those.
    """
    from mme3dr.metrics.clip_score import aggregate_clip_scores

    out: list[Problem] = []
    bench = res.benchmark.name
    # The reported per-asset metrics: those the results rank (``higher_is_better``) that samples carry.
    per_asset = {k for s in samples for k, v in s.metrics.items() if v is not None}
    names = sorted(per_asset & set(res.higher_is_better.get(bench, {})))
    if not names:
        return [Problem("aggregates", "no per-asset metric values in samples.jsonl to check results against")]
    for name in names:
        scored = [(s.category, s.metrics[name]) for s in samples if s.metrics.get(name) is not None]
        if any(not math.isfinite(v) for _, v in scored):
            out.append(Problem("aggregates", f"samples.jsonl has a non-finite {name} value"))
            continue
        agg = aggregate_clip_scores([v for _, v in scored], [c for c, _ in scored])
        tasks = {bench: agg, **{f"{bench}/{c}": a for c, a in agg["per_category"].items()}}
        for task, a in tasks.items():
            reported = res.results.get(task, {})
            expected = {name: a["mean"], f"{name}_ci95_low": a["ci95"][0], f"{name}_ci95_high": a["ci95"][1]}
            for key, value in expected.items():
                got = reported.get(key)
                if key == name and got is None:
                    out.append(Problem("aggregates", f"results[{task!r}] has no {name!r}"))
                elif got is not None and not _close(got, value):
                    msg = (f"results[{task!r}][{key!r}] is {got}, but samples.jsonl gives {value:.6f}: "
                           "a metric value was changed")
                    out.append(Problem("aggregates", msg))
    n_failed = sum(s.status == "failed" for s in samples)
    reported_failed = res.results.get(bench, {}).get("n_failed")
    if reported_failed is not None and reported_failed != n_failed:
        msg = f"results[{bench!r}]['n_failed'] is {reported_failed}; samples.jsonl has {n_failed} failures"
        out.append(Problem("aggregates", msg))
    return out
