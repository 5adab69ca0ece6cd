"""The ``mme3dr evaluate`` pipeline, top to bottom, each stage entered once (docs/architecture.md):

inputs (manifest, references, prompts) → generate (adapter process, per-request timeout) →
content-addressed asset store → render + encode (the generated assets and the reference objects, same
rig, render cache, features cached per render) → sample records (per-asset scores) → shard record →
[judge] → scoring core (set metrics, CIs, per-category rows) → ``samples.jsonl`` + ``results.json`` →
[report].

``evaluate(EvalConfig(...))`` is the whole pipeline; the command line only builds the config and prints,
so Python and the command write the same files. Every stage is keyed by content hashes, so a re-run or
``--resume`` skips finished work, and a killed run loses at most the sample in flight. Every run writes
its :class:`~mme3dr.results.ShardRecord` (``shard.json``); a sharded run (``--num-shards K
--shard-index i``) stops there and ``mme3dr merge`` finishes the shards into the same results as one run.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mme3dr.assets.store import AssetStore, ClosureError
from mme3dr.errors import UserError
from mme3dr.harness.config import EvalConfig
from mme3dr.harness.inputs import BenchmarkInputs, load_benchmark_inputs
from mme3dr.harness.run_state import RunLock, RunState
from mme3dr.models.protocol import GenerationRequest, derive_seed
from mme3dr.results import GenerationRecord, SampleRecord, ShardRecord

__all__ = ["EvalConfig", "EvalSummary", "evaluate", "select_cases"]

Progress = Callable[[str, int, int], None]
_COUNTERS = ("generated", "generation_skipped", "renders_done", "renders_cached", "features_computed",
             "features_cached")


@dataclass
class EvalSummary:
    """What a run did: scored and failed samples, failures by reason, cache counters, seconds per stage,
    the results (None for a shard: ``mme3dr merge`` finishes it) and the report's path (if written)."""

    out: Path
    results_path: Path | None
    n_ok: int
    n_failed: int
    failures: dict[str, int]
    counters: dict[str, int]
    timing: dict[str, float]
    results: dict[str, Any] | None = None
    shard_only: bool = False
    report_path: Path | None = None
    judge_failures: dict[str, int] | None = None
    #: ``--judge`` got no answer for any sample: why (the results were written without the judge).
    judge_error: str | None = None


def select_cases(inputs: BenchmarkInputs, cfg: EvalConfig) -> list:
    """The cases this run evaluates: ``--categories``, then ``--limit`` (first N), then the shard."""
    cases = list(inputs.manifest.cases)
    if cfg.categories:
        unknown = sorted(set(cfg.categories) - {c.category for c in cases})
        if unknown:
            raise UserError(f"--categories: {', '.join(unknown)} not in {inputs.manifest.name}; "
                            f"categories there: {', '.join(inputs.manifest.counts())}")
        cases = [c for c in cases if c.category in cfg.categories]
    if cfg.limit is not None:
        cases = cases[: cfg.limit]
    return cases[cfg.shard_index :: cfg.num_shards]


def _cache_dir(cfg: EvalConfig) -> Path:
    return Path(cfg.cache_dir) if cfg.cache_dir else cfg.out / "cache"


def evaluate(cfg: EvalConfig, progress: Progress | None = None) -> EvalSummary:
    """Run the pipeline (module docstring); returns a summary.

    Before anything is written: ``--out`` (and ``--cache-dir``) must be usable folders, the device
    must exist, and no other process may hold the run folder (``RunLock``, held to the end). Raises
    :class:`~mme3dr.errors.UserError` for unusable input (a start that fails so leaves no folder or
    cache behind that it made), and an ``OSError`` for a full disk
    (``mme3dr.output_files.is_disk_full``): every file written until then is complete, and ``--resume``
    continues once there is space.
    """
    from mme3dr.harness.run_guards import check_device
    from mme3dr.output_files import prepare_output_dir

    made = [p for p in (cfg.out, _cache_dir(cfg)) if not p.exists()]
    prepare_output_dir(cfg.out, "--out")
    if cfg.cache_dir is not None:
        prepare_output_dir(cfg.cache_dir, "--cache-dir")
    run = _Pipeline(cfg, progress or (lambda stage, done, total: None))
    locked = False
    try:
        check_device(cfg.device)
        with RunLock(cfg.out):
            locked = True
            return run.run()
    except UserError:
        # Nothing of the run was written: leave no folder behind that this call made (before the lock
        # is ours, only a run folder this call created: another run may be filling the cache).
        for path in made if locked and not run.started else made[:1] if cfg.out in made else []:
            shutil.rmtree(path, ignore_errors=True)
        raise


