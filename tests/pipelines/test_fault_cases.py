"""The fault battery, case by case, through the real command line.

Each bad input or fault must end with one clear message naming the file and the fix,
the exit code of its family (docs/cli.md), no Python traceback, and no data loss. The
simulated region and the reference run are those of test_run.py (sim_jobs).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
import yaml
from damage import flip_one_byte, truncate
from mounts import fill, small_filesystem
from sim_jobs import make_job, reference_run, shared_region, shared_root

pytestmark = pytest.mark.slow

DEADLINE_S = 600.0


# --------------------------------------------------------------------------- helpers
def cli(*args: object, timeout: float = DEADLINE_S) -> subprocess.CompletedProcess[str]:
    """Run ``regenmap ARGS`` as a user would, and wait for it."""
    return subprocess.run([sys.executable, "-m", "regenmap.pipelines.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "COLUMNS": "200"})


def spawn(*args: object, log: Path) -> subprocess.Popen[bytes]:
    """Start ``regenmap ARGS`` in its own process group, standard error to ``log``."""
    with log.open("wb") as fh:
        return subprocess.Popen([sys.executable, "-m", "regenmap.pipelines.cli", *map(str, args)],
                                stdout=subprocess.DEVNULL, stderr=fh, start_new_session=True)


def wait_for(check: Callable[[], bool], what: str, proc: subprocess.Popen[bytes] | None = None,
             timeout: float = DEADLINE_S, every: float = 0.1) -> None:
    t0 = time.monotonic()
    while not check():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"exited ({proc.returncode}) while waiting for {what}")
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def assert_clear(done: subprocess.CompletedProcess[str], code: int, *fragments: str) -> str:
    """The command exited with ``code``, said each fragment, and showed no traceback."""
    said = done.stderr + done.stdout
    assert done.returncode == code, said[-4000:]
    assert "Traceback" not in said, said[-4000:]
    flat = " ".join(said.split())
    for fragment in fragments:
        assert fragment in flat, f"{fragment!r} not in:\n{said[-4000:]}"
    return flat


def json_events(stderr: str) -> list[dict[str, Any]]:
    """Every line of a --quiet standard error, which must all be JSON objects."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    events = []
    for line in lines:
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON line on stderr: {line!r}") from None
    return events


def job(tmp_path: Path, name: str, **changes: Any) -> tuple[Path, dict[str, Any]]:
    """A job over the shared region writing to ``tmp_path/name``; ``changes`` update sections."""
    root = shared_root_of(tmp_path)
    shared_region(root)
    path = make_job(root, f"_{name}_template", tile_size_px=128,
                    cluster={"n_workers": 1, "processes": True})
    config = yaml.safe_load(path.read_text())
    path.unlink()
    config["out_dir"] = str(tmp_path / name)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    out = tmp_path / f"{name}.yaml"
    out.write_text(yaml.safe_dump(config))
    return out, config


_FACTORY: list[pytest.TempPathFactory] = []


@pytest.fixture(autouse=True)
def _factory(tmp_path_factory: pytest.TempPathFactory) -> None:
    _FACTORY[:] = [tmp_path_factory]


def shared_root_of(tmp_path: Path) -> Path:
    return shared_root(_FACTORY[0])


def finished_run(tmp_path: Path, name: str = "run") -> tuple[Path, Path]:
    """A copy of the reference run (every stage done) and its configuration."""
    ref = reference_run(_FACTORY[0])
    out = tmp_path / name
    shutil.copytree(ref, out, ignore=shutil.ignore_patterns("lock", "lock.host"))
    cfg, _ = job(tmp_path, name)
    return out, cfg


# --------------------------------------------------------------------------- damaged artifacts
def edit_leaf_values(path: Path) -> None:
    """A well-formed booster whose predictions differ: every leaf of the first tree moved."""
    text = path.read_text()
    line = re.search(r"^leaf_value=(.*)$", text, flags=re.M)
    assert line is not None
    moved = " ".join(repr(float(v) + 3.0) for v in line.group(1).split())
    path.write_text(text.replace(line.group(0), f"leaf_value={moved}", 1))


