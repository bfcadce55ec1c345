"""``regenmap run``: every stage of a job in order, with checkpoints, a lock, progress and a summary.

The Dask cluster is opened once per run, and only if a stage that needs it
(extraction) has work to do: an existing scheduler (``cluster.address`` or
``--scheduler``), a cluster profile (``configs/cluster/``, see
:mod:`regenmap.pipelines.cluster`) or a LocalCluster sized to the machine. Its
dashboard address is reported as a ``cluster`` event.

SIGTERM (what batch schedulers send at a time limit or pre-emption) is turned
into the same clean stop as Ctrl-C: the lock is released, finished stages and
tiles are kept, and the exit code is 130, so re-running continues.

Before the first stage the output folder is checked to be writable, locked, and
cleared of what killed runs left behind. The last event of a run (``finished``)
carries its outcome, the held-out metrics per target and every output path.
"""

from __future__ import annotations

from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regenmap.io import to_jsonable
from regenmap.pipelines import inputs
from regenmap.pipelines.checkpoints import (
    clean_leftovers,
    hold_output_folder,
    mark_done,
    stage_done,
)
from regenmap.pipelines.config import RunConfig, as_config
from regenmap.pipelines.log import Reporter
from regenmap.pipelines.signals import signals_as_interrupt
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

            self.client = self._stack.enter_context(open_client(
                self._cfg.cluster, profile=self._profile, quiet=self._reporter.quiet))
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
        profile: str | Path | None = None, reporter: Reporter | None = None) -> RunResult:
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
    reporter
        Where events go (the command line passes its own); one is made from ``quiet``
        if omitted.

    Returns
    -------
    RunResult
        Paths, held-out metrics, status counts and timings.

    Raises
    ------
    OutputError
        If the output folder cannot be created or written.
    LockError
        If another live run holds the lock of ``out_dir``.
    KeyboardInterrupt
        On Ctrl-C or SIGTERM (:class:`~regenmap.pipelines.signals.Interrupted`; the CLI
        exits with 130; re-running continues).
    """
    reporter = reporter or Reporter(quiet=quiet)
    outputs: dict[str, Any] = {}
    try:
        with signals_as_interrupt(), reporter.capture():
            result = _run_stages(as_config(config), stages, reporter, client, profile, outputs)
    except BaseException as err:
        reporter.finished("run", err, outputs=outputs)
        raise
    reporter.finished("run", metrics=result.metrics, counts=result.counts,
                      outputs=result.outputs, timings=result.timings, skipped=result.skipped,
                      dashboard=result.dashboard)
    return result


def _run_stages(cfg: RunConfig, stages: tuple[str, ...], reporter: Reporter,
                client: Client | None, profile: str | Path | None,
                outputs: dict[str, Any]) -> RunResult:
    """Run the stages (the body of :func:`run`), filling ``outputs`` as they finish."""
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        from regenmap.errors import ConfigError

        raise ConfigError(f"unknown stage(s) {unknown}; stages are {', '.join(STAGES)}")
    if cfg.scenes is None:
        stages = tuple(s for s in stages if s != "extract")
    out_dir = Path(cfg.out_dir)
    result = RunResult(config=cfg, outputs=outputs)
    chash = cfg.run_hash()  # configuration and input contents
    lazy = _LazyClient(cfg, reporter, client, profile)
    with hold_output_folder(out_dir) as removed, closing(lazy):
        reporter.cleaned(removed)
        inputs.check_fields(cfg)  # a bad field file stops the job before a cluster starts
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
            # a worker lost mid-write (killed, pre-empted) leaves its temporary file; the
            # stage is done, so no writer of this folder is left
            reporter.cleaned(clean_leftovers(out_dir), name)
            stage_outputs = to_jsonable(produced)
            mark_done(out_dir, name, chash, stage_outputs)
            result.outputs[name] = stage_outputs
            _report_summary(reporter, name, cfg)
        result.dashboard = lazy.dashboard
    if len(result.skipped) == len(stages):
        reporter.event("nothing-to-do", stage="run", reason="every stage finished earlier")
    result.timings = reporter.timings
    _collect_summary(result)
    return result


def _report_summary(reporter: Reporter, name: str, cfg: RunConfig) -> None:
    """Report a stage's one-line summary, if it has one (extraction)."""
    from regenmap.pipelines.summary import stage_summary

    summary = stage_summary(name, cfg)
    if summary is not None:
        reporter.summary(name, summary[0], **summary[1])


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


def _collect_summary(result: RunResult) -> None:
    """Fill held-out metrics and status counts from the written artifacts."""
    from regenmap.pipelines.summary import heldout_metrics, status_counts

    result.metrics = heldout_metrics(result.config)
    result.counts = status_counts(result.config)
