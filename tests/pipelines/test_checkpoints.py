import os
import subprocess
import sys
from pathlib import Path

import pytest

from regenmap.errors import LockError
from regenmap.pipelines.checkpoints import mark_done, run_lock, stage_done


def test_marker_valid_only_for_same_hash_and_existing_outputs(tmp_path: Path) -> None:
    out = tmp_path / "a.parquet"
    out.write_text("x")
    mark_done(tmp_path, "features", "h1", {"table": str(out)})
    assert stage_done(tmp_path, "features", "h1") is not None
    assert stage_done(tmp_path, "features", "h2") is None
    out.unlink()
    assert stage_done(tmp_path, "features", "h1") is None


def test_lock_refuses_a_second_live_holder(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        lock = tmp_path / ".regenmap" / "lock"
        lock.parent.mkdir()
        lock.write_text(str(holder.pid))
        with pytest.raises(LockError, match=rf"pid {holder.pid}"), run_lock(tmp_path):
            pass
    finally:
        holder.kill()
        holder.wait()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = tmp_path / ".regenmap" / "lock"
    lock.parent.mkdir()
    lock.write_text(str(dead.pid))
    with run_lock(tmp_path) as held:
        assert held.read_text() == str(os.getpid())
    assert not lock.exists()
