"""A real SLURM cluster: workers as SLURM jobs give outputs identical to a LocalCluster run.

Needs a SLURM cluster that takes jobs (``tools/slurm_localhost.sh start`` makes a
single-node one as root; ``tools/test.sh`` does so). Both job scripts are read from
``docs/cluster.md`` and submitted as they are, with only sizes overridden on the
``sbatch`` command line to fit a small machine. The reference (a LocalCluster run)
and the simulated region are shared with test_run.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from scripts import console_script
from sim_jobs import assert_same_outputs, make_job, reference_run, shared_root

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "cluster.md"
STARTER = ROOT / "tools" / "slurm_localhost.sh"
DEADLINE_S = 900.0


# --------------------------------------------------------------------------- SLURM itself
def slurm(*args: str, env: dict[str, str] | None = None) -> str:
    """Run a SLURM command; its output (``sbatch`` passes ``env`` on to the job)."""
    return subprocess.run(list(args), capture_output=True, text=True, check=True,
                          timeout=60, env=env).stdout


def why_no_slurm() -> str | None:
    """Why SLURM cannot be used here (None: it takes jobs, started by us if need be)."""
    if shutil.which("sbatch") is None or shutil.which("squeue") is None:
        return ("SLURM is not installed (Debian: slurmctld slurmd slurm-client munge; "
                "tools/test.sh installs them as root)")
    ready = subprocess.run(["bash", str(STARTER), "status"], capture_output=True)
    if ready.returncode != 0:
        if os.geteuid() != 0:
            return "SLURM is not running and only root can start it (tools/slurm_localhost.sh)"
        started = subprocess.run(["bash", str(STARTER), "start"], capture_output=True, text=True,
                                 timeout=120)
        if started.returncode != 0:
            return f"SLURM could not be started: {started.stderr.strip()[-500:]}"
    cpus = slurm("sinfo", "-h", "-o", "%c").split()
    if not cpus or max(int(c.rstrip("+")) for c in cpus) < 2:
        return "the SLURM node has fewer than 2 CPUs: the tests run two jobs at once"
    return None


@pytest.fixture(scope="module")
def partition() -> str:
    pytest.importorskip("dask_jobqueue")
    reason = why_no_slurm()
    if reason:
        pytest.skip(reason)
    default = [p for p in slurm("sinfo", "-h", "-o", "%P").split() if p.endswith("*")]
    return (default or slurm("sinfo", "-h", "-o", "%P").split())[0].rstrip("*")


def jobs_named(name: str) -> dict[str, str]:
    """Job id -> state of the queued or running jobs called ``name``."""
    out = slurm("squeue", "-h", "-n", name, "-o", "%i %T")
    return dict(line.split() for line in out.splitlines() if line.strip())


def job_state(job_id: str) -> tuple[str, str]:
    """State and exit code of a job that SLURM still remembers (``scontrol show job``)."""
    out = slurm("scontrol", "show", "job", job_id)
    state = re.search(r"JobState=(\S+)", out)
    code = re.search(r"\bExitCode=(\S+)", out)
    return (state.group(1) if state else "?"), (code.group(1) if code else "?")


class Watcher:
    """Polls ``squeue`` in a thread: every job of the given names seen running, by id."""

    def __init__(self, *names: str) -> None:
        self.names = names
        self.running: dict[str, str] = {}  # job id -> name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            for name in self.names:
                with contextlib.suppress(subprocess.SubprocessError):
                    for job_id, state in jobs_named(name).items():
                        if state == "RUNNING":
                            self.running.setdefault(job_id, name)
            self._stop.wait(0.5)

    def of(self, name: str) -> list[str]:
        return sorted(j for j, n in self.running.items() if n == name)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def wait_for(check: Callable[[], bool], what: str, timeout: float = DEADLINE_S,
             proc: subprocess.Popen[str] | None = None) -> None:
    t0 = time.monotonic()
    while not check():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run ended ({proc.returncode}) while waiting for {what}")
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


@contextlib.contextmanager
def cancelled_at_exit(*names: str) -> Iterator[None]:
    try:
        yield
    finally:
        for name in names:
            subprocess.run(["scancel", "-n", name], capture_output=True)


# --------------------------------------------------------------------------- the docs' scripts
def documented_script(job_name: str) -> str:
    """The ```bash block of docs/cluster.md whose job is ``job_name``, dedented."""
    blocks = re.findall(r"^( *)```bash\n(.*?)^\1```", DOC.read_text(), flags=re.M | re.S)
    found = [textwrap.dedent(body) for _, body in blocks
             if f"#SBATCH --job-name={job_name}\n" in textwrap.dedent(body)]
    assert len(found) == 1, f"docs/cluster.md has no single job script named {job_name}"
    return found[0]


def job_environment() -> dict[str, str]:
    """The submitting environment: this interpreter's console scripts first on PATH."""
    here = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{here}:{os.environ.get('PATH', '')}",
            "OMP_WAIT_POLICY": "PASSIVE"}


def tile_files(out: Path) -> list[Path]:
    return sorted((out / "observations").glob("tile=*.parquet"))


# --------------------------------------------------------------------------- tests
def test_the_documented_driver_script_runs_a_job_on_slurm_workers(
        partition: str, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    ref = reference_run(tmp_path_factory)
    root = shared_root(tmp_path_factory)
    cfg = make_job(root, "slurm_driver", tile_size_px=128, cluster={})
    out = root / "slurm_driver"
    workers = f"rgm-w-{uuid.uuid4().hex[:8]}"
    profile = tmp_path / "my-slurm.yaml"
    profile.write_text(yaml.safe_dump({
        "kind": "slurm",
        "cluster": {"queue": partition, "cores": 1, "processes": 1, "memory": "2GiB",
                    "walltime": "00:20:00", "job_name": workers,
                    "local_directory": str(tmp_path / "dask-local"),
                    "log_directory": str(tmp_path / "dask-logs"),
                    "job_script_prologue": ["export OMP_NUM_THREADS=1"]},
        "scale": {"jobs": 1},
    }))
    script = tmp_path / "regenmap-driver.sbatch"
    script.write_text(documented_script("regenmap-driver"))
    env = {**job_environment(), "JOB": str(cfg), "REGENMAP_CLUSTER_PROFILE": str(profile)}
    watcher = Watcher("regenmap-driver", workers)
    t0 = time.monotonic()
    with cancelled_at_exit(workers):
        # one core for the driver, one for its worker job: a 2-core node runs both
        driver = slurm("sbatch", "--parsable", f"--partition={partition}", "--cpus-per-task=1",
                       "--mem=3G", "--time=00:20:00", f"--chdir={tmp_path}", str(script),
                       env=env).strip().split(";")[0]
        try:
            wait_for(lambda: driver not in jobs_named("regenmap-driver"), "the driver job")
        finally:
            subprocess.run(["scancel", driver], capture_output=True)
            watcher.stop()
    seconds = time.monotonic() - t0
    log = (tmp_path / f"regenmap-driver-{driver}.jsonl").read_text()
    assert job_state(driver) == ("COMPLETED", "0:0"), log[-3000:]
    assert "held-out skill" in (tmp_path / f"regenmap-driver-{driver}.out").read_text()
    events = [json.loads(line) for line in log.splitlines()]  # --quiet: JSON lines only
    assert events[-1]["status"] == "ok" and events[-1]["exit_code"] == 0
    scheduler = next(e for e in events if e["event"] == "cluster")["scheduler"]
    assert driver in watcher.of("regenmap-driver")
    [worker] = watcher.of(workers)  # the worker ran as a SLURM job of its own
    worker_log = (tmp_path / "dask-logs" / f"{workers}-{worker}.err").read_text()
    assert "Registered to" in worker_log and scheduler.rsplit(":", 1)[-1] in worker_log
    assert job_state(worker)[0] in ("CANCELLED", "COMPLETED")  # stopped by the run at its end
    assert_same_outputs(out, ref)  # identical to the LocalCluster run, predictions included
    print(f"SLURM driver job {driver} with worker job {worker}: {seconds:.0f}s")


@pytest.fixture()
def scheduler(tmp_path: Path) -> Iterator[str]:
    """A Dask scheduler on this machine, as an operator starts one for --scheduler."""
    sched_file = tmp_path / "scheduler.json"
    with (tmp_path / "scheduler.log").open("wb") as fh:
        proc = subprocess.Popen([console_script("dask"), "scheduler", "--port", "0",
                                 "--dashboard-address", ":0", "--scheduler-file",
                                 str(sched_file)], stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_for(sched_file.is_file, "the scheduler", timeout=120)
        yield json.loads(sched_file.read_text())["address"]
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_a_worker_job_cancelled_mid_run_still_completes_identically(
        partition: str, scheduler: str, tmp_path_factory: pytest.TempPathFactory,
        tmp_path: Path) -> None:
    ref = reference_run(tmp_path_factory)
    root = shared_root(tmp_path_factory)
    cfg = make_job(root, "slurm_scancel", tile_size_px=128, cluster={})
    out = root / "slurm_scancel"
    script = tmp_path / "regenmap-workers.sbatch"
    script.write_text(documented_script("regenmap-workers"))
    env = {**job_environment(), "SCHEDULER": scheduler}
    name = "regenmap-workers"
    watcher = Watcher(name)
    t0 = time.monotonic()
    with cancelled_at_exit(name):
        array = slurm("sbatch", "--parsable", f"--partition={partition}", "--array=1-2",
                      "--cpus-per-task=1", "--mem=2G", "--time=00:20:00", f"--chdir={tmp_path}",
                      str(script), env=env).strip().split(";")[0]
        from distributed import Client

        with Client(scheduler, timeout="60s") as client:
            client.wait_for_workers(2, timeout=300)
        run = subprocess.Popen([sys.executable, "-m", "regenmap.pipelines.cli", "run", str(cfg),
                                "--scheduler", scheduler, "--quiet"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, env=env)
        victim = f"{array}_1"
        wait_for(lambda: len(tile_files(out)) >= 2, "the first tiles", proc=run)
        tiles_then = len(tile_files(out))
        subprocess.run(["scancel", victim], check=True, capture_output=True)
        _, stderr = run.communicate(timeout=DEADLINE_S)
        watcher.stop()
    seconds = time.monotonic() - t0
    assert run.returncode == 0, stderr[-3000:]
    assert len(watcher.of(name)) == 2, watcher.running  # both array tasks ran as SLURM jobs
    assert job_state(victim)[0] == "CANCELLED"
    assert tiles_then < len(tile_files(out)), "cancelled too late to matter"
    events = [json.loads(line) for line in stderr.splitlines()]
    assert events[-1]["status"] == "ok"
    assert_same_outputs(out, ref)
    print(f"SLURM scancel run: {seconds:.0f}s, worker job {victim} cancelled after "
          f"{tiles_then} of {len(tile_files(out))} tiles")
