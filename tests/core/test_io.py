"""regenmap.io: atomic writes, the one JSON rule, folder checks, leftovers."""

import json
import math
import os
import stat

import numpy as np
import pandas as pd
import pytest

from regenmap import io
from regenmap.errors import OutputError, SchemaError


def test_atomic_path_replaces_only_on_success(tmp_path):
    final = tmp_path / "a.txt"
    final.write_text("old")
    with pytest.raises(RuntimeError), io.atomic_path(final) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert final.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
    with io.atomic_path(final) as tmp:
        assert tmp.parent == final.parent and tmp.name.startswith(".a.")
        tmp.write_text("new")
    assert final.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_atomic_path_needs_something_written(tmp_path):
    with pytest.raises(OutputError, match="nothing was written"), io.atomic_path(tmp_path / "x.gpkg"):
        pass


def test_atomic_path_removes_sqlite_sidecars(tmp_path):
    with pytest.raises(RuntimeError), io.atomic_path(tmp_path / "g.gpkg") as tmp:
        tmp.write_bytes(b"x")
        tmp.with_name(tmp.name + "-journal").write_bytes(b"j")
        raise RuntimeError
    assert list(tmp_path.iterdir()) == []


def test_files_honour_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        io.write_text_atomic(tmp_path / "t.txt", "x")
        io.write_json_atomic(tmp_path / "j.json", {"a": 1})
        io.write_parquet_atomic(pd.DataFrame({"a": [1]}), tmp_path / "p.parquet")
    finally:
        os.umask(old)
    for name in ("t.txt", "j.json", "p.parquet"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name


def test_json_is_strict_nan_is_null_numpy_is_numbers(tmp_path):
    data = {"nan": float("nan"), "inf": np.float32("inf"), "i": np.int64(3), "f": np.float32(0.5),
            "arr": np.array([1.0, np.nan]), "path": tmp_path, "set": {"b", "a"}, "t": (1, 2)}
    text = io.json_text(data)
    assert "NaN" not in text and "Infinity" not in text
    back = json.loads(text)
    assert back == {"nan": None, "inf": None, "i": 3, "f": 0.5, "arr": [1.0, None],
                    "path": str(tmp_path), "set": ["a", "b"], "t": [1, 2]}
    assert not math.isnan(back["f"])


def test_read_json_names_a_damaged_file(tmp_path):
    p = tmp_path / "reference.json"
    p.write_text('{"a": [1, 2')
    with pytest.raises(SchemaError, match=r"reference\.json: the model reference is damaged or truncated"):
        io.read_json(p, what="model reference")
    p.write_text("[1]")
    with pytest.raises(SchemaError, match="not a JSON object"):
        io.read_json(p)


def test_parquet_meta_round_trip(tmp_path):
    path = io.write_parquet_atomic(pd.DataFrame({"a": [1.0]}), tmp_path / "t.parquet",
                                   meta={"schema": "x/1", "v": float("nan")})
    assert io.parquet_meta(path) == {"schema": "x/1", "v": None}
    assert pd.read_parquet(path)["a"].tolist() == [1.0]


def test_check_writable_dir(tmp_path):
    assert io.check_writable_dir(tmp_path) == tmp_path.resolve()
    with pytest.raises(OutputError, match="does not exist"):
        io.check_writable_dir(tmp_path / "missing")
    assert io.check_writable_dir(tmp_path / "made", create=True).is_dir()
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(OutputError, match="is not a folder"):
        io.check_writable_dir(f)
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    try:
        with pytest.raises(OutputError, match=r"read-only \(mode dr-xr-xr-x\)"):
            io.check_writable_dir(ro)
    finally:
        ro.chmod(0o755)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_remove_leftovers_only_takes_temporary_files(tmp_path):
    keep = [tmp_path / "practices.gpkg", tmp_path / ".hidden", tmp_path / "x.tmp"]
    for p in keep:
        p.write_text("k")
    stale = io.temporary_name(tmp_path / "practices.gpkg")
    stale.write_text("s")
    assert io.remove_leftovers(tmp_path) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in keep)


