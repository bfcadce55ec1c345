"""The Dask cluster a job runs on: an existing scheduler, a cluster profile, or a LocalCluster.

:func:`open_client` is the one way the pipeline opens a cluster, from the CLI, from
``run`` and from a stage called in Python without a client: an address
(``cluster.address`` or ``--scheduler``) wins, then a profile (argument,
``cluster.profile`` or ``$REGENMAP_CLUSTER_PROFILE``), then a LocalCluster sized to
the machine.

Cluster profiles are named in ``configs/cluster/<name>.yaml``.

A profile is a small YAML file::

    kind: slurm            # local | slurm | pbs
    cluster:               # keyword arguments of the cluster class
      queue: normal        #   (dask_jobqueue.SLURMCluster / PBSCluster, or LocalCluster)
      cores: 8
      processes: 8
      memory: 32GiB
      walltime: "04:00:00"
    scale:                 # how many batch jobs of workers to ask for
      jobs: 4              #   fixed, or  minimum_jobs / maximum_jobs  to adapt

``slurm`` and ``pbs`` need the optional package ``dask-jobqueue``
(``pip install "regenmap[cluster]"``). A Kubernetes cluster (dask-kubernetes
operator, or a Helm-deployed scheduler) is used through its address alone:
``--scheduler tcp://HOST:8786`` or ``cluster.address`` (see ``docs/cluster.md``).

"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regenmap.errors import ConfigError

if TYPE_CHECKING:
    from distributed import Client

    from regenmap.pipelines.config import ClusterConfig

log = logging.getLogger(__name__)

#: Environment variable naming a cluster profile when the configuration names none.
PROFILE_ENV = "REGENMAP_CLUSTER_PROFILE"
KINDS = ("local", "slurm", "pbs")
_JOBQUEUE_CLASS = {"slurm": "SLURMCluster", "pbs": "PBSCluster"}


@dataclass(frozen=True)
class ClusterProfile:
    """A parsed cluster profile.

    Attributes
    ----------
    name
        Profile name (file stem) or path.
    kind
        ``local``, ``slurm`` or ``pbs``.
    cluster
        Keyword arguments of the cluster class.
    scale
        ``{"jobs": n}`` for a fixed size, or ``{"minimum_jobs": a, "maximum_jobs": b}`` to
        adapt; workers for ``local`` come from ``cluster.n_workers``.
    source
        File the profile was read from.
    """

    name: str
    kind: str
    cluster: dict[str, Any] = field(default_factory=dict)
    scale: dict[str, int] = field(default_factory=dict)
    source: Path | None = None


def profile_dir() -> Path:
    """Folder of the built-in cluster profiles (``configs/cluster``)."""
    from regenmap.pipelines.config import CONFIGS_DIR

    return CONFIGS_DIR / "cluster"


def builtin_profiles() -> list[str]:
    """Names of the built-in cluster profiles."""
    return sorted(p.stem for p in profile_dir().glob("*.yaml"))


def load_profile(name: str | Path) -> ClusterProfile:
    """Read a cluster profile by built-in name or YAML path.

    Raises
    ------
    ConfigError
        Unknown name (listing the built-in ones), unreadable YAML, unknown ``kind`` or key.
    """
    from regenmap.pipelines.config import read_yaml

    path = Path(name)
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        path = profile_dir() / f"{name}.yaml"
        if not path.is_file():
            raise ConfigError(f"cluster profile {str(name)!r} not found: give the path of a "
                              f"profile YAML or one of {', '.join(builtin_profiles())} "
                              f"(in {profile_dir()})")
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a cluster profile is a mapping with 'kind', 'cluster', 'scale'")
    unknown = sorted(set(data) - {"kind", "cluster", "scale", "description"})
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; a profile has "
                          "'kind', 'cluster', 'scale' and optionally 'description'")
    kind = str(data.get("kind", ""))
    if kind not in KINDS:
        raise ConfigError(f"{path}: kind={kind!r}; use one of {', '.join(KINDS)} (Kubernetes: "
                          "give the scheduler's address instead, see docs/cluster.md)")
    cluster = dict(data.get("cluster") or {})
    scale = {str(k): int(v) for k, v in (data.get("scale") or {}).items()}
    bad = sorted(set(scale) - {"jobs", "minimum_jobs", "maximum_jobs"})
    if bad:
        raise ConfigError(f"{path}: scale.{bad[0]} is unknown; use 'jobs', or "
                          "'minimum_jobs' and 'maximum_jobs'")
    return ClusterProfile(name=str(name), kind=kind, cluster=_expand(cluster), scale=scale,
                          source=path)


def _expand(options: dict[str, Any]) -> dict[str, Any]:
    """Expand ``$VARS`` and ``~`` in string options (e.g. ``local_directory: $TMPDIR``)."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, str):
            value = str(Path(os.path.expandvars(value)).expanduser()) if value else value
        out[str(key)] = value
    return out


