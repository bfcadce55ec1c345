"""A simulated field visit, for tests and benchmarks only: labels read from the simulator's truth.

A real visit fills the form of a sample (``regenmap sample design|next``) in the
field. Here the form's label columns are filled with the true practices the
simulator wrote into ``fields.gpkg`` (``tillage``, ``winter_cover``), so the whole
loop (design, visit, import, assess, retrain) can run and be checked end to end.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio

from regenmap.errors import InputError
from regenmap.geo.simulate.practices import TARGETS

#: Outcome written for a field whose label was recorded.
LABELLED = "labelled"


def simulated_visit(form: pd.DataFrame, truth_fields: str | Path, *,
                    targets: Sequence[str] = tuple(TARGETS), observer: str = "simulator",
                    method: str = "remote", visit_date: str = "2024-03-01",
                    no_access: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """Fill a sample's form with the simulator's true labels (tests and benchmarks only).

    Parameters
    ----------
    form
        The sample's form as written (its CSV, or the ``sample`` layer), with ``field_id``.
    truth_fields
        The simulated region's ``fields.gpkg`` holding the true labels.
    targets
        Label columns to fill.
    observer, method, visit_date
        Provenance written in every visited row.
    no_access
        Share of the fields (drawn at random) that the "team" could not reach: their
        outcome is ``no access`` and their labels stay empty (non-response).
    seed
        Seed of that draw.

    Returns
    -------
    pandas.DataFrame
        The form, filled.
    """
    truth = pyogrio.read_dataframe(Path(truth_fields), layer="fields", read_geometry=False,
                                   columns=["field_id", *targets])
    truth = pd.DataFrame(truth).set_index("field_id")
    ids = form["field_id"].astype(str)
    unknown = ~ids.isin(truth.index)
    if unknown.any():
        raise InputError(f"fields {ids[unknown].head(5).tolist()} are not in the simulated "
                         "region's truth", path=truth_fields)
    out = form.copy()
    reached = np.random.default_rng(seed).random(len(out)) >= no_access
    for t in targets:
        true = truth[t].reindex(ids.to_numpy()).to_numpy(dtype=object)
        out[t] = [v if ok else None for v, ok in zip(true, reached, strict=True)]
    out["outcome"] = np.where(reached, LABELLED, "no access")
    out["observer"] = observer
    out["method"] = method
    out["visit_date"] = visit_date
    return out


__all__ = ["simulated_visit"]
