"""``regenmap run``: every stage in order, with checkpoints, a lock, progress and a summary.

The Dask cluster is opened once per run, and only if a stage that needs it
(extraction) has work to do: an existing scheduler (``cluster.address`` or
``--scheduler``), a cluster profile (``configs/cluster/``, see
:mod:`regenmap.pipelines.jobqueue`) or a LocalCluster sized to the machine. Its
dashboard address is reported as a ``cluster`` event.

SIGTERM (what batch schedulers send at a time limit or pre-emption) is turned
into the same clean stop as Ctrl-C: the lock is released, finished stages and
tiles are kept, and the exit code is 130, so re-running continues.
"""

from __future__ import annotations

import inspect
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regenmap.pipelines.checkpoints import mark_done, run_lock, stage_done
from regenmap.pipelines.config import RunConfig, load_config
from regenmap.pipelines.log import Reporter, StageProgress

if TYPE_CHECKING:
    from distributed import Client

STAGES = ("extract", "features", "train", "evaluate", "predict")
#: Stages that run on the Dask cluster (it is started only for them).
CLUSTER_STAGES = frozenset({"extract"})
#: Seconds between two looks at the progress of the extraction.
POLL_S = 0.5
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


def _stage_functions() -> dict[str, Callable[..., Any]]:
    from regenmap.pipelines.extract import extract
    from regenmap.pipelines.featurize import features
    from regenmap.pipelines.modelling import evaluate, train
    from regenmap.pipelines.predict import predict

    return {"extract": extract, "features": features, "train": train,
            "evaluate": evaluate, "predict": predict}


def _as_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _as_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_as_jsonable(v) for v in value]
    return str(value) if isinstance(value, Path) else value


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
            from regenmap.pipelines.jobqueue import open_client

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
        stages: tuple[str, ...] = STAGES, client: Client | None = None,
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
    cfg = config if isinstance(config, RunConfig) else load_config(config)
    if cfg.scenes is None and cfg.observations is None:
        stages = tuple(s for s in stages if s != "extract")
    reporter = Reporter(quiet=quiet)
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = RunResult(config=cfg)
    chash = cfg.run_hash()  # configuration and input contents
    functions = _stage_functions()
    lazy = _LazyClient(cfg, reporter, client, profile)
    with _sigterm_as_interrupt(), run_lock(out_dir), closing(lazy):
        upstream_ran = False
        for name in stages:
            # a stage after one that ran again must run again too: its inputs changed
            marker = None if upstream_ran else stage_done(out_dir, name, chash)
            if marker is not None:
                reporter.skipped(name, "finished earlier with the same configuration and inputs")
                result.skipped.append(name)
                result.outputs[name] = marker["outputs"]
                continue
            fn = functions[name]
            for attempt in range(CLUSTER_RETRIES + 1):
                kwargs: dict[str, Any] = {}
                if name in CLUSTER_STAGES and "client" in inspect.signature(fn).parameters:
                    kwargs["client"] = lazy.get()
                try:
                    with reporter.stage(name):
                        if name == "extract":
                            with _watch_extract(reporter, out_dir, kwargs.get("client")):
                                produced = fn(cfg, **kwargs)
                        else:
                            produced = fn(cfg, **kwargs)
                    break
                except Exception as err:
                    if (name not in CLUSTER_STAGES or attempt == CLUSTER_RETRIES
                            or not _is_cluster_fault(err)):
                        raise
                    # Finished tiles are on disk: starting again computes only the rest.
                    reporter.event("retry", stage=name, attempt=attempt + 1,
                                   error=f"{type(err).__name__}: {err}"[:300])
                    lazy.reset()
            upstream_ran = True
            outputs = _as_jsonable(produced)
            mark_done(out_dir, name, chash, outputs)
            result.outputs[name] = outputs
        result.dashboard = lazy.dashboard
    if len(result.skipped) == len(stages):
        reporter.event("nothing-to-do", stage="run", reason="every stage finished earlier")
    result.timings = reporter.timings
    _collect_summary(result)
    return result


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


class _PlanListener(logging.Handler):
    """Catches the extraction's plan line (fields, acquisitions, tiles, tiles to compute)."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.plan: tuple[int, int, int, int] | None = None

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if (isinstance(record.msg, str) and record.msg.startswith("extract: ")
                and isinstance(args, tuple) and len(args) == 4):
            a, b, c, d = (int(str(x)) for x in args)
            self.plan = (a, b, c, d)


@contextmanager
def _watch_extract(reporter: Reporter, out_dir: Path, client: Client | None) -> Iterator[None]:
    """Show the extraction's progress: tile x acquisition tasks done, tile files written.

    Tasks are counted from the scheduler's task stream (keys ``extract-<tile>-<acq>-...``),
    tiles from the files written since the stage started.
    """
    logger = logging.getLogger("regenmap.pipelines.extract")
    listener = _PlanListener()
    old_level = logger.level
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.addHandler(listener)
    stop = threading.Event()
    with reporter.progress("extract", "tile x acquisition tasks") as bar:
        thread = threading.Thread(target=_poll_extract, name="regenmap-progress", daemon=True,
                                  args=(bar, listener, out_dir / "observations", client, stop))
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=10)
            logger.removeHandler(listener)
            logger.setLevel(old_level)


def _poll_extract(bar: StageProgress, listener: _PlanListener, obs_dir: Path,
                  client: Client | None, stop: threading.Event) -> None:
    t0 = time.time()
    seen: set[str] = set()
    index: int | None = None
    use_stream = client is not None
    while True:
        finished = stop.wait(POLL_S)
        if use_stream and client is not None:
            try:
                if index is None:  # start from the scheduler's current position
                    index = _stream_index(client)
                scheduler: Any = client.scheduler
                records = client.sync(scheduler.get_task_stream, start_index=index)
                index += len(records)
                seen.update(k for r in records if (k := str(r.get("key", ""))).startswith("extract-")
                            and r.get("status", "OK") == "OK")
            except Exception:  # progress must never break a run
                use_stream = False
        try:
            tiles = sum(1 for p in obs_dir.glob("tile=*.parquet") if p.stat().st_mtime >= t0 - 1)
        except OSError:
            tiles = 0
        plan = listener.plan
        if plan is not None:
            _, n_acq, _, n_pending = plan
            total = n_pending * n_acq
            done = len(seen) if use_stream else tiles * n_acq
            bar.update(min(done, total), total, tiles=f"{tiles}/{n_pending}")
        if finished:
            return


def _stream_index(client: Client) -> int:
    """Append counter of the scheduler's task stream now (tasks finished before the stage)."""
    def count(dask_scheduler: Any = None) -> int:
        plugin = dask_scheduler.plugins.get("task-stream") if dask_scheduler else None
        return int(plugin.index) if plugin is not None else 0

    try:
        return int(client.run_on_scheduler(count))
    except Exception:  # older schedulers: count from the buffer's start
        return 0


def _collect_summary(result: RunResult) -> None:
    """Fill held-out metrics and status counts from the written artifacts."""
    from regenmap.pipelines.summary import heldout_metrics, status_counts

    result.metrics = heldout_metrics(result.config)
    result.counts = status_counts(result.config)
