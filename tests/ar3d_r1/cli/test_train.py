"""``ar3d-r1 train`` / ``sft`` on the command line (ar3d_r1/cli/train.py): a user's mistakes are one line
``error: ...`` naming the flag, file or key and what to do, no traceback and no usage dump; the dry-run
summary labels and counts. In process through typer's runner (nothing here loads a model)."""

from __future__ import annotations

import signal

import pytest
import yaml
from typer.testing import CliRunner

pytest.importorskip("torch")

from ar3d_r1.cli import app  # noqa: E402
from ar3d_r1.cli.train import dry_run_summary  # noqa: E402
from ar3d_r1.config import preset  # noqa: E402


@pytest.fixture(autouse=True)
def keep_sigterm():
    """The commands install a SIGTERM handler (exit_on_sigterm); give pytest its own back."""
    before = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, before)


def run(*args: str, code: int) -> str:
    """Invoke ``ar3d-r1 ARGS``; check the exit status and that stderr is one ``error:`` line; return it."""
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = [ln for ln in result.stderr.splitlines() if not ln.startswith("checking reward servers")]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output and "Usage:" not in result.output
    return lines[0]


@pytest.mark.parametrize(("flags", "expected"), [
    (["--task", "nonsense"], "error: --task nonsense: task must be one of ('geometry', 'vlm', "
                             "'hps-unified2'), got 'nonsense'"),
    (["--learnin_rate", "1"], "error: unknown flag --learnin_rate (did you mean --learning_rate?); every "
                              "config field is a flag: see --help-fields"),
    (["--learning_rate", "abc"], "error: --learning_rate: invalid float value: 'abc'"),
    (["--resume", "maybe"], "error: --resume: Truthy value expected"),
    (["--resume", "true", "--overwrite_output_dir", "true"], "error: --resume true: resume and "
                                                             "overwrite_output_dir exclude each other"),
    (["--config", "/nonexistent.yaml"], "error: --config /nonexistent.yaml: no such config file"),
    (["--preset", "huge"], "error: --preset huge: unknown preset 'huge'; known: paper, 3dgen-r1, tiny-cpu"),
    # every value is checked before anything loads (issue 26): nothing here reaches a model
    (["--learning_rate", "inf"], "error: --learning_rate inf: learning_rate must be a finite number >= 0, "
                                 "got inf"),
    (["--beta", "nan"], "error: --beta nan: beta must be a finite number >= 0, got nan"),
    (["--per_device_train_batch_size", "0"], "error: --per_device_train_batch_size 0: "
                                             "per_device_train_batch_size must be an integer >= 1, got 0"),
    (["--gradient_accumulation_steps", "0"], "error: --gradient_accumulation_steps 0: "
                                             "gradient_accumulation_steps must be an integer >= 1, got 0"),
    (["--render_size", "0"], "error: --render_size 0: render_size must be an integer >= 8, got 0"),
    (["--epsilon_low", "-0.2"], "error: --epsilon_low -0.2: epsilon_low must be a finite number in [0, 1]"),
    (["--save_steps", "-1"], "error: --save_steps -1: save_steps must be an integer >= 0, got -1"),
    (["--max_steps", "0"], "error: --max_steps 0: max_steps must be an integer >= 1, got 0"),
    (["--top_p", "1.5"], "error: --top_p 1.5: top_p must be a finite number in (0, 1], got 1.5"),
    (["--output_dir", ""], "error: --output_dir : output_dir must not be empty"),
])
def test_flag_and_config_mistakes_name_the_flag_and_value(flags, expected):
    line = run("train", *flags, code=2)
    assert line.startswith(expected), line
    assert "--preset" not in line or "--preset" in flags


def test_a_config_file_of_the_wrong_kind_or_not_yaml(tmp_path):
    from ar3d_r1.config import save_config

    save_config(preset("tiny-cpu", "sft"), tmp_path / "sft.yaml")
    assert "a SFTConfig file" in run("train", "--config", str(tmp_path / "sft.yaml"), code=2)
    (tmp_path / "bad.yaml").write_text("learning_rate: [1\n")
    assert f"--config {tmp_path / 'bad.yaml'}: not a readable YAML file" in run(
        "train", "--config", str(tmp_path / "bad.yaml"), code=2)
    assert "is a directory" in run("train", "--config", str(tmp_path), code=2)


def test_the_paper_preset_names_every_missing_input_at_once(tmp_path):
    line = run("train", "--preset", "paper", "--output_dir", str(tmp_path / "run"), code=2)
    assert line.startswith("error: task 'vlm' needs --reward_servers (") and " and --prompts_file (" in line


