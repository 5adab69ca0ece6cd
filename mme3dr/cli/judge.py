"""CLI of the evaluation judge: ``mme3dr judge RUN_DIR``, and the ``--judge*`` options ``evaluate`` shares.

The judge is an OpenAI-compatible VLM server (vLLM, ``transformers serve``, a hosted API); see
docs/judge.md for the pinned configuration and how to serve it.
"""

from __future__ import annotations

from pathlib import Path

import typer

JUDGE_HELP = """Ask a VLM judge a checklist about every sample of a finished run (docs/judge.md).

Adds the `judge` metric (checklist pass rate, 0-100) per sample, per category and overall to \
RUN_DIR's results, and RUN_DIR/judge.jsonl. Replies are cached in RUN_DIR/cache/judge, so re-running \
asks only what is not answered yet. CLIP, KD and FD are not touched.

Example:

  mme3dr judge runs/demo --judge http://127.0.0.1:8000/v1 --judge-model Qwen/Qwen2.5-VL-7B-Instruct
"""


def judge_config(url: str, model: str, profile: str, concurrency: int, timeout: float, retries: int):
    """The :class:`~mme3dr.judge.JudgeConfig` of the ``--judge*`` flags; an unusable ``--judge`` URL is one
    ``error: --judge: ...`` line on stderr and exit 2 (typer.Exit), before anything runs."""
    from mme3dr.judge import JudgeConfig
    from mme3dr.judge.settings import url_problem

    problem = url_problem(url)
    if problem:
        typer.echo(f"error: --judge {problem}", err=True)
        raise typer.Exit(2)
    return JudgeConfig(base_url=url, model=model, profile=profile, concurrency=concurrency, timeout_s=timeout,
                       retries=retries)


def run_judge(console, run_dir: Path, config) -> int:
    """Judge ``run_dir`` and print a one-table summary; returns the exit code."""
    from rich.table import Table

    from mme3dr.harness.judging import JudgeRunError, NoJudgeAnswer, judge_run

    try:
        summary = judge_run(run_dir, config)
    except (JudgeRunError, ValueError, KeyError) as e:
        from rich.markup import escape

        message = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        console.print(f"[red]error:[/] {escape(str(message))}", soft_wrap=True, highlight=False)  # one line
        return 1 if isinstance(e, NoJudgeAnswer) else 2
    table = Table(title=f"judge {config.model} ({summary.n_scored} scored, {summary.n_failed} failed, "
                  f"{summary.n_cached} from cache)")
    for col in ("group", "judge ↑", "95% CI", "n", "failed"):
        table.add_column(col, justify="left" if col == "group" else "right")
    from mme3dr.judge.evaluation import summarise

    for group, row in summarise(summary.judgements).items():
        value = "" if row["judge"] is None else f"{row['judge']:.2f}"
        ci = "" if row["judge"] is None else f"[{row['judge_ci95_low']:.2f}, {row['judge_ci95_high']:.2f}]"
        table.add_row(group or "overall", value, ci, str(row["judge_n"]), str(row["judge_n_failed"]))
    console.print(table)
    reasons = sorted({j.failure.split(":")[0] for j in summary.judgements if j.failure})
    if reasons:
        console.print(f"judge failures ({', '.join(reasons)}): details in {run_dir / 'judge.jsonl'}")
    console.print(f"wrote the judge metric into {run_dir / 'results.json'} and {run_dir / 'samples.jsonl'}")
    return 0


def judge(
    run_dir: Path = typer.Argument(..., help="A finished run directory (results.json, samples.jsonl)."),
    judge: str = typer.Option(..., "--judge", help="The judge server's URL (…/v1)."),
    judge_model: str = typer.Option(..., "--judge-model", help="The model id the server serves."),
    judge_profile: str = typer.Option("openai", "--judge-profile",
                                      help="openai | transformers | vllm (which extra fields it takes)."),
    judge_concurrency: int = typer.Option(4, "--judge-concurrency", min=1, max=256,
                                          help="Requests in flight."),
    judge_timeout: float = typer.Option(300.0, "--judge-timeout", min=0.001, help="Seconds per request."),
    judge_retries: int = typer.Option(3, "--judge-retries", min=0, max=100,
                                      help="Retries on 5xx/timeouts/refusals."),
) -> None:
    from rich.console import Console

    config = judge_config(judge, judge_model, judge_profile, judge_concurrency, judge_timeout, judge_retries)
    raise typer.Exit(run_judge(Console(stderr=True), run_dir, config))


def register(app: typer.Typer) -> None:
    """Add ``judge`` to the root app."""
    app.command("judge", help=JUDGE_HELP)(judge)
