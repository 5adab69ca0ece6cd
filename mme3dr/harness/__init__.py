"""The evaluation harness behind ``mme3dr evaluate``: benchmark inputs, generation through an adapter,
run state and resume, render + encode, scoring, shard merging, provenance, and ``mme3dr score`` on
existing renders.

Importing it is light; torch and OpenGL load when a run builds its encoders and renderer.
"""

from __future__ import annotations

from mme3dr.harness.config import EvalConfig
from mme3dr.harness.evaluate import EvalSummary, evaluate, select_cases
from mme3dr.harness.feature_store import ViewFeatures
from mme3dr.harness.generation import GenerationOutcome, generate_batch
from mme3dr.harness.inputs import BENCHMARKS, BenchmarkInputError, BenchmarkInputs, load_benchmark_inputs
from mme3dr.harness.merge import MergeError, finalize, finish
from mme3dr.harness.run_state import RunState, RunStateError, atomic_write_text
from mme3dr.harness.scoring import results_block

__all__ = [
    "BENCHMARKS",
    "BenchmarkInputError",
    "BenchmarkInputs",
    "EvalConfig",
    "EvalSummary",
    "GenerationOutcome",
    "MergeError",
    "RunState",
    "RunStateError",
    "ViewFeatures",
    "atomic_write_text",
    "evaluate",
    "finalize",
    "generate_batch",
    "load_benchmark_inputs",
    "finish",
    "results_block",
    "select_cases",
]
