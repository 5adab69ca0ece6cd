"""The dry run's reward stand-ins, in process: the fixed-reply VLM writes its reply from a real
``generate`` whatever the images and question, the reply parses under every reward template, and the tiny
HPS checkpoint loads through the endpoints file's ``hps`` options. (Through ``transformers serve``: the
paper preset's dry run, tests/ar3d_r1/test_pipeline.py.)"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ar3d_r1.rewards.stand_ins import STAND_IN_REPLY, build_fixed_reply_vlm, build_tiny_hps  # noqa: E402
from ar3d_r1.rewards.vlm import VLM_REWARDS, PartCompleteness  # noqa: E402
from mme3dr.judge import load_template  # noqa: E402
from mme3dr.judge.parsers import parse_reply  # noqa: E402


def test_the_fixed_reply_vlm_answers_its_reply_to_any_question_with_images(tmp_path):
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = build_fixed_reply_vlm(tmp_path / "vlm")
    processor = AutoProcessor.from_pretrained(path)
    model = AutoModelForImageTextToText.from_pretrained(path).eval()
    rng = np.random.default_rng(0)
    for n_images, question in ((1, "Score the geometric alignment."), (6, "Do the views agree in colour?")):
        images = [Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(n_images)]
        content = [{"type": "image"}] * n_images + [{"type": "text", "text": question}]
        messages = [{"role": "user", "content": content}]
        text = processor.apply_chat_template(messages, add_generation_prompt=True)
        inputs = processor(text=[text], images=images, return_tensors="pt")
        assert (inputs["input_ids"] == model.config.image_token_id).sum() > 0  # the images reached the model
        out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
        new = out[0, inputs["input_ids"].shape[1]:]
        assert processor.decode(new, skip_special_tokens=True) == STAND_IN_REPLY
        assert new[-1].item() == model.config.text_config.eos_token_id  # it stops after the reply


def test_the_reply_parses_under_every_reward_template():
    parsed = {}
    for name, (cls, _) in VLM_REWARDS.items():
        template = load_template(cls.template_name)
        for n_items in range(1, 9) if cls is PartCompleteness else (None,):
            result = parse_reply(template.parser, STAND_IN_REPLY, {"n_items": n_items})
            assert result.ok, (name, n_items, result)
            parsed[name] = result
    assert parsed["unified_think"].values == {"geometric_alignment": 3.0}
    assert parsed["unified2"].values == {"alignment": 3.0, "coherence": 3.0, "style": 3.0}
    assert parsed["category"].values == {"category_match": 1.0}
    assert parsed["consistency"].values == {"colour": 0.5, "material": 0.5, "texture": 0.5}
    assert parsed["parts"].items[-1] == {"exists": 1.0, "completeness": 0.5}


def test_the_tiny_hps_loads_from_endpoint_options(tmp_path, monkeypatch):
    pytest.importorskip("open_clip")
    from ar3d_r1.rewards.hps import hps_from_options

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    build_tiny_hps(tmp_path / "hps")
    options = {"weights_dir": str(tmp_path / "hps"), "device": "cpu", "arch": "mme3dr-tiny-clip",
               "batch_size": 4}
    reward = hps_from_options(options)
    views = np.random.default_rng(1).integers(0, 256, (2, 6, 40, 40, 4), dtype=np.uint8)
    batch = reward(["a frog", "a chair"], list(views))
    assert batch.failures == [None, None] and np.all(np.abs(batch.values["hps"]) <= 1)


def test_cuda_means_each_processs_own_gpu(monkeypatch):
    from ar3d_r1.rewards.hps import process_device

    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert process_device("cuda") == "cuda" and process_device(None) == "cpu"
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert process_device("cuda") == "cuda:3" and process_device("cuda:1") == "cuda:1"
    assert process_device("cpu") == "cpu"
