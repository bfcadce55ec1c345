"""Base class for configuration sections: strict, frozen, with helpful errors."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A pydantic model that rejects unknown keys and is immutable once built."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
