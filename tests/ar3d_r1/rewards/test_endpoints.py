"""The reward endpoints file: the shipped paper set-up validates; mistakes name the key; the live check
asks the real server which model it serves."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import ar3d_r1.rewards as rewards
from ar3d_r1.rewards import EndpointsError, check_endpoints, endpoints_from_dict, load_endpoints

SHIPPED = Path(rewards.__file__).with_name("reward_endpoints.yaml")


def test_shipped_paper_endpoints_load():
    eps = load_endpoints(SHIPPED)
    assert set(eps.endpoints) == {"unifiedreward_think", "unifiedreward2", "qwen_vl"}
    assert eps["qwen_vl"].judge.model == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert eps["unifiedreward2"].image_format == "jpeg" and eps["unifiedreward2"].judge.profile == "vllm"
    assert eps.cache_dir is not None and eps.cache_dir.is_absolute()
    with pytest.raises(KeyError, match="no endpoint 'hps'"):
        eps["hps"]


def base() -> dict:
    return yaml.safe_load(SHIPPED.read_text())


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d["endpoints"]["qwen_vl"].update(concurency=4),
     r"endpoints.qwen_vl has unknown keys \['concurency'\]"),
    (lambda d: d["endpoints"]["qwen_vl"].update(profile="tgi"), r"endpoints.qwen_vl.profile must be one of"),
    (lambda d: d["endpoints"]["qwen_vl"].pop("model"), r"endpoints.qwen_vl.model is required"),
    (lambda d: d["endpoints"]["qwen_vl"].update(base_url="127.0.0.1:8000"), r"must start with http"),
    (lambda d: d["endpoints"]["qwen_vl"].update(image_format="webp"), r"image_format must be one of"),
    (lambda d: d["endpoints"].update(hps_server={}), r"unknown endpoint names \['hps_server'\]"),
    (lambda d: d.update(endpoint={}), r"unknown top-level keys \['endpoint'\]"),
    (lambda d: d["endpoints"]["qwen_vl"].update(profile="transformers", decoding={"top_k": 1}),
     r"endpoints.qwen_vl.decoding: decoding fields \['top_k'\] are not standard"),
])
def test_mistakes_are_reported_with_the_key(edit, message):
    data = base()
    edit(data)
    with pytest.raises(EndpointsError, match=message):
        endpoints_from_dict(data, "reward_endpoints.yaml")


def test_vllm_profile_passes_extra_sampling_fields():
    data = base()
    data["endpoints"]["qwen_vl"]["decoding"] = {"temperature": 0.0, "max_tokens": 64, "top_k": 1}
    ep = endpoints_from_dict(data)["qwen_vl"]
    assert ep.decoding.body("vllm") == {"temperature": 0.0, "max_tokens": 64, "seed": 0, "top_k": 1}


def test_check_endpoints_against_the_real_server(served_vlm, tmp_path):
    from judge_server import free_port

    data = {"endpoints": {
        "qwen_vl": {"base_url": served_vlm.url, "model": served_vlm.model, "profile": "transformers"},
        "unifiedreward2": {"base_url": served_vlm.url, "model": "CodeGoat24/UnifiedReward-2.0-qwen-7b"},
        "unifiedreward_think": {"base_url": f"http://127.0.0.1:{free_port()}", "model": "x", "retries": 0},
    }}
    path = tmp_path / "endpoints.yaml"
    path.write_text(yaml.safe_dump(data))
    report = check_endpoints(load_endpoints(path))
    assert report["qwen_vl"] is None
    assert "'CodeGoat24/UnifiedReward-2.0-qwen-7b' is not served" in report["unifiedreward2"]
    assert "unreachable" in report["unifiedreward_think"]
