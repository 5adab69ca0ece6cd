"""The dry run's reward stand-ins, in process: the fixed-reply VLM writes its reply from a real
``generate`` whatever the images and question, the reply parses under every reward template, and the tiny
HPS checkpoint loads through the endpoints file's ``hps`` options. (Through ``transformers serve``: the
paper preset's dry run, tests/ar3d_r1/test_pipeline.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from process_tags import tagged  # noqa: E402

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


def test_the_stand_in_endpoints_file_has_no_yaml_aliases():
    import yaml

    from ar3d_r1.rewards.stand_ins import stand_in_endpoints

    text = yaml.safe_dump(stand_in_endpoints("http://127.0.0.1:1", "m", "hps", "cache"), sort_keys=False)
    assert "&id" not in text and "*id" not in text  # each endpoint written out in full


def test_cuda_means_each_processs_own_gpu(monkeypatch):
    from ar3d_r1.rewards.hps import process_device

    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert process_device("cuda") == "cuda" and process_device(None) == "cpu"
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert process_device("cuda") == "cuda:3" and process_device("cuda:1") == "cuda:1"
    assert process_device("cpu") == "cpu"


# ---------------------------------------------------------------- the served child never outlives its parent
SERVE_SCRIPT = """
import signal, sys, time
# Ctrl-C must raise here even when pytest itself runs with SIGINT ignored (started in the background
# with `&`, which makes the shell ignore SIGINT in the job and every process it starts)
signal.signal(signal.SIGINT, signal.default_int_handler)
from ar3d_r1.rewards.stand_ins import ServedModel
from mme3dr.process_lifetime import exit_on_sigterm
if sys.argv[3] == "handler":
    exit_on_sigterm()
try:
    ServedModel(sys.argv[1], sys.argv[2], startup_s=300)
    print("up", flush=True)
    time.sleep(600)
except BaseException as exc:
    print("caught", type(exc).__name__, flush=True)
    time.sleep(600)  # stay alive: the child must be gone by our own clean-up, not by PDEATHSIG
"""


needs_proc = pytest.mark.skipif(not Path("/proc/self/environ").is_file(), reason="needs Linux /proc")
REPO = Path(__file__).resolve().parents[3]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"{what} within {timeout:g} s")


def serve_child(tag: str, parent: int) -> int:
    """The pid of the ``transformers serve`` child once it has exec'd (so ``Popen`` has returned)."""
    def found():
        return [pid for pid, cmd in tagged(tag).items() if pid != parent and " serve " in cmd]

    return wait_for(found, 60, "no serve child")[0]


def gone(pid: int) -> bool:
    try:
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) == "Z"
    except OSError:
        return True


@needs_proc
@pytest.mark.parametrize(("sig", "mode", "caught"), [
    (9, "plain", None),                       # SIGKILL: no clean-up can run; PR_SET_PDEATHSIG kills the child
    (2, "plain", "KeyboardInterrupt"),        # Ctrl-C while __init__ polls /health: __init__ stops the child
    (15, "handler", "SystemExit"),            # SIGTERM under exit_on_sigterm (the CLI): the same clean-up
], ids=["SIGKILL", "Ctrl-C", "SIGTERM"])
def test_the_served_child_dies_with_its_parent_or_its_failed_start(tmp_path, sig, mode, caught):
    tag = uuid.uuid4().hex
    env = {**os.environ, "MME3DR_TEST_TAG": tag, "PYTHONPATH": str(REPO)}
    # an empty model directory: the child is signalled while it still imports transformers (seconds)
    (tmp_path / "model").mkdir()
    report = tmp_path / "parent.out"
    with report.open("w") as stdout:
        proc = subprocess.Popen([sys.executable, "-c", SERVE_SCRIPT, str(tmp_path / "model"),
                                 str(tmp_path / "serve.log"), mode], env=env, cwd=REPO, stdout=stdout,
                                stderr=subprocess.DEVNULL)
    try:
        child = serve_child(tag, proc.pid)
        time.sleep(0.3)  # Popen has returned: the parent is polling /health
        assert proc.poll() is None and not gone(child)
        os.kill(proc.pid, sig)
        wait_for(lambda: gone(child), 10 if caught else 5, f"serve child {child} alive after signal {sig}")
        if caught:
            line = wait_for(report.read_text, 5, "no report from the parent")
            assert line.split() == ["caught", caught]
            assert proc.poll() is None  # the parent lives on: its own clean-up stopped the child
    finally:
        for pid in tagged(tag):
            os.kill(pid, signal.SIGKILL)
        proc.wait(30)


@pytest.mark.slow
@needs_proc
def test_sigterm_to_a_paper_dry_run_stops_its_served_judge(tmp_path):
    """SIGTERM to ``ar3d-r1 train --preset paper --dry-run`` once its judge is up: the CLI exits 143
    through its finally blocks, and no process of the run is left (the judge included)."""
    tag = uuid.uuid4().hex
    env = {**os.environ, "MME3DR_TEST_TAG": tag, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "dry"
    log = tmp_path / "cli.log"
    with log.open("w") as sink:
        proc = subprocess.Popen([sys.executable, "-c", "from ar3d_r1.cli import main; main()", "train",
                                 "--preset", "paper", "--dry-run", "--output_dir", str(out)],
                                env=env, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT)
    try:
        child = serve_child(tag, proc.pid)
        servers = out / "stand-ins" / "rewards" / "reward_servers.yaml"
        wait_for(servers.is_file, 300, "the judge never came up")  # written once /health answers
        assert not gone(child)
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(60) == 143, log.read_text()[-3000:]
        wait_for(lambda: not tagged(tag), 5, f"left alive: {tagged(tag)}")
    finally:
        for pid in tagged(tag):
            os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