@pytest.mark.parametrize("command,relative,damage,message", [
    ("predict", "model/tillage/booster.txt", truncate, "this file changed since the model was written"),
    ("predict", "model/tillage/booster.txt", flip_one_byte, "same size, different content"),
    ("predict", "model/tillage/booster.txt", edit_leaf_values, "truncated, damaged or edited"),
    ("predict", "model/tillage/reference.json", truncate, "this file changed since the model"),
    ("predict", "model/tillage/metadata.json", truncate,
     "the model metadata is damaged or truncated"),
    ("evaluate", "model/winter_cover/cv.json", truncate, "this file changed since the model"),
], ids=["booster-truncated", "booster-bitrot", "booster-edited", "reference-truncated",
        "metadata-truncated", "cv-truncated"])
def test_a_damaged_artifact_is_refused_with_exit_4_naming_it(
        tmp_path: Path, command: str, relative: str, damage: Callable[[Path], None],
        message: str) -> None:
    out, cfg = finished_run(tmp_path)
    victim = out / relative
    damage(victim)
    before = (out / "practices.gpkg").read_bytes()
    done = cli(command, cfg, "--quiet")
    events = json_events(done.stderr)
    assert_clear(done, 4, f"{victim}: ", message)
    last = events[-1]
    assert (last["event"], last["status"], last["exit_code"]) == ("finished", "failed", 4)
    assert last["message"].startswith(f"{victim}: ")
    assert (out / "practices.gpkg").read_bytes() == before  # nothing replaced


