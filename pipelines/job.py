"""``regenmap run``: every stage of a job in order, with checkpoints, a lock, progress and a summary.

The Dask cluster is opened once per run, and only if a stage that needs it
(extraction) has work to do: an existing scheduler (``cluster.address`` or
``--scheduler``), a cluster profile (``configs/cluster/``, see
:mod:`regenmap.pipelines.cluster`) or a LocalCluster sized to the machine. Its
dashboard address is reported as a ``cluster`` event.

SIGTERM (what batch schedulers send at a time limit or pre-emption) is turned
into the same clean stop as Ctrl-C: the lock is released, finished stages and
tiles are kept, and the exit code is 130, so re-running continues.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regenmap.io import to_jsonable
from regenmap.pipelines.checkpoints import mark_done, run_lock, stage_done
from regenmap.pipelines.config import RunConfig, as_config
from regenmap.pipelines.log import Reporter
from regenmap.pipelines.stages import STAGES

if TYPE_CHECKING:
    from distributed import Client

#: Times a cluster stage is started again after the cluster lost a worker or a connection.
CLUSTER_RETRIES = 2


@dataclass
class RunResult:
    """What a run produced: output paths, held-out metrics, counts and timings.

    Attributes
    ----------
    config
        The configuration that ran.
    outputs
        Output name -> path (or target -> path for models).
    metrics
        Target -> held-out metric name -> value (spatial cross-validation).
    counts
        Target -> status -> number of fields.
    timings
        Stage -> seconds (0 for a stage skipped from its checkpoint).
    skipped
        Stages skipped because their checkpoint was valid.
    dashboard
        Dask dashboard link of the cluster the run used, if one was started or joined.
    """

    config: RunConfig
    outputs: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    dashboard: str | None = None


class _LazyClient:
    """Opens the run's Dask client on first use; closes it with the run or on :meth:`reset`."""

    def __init__(self, cfg: RunConfig, reporter: Reporter, client: Client | None,
                 profile: str | Path | None) -> None:
        self._cfg, self._reporter, self._profile = cfg, reporter, profile
        self._given = client
        self._stack = ExitStack()
        self.client: Client | None = client
        self.dashboard: str | None = None
        if client is not None:
            self._announce(client)

    def get(self) -> Client:
        if self.client is None:
            from regenmap.pipelines.cluster import open_client

            self.client = self._stack.enter_context(open_client(self._cfg.cluster,
                                                                profile=self._profile))
            self._announce(self.client)
        return self.client

    def reset(self) -> None:
        """Drop a client this run opened (its futures may be stale after a cluster fault)."""
        if self._given is None and self.client is not None:
            self.close()

    def close(self) -> None:
        self._stack.close()
        self._stack = ExitStack()
        self.client = self._given

    def _announce(self, client: Client) -> None:
        info = client.scheduler_info()
        self.dashboard = client.dashboard_link
        self._reporter.event("cluster", stage="run", scheduler=info.get("address"),
                             workers=len(info.get("workers", {})), dashboard=self.dashboard)


def run(config: RunConfig | str | Path, *, quiet: bool = False,
        stages: tuple[str, ...] = tuple(STAGES), client: Client | None = None,
        profile: str | Path | None = None) -> RunResult:
    """Run the stages of a job in order, skipping those already done.

    Parameters
    ----------
    config
        Run configuration or the path of its YAML file.
    quiet
        JSON log lines (including throttled ``progress`` lines) instead of rich progress bars.
    stages
        Stages to run, in order (default: all).
    client
        Dask client to use; otherwise one is opened when a cluster stage has work:
        ``cluster.address``, else the cluster ``profile`` (argument, ``cluster.profile``
        or ``$REGENMAP_CLUSTER_PROFILE``), else a LocalCluster.
    profile
        Cluster profile name (``configs/cluster/<name>.yaml``) or YAML path.

    Returns
    -------
    RunResult
        Paths, held-out metrics, status counts and timings.

    Raises
    ------
    LockError
        If another live run holds the lock of ``out_dir``.
    KeyboardInterrupt
        On Ctrl-C or SIGTERM (the CLI exits with 130; re-running continues).
    """
    cfg = as_config(config)
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        from regenmap.errors import ConfigError

        raise ConfigError(f"unknown stage(s) {unknown}; stages are {', '.join(STAGES)}")
    if cfg.scenes is None:
        stages = tuple(s for s in stages if s != "extract")
    reporter = Reporter(quiet=quiet)
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = RunResult(config=cfg)
    chash = cfg.run_hash()  # configuration and input contents
    lazy = _LazyClient(cfg, reporter, client, profile)
    with _sigterm_as_interrupt(), reporter.capture(), run_lock(out_dir), closing(lazy):
        upstream_ran = False
        for name in stages:
            stage = STAGES[name]
            # a stage after one that ran again must run again too: its inputs changed
            marker = None if upstream_ran else stage_done(out_dir, name, chash)
            if marker is not None:
                reporter.skipped(name, "finished earlier with the same configuration and inputs")
                result.skipped.append(name)
                result.outputs[name] = marker["outputs"]
                continue
            for attempt in range(CLUSTER_RETRIES + 1):
                try:
                    with reporter.stage(name):
                        produced = _run_stage(stage, cfg, reporter, lazy)
                    break
                except Exception as err:
                    if (not stage.uses_cluster or attempt == CLUSTER_RETRIES
                            or not _is_cluster_fault(err)):
                        raise
                    # Finished tiles are on disk: starting again computes only the rest.
                    reporter.event("retry", stage=name, attempt=attempt + 1,
                                   error=f"{type(err).__name__}: {err}"[:300])
                    lazy.reset()
            upstream_ran = True
            outputs = to_jsonable(produced)
            mark_done(out_dir, name, chash, outputs)
            result.outputs[name] = outputs
        result.dashboard = lazy.dashboard
    if len(result.skipped) == len(stages):
        reporter.event("nothing-to-do", stage="run", reason="every stage finished earlier")
    result.timings = reporter.timings
    _collect_summary(result)
    return result


def _run_stage(stage: Any, cfg: RunConfig, reporter: Reporter, lazy: _LazyClient
               ) -> dict[str, Path]:
    """Run one stage with the run's client (cluster stages only) and a progress display."""
    client = lazy.get() if stage.uses_cluster else None
    if stage.progress_unit is None:
        return dict(stage(cfg, client=client))
    with reporter.progress(stage.name, stage.progress_unit) as bar:
        return dict(stage(cfg, client=client, progress=bar))


def _is_cluster_fault(err: BaseException) -> bool:
    """Whether ``err`` is the cluster's failure (lost worker or connection), not the job's."""
    from distributed import KilledWorker
    from distributed.client import FutureCancelledError
    from distributed.comm.core import CommClosedError

    return isinstance(err, CommClosedError | KilledWorker | FutureCancelledError)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _collect_summary(result: RunResult) -> None:
    """Fill held-out metrics and status counts from the written artifacts."""
    from regenmap.pipelines.summary import heldout_metrics, status_counts

    result.metrics = heldout_metrics(result.config)
    result.counts = status_counts(result.config)
