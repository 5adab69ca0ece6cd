"""load_feature_suite: the smoke suite runs offline and deterministically; real profiles fail clearly
offline; the card carries what the metric card needs."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("torch")

from mme3dr.features import WeightsNotFoundError, load_feature_suite  # noqa: E402


@pytest.fixture(scope="module")
def smoke():
    return load_feature_suite("smoke")


def test_smoke_suite_encodes_all_three_feature_kinds(smoke):
    images = np.random.default_rng(0).integers(0, 256, size=(3, 128, 128, 3), dtype=np.uint8)
    assert smoke.clip.encode_images(images).shape == (3, 64)
    assert smoke.clip.encode_texts(["a toy"]).shape == (1, 64)
    assert smoke.inception(images).shape == (3, 2048)
    assert smoke.dinov2(images).shape == (3, 64)


def test_smoke_suite_is_deterministic_across_loads(smoke):
    again = load_feature_suite("smoke")
    assert again.card() == smoke.card()
    img = np.full((1, 64, 64, 3), 90, np.uint8)
    np.testing.assert_array_equal(again.dinov2(img), smoke.dinov2(img))


def test_card_lists_models_weights_sizes_filters_and_metric_facts(smoke):
    card = smoke.card()
    assert card["profile"] == "smoke" and card["leaderboard_eligible"] is False
    for name in ("clip", "inception", "dinov2"):
        enc = card["encoders"][name]
        assert enc["model_id"].startswith("smoke:")
        assert len(enc["weights_sha256"]) == 64
        assert enc["input_size"] in (64, 224, 299) and enc["resize"]
    assert card["metrics"]["kd_incep"]["scale"] == 100
    assert card["metrics"]["kd_incep"]["higher_is_better"] is False


@pytest.mark.parametrize("profile", ["paper", "ar3d-r1-script"])
def test_real_profiles_fail_at_once_offline_with_a_useful_message(profile, isolated_weights):
    start = time.monotonic()
    with pytest.raises(WeightsNotFoundError, match="clip-vit-b-32-openai") as info:
        load_feature_suite(profile, weights_dir=isolated_weights / "w")
    assert time.monotonic() - start < 5.0
    assert "open_clip_model.safetensors" in str(info.value)


def test_unknown_profile_is_named():
    with pytest.raises(KeyError, match="paper, smoke, ar3d-r1-script"):
        load_feature_suite("papr")


@pytest.mark.slow
def test_paper_profile_loads_real_architectures_from_a_weights_dir(isolated_weights, random_fid_inception):
    """The paper path end to end, offline: random-initialised ViT-B/32, FID Inception-v3 and DINOv2-base
    saved in the documented layout, then loaded by load_feature_suite("paper") like downloaded weights."""
    import open_clip
    from safetensors.torch import save_file
    from transformers import Dinov2Config, Dinov2Model

    wdir = isolated_weights / "weights"
    for key in ("clip-vit-b-32-openai", "inception-v3-fid", "dinov2-base"):
        (wdir / key).mkdir(parents=True)
    clip = open_clip.create_model("ViT-B-32", pretrained=None, force_quick_gelu=True)
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()},
              str(wdir / "clip-vit-b-32-openai" / "open_clip_model.safetensors"))
    random_fid_inception(wdir / "inception-v3-fid" / "weights-inception-2015-12-05-6726825d.pth")
    Dinov2Model(Dinov2Config()).save_pretrained(wdir / "dinov2-base")  # the base config is the default

    suite = load_feature_suite("paper", weights_dir=wdir, batch_size=2)
    images = np.random.default_rng(0).integers(0, 256, size=(2, 512, 512, 3), dtype=np.uint8)
    assert suite.clip.encode_images(images).shape == (2, 512)
    assert suite.clip.encode_texts(["a red rose"]).shape == (1, 512)
    assert suite.inception(images).shape == (2, 2048)
    assert suite.dinov2(images).shape == (2, 768)
    card = suite.card()
    assert card["leaderboard_eligible"] is True
    assert card["encoders"]["clip"]["model_id"] == "open_clip:ViT-B-32/openai"
    assert card["encoders"]["dinov2"]["model_id"] == "facebook/dinov2-base"
