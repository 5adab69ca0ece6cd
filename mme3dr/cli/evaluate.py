"""CLI commands of the evaluate stage: ``mme3dr evaluate``, ``mme3dr merge``, ``mme3dr report``.

Heavy imports (torch, moderngl, matplotlib) happen inside the command bodies so ``mme3dr --help`` is fast.
"""

from __future__ import annotations

from pathlib import Path

import typer

EVALUATE_HELP = """Evaluate a text-to-3D model on a benchmark and write results.json + samples.jsonl.

The harness owns prompts, seeds, file names, rendering and scoring; the adapter (--model) only turns \
requests into 3D files. Re-running with --resume skips every finished sample and cached render. \
Guide: docs/evaluate.md.

Examples:

  mme3dr evaluate --model primitives --benchmark demo --profile smoke --out runs/demo

  mme3dr evaluate --model folder:gen/ --benchmark mme3dr-v1 --toys4k toys4k_blend_files.zip \
--captions Toys4k.csv --profile paper --out runs/mymodel
"""

#: Parse-time ranges of the numeric flags (click reports a value outside them as a usage error, exit 2).
MAX_WORKERS = 256
MAX_SAMPLES = 1000
MIN_SIZE, MAX_SIZE = 16, 4096


def _error(console, message: str, code: int = 2) -> None:
    """One line on stderr (never wrapped, ``[...]`` in the message kept as text), then exit ``code``."""
    from rich.markup import escape

    console.print(f"[red]error:[/] {escape(str(message))}", soft_wrap=True, highlight=False)
    raise typer.Exit(code)


def _environment_error(console, exc: OSError, out: Path) -> None:
    """A missing weight file or a full disk: one message saying what to do (exit 2); any other OSError
    is a bug and keeps its traceback."""
    from mme3dr.features.weights import WeightsNotFoundError
    from mme3dr.output_files import is_disk_full

    if isinstance(exc, WeightsNotFoundError):
        # The weights module's message is a short list ("To fix:" and one bullet per way out); the
        # command prints it as one line, so the run ends with exactly one line that names the fix.
        parts = [line.strip().lstrip("- ").strip() for line in str(exc).splitlines() if line.strip()]
        _error(console, " ".join(parts))
    if is_disk_full(exc):
        where = exc.filename or out
        _error(console, f"no space left on the device while writing {where}; every file written so far "
                        f"is complete. Free some space, then re-run the same command with --resume "
                        f"(--out {out})")
    raise exc


