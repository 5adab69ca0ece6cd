"""Synthetic evaluation runs and bundles for the leaderboard tests (imported by the tests and conftest).

``make_run`` writes what ``mme3dr evaluate --out RUN_DIR`` leaves behind, through the real schema
(``mme3dr.results``), the real seed derivation and manifest, the real asset store and the real CLIP
aggregation, but with made-up per-asset scores and tiny OBJ meshes (no encoders needed to validate a
bundle). ``tamper`` edits an extracted bundle the way an attacker would, optionally re-hashing
everything it can. A module of its own (not conftest.py) so that ``from bundle_factory import ...``
can never pick up another directory's conftest.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import tarfile
from pathlib import Path

from PIL import Image

from leaderboard.bundle import Submitter, sha256_file
from leaderboard.content_checks import load_benchmark_manifest
from mme3dr import PROTOCOL_VERSION
from mme3dr import results as R
from mme3dr.assets.store import AssetStore
from mme3dr.features.profiles import get_profile
from mme3dr.features.weights import CATALOGUE
from mme3dr.metrics.clip_score import aggregate_clip_scores
from mme3dr.models.protocol import derive_seed
from mme3dr.render.cameras import eval24

FAKE_SHA = "ab" * 32


def tetra_obj(offset: float) -> bytes:
    """A small tetrahedron whose bytes differ per ``offset`` (one distinct asset per case)."""
    v = [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1)]
    lines = [f"v {x + offset:.6f} {y:.6f} {z:.6f}" for x, y, z in v]
    lines += ["f 1 3 2", "f 1 2 4", "f 1 4 3", "f 2 3 4"]
    return ("\n".join(lines) + "\n").encode()


#: The renderer every synthetic run records (and its metric card repeats).
RENDERER = {"backend": "osmesa", "versions": {"pyrender": "0.1.45"}, "rig": "eval24",
            "rig_hash": eval24().hash, "width": 512, "height": 512, "n_views": 24, "shading": "protocol"}


def metric_card(profile: str, *, claimed: str | None = None) -> dict:
    """A full card as a run makes it (``mme3dr.harness.scoring.metric_card``) for ``profile``'s encoders;
    ``claimed`` forges the card's own ``profile``/``leaderboard_eligible`` entries as a careful forger
    would."""
    from mme3dr.harness.scoring import metric_card as make_card
    from mme3dr.metrics import get_metric

    p = get_profile(profile)
    encoders = {}
    for role in ("clip", "inception", "dinov2"):
        key = getattr(p, role)
        spec = CATALOGUE.get(key)
        # Smoke encoders call themselves "smoke:<arch>/seed0" (mme3dr.features.smoke).
        model_id = spec.model_id if spec else f"smoke:tiny-{role}/seed0"
        encoders[role] = {"model_id": model_id, "weights_sha256": FAKE_SHA, "input_size": 224,
                          "resize": "PIL bicubic", "normalise": "x / 255"}
    shown = get_profile(claimed or profile)
    suite_card = {"profile": shown.name, "leaderboard_eligible": shown.leaderboard_eligible,
                  "prompt_rule": p.prompt_rule, "render_size": p.render_size, "shading": p.shading,
                  "background": p.background, "encoders": encoders,
                  "metrics": {m: get_metric(m).facts() for m in p.metrics}}
    return make_card(suite_card, eval24(), RENDERER).model_dump(mode="json")


def make_run(root: Path, *, profile: str = "paper", benchmark: str = "mme3dr-v1", with_renders: bool = True,
             card_profile: str | None = None, card_claims: str | None = None, seed: int = 0,
             clip_shift: float = 0.0) -> Path:
    """Write a complete synthetic run directory (results.json, samples.jsonl, assets/, renders/)."""
    root.mkdir(parents=True)
    store = AssetStore(root / "assets")
    scratch = root / "adapter_out"
    manifest = load_benchmark_manifest(benchmark)
    rng = random.Random(seed)
    samples: list[R.SampleRecord] = []
    failures = {2: "corrupt_file", 7: "adapter_error"}
    for i, case in enumerate(manifest.cases):
        prompt = case.prompt or f"a toy {case.toys4k_category} (case {case.case_id})"
        rec = dict(case_id=case.case_id, category=case.category, sample_index=0,
                   seed=derive_seed(manifest.name, case.case_id, 0), prompt=prompt,
                   prompt_sha256=hashlib.sha256(prompt.encode()).hexdigest(), seconds=rng.random())
        if i in failures:
            rec.update(status="failed", failure=failures[i], failure_detail="synthetic failure")
        else:
            # As the harness does: the adapter writes a file, the content-addressed store keeps it.
            (scratch / case.case_id).mkdir(parents=True)
            (scratch / case.case_id / "mesh.obj").write_bytes(tetra_obj(i / 1000 + seed))
            stored = store.put(scratch / case.case_id / "mesh.obj")
            sha = stored.sha256
            rec.update(status="ok", asset_sha256=sha, asset_format="obj",
                       metrics={"clip": round(rng.uniform(15.0, 30.0) + clip_shift, 6)})
            if with_renders:  # a render-cache entry (mme3dr.render.cache layout) with one tiny view
                key = hashlib.sha256(f"{sha}-eval24".encode()).hexdigest()
                view_dir = root / "cache" / "renders" / key[:2] / key
                view_dir.mkdir(parents=True)
                shade = (37 * i) % 200
                Image.new("RGBA", (32, 32), (shade, 120, 255 - shade, 255)).save(view_dir / "000.png")
                (view_dir / "render.json").write_text(json.dumps({"asset_sha256": sha, "rig": "eval24"}))
        samples.append(R.SampleRecord(**rec))
    shutil.rmtree(scratch)
    samples_sha = R.write_samples(samples, root / "samples.jsonl")
    ok = [s for s in samples if s.status == "ok"]
    agg = aggregate_clip_scores([s.metrics["clip"] for s in ok], [s.category for s in ok])
    overall = {"clip": agg["mean"], "clip_ci95_low": agg["ci95"][0], "clip_ci95_high": agg["ci95"][1],
               "n": agg["n"], "n_failed": len(failures), "kd_incep": 0.25 + seed / 100, "kd_incep_std": 0.01,
               "kd_dinov2": 3.1, "kd_dinov2_std": 0.2, "fd_incep": 30.5, "fd_dinov2": 120.0}
    tasks = {benchmark: overall}
    for cat, a in agg["per_category"].items():
        tasks[f"{benchmark}/{cat}"] = {"clip": a["mean"], "clip_ci95_low": a["ci95"][0],
                                       "clip_ci95_high": a["ci95"][1], "n": a["n"]}
    hib = {"clip": True, "kd_incep": False, "kd_dinov2": False, "fd_incep": False, "fd_dinov2": False}
    eligible = get_profile(profile).leaderboard_eligible and benchmark in ("mme3dr-v1", "toys4k-800")
    res = R.Results.model_validate({
        "results": tasks,
        "configs": {benchmark: {"profile": profile}},
        "versions": {benchmark: PROTOCOL_VERSION},
        "n-samples": {benchmark: {"original": len(manifest), "effective": len(manifest)}},
        "higher_is_better": {t: hib for t in tasks},
        "config": {"model": "folder", "limit": None},
        "git_hash": None,
        "date": "2026-11-24T12:00:00Z",
        "environment": {"python": "3.11"},
        "mme3dr_version": "0.1.0",
        "protocol_version": PROTOCOL_VERSION,
        "profile": profile,
        "model_info": {"name": "synthetic-tetra", "revision": "r1"},
        "adapter": {"spec": "folder", "kind": "builtin", "target": "mme3dr.models.folder:FolderModel"},
        "benchmark": {"name": manifest.name, "version": manifest.version, "manifest_sha256": manifest.sha256,
                      "seed_namespace": manifest.name, "n_cases": len(manifest),
                      "categories": sorted({c.category for c in manifest.cases})},
        "rig_hash": eval24().hash,
        "renderer": RENDERER,
        "metric_card": metric_card(card_profile or profile, claimed=card_claims),
        "leaderboard_eligible": eligible,
        "ineligible_reasons": [] if eligible else [f"profile {profile} / benchmark {benchmark}"],
        "failures": {"corrupt_file": 1, "adapter_error": 1},
        "samples_sha256": samples_sha,
    })
    R.dump_results(res, root / "results.json")
    return root


def submitter(**overrides) -> Submitter:
    base = dict(model_name="Synthetic Tetra", revision="r1", evaluator="Test Lab",
                evaluator_relationship="first-party",
                contact="lab@example.org", licence="MIT", link="https://example.org/tetra",
                description="Tetrahedra for every prompt.")
    base.update(overrides)
    return Submitter(**base)


def extract_plain(bundle: Path, dest: Path) -> Path:
    with tarfile.open(bundle) as tar:
        tar.extractall(dest, filter="data")
    return dest


def repack(src: Path, out: Path, *, rehash: bool = True) -> Path:
    """Tar ``src`` back up; with ``rehash`` also fix samples_sha256 and every hash in bundle.json, as an
    attacker who read the format would."""
    if rehash:
        results = json.loads((src / "results.json").read_text())
        stable = "".join(
            json.dumps(R.strip_volatile(json.loads(line), R.VOLATILE_SAMPLE_KEYS), sort_keys=True,
                       ensure_ascii=False, separators=(",", ":")) + "\n"
            for line in (src / "samples.jsonl").read_text().splitlines() if line.strip())
        results["samples_sha256"] = hashlib.sha256(stable.encode()).hexdigest()
        (src / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        manifest = json.loads((src / "bundle.json").read_text())
        for name in list(manifest["files"]):
            p = src / name
            if p.is_file():
                manifest["files"][name] = {"sha256": sha256_file(p), "size": p.stat().st_size}
            else:
                del manifest["files"][name]
        (src / "bundle.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    with tarfile.open(out, "w:gz") as tar:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                tar.add(p, arcname=p.relative_to(src).as_posix())
    return out


def tamper(bundle: Path, workdir: Path, edit, *, rehash: bool = True) -> Path:
    """Extract ``bundle``, apply ``edit(extracted_dir)``, and repack it as ``workdir/tampered.tar.gz``."""
    src = extract_plain(bundle, workdir / "x")
    edit(src)
    return repack(src, workdir / "tampered.tar.gz", rehash=rehash)


HOSTILE = '<script>alert("pwned")</script> "Quoted" & \'single\' <b>bold</b><img src=x onerror=alert(1)>'