def test_portable_paths_are_relative_to_the_output_folder(tmp_path):
    out = tmp_path / "run"
    data = {"inputs": [str(tmp_path / "region" / "fields.gpkg"), "s3://bucket/x.tif",
                       "/vsicurl/https://h/x.tif"],
            "model": {"path": out / "model" / "tillage"}, "note": "a / b", "n": 3}
    got = io.portable_paths(data, out)
    assert got == {"inputs": ["../region/fields.gpkg", "s3://bucket/x.tif",
                              "/vsicurl/https://h/x.tif"],
                   "model": {"path": "model/tillage"}, "note": "a / b", "n": 3}


def test_a_full_disk_names_the_file_the_free_space_and_the_fix(tmp_path):
    from mounts import fill, small_filesystem

    with small_filesystem(tmp_path / "small", 512) as disk:
        final = disk / "report.bin"
        final.write_bytes(b"previous")
        fill(disk, 8 * 1024)
        with pytest.raises(OutputError) as caught, io.atomic_path(final) as tmp:
            tmp.write_bytes(b"x" * 200_000)
        message = str(caught.value)
        assert message.startswith(f"{final}: cannot write: the disk is full (")
        assert f"MiB free in {disk})" in message and "choose another output folder" in message
        assert final.read_bytes() == b"previous"  # the previous file is intact
        assert sorted(p.name for p in disk.iterdir()) == ["filler.bin", "report.bin"]


def test_a_library_saying_the_disk_is_full_is_recognised(tmp_path):
    import sqlite3

    from mounts import fill, small_filesystem

    with small_filesystem(tmp_path / "small", 512) as disk:
        fill(disk, 16 * 1024)
        with pytest.raises(OutputError, match=r"the disk is full \(0\.\d MiB free in"), \
                io.atomic_path(disk / "t.gpkg") as tmp:
            con = sqlite3.connect(tmp)
            try:
                con.execute("create table t (x blob)")
                for _ in range(100):
                    con.execute("insert into t values (?)", (b"y" * 10_000,))
                con.commit()
            finally:
                con.close()
        assert [p.name for p in disk.iterdir()] == ["filler.bin"]


def test_an_unrelated_error_in_the_block_is_not_taken_for_a_write_failure(tmp_path):
    with pytest.raises(KeyError), io.atomic_path(tmp_path / "a.txt") as tmp:
        tmp.write_text("half")
        raise KeyError("bug")
    assert list(tmp_path.iterdir()) == []


def test_check_writable_dir_names_the_user_when_another_owns_the_folder(tmp_path):
    import pwd

    if os.geteuid() != 0:
        pytest.skip("needs root to act as another user")
    nobody = pwd.getpwnam("nobody")
    folder = tmp_path / "theirs"
    folder.mkdir(mode=0o755)
    tmp_path.chmod(0o755)
    pid = os.fork()
    if pid == 0:  # a real process of user nobody
        code = 0
        try:
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            io.check_writable_dir(folder)
            code = 10
        except OutputError as err:
            code = 0 if "cannot be written by user nobody (owner root" in str(err) else 11
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_remove_leftovers_leaves_other_hidden_temporary_files_alone(tmp_path):
    mine = [io.temporary_name(tmp_path / "practices.gpkg"),
            io.temporary_name(tmp_path / "booster.txt"), tmp_path / f".regenmap-probe-{'a' * 32}.tmp"]
    mine.append(mine[0].with_name(mine[0].name + "-journal"))
    theirs = [tmp_path / ".bashrc.tmp", tmp_path / ".notes.tmp.txt", tmp_path / ".x.12345.tmp"]
    for p in mine + theirs:
        p.write_text("x")
    assert sorted(io.remove_leftovers(tmp_path)) == sorted(mine)
    assert sorted(tmp_path.iterdir()) == sorted(theirs)
