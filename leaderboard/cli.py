"""`leaderboard` command line (also mounted as `mme3dr leaderboard`).

validate BUNDLE → verify BUNDLE --tier … → add BUNDLE → build --out SITE. Every command imports its
work inside the body, so `leaderboard --help` stays fast; only `verify --tier re-scored` loads the
renderer and the feature extractors.
"""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    name="leaderboard",
    help="Validate, verify and publish MME-3DR submissions (see docs/leaderboard.md).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

_REGISTRY_HELP = "Submissions registry: submissions/<benchmark>/<model>__<revision>/ folders."


def _default_registry() -> Path:
    from leaderboard.registry import DEFAULT_REGISTRY

    return DEFAULT_REGISTRY


def _fail(message: str, code: int = 1) -> None:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _existing_registry(registry: Path | None) -> Path:
    """The registry to read; a folder that does not exist is unusable input (exit 2), not an empty board."""
    path = registry or _default_registry()
    if not path.is_dir():
        _fail(f"{path}: no such registry folder; pass --registry the folder that `leaderboard add` "
              "filled (or omit it for the package's own)", code=2)
    return path


@app.callback()
def _root() -> None:
    """MME-3DR leaderboard tools."""


@app.command()
def validate(
    bundle: Path = typer.Argument(..., help="Submission bundle (.tar.gz) made by `mme3dr submit`."),
    registry: Path | None = typer.Option(
        None, help=_REGISTRY_HELP + " When given, also refuse an asset set already submitted there."
    ),
) -> None:
    """Check a bundle without adding it: archive safety, hashes, schema, eligibility, seeds, cases."""
    from leaderboard.bundle import BundleError
    from leaderboard.validate import validate_bundle

    if registry is not None:
        registry = _existing_registry(registry)
    try:
        report = validate_bundle(bundle, registry=registry)
    except BundleError as exc:
        _fail(str(exc))
    if not report.ok:
        _fail(report.summary())
    typer.secho(report.summary(), fg=typer.colors.GREEN)


@app.command()
def verify(
    bundle: Path = typer.Argument(..., help="Submission bundle (.tar.gz)."),
    tier: str = typer.Option("re-scored", help="'re-scored' (re-render and re-score the submitted assets) or "
                                               "'reproduced' (compare with your own regenerated run)."),
    verifier: str = typer.Option(..., help="Who verifies (person or lab); shown on the site."),
    out: Path = typer.Option(..., help="Where to write the verification record (JSON) for `add`."),
    reference: Path | None = typer.Option(
        None, "--toys4k", help="re-scored: Toys4K source of the reference objects (as for `mme3dr evaluate`)."
    ),
    captions: Path | None = typer.Option(None, help="re-scored: TRELLIS Toys4k.csv captions."),
    regenerated: Path | None = typer.Option(
        None, help="reproduced: the verifier's own `mme3dr evaluate --out` folder for the same model."
    ),
    cache_dir: Path | None = typer.Option(None, help="Render/feature cache for re-scoring."),
    weights_dir: Path | None = typer.Option(None, help="Local weights directory (see `mme3dr weights`)."),
    device: str = typer.Option("cpu", help="Torch device for the feature extractors."),
    date: str | None = typer.Option(None, help="Date to record (YYYY-MM-DD; default: today, UTC)."),
) -> None:
    """Verify a bundle beyond validation and write a verification record."""
    import json

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from leaderboard.verify import VerificationError, verify_bundle

    bars = Progress(TextColumn("[bold]{task.description:<18}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn())
    stages: dict[str, int] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage not in stages:
            stages[stage] = bars.add_task(stage, total=max(total, 1))
        bars.update(stages[stage], completed=done, total=max(total, 1))

    try:
        with bars:
            record = verify_bundle(bundle, tier=tier, verifier=verifier, reference=reference,
                                   captions=captions, regenerated=regenerated, cache_dir=cache_dir,
                                   weights_dir=weights_dir, device=device, date=date, progress=progress)
    except VerificationError as exc:
        _fail(str(exc))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record.model_dump(mode="json"), indent=2, sort_keys=True) + "\n")
    if not record.passed:
        problems = "\n  - ".join(record.problems)
        _fail(f"verification FAILED ({tier}); record written to {out}:\n  - {problems}")
    typer.secho(f"verification passed ({tier}); record written to {out}", fg=typer.colors.GREEN)


@app.command()
def add(
    bundle: Path = typer.Argument(..., help="Submission bundle (.tar.gz)."),
    registry: Path | None = typer.Option(None, help=_REGISTRY_HELP + " Default: the package's own."),
    verification: Path | None = typer.Option(
        None, help="Verification record from `leaderboard verify` (default: tier self-reported)."
    ),
    date: str | None = typer.Option(None, help="Date the submission is accepted (default: today, UTC)."),
    replace: bool = typer.Option(False, help="Replace an existing entry of the same model and revision."),
) -> None:
    """Validate a bundle again and file it in the registry."""
    from leaderboard.admission import add_bundle, admission_warnings
    from leaderboard.bundle import BundleError
    from leaderboard.entry import Verification
    from leaderboard.registry import RegistryError

    record = None
    if verification is not None:
        from leaderboard.json_input import strict_loads

        try:
            raw = verification.read_bytes()
            strict_loads(raw, str(verification))
            record = Verification.model_validate_json(raw)
        except (OSError, ValueError) as exc:
            _fail(f"{verification}: not a verification record ({exc}); make one with `leaderboard verify`")
    try:
        folder = add_bundle(bundle, registry or _default_registry(), verification=record, date=date,
                            replace=replace)
    except (RegistryError, BundleError) as exc:
        _fail(str(exc))
    typer.secho(f"added: {folder}", fg=typer.colors.GREEN)
    for warning in admission_warnings(registry or _default_registry(), folder):
        typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)


@app.command()
def build(
    out: Path = typer.Option(..., help="Output folder for the static site (replaced)."),
    registry: Path | None = typer.Option(None, help=_REGISTRY_HELP + " Default: the package's own."),
    paper_rows: bool = typer.Option(
        True, help="Show the paper's Table 4 as separate 'reported in paper, not verified' tables."
    ),
    preview: Path | None = typer.Option(
        None, "--preview", help="A submission bundle to show among the entries, marked PREVIEW (with every "
        "reason validation would refuse it, if any); the registry is not changed."),
) -> None:
    """Build the static site: index, submission pages, leaderboard.json/.csv, JSON Schemas.

    With --preview BUNDLE, a submitter sees the row their bundle would get before sending it.
    """
    from leaderboard.bundle import BundleError
    from leaderboard.registry import RegistryError
    from leaderboard.site import build_from_registry

    try:
        written = build_from_registry(_existing_registry(registry), out, include_paper=paper_rows,
                                      preview=preview)
    except (RegistryError, BundleError, ValueError) as exc:
        _fail(str(exc))
    kind = "a PREVIEW site" if preview is not None else f"{len(written)} files"
    typer.secho(f"built {kind} into {out} (open {out / 'index.html'})", fg=typer.colors.GREEN)


def main() -> None:
    app()
