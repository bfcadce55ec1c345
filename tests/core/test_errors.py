"""regenmap's errors cross process boundaries whole (Dask workers send them pickled)."""

import pickle

import pytest
import rasterio
from distributed import Client, LocalCluster
from tblib import pickling_support

from regenmap.errors import (
    ConfigError,
    CRSError,
    FieldError,
    InputError,
    LockError,
    MissingBandError,
    ModelError,
    OutputError,
    SchemaError,
    picklable_errors,
)

ALL = [ConfigError("c"), InputError("i", path="/a.tif"), MissingBandError("m", path="/b.tif"),
       CRSError("crs"), FieldError("f", path="/f.gpkg"), SchemaError("s"), ModelError("mo"),
       OutputError("o", path="/out"), LockError("l", path="/out/.regenmap/lock")]


@pytest.mark.parametrize("err", ALL, ids=lambda e: type(e).__name__)
def test_every_error_pickles_with_its_path(err):
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err) and str(back) == str(err)
    assert getattr(back, "path", None) == getattr(err, "path", None)


@picklable_errors()
def read_truncated(path: str) -> None:
    """What a reader does: turn rasterio's error into an InputError (raised while handling it)."""
    try:
        with rasterio.open(path):
            pass
    except rasterio.errors.RasterioIOError as err:
        raise InputError(f"cannot open raster: {err}", path=path) from None


def test_an_input_error_raised_from_a_rasterio_error_reaches_the_client_whole(tmp_path):
    bad = tmp_path / "truncated.tif"
    bad.write_bytes(b"II*\0" + b"\0" * 10)
    with pytest.raises(InputError) as local:
        read_truncated(str(bad))
    pickling_support.install(local.value)  # as Dask does: the error is sent with its chain
    assert type(pickle.loads(pickle.dumps(local.value))) is InputError
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client, \
            pytest.raises(InputError) as remote:
        client.submit(read_truncated, str(bad)).result()
    assert remote.value.path == str(bad)
    assert str(remote.value).startswith(f"{bad}: cannot open raster")
