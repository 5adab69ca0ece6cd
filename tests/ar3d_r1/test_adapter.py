"""The ``ar3d-r1`` / ``shapellm-omni`` adapters through ``mme3dr evaluate`` (Must show 6).

The run uses the tiny random policy and a VQVAE fitted here (the seconds-long ``smoke`` fit: the test
proves the plumbing, not shape quality). A random policy's free samples are never well-formed, so the
"valid" run asks for ``constrain=1`` and the "invalid" run samples freely with a short budget.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("skimage")
tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

from mme3dr.results import load_results, read_samples  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FAST = ["--profile", "smoke", "--render-size", "64"]  # as tests/harness/evaluate_support.py


def evaluate_cmd(out: Path, *args: str) -> list[str]:
    return [sys.executable, "-c", "from mme3dr.cli import main; main()", "evaluate", "--out", str(out), *args]


def run_cli(args: list[str], *, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "100", **env}
    return subprocess.run(args, capture_output=True, text=True, env=full_env, timeout=timeout)
CLASSES = {"ar3d-r1": "AR3DR1Model", "shapellm-omni": "ShapeLLMOmniModel"}


def _spec(name: str) -> str:
    """The entry-point name once the project is installed with this pyproject, else its module path."""
    path = f"ar3d_r1.adapter:{CLASSES[name]}"
    installed = {ep.name: ep.value for ep in metadata.entry_points(group="mme3dr.models")}
    return name if installed.get(name) == path else path


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory) -> tuple[Path, Path]:
    import torch

    from ar3d_r1.policy.fit import FitConfig, fit_vqvae
    from ar3d_r1.policy.tiny import build_tiny_policy

    root = tmp_path_factory.mktemp("ar3d-r1")
    torch.set_num_threads(1)
    fit_vqvae(FitConfig.preset("smoke"), root / "vqvae")
    return build_tiny_policy(root / "policy", codebook_size=256, seed=0), root / "vqvae"


def _env() -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            "OMP_NUM_THREADS": "1"}


def test_entry_points_are_declared_for_both_adapters():
    eps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]["mme3dr.models"]
    assert eps == {name: f"ar3d_r1.adapter:{cls}" for name, cls in CLASSES.items()}


def test_evaluate_ar3d_r1_two_steps_end_to_end(tmp_path, tiny_pair):
    policy, vqvae = tiny_pair
    out = tmp_path / "run"
    args = f"checkpoint={policy},vqvae={vqvae},steps=2,constrain=1,max_new_tokens=150"
    proc = run_cli(evaluate_cmd(out, "--model", _spec("ar3d-r1"), "--model-args", args, "--benchmark", "demo",
                                "--limit", "1", *FAST), env=_env(), timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    (sample,) = read_samples(out / "samples.jsonl")
    assert sample.status == "ok" and sample.asset_format == "glb" and sample.metrics.get("clip") is not None
    info = json.loads((out / "results.json").read_text())["model_info"]
    assert info["name"] == "ar3d-r1" and "steps 2" in info["revision"] and "geometry only" in info["revision"]


def test_invalid_generations_are_failures_with_their_reason(tmp_path, tiny_pair):
    """Through the harness's own adapter call (mme3dr.harness.generation.generate_batch), in process:
    free sampling with a 12-token budget never completes a 128-code segment."""
    from mme3dr.harness.generation import generate_batch
    from mme3dr.models.protocol import GenerationRequest
    from mme3dr.models.registry import load_model

    policy, vqvae = tiny_pair
    model = load_model(_spec("shapellm-omni"), {"checkpoint": str(policy), "vqvae": str(vqvae),
                                                 "max_new_tokens": "12"}).model
    requests = []
    for i in range(2):
        (tmp_path / str(i)).mkdir()
        requests.append(GenerationRequest(f"case-{i}", "a chair with 4 legs", 7 + i, 0, tmp_path / str(i)))
    outcomes = [o for r in requests for o in generate_batch(model, [r])]
    assert [o.failure for o in outcomes] == ["adapter_error", "adapter_error"]
    assert all(o.detail.startswith("MeshTokenError: ") for o in outcomes)
    assert {o.detail.split(": ")[1] for o in outcomes} <= {"no_start", "no_end", "too_short", "stray_text"}


def test_bad_model_args_fail_fast_with_a_clear_message(tmp_path, tiny_pair):
    from mme3dr.models.registry import load_model

    policy, vqvae = tiny_pair
    with pytest.raises(ValueError, match="steps must be 1 or 2"):
        load_model("ar3d_r1.adapter:AR3DR1Model", {"checkpoint": str(policy), "vqvae": str(vqvae),
                                                           "steps": "3"})
    from ar3d_r1.policy.vqvae import VQVAEWeightsError

    with pytest.raises(VQVAEWeightsError, match="3DVQVAE.bin"):
        load_model("ar3d_r1.adapter:AR3DR1Model", {"checkpoint": str(policy), "vqvae": str(tmp_path)})


@pytest.mark.slow
def test_evaluate_ar3d_r1_on_the_whole_demo(tmp_path, tiny_pair):
    policy, vqvae = tiny_pair
    out = tmp_path / "run"
    args = f"checkpoint={policy},vqvae={vqvae},steps=2,constrain=1,max_new_tokens=150"
    proc = run_cli(evaluate_cmd(out, "--model", _spec("ar3d-r1"), "--model-args", args, "--benchmark", "demo",
                                "--profile", "smoke"), env=_env(), timeout=3000)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert [s.status for s in read_samples(out / "samples.jsonl")] == ["ok"] * 15


@pytest.mark.slow
def test_evaluate_records_invalid_generations_and_finishes(tmp_path, tiny_pair):
    policy, vqvae = tiny_pair
    out = tmp_path / "run"
    args = f"checkpoint={policy},vqvae={vqvae},max_new_tokens=12"
    proc = run_cli(evaluate_cmd(out, "--model", _spec("shapellm-omni"), "--model-args", args, "--benchmark",
                                "demo", "--limit", "2", *FAST), env=_env(), timeout=900)
    # results (and the every-sample-failed verdict) go to stdout, progress to stderr (issue 22)
    assert proc.returncode == 1 and "every sample failed" in proc.stdout, proc.stderr[-4000:]
    samples = read_samples(out / "samples.jsonl")
    assert all(s.failure == "adapter_error" and s.failure_detail.startswith("MeshTokenError: ")
               for s in samples)
    assert load_results(out / "results.json").failures == {"adapter_error": 2}