class _Pipeline:
    """One evaluation: the stages in order, each entered once (``run``)."""

    def __init__(self, cfg: EvalConfig, progress: Progress) -> None:
        self.cfg, self.progress = cfg, progress
        self.timing: dict[str, float] = {}
        self.counters = dict.fromkeys(_COUNTERS, 0)
        self.started = False  # the run state is open: from here on a failure keeps what was written

    def run(self) -> EvalSummary:
        t0 = time.perf_counter()
        self._inputs()
        with contextlib.ExitStack() as stack:
            self._start(stack)
            t = time.perf_counter()
            _generate_stage(self.cfg, self.state, AssetStore(self.cfg.out / "assets"), self.loaded,
                            self.inputs, self.cases, self.progress, self.counters)
            self.loaded.close()  # the adapter's memory (a GPU model) is free for the encoders from here on
            self.timing["generate"] = time.perf_counter() - t
            rendered = self._render()
        shard = self._shard(rendered)
        from mme3dr.harness.merge import write_shard

        write_shard(self.cfg.out, shard)
        if self.cfg.num_shards > 1:
            return self._summary(shard.samples, None, t0)
        judge = self._judge(shard) if self.cfg.judge and _n_ok(shard.samples) else None
        results = self._finish(shard, judge)
        return self._summary(shard.samples, results, t0, judge)

    def _inputs(self) -> None:
        """Profile, rig, benchmark inputs, the cases of this run (and shard) and their CLIP texts."""
        from mme3dr.features.profiles import get_profile, with_options
        from mme3dr.harness.run_guards import check_folder_matches
        from mme3dr.render.cameras import get_rig

        cfg = self.cfg
        self.profile = with_options(get_profile(cfg.profile), prompt_source=cfg.prompt_source)
        rig = get_rig("eval24")
        size = cfg.render_size or self.profile.render_size
        self.rig = rig.with_size(size) if size and size != rig.width else rig
        self.inputs = load_benchmark_inputs(cfg.benchmark, toys4k=cfg.toys4k, toys4k_kind=cfg.toys4k_kind,
                                            captions=cfg.captions, cache_dir=_cache_dir(cfg))
        # Eligibility looks at the whole run's cases, not this shard's, so every shard writes the same meta.
        self.whole = select_cases(self.inputs, replace(cfg, num_shards=1, shard_index=0))
        self.cases = self.whole[cfg.shard_index :: cfg.num_shards]
        self.keys = [(c, i) for c in self.cases for i in range(cfg.samples_per_prompt)]
        check_folder_matches(cfg.model, [(c.case_id, i) for c, i in self.keys])
        raw = self.inputs.raw_captions
        self.clip_texts = {c.case_id: self.profile.clip_text(c.prompt, raw.get(c.case_id))
                           for c in self.cases if c.prompt}

    def _start(self, stack: contextlib.ExitStack) -> None:
        """The adapter's process, the run state, the render workers and the feature encoders."""
        from mme3dr.harness.adapter_process import AdapterProcess
        from mme3dr.harness.records import run_config
        from mme3dr.render.pool import RenderPool

        t, cfg = time.perf_counter(), self.cfg
        self.loaded = stack.enter_context(AdapterProcess(cfg.model, cfg.model_args))
        self.config = run_config(cfg, self.loaded, self.inputs, self.rig, self.profile)
        # The render workers start here, so their start-up (≈ 3 s each) overlaps building the encoders and
        # generating; the pool lives until the last render is encoded.
        self.pool = stack.enter_context(RenderPool(self.rig, _cache_dir(cfg) / "renders", workers=cfg.workers,
                                                   shading=self.profile.shading, backend=cfg.backend,
                                                   keep_views=True))
        # Build the encoders before anything renders: importing torch (triton) after Mesa's EGL is loaded
        # into the process segfaults on these machines, so torch must come first.
        self.suite = _feature_suite(self.profile, cfg)
        # The run state opens once every input is known to be usable (the weights included), so a start
        # that fails on them leaves the run folder as it was.
        self.state = RunState(cfg.out)
        self.resumed = self.state.open({**self.config, "num_shards": cfg.num_shards,
                                        "shard_index": cfg.shard_index}, resume=cfg.resume,
                                       overwrite=cfg.overwrite)
        self.started = True
        self.state.check_renderer(self.pool.renderer_identity(), allow_change=cfg.allow_renderer_change)
        self.timing["setup"] = time.perf_counter() - t

    def _render(self):
        """Render the references, then the generated assets (one pool), encoding each render as it
        finishes (``mme3dr.harness.render_features``)."""
        from mme3dr.harness.feature_store import ViewFeatures
        from mme3dr.harness.render_features import render_and_encode

        refs = self.inputs.references
        ref_items = [(c.case_id, refs[c.case_id].path, refs[c.case_id].up_axis)
                     for c in self.cases if c.case_id in refs and refs[c.case_id].path]
        store = AssetStore(self.cfg.out / "assets")
        self.records = {(c.case_id, i): GenerationRecord.model_validate(self.state.get(c.case_id, i))
                        for c, i in self.keys}
        gen_items = []
        for key, rec in self.records.items():
            path = store.get(rec.asset_sha256, rec.asset_format) if rec.asset_sha256 else None
            if path is not None:
                gen_items.append((key, path, rec.up_axis or "y"))
        self.features = ViewFeatures(self.suite, self.cfg.out / "features")
        return render_and_encode(self.pool, ref_items, gen_items, features=self.features,
                                 counters=self.counters, progress=self.progress, timing=self.timing)

    def _shard(self, rendered) -> ShardRecord:
        """Per-asset scores into sample records, and this run's shard record."""
        from mme3dr.harness.records import run_meta, sample_record

        t = time.perf_counter()
        # One prompt per call: a batch's floating-point result depends on the batch's size and company, and
        # a case's score must not depend on which other cases share its run (shards, --limit, resume).
        encoded = {p: self.suite.clip.encode_texts([p])[0] for p in sorted(set(self.clip_texts.values()))}
        text = {case_id: encoded[clip_text] for case_id, clip_text in self.clip_texts.items()}
        samples = [sample_record(c, i, self.records[(c.case_id, i)], rendered, text, self.profile.metrics)
                   for c, i in self.keys]
        self.timing["features"] += time.perf_counter() - t
        refs = {k: sha for (side, k), sha in rendered.render_sha256.items() if side == "references"}
        render_dirs = {sha: str(rendered.references[k].render_dir) for k, sha in refs.items()}
        for s in samples:
            if s.render_sha256:
                render_dirs[s.render_sha256] = str(rendered.generated[(s.case_id, s.sample_index)].render_dir)
        cfg = self.cfg
        meta = run_meta(cfg, self.loaded, self.inputs, self.rig, self.profile, self.config, self.suite,
                        [c.case_id for c in self.whole])
        execution = {"workers": cfg.workers, "num_shards": cfg.num_shards, "shard_index": cfg.shard_index,
                     "resumed": self.resumed, "counters": self.counters}
        return ShardRecord(meta=meta, samples=samples, references=refs, suite_id=self.features.suite_id,
                           execution=execution, timing=self.timing, render_dirs=render_dirs)

    def _judge(self, shard: ShardRecord):
        """The judge stage (``--judge``): per-sample judge scores into the samples, and the judgements.
        When no sample got an answer the results go without the judge (``judge_error`` says why)."""
        from mme3dr.harness.judging import NoJudgeAnswer, judge_stage, write_judge_log

        t = time.perf_counter()
        try:
            judged, card = judge_stage(shard.samples, shard.render_dirs, self.cfg.judge_config(),
                                       self.cfg.out / "cache" / "judge", run_dir=self.cfg.out)
        except NoJudgeAnswer as e:
            self.judge_error = str(e).replace("was left unchanged", "has no judge scores")
            return None
        write_judge_log(self.cfg.out, judged)
        self.timing["judge"] = time.perf_counter() - t
        return judged, card

    def _finish(self, shard: ShardRecord, judge) -> dict[str, Any]:
        """The scoring core over this run's samples (in memory), the frame audit, ``results.json`` (written
        once), and the report."""
        from mme3dr.harness.merge import finish

        t = time.perf_counter()
        # The frame audit (mme3dr.audit) is recorded as results.json is written: it warns, never changes
        # a score.
        results = finish([shard], [self.cfg.out / "features"], self.cfg.out, judge=judge, frame_audit=True)
        self.timing["metrics"] = time.perf_counter() - t
        if self.cfg.report and results.results[results.benchmark.name].get("n", 0):
            from mme3dr.report import write_report

            self.report_path = write_report(self.cfg.out)
        return results.model_dump(by_alias=True, mode="json")

    def _summary(self, samples: list[SampleRecord], results, t0: float, judge=None) -> EvalSummary:
        failures: dict[str, int] = {}
        for s in samples:
            if s.failure:
                failures[s.failure] = failures.get(s.failure, 0) + 1
        judge_failures: dict[str, int] | None = None
        if judge is not None:
            judge_failures = {}
            for j in judge[0]:
                if j.failure:
                    reason = j.failure.split(":")[0]
                    judge_failures[reason] = judge_failures.get(reason, 0) + 1
        self.timing["total"] = time.perf_counter() - t0
        n_ok = _n_ok(samples)
        return EvalSummary(self.cfg.out, None if results is None else self.cfg.out / "results.json", n_ok,
                           len(samples) - n_ok, failures, self.counters, self.timing, results,
                           results is None, getattr(self, "report_path", None), judge_failures,
                           getattr(self, "judge_error", None))


