"""Faults for real: a Dask worker SIGKILLed mid-run, and a whole ``regenmap run`` SIGKILLed.

Both runs must complete (the second after a restart), recompute only what was
missing, and give outputs identical to an undisturbed single-process run. The
region and the reference run are shared with test_run.py (same session folder).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from scripts import console_script
from sim_jobs import N_DATES, assert_same_outputs, make_job, reference_run, shared_root

from regenmap.pipelines.job import run

pytestmark = pytest.mark.slow

DEADLINE_S = 300.0


# --------------------------------------------------------------------------- process helpers
def spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Start a process in its own session (process group), output to ``log``."""
    with log.open("wb") as fh:
        return subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a process and everything in its group; reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def wait_for(check: Callable[[], bool], what: str, timeout: float = DEADLINE_S,
             procs: tuple[subprocess.Popen[bytes], ...] = ()) -> None:
    t0 = time.monotonic()
    while not check():
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"process {p.args!r} exited ({p.returncode}) while "
                                     f"waiting for {what}")
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def tile_files(out: Path) -> list[Path]:
    return sorted((out / "observations").glob("tile=*.parquet"))


@pytest.fixture()
def dask_cluster(tmp_path: Path) -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    """A real ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1."""
    dask = console_script("dask")
    assert dask, "the dask command line is not installed"
    sched_file = tmp_path / "scheduler.json"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(spawn([dask, "scheduler", "--host", "127.0.0.1", "--port", "0",
                            "--dashboard-address", "127.0.0.1:0",
                            "--scheduler-file", str(sched_file)], tmp_path / "scheduler.log"))
        wait_for(sched_file.is_file, "the scheduler file", timeout=120, procs=tuple(procs))
        for i in range(2):
            procs.append(spawn([dask, "worker", "--scheduler-file", str(sched_file),
                                "--nworkers", "1", "--nthreads", "1", "--name", f"w{i}"],
                               tmp_path / f"worker{i}.log"))
        address = json.loads(sched_file.read_text())["address"]
        from distributed import Client

        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
        yield address, procs
    finally:
        for p in reversed(procs):
            kill_group(p)


# --------------------------------------------------------------------------- tests
def test_job_survives_a_worker_killed_mid_run(
        tmp_path_factory: pytest.TempPathFactory,
        dask_cluster: tuple[str, list[subprocess.Popen[bytes]]],
        capfd: pytest.CaptureFixture[str]) -> None:
    address, procs = dask_cluster
    ref = reference_run(tmp_path_factory)
    root = shared_root(tmp_path_factory)
    cfg = make_job(root, "worker_killed", tile_size_px=128, cluster={"address": address})
    out = root / "worker_killed"
    victim = procs[1]
    killed: dict[str, int] = {}

    def killer() -> None:
        # SIGKILL the first worker (nanny and worker process) once two tiles are on disk.
        wait_for(lambda: len(tile_files(out)) >= 2, "the first tiles")
        killed["tiles"] = len(tile_files(out))
        kill_group(victim)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    t0 = time.monotonic()
    result = run(cfg, quiet=True, stages=("extract", "features"))
    seconds = time.monotonic() - t0
    thread.join(timeout=5)
    assert victim.poll() is not None, "the worker was not killed during the run"
    assert 2 <= killed["tiles"] < len(tile_files(out)), "killed too late to matter"
    assert result.outputs["features"]
    assert_same_outputs(out, ref, predictions=False)
    events = [json.loads(line) for line in capfd.readouterr().err.splitlines()
              if line.startswith("{")]
    print(f"worker-kill run: {seconds:.1f}s, killed after {killed['tiles']} tile(s), "
          f"retries: {sum(e['event'] == 'retry' for e in events)}")


def test_killed_run_resumes_without_recomputing_and_gives_identical_outputs(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    ref = reference_run(tmp_path_factory)
    root = shared_root(tmp_path_factory)
    cfg = make_job(root, "run_killed", tile_size_px=128,
                   cluster={"n_workers": 1, "processes": True})
    out = root / "run_killed"
    cmd = [sys.executable, "-m", "regenmap.pipelines.cli", "run", str(cfg), "--quiet"]
    state = out / ".regenmap"

    # 1. SIGKILL the whole run (and its worker processes) once two tiles are written.
    t0 = time.monotonic()
    first = spawn(cmd, root / "run_killed_1.log")
    try:
        wait_for(lambda: len(tile_files(out)) >= 2, "the first tiles", procs=(first,))
    finally:
        kill_group(first)
    kept = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in tile_files(out)}
    assert (state / "lock").is_file(), "a SIGKILLed run leaves its lock behind"
    assert not (state / "extract.done.json").exists()

    # 2. Start again, and SIGKILL it in the training stage (extract and features done).
    second = spawn(cmd, root / "run_killed_2.log")
    try:
        wait_for(lambda: (state / "features.done.json").is_file(), "the features stage",
                 procs=(second,))
    finally:
        kill_group(second)
    log2 = (root / "run_killed_2.log").read_text()
    for name, (ino, mtime) in kept.items():
        st = (out / "observations" / name).stat()
        assert (st.st_ino, st.st_mtime_ns) == (ino, mtime), f"{name} was recomputed"
    total_tiles = len(tile_files(out))
    assert total_tiles > len(kept)
    progress = [json.loads(line) for line in log2.splitlines()
                if line.startswith("{") and '"progress"' in line]
    # The resumed extraction planned only the missing tiles (x every acquisition).
    assert progress[-1]["total"] == (total_tiles - len(kept)) * N_DATES, progress[-1]
    assert progress[-1]["tiles"] == f"{total_tiles - len(kept)}/{total_tiles - len(kept)}"

    # 3. Start again: extract and features are skipped, the rest completes.
    third = subprocess.run(cmd, capture_output=True, text=True, timeout=DEADLINE_S)
    assert third.returncode == 0, third.stderr[-3000:]
    events = [json.loads(line) for line in third.stderr.splitlines() if line.startswith("{")]
    skipped = [e["stage"] for e in events if e["event"] == "skipped"]
    ran = [e["stage"] for e in events if e["event"] == "done"]
    assert skipped[:2] == ["extract", "features"], log2[-2000:]
    assert "predict" in ran
    assert_same_outputs(out, ref)

    # 4. Once more: nothing to do, and it says so.
    fourth = subprocess.run(cmd, capture_output=True, text=True, timeout=DEADLINE_S)
    assert fourth.returncode == 0
    assert '"event": "nothing-to-do"' in fourth.stderr
    print(f"run-kill scenario: {time.monotonic() - t0:.1f}s, {len(kept)} of {total_tiles} "
          "tiles kept across the kill")
