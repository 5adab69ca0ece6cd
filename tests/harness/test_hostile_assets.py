"""Issue 26 through ``mme3dr evaluate``: one hostile asset is that sample's failure with its reason, and
the run (and its ``--resume``) goes on; the adapter's world does not leak.

With a relative ``--out``, an adapter that returns a ``.gltf`` holding 200,000 nested arrays (a
``RecursionError`` that killed evaluate and every resume), an OBJ whose texture is a quoted absolute
path outside its folder, and one that calls ``os.chdir``, returns a relative path and detaches a
daemon: evaluate exits 0 with ``corrupt_file``, ``asset_refused`` and an ok sample; ``--resume``
gives the same bytes; no daemon outlives the run."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from evaluate_support import CLI, FAST, stable_bytes
from process_tags import tagged

from mme3dr.results import read_samples

HOSTILE = '''
import json, os, time
from pathlib import Path

from mme3dr.models.primitives import PrimitivesModel
from mme3dr.models.protocol import ModelInfo

TRIANGLE = "AAAAAAAAAAAAAAAAAACAPwAAAAAAAAAAAAAAAAAAgD8AAAAA"  # (0,0,0) (1,0,0) (0,1,0) as float32


class Hostile(PrimitivesModel):
    info = ModelInfo(name="hostile", deterministic=True)
    max_batch_size = 1

    def generate_one(self, request):
        if request.case_id == "demo-000":  # 200,000 nested arrays in extras
            doc = {"asset": {"version": "2.0"}, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
                   "meshes": [{"primitives": [{"attributes": {"POSITION": 0}}]}],
                   "accessors": [{"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3"}],
                   "bufferViews": [{"buffer": 0, "byteLength": 36}],
                   "buffers": [{"byteLength": 36, "uri": "data:application/octet-stream;base64," + TRIANGLE}]}
            text = json.dumps(doc)[:-1] + ', "extras": ' + "[" * 200_000 + "]" * 200_000 + "}"
            path = request.output_path("gltf")
            path.write_text(text)
            return path
        if request.case_id == "demo-001":  # a quoted absolute texture path, outside the folder
            out = Path(request.output_dir)
            (out / "a.mtl").write_text(f'newmtl m\\nmap_Kd "{os.environ["SECRET_PNG"]}"\\n')
            path = out / "a.obj"
            path.write_text("mtllib a.mtl\\nv 0 0 0\\nv 1 0 0\\nv 0 1 0\\nvt 0 0\\nvt 1 0\\nvt 0 1\\n"
                            "usemtl m\\nf 1/1 2/2 3/3\\n")
            return path
        os.chdir(os.environ["WANDER_TO"])
        if os.fork() == 0:  # a detached daemon (double fork + setsid)
            os.setsid()
            if os.fork() == 0:
                os.execvp("sleep", ["sleep", "300"])
            os._exit(0)
        time.sleep(0.2)
        return os.path.relpath(super().generate_one(request))
'''


@pytest.mark.skipif(not Path("/proc/self/environ").is_file(), reason="needs Linux /proc")
def test_hostile_assets_are_sample_failures_and_resume_completes(tmp_path: Path) -> None:
    import numpy as np
    from gltf_factory import png_bytes

    (tmp_path / "hostile.py").write_text(HOSTILE)
    (tmp_path / "secret.png").write_bytes(png_bytes(np.full((4, 4, 3), 250, np.uint8)))
    (tmp_path / "elsewhere").mkdir()
    tag = uuid.uuid4().hex
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "100", "MME3DR_TEST_TAG": tag,
           "SECRET_PNG": str(tmp_path / "secret.png"), "WANDER_TO": str(tmp_path / "elsewhere")}
    cmd = [*CLI, "evaluate", "--out", "run", "--model", "hostile.py:Hostile", "--benchmark", "demo",
           "--limit", "3", "--no-report", *FAST]
    try:
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        by_case = {s.case_id: s for s in read_samples(tmp_path / "run" / "samples.jsonl")}
        assert by_case["demo-000"].failure == "corrupt_file"
        assert "nested too deeply" in by_case["demo-000"].failure_detail
        assert by_case["demo-001"].failure == "asset_refused"
        assert "outside the asset's folder" in by_case["demo-001"].failure_detail
        assert by_case["demo-002"].status == "ok"
        assert not list((tmp_path / "run" / "assets").rglob("secret.png"))
        deadline = time.monotonic() + 5
        while tagged(tag) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert tagged(tag) == {}, "a process of the run (the adapter's daemon?) outlived it"

        before = stable_bytes(tmp_path / "run")
        proc = subprocess.run([*cmd, "--resume"], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert stable_bytes(tmp_path / "run") == before
    finally:
        for pid in tagged(tag):
            os.kill(pid, signal.SIGKILL)
