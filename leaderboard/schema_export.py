"""The published JSON Schemas of a submission bundle's ``bundle.json`` and of a registry ``entry.json``
(``leaderboard/schemas/``, and a copy on the static site).

Light module: pydantic only.
"""

from __future__ import annotations

import json
from pathlib import Path

from leaderboard.bundle import BUNDLE_FORMAT, BundleManifest
from leaderboard.entry import Entry


def export_bundle_schemas(out_dir: str | Path) -> list[Path]:
    """Write the published JSON Schemas of ``bundle.json`` and of a registry ``entry.json``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in (("bundle", BundleManifest), ("entry", Entry)):
        schema = model.model_json_schema(mode="validation")
        schema["$id"] = f"urn:mme3dr:schema:{name}:{BUNDLE_FORMAT}"
        path = out / f"{name}.schema.json"
        text = json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":  # python -m leaderboard.schema_export leaderboard/schemas
    import sys

    for written in export_bundle_schemas(sys.argv[1] if len(sys.argv) > 1 else "leaderboard/schemas"):
        print(written)
