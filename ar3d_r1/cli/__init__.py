"""The ``ar3d-r1`` command line (typer + rich): one section per command group.

Heavy imports (torch, transformers) happen inside the command bodies so that ``ar3d-r1 --help`` is fast.
Groups: ``vqvae`` (fit the 3D VQVAE on procedural shapes); ``sft`` and ``train`` come from
:mod:`ar3d_r1.cli.train`.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer(
    name="ar3d-r1",
    help="AR3D-R1: the Hi-GRPO reference trainer and its policy (ShapeLLM-Omni + the 3D VQVAE).",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)

def out_dir_problem(out: Path) -> str | None:
    """Why ``out`` cannot become (or be written as) a folder, or None: it is a file, a file is on its
    path, or the folder (or the nearest existing one above it) is not writable."""
    import os

    here = Path(os.path.abspath(out))
    if here.exists() and not here.is_dir():
        return f"{out} is a file, not a folder"
    for parent in here.parents:
        if parent.exists():
            if not parent.is_dir():
                return f"{parent} is a file, so {out} cannot be a folder under it"
            break
    existing = here if here.is_dir() else next(p for p in here.parents if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


# --- ar3d-r1 vqvae ---------------------------------------------------------------------------------
vqvae_app = typer.Typer(help="The 3D VQVAE: fit a small one on procedural shapes.", no_args_is_help=True)
app.add_typer(vqvae_app, name="vqvae")


@vqvae_app.command("fit")
def vqvae_fit(
    out: Path = typer.Option(Path("runs/vqvae-tiny"), "--out", "-o",
                             help="Folder for 3DVQVAE.bin, vqvae_config.json and fit_log.json."),
    preset: str = typer.Option("tiny-cpu", "--preset", help="tiny-cpu (the CPU reference) or smoke."),
    steps: int | None = typer.Option(None, "--steps", help="Optimiser steps (default: the preset's)."),
    max_seconds: float | None = typer.Option(None, "--max-seconds", help="Training time budget (s)."),
    seed: int | None = typer.Option(None, "--seed", help="Data and initialisation seed."),
    target_iou: float | None = typer.Option(None, "--target-iou", help="Stop at this held-out IoU."),
    threads: int | None = typer.Option(None, "--threads", help="torch threads (default: the preset's, 1 for "
                                       "tiny-cpu so that its weights do not depend on the machine; 0: as "
                                       "many as cores are free, the cores less the load average; it says "
                                       "which it chose)."),
) -> None:
    """Fit a VQVAE of the ShapeLLM-Omni class on voxelised primitives and their compositions.

    Logs held-out reconstruction IoU and codebook use (at the first step, then every 100 steps or 60 s);
    saves the weights in the authors' state-dict layout (OUT/3DVQVAE.bin), loadable with
    `--model-args vqvae=OUT`. The bar counts whichever ends the run first: the steps or the time budget.
    Ctrl-C stops the fit and saves the weights so far (usable like a finished fit's).
    """
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ar3d_r1.policy.fit import FitConfig, fit_vqvae, pick_threads, usability_warning

    console = Console(stderr=True)
    overrides = {k: v for k, v in dict(steps=steps, max_seconds=max_seconds, seed=seed,
                                       target_iou=target_iou, threads=threads).items() if v is not None}
    try:
        config = FitConfig.preset(preset, **overrides)
    except ValueError as exc:  # an unknown preset, or "<field> must be ..." for a flag's value
        field = str(exc).split(" ", 1)[0]
        flag = f"--{field.replace('_', '-')}" if field in overrides else "--preset"
        typer.echo(f"error: {flag}: {exc}", err=True)  # one line, as the other commands
        raise typer.Exit(2) from None
    problem = out_dir_problem(out)
    if problem:  # checked before training, so that no fit is lost at the save
        typer.echo(f"error: --out: {problem}", err=True)
        raise typer.Exit(2)
    console.print(f"vqvae fit: {pick_threads(config.threads)[1]}", soft_wrap=True, highlight=False)
    state = {"iou": float("nan"), "used": float("nan"), "where": "starting"}
    columns = (TextColumn("[bold]vqvae fit"), BarColumn(), TextColumn("{task.fields[where]}"),
               TextColumn("loss {task.fields[loss]:.4f}  val IoU {task.fields[iou]:.3f}  "
                          "codes {task.fields[used]:.0%}"),
               TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("fit", total=1.0, loss=float("nan"), **state)

        def progress(record: dict[str, float]) -> None:
            if "val_iou" in record:
                state.update(iou=record["val_iou"], used=record["codes_used"])
                bar.console.log(f"step {int(record['step'])}: val IoU {record['val_iou']:.4f}, codes used "
                                f"{record['codes_used']:.1%}, perplexity {record['perplexity']:.1f}")
            by_steps, by_time = record["step"] / config.steps, record["seconds"] / config.max_seconds
            state["where"] = (f"step {int(record['step'])}/{config.steps}" if by_steps >= by_time else
                              f"{record['seconds']:.0f}/{config.max_seconds:.0f} s budget, step "
                              f"{int(record['step'])}")
            bar.update(task, completed=min(1.0, max(by_steps, by_time)), loss=record["loss"], **state)

        result = fit_vqvae(config, out, progress=progress)
    log = {"config": config.to_dict(), "result": result.summary(), "history": result.history}
    (out / "fit_log.json").write_text(json.dumps(log, indent=1) + "\n", encoding="utf-8")
    if result.interrupted:
        console.print(f"interrupted at step {result.steps} ({result.seconds:.0f} s): the weights so far are "
                      f"saved in {out} (held-out IoU {result.val_iou:.4f} at the last evaluation); "
                      f"`--vqvae {out}` uses them, a new fit starts over", soft_wrap=True, highlight=False)
        raise typer.Exit(130)
    console.print(f"held-out IoU {result.val_iou:.4f}, codes used {result.codes_used:.1%}, "
                  f"{result.steps} steps in {result.seconds:.0f} s -> {result.weights}")
    warning = usability_warning(result)
    if warning:
        console.print(warning, soft_wrap=True, highlight=False, style="yellow")


# --- ar3d-r1 sft / train (ar3d_r1/cli/train.py) -----------------------------------------------------
def _register_training() -> None:
    from ar3d_r1.cli.train import register

    register(app)


_register_training()


def main() -> None:
    app()
