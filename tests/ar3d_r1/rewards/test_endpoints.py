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


def qwen(**values):
    return lambda d: d["endpoints"]["qwen_vl"].update(values)


def decoding(**values):
    return lambda d: d["endpoints"]["qwen_vl"]["decoding"].update(values)


def hps(**values):
    return lambda d: d["hps"].update(values)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d["endpoints"]["qwen_vl"].update(concurency=4),
     r"endpoints.qwen_vl has unknown keys \['concurency'\]"),
    (lambda d: d["endpoints"]["qwen_vl"].update(profile="tgi"), r"endpoints.qwen_vl.profile must be one of"),
    (lambda d: d["endpoints"]["qwen_vl"].pop("model"), r"endpoints.qwen_vl.model is required"),
    (lambda d: d["endpoints"]["qwen_vl"].update(base_url="127.0.0.1:8000"), r"must start with http"),
    (lambda d: d["endpoints"]["qwen_vl"].update(base_url="http://127.0.0.1:99999/v1"),
     r"endpoints.qwen_vl: JudgeConfig.base_url must be a parseable"),
    (lambda d: d["endpoints"]["qwen_vl"].update(image_format="webp"), r"image_format must be one of"),
    (lambda d: d["endpoints"].update(hps_server={}), r"unknown endpoint names \['hps_server'\]"),
    (lambda d: d.update(endpoint={}), r"unknown top-level keys \['endpoint'\]"),
    (lambda d: d["endpoints"]["qwen_vl"].update(profile="transformers", decoding={"top_k": 1}),
     r"endpoints.qwen_vl.decoding: decoding fields \['top_k'\] are not standard"),
    # every value's type and range, named by file, endpoint and key (each was a crash or silently taken)
    (qwen(concurrency="many"),
     r"^reward_endpoints.yaml: endpoints.qwen_vl.concurrency must be an integer >= 1, got 'many'$"),
    (qwen(concurrency=0),
     r"endpoints.qwen_vl.concurrency must be an integer >= 1, got 0"),
    (qwen(concurrency=True), r"endpoints.qwen_vl.concurrency must be"),
    (qwen(retries=-1), r"endpoints.qwen_vl.retries must be an integer >= 0"),
    (qwen(retries=1.5), r"endpoints.qwen_vl.retries must be an integer"),
    (qwen(timeout_s="abc"),
     r"endpoints.qwen_vl.timeout_s must be a number > 0, got 'abc'"),
    (qwen(timeout_s=0), r"endpoints.qwen_vl.timeout_s must be a number > 0"),
    (qwen(model=7), r"endpoints.qwen_vl.model must be a non-empty string"),
    (qwen(decoding=5), r"endpoints.qwen_vl.decoding must be a mapping, got 5"),
    (decoding(max_tokens="abc"),
     r"endpoints.qwen_vl.decoding.max_tokens must be an integer >= 1, got 'abc'"),
    (decoding(temperature=-1),
     r"endpoints.qwen_vl.decoding.temperature must be a number >= 0"),
    (decoding(top_p=1.5),
     r"endpoints.qwen_vl.decoding.top_p must be a number > 0 and <= 1, got 1.5"),
    (qwen(templates={"foo": "bar"}),
     r"endpoints.qwen_vl.templates: no prompt template 'foo'; shipped: \["),
    (qwen(templates={"qwen-category-match": 99}),
     r"endpoints.qwen_vl.templates.qwen-category-match must be one of the shipped versions \[1"),
    (lambda d: d["endpoints"].update(qwen_vl=5), r"endpoints.qwen_vl must be a mapping, got 5"),
    (lambda d: d.update(endpoints=[1]), r"reward_endpoints.yaml: endpoints must be a mapping"),
    (lambda d: d.update(cache_dir=5), r"cache_dir must be a path \(a string\) or null, got 5"),
    (hps(device="tpu"), r"hps.device 'tpu' is not a torch device .*use cuda, cuda:N or cpu"),
    (hps(batch_size=0), r"hps.batch_size must be an integer >= 1, got 0"),
    (hps(devise="cpu"), r"hps has unknown keys \['devise'\]"),
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


def test_hps_device_strings_that_torch_parses_are_taken():
    for device in ("cuda", "cuda:1", "cpu"):  # whether CUDA is there is checked when HPS loads
        data = base()
        data["hps"]["device"] = device
        assert endpoints_from_dict(data).hps["device"] == device


def test_the_server_check_does_not_wait_out_the_request_timeout_on_a_silent_listener():
    """A listener that accepts and never replies: the check gives up after its own short timeout and one
    retry, not after the endpoint's timeout_s (300 s) × 4 attempts."""
    import socket
    import time

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the handshake; nobody ever reads or answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        data = {"endpoints": {"qwen_vl": {"base_url": url, "model": "m", "timeout_s": 300, "retries": 3}}}
        t0 = time.monotonic()
        report = check_endpoints(endpoints_from_dict(data), timeout_s=0.5)
        took = time.monotonic() - t0
    assert "unreachable: timeout after 2 attempt(s)" in report["qwen_vl"], report
    assert took < 5, took
