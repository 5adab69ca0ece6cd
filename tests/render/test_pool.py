"""RenderPool: one set of spawned workers for many submissions, results in completion order, views
handed back equal to the PNGs written, failures reported against their asset."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from mesh_factory import write_broken_assets, write_uncoloured_obj, write_vertex_coloured_ply

from mme3dr.render import load_views
from mme3dr.render.cameras import get_rig
from mme3dr.render.pool import RenderPool

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.mark.parametrize("workers", [1, 2])
def test_pool_yields_every_item_with_its_views_then_serves_the_cache(tmp_path, workers):
    rig = get_rig("eval24").with_size(32)
    items = [("grey", write_uncoloured_obj(tmp_path), "y"),
             ("red", write_vertex_coloured_ply(tmp_path), "y"),
             ("broken", write_broken_assets(tmp_path)["corrupt_file"], "y")]
    # More items than the 4 x workers window, so the pool must refill while results are consumed.
    items += [(f"grey{i}", write_uncoloured_obj(tmp_path, f"g{i}.obj", (1.0, 0.5 + 0.1 * i, 1.0)), "z")
              for i in range(8)]
    cache = tmp_path / "cache"
    with RenderPool(rig, cache, workers=workers, keep_views=True) as pool:
        first = dict(pool.completed(items))
        again = dict(pool.completed(items))
    assert sorted(first) == sorted(k for k, _, _ in items)
    assert first["broken"].reason == "corrupt_file" and first["broken"].views is None
    for key, outcome in first.items():
        if key == "broken":
            continue
        assert outcome.ok and not outcome.cached
        # The views handed back are the pixels of the PNGs the entry holds.
        assert outcome.views.shape == (rig.n_views, 32, 32, 4)
        assert np.array_equal(outcome.views, load_views(outcome.render_dir))
        assert again[key].cached and again[key].views is None
        assert again[key].render_dir == outcome.render_dir


def test_a_killed_worker_fails_only_what_it_held_and_the_pool_starts_fresh_ones(tmp_path):
    """SIGKILL one worker: the pool is broken, so the next submission starts new workers and every
    asset still gets an outcome; killed mid-batch, the lost assets come back as render errors."""
    rig = get_rig("eval24").with_size(32)
    items = [(i, write_uncoloured_obj(tmp_path, f"b{i}.obj", (1.0, 0.4 + 0.1 * i, 1.0)), "y")
             for i in range(6)]
    with RenderPool(rig, tmp_path / "cache", workers=2) as pool:
        victim = next(iter(pool._pool._processes.values()))
        victim.kill()
        victim.join(10)
        time.sleep(1.0)  # the executor's manager notices the dead worker and marks the pool broken
        outcomes = dict(pool.completed(items))
        assert sorted(outcomes) == list(range(6)) and all(o.ok for o in outcomes.values())

        later = [(k + 10, p, a) for k, p, a in items]  # new keys, the same (now cached) assets
        stream = pool.completed(later)
        first_key, first = next(stream)  # the batch is in flight: kill a worker while it works
        next(iter(pool._pool._processes.values())).kill()
        rest = {first_key: first, **dict(stream)}
        assert sorted(rest) == [k for k, _, _ in later]
        lost = [o for o in rest.values() if not o.ok]
        assert all(o.reason == "render_error" and "BrokenProcessPool" in o.error for o in lost)


_FAULTS = """
import resource, sys, tempfile
import numpy as np
from mme3dr.render.pool import reuse_freed_memory
tuned = reuse_freed_memory() if sys.argv[1] == "tuned" else None
import torch
from mme3dr.features import load_feature_suite
from mme3dr.features.profiles import get_profile
from mme3dr.harness.feature_store import ViewFeatures
torch.set_num_threads(1)
views = np.zeros((24, 512, 512, 4), np.uint8)  # a render's worth: a coloured square on transparency
views[:, 128:384, 128:384] = (200, 90, 40, 255)
features = ViewFeatures(load_feature_suite(get_profile("smoke")), tempfile.mkdtemp())
features.get(".", "warm-up", views=views)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for i in range(3):
    features.get(".", f"render{i}", views=views)
print(tuned, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 3)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_reuse_freed_memory_stops_encoding_faulting_its_buffers_in_again():
    """Encoding one render allocates and frees many 10-40 MB buffers; untuned glibc hands them back to
    the kernel and faults them in again page by page (~80,000 minor faults a render measured here),
    tuned the heap keeps and reuses them."""
    def faults(mode: str) -> tuple[str, int]:
        out = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True,
                             check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        tuned, n = out.stdout.split()
        return tuned, int(n)

    tuned, per_render_tuned = faults("tuned")
    _, per_render_default = faults("default")
    assert tuned == "True"
    assert per_render_tuned * 5 < per_render_default, (per_render_tuned, per_render_default)