def jobqueue_cluster(profile: ClusterProfile) -> Any:
    """Create (not yet scale) the dask-jobqueue cluster of a ``slurm`` or ``pbs`` profile.

    Raises
    ------
    ConfigError
        If dask-jobqueue is not installed, or the profile's options are rejected.
    """
    try:
        import dask_jobqueue
    except ImportError:
        raise ConfigError(f"cluster profile {profile.name!r} ({profile.kind}) needs the optional "
                          "package dask-jobqueue: pip install 'regenmap[cluster]' (or "
                          "pip install dask-jobqueue)") from None
    cls = getattr(dask_jobqueue, _JOBQUEUE_CLASS[profile.kind])
    try:
        return cls(**profile.cluster)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"cluster profile {profile.source}: {cls.__name__} rejects the "
                          f"'cluster' options: {err}") from None


def _json_worker_logs(quiet: bool, processes: bool) -> dict[str, Any]:
    """LocalCluster options making worker processes log JSON lines (batch logs, ``--quiet``)."""
    if not (quiet and processes):
        return {}
    from regenmap.pipelines.worker_log import PRELOAD

    return {"preload": [PRELOAD]}


@contextmanager
def profile_client(profile: ClusterProfile | str | Path, *, quiet: bool = False
                   ) -> Iterator[Client]:
    """Start the cluster of a profile, yield a client, and stop the cluster afterwards.

    Batch workers are asked for with ``scale.jobs`` (fixed) or adapt between
    ``scale.minimum_jobs`` and ``scale.maximum_jobs``; the client does not wait
    for them (tasks start as soon as the first worker joins). With ``quiet``, the
    worker processes of a ``local`` profile write their logs as JSON lines.
    """
    from distributed import Client, LocalCluster

    prof = profile if isinstance(profile, ClusterProfile) else load_profile(profile)
    if prof.kind == "local":
        opts = {"dashboard_address": ":0",
                **_json_worker_logs(quiet, bool(prof.cluster.get("processes", True))),
                **prof.cluster}
        try:
            cluster: Any = LocalCluster(**opts)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"cluster profile {prof.source}: LocalCluster rejects the "
                              f"'cluster' options: {err}") from None
    else:
        cluster = jobqueue_cluster(prof)
        if "minimum_jobs" in prof.scale or "maximum_jobs" in prof.scale:
            cluster.adapt(minimum_jobs=prof.scale.get("minimum_jobs", 0),
                          maximum_jobs=prof.scale.get("maximum_jobs", 1))
        else:
            cluster.scale(jobs=prof.scale.get("jobs", 1))
    client = Client(cluster)
    log.info("Dask cluster from profile %s (%s); dashboard: %s", prof.name, prof.kind,
             client.dashboard_link)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def chosen_profile(cluster_config: ClusterConfig | None, profile: str | Path | None = None
                   ) -> str | Path | None:
    """Return the profile to use: the argument, ``cluster.profile`` or ``$REGENMAP_CLUSTER_PROFILE``."""
    if profile:
        return profile
    from_config = getattr(cluster_config, "profile", None) if cluster_config else None
    return from_config or os.environ.get(PROFILE_ENV) or None


@contextmanager
def open_client(cluster_config: ClusterConfig | None = None, *,
                profile: str | Path | None = None, quiet: bool = False) -> Iterator[Client]:
    """Yield a Dask client for a job: an existing scheduler, a profile's cluster, or a LocalCluster.

    Parameters
    ----------
    cluster_config
        The run's ``cluster`` section; its ``address`` wins over any profile.
    profile
        Cluster profile name or path (else ``cluster.profile`` or ``$REGENMAP_CLUSTER_PROFILE``).
    quiet
        Batch logs: local worker processes (which share this process's standard error)
        write their log records and warnings as JSON lines.
    """
    chosen = chosen_profile(cluster_config, profile)
    if chosen and not (cluster_config and cluster_config.address):
        with profile_client(chosen, quiet=quiet) as client:
            yield client
        return
    with _address_or_local(cluster_config, quiet=quiet) as client:
        yield client


def default_workers() -> int:
    """Return the number of cores this process may use (affinity-aware)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@contextmanager
def _address_or_local(cluster_config: ClusterConfig | None = None, *, quiet: bool = False
                      ) -> Iterator[Client]:
    """Start (or connect to) a Dask cluster and yield a client; close what was started.

    Parameters
    ----------
    cluster_config
        ``address`` connects to an existing scheduler; otherwise a LocalCluster with
        ``n_workers`` (default: the number of cores) worker processes (threads if
        ``processes`` is false) of ``threads_per_worker`` threads each (default 1).
    quiet
        Worker processes write their logs as JSON lines.

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
                           dashboard_address=":0", **_json_worker_logs(quiet, processes))
    client = Client(cluster)
    log.info("Dask LocalCluster: %d worker(s) x %d thread(s); dashboard: %s", n_workers,
             cluster_config.threads_per_worker, client.dashboard_link)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