def test_tiny_cpu_before_its_vqvae_and_sft_says_which_commands_make_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = run("train", "--preset", "tiny-cpu", code=1)
    assert line == ("error: VQVAE runs/vqvae-tiny and policy runs/tiny-cpu/sft not found: run "
                    "`ar3d-r1 vqvae fit --preset tiny-cpu --out runs/vqvae-tiny` then `ar3d-r1 sft --preset "
                    "tiny-cpu --vqvae runs/vqvae-tiny --output_dir runs/tiny-cpu/sft` first (or pass --vqvae "
                    "DIR and --policy DIR)")
    assert "mme3dr weights download" not in line
    assert "`ar3d-r1 vqvae fit --preset tiny-cpu --out runs/vqvae-tiny` first" in run("sft", code=1)


def test_a_missing_hub_vqvae_or_policy_is_one_line(tmp_path, monkeypatch):
    import torch

    from ar3d_r1.policy.vqvae import VQVAE3D, VQVAEConfig, save_vqvae

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MME3DR_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.chdir(tmp_path)  # no runs/ here
    line = run("train", "--preset", "tiny-cpu", "--vqvae", "yejunliang23/3DVQVAE", "--policy",
               "yejunliang23/ShapeLLM-7B-omni", "--output_dir", str(tmp_path / "a"), code=1)
    assert "3DVQVAE.bin" in line and "HF_HUB_OFFLINE" in line
    torch.manual_seed(0)
    save_vqvae(VQVAE3D(VQVAEConfig.tiny()), tmp_path / "vqvae")
    line = run("train", "--preset", "tiny-cpu", "--vqvae", str(tmp_path / "vqvae"), "--policy",
               "yejunliang23/ShapeLLM-7B-omni", "--output_dir", str(tmp_path / "b"), code=1)
    assert "policy 'yejunliang23/ShapeLLM-7B-omni' is not available" in line and "hf download" in line


def test_sft_refuses_to_replace_a_policy_unless_told(tmp_path):
    """A second ``sft`` into a folder that holds a policy is refused in one line before any training (a
    train run may have been made from it); ``--overwrite_output_dir true`` lets it through."""
    import dataclasses

    import torch

    from ar3d_r1.cli.train import existing_policy
    from ar3d_r1.policy.vqvae import VQVAE3D, VQVAEConfig, save_vqvae

    torch.manual_seed(0)
    save_vqvae(VQVAE3D(VQVAEConfig.tiny()), tmp_path / "vqvae")
    out = tmp_path / "sft"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"weights of an earlier warm start")
    line = run("sft", "--vqvae", str(tmp_path / "vqvae"), "--output_dir", str(out), code=1)
    assert line == (f"error: {out} already holds an SFT policy (model.safetensors); pass "
                    "--overwrite_output_dir true to train a new one there, or choose another --output_dir")
    assert (out / "model.safetensors").read_bytes() == b"weights of an earlier warm start"
    config = preset("tiny-cpu", "sft", output_dir=str(out))
    existing_policy(dataclasses.replace(config, overwrite_output_dir=True))  # allowed: no error


def _paper(tmp_path, servers: dict | str, captions: bytes | None = b"A chair.\n") -> list[str]:
    path = tmp_path / "rewards.yaml"
    path.write_text(servers if isinstance(servers, str) else yaml.safe_dump(servers))
    prompts = tmp_path / "captions.txt"
    if captions is not None:
        prompts.write_bytes(captions)
    return ["train", "--preset", "paper", "--gradient_accumulation_steps", "8",  # 8 completions, one process
            "--output_dir", str(tmp_path / "run"), "--reward_servers", str(path),
            "--prompts_file", str(prompts)]


