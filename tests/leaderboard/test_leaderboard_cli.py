"""The `leaderboard` and `mme3dr submit` commands, and the light-import guarantee."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bundle_factory import make_run
from typer.testing import CliRunner

from leaderboard.cli import app as leaderboard_app
from leaderboard.schema_export import export_bundle_schemas
from mme3dr.cli import app as mme3dr_app

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_validating_a_bundle_imports_no_torch_and_no_renderer(good_bundle: Path) -> None:
    code = (
        "import sys\n"
        "import leaderboard.cli, leaderboard.site, leaderboard.verify, leaderboard.registry\n"
        "from leaderboard.validate import validate_bundle\n"
        f"report = validate_bundle({str(good_bundle)!r})\n"
        "assert report.ok, report.summary()\n"
        "print(sorted(m for m in ('torch', 'torchvision', 'open_clip', 'transformers', 'pyrender', 'OpenGL')"
        " if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_submit_packs_and_validates_a_run(run_template: Path, tmp_path: Path) -> None:
    out = tmp_path / "sub.tar.gz"
    result = runner.invoke(mme3dr_app, [
        "submit", str(run_template), "--out", str(out), "--evaluator", "CLI Lab",
        "--relationship", "third-party", "--contact", "cli@example.org", "--model-name", "CLI Model",
        "--no-assets",
    ])
    assert result.exit_code == 0, result.output
    assert out.is_file() and "sha256" in result.stdout


def test_submit_refuses_an_ineligible_run_and_writes_nothing(tmp_path: Path) -> None:
    run = make_run(tmp_path / "smoke", profile="smoke", seed=5, with_renders=False)
    out = tmp_path / "smoke.tar.gz"
    result = runner.invoke(mme3dr_app, [
        "submit", str(run), "--out", str(out), "--evaluator", "x", "--relationship", "first-party",
        "--contact", "x@example.org", "--no-assets",
    ])
    assert result.exit_code == 1
    assert "never leaderboard-eligible" in result.output and not out.exists()
    # what to do is named: the eligible profile, and how to see the refused bundle anyway
    assert "re-run mme3dr evaluate with --profile paper" in result.output
    assert "pass --keep-invalid to keep the bundle and see it with every reason: leaderboard build " \
           "--preview BUNDLE" in " ".join(result.output.split())
    assert result.output.count("never leaderboard-eligible") == 1  # one reason, said once


def test_submit_never_overwrites_an_existing_file(run_template: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    out.write_text("precious")
    result = runner.invoke(mme3dr_app, [
        "submit", str(run_template), "--out", str(out), "--evaluator", "x", "--relationship", "first-party",
        "--contact", "x@example.org",
    ])
    assert result.exit_code == 1 and "--overwrite" in result.output
    assert out.read_text() == "precious"


def test_submit_rejects_bad_metadata_with_a_clear_message(run_template: Path, tmp_path: Path) -> None:
    result = runner.invoke(mme3dr_app, [
        "submit", str(run_template), "--out", str(tmp_path / "x.tar.gz"), "--evaluator", "x",
        "--relationship", "friend", "--contact", "x@example.org",
    ])
    assert result.exit_code == 2 and "evaluator_relationship" in result.output
    result = runner.invoke(mme3dr_app, [
        "submit", str(run_template), "--out", str(tmp_path / "y.tar.gz"), "--evaluator", "x",
        "--relationship", "first-party", "--contact", "not an email",
    ])
    assert result.exit_code == 2 and "contact must be an e-mail address" in " ".join(result.output.split())
    assert not (tmp_path / "y.tar.gz").exists()


def test_validate_add_build_round_trip(good_bundle: Path, tmp_path: Path) -> None:
    result = runner.invoke(leaderboard_app, ["validate", str(good_bundle)])
    assert result.exit_code == 0 and "valid" in result.output
    registry = tmp_path / "registry"
    result = runner.invoke(leaderboard_app, ["add", str(good_bundle), "--registry", str(registry),
                                             "--date", "2026-11-24"])
    assert result.exit_code == 0, result.output
    site = tmp_path / "site"
    result = runner.invoke(leaderboard_app, ["build", "--out", str(site), "--registry", str(registry)])
    assert result.exit_code == 0, result.output
    data = json.loads((site / "leaderboard.json").read_text())
    assert data["benchmarks"]["mme3dr-v1"]["submissions"][0]["date"] == "2026-11-24"


def test_validate_exits_nonzero_with_the_reasons(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a bundle")
    result = runner.invoke(leaderboard_app, ["validate", str(junk)])
    assert result.exit_code == 1 and "not a readable tar archive" in result.output
    result = runner.invoke(leaderboard_app, ["validate", str(tmp_path / "missing.tar.gz")])
    assert result.exit_code == 1 and "no such bundle" in result.output


def test_published_bundle_schemas_are_current(tmp_path: Path) -> None:
    for path in export_bundle_schemas(tmp_path):
        published = REPO / "leaderboard" / "schemas" / path.name
        assert published.read_text() == path.read_text(), (
            f"{published} is stale: run `python -m leaderboard.schema_export leaderboard/schemas`"
        )


def test_verified_row_shows_tier_and_who_generated_and_scored(good_bundle: Path, run_template: Path,
                                                              tmp_path: Path) -> None:
    record = tmp_path / "verification.json"
    result = runner.invoke(leaderboard_app, [
        "verify", str(good_bundle), "--tier", "reproduced", "--verifier", "Repro Lab", "--out", str(record),
        "--regenerated", str(run_template), "--date", "2026-11-24",
    ])
    assert result.exit_code == 0, result.output
    assert json.loads(record.read_text())["passed"] is True
    registry, site = tmp_path / "registry", tmp_path / "site"
    result = runner.invoke(leaderboard_app, ["add", str(good_bundle), "--registry", str(registry),
                                             "--verification", str(record), "--date", "2026-11-24"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(leaderboard_app, ["build", "--out", str(site), "--registry", str(registry)])
    assert result.exit_code == 0, result.output
    row = json.loads((site / "leaderboard.json").read_text())["benchmarks"]["mme3dr-v1"]["submissions"][0]
    assert (row["tier"], row["generated_by"], row["scored_by"]) == ("reproduced", "Repro Lab", "Repro Lab")
    assert "tier-reproduced" in (site / "index.html").read_text()


def test_submit_prints_the_check_tags_of_every_problem(tmp_path: Path) -> None:
    run = make_run(tmp_path / "smoke", profile="smoke", seed=5, with_renders=False)
    result = runner.invoke(mme3dr_app, [
        "submit", str(run), "--out", str(tmp_path / "s.tar.gz"), "--evaluator", "x",
        "--relationship", "first-party", "--contact", "x@example.org", "--no-assets",
    ])
    assert result.exit_code == 1
    problems = [line for line in result.output.splitlines() if line.startswith("  - ")]
    assert problems and all(line.startswith("  - [") for line in problems), result.output
    assert "  - [eligibility] profile 'smoke' is never leaderboard-eligible" in result.output


def test_build_and_validate_refuse_a_registry_that_does_not_exist(good_bundle: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent"
    for args in (["build", "--out", str(tmp_path / "site"), "--registry", str(missing)],
                 ["validate", str(good_bundle), "--registry", str(missing)]):
        result = runner.invoke(leaderboard_app, args)
        assert result.exit_code == 2, result.output
        assert f"{missing}: no such registry folder" in result.output
        assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not (tmp_path / "site").exists()
