"""Issue 26, kind 3: the adapter's world does not leak.

- Paths handed to an adapter are absolute, so an adapter that calls ``os.chdir`` (with a relative
  ``--out``) still writes where the harness looks, request after request; a relative path it returns
  is taken relative to the directory it was in when it returned.
- A process the adapter detaches (double fork + ``setsid``) ends with the adapter process: when the
  harness closes it, when it is killed for a timeout, and when the adapter process crashes.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest
from process_tags import tagged

from mme3dr.harness.adapter_process import AdapterProcess
from mme3dr.models.protocol import GenerationRequest

pytestmark = pytest.mark.skipif(not Path("/proc/self/environ").is_file(), reason="needs Linux /proc")

ADAPTER = '''
import os, sys, time
from pathlib import Path

from mme3dr.models.primitives import PrimitivesModel
from mme3dr.models.protocol import ModelInfo


def detach_sleeper():
    """Double fork + setsid: a daemon re-parented away from the adapter, as a server launcher does."""
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execvp("sleep", ["sleep", "300"])
        os._exit(0)
    time.sleep(0.2)


class Wanderer(PrimitivesModel):
    """Changes directory, detaches a daemon; for case 'crash' dies, for 'hang' sleeps."""

    info = ModelInfo(name="wanderer", deterministic=True)
    max_batch_size = 1

    def generate_one(self, request):
        os.chdir(os.environ["WANDER_TO"])
        detach_sleeper()
        if request.case_id == "crash":
            os._exit(3)
        if request.case_id == "hang":
            time.sleep(60)
        path = super().generate_one(request)
        return os.path.relpath(path)  # relative to the directory it wandered to
'''


def _request(tmp: Path, case: str, i: int = 0) -> GenerationRequest:
    out = Path("work") / f"{case}_{i}"  # relative, as with a relative --out
    (tmp / out).mkdir(parents=True)
    return GenerationRequest(case, "a red cube", 1, i, out)


@pytest.fixture()
def world(tmp_path, monkeypatch):
    (tmp_path / "adapter.py").write_text(ADAPTER)
    (tmp_path / "elsewhere").mkdir()
    tag = uuid.uuid4().hex
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()  # started untagged: the clean-up below must not kill this process's
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDER_TO", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("MME3DR_TEST_TAG", tag)
    yield tmp_path, tag
    for pid in tagged(tag):  # never leave strays behind for the next test
        os.kill(pid, signal.SIGKILL)


def _sleepers(tag: str) -> dict[int, str]:
    return {pid: cmd for pid, cmd in tagged(tag).items() if cmd.startswith("sleep 300")}


def _gone_soon(tag: str, seconds: float = 5.0) -> dict[int, str]:
    deadline = time.monotonic() + seconds
    while _sleepers(tag) and time.monotonic() < deadline:
        time.sleep(0.05)
    return _sleepers(tag)


def test_chdir_changes_nothing_and_detached_children_end_with_the_adapter(world):
    tmp, tag = world
    with AdapterProcess(f"{tmp / 'adapter.py'}:Wanderer") as adapter:
        for i in range(2):
            (outcome,) = adapter.generate([_request(tmp, "demo", i)], timeout=120)
            assert outcome.failure is None, outcome.detail
            assert outcome.asset.path == tmp / "work" / f"demo_{i}" / f"demo_{i}.glb"
            assert outcome.asset.path.is_file()
        assert len(_sleepers(tag)) == 2  # the daemons live while the adapter does
        assert Path.cwd() == tmp  # the harness never moved
    assert _gone_soon(tag) == {}, "a detached child outlived the adapter process"


def test_a_crash_or_a_timeout_takes_the_detached_children_too(world):
    tmp, tag = world
    with AdapterProcess(f"{tmp / 'adapter.py'}:Wanderer") as adapter:
        (outcome,) = adapter.generate([_request(tmp, "crash")], timeout=120)
        assert outcome.failure == "adapter_crashed" and "exit status 3" in outcome.detail
        assert _gone_soon(tag) == {}, "the crashed adapter's daemon is still alive"
        (outcome,) = adapter.generate([_request(tmp, "hang")], timeout=3)
        assert outcome.failure == "adapter_timeout"
        assert _gone_soon(tag) == {}, "the timed-out adapter's daemon is still alive"
        (outcome,) = adapter.generate([_request(tmp, "demo")], timeout=120)  # a fresh adapter process
        assert outcome.failure is None, outcome.detail
    assert _gone_soon(tag) == {}


def test_the_adapter_s_tree_dies_with_the_harness(world, tmp_path):
    """kill -9 of the process holding the adapter: its keeper gets SIGTERM and ends the whole tree."""
    import subprocess
    import sys

    tmp, tag = world
    script = tmp / "holder.py"
    script.write_text(
        "import sys, time\n"
        "from pathlib import Path\n"
        "from mme3dr.harness.adapter_process import AdapterProcess\n"
        "from mme3dr.models.protocol import GenerationRequest\n"
        "if __name__ == '__main__':\n"
        "    a = AdapterProcess(sys.argv[1])\n"
        "    Path('work/x').mkdir(parents=True)\n"
        "    a.generate([GenerationRequest('demo', 'a cube', 1, 0, Path('work/x'))], timeout=120)\n"
        "    print('ready', flush=True)\n"
        "    time.sleep(300)\n")
    holder = subprocess.Popen([sys.executable, str(script), f"{tmp / 'adapter.py'}:Wanderer"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        assert len(_sleepers(tag)) == 1
        holder.kill()
        holder.wait(10)
        assert _gone_soon(tag) == {}, "the adapter's daemon outlived the harness"
        deadline = time.monotonic() + 5
        while tagged(tag) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert tagged(tag) == {}, f"still alive: {tagged(tag)}"
    finally:
        if holder.poll() is None:
            holder.kill()
