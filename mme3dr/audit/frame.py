"""The frame audit: do the generated assets stand the way the references do? (``mme3dr audit RUN_DIR``)

An adapter that forgets to declare its up axis, or exports its assets a quarter turn off, is scored
against the references from the wrong side, silently. The audit compares each scored sample's
silhouettes with its reference's under the 24 proper rotations of the cube and warns when one
non-identity rotation agrees clearly better for most samples. It never changes a score.

Per sample (status ``ok``):

1. reference silhouettes: the alpha of ``AUDIT_VIEWS`` of the reference's cached evaluation render (the
   run's ``shard.json`` names its folder), box-downsampled to ``AUDIT_SIZE`` px (coverage in [0, 1]);
2. generated silhouettes: the stored asset, loaded as evaluate loaded it (same ``up_axis``, normalised
   into the unit cube) and drawn once with ``mme3dr.render`` at ``AUDIT_SIZE`` px from 24 × V cameras:
   turning the object by R and looking with camera ``c2w`` gives the same image as looking at the
   unturned object with ``Rᵀ·c2w`` (the normalisation commutes with R: a cube rotation maps the
   centred bounding box to a centred box with the same longest side);
3. ``iou[j]``: the mean over views of the soft IoU ``Σ min(a, b) / Σ max(a, b)``.

Decision (:func:`decide`): a sample *supports* rotation j when j is (within ``TIE``) its best rotation
and ``iou[j] ≥ iou[identity] + MARGIN``.
The run is flagged when the most supported non-identity rotation is supported by more than
``MIN_SHARE`` of the checked samples (and at least ``MIN_SAMPLES`` of them). Assets that match
(identity best) support nothing; assets that match no better one way than another (random
disagreement) spread their support over many rotations, and no rotation reaches a majority.
The reported turn is the inverse of the best rotation: the assets look turned by T = Rᵀ.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mme3dr.audit.rotations import CUBE_ROTATIONS, IDENTITY, rotation_name, up_axis_hint

__all__ = ["AUDIT_SIZE", "AUDIT_VIEWS", "AuditResult", "audit_run", "audit_samples", "decide",
           "frame_audit_entry", "record_frame_audit",
           "silhouette_ious"]

#: Silhouette size (px) and which views of the evaluation rig (eval24 indices) the audit uses.
AUDIT_SIZE = 32
AUDIT_VIEWS = (0, 6, 12, 18)
#: A rotation must beat the identity by this much IoU on a sample to count for it.
MARGIN = 0.05
#: Rotations within this IoU of a sample's best all count as its best (a symmetric object matches under
#: several rotations equally: turning a table by R or by R then 180° about its up axis looks the same).
TIE = 0.02
MIN_SHARE = 0.5
MIN_SAMPLES = 3
#: ``mme3dr evaluate`` audits at most this many of its scored samples, evenly spaced in case order. Why:
#: each sample costs 96 silhouette draws of its asset (0.22 s for a 50,000-face mesh on one core), which
#: for all 249 MME-3DR cases added 58 s to a 187 s run (docs/benchmarks.md); 16 cost about 3.5 s, and a
#: quarter turn that most samples share still shows in them. ``mme3dr audit RUN_DIR`` checks every sample.
EVALUATE_MAX_SAMPLES = 16
#: Per-sample IoUs are kept in this file of the run folder (keyed by asset, reference render, up axis and
#: rig; a file of another :data:`AUDIT_VERSION` is ignored), so a resumed run re-audits only what changed.
AUDIT_CACHE = "frame_audit_cache.json"
#: Bumped whenever what a sample's IoUs depend on changes (views, size, rotations, IoU definition).
AUDIT_VERSION = 1


@dataclass
class AuditResult:
    """What ``mme3dr audit --json`` prints; ``message`` is the warning (None when not flagged)."""

    flagged: bool
    rotation: str | None
    share: float
    n: int
    #: scored samples in the run; ``n`` of them were checked (fewer when ``max_samples`` applies)
    of: int = 0
    message: str | None = None
    skipped: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def soft_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Soft IoU of coverage masks in [0, 1] over the last two axes: ``(..., H, W) → (...)`` float64; two
    empty masks give 1."""
    inter = np.minimum(a, b).sum(axis=(-2, -1))
    union = np.maximum(a, b).sum(axis=(-2, -1))
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 1.0)