def _stage_progress(console):
    """A rich progress display with one bar per pipeline stage; returns (progress, callback)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("[bold]{task.description:<18}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console)
    tasks: dict[str, int] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=max(total, 1))
        progress.update(tasks[stage], completed=done, total=max(total, 1))

    return progress, update


def _fmt(values: dict, m: str) -> tuple[str, str]:
    v = values.get(m)
    if v is None:
        return "", ""
    if f"{m}_ci95_low" in values:
        return f"{v:.2f}", f"[{values[f'{m}_ci95_low']:.2f}, {values[f'{m}_ci95_high']:.2f}]"
    if f"{m}_std" in values:
        return f"{v:.4g}", f"± {values[f'{m}_std']:.2g}"
    return f"{v:.4g}", ""


def _summary_tables(results: dict):
    """Two narrow tables (fit 80 columns): overall metrics, then CLIP per category."""
    from rich.table import Table

    bench = results["benchmark"]["name"]
    res = results["results"]
    hib = next(iter(results["higher_is_better"].values()), {})
    overall = res.get(bench, {})
    title = f"{results['model_info']['name']} on {bench} ({overall.get('n', 0)} scored, "
    title += f"{overall.get('n_failed', 0)} failed)"
    top = Table(title=title)
    for col, justify in (("metric", "left"), ("value", "right"), ("95% CI / std", "right")):
        top.add_column(col, justify=justify)
    for m in hib:
        if m in overall:
            top.add_row(f"{m} {'↑' if hib[m] else '↓'}", *_fmt(overall, m))
    per_cat = Table(title="per category")
    for col in ("category", "n", "failed", "clip", "95% CI", "reference_clip"):
        per_cat.add_column(col, justify="left" if col == "category" else "right")
    for cat in results["benchmark"]["categories"]:
        v = res.get(f"{bench}/{cat}")
        if v is not None:
            per_cat.add_row(cat, str(v.get("n", 0)), str(v.get("n_failed", 0)), *_fmt(v, "clip"),
                            _fmt(v, "reference_clip")[0])
    return top, per_cat


def _report_outcome(console, results: dict, out: Path) -> int:
    for table in _summary_tables(results):
        console.print(table)
    if results["failures"]:
        console.print("failures: " + ", ".join(f"{k} × {v}" for k, v in results["failures"].items())
                      + f"  (details in {out / 'samples.jsonl'})")
    if not results["leaderboard_eligible"]:
        console.print("[yellow]not leaderboard-eligible:[/] " + "; ".join(results["ineligible_reasons"]))
    console.print(f"wrote {out / 'results.json'} and {out / 'samples.jsonl'}")
    overall = next(iter(results["results"].values()))
    if overall.get("n", 0) == 0:
        console.print("[red]every sample failed[/]: nothing could be scored. See the failure reasons above "
                      f"and each sample's failure_detail in {out / 'samples.jsonl'}.")
        return 1
    return 0


def register(app: typer.Typer) -> None:
    """Add ``evaluate``, ``merge`` and ``report`` to the root app."""

    @app.command("evaluate", help=EVALUATE_HELP)
    def evaluate_cmd(
        model: str = typer.Option(..., "--model", "-m", help="Adapter: primitives | oracle | folder:DIR | an "
                                  "installed plug-in name | pkg.module:Class | path/to/file.py:Class."),
        model_args: str = typer.Option("", "--model-args",
                                       help="Adapter keyword arguments: key=value,..."),
        benchmark: str = typer.Option("demo", "--benchmark", "-b",
                                      help="demo (built-in, offline) | mme3dr-v1 | toys4k-800 | a "
                                      "manifest path."),
        profile: str = typer.Option("paper", "--profile", "-p",
                                    help="paper (protocol v1) | smoke (tiny offline encoders) | "
                                    "ar3d-r1-script."),
        out: Path = typer.Option(..., "--out", "-o",
            help="Run directory (results.json, samples.jsonl, state)."),
        toys4k: Path | None = typer.Option(None, "--toys4k", help="Toys4K objects: toys4k_blend_files.zip, "
                                           "toys4k_obj_files.zip, a TRELLIS render folder or a mesh folder."),
        toys4k_kind: str | None = typer.Option(None, "--toys4k-kind",
                                               help="blend-zip | obj-zip | trellis | folder "
                                               "(default: guessed)."),
        captions: Path | None = typer.Option(None, "--captions", help="TRELLIS Toys4k.csv (prompts)."),
        limit: int | None = typer.Option(None, "--limit", min=1, help="Only the first N cases (marks the run "
                                         "not comparable / leaderboard-ineligible)."),
        samples_per_prompt: int = typer.Option(1, "--samples-per-prompt", min=1, max=MAX_SAMPLES,
                                                help="Assets per prompt."),
        categories: str = typer.Option("", "--categories",
            help="Comma-separated category ids (partial run)."),
        resume: bool = typer.Option(False, "--resume",
            help="Continue the run in --out, skipping finished work."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Discard an earlier run in --out."),
        workers: int = typer.Option(1, "--workers", min=1, max=MAX_WORKERS,
                                    help="Parallel workers for rendering."),
        num_shards: int = typer.Option(1, "--num-shards", min=1,
            help="Split the cases over K machines (then merge)."),
        shard_index: int = typer.Option(0, "--shard-index", min=0, help="Which shard this is, 0..K-1."),
        device: str = typer.Option("cpu", "--device", help="Torch device for the feature encoders."),
        timeout: float = typer.Option(600.0, "--timeout", min=0.0, help="Seconds per requested asset before "
                                      "the adapter call is abandoned (0 = no limit)."),
        cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Render cache (default OUT/cache); "
                                              "share it between runs to reuse reference renders."),
        render_size: int | None = typer.Option(None, "--render-size", min=MIN_SIZE, max=MAX_SIZE,
                                               help="Override the render size in px (quick checks; marks "
                                               "the run ineligible)."),
        weights_dir: Path | None = typer.Option(None, "--weights-dir", help="Local encoder weights."),
        backend: str | None = typer.Option(None, "--backend", help="Renderer backend: egl (the only one)."),
        report: bool = typer.Option(True, "--report/--no-report", help="Write the HTML report and plots."),
        judge: str | None = typer.Option(None, "--judge", help="Also ask this VLM judge server (URL …/v1) "
                                         "a checklist per sample; see `mme3dr judge --help`."),
        judge_model: str | None = typer.Option(None, "--judge-model", help="The judge server's model id."),
        judge_profile: str = typer.Option("openai", "--judge-profile", help="openai | transformers | vllm."),
        judge_concurrency: int = typer.Option(4, "--judge-concurrency", min=1, max=256,
                                              help="Judge requests in flight."),
        judge_timeout: float = typer.Option(300.0, "--judge-timeout", min=0.001,
                                            help="Seconds per judge request."),
        judge_retries: int = typer.Option(3, "--judge-retries", min=0, max=100,
                                          help="Judge retries on 5xx/timeouts."),
        allow_renderer_change: bool = typer.Option(
            False, "--allow-renderer-change", help="Resume even though this machine's renderer differs from "
            "the run's (everything is re-rendered; the results record the new renderer)."),
        prompt_source: str = typer.Option(
            "case", "--prompt-source", help="CLIP text: case (the prompt) | raw-captions-column (the "
            "authors' script's quirk: the CSV's unparsed captions list; --profile ar3d-r1-script only)."),
    ) -> None:
        from rich.console import Console

        from mme3dr.cli.judge import judge_config, run_judge

        if (judge is None) != (judge_model is None):
            raise typer.BadParameter("--judge and --judge-model go together")
        # checked before anything runs: an unusable --judge URL is one line, not a lost evaluation
        judging = judge_config(judge, judge_model, judge_profile, judge_concurrency, judge_timeout,
                               judge_retries) if judge else None
        from mme3dr.harness.evaluate import EvalConfig, evaluate
        from mme3dr.harness.inputs import BenchmarkInputError
        from mme3dr.harness.run_state import RunStateError
        from mme3dr.models.registry import ModelSpecError

        console = Console(stderr=True)
        if resume and overwrite:
            _error(console, "--resume continues the run in --out and --overwrite discards it; pass only one "
                   "of them")
        try:
            cfg = EvalConfig(
                model=model, out=out, model_args=model_args, benchmark=benchmark, profile=profile,
                toys4k=toys4k, toys4k_kind=toys4k_kind, captions=captions, limit=limit,
                samples_per_prompt=samples_per_prompt,
                categories=tuple(c.strip() for c in categories.split(",") if c.strip()),
                resume=resume, overwrite=overwrite, workers=workers, num_shards=num_shards,
                shard_index=shard_index, device=device, timeout=timeout or None, cache_dir=cache_dir,
                render_size=render_size, weights_dir=weights_dir, backend=backend,
                allow_renderer_change=allow_renderer_change, prompt_source=prompt_source.replace("-", "_"),
            )
            from mme3dr.render.pool import reuse_freed_memory

            reuse_freed_memory()  # this process encodes every render: see its docstring
            progress, update = _stage_progress(console)
            with progress:
                summary = evaluate(cfg, progress=update)
        except (BenchmarkInputError, ModelSpecError, RunStateError, ValueError, KeyError) as e:
            # str(KeyError) is the repr of its message (stray quotes): print the message itself.
            _error(console, e.args[0] if isinstance(e, KeyError) and e.args else str(e))
        except OSError as e:  # a missing weight (its message says where to put it) or a full disk
            _environment_error(console, e, out)
        if summary.shard_only:
            console.print(f"shard {shard_index} of {num_shards} done: {summary.n_ok} scored, "
                          f"{summary.n_failed} failed. When every shard is done: "
                          f"mme3dr merge SHARD_DIRS... --out DIR")
            return
        code = _report_outcome(console, summary.results, out)
        if judge and code == 0:  # after results.json exists: the judge adds its own metric to it
            code = run_judge(console, out, judging)
        if report and code == 0:
            _write_report(console, out)
        raise typer.Exit(code)

    @app.command("merge")
    def merge_cmd(
        shards: list[Path] = typer.Argument(..., help="Shard run directories (every --shard-index once)."),
        out: Path = typer.Option(..., "--out", "-o", help="Where to write the merged results."),
        report: bool = typer.Option(True, "--report/--no-report", help="Write the HTML report and plots."),
    ) -> None:
        """Combine `--num-shards` runs into one results.json, identical to a single run's."""
        from rich.console import Console

        from mme3dr.harness.merge import MergeError, finalize

        console = Console(stderr=True)
        try:
            results = finalize(shards, out)
        except MergeError as e:
            _error(console, str(e))
        except OSError as e:
            _environment_error(console, e, out)
        code = _report_outcome(console, results, out)
        if report and code == 0:
            _write_report(console, out, shard_dirs=shards)
        raise typer.Exit(code)

    @app.command("report")
    def report_cmd(
        run_dir: Path = typer.Argument(..., help="A run directory with results.json and samples.jsonl."),
    ) -> None:
        """Write per-category bar and radar charts (PNG) and an HTML report into RUN_DIR/report/."""
        from rich.console import Console

        console = Console(stderr=True)
        if not (run_dir / "results.json").is_file():
            _error(console, f"{run_dir / 'results.json'} not found; run `mme3dr evaluate --out {run_dir}` "
                   "first")
        _write_report(console, run_dir)


def _write_report(console, run_dir: Path, shard_dirs: list[Path] | None = None) -> None:
    from mme3dr.report import write_report

    index = write_report(run_dir, shard_dirs=shard_dirs)
    console.print(f"report: {index}")
