"""``EvalConfig``: everything one evaluation takes, and at once the options of ``mme3dr evaluate``.

Each field carries its command-line spelling, help text and, where the values are a closed set, its
choices (``opt``); ``mme3dr.cli.options.typer_command`` builds the command's options from these fields,
so an option cannot exist in the command and not in the config (as ``ar3d_r1.config``'s dataclasses
are the trainer's options). ``__post_init__`` is the one place the values are checked: a bad value
raises :class:`mme3dr.errors.UserError` naming the flag, from Python and from the command alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mme3dr.errors import UserError

__all__ = ["EvalConfig", "JUDGE_PROFILES", "PROFILES", "PROMPT_SOURCES"]

#: Metric profiles (``mme3dr.features.profiles.PROFILES``; a test checks the two agree).
PROFILES = ("paper", "smoke", "ar3d-r1-script")
PROMPT_SOURCES = ("case", "raw-captions-column")
JUDGE_PROFILES = ("openai", "transformers", "vllm")
TOYS4K_KINDS = ("blend-zip", "obj-zip", "trellis", "folder")
MAX_WORKERS = 256
MAX_SAMPLES = 1000
MIN_SIZE, MAX_SIZE = 16, 4096


def opt(default: Any, help: str, *flags: str, choices: tuple[str, ...] | None = None,
        min: float | None = None, max: float | None = None, required: bool = False,
        csv: bool = False, group: str = "run") -> Any:
    """A config field with its command-line option: ``flags`` (default ``--field-name``), ``help``,
    ``choices``, a numeric range (``min``/``max``), ``csv`` (a tuple given as ``a,b,c``) and the
    help panel it is shown in (``group``)."""
    meta = {"help": help, "flags": flags, "choices": choices, "min": min, "max": max, "csv": csv,
            "group": group, "required": required}
    if isinstance(default, tuple):
        return field(default_factory=lambda: default, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class EvalConfig:
    """Everything ``mme3dr evaluate`` takes; the command's options are generated from these fields."""

    model: str = opt(None, "Adapter: primitives | oracle | folder:DIR | an installed plug-in name | "
                     "pkg.module:Class | path/to/file.py:Class.", "--model", "-m", required=True)
    out: Path = opt(None, "Run directory (results.json, samples.jsonl, state).", "--out", "-o",
                    required=True)
    model_args: str = opt("", "Adapter keyword arguments: key=value,...")
    benchmark: str = opt("demo", "demo (built-in, offline) | mme3dr-v1 | toys4k-800 | a manifest path.",
                         "--benchmark", "-b")
    profile: str = opt("paper", "Metric profile: paper (protocol v1; needs the encoder weights, see "
                       "`mme3dr weights`) | smoke (tiny offline encoders: tests the pipeline, not a "
                       "score) | ar3d-r1-script.", "--profile", "-p", choices=PROFILES)
    toys4k: Path | None = opt(None, "Toys4K objects: toys4k_blend_files.zip, toys4k_obj_files.zip, a "
                              "TRELLIS render folder or a mesh folder.")
    toys4k_kind: str | None = opt(None, "How to read --toys4k (default: guessed).", choices=TOYS4K_KINDS)
    captions: Path | None = opt(None, "TRELLIS Toys4k.csv (prompts).")
    limit: int | None = opt(None, "Only the first N cases (marks the run not comparable / "
                            "leaderboard-ineligible).", min=1)
    samples_per_prompt: int = opt(1, "Assets per prompt.", min=1, max=MAX_SAMPLES)
    categories: tuple[str, ...] = opt((), "Comma-separated category ids (partial run).", csv=True)
    resume: bool = opt(False, "Continue the run in --out, skipping finished work.")
    overwrite: bool = opt(False, "Discard an earlier run in --out.")
    workers: int = opt(1, "Parallel workers for rendering.", min=1, max=MAX_WORKERS)
    num_shards: int = opt(1, "Split the cases over K machines (then `mme3dr merge`).", min=1)
    shard_index: int = opt(0, "Which shard this is, 0..K-1.", min=0)
    device: str = opt("cpu", "Torch device for the feature encoders.")
    timeout: float | None = opt(600.0, "Seconds per requested asset before the adapter call is abandoned "
                                "(0 = no limit).", min=0.0)
    cache_dir: Path | None = opt(None, "Render cache (default OUT/cache); share it between runs to reuse "
                                 "reference renders.")
    render_size: int | None = opt(None, "Override the render size in px (quick checks; marks the run "
                                  "ineligible).", min=MIN_SIZE, max=MAX_SIZE)
    weights_dir: Path | None = opt(None, "Local encoder weights.")
    backend: str | None = opt(None, "Renderer backend: auto or egl (the only one; the default).",
                              choices=("auto", "egl"))
    allow_renderer_change: bool = opt(False, "Resume even though this machine's renderer differs from the "
                                      "run's (everything is re-rendered; the results record the new one).")
    prompt_source: str = opt("case", "CLIP text: case (the prompt) | raw-captions-column (the authors' "
                             "script's quirk: the CSV's unparsed captions list; --profile ar3d-r1-script "
                             "only).", choices=PROMPT_SOURCES)
    report: bool = opt(True, "Write the HTML report and plots into OUT/report.", "--report/--no-report",
                       group="outputs")
    judge: str | None = opt(None, "Also ask this VLM judge server (URL …/v1) a checklist per sample; "
                            "see `mme3dr judge --help`.", group="judge")
    judge_model: str | None = opt(None, "The judge server's model id.", group="judge")
    judge_profile: str = opt("openai", "Which extra request fields the judge server takes.",
                             choices=JUDGE_PROFILES, group="judge")
    judge_concurrency: int = opt(4, "Judge requests in flight.", min=1, max=256, group="judge")
    judge_timeout: float = opt(300.0, "Seconds per judge request.", min=0.001, group="judge")
    judge_retries: int = opt(3, "Judge retries on 5xx/timeouts.", min=0, max=100, group="judge")

    def __post_init__(self) -> None:
        if self.model is None or self.out is None:
            raise UserError("--model and --out are required")
        self.out = Path(self.out)
        self.categories = tuple(self.categories)
        self.prompt_source = self.prompt_source.replace("-", "_")
        if self.timeout == 0:
            self.timeout = None
        for problem in _problems(self):
            raise UserError(problem)

    def judge_config(self):
        """The judge client's settings (``mme3dr.judge.JudgeConfig``), or None without ``--judge``."""
        if self.judge is None:
            return None
        from mme3dr.judge import JudgeConfig

        return JudgeConfig(base_url=self.judge, model=self.judge_model, profile=self.judge_profile,
                           concurrency=self.judge_concurrency, timeout_s=self.judge_timeout,
                           retries=self.judge_retries)