def _feature_suite(profile, cfg: EvalConfig):
    """The profile's encoders; missing weights name the way to get them, and ``--profile smoke`` for a
    check of the pipeline that needs none (the default profile, paper, needs them: a first run offline
    lands here)."""
    from mme3dr.features import load_feature_suite
    from mme3dr.features.weights import WeightsNotFoundError

    try:
        return load_feature_suite(profile, device=cfg.device, weights_dir=cfg.weights_dir)
    except WeightsNotFoundError as e:
        hint = ("or, to check the pipeline offline without any weights: --profile smoke (tiny random "
                "encoders; its numbers are not scores)")
        raise WeightsNotFoundError(f"{e}\n- {hint}") from None


def _n_ok(samples: list[SampleRecord]) -> int:
    return sum(s.status == "ok" for s in samples)


def _pending(cfg, state, inputs, cases, counters) -> tuple[list[GenerationRequest], int]:
    """The (case, sample) requests still to generate, and how many are already done (skipped or a
    case without a reference object or prompt, recorded as ``reference_missing``)."""
    pending: list[GenerationRequest] = []
    done = 0
    for case in cases:
        ref = inputs.references.get(case.case_id)
        for i in range(cfg.samples_per_prompt):
            seed = derive_seed(inputs.manifest.name, case.case_id, i)
            if state.get(case.case_id, i) is not None:
                counters["generation_skipped"] += 1
                done += 1
            elif ref is None or ref.path is None or not case.prompt:
                detail = (ref.error if ref else None) or "the case has no reference object or prompt"
                state.put(case.case_id, i, GenerationRecord(seed=seed, failure="reference_missing",
                                                            detail=detail).state())
                done += 1
            else:
                pending.append(GenerationRequest(case.case_id, case.prompt, seed, i,
                                                 state.work_dir(case.case_id, i)))
    return pending, done