# --------------------------------------------------------------------------- permissions
def run_as(user: str, args: list[str], log: Path) -> int:
    """Run the command line in a real process of ``user`` (forked, then setuid); its exit code.

    A fork rather than runuser: this interpreter may live where the user cannot read.
    """
    import regenmap.pipelines.cli
    import regenmap.pipelines.demo
    import regenmap.pipelines.job  # imported before the user changes

    entry = pwd.getpwnam(user)
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            # the command prints through sys.stderr, which is pytest's capture here
            sys.stdout = sys.stderr = open(fd, "w", buffering=1)  # noqa: SIM115
            os.setgroups([])
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)
            os.environ.update(HOME="/nonexistent", USER=user, REGENMAP_CACHE_DIR="/tmp")
            sys.argv = ["regenmap", *args]
            regenmap.pipelines.cli.main()
            code = 0
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else 1
        finally:
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_an_output_folder_a_normal_user_cannot_write_is_exit_6_before_anything(
        tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to run the command as user nobody")
    opened = {}
    for folder in (tmp_path, *tmp_path.parents):  # pytest's folders are private: let nobody in
        mode = folder.stat().st_mode
        if mode & 0o005 == 0o005:
            break
        opened[folder] = mode
        folder.chmod(mode | 0o005)
    try:
        theirs = tmp_path / "root-owned"
        theirs.mkdir(mode=0o755)
        log = tmp_path / "demo.log"
        code = run_as("nobody", ["demo", "--out", str(theirs)], log)
        said = " ".join(log.read_text().split())
        assert code == 6, said
        assert "Traceback" not in said
        assert f"output folder {theirs} cannot be written by user nobody (owner root" in said
        assert "chmod, chown" in said
        assert list(theirs.iterdir()) == []
        code = run_as("nobody", ["demo", "--out", str(theirs / "new")], log)
        said = " ".join(log.read_text().split())
        assert code == 6, said
        assert f"permission denied in {theirs} for user nobody" in said
    finally:
        for folder, mode in opened.items():
            folder.chmod(mode)


def test_a_read_only_output_folder_is_refused_before_the_first_stage_even_as_root(
        tmp_path: Path) -> None:
    cfg, config = job(tmp_path, "readonly")
    out = Path(config["out_dir"])
    out.mkdir(mode=0o555)
    try:
        done = cli("run", cfg, "--quiet")
    finally:
        out.chmod(0o755)
    events = json_events(done.stderr)
    assert_clear(done, 6, f"output folder {out} is read-only (mode dr-xr-xr-x)")
    assert [e["event"] for e in events] == ["finished"]  # no stage started
    assert list(out.iterdir()) == []


# --------------------------------------------------------------------------- disk full
def test_a_disk_filling_while_the_geopackage_is_written_is_exit_6_and_keeps_the_old_one(
        tmp_path: Path) -> None:
    ref = reference_run(_FACTORY[0])
    size = sum(p.stat().st_size for p in ref.rglob("*") if p.is_file())
    with small_filesystem(tmp_path / "disk", size // 1024 + 4096) as disk:
        out = disk / "run"
        shutil.copytree(ref, out, ignore=shutil.ignore_patterns("lock", "lock.host"))
        cfg, _ = job(tmp_path, "diskfull", out_dir=str(out))
        previous = (out / "practices.gpkg").read_bytes()
        small = sum((out / n).stat().st_size for n in ("predictions.parquet", "drift.json"))
        assert len(previous) > small + 256 * 1024, "the GeoPackage must be the file that fails"
        fill(disk, small + 128 * 1024)
        done = cli("predict", cfg)
        assert_clear(done, 6, f"{out / 'practices.gpkg'}: cannot write: the disk is full (",
                     f"MiB free in {out}", "Free some space there or choose another output folder")
        assert (out / "practices.gpkg").read_bytes() == previous
        assert not [p.name for p in out.iterdir() if ".tmp" in p.name]


# --------------------------------------------------------------------------- scenes
def truncated_cog_scenes(tmp_path: Path) -> tuple[Path, Path]:
    """The region's scenes (links), one band file rewritten as a COG and cut mid-data."""
    import rasterio
    from rasterio.shutil import copy as rio_copy

    region = shared_region(shared_root_of(tmp_path))
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    for f in sorted((region / "scenes").iterdir()):
        (scenes / f.name).symlink_to(f)
    victim = sorted(scenes.glob("*_B08_10m.tif"))[5]
    victim.unlink()
    rio_copy(region / "scenes" / victim.name, victim, driver="COG", compress="DEFLATE",
             blocksize=256)
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) * 6 // 10])
    with rasterio.open(victim) as ds:  # the header is whole: the damage is in the data
        assert ds.block_shapes == [(256, 256)]
    return scenes, victim


def test_a_cog_truncated_mid_data_under_on_error_fail_is_exit_3_from_a_worker(
        tmp_path: Path) -> None:
    scenes, victim = truncated_cog_scenes(tmp_path)
    cfg, _ = job(tmp_path, "cog", scenes={"path": str(scenes)},
                 extract={"on_error": "fail", "tile_size_px": 2048},
                 cluster={"n_workers": 1, "processes": True})  # the error crosses processes
    done = cli("extract", cfg, "--quiet")
    events = json_events(done.stderr)
    assert_clear(done, 3, f"{victim}: cannot read band 1 window",
                 "The file may be truncated or corrupt; re-download it")
    assert events[-1]["error"] == "InputError"


# --------------------------------------------------------------------------- the lock, logs
def test_every_writing_command_waits_for_the_lock_and_a_run_logs_json_only(tmp_path: Path) -> None:
    cfg, config = job(tmp_path, "locked")
    out = Path(config["out_dir"])
    log = tmp_path / "run.log"
    holder = spawn("run", cfg, "--quiet", log=log)
    lost = out / "observations" / ".tile=r9_c9.0123456789ab.tmp.parquet"
    try:
        wait_for(lambda: '"event": "start"' in log.read_text(), "the first stage", holder)
        assert (out / ".regenmap" / "lock").is_file()
        # paused, the run holds its lock however long the commands below take
        os.killpg(holder.pid, signal.SIGSTOP)
        # what a worker killed while writing a tile leaves: removed once the stage is done
        lost.parent.mkdir(parents=True, exist_ok=True)
        lost.write_bytes(b"PAR1 half a tile")
        try:
            for command in ("extract", "features", "train", "evaluate", "predict"):
                done = cli(command, cfg)
                assert_clear(done, 7,
                             f"another regenmap run (pid {holder.pid}) is writing to {out}")
        finally:
            os.killpg(holder.pid, signal.SIGCONT)
        assert holder.wait(timeout=DEADLINE_S) == 0, log.read_text()[-3000:]
    finally:
        if holder.poll() is None:
            os.killpg(holder.pid, signal.SIGKILL)
            holder.wait()
    events = json_events(log.read_text())
    cleaned = next(e for e in events if e["event"] == "cleaned")
    assert (cleaned["stage"], cleaned["files"]) == ("extract", [str(lost)])
    assert not lost.exists()
    summary = next(e for e in events if e["event"] == "summary")
    assert summary["stage"] == "extract" and summary["acquisitions"] == summary["read"] == 16
    assert summary["failed"] == 0 and sum(summary["fields"].values()) == 315
    last = events[-1]
    assert (last["event"], last["status"], last["exit_code"]) == ("finished", "ok", 0)
    assert set(last["metrics"]) == {"tillage", "winter_cover"}
    assert all(0 < m["accuracy"] <= 1 for m in last["metrics"].values())
    assert set(last["outputs"]) == {"extract", "features", "train", "evaluate", "predict"}
    paths = [Path(p) for stage in last["outputs"].values() for p in stage.values()]
    assert out / "practices.gpkg" in paths and all(p.exists() for p in paths)


def test_sigterm_stops_a_run_named_as_such_with_exit_130(tmp_path: Path) -> None:
    cfg, config = job(tmp_path, "terminated")
    out = Path(config["out_dir"])
    log = tmp_path / "run.log"
    proc = spawn("run", cfg, "--quiet", log=log)
    try:
        wait_for(lambda: '"event": "progress"' in log.read_text(), "extraction to start", proc)
        os.killpg(proc.pid, signal.SIGTERM)  # as SLURM does: the whole job gets it
        assert proc.wait(timeout=120) == 130, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    events = json_events(log.read_text())
    assert {"event": "interrupted", "stage": "extract", "signal": "SIGTERM"}.items() <= next(
        e for e in events if e["event"] == "interrupted").items()
    last = events[-1]
    assert (last["event"], last["status"], last["signal"], last["exit_code"]) == (
        "finished", "interrupted", "SIGTERM", 130)
    assert not (out / ".regenmap" / "lock").exists()
    assert "KeyboardInterrupt" not in log.read_text()


def test_extract_shows_progress_on_a_terminal_and_a_summary_line(tmp_path: Path) -> None:
    import pty

    cfg, config = job(tmp_path, "tty")
    main, sub = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "regenmap.pipelines.cli", "extract", str(cfg)],
                            stdin=sub, stdout=sub, stderr=sub, env={**os.environ, "COLUMNS": "200"})
    os.close(sub)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the terminal closed: the command ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert proc.wait(timeout=DEADLINE_S) == 0
    os.close(main)
    screen = b"".join(chunks).decode(errors="replace")
    assert "extract tile x acquisition tasks" in screen and "━" in screen  # the progress bar
    flat = " ".join(re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen).split())
    assert "summary extract 16 acquisition(s): 16 read, 0 failed; 315 field(s): " in flat
    assert "Traceback" not in screen
    assert (Path(config["out_dir"]) / "fields_status.parquet").is_file()