def test_endpoint_and_captions_file_mistakes_are_one_line(tmp_path):
    from ar3d_r1.rewards.stand_ins import free_port

    dead = {"base_url": f"http://127.0.0.1:{free_port()}", "model": "m"}  # nothing listens there
    good = {"endpoints": {name: dict(dead) for name in ("unifiedreward_think", "unifiedreward2", "qwen_vl")}}
    bad = {"endpoints": {**good["endpoints"], "qwen_vl": {**dead, "concurrency": "many"}}}
    assert run(*_paper(tmp_path, bad), code=2) == (
        f"error: --reward_servers: {tmp_path / 'rewards.yaml'}: endpoints.qwen_vl.concurrency must be an "
        "integer >= 1, got 'many'")
    tpu = {**good, "hps": {"device": "tpu"}}
    assert "hps.device 'tpu' is not a torch device" in run(*_paper(tmp_path, tpu), code=2)
    assert "not valid YAML" in run(*_paper(tmp_path, "endpoints: {qwen_vl: [\n"), code=2)
    line = run(*_paper(tmp_path, good, b"A chair.\nA caf\xe9 table.\n"), code=2)
    assert line.startswith(f"error: --prompts_file: {tmp_path / 'captions.txt'}:2: not UTF-8 (byte 0xe9")
    args = _paper(tmp_path, good, None)
    args[-1] = str(tmp_path)
    assert run(*args, code=2) == (f"error: --prompts_file: prompts_file {tmp_path} is a directory; give a "
                                  "captions file (.txt one a line, .jsonl, .json or .csv)")
    # well-formed, and nothing listens: the reward-server check names it (after saying it checks)
    result = CliRunner().invoke(app, _paper(tmp_path, good))
    assert result.exit_code == 1 and "checking reward servers" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: reward server(s) not ready")


@pytest.mark.parametrize("flag", ["--prompts_file", "--reward_servers"])
def test_a_served_tasks_input_given_to_the_geometry_task_is_refused_not_ignored(tmp_path, flag):
    assert run("train", "--preset", "tiny-cpu", flag, str(tmp_path / "x"), code=2) == (
        f"error: {flag} is read by the served tasks (--task vlm, hps-unified2) only; task 'geometry' draws "
        f"procedural prompts (--num_prompts, --prompt_seed) and scores them itself: drop {flag} or choose "
        "--task vlm")


