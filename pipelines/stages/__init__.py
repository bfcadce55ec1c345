"""The stages of a job, in order, each a module named after its CLI verb.

Every stage function has one signature::

    stage(config: RunConfig | str | Path, *, client=None, progress=None) -> dict[str, Path]

and returns what it wrote (output name -> path). :data:`STAGES` is the one table
of them that the CLI, :func:`regenmap.pipelines.job.run` and the notebooks use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regenmap.pipelines.stages.evaluate import evaluate
from regenmap.pipelines.stages.extract import extract
from regenmap.pipelines.stages.features import features
from regenmap.pipelines.stages.predict import predict
from regenmap.pipelines.stages.train import train


@dataclass(frozen=True)
class Stage:
    """One stage of a job.

    Attributes
    ----------
    name
        The stage's name, also its CLI command.
    function
        ``function(config, *, client=None, progress=None) -> {output name: path}``.
    uses_cluster
        Whether it computes on the Dask cluster (the run opens one only for such stages).
    progress_unit
        What its progress counts (shown in bars and JSON ``progress`` events), or None.
    """

    name: str
    function: Callable[..., dict[str, Path]]
    uses_cluster: bool = False
    progress_unit: str | None = None

    def __call__(self, config: Any, **kwargs: Any) -> dict[str, Path]:
        """Run the stage (see :attr:`function`)."""
        return self.function(config, **kwargs)


#: Every stage, in the order a job runs them.
STAGES: dict[str, Stage] = {s.name: s for s in (
    Stage("extract", extract, uses_cluster=True, progress_unit="tile x acquisition tasks"),
    Stage("features", features),
    Stage("train", train),
    Stage("evaluate", evaluate),
    Stage("predict", predict),
)}

__all__ = ["STAGES", "Stage", "evaluate", "extract", "features", "predict", "train"]
