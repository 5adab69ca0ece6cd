"""Inception pool3: the FID network loads a saved weight file offline and equals torchmetrics' FID
extractor on the same file; the smoke stand-in keeps the FID input handling."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch_fidelity")

from mme3dr.features import WeightSpec  # noqa: E402
from mme3dr.features.inception import load_inception  # noqa: E402
from mme3dr.features.smoke import smoke_inception  # noqa: E402


def images(n, seed=0, h=512, w=512):
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)


def test_fid_inception_from_saved_weights_equals_torchmetrics(isolated_weights, random_fid_inception):
    from torchmetrics.image.fid import NoTrainInceptionV3

    wdir = isolated_weights / "weights"
    (wdir / "inception-v3-fid").mkdir(parents=True)
    path = wdir / "inception-v3-fid" / "weights-inception-2015-12-05-6726825d.pth"
    random_fid_inception(path)
    enc = load_inception("inception-v3-fid", weights_dir=wdir, batch_size=2)
    imgs = images(2)
    feats = enc(imgs)
    assert feats.shape == (2, 2048) and feats.dtype == np.float64
    tm = NoTrainInceptionV3(
        name="inception-v3-compat", features_list=["2048"], feature_extractor_weights_path=str(path)
    )
    with torch.inference_mode():
        want = tm(torch.from_numpy(imgs).permute(0, 3, 1, 2)).double().numpy()
    np.testing.assert_allclose(feats, want, rtol=1e-5, atol=1e-6)
    card = enc.card()
    assert card["input_size"] == 299 and "TF1" in card["resize"] and len(card["weights_sha256"]) == 64


def test_a_file_that_is_not_a_state_dict_is_refused(isolated_weights):
    spec = WeightSpec(key="bad-inception", kind="inception", model_id="test", files=("w.pth",))
    (isolated_weights / "w" / "bad-inception").mkdir(parents=True)
    (isolated_weights / "w" / "bad-inception" / "w.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable Inception state dict"):
        load_inception(spec, weights_dir=isolated_weights / "w")


def test_smoke_stand_in_is_2048d_deterministic_and_size_independent():
    enc = smoke_inception(seed=0)
    a = enc(images(2, h=512, w=512))
    assert a.shape == (2, 2048)
    np.testing.assert_array_equal(a, smoke_inception(seed=0)(images(2, h=512, w=512)))
    # Every input is resized to 299 first: a 299 px copy made the same way gives close features.
    same = enc(np.full((1, 299, 299, 3), 200, np.uint8))
    np.testing.assert_allclose(enc(np.full((1, 512, 512, 3), 200, np.uint8)), same, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(("h", "w"), [(512, 512), (64, 64), (300, 211), (299, 299)])
def test_fast_tf1_resize_is_bit_identical_to_torch_fidelity(h, w):
    """The smoke stand-in's resize gathers uint8 rows and columns once; torch-fidelity's reference
    gathers the float image four times. Same grid, same lerp order: the bits must agree exactly."""
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    from mme3dr.features.inception import resize_bilinear_tf1

    x = torch.from_numpy(images(3, seed=h + w, h=h, w=w)).permute(0, 3, 1, 2).contiguous()
    want = interpolate_bilinear_2d_like_tensorflow1x(x.float(), size=(299, 299), align_corners=False)
    got = resize_bilinear_tf1(x, 299)
    assert got.dtype == torch.float32 and got.shape == (3, 3, 299, 299)
    assert torch.equal(got, want)
    assert torch.equal(resize_bilinear_tf1(x.to(torch.float32), 299), want)
