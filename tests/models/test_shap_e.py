"""Shap-E through diffusers' ShapEPipeline: a pipeline of tiny random components of the real classes,
built offline, runs through ``mme3dr evaluate`` on the demo and writes a loadable mesh for every case."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("diffusers")
pytest.importorskip("skimage")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from evaluate_support import FAST, evaluate_cmd, run_cli  # noqa: E402

from mme3dr.assets.mesh import load_mesh  # noqa: E402
from mme3dr.features.weights import WeightsNotFoundError  # noqa: E402
from mme3dr.models.protocol import GenerationRequest  # noqa: E402
from mme3dr.models.registry import load_model  # noqa: E402
from mme3dr.models.stand_ins import build_tiny_shap_e, marching_cubes_table  # noqa: E402
from mme3dr.results import load_results, read_samples  # noqa: E402

TINY = "steps=2,grid_size=32"


@pytest.fixture(scope="module")
def tiny_shap_e(tmp_path_factory) -> Path:
    return build_tiny_shap_e(tmp_path_factory.mktemp("shap-e") / "tiny")


def test_marching_cubes_table_follows_the_decoders_edge_numbering():
    cases, masks = marching_cubes_table()
    assert masks[0].sum() == 0 and masks[255].sum() == 0
    assert sorted(cases[1, 0].tolist()) == [0, 4, 8]  # corner (0,0,0) alone: its x, y and z edges
    assert sorted(cases[128, 0].tolist()) == [3, 7, 11]  # corner (1,1,1) alone
    assert int(masks.sum(dim=1).max()) == 5


def test_evaluate_on_the_demo_writes_a_loadable_mesh_for_every_case(tmp_path, tiny_shap_e):
    out = tmp_path / "run"
    proc = run_cli(evaluate_cmd(out, "--model", "shap-e", "--model-args", f"checkpoint={tiny_shap_e},{TINY}",
                                "--benchmark", "demo", "--no-report", *FAST))
    assert proc.returncode == 0, proc.stderr[-3000:]
    samples = read_samples(out / "samples.jsonl")
    assert len(samples) == 15 and all(s.status == "ok" for s in samples), [s.failure_detail for s in samples]
    assert load_results(out / "results.json").model_info.name == "shap-e"
    stored = sorted((out / "assets").rglob("*.glb"))
    assert len(stored) == 15 and all(load_mesh(p).n_faces > 0 for p in stored)


def test_seeds_reproduce_and_the_frame_is_z_up(tmp_path, tiny_shap_e):
    model = load_model("shap-e", {"checkpoint": str(tiny_shap_e), "steps": "2", "grid_size": "16"}).model
    assert (model.guidance_scale, model.device) == (15.0, "cpu")
    outs = []
    for k, seed in enumerate((7, 7, 8)):
        d = tmp_path / str(k)
        d.mkdir()
        (asset,) = model.generate([GenerationRequest("c", "a red chair", seed, 0, d)])
        outs.append(Path(asset.path).read_bytes())
        assert asset.up_axis == "z"
    assert outs[0] == outs[1] and outs[0] != outs[2]


def test_defaults_are_the_authors_and_offline_names_the_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("MME3DR_WEIGHTS_DIR", str(tmp_path / "weights"))
    with pytest.raises(WeightsNotFoundError) as err:
        load_model("shap-e")
    assert str(tmp_path / "weights" / "openai--shap-e") in str(err.value)
    import inspect

    from mme3dr.models.shap_e import ShapEModel

    params = inspect.signature(ShapEModel).parameters
    assert (params["guidance_scale"].default, params["steps"].default) == (15.0, 64)