# --------------------------------------------------------------------------- leftovers
def test_leftovers_of_a_run_killed_while_writing_the_geopackage_are_removed(
        tmp_path: Path) -> None:
    out, cfg = finished_run(tmp_path)
    (out / "practices.gpkg").unlink()
    leftovers: list[str] = []

    def temporary() -> bool:
        leftovers[:] = [p.name for p in out.iterdir() if p.name.startswith(".practices.")
                        and ".tmp" in p.name]
        return bool(leftovers)

    for _ in range(5):  # the write lasts a fraction of a second: catch it, kill it
        proc = spawn("predict", cfg, log=tmp_path / "predict.log")
        try:
            wait_for(lambda p=proc: temporary() or p.poll() is not None,  # type: ignore[misc]
                     "the GeoPackage write", every=0.005)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if leftovers and not (out / "practices.gpkg").exists():
            break
        (out / "practices.gpkg").unlink(missing_ok=True)
    else:
        pytest.fail("could not kill predict while it wrote the GeoPackage")
    assert temporary(), "a SIGKILLed writer leaves its temporary GeoPackage"
    stale = out / "model" / "tillage" / ".booster.0123456789ab.tmp.txt"
    stale.write_text("half")
    done = cli("predict", cfg, "--quiet")
    events = json_events(done.stderr)
    assert_clear(done, 0)
    cleaned = next(e for e in events if e["event"] == "cleaned")
    assert {str(out / name) for name in leftovers} | {str(stale)} <= set(cleaned["files"])
    assert not [p for p in out.rglob("*") if p.name.startswith(".") and ".tmp" in p.name]
    assert (out / "practices.gpkg").is_file()


