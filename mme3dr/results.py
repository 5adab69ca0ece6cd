"""The schema of ``results.json`` and of each ``samples.jsonl`` line (pydantic v2, no torch).

Light module: pydantic + the standard library only, so that the leaderboard can validate a submission
anywhere (style.md). Unknown fields are rejected (``extra="forbid"``): a typo in a submission is an
error, not silently ignored data.

Top-level keys follow lm-evaluation-harness where one exists (``results``, ``configs``, ``versions``,
``n-samples``, ``higher_is_better``, ``config``, ``git_hash``, ``date``), so tools that read lm-eval
output find familiar places; the 3D provenance (model, adapter source, manifest hash, rig, renderer,
metric card, eligibility, failures) sits beside them.

- ``results[task]`` is a flat mapping like lm-eval's: metric name -> value, plus ``<metric>_std``,
  ``<metric>_ci95_low`` / ``<metric>_ci95_high``, ``n`` (scored assets) and ``n_failed``. ``task`` is
  the benchmark name (overall) or ``"<benchmark>/<category>"``.
- Volatile keys (``date``, ``execution``, ``timing`` and each sample's ``seconds``) are the only ones
  that may differ between two runs of the same configuration; ``strip_volatile`` removes them. Everything
  else is reproducible byte for byte.

Export the JSON Schemas with ``python -m mme3dr.results docs/``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "FAILURE_REASONS",
    "RESULTS_SCHEMA_VERSION",
    "VOLATILE_RESULT_KEYS",
    "VOLATILE_SAMPLE_KEYS",
    "AdapterSource",
    "BenchmarkInfo",
    "EncoderCard",
    "GenerationRecord",
    "JudgeCard",
    "MetricCard",
    "RunMeta",
    "ShardRecord",
    "ModelInfoRecord",
    "RendererInfo",
    "Results",
    "SampleRecord",
    "dump_results",
    "export_json_schemas",
    "load_results",
    "read_samples",
    "sample_line",
    "shard_render_dirs",
    "strip_volatile",
    "samples_digest",
    "write_samples",
]

RESULTS_SCHEMA_VERSION = "mme3dr-results-1"

#: Why a (case, sample) has no score. The mesh reasons mirror ``mme3dr.assets.mesh.MeshFailure`` (kept as
#: strings here so this module stays light; a test checks the two lists agree).
FAILURE_REASONS: tuple[str, ...] = (
    # the adapter
    "adapter_error",  # generate() raised
    "adapter_timeout",  # generate() did not return within --timeout
    "adapter_crashed",  # the adapter's process died (os._exit, a signal) while generating
    "adapter_wrong_count",  # generate() returned a different number of assets than requests
    "adapter_bad_return",  # an element was not an Asset / path
    "missing_output",  # the returned path does not exist
    "asset_refused",  # ambiguous, or a file/reference leaving the adapter's or asset's folder
    # the asset (mme3dr.assets.mesh.MeshFailure)
    "missing_file",
    "empty_file",
    "unsupported_format",
    "corrupt_file",
    "point_cloud_only",
    "no_triangles",
    "non_finite_coordinates",
    "zero_extent",
    "too_many_faces",
    "unsupported_feature",  # the file uses something the renderer cannot honour (named in the detail)
    "image_too_large",  # a texture declares more pixels than the loader decodes
    # later stages
    "render_error",
    "non_finite_features",  # an encoder gave NaN or infinity for this render (or its prompt)
    "render_timeout",  # a render did not finish within the pool's deadline (a stopped or stuck worker)
    "reference_missing",  # the case's ground-truth object could not be loaded or rendered
)

#: ``frame_audit`` is a diagnostic (mme3dr.audit), not a score: a merge or a verifier's re-run may lack it.
VOLATILE_RESULT_KEYS: tuple[str, ...] = ("date", "execution", "timing", "frame_audit")
VOLATILE_SAMPLE_KEYS: tuple[str, ...] = ("seconds",)

_SHA256 = r"^[0-9a-f]{64}$"
_METRIC_KEY = re.compile(r"^[a-z0-9_]+$")

Sha256 = str

from mme3dr.metric_card import (  # noqa: E402  (re-exported: the card is part of results.json's schema)
    EncoderCard,
    JudgeCard,
    MetricCard,
    RendererInfo,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ModelInfoRecord(_Strict):
    """``mme3dr.models.protocol.ModelInfo`` as recorded."""

    name: str
    revision: str = "unknown"
    output_format: str = "glb"
    license: str = "unknown"
    open_weights: bool = False
    deterministic: bool = False
    url: str | None = None


class AdapterSource(_Strict):
    """Where the adapter came from, so a reader can find the exact code."""

    spec: str = Field(description="the --model value as given, e.g. 'primitives' or 'my_pkg.mod:Model'")
    kind: Literal["builtin", "entry_point", "module", "file", "folder", "command", "object"]
    target: str = Field(description="the resolved 'module:attr' (or file path:attr)")
    model_args: dict[str, str] = Field(default_factory=dict)
    distribution: str | None = Field(None, description="installed package providing it, if any")
    distribution_version: str | None = None
    file_sha256: str | None = Field(None, pattern=_SHA256, description="sha256 of the adapter's source file")


class BenchmarkInfo(_Strict):
    name: str = Field(description="manifest name: 'mme3dr-v1', 'toys4k-800', 'mme3dr-demo', or a file stem")
    version: str
    manifest_sha256: str = Field(pattern=_SHA256)
    seed_namespace: str = Field(description="the benchmark_version argument of derive_seed()")
    n_cases: int = Field(ge=0, description="cases in the manifest before --limit/--categories")
    categories: list[str]


TaskResult = dict[str, float | int | str | None]


class _RunFields(_Strict):
    """What a run is, as both ``results.json`` (:class:`Results`) and each shard's metadata
    (:class:`RunMeta`) record it: one declaration, so the two cannot drift apart."""

    protocol_version: str
    mme3dr_version: str
    profile: str
    model_info: ModelInfoRecord
    adapter: AdapterSource
    benchmark: BenchmarkInfo
    rig_hash: str = Field(pattern=_SHA256)
    renderer: RendererInfo
    metric_card: MetricCard
    ineligible_reasons: list[str]
    config: dict[str, Any]
    git_hash: str | None
    environment: dict[str, Any]


# The run's own fields are declared once, in _RunFields (shared with RunMeta).
class Results(_RunFields):
    """``results.json``."""

    schema_version: Literal["mme3dr-results-1"] = RESULTS_SCHEMA_VERSION
    results: dict[str, TaskResult]
    configs: dict[str, dict[str, Any]]
    versions: dict[str, str]
    n_samples: dict[str, dict[Literal["original", "effective"], int]] = Field(alias="n-samples")
    higher_is_better: dict[str, dict[str, bool]]
    date: str | None = Field(description="ISO-8601 UTC time the run finished (volatile)")
    leaderboard_eligible: bool
    failures: dict[str, int] = Field(description="failed (case, sample) pairs by reason")
    samples_file: str = "samples.jsonl"
    samples_sha256: str = Field(
        pattern=_SHA256, description="sha256 of samples.jsonl with volatile keys removed"
    )
    execution: dict[str, Any] | None = Field(None, description="workers, shards, resume (volatile)")
    timing: dict[str, float] | None = Field(None, description="seconds per stage (volatile)")
    frame_audit: dict[str, Any] | None = Field(
        None, description="mme3dr.audit's check that the generated assets are not turned relative to the "
        "references: flagged, rotation, share, n, message (volatile; never changes a score)")

    @field_validator("results")
    @classmethod
    def _metric_keys(cls, v: dict[str, TaskResult]) -> dict[str, TaskResult]:
        for task, metrics in v.items():
            for key in metrics:
                if not _METRIC_KEY.match(key):
                    raise ValueError(f"results[{task!r}] key {key!r} is not a lower_snake metric name")
        return v

    @field_validator("failures")
    @classmethod
    def _known_reasons(cls, v: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(v) - set(FAILURE_REASONS))
        if unknown:
            raise ValueError(f"unknown failure reasons {unknown}; known: {', '.join(FAILURE_REASONS)}")
        return v

    @model_validator(mode="after")
    def _eligible_means_no_reasons(self) -> Results:
        # after every field, not a field validator: it must not depend on the order the fields are declared
        if self.leaderboard_eligible and self.ineligible_reasons:
            raise ValueError("leaderboard_eligible is true but ineligible_reasons is not empty")
        if not self.leaderboard_eligible and not self.ineligible_reasons:
            raise ValueError("leaderboard_eligible is false: ineligible_reasons must say why")
        return self


class SampleRecord(_Strict):
    """One ``samples.jsonl`` line: one (case, sample)."""

    case_id: str
    category: str
    sample_index: int = Field(ge=0)
    seed: int = Field(ge=0)
    prompt: str
    prompt_sha256: str = Field(pattern=_SHA256)
    reference_sha256: str | None = Field(None, pattern=_SHA256, description="the ground-truth object file")
    asset_sha256: str | None = Field(None, pattern=_SHA256, description="the generated file's bytes")
    asset_format: str | None = None
    render_sha256: str | None = Field(None, pattern=_SHA256, description="hash of the generated views")
    reference_render_sha256: str | None = Field(None, pattern=_SHA256)
    metrics: dict[str, float | None] = Field(default_factory=dict, description="per-asset scores, e.g. clip")
    status: Literal["ok", "failed"]
    failure: str | None = None
    failure_detail: str | None = None
    seconds: float | None = Field(None, description="generation seconds (volatile)")

    @field_validator("failure")
    @classmethod
    def _known_reason(cls, v: str | None) -> str | None:
        if v is not None and v not in FAILURE_REASONS:
            raise ValueError(f"unknown failure reason {v!r}; known: {', '.join(FAILURE_REASONS)}")
        return v


class GenerationRecord(_Strict):
    """What generating one (case, sample) gave, as the run state keeps it: the stored asset, or why
    there is none. ``detail`` is the failure's one-line explanation."""

    seed: int = Field(ge=0)
    seconds: float | None = None
    asset_sha256: str | None = Field(None, pattern=_SHA256)
    asset_format: str | None = None
    up_axis: str | None = None
    failure: str | None = None
    detail: str | None = None

    def state(self) -> dict[str, Any]:
        """The run-state form (absent entries left out, as earlier runs wrote it)."""
        return self.model_dump(exclude_none=True)


