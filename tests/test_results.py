"""The results schema: strict validation, canonical files, volatile keys, exported JSON Schemas."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from mme3dr import results as R

REPO = Path(__file__).resolve().parents[1]
SHA = "0" * 64


RENDERER = {"backend": "osmesa", "versions": {}, "rig": "eval24", "rig_hash": SHA, "width": 512,
            "height": 512, "n_views": 24, "shading": "protocol"}
#: The smallest metric card the schema takes: no encoders or metrics listed (a real run lists them).
CARD = {"profile": "smoke", "leaderboard_eligible": False, "prompt_rule": "full", "render_size": [512, 512],
        "shading": "protocol", "background": "white", "encoders": {}, "metrics": {}, "rig": "eval24",
        "rig_hash": SHA, "n_views": 24,
        "kd": {"scale": 100.0, "subsets": 100, "subset_size_max": 1000, "seed": 0},
        "clip_bootstrap": {"resamples": 1000, "seed": 0, "level": 0.95}, "renderer": RENDERER}


def minimal_results(**overrides) -> dict:
    d = {
        "results": {"mme3dr-demo": {"clip": 20.0, "clip_ci95_low": 19.0, "clip_ci95_high": 21.0, "n": 15}},
        "configs": {"mme3dr-demo": {"profile": "smoke"}},
        "versions": {"mme3dr-demo": "mme3dr-protocol-v1"},
        "n-samples": {"mme3dr-demo": {"original": 15, "effective": 15}},
        "higher_is_better": {"mme3dr-demo": {"clip": True}},
        "config": {"model": "primitives"},
        "git_hash": None,
        "date": "2026-01-01T00:00:00Z",
        "environment": {"python": "3.11"},
        "mme3dr_version": "0.1.0",
        "protocol_version": "mme3dr-protocol-v1",
        "profile": "smoke",
        "model_info": {"name": "primitives"},
        "adapter": {"spec": "primitives", "kind": "builtin", "target": "mme3dr.models.primitives:X"},
        "benchmark": {"name": "mme3dr-demo", "version": "1", "manifest_sha256": SHA,
                      "seed_namespace": "mme3dr-demo", "n_cases": 15, "categories": ["spatial"]},
        "rig_hash": SHA,
        "renderer": RENDERER,
        "metric_card": CARD,
        "leaderboard_eligible": False,
        "ineligible_reasons": ["profile smoke"],
        "failures": {},
        "samples_sha256": SHA,
    }
    d.update(overrides)
    return d


def test_valid_results_round_trip_byte_identically(tmp_path: Path):
    res = R.Results.model_validate(minimal_results())
    R.dump_results(res, tmp_path / "a.json")
    R.dump_results(R.load_results(tmp_path / "a.json"), tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert '"n-samples"' in (tmp_path / "a.json").read_text()


@pytest.mark.parametrize(
    "override, message",
    [
        ({"surprise": 1}, "Extra inputs are not permitted"),
        ({"failures": {"gremlins": 1}}, "unknown failure reasons"),
        ({"rig_hash": "abc"}, "pattern"),
        ({"leaderboard_eligible": True}, "ineligible_reasons is not empty"),
        ({"ineligible_reasons": []}, "must say why"),
        ({"results": {"x": {"CLIP Score": 1.0}}}, "lower_snake"),
    ],
)
def test_invalid_results_are_rejected_with_a_reason(override, message):
    with pytest.raises(ValidationError, match=message):
        R.Results.model_validate(minimal_results(**override))


def test_load_results_missing_file_says_what_to_do(tmp_path: Path):
    with pytest.raises(ValueError, match="mme3dr evaluate"):
        R.load_results(tmp_path / "nope.json")


def _sample(**kw) -> R.SampleRecord:
    base = dict(case_id="c", category="spatial", sample_index=0, seed=1, prompt="p", prompt_sha256=SHA,
                status="ok", metrics={"clip": 1.5}, seconds=0.25)
    base.update(kw)
    return R.SampleRecord(**base)


def test_samples_hash_ignores_only_volatile_seconds(tmp_path: Path):
    h1 = R.write_samples([_sample(seconds=0.1)], tmp_path / "s.jsonl")
    h2 = R.write_samples([_sample(seconds=9.9)], tmp_path / "s.jsonl")
    h3 = R.write_samples([_sample(metrics={"clip": 1.6})], tmp_path / "s.jsonl")
    assert h1 == h2 != h3
    assert R.read_samples(tmp_path / "s.jsonl")[0].metrics == {"clip": 1.6}


def test_sample_with_unknown_failure_reason_is_rejected():
    with pytest.raises(ValidationError, match="unknown failure reason"):
        _sample(status="failed", failure="cosmic_rays")


def test_read_samples_names_the_bad_line(tmp_path: Path):
    p = tmp_path / "s.jsonl"
    p.write_text(R.sample_line(_sample()) + "\n" + '{"case_id": 1}\n')
    with pytest.raises(ValueError, match=r"s.jsonl:2"):
        R.read_samples(p)


def test_results_module_imports_no_torch_and_no_renderer():
    import subprocess

    code = (
        "import sys, mme3dr.results, mme3dr.models.protocol; "
        "print(sorted(m for m in ('torch', 'pyrender', 'OpenGL') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_exported_schemas_in_docs_are_current(tmp_path: Path):
    R.export_json_schemas(tmp_path)
    for name in ("results.schema.json", "samples.schema.json"):
        assert (REPO / "docs" / name).read_text() == (tmp_path / name).read_text(), (
            f"docs/{name} is stale: run `python -m mme3dr.results docs`"
        )
    schema = json.loads((tmp_path / "results.schema.json").read_text())
    assert "n-samples" in schema["properties"] and schema["additionalProperties"] is False


def test_failure_reasons_cover_every_mesh_failure():
    mesh = pytest.importorskip("mme3dr.assets.mesh", reason="mme3dr.assets.mesh not available yet")
    assert {m.value for m in mesh.MeshFailure} <= set(R.FAILURE_REASONS)


def test_model_info_record_mirrors_the_adapter_protocol_model_info():
    """results.py keeps its own pydantic copy of ``ModelInfo`` (results import no adapter code); the two
    must name the same fields with the same defaults, or a run's model info would be rejected or lost."""
    import dataclasses

    from mme3dr.models.protocol import ModelInfo
    from mme3dr.results import ModelInfoRecord

    runtime = {f.name: f.default for f in dataclasses.fields(ModelInfo)}
    record = {name: f.default for name, f in ModelInfoRecord.model_fields.items()}
    assert record.keys() == runtime.keys()
    for field in runtime.keys() - {"name"}:  # name is required in both (no default to compare)
        assert record[field] == runtime[field], field
    info = ModelInfo(name="m", revision="r", url="u")
    assert ModelInfoRecord.model_validate(info.to_dict()).model_dump() == info.to_dict()