def silhouette_ious(gen: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``gen (24, V, H, W)`` and ``ref (V, H, W)`` coverage → ``(24,)`` mean IoU over the V views."""
    return soft_iou(gen, ref[None]).mean(axis=1)


def decide(ious: np.ndarray) -> tuple[int | None, float, np.ndarray]:
    """``(best rotation index or None, its share of samples, support counts (24,))`` from ``ious
    (n, 24)``; the index is None when no non-identity rotation has more than ``MIN_SHARE`` support."""
    ious = np.asarray(ious, dtype=np.float64)
    if ious.ndim != 2 or ious.shape[1] != len(CUBE_ROTATIONS):
        raise ValueError(f"ious must be (n, {len(CUBE_ROTATIONS)}), got {ious.shape}")
    n = ious.shape[0]
    near_best = ious >= ious.max(axis=1, keepdims=True) - TIE
    support = (near_best & (ious >= ious[:, [IDENTITY]] + MARGIN)).sum(axis=0)
    support[IDENTITY] = 0
    if n == 0:
        return None, 0.0, support
    gain = (ious - ious[:, [IDENTITY]]).mean(axis=0)
    best = int(max(range(len(support)), key=lambda j: (support[j], gain[j])))
    share = float(support[best] / n)
    if support[best] < MIN_SAMPLES or share <= MIN_SHARE:
        return None, share, support
    return best, share, support


def _camera_rig(base_rig):
    """The audit rig: for each cube rotation R (outer) and audit view v (inner), camera ``Rᵀ·c2w_v``."""
    from mme3dr.render.cameras import Rig

    c2w = base_rig.c2w[list(AUDIT_VIEWS)]
    cams = []
    for _, rot in CUBE_ROTATIONS:
        turn = np.eye(4)
        turn[:3, :3] = rot.T
        cams.extend(turn @ c for c in c2w)
    return Rig(name="audit", c2w=np.stack(cams), fov_y_deg=base_rig.fov_y_deg, width=AUDIT_SIZE,
               height=AUDIT_SIZE)


def _reference_silhouettes(render_dir: Path) -> np.ndarray:
    from PIL import Image

    frames = json.loads((render_dir / "transforms.json").read_text())["frames"]
    out = []
    for v in AUDIT_VIEWS:
        with Image.open(render_dir / frames[v]["file_path"]) as im:
            alpha = im.convert("RGBA").getchannel("A").resize((AUDIT_SIZE, AUDIT_SIZE), Image.Resampling.BOX)
        out.append(np.asarray(alpha, dtype=np.float64) / 255.0)
    return np.stack(out)


def _generated_silhouettes(renderer, path: Path, up_axis: str, rig) -> np.ndarray:
    from mme3dr.assets.mesh import load_mesh

    mesh = load_mesh(path, up_axis=up_axis, normalise=True)
    rgba = renderer.render(mesh, rig, shading="plain_white", depth=False).rgba
    alpha = rgba[..., 3].astype(np.float64) / 255.0
    return alpha.reshape(len(CUBE_ROTATIONS), len(AUDIT_VIEWS), AUDIT_SIZE, AUDIT_SIZE)


def _render_dirs(run_dir: Path) -> dict[str, str]:
    from mme3dr.results import shard_render_dirs

    return shard_render_dirs([run_dir])


def audit_run(run_dir: str | Path) -> AuditResult:
    """Audit the frame of a finished run's generated assets against its references (module docstring).

    Reads ``results.json``, ``samples.jsonl`` and ``shard.json`` (render folders), then
    :func:`audit_samples`. Raises ``ValueError`` when the folder is not a finished run.
    """
    from mme3dr.results import load_results, read_samples

    run = Path(run_dir)
    results = load_results(run / "results.json")
    samples = read_samples(run / results.samples_file)
    return audit_samples(run, samples, results.renderer.rig, _render_dirs(run))


def audit_samples(run_dir: str | Path, samples, rig_name: str, render_dirs: dict[str, str],
                  max_samples: int | None = None) -> AuditResult:
    """Audit the scored (``status == "ok"``) ``samples`` of the run in ``run_dir`` (its asset store):
    each generated asset's silhouettes under the 24 cube rotations against its reference's renders.

    ``render_dirs`` maps a render sha256 to its view folder (``mme3dr.results.shard_render_dirs``);
    ``rig_name`` is the run's ``renderer.rig``. ``max_samples``: check at most this many, evenly spaced
    in the samples' order (:data:`EVALUATE_MAX_SAMPLES` for evaluate; None: all). Renders with the
    process's ``mme3dr.render`` context (import torch first if the process will use it, see
    ``mme3dr.render.renderer``). Samples whose files are gone are skipped and counted in ``skipped`` by
    reason. Per-sample IoUs are read from and written to ``run_dir``/:data:`AUDIT_CACHE`.
    """
    import time

    from mme3dr.assets.store import AssetStore
    from mme3dr.render.cameras import get_rig

    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    store = AssetStore(run_dir / "assets")
    rig = _camera_rig(get_rig(rig_name))
    scored = [s for s in samples if s.status == "ok"]
    cache = _AuditCache(run_dir / AUDIT_CACHE)
    renderer = None
    ious, ups, skipped = [], [], {}
    for s in _evenly_spaced(scored, max_samples):
        gen_dir = render_dirs.get(s.render_sha256 or "")
        ref_dir = render_dirs.get(s.reference_render_sha256 or "")
        path = store.get(s.asset_sha256, s.asset_format) if s.asset_sha256 and s.asset_format else None
        reason = ("no generated render folder" if gen_dir is None else "no reference render folder"
                  if ref_dir is None or not Path(ref_dir).is_dir() else "asset missing from the store"
                  if path is None else None)
        if reason:
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        up = _loaded_up_axis(Path(gen_dir))
        key = f"{s.asset_sha256}:{s.reference_render_sha256}:{up}:{rig_name}"  # the file holds the version
        iou = cache.get(key)
        if iou is None:
            if renderer is None:
                from mme3dr.render.renderer import get_renderer

                renderer = get_renderer(AUDIT_SIZE, AUDIT_SIZE)
            try:
                gen = _generated_silhouettes(renderer, path, up, rig)
            except Exception as e:  # noqa: BLE001 - one unreadable asset must not stop the audit
                reason = f"could not render: {type(e).__name__}"
                skipped[reason] = skipped.get(reason, 0) + 1
                continue
            iou = cache.put(key, silhouette_ious(gen, _reference_silhouettes(Path(ref_dir))))
        ious.append(iou)
        ups.append(up)
    cache.save()
    result = _decision(ious, ups, skipped)
    result.of = len(scored)
    result.seconds = round(time.perf_counter() - t0, 3)
    return result


def _evenly_spaced(items: list, limit: int | None) -> list:
    """``items`` itself, or ``limit`` of them at evenly spaced positions (first and last included)."""
    if limit is None or len(items) <= limit:
        return items
    picks = np.unique(np.linspace(0, len(items) - 1, limit).round().astype(int))
    return [items[i] for i in picks]


class _AuditCache:
    """Per-sample IoU vectors ``(24,)`` by key, in a JSON file (floats round-trip exactly); a missing or
    unreadable file is an empty cache, and nothing is written unless something was added."""

    def __init__(self, path: Path) -> None:
        self.path, self.dirty = path, False
        try:
            loaded = json.loads(path.read_text())
            self.ious = loaded["ious"] if loaded.get("version") == AUDIT_VERSION else {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            self.ious = {}

    def get(self, key: str) -> np.ndarray | None:
        value = self.ious.get(key)
        ok = isinstance(value, list) and len(value) == len(CUBE_ROTATIONS)
        return np.asarray(value, dtype=np.float64) if ok else None

    def put(self, key: str, iou: np.ndarray) -> np.ndarray:
        self.ious[key], self.dirty = [float(x) for x in iou], True
        return iou

    def save(self) -> None:
        if not self.dirty:
            return
        import contextlib

        from mme3dr.output_files import atomic_write_text

        # a read-only run folder: the audit still stands, the next one recomputes
        with contextlib.suppress(OSError):
            atomic_write_text(self.path, json.dumps({"version": AUDIT_VERSION, "ious": self.ious},
                                                    sort_keys=True))


def _loaded_up_axis(gen_dir: Path) -> str:
    """How evaluate loaded the asset of a render (its render record's ``up_axis``; ``y`` when absent)."""
    from mme3dr.render.cache import ENTRY_META

    meta_file = gen_dir / ENTRY_META
    return json.loads(meta_file.read_text()).get("up_axis", "y") if meta_file.is_file() else "y"


def _decision(ious: list, ups: list[str], skipped: dict[str, int]) -> AuditResult:
    best, share, _ = decide(np.array(ious).reshape(-1, len(CUBE_ROTATIONS)))
    result = AuditResult(flagged=best is not None, rotation=None, share=round(share, 6), n=len(ious),
                         skipped=skipped)
    if best is not None:
        turn = CUBE_ROTATIONS[best][1].T
        declared = max(set(ups), key=ups.count)
        result.rotation = rotation_name(turn)
        result.message = (f"generated assets look turned {result.rotation} relative to the references "
                          f"({share:.0%} of {len(ious)} samples): {up_axis_hint(turn, declared)}")
    return result


def frame_audit_entry(run_dir: str | Path, samples, rig_name: str, render_dirs: dict[str, str],
                      max_samples: int | None = None) -> tuple[dict, float | None]:
    """``(results.frame_audit, timing.audit seconds)`` of :func:`audit_samples` (at most ``max_samples``):
    ``AuditResult.to_dict()`` without ``seconds``, or ``{"error": ...}`` (seconds None) when the audit
    cannot run (no OpenGL, a missing render folder); it never fails the evaluation. When flagged, issues
    a ``UserWarning`` with the message (the CLI prints it as one ``warning:`` line)."""
    import warnings

    seconds = None
    try:
        audit = audit_samples(run_dir, samples, rig_name, render_dirs, max_samples).to_dict()
        seconds = audit.pop("seconds")
    except Exception as e:  # noqa: BLE001 - a diagnostic must not break the run it diagnoses
        audit = {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
    if audit.get("flagged"):
        warnings.warn(audit["message"], UserWarning, stacklevel=3)
    return audit, seconds


def record_frame_audit(run_dir: str | Path, results: dict) -> dict:
    """Audit a finished run (:func:`frame_audit_entry` over its ``samples.jsonl`` and ``shard.json``) and
    record it in its ``results.json``; returns the updated results dict. ``mme3dr evaluate`` records the
    audit as it writes ``results.json`` instead (``mme3dr.harness.merge.finish``)."""
    from mme3dr.results import Results, dump_results, read_samples

    run = Path(run_dir)
    samples = read_samples(run / results.get("samples_file", "samples.jsonl"))
    audit, seconds = frame_audit_entry(run, samples, results["renderer"]["rig"], _render_dirs(run))
    timing = dict(results.get("timing") or {})
    if seconds is not None:
        timing["audit"] = seconds
    updated = {**results, "frame_audit": audit, "timing": timing}
    dump_results(Results.model_validate(updated), run / "results.json")
    return updated