_INTERRUPTED_POOL = """
import sys
from pathlib import Path
from mme3dr.render.cameras import get_rig
from mme3dr.render.pool import RenderPool
paths = sys.argv[2:]
with RenderPool(get_rig("eval24"), Path(sys.argv[1]), workers=2) as pool:
    for key, outcome in pool.completed([(i, p, "y") for i, p in enumerate(paths)]):
        print("done", key, flush=True)
"""


@pytest.mark.slow
def test_ctrl_c_to_the_process_group_stops_the_pool_and_its_workers(tmp_path):
    """Ctrl-C reaches the caller and both workers (one process group). The pool used to wait forever
    for results the interrupted executor never delivered; now it terminates its workers and exits."""
    import signal

    import trimesh

    paths = []
    for i in range(8):  # distinct 82k-face spheres (identical files would share one cache entry)
        mesh = trimesh.creation.icosphere(subdivisions=6)
        mesh.vertices *= [1.0, 1.0 + 0.1 * i, 1.0]
        paths.append(str(tmp_path / f"s{i}.ply"))
        mesh.export(paths[-1])
    proc = subprocess.Popen([sys.executable, "-c", _INTERRUPTED_POOL, str(tmp_path / "cache"), *paths],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)  # its own process group, as a terminal gives
    try:
        assert proc.stdout.readline().startswith("done"), "no render finished"
        group = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert len(group) >= 3  # the caller and two render workers (and the resource tracker)
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=30) != 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and subprocess.run(["pgrep", "-g", str(proc.pid)]).returncode == 0:
            time.sleep(0.2)
        left = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert left == [], f"processes of the interrupted pool still alive: {left}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_stopped_workers_meet_the_deadline_and_say_what_was_waiting(tmp_path, capfd):
    """SIGSTOP both workers: the renders they hold fail as ``render_timeout`` after the deadline, naming
    the asset and the stopped workers on stderr; fresh workers render the rest; closing does not hang."""
    import signal

    rig = get_rig("eval24").with_size(32)
    items = [(i, write_uncoloured_obj(tmp_path, f"s{i}.obj", (1.0, 0.4 + 0.1 * i, 1.0)), "y")
             for i in range(5)]
    t0 = time.monotonic()
    with RenderPool(rig, tmp_path / "cache", workers=2, timeout=3) as pool:
        deadline = time.monotonic() + 60
        while len(pool._pool._processes) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        stopped = list(pool._pool._processes)
        for pid in stopped:
            os.kill(pid, signal.SIGSTOP)
        while set(pool.worker_states().values()) != {"stopped"} and time.monotonic() < deadline:
            time.sleep(0.05)
        assert set(pool.worker_states().values()) == {"stopped"}
        outcomes = dict(pool.completed(items))
        assert not set(stopped) & set(pool._pool._processes)  # replaced
    assert time.monotonic() - t0 < 120
    assert sorted(outcomes) == list(range(5))
    timed_out = [k for k, o in outcomes.items() if o.reason == "render_timeout"]
    assert timed_out and all(outcomes[k].ok for k in outcomes if k not in timed_out)
    for k in timed_out:
        assert "deadline of 3 s" in outcomes[k].error and f"s{k}.obj" in outcomes[k].error
    err = capfd.readouterr().err
    assert "render deadline of 3 s passed" in err and "stopped" in err
    for pid in stopped:  # none of the stopped workers is left behind
        assert not os.path.exists(f"/proc/{pid}") or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


def test_a_worker_stopped_while_idle_does_not_hang_the_close(tmp_path):
    import signal

    rig = get_rig("eval24").with_size(32)
    pool = RenderPool(rig, tmp_path / "cache", workers=2, timeout=30)
    items = [(i, write_uncoloured_obj(tmp_path, f"i{i}.obj", (1.0, 0.4 + 0.1 * i, 1.0)), "y")
             for i in range(2)]
    assert all(o.ok for _, o in pool.completed(items))
    victim = next(iter(pool._pool._processes))
    os.kill(victim, signal.SIGSTOP)
    while pool.worker_states()[victim] != "stopped":
        time.sleep(0.05)
    t0 = time.monotonic()
    pool.close()
    assert time.monotonic() - t0 < 30
