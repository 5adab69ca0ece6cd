"""Headless .blend -> .glb converter, run inside Blender (never imported by mme3dr).

Usage, either form:

    python_with_bpy blend_to_glb.py JOBS.json RESULTS.json
    blender --background --factory-startup --python blend_to_glb.py -- JOBS.json RESULTS.json

``JOBS.json`` is a list of ``{"src": path.blend, "dst": path.glb}``. ``RESULTS.json`` receives one
record per job: ``{"src", "dst", "ok", "error", "n_triangles", "bbox_min", "bbox_max",
"blender_version"}``, so one unopenable file fails alone and the others still convert.

Frame: the glTF exporter is run with ``export_yup=True``, so the .glb is **Y up** (glTF convention)
although the .blend scene is Z up. The bbox reported here is in the Blender (Z-up) world frame of the
evaluated meshes, before that axis change.
"""

import json
import sys
import traceback

import bpy  # noqa: F401  (provided by Blender)


def _args():
    argv = sys.argv
    argv = argv[argv.index("--") + 1 :] if "--" in argv else argv[1:]
    if len(argv) != 2:
        raise SystemExit("usage: blend_to_glb.py JOBS.json RESULTS.json")
    return argv


def _scene_stats():
    """Triangle count and world bbox of every mesh object, after modifiers (the exporter applies them)."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    n_tri = 0
    lo = [float("inf")] * 3
    hi = [float("-inf")] * 3
    for obj in bpy.context.scene.objects:
        if obj.type != "MESH":
            continue
        ev = obj.evaluated_get(depsgraph)
        mesh = ev.to_mesh()
        try:
            mesh.calc_loop_triangles()
            n_tri += len(mesh.loop_triangles)
            mw = ev.matrix_world
            for v in mesh.vertices:
                w = mw @ v.co
                for i in range(3):
                    lo[i] = min(lo[i], w[i])
                    hi[i] = max(hi[i], w[i])
        finally:
            ev.to_mesh_clear()
    return n_tri, lo, hi


def convert_one(src, dst):
    bpy.ops.wm.open_mainfile(filepath=src, load_ui=False)
    n_tri, lo, hi = _scene_stats()
    if n_tri == 0:
        raise RuntimeError("the .blend file holds no mesh triangles")
    bpy.ops.export_scene.gltf(
        filepath=dst,
        export_format="GLB",
        export_yup=True,  # glTF is Y up; this rotates Blender's Z-up scene into it
        export_apply=True,  # apply modifiers so the geometry matches what Blender renders
        export_cameras=False,
        export_lights=False,
    )
    return n_tri, lo, hi


def main():
    jobs_path, results_path = _args()
    with open(jobs_path, encoding="utf-8") as f:
        jobs = json.load(f)
    version = bpy.app.version_string
    results = []
    for job in jobs:
        rec = {"src": job["src"], "dst": job["dst"], "ok": False, "error": None, "blender_version": version}
        try:
            n_tri, lo, hi = convert_one(job["src"], job["dst"])
            rec.update(ok=True, n_triangles=n_tri, bbox_min=lo, bbox_max=hi)
        except Exception as e:  # one bad file must not stop the batch; the reason is recorded
            rec["error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
            rec["traceback"] = traceback.format_exc(limit=3)
        results.append(rec)
        with open(results_path, "w", encoding="utf-8") as f:  # written after every job: partial progress
            json.dump(results, f, indent=1)
    with open(results_path, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