# --------------------------------------------------------------------------- fields and labels
def test_a_field_file_with_several_layers_needs_fields_layer(tmp_path: Path) -> None:
    region = shared_region(shared_root_of(tmp_path))
    fields = gpd.read_file(region / "fields.gpkg", layer="fields")
    both = tmp_path / "two_layers.gpkg"
    fields.iloc[:40].to_file(both, layer="decoy")  # written first: the one a reader would take
    fields.to_file(both, layer="fields")
    cfg, _ = job(tmp_path, "layers", fields={"path": str(both), "layer": None})
    done = cli("extract", cfg)
    assert_clear(done, 3, f"{both}: the file holds 2 layers:", "'decoy' (40 features,",
                 "'fields' (315 features,", "Set fields.layer to the one to read")


def test_an_empty_field_layer_stops_at_once_naming_the_file(tmp_path: Path) -> None:
    region = shared_region(shared_root_of(tmp_path))
    empty = tmp_path / "empty.gpkg"
    gpd.read_file(region / "fields.gpkg", layer="fields").iloc[:0].to_file(empty, layer="fields")
    cfg, _ = job(tmp_path, "empty", fields={"path": str(empty), "layer": "fields"})
    t0 = time.monotonic()
    done = cli("run", cfg, "--quiet")
    events = json_events(done.stderr)
    assert_clear(done, 3, f"{empty}: layer 'fields' holds no field polygon (0 features)")
    assert "cluster" not in {e["event"] for e in events}  # stopped before any cluster
    assert time.monotonic() - t0 < 120


def labels_from_fields(tmp_path: Path, name: str) -> gpd.GeoDataFrame:
    region = shared_region(shared_root_of(tmp_path))
    return gpd.read_file(region / "fields.gpkg", layer="fields")[
        ["field_id", "region", "tillage", "winter_cover", "geometry"]]


def test_a_shapefile_target_cut_to_ten_characters_is_recognised_and_named(
        tmp_path: Path) -> None:
    import warnings

    out, cfg = finished_run(tmp_path)
    shp = tmp_path / "labels.shp"
    with warnings.catch_warnings():  # GDAL says it cuts the name: that is the point
        warnings.simplefilter("ignore")
        labels_from_fields(tmp_path, "shp").to_file(shp)
    assert "winter_cov" in gpd.read_file(shp).columns
    config = yaml.safe_load(cfg.read_text())
    config["model"]["labels"] = {"path": str(shp)}
    cfg.write_text(yaml.safe_dump(config))
    done = cli("train", cfg, "--quiet")
    events = json_events(done.stderr)
    assert_clear(done, 0)
    said = [e["message"] for e in events if e["event"] == "warning"]
    assert any("column 'winter_cov' of labels.shp read as 'winter_cover' (Shapefile column "
               "names are cut to 10 characters)" in m for m in said), said
    assert any("model.classes.tillage is not set, so its 3 classes come from the labels: "
               in m for m in said), said  # undeclared classes are listed
    assert (out / "model" / "winter_cover" / "metadata.json").is_file()


def test_a_label_typo_close_to_a_class_is_exit_5_with_did_you_mean(tmp_path: Path) -> None:
    _, cfg = finished_run(tmp_path)
    table = labels_from_fields(tmp_path, "typo").drop(columns="geometry")
    typos = table.index[table["tillage"] == "no_till"][:4]
    table.loc[typos, "tillage"] = "No-Till "
    csv = tmp_path / "labels.csv"
    table.to_csv(csv, index=False)
    config = yaml.safe_load(cfg.read_text())
    config["model"]["labels"] = {"path": str(csv)}
    cfg.write_text(yaml.safe_dump(config))
    done = cli("train", cfg)
    assert_clear(done, 5, "labels of target 'tillage' hold classes that differ only in case, "
                          "spaces or hyphens: 'No-Till' (4 fields, did you mean 'no_till' (")