def _problems(cfg: EvalConfig):
    """The first thing wrong with ``cfg``, as a one-line message (a generator: stops at the first)."""
    from dataclasses import fields

    for f in fields(cfg):
        value, meta = getattr(cfg, f.name), f.metadata
        flag = meta["flags"][0] if meta["flags"] else "--" + f.name.replace("_", "-")
        if value is None or isinstance(value, bool):
            continue
        if meta["choices"] and str(value).replace("_", "-") not in meta["choices"]:
            yield f"{flag} {value!r} is not one of: {', '.join(meta['choices'])}"
        if meta["min"] is not None and value < meta["min"]:
            yield f"{flag} must be at least {meta['min']:g}, got {value}"
        if meta["max"] is not None and value > meta["max"]:
            yield f"{flag} must be at most {meta['max']:g}, got {value}"
    if not 0 <= cfg.shard_index < cfg.num_shards:
        yield f"--shard-index must be in 0..{cfg.num_shards - 1}, got {cfg.shard_index}"
    if cfg.resume and cfg.overwrite:
        yield "--resume continues the run in --out and --overwrite discards it; pass only one of them"
    if (cfg.judge is None) != (cfg.judge_model is None):
        yield "--judge and --judge-model go together"
    if cfg.judge is not None:  # checked before anything runs: a bad URL must not lose the evaluation
        from mme3dr.judge.settings import url_problem

        if problem := url_problem(cfg.judge):
            yield f"--judge {problem}"