class RunMeta(_RunFields):
    """Everything in ``results.json`` besides the metrics, the samples' hash and the volatile keys; made
    once per run (every shard of a run makes the same one): the run's fields and the following."""

    metrics: list[str]
    n_original: int = Field(ge=0)


class ShardRecord(_Strict):
    """One evaluate run's finished part (``shard.json``): its samples, reference render hashes, metadata
    and where its renders are. A plain run hands it to the scoring core in memory; a sharded run
    writes it for ``mme3dr merge``."""

    meta: RunMeta
    samples: list[SampleRecord]
    references: dict[str, str] = Field(description="case id -> reference render sha256")
    suite_id: str | None
    execution: dict[str, Any]
    timing: dict[str, float]
    render_dirs: dict[str, str] = Field(default_factory=dict, description="render sha256 -> view folder")


# --- reading and writing ---------------------------------------------------------------------------


def strip_volatile(record: dict[str, Any], keys: tuple[str, ...] = VOLATILE_RESULT_KEYS) -> dict[str, Any]:
    """A copy of a results (or sample, with ``VOLATILE_SAMPLE_KEYS``) dict without the volatile keys."""
    return {k: v for k, v in record.items() if k not in keys}


def _canonical_json(obj: Any) -> str:
    # sort_keys: byte-stable files regardless of dict construction order.
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, allow_nan=False, indent=2)