def test_a_run_directory_is_refused_before_anything_loads_and_after_missing_inputs(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n')
    assert run("train", "--preset", "tiny-cpu", "--output_dir", str(tmp_path), "--policy", "p", "--vqvae",
               "v", code=1) == (
        f"error: {tmp_path} already holds a run (metrics.jsonl); pass --resume true to continue it or "
        "--overwrite_output_dir true to start over")
    # issue 25: what the user has to provide is named first, before the folder is looked at
    line = run("train", "--preset", "paper", "--output_dir", str(tmp_path), code=2)
    assert line.startswith("error: task 'vlm' needs --reward_servers")
    # the authors' recipe (issue 21) serves its rewards too: its inputs are asked for before any folder
    line = run("train", "--preset", "3dgen-r1", "--output_dir", str(tmp_path / "authors"), code=2)
    assert line.startswith("error: task 'hps-unified2' needs --reward_servers")
    assert not (tmp_path / "authors").exists()


def test_a_batch_that_does_not_split_into_groups_is_refused_before_anything_loads(tmp_path):
    line = run("train", "--num_generations", "3", "--policy", "p", "--vqvae", "v", "--output_dir",
               str(tmp_path), code=2)
    assert line.startswith("error: --num_generations 3: 16 completions per step")
    assert "accelerate launch" in line


def test_a_sft_config_is_checked_too():
    assert run("sft", "--batch_size", "0", code=2) == (
        "error: --batch_size 0: batch_size must be an integer >= 1, got 0")


def test_config_file_is_laid_over_the_preset(tmp_path):
    (tmp_path / "c.yaml").write_text("max_steps: 5\n")
    # the paper preset's task (vlm) survives a file that does not name it: its inputs are asked for
    line = run("train", "--preset", "paper", "--config", str(tmp_path / "c.yaml"), "--output_dir",
               str(tmp_path / "run"), code=2)
    assert line.startswith("error: task 'vlm' needs --reward_servers")
    (tmp_path / "bad.yaml").write_text("beta: .nan\n")
    assert run("train", "--config", str(tmp_path / "bad.yaml"), code=2) == (
        f"error: --config {tmp_path / 'bad.yaml'}: beta must be a finite number >= 0, got nan")


def test_a_dry_run_has_its_own_folder():
    from ar3d_r1.cli.train_guards import dry_run_output_dir

    assert dry_run_output_dir(preset("paper"), "paper").output_dir == "runs/paper/dry-run"
    assert dry_run_output_dir(preset("tiny-cpu"), "tiny-cpu").output_dir == "runs/tiny-cpu/dry-run"
    assert dry_run_output_dir(preset("3dgen-r1"), "3dgen-r1").output_dir == "runs/3dgen-r1/dry-run"
    # --print-config shows where a dry run writes, and the layers under it (preset, --config, flags)
    shown = yaml.safe_load(CliRunner().invoke(app, ["train", "--preset", "3dgen-r1", "--dry-run",
                                                    "--print-config", "--beta", "0.5"]).stdout)
    assert (shown["output_dir"], shown["beta"], shown["task"]) == ("runs/3dgen-r1/dry-run", 0.5,
                                                                   "hps-unified2")
    mine = preset("paper", output_dir="elsewhere")
    assert dry_run_output_dir(mine, "paper").output_dir == "elsewhere"


def test_help_says_every_field_is_a_flag_and_what_the_paper_preset_needs():
    result = CliRunner().invoke(app, ["train", "--help"], terminal_width=200)
    text = " ".join(result.output.split())
    assert "Every config field is also a flag" in text and "--help-fields" in text
    assert "--reward_servers" in text and "--prompts_file" in text
    fields = CliRunner().invoke(app, ["train", "--help-fields"]).output
    line = next(ln for ln in fields.splitlines() if ln.startswith("--prompts_file"))
    assert "caption/prompt/text" in line and "--overwrite_output_dir" in fields


def test_the_dry_run_summary_labels_rollout_steps_and_counts_only_this_invocation():
    cfg = preset("paper", per_device_train_batch_size=1, gradient_accumulation_steps=16, output_dir="out")

    def record(step: int, sent: float) -> dict:
        return {"step": step, **{f"requests/{s}/{k}": v for s in ("step1", "step2")
                                 for k, v in (("sent", sent), ("cached", 2.0), ("unparsed", 1.0),
                                              ("failed", 0.0))},
                "samples/step1/failed": 1.0, "samples/step2/failed": 0.0}

    history = [record(1, 100.0), record(2, 10.0), record(3, 20.0)]
    lines = dry_run_summary(cfg, history, start_step=1).splitlines()
    assert lines[0] == ("dry run: 2 optimizer steps of the 'vlm' task on tiny stand-ins (out, resumed from "
                        "step 1)")
    assert lines[1] == ("  rollout step 1 (M1), over 2 optimizer steps: 34 reward requests (30 sent to the "
                        "served stand-in judge, 4 answered from the response cache): 32 parsed, 2 did not "
                        "parse, 0 got no reply; 2 of 32 samples failed a reward")
    assert lines[2].startswith("  rollout step 2 (M2), over 2 optimizer steps: 34 reward requests")
    assert dry_run_summary(cfg, history, start_step=3) == (
        "dry run: nothing to do: the run already finished at step 3 (out)")


@pytest.mark.parametrize("name", ["tiny-cpu", "paper", "3dgen-r1"])
def test_print_config_prints_the_resolved_yaml_of_every_preset_and_exits(name, tmp_path):
    """--print-config: the preset, then --config, then the flags, as YAML that load_config reads back;
    nothing is built or checked (the paper presets' inputs are not needed)."""
    from ar3d_r1.config import load_config

    result = CliRunner().invoke(app, ["train", "--preset", name, "--print-config", "--max_steps", "7",
                                      "--output_dir", str(tmp_path / "never")])
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.stdout)
    assert printed["kind"] == "train" and printed["max_steps"] == 7
    (tmp_path / "c.yaml").write_text(result.stdout)
    assert load_config(tmp_path / "c.yaml") == preset(name, max_steps=7, output_dir=str(tmp_path / "never"))
    assert not (tmp_path / "never").exists()
    # --config applies under the flags
    (tmp_path / "base.yaml").write_text(yaml.safe_dump({**printed, "beta": 0.5}))
    again = CliRunner().invoke(app, ["train", "--config", str(tmp_path / "base.yaml"), "--print-config",
                                     "--temperature", "0.9"])
    assert yaml.safe_load(again.stdout)["beta"] == 0.5 and yaml.safe_load(again.stdout)["temperature"] == 0.9


def test_print_config_of_3dgen_r1_shows_the_authors_hyper_parameters():
    result = CliRunner().invoke(app, ["train", "--preset", "3dgen-r1", "--print-config"])
    lines = result.stdout.splitlines()
    for line in ("learning_rate: 1.0e-06", "beta: 0.01", "num_generations: 8", "temperature: 1.0",
                 "max_steps: 900", "save_steps: 200", "gradient_accumulation_steps: 2",
                 "per_device_train_batch_size: 8", "mixed_precision: bf16", "task: hps-unified2",
                 "rollout_style: reasoning-then-mesh", "reward_rig: video6", "malformed_reward: half-column",
                 "advantage_mode: shared", "loss_segments: joint", "loss_normaliser: micro-batch",
                 "mesh_mask: all", "clip_ratio: false", "two_step: true"):
        assert line in lines, line
    assert preset("3dgen-r1").prompts_per_step(7) == 14  # 7 processes x 2 micro-steps x 1 prompt


