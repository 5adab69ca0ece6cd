"""`mme3dr score` on TRELLIS-layout renders with the smoke profile: synthetic renders built here, and the
real TRELLIS rose fixture when ../shared is present."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

pytest.importorskip("torch")

from mme3dr.cli import app  # noqa: E402
from mme3dr.features import load_feature_suite  # noqa: E402
from mme3dr.harness.score_renders import load_object_views, read_prompts, score_renders  # noqa: E402


@pytest.fixture(scope="module")
def smoke_suite():
    return load_feature_suite("smoke")


def write_object(root, oid, colour, n_views=4, size=64, seed=0):
    """RGBA views: a coloured disc on a transparent background, shifted per view."""
    d = root / oid
    d.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n_views):
        cy, cx = rng.integers(size // 3, 2 * size // 3, size=2)
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 < (size // 4) ** 2
        rgba = np.zeros((size, size, 4), np.uint8)
        rgba[mask] = (*colour, 255)
        Image.fromarray(rgba, "RGBA").save(d / f"{i:03d}.png")
    return d


@pytest.fixture
def renders(tmp_path):
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    colours = {"a": (200, 20, 20), "b": (20, 200, 20), "c": (20, 20, 200)}
    for k, (oid, col) in enumerate(colours.items()):
        write_object(gen, oid, col, seed=k)
        write_object(ref, oid, col, seed=10 + k)
    # A broken object and one with no prompt: skipped with reasons, the run goes on.
    (gen / "broken").mkdir()
    (gen / "broken" / "000.png").write_bytes(b"not a png")
    write_object(gen, "unprompted", (9, 9, 9))
    prompts = tmp_path / "prompts.csv"
    prompts.write_text(
        "case_id,prompt,category\n"
        "a,a red ball. It is shiny.,biological\nb,a green ball,biological\nc,a blue ball,stylized\n"
        "broken,anything,spatial\n"
    )
    return gen, ref, prompts


def test_transparent_pixels_are_composited_on_white(renders):
    gen, _, _ = renders
    views = load_object_views(gen / "a")
    assert views.shape == (4, 64, 64, 3) and views.dtype == np.uint8
    assert (views[:, 0, 0] == 255).all()  # corner: transparent → white


def test_score_cli_writes_json_and_records_failures(renders, tmp_path):
    gen, ref, prompts = renders
    out = tmp_path / "scores.json"
    result = CliRunner().invoke(
        app, ["score", str(gen), "--reference", str(ref), "--prompts", str(prompts), "--profile", "smoke",
              "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "kd_incep" in result.output and "not leaderboard-eligible" in result.output
    # The KD clamp is one plain line, not a raw Python warning with its source line.
    assert "warning: KD subset size clamped from 1000 to 12" in result.output
    assert "UserWarning" not in result.output and "warnings.warn(" not in result.output
    assert "3 objects" in result.output
    data = json.loads(out.read_text())
    assert data["profile"] == "smoke" and data["leaderboard_eligible"] is False
    assert data["n_assets"] == 3 and data["n_reference"] == 3
    overall = data["results"]["renders"]  # results.json's shape: one row per task, flat metric keys
    assert set(data["higher_is_better"]) == {"clip", "reference_clip", "kd_incep", "kd_dinov2", "fd_incep",
                                             "fd_dinov2"}
    assert {"kd_incep", "kd_incep_std", "clip_ci95_low", "reference_clip", "n"} <= set(overall)
    assert overall["n"] == 3 and data["higher_is_better"]["kd_incep"] is False
    assert set(data["results"]) == {"renders", "renders/biological", "renders/stylized"}
    assert "only test the pipeline" in result.output and data["note"]
    reasons = {f["id"]: f["reason"] for f in data["failures"]}
    assert reasons["unprompted"] == "no_prompt" and reasons["broken"].startswith("unreadable_views")
    assert len(data["card"]["encoders"]) == 3


def test_scoring_a_set_against_itself_gives_zero_fd(renders, smoke_suite):
    gen, ref, prompts = renders
    same = score_renders(ref, ref, read_prompts(prompts), smoke_suite)["results"]["renders"]
    other = score_renders(gen, ref, read_prompts(prompts), smoke_suite)["results"]["renders"]
    for name in ("fd_incep", "fd_dinov2"):
        assert abs(same[name]) < 1e-9 * other[name]
    # Unbiased MMD² of a set with itself (every subset is the whole set here): zero or slightly below.
    assert same["kd_incep"] <= 1e-9
    assert same["clip"] == same["reference_clip"]  # the same views against the same prompts


def test_bad_arguments_get_clear_errors(renders, tmp_path):
    gen, ref, prompts = renders
    runner = CliRunner()

    def run(*args):
        return runner.invoke(app, ["score", *map(str, args), "--profile", "smoke"])

    r = run(gen, "-r", ref, "-p", tmp_path / "nope.csv")
    assert r.exit_code == 2 and "does not exist" in r.output
    r = runner.invoke(app, ["score", str(gen), "-r", str(ref), "-p", str(prompts), "--profile", "papr"])
    assert r.exit_code == 2 and "unknown metric profile" in r.output
    r = run(tmp_path / "empty", "-r", ref, "-p", prompts)
    assert r.exit_code == 2 and "not a directory" in r.output


def test_prompt_file_formats(tmp_path):
    (tmp_path / "p.jsonl").write_text('{"id": "x", "prompt": "a cat", "category": "biological"}\n')
    (tmp_path / "p.json").write_text('{"x": "a cat"}')
    assert read_prompts(tmp_path / "p.jsonl")["x"].category == "biological"
    assert read_prompts(tmp_path / "p.json")["x"].prompt == "a cat"
    (tmp_path / "bad.csv").write_text("name,text\nx,y\n")
    with pytest.raises(ValueError, match="needs an id column"):
        read_prompts(tmp_path / "bad.csv")


@pytest.mark.shared
def test_real_trellis_rose_renders_score_end_to_end(trellis_rose, smoke_suite):
    prompts = read_prompts(trellis_rose / "eval_list.csv")
    assert len(prompts) == 1
    renders = trellis_rose / "renders"
    data = score_renders(renders, renders, prompts, smoke_suite)
    assert data["per_asset"][0]["n_views"] == 24 and data["failures"] == []
    assert 0.0 <= data["results"]["renders"]["clip"] <= 100.0
    # Real 512×512 RGBA Blender renders: the transparent background becomes white.
    views = load_object_views(next(renders.iterdir()))
    assert views.shape == (24, 512, 512, 3) and (views[:, 0, 0] == 255).all()


def test_script_profile_definitions_run_with_smoke_encoders(renders):
    """The ar3d-r1-script metric set (CLIP on the first sentence, per-object RBF "KD") on tiny encoders."""
    from dataclasses import replace

    from mme3dr.features import get_profile
    from mme3dr.metrics import asset_clip_score, object_rbf_similarity

    gen, ref, prompts = renders
    profile = replace(get_profile("ar3d-r1-script"), clip="smoke-clip", dinov2="smoke-dinov2")
    suite = load_feature_suite(profile)
    assert suite.inception is None
    data = score_renders(gen, ref, read_prompts(prompts), suite)
    overall = data["results"]["renders"]
    assert {"clip", "script_kd_dinov2_rbf"} <= set(overall) and "kd_incep" not in overall
    assert data["leaderboard_eligible"] is False
    # The "KD" is the mean over objects of each object's mean RBF similarity (higher = closer).
    def feats(root, k):
        return suite.dinov2(load_object_views(root / k))

    want = np.mean([object_rbf_similarity(feats(gen, k), feats(ref, k)) for k in ("a", "b", "c")])
    assert overall["script_kd_dinov2_rbf"] == pytest.approx(want, rel=1e-10)
    assert data["higher_is_better"]["script_kd_dinov2_rbf"] is True
    # CLIP saw only the first sentence of "a red ball. It is shiny.".
    text = suite.clip.encode_texts(["a red ball"])[0]
    row = next(r for r in data["per_asset"] if r["id"] == "a")
    image_feats = suite.clip.encode_images(load_object_views(gen / "a"))
    assert row["clip"] == pytest.approx(asset_clip_score(image_feats, text), rel=1e-10)


def test_one_scored_object_is_one_object(tmp_path):
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    write_object(gen, "a", (200, 20, 20))
    write_object(ref, "a", (200, 20, 20), seed=1)
    prompts = tmp_path / "p.csv"
    prompts.write_text("case_id,prompt\na,a red ball\n")
    result = CliRunner().invoke(app, ["score", str(gen), "--reference", str(ref), "--prompts", str(prompts),
                                      "--profile", "smoke", "--out", str(tmp_path / "s.json")])
    assert result.exit_code == 0, result.output
    assert "1 object" in result.output and "1 objects" not in result.output
