"""``leaderboard build --preview BUNDLE``: a submitter sees their row on the site before submitting.

The bundle is validated exactly as ``leaderboard add`` would (against the registry), then shown among the
registry's rows, ranked as it would rank, and marked PREVIEW on the index and on its page. A bundle that
validation would refuse (a smoke-profile run, a missing case, a bad hash) is still shown, labelled with
every reason it would be refused, so the preview answers "what would my row look like, and would it get
in?". Nothing is written to the registry. A bundle whose results cannot be read at all (an unsafe
archive, invalid ``results.json``) has no row to show: that is an error naming the problems.

Light module: standard library + pydantic (the site stays torch-free).
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from leaderboard.bundle import SAMPLES_NAME
from leaderboard.registry import RegistryError, case_scores_from, entry_slug, row_from_results, slugify
from leaderboard.rows import LeaderboardRow
from leaderboard.validate import validate_bundle

__all__ = ["PREVIEW_TIER", "preview_row"]

#: The tier label a preview row shows instead of self-reported / re-scored / reproduced.
PREVIEW_TIER = "preview"


def preview_row(bundle: Path, registry: Path, workdir: Path) -> LeaderboardRow:
    """The site row ``bundle`` would get, validated against ``registry``; thumbnails copied to ``workdir``.

    Raises:
        RegistryError: the bundle has no readable ``bundle.json`` and ``results.json`` (the message is
            validation's summary, which lists every problem).
    """
    report = validate_bundle(bundle, workdir=Path(workdir) / "bundle", registry=registry)
    if report.manifest is None or report.results is None:
        raise RegistryError(f"nothing to preview: {report.summary()}")
    sub = report.manifest.submitter
    thumbs = Path(workdir) / "thumbnails"
    thumbs.mkdir(parents=True, exist_ok=True)
    copied = []
    for case_id, rel in sorted(report.manifest.thumbnails.items()):
        src = report.extracted / rel
        if src.is_file():
            copied.append(str(shutil.copyfile(src, thumbs / f"{slugify(case_id)}.png")))
    return row_from_results(
        report.results, sub, slug=f"preview-{entry_slug(sub)}", tier=PREVIEW_TIER,
        generated_by=sub.evaluator, scored_by=sub.evaluator,
        date=dt.datetime.now(dt.timezone.utc).date().isoformat(), bundle_sha256=report.bundle_sha256,
        thumbnails=tuple(copied), case_scores=case_scores_from(report.extracted / SAMPLES_NAME),
        is_preview=True, preview_problems=tuple(str(p) for p in report.problems),
    )
