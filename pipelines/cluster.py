"""Dask cluster for the pipeline stages: a LocalCluster sized to the machine, or an address."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from regenmap.errors import ConfigError

if TYPE_CHECKING:
    from distributed import Client

    from regenmap.pipelines.config import ClusterConfig

log = logging.getLogger(__name__)


def default_workers() -> int:
    """Return the number of cores this process may use (affinity-aware)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@contextmanager
def get_client(cluster_config: ClusterConfig | None = None) -> Iterator[Client]:
    """Start (or connect to) a Dask cluster and yield a client; close what was started.

    Parameters
    ----------
    cluster_config
        ``address`` connects to an existing scheduler; otherwise a LocalCluster with
        ``n_workers`` (default: the number of cores) worker processes (threads if
        ``processes`` is false) of ``threads_per_worker`` threads each (default 1).

    Yields
    ------
    distributed.Client
        The dashboard link is logged at INFO level.

    Raises
    ------
    ConfigError
        If the scheduler address cannot be reached.
    """
    from distributed import Client, LocalCluster

    if cluster_config is None:
        from regenmap.pipelines.config import ClusterConfig

        cluster_config = ClusterConfig()
    if cluster_config.address:
        try:
            client = Client(cluster_config.address, timeout="20s")
        except (OSError, TimeoutError) as err:
            raise ConfigError(f"cluster.address: cannot reach the Dask scheduler at "
                              f"{cluster_config.address!r}: {err}") from None
        log.info("Dask dashboard: %s", client.dashboard_link)
        try:
            yield client
        finally:
            client.close()
        return
    n_workers = cluster_config.n_workers or default_workers()
    processes = getattr(cluster_config, "processes", True)
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=cluster_config.threads_per_worker,
                           processes=processes, memory_limit=cluster_config.memory_limit,
                           dashboard_address=":0")
    client = Client(cluster)
    log.info("Dask LocalCluster: %d worker(s) x %d thread(s); dashboard: %s", n_workers,
             cluster_config.threads_per_worker, client.dashboard_link)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