def test_a_reasoning_prompt_file_mistake_is_one_line(tmp_path):
    (tmp_path / "p.txt").write_text("Think about {} and {}.\n")
    line = run("train", "--preset", "3dgen-r1", "--dry-run", "--output_dir", str(tmp_path / "run"),
               "--reasoning_prompt_file", str(tmp_path / "p.txt"), code=1)
    assert line == (f"error: reasoning_prompt_file {tmp_path / 'p.txt'}: needs exactly one '{{}}' for the "
                    "caption and no other braces (it is filled with str.format, as the authors' trainer "
                    "does)")
    assert not (tmp_path / "run").exists()  # refused before the stand-ins are built
    line = run("train", "--preset", "3dgen-r1", "--dry-run", "--output_dir", str(tmp_path / "run2"),
               "--reasoning_prompt_file", str(tmp_path / "none.txt"), code=1)
    assert line == f"error: reasoning_prompt_file {tmp_path / 'none.txt'}: no such file"


def test_train_ends_with_a_summary_of_rewards_skips_failures_and_files(tmp_path):
    from types import SimpleNamespace

    from ar3d_r1.cli.train_guards import run_summary

    cfg = preset("tiny-cpu", output_dir=str(tmp_path), per_device_train_batch_size=4,
                 gradient_accumulation_steps=4, max_steps=30)
    history = [{"step": s, "reward/total": 1.0 if s <= 10 else 2.0 if s > 20 else 1.5,
                "kept_groups/step1": 0 if s in (3, 4) else 1, "kept_groups/step2": 0 if s in (3, 4) else 1,
                "step1/malformed": 0.125 if s == 1 else 0.0, "step2/malformed": 0.0,
                "samples/step1/failed": 1.0 if s == 2 else 0.0} for s in range(1, 31)]
    (tmp_path / "checkpoint-20").mkdir()
    (tmp_path / "checkpoint-20" / "trainer_state.json").write_text('{"step": 20}')
    trainer = SimpleNamespace(config=cfg, history=history, accelerator=SimpleNamespace(num_processes=1))
    lines = run_summary(trainer, tmp_path / "final").splitlines()
    assert lines == [
        f"hi-grpo: steps 1-30 of 30 in {tmp_path}",
        "  mean total reward (R_high + R_low): first 10 steps 1.000, last 10 steps 2.000 (+1.000)",
        "  steps with no signal or skipped: 2 of 30",
        "  malformed meshes: 2 of 960 (30 steps x 16 samples x 2 meshes each); failed rewards: 1",
        f"  reward curve {tmp_path / 'reward_curve.png'}; metrics {tmp_path / 'metrics.jsonl'}; TensorBoard "
        f"{tmp_path / 'tb'}",
        f"  checkpoints: checkpoint-20; final policy {tmp_path / 'final'}"]


@pytest.mark.parametrize("command", ["train", "sft"])
def test_a_folder_another_run_holds_is_refused_in_one_line(tmp_path, command):
    import os

    from mme3dr.harness.run_state import RunLock

    with RunLock(tmp_path):  # another open file description of the lock: refused as another process is
        line = run(command, "--vqvae", "v", "--policy", "p", "--output_dir", str(tmp_path), code=1)
    assert line == (f"error: {tmp_path} is in use by another ar3d-r1 {command} (PID {os.getpid()}); wait for "
                    "it to finish (then --resume true), or choose another --output_dir")


def test_an_unusable_output_dir_or_empty_input_is_one_line(tmp_path):
    (tmp_path / "afile").write_text("")
    flags = ["--vqvae", "v", "--policy", "p"]
    assert run("train", *flags, "--output_dir", str(tmp_path / "afile"), code=2) == (
        f"error: --output_dir {tmp_path / 'afile'} is a file, not a folder; pass a folder path (it is "
        "created if missing)")
    assert "no folder can be made under it" in run("sft", "--vqvae", "v", "--output_dir",
                                                   str(tmp_path / "afile" / "sub"), code=2)
    assert run("train", *flags, "--vqvae", "", code=2) == "error: --vqvae : vqvae must not be empty"
    assert run("train", *flags, "--rollout_backend", "server", code=2).startswith(
        "error: --rollout_backend server: rollout_backend 'server' needs --rollout_url")
