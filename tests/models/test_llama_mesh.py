"""LLaMA-Mesh through transformers: its OBJ-as-text parsed strictly, a tiny random Llama (garbage out:
every sample a named failure) and a stand-in that writes one fixed valid OBJ (the success path), both
through ``mme3dr evaluate``; offline, the error names the folder to fill."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from evaluate_support import FAST, evaluate_cmd, run_cli  # noqa: E402

from mme3dr.features.weights import WeightsNotFoundError  # noqa: E402
from mme3dr.models.llama_mesh import LlamaMeshParseError, parse_llama_mesh, write_obj  # noqa: E402
from mme3dr.models.registry import load_model  # noqa: E402
from mme3dr.models.stand_ins import (  # noqa: E402
    STAND_IN_OBJ,
    build_fixed_obj_llama_mesh,
    build_tiny_llama_mesh,
)
from mme3dr.results import read_samples  # noqa: E402


def test_parse_keeps_the_mesh_block_and_makes_faces_zero_based(tmp_path):
    verts, faces = parse_llama_mesh(STAND_IN_OBJ + "\nI hope this helps!")
    assert verts == [(0, 0, 0), (63, 0, 0), (0, 63, 0), (0, 0, 63)]
    assert faces == [[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]]
    import trimesh

    mesh = trimesh.load(write_obj(tmp_path / "m.obj", verts, faces, 64), process=False)
    assert mesh.bounds.tolist() == [[-1, -1, -1], [1, 1, 1]] and len(mesh.faces) == 4
    quad = parse_llama_mesh("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nf 1 2 3 4\n")[1]
    assert quad == [[0, 1, 2, 3]]


@pytest.mark.parametrize("text, reason", [
    ("I cannot make 3D models, but here is a poem.", "no vertex lines"),
    ("", "empty reply"),
    ("v 0 0 0\nv 1 0 0\nv 0 1 0\n", "no faces"),
    ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 4\n", "face 1 uses vertex 4, outside 1…3"),
    ("v 0 0 0\nv 1 0 0\nThen the legs:\nv 0 1 0\nf 1 2 3\n", "line 3 inside the mesh is not a v/f line"),
    ("v 0 0 0\nv 64 0 0\nv 0 1 0\nf 1 2 3\n", "is not 3 integers in 0…63"),
    ("v 0 0 0.5\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", "is not 3 integers"),
    ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2\n", "is not 3 or more vertex indices"),
])
def test_malformed_replies_are_failures_with_their_reason(text, reason):
    with pytest.raises(LlamaMeshParseError, match=reason):
        parse_llama_mesh(text)


def test_tiny_random_llama_fails_every_sample_with_a_named_reason(tmp_path):
    model_dir = build_tiny_llama_mesh(tmp_path / "tiny-llama")
    out = tmp_path / "run"
    proc = run_cli(evaluate_cmd(out, "--model", "llama-mesh", "--model-args",
                                f"checkpoint={model_dir},max_new_tokens=24", "--benchmark", "demo",
                                "--limit", "3", "--no-report", *FAST))
    # the results (the every-sample-failed line included) go to stdout
    assert proc.returncode == 1 and "every sample failed" in proc.stdout, proc.stderr[-3000:]
    samples = read_samples(out / "samples.jsonl")
    assert len(samples) == 3 and {s.failure for s in samples} == {"adapter_error"}
    assert all(s.failure_detail.startswith("LlamaMeshParseError: ") for s in samples), \
        [s.failure_detail for s in samples]


def test_fixed_obj_stand_in_scores_every_case_end_to_end(tmp_path):
    model_dir = build_fixed_obj_llama_mesh(tmp_path / "fixed-llama")
    out = tmp_path / "run"
    proc = run_cli(evaluate_cmd(out, "--model", "llama-mesh", "--model-args", f"checkpoint={model_dir}",
                                "--benchmark", "demo", "--limit", "3", "--no-report", *FAST))
    assert proc.returncode == 0, proc.stderr[-3000:]
    samples = read_samples(out / "samples.jsonl")
    assert [s.status for s in samples] == ["ok"] * 3, [s.failure_detail for s in samples]


def test_offline_the_error_names_the_folder_to_fill(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("MME3DR_WEIGHTS_DIR", str(tmp_path / "weights"))
    with pytest.raises(WeightsNotFoundError) as err:
        load_model("llama-mesh")
    message = str(err.value)
    assert str(tmp_path / "weights" / "Zhengyi--LLaMA-Mesh") in message and "offline" in message
    assert "hf download Zhengyi/LLaMA-Mesh --local-dir" in message
    (tmp_path / "incomplete").mkdir()
    with pytest.raises(WeightsNotFoundError, match="lacks config.json"):
        load_model("llama-mesh", {"checkpoint": str(tmp_path / "incomplete")})


def test_a_reply_cut_at_max_new_tokens_is_a_failure_not_a_partial_mesh(tmp_path):
    """The fixed-OBJ stand-in allowed one token writes the whole OBJ but never ends its turn."""
    from mme3dr.harness.generation import generate_batch
    from mme3dr.models.protocol import GenerationRequest

    model_dir = build_fixed_obj_llama_mesh(tmp_path / "fixed")
    model = load_model("llama-mesh", {"checkpoint": str(model_dir), "max_new_tokens": "1"}).model
    (outcome,) = generate_batch(model, [GenerationRequest("c", "A red chair.", 3, 0, tmp_path)])
    assert outcome.failure == "adapter_error" and "cut off at max_new_tokens=1" in outcome.detail
    assert not list(tmp_path.glob("*.obj"))
    whole = load_model("llama-mesh", {"checkpoint": str(model_dir), "temperature": "0"}).model
    assert whole.reply("A red chair.", 0) == (STAND_IN_OBJ, True)
