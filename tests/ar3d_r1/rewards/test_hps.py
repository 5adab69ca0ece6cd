"""HPS v2.1 through the real loading path on a tiny open_clip model with an HPS-format checkpoint
(Must-show 3): preprocessing equals an independent PIL re-derivation, the score equals the cosine."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from ar3d_r1.rewards.hps import HPS_V21, HPSReward  # noqa: E402
from mme3dr.features import weights as weights_module  # noqa: E402
from mme3dr.features.weights import WeightsNotFoundError  # noqa: E402

OPENAI_MEAN = np.array([0.48145466, 0.4578275, 0.40821073])
OPENAI_STD = np.array([0.26862954, 0.26130258, 0.27577711])


@pytest.fixture
def offline(tmp_path, monkeypatch):
    monkeypatch.delenv("MME3DR_WEIGHTS_DIR", raising=False)
    monkeypatch.setattr(weights_module, "DEFAULT_WEIGHTS_DIR", tmp_path / "default-weights")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)


@pytest.fixture
def tiny_hps(tmp_path, offline):
    """A tiny open_clip model saved as HPS v2.1 saves it: ``{"state_dict": ...}`` in half precision."""
    from mme3dr.features.smoke import tiny_clip_model

    model = tiny_clip_model(seed=3)
    state = {k: v.half() for k, v in model.state_dict().items()}
    path = tmp_path / "weights" / HPS_V21.key / HPS_V21.files[0]
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": state, "epoch": 1}, path)
    spec = dataclasses.replace(HPS_V21, arch="mme3dr-tiny-clip")
    return spec, tmp_path / "weights", path


def reference_preprocess(image: np.ndarray, size: int) -> np.ndarray:
    """HPS preprocessing from its description, with PIL and numpy only: ``(H, W, 3|4) uint8`` →
    ``(3, size, size) float64``."""
    from PIL import Image

    if image.shape[-1] == 4:  # straight alpha over white, rounded half up
        a = image[..., 3:4] / 255.0
        image = np.floor(image[..., :3] * a + 255.0 * (1 - a) + 0.5).astype(np.uint8)
    h, w = image.shape[:2]
    new_w, new_h = round(w * size / max(h, w)), round(h * size / max(h, w))
    resized = Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BICUBIC)
    canvas = Image.new("RGB", (size, size), (0, 0, 0))
    canvas.paste(resized, ((size - new_w) // 2, (size - new_h) // 2))
    x = np.asarray(canvas, dtype=np.float64) / 255.0
    return ((x - OPENAI_MEAN) / OPENAI_STD).transpose(2, 0, 1)


def test_preprocessing_equals_a_pil_re_derivation(tiny_hps):
    spec, weights_dir, _ = tiny_hps
    reward = HPSReward(weights_dir=weights_dir, spec=spec)
    rng = np.random.default_rng(0)
    for shape in ((96, 160, 3), (150, 90, 4), (64, 64, 3), (512, 512, 4)):
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        ours = reward.preprocess(image[None]).numpy()[0].astype(np.float64)
        np.testing.assert_allclose(ours, reference_preprocess(image, reward.input_size), rtol=0, atol=1e-6)


def test_score_is_the_cosine_and_the_reward_the_max_over_views(tiny_hps):
    import open_clip

    spec, weights_dir, path = tiny_hps
    reward = HPSReward(weights_dir=weights_dir, spec=spec)
    rng = np.random.default_rng(1)
    prompts = ["a red chair with four legs", "a low-poly frog"]
    views = [rng.integers(0, 256, (6, 80, 80, 4), dtype=np.uint8) for _ in prompts]
    batch = reward(prompts, views)

    # Reference: the checkpoint read with torch directly into a fresh model; cosine in float64.
    model = open_clip.create_model("mme3dr-tiny-clip", pretrained=None)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["state_dict"])
    model.eval()
    tokenizer = open_clip.get_tokenizer("mme3dr-tiny-clip")
    with torch.inference_mode():
        text = model.encode_text(tokenizer(prompts)).double().numpy()
        expected = []
        for sample in views:
            pixels = torch.from_numpy(np.stack([reference_preprocess(v, 64) for v in sample])).float()
            img = model.encode_image(pixels).double().numpy()
            expected.append(img)
    per_view = np.stack([
        (img / np.linalg.norm(img, axis=1, keepdims=True)) @ (t / np.linalg.norm(t))
        for img, t in zip(expected, text, strict=True)
    ])
    np.testing.assert_allclose(np.asarray(batch.meta["per_view"]), per_view, rtol=0, atol=1e-6)
    np.testing.assert_allclose(batch.values["hps"], per_view.max(axis=1), rtol=0, atol=1e-6)
    assert batch.failures == [None, None] and np.all(np.abs(batch.values["hps"]) <= 1)
    assert batch.meta["hps"]["weights_sha256"] == weights_module.file_sha256(path)


def test_missing_checkpoint_names_the_file_and_where_to_put_it(tmp_path, offline):
    with pytest.raises(WeightsNotFoundError, match=r"HPS_v2\.1_compressed\.pt.*") as info:
        HPSReward(weights_dir=tmp_path / "empty")
    assert "hps-v2.1" in str(info.value) and "xswu/HPSv2" in str(info.value)


def test_a_checkpoint_of_another_architecture_is_refused(tiny_hps):
    _, weights_dir, _ = tiny_hps
    with pytest.raises(ValueError, match="does not fit open_clip ViT-B-32"):
        HPSReward(weights_dir=weights_dir, spec=dataclasses.replace(HPS_V21, arch="ViT-B-32"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_device_that_is_not_there_is_named_before_the_checkpoint(tmp_path, offline):
    from ar3d_r1.rewards.hps import HPSLoadError, hps_from_options

    # no checkpoint either: the device is what is wrong, and it is what the message says
    with pytest.raises(HPSLoadError, match=r"^hps\.device 'cuda': CUDA is not available on this machine"):
        hps_from_options({"device": "cuda", "weights_dir": str(tmp_path / "empty")})
    with pytest.raises(HPSLoadError, match=r"^HPS device 'cuda:0': CUDA is not available"):
        HPSReward(weights_dir=tmp_path / "empty", device="cuda:0")
    with pytest.raises(HPSLoadError, match=r"HPS device 'tpu' is not a torch device"):
        HPSReward(weights_dir=tmp_path / "empty", device="tpu")


def test_the_trainers_missing_checkpoint_message_names_the_endpoints_key(tmp_path, offline):
    from ar3d_r1.rewards.hps import hps_from_options

    with pytest.raises(WeightsNotFoundError) as info:
        hps_from_options({"weights_dir": str(tmp_path / "empty"), "device": "cpu"})
    message = str(info.value)
    assert "choose the directory with hps.weights_dir in the endpoints YAML or MME3DR_WEIGHTS_DIR" in message
    assert "--weights-dir" not in message and "mme3dr weights download" not in message