def _usable_seconds(value: object) -> float | None:
    """An adapter's generation time (s) when it is a finite number >= 0, else None (not recorded).

    Adapters report it (``Asset.seconds``, a ``cmd:`` program's ``<id>.json``, a folder's
    ``timings.json``); a NaN, an infinity, a negative or a string there must not stop the run when
    results.json is written at its end.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def _store_outcome(store: AssetStore, outcome) -> GenerationRecord:
    """The generation record of one adapter outcome, its asset copied into the content-addressed store."""
    from mme3dr.output_files import is_disk_full

    rec = GenerationRecord(seed=outcome.request.seed, seconds=_usable_seconds(outcome.seconds))
    if outcome.asset is None:
        return rec.model_copy(update={"failure": outcome.failure, "detail": outcome.detail})
    try:
        stored = store.put(outcome.asset.path, outcome.asset.resolved_format)
    except ClosureError as e:  # it references a file outside its folder
        return rec.model_copy(update={"failure": "asset_refused", "detail": str(e)})
    except OSError as e:
        if is_disk_full(e):  # not the adapter's fault: stop, record nothing, --resume redoes it
            raise
        detail = f"could not copy the asset: {e}"
        return rec.model_copy(update={"failure": "missing_output", "detail": detail})
    except Exception as e:  # noqa: BLE001 - whatever storing one asset raises is that sample's failure
        detail = f"could not store the asset ({type(e).__name__}: {str(e)[:500]})"
        return rec.model_copy(update={"failure": "asset_refused", "detail": detail})
    return rec.model_copy(update={"asset_sha256": stored.sha256, "asset_format": stored.format,
                                  "up_axis": outcome.asset.up_axis})


def _generate_stage(cfg, state, store, loaded, inputs, cases, progress: Progress, counters) -> None:
    """Generate every missing (case, sample) through the adapter process (``loaded``) and record it."""
    if loaded.wants_references:  # the oracle: the only adapter allowed to see references
        loaded.bind_references({k: (r.path, r.up_axis) for k, r in inputs.references.items() if r.path})
    pending, done = _pending(cfg, state, inputs, cases, counters)
    total = len(cases) * cfg.samples_per_prompt
    progress("generate", done, total)
    batch_size = loaded.max_batch_size
    for start in range(0, len(pending), batch_size):
        for outcome in loaded.generate(pending[start : start + batch_size], cfg.timeout):
            r = outcome.request
            state.put(r.case_id, r.sample_index, _store_outcome(store, outcome).state())
            counters["generated"] += 1
            done += 1
        progress("generate", done, total)
