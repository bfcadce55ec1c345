"""``regenmap run``: outputs identical whatever the workers and tiles; progress, profiles, lock.

The simulated region (small, 16 acquisitions) and a reference run on one in-process
worker with one big tile are made once per session and shared with test_faults.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sim_jobs import (
    assert_same_outputs,
    make_job,
    reference_run,
    shared_root,
)

from regenmap.errors import ConfigError
from regenmap.pipelines.config import load_config
from regenmap.pipelines.job import run

pytestmark = pytest.mark.slow



# --------------------------------------------------------------------------- tests
def test_two_worker_processes_and_small_tiles_give_identical_outputs(
        tmp_path_factory: pytest.TempPathFactory, capfd: pytest.CaptureFixture[str]) -> None:
    ref = reference_run(tmp_path_factory)
    root = shared_root(tmp_path_factory)
    cfg = make_job(root, "two_workers", tile_size_px=128,
                   cluster={"n_workers": 2, "processes": True})
    capfd.readouterr()  # forget the reference run's log
    result = run(cfg, quiet=True)
    assert len(list((root / "two_workers" / "observations").glob("*.parquet"))) >= 6
    assert len(list((ref / "observations").glob("*.parquet"))) == 1
    assert_same_outputs(root / "two_workers", ref)
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines()
             if line.startswith("{")]
    cluster = next(e for e in lines if e["event"] == "cluster")
    assert cluster["workers"] >= 1 and cluster["dashboard"].startswith("http")
    assert result.dashboard == cluster["dashboard"]
    final = [e for e in lines if e["event"] == "progress"][-1]
    assert final["done"] == final["total"] > 0
    assert final["tiles"].split("/")[0] == final["tiles"].split("/")[1]


def test_threads_and_medium_tiles_give_identical_observations_and_features(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    ref = reference_run(tmp_path_factory)
    root = shared_root(tmp_path_factory)
    cfg = make_job(root, "threads", tile_size_px=200,
                   cluster={"n_workers": 2, "threads_per_worker": 2, "processes": False})
    run(cfg, quiet=True, stages=("extract", "features"))
    assert_same_outputs(root / "threads", ref, predictions=False)


def test_finished_job_does_nothing_and_says_so(tmp_path_factory: pytest.TempPathFactory,
                                               capfd: pytest.CaptureFixture[str]) -> None:
    ref = reference_run(tmp_path_factory)
    before = {p: p.stat().st_mtime_ns for p in ref.rglob("*") if p.is_file()}
    capfd.readouterr()
    t0 = time.perf_counter()
    result = run(load_config(shared_root(tmp_path_factory) / "reference.yaml"), quiet=True)
    assert time.perf_counter() - t0 < 30
    assert result.skipped == ["extract", "features", "train", "evaluate", "predict"]
    events = [json.loads(line)["event"] for line in capfd.readouterr().err.splitlines()
              if line.startswith("{")]
    assert "nothing-to-do" in events and "cluster" not in events  # no cluster started
    after = {p: p.stat().st_mtime_ns for p in ref.rglob("*") if p.is_file()
             and ".regenmap" not in p.parts}
    assert all(before[p] == m for p, m in after.items())


def test_a_second_run_on_the_same_outputs_exits_with_code_7(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    root = shared_root(tmp_path_factory)
    cfg = make_job(root, "locked", tile_size_px=128, cluster={"n_workers": 1})
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = root / "locked" / ".regenmap" / "lock"
        lock.parent.mkdir(parents=True)
        lock.write_text(str(holder.pid))
        done = subprocess.run([sys.executable, "-m", "regenmap.pipelines.cli", "run", str(cfg)],
                              capture_output=True, text=True, timeout=120)
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 7, done.stderr
    assert f"pid {holder.pid}" in done.stderr
    assert not (root / "locked" / "observations").exists()


def test_cluster_profiles_are_valid(tmp_path: Path) -> None:
    from regenmap.pipelines.cluster import builtin_profiles, load_profile

    assert {"local", "slurm", "pbs"} <= set(builtin_profiles())
    for name in builtin_profiles():
        prof = load_profile(name)
        assert prof.kind in ("local", "slurm", "pbs")
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: lsf\n")
    with pytest.raises(ConfigError, match="kind='lsf'"):
        load_profile(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_profile("no_such_profile")


def test_slurm_profile_renders_a_job_script() -> None:
    pytest.importorskip("dask_jobqueue")
    from regenmap.pipelines.cluster import jobqueue_cluster, load_profile

    prof = load_profile("slurm")
    cluster = jobqueue_cluster(prof)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH -p normal" in script
    assert "#SBATCH --requeue" in script
    assert "--nworkers 8" in script and "--nthreads 1" in script
    assert "export OMP_NUM_THREADS=1" in script


def test_local_profile_runs_a_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    from regenmap.pipelines.cluster import PROFILE_ENV, open_client

    monkeypatch.setenv(PROFILE_ENV, "local")
    with open_client(None) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        assert client.submit(sum, [1, 2, 3]).result() == 6


def test_profile_comes_from_argument_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from regenmap.pipelines.cluster import PROFILE_ENV, chosen_profile
    from regenmap.pipelines.config import ClusterConfig

    monkeypatch.setenv(PROFILE_ENV, "slurm")
    assert chosen_profile(ClusterConfig()) == "slurm"
    assert chosen_profile(ClusterConfig(), "pbs") == "pbs"
    assert os.environ[PROFILE_ENV] == "slurm"


def test_lock_of_a_run_on_another_host_is_not_taken_over(tmp_path: Path) -> None:
    from regenmap.errors import LockError
    from regenmap.pipelines.checkpoints import run_lock

    state = tmp_path / ".regenmap"
    state.mkdir()
    (state / "lock").write_text("999999")  # no such pid here; it may live on the other host
    (state / "lock.host").write_text("some-other-node")
    with pytest.raises(LockError, match="pid 999999 on host some-other-node"), run_lock(tmp_path):
        pass
    (state / "lock.host").unlink()
    with run_lock(tmp_path) as held:  # same host and a dead pid: a killed run, taken over
        assert held.read_text() == str(os.getpid())
    assert not (state / "lock").exists() and not (state / "lock.host").exists()


def test_batch_profile_without_dask_jobqueue_says_what_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from regenmap.pipelines.cluster import jobqueue_cluster, load_profile

    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)  # as if not installed
    with pytest.raises(ConfigError, match="pip install dask-jobqueue"):
        jobqueue_cluster(load_profile("pbs"))