def dump_results(results: Results, path: str | Path) -> None:
    """Write ``results.json`` canonically (sorted keys, 2-space indent, trailing newline), atomically."""
    from mme3dr.output_files import atomic_write_text

    atomic_write_text(path, _canonical_json(results.model_dump(by_alias=True, mode="json")) + "\n")


def load_results(path: str | Path) -> Results:
    """Read and validate ``results.json``; raises ``ValueError`` saying what is wrong."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{p}: no such results file; run `mme3dr evaluate ... --out DIR` first") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{p}: not valid JSON ({e.msg} at line {e.lineno})") from None
    return Results.model_validate(data)


def sample_line(record: SampleRecord) -> str:
    """One canonical JSON line (sorted keys, no spaces)."""
    return json.dumps(record.model_dump(mode="json"), sort_keys=True, ensure_ascii=False,
                      separators=(",", ":"), allow_nan=False)


def samples_digest(records: list[SampleRecord]) -> str:
    """``results.samples_sha256``: sha256 of the records' canonical JSON lines, volatile keys removed."""
    import hashlib

    stable = "".join(
        json.dumps(strip_volatile(r.model_dump(mode="json"), VOLATILE_SAMPLE_KEYS), sort_keys=True,
                   ensure_ascii=False, separators=(",", ":")) + "\n"
        for r in records
    )
    return hashlib.sha256(stable.encode("utf-8")).hexdigest()


def write_samples(records: list[SampleRecord], path: str | Path) -> str:
    """Write ``samples.jsonl`` atomically (a full disk never leaves it cut mid-line); return
    :func:`samples_digest` of the records."""
    from mme3dr.output_files import atomic_write_text

    lines = [sample_line(r) for r in records]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return samples_digest(records)


def read_samples(path: str | Path) -> list[SampleRecord]:
    """Read and validate ``samples.jsonl``; errors name the line."""
    out: list[SampleRecord] = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append(SampleRecord.model_validate_json(line))
        except ValueError as e:
            raise ValueError(f"{path}:{lineno}: invalid sample record: {e}") from None
    return out


SHARD_FILE = "shard.json"


def shard_render_dirs(dirs: list[Path]) -> dict[str, str]:
    """``{render sha256: view folder}`` from the ``shard.json`` (a :class:`ShardRecord`) of each run
    folder in ``dirs`` (later folders win; a folder without one adds nothing). Read by the report's
    thumbnails and ``mme3dr judge``."""
    found: dict[str, str] = {}
    for d in dirs:
        shard = Path(d) / SHARD_FILE
        if shard.is_file():
            found.update(json.loads(shard.read_text(encoding="utf-8")).get("render_dirs", {}))
    return found


def export_json_schemas(out_dir: str | Path) -> list[Path]:
    """Write ``results.schema.json`` and ``samples.schema.json`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in (("results", Results), ("samples", SampleRecord)):
        schema = model.model_json_schema(by_alias=True, mode="validation")
        schema["$id"] = f"urn:mme3dr:schema:{name}:{RESULTS_SCHEMA_VERSION}"
        path = out / f"{name}.schema.json"
        path.write_text(_canonical_json(schema) + "\n", encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":  # python -m mme3dr.results docs/
    for p in export_json_schemas(sys.argv[1] if len(sys.argv) > 1 else "docs"):
        print(p)
