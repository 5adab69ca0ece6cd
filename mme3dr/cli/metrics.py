"""CLI commands for the metrics stage: ``mme3dr score`` and ``mme3dr weights download|list``.

Heavy imports (torch, open_clip, transformers) happen inside the command bodies so ``mme3dr --help``
stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

weights_app = typer.Typer(
    help="Model weights for the metric profiles: see what is present, or fetch what a profile needs.",
    no_args_is_help=True,
)

_PROFILE_HELP = "Metric profile: paper (protocol v1), smoke (tiny offline encoders), ar3d-r1-script."
_WEIGHTS_DIR_HELP = "Local weights directory (<dir>/<key>/<file>); default $MME3DR_WEIGHTS_DIR, then caches."


def _fail(message: str, code: int = 2) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def score(
    renders_dir: Path = typer.Argument(..., help="Generated renders: <id>/000.png … (TRELLIS layout)."),
    reference: Path = typer.Option(..., "--reference", "-r", help="Reference renders, same layout."),
    prompts: Path = typer.Option(
        ..., "--prompts", "-p",
        help="Prompts: .csv/.jsonl with id|case_id|sha256 + prompt [+ category], or .json {id: prompt}.",
    ),
    profile: str = typer.Option("paper", "--profile", help=_PROFILE_HELP),
    out: Path = typer.Option(Path("scores.json"), "--out", "-o", help="Where to write the JSON results."),
    weights_dir: Path | None = typer.Option(None, "--weights-dir", help=_WEIGHTS_DIR_HELP),
    device: str = typer.Option("cpu", "--device", help="torch device: cpu or cuda."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, max=4096, help="Images per encoder batch."),
    task: str = typer.Option("renders", "--task", help="Name of the overall row in the results block (e.g. "
                             "the benchmark's, to compare with a run's results.json)."),
) -> None:
    """Score already-rendered views against reference views: CLIP, KD and FD (per the profile).

    Every view is composited onto white first. The numbers come from the same scoring core as
    `mme3dr evaluate`: the JSON's `results` block has results.json's shape. Prints a table and writes
    JSON with the metric card.
    Example: `mme3dr score runs/x/renders --reference gt/renders --prompts eval_list.csv --profile smoke`.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from mme3dr.features import WeightsNotFoundError, get_profile
    from mme3dr.harness.score_renders import object_dirs, read_prompts, score_renders

    console = Console()
    try:
        get_profile(profile)
        prompt_map = read_prompts(prompts)
        for side in (renders_dir, reference):  # check the inputs before the (slow) encoders load
            object_dirs(side)
    except (KeyError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc).strip("'\""))
    from mme3dr.features import load_feature_suite

    try:
        with console.status(f"loading the {profile} encoders…"):
            suite = load_feature_suite(profile, device=device, weights_dir=weights_dir, batch_size=batch_size)
    except WeightsNotFoundError as exc:
        _fail(str(exc))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        bar_task = bar.add_task("encoding views", total=None)

        def report(side: str, done: int, total: int) -> None:
            bar.update(bar_task, completed=done, total=total, description=f"encoding {side} views")

        try:
            result = score_renders(renders_dir, reference, prompt_map, suite, progress=report, task=task)
        except (FileNotFoundError, ValueError) as exc:
            _fail(str(exc))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, sort_keys=False) + "\n", encoding="utf-8")

    n = result["n_assets"]
    if result["note"]:
        console.print(f"[bold yellow]{result['note']}[/]", soft_wrap=True)
    table = Table(title=f"mme3dr score · profile {result['profile']} · {n} object{'' if n == 1 else 's'}")
    for col in ("metric", "value", "± / 95% CI", "better"):
        table.add_column(col)
    overall = result["results"][task]
    for name, higher in result["higher_is_better"].items():
        if overall.get(name) is None:
            continue
        spread = f"± {overall[name + '_std']:.4g}" if name + "_std" in overall else (
            f"[{overall[name + '_ci95_low']:.3g}, {overall[name + '_ci95_high']:.3g}]"
            if name + "_ci95_low" in overall else "")
        table.add_row(name, f"{overall[name]:.4g}", spread, "↑" if higher else "↓")
    console.print(table)
    if not result["leaderboard_eligible"]:
        console.print(f"[yellow]profile {result['profile']!r} results are not leaderboard-eligible[/]")
    if result["failures"]:
        console.print(f"[yellow]{len(result['failures'])} object(s) skipped; reasons are in {out}[/]")
    console.print(f"wrote {out}")


@weights_app.command("list")
def weights_list(
    profile: str = typer.Option("all", "--profile", help="Only this profile's weights (or 'all')."),
    weights_dir: Path | None = typer.Option(None, "--weights-dir", help=_WEIGHTS_DIR_HELP),
) -> None:
    """Show which model weights are present, where they were found, and where missing ones go."""
    from rich.console import Console
    from rich.table import Table

    from mme3dr.features.weights import CATALOGUE, weights_status

    keys = _profile_keys(profile) if profile != "all" else list(CATALOGUE)
    table = Table(title="model weights")
    for col in ("key", "model", "present", "source", "directory", "files"):
        table.add_column(col, overflow="fold")
    for row in weights_status(keys, weights_dir):
        table.add_row(
            row["key"], row["model_id"], "yes" if row["present"] else "[red]no[/]", row["source"] or "",
            row["directory"], ", ".join(row["files"]),
        )
    Console().print(table)


@weights_app.command("download")
def weights_download(
    profile: str = typer.Option("paper", "--profile", help="Fetch every weight this profile needs."),
    weights_dir: Path | None = typer.Option(None, "--weights-dir", help=_WEIGHTS_DIR_HELP),
) -> None:
    """Fetch the weights a profile needs (into --weights-dir if given, else the HF cache / default dir)."""
    from rich.console import Console

    from mme3dr.features.weights import WeightsNotFoundError, resolve_weights

    console = Console()
    failed = 0
    for key in _profile_keys(profile):
        try:
            with console.status(f"{key}…"):
                res = resolve_weights(key, weights_dir, download=True)
            console.print(f"[green]✓[/] {key}: {res.directory} ({res.source})")
        except WeightsNotFoundError as exc:
            failed += 1
            console.print(f"[red]✗[/] {exc}", soft_wrap=True)
    if failed:
        raise typer.Exit(1)


def _profile_keys(profile: str) -> list[str]:
    from mme3dr.features import get_profile

    try:
        prof = get_profile(profile)
    except KeyError as exc:
        _fail(str(exc).strip("'\""))
    keys = [k for k in (prof.clip, prof.inception, prof.dinov2) if k]
    if any(k.startswith("smoke-") for k in keys):
        _fail(f"profile {profile!r} builds its encoders from configs and needs no weights")
    return keys


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""
    app.command("score")(score)
    app.add_typer(weights_app, name="weights")
