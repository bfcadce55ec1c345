"""Seasons: the time window a sample (a field in a season) is described over.

A label says what a field showed in one season: an agricultural year
(``2023``), a named season of a year (``2023-primera``), or an explicit interval
(``2023-03-01/2023-09-30``). :class:`SeasonCalendar` turns such values into
:class:`Season` windows, once, at the boundary; the features of a sample are
computed over its season's window.

Example
-------
>>> cal = SeasonCalendar(year_start="10-01", named={"primera": NamedSeason("04-01", 4)})
>>> cal.parse("2023").start, cal.parse("2023").end          # doctest: +SKIP
(Timestamp('2023-10-01'), Timestamp('2024-10-01'))
>>> cal.parse("Primera 2024").name
'2024-primera'
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from regenmap.errors import ConfigError

_YEAR = re.compile(r"^\s*(\d{4})(?:\.0)?\s*$")
_AGRI_YEAR = re.compile(r"^\s*(\d{4})\s*[/-]\s*(\d{2}|\d{4})\s*$")
_INTERVAL = re.compile(r"^\s*(\d{4}-\d{2}-\d{2})\s*/\s*(\d{4}-\d{2}-\d{2})\s*$")
_NAMED = (re.compile(r"^\s*(\d{4})[\s_/-]+([A-Za-z][\w\s-]*?)\s*$"),
          re.compile(r"^\s*([A-Za-z][\w\s-]*?)[\s_/-]+(\d{4})\s*$"))


def _key(name: str) -> str:
    return re.sub(r"[\s_-]+", "_", name.strip().lower())


@dataclass(frozen=True)
class NamedSeason:
    """A season that recurs every year (e.g. Primera, a short rains season).

    Attributes
    ----------
    start
        ``MM-DD`` on which it starts.
    months
        Length in whole months (1-24).
    """

    start: str
    months: int

    def __post_init__(self) -> None:
        from regenmap.features.timegrid import parse_year_start

        parse_year_start(self.start)
        if not 1 <= int(self.months) <= 24:
            raise ConfigError(f"a named season lasts 1 to 24 months, got {self.months}")


@dataclass(frozen=True)
class Season:
    """The window of one season.

    Attributes
    ----------
    name
        Canonical name: ``2023``, ``2023-primera`` or ``2023-03-01/2023-09-30``.
    start, end
        First instant and end (exclusive) of the window, UTC-naive.
    months
        Length in whole months when the season is a year or a named season (its
        quarters are then whole months), None for explicit intervals.
    """

    name: str
    start: pd.Timestamp
    end: pd.Timestamp
    months: int | None = None

    @property
    def year(self) -> int:
        """Calendar year in which the season starts."""
        return int(self.start.year)

    def quarters(self) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
        """Four consecutive parts of the window (whole months when the length allows)."""
        if self.months is not None and self.months % 4 == 0:
            step = pd.DateOffset(months=self.months // 4)
            edges = [self.start + step * q for q in range(4)] + [self.end]
        else:
            width = (self.end - self.start) / 4
            edges = [self.start + width * q for q in range(4)] + [self.end]
        return [(edges[q], edges[q + 1]) for q in range(4)]


@dataclass(frozen=True)
class SeasonCalendar:
    """How season values of labels are read.

    Attributes
    ----------
    year_start
        ``MM-DD`` start of the agricultural year: season ``2023`` runs from that day of
        2023 for twelve months.
    named
        Named seasons by name (case, spaces and hyphens do not matter).
    """

    year_start: str = "01-01"
    named: Mapping[str, NamedSeason] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from regenmap.features.timegrid import parse_year_start

        parse_year_start(self.year_start)
        object.__setattr__(self, "named", {_key(k): v for k, v in self.named.items()})

    def year(self, year: int) -> Season:
        """Return the agricultural year starting in calendar year ``year``."""
        month, day = (int(x) for x in self.year_start.split("-"))
        start = pd.Timestamp(year=year, month=month, day=day)
        return Season(str(year), start, start + pd.DateOffset(years=1), 12)

    def parse(self, value: Any) -> Season:
        """Read one season value (year, named season or ISO interval).

        Raises
        ------
        ConfigError
            If the value is none of the accepted forms, naming the forms and the named
            seasons defined, with the closest name.
        """
        text = str(value)
        if m := _YEAR.match(text):
            return self.year(int(m.group(1)))
        if m := _AGRI_YEAR.match(text):
            first, second = int(m.group(1)), m.group(2)
            following = int(second) if len(second) == 4 else (first + 1) % 100
            if (len(second) == 4 and following == first + 1) or \
                    (len(second) == 2 and int(second) == following):
                return self.year(first)
        if m := _INTERVAL.match(text):
            start, end = pd.Timestamp(m.group(1)), pd.Timestamp(m.group(2))
            if end <= start:
                raise ConfigError(f"season {text!r}: the interval ends before it starts")
            return Season(f"{start.date()}/{end.date()}", start, end + pd.Timedelta(days=1))
        for pattern, (yi, ni) in zip(_NAMED, ((1, 2), (2, 1)), strict=True):
            if (m := pattern.match(text)) and _key(m.group(ni)) in self.named:
                year, key = int(m.group(yi)), _key(m.group(ni))
                named = self.named[key]
                month, day = (int(x) for x in named.start.split("-"))
                start = pd.Timestamp(year=year, month=month, day=day)
                return Season(f"{year}-{key}", start, start + pd.DateOffset(months=named.months),
                              named.months)
        words = re.findall(r"[A-Za-z][\w-]*", text)
        close = difflib.get_close_matches(_key(words[0]), list(self.named), n=1) if words else []
        hint = f" Did you mean {close[0]!r}?" if close else ""
        known = f" Named seasons: {', '.join(self.named)}." if self.named else \
            " No named season is defined (seasons.named)."
        raise ConfigError(f"season {text!r} is not a year (2023), an agricultural year "
                          f"(2023/24), a named season of a year (2023-primera) or an interval "
                          f"(2023-03-01/2023-09-30).{hint}{known}")


def season_table(seasons: Mapping[str, Season]) -> pd.DataFrame:
    """One row per season: ``season``, ``season_start``, ``season_end`` (exclusive), ``months``."""
    rows = [{"season": s.name, "season_start": s.start, "season_end": s.end,
             "months": s.months} for s in seasons.values()]
    return pd.DataFrame(rows, columns=["season", "season_start", "season_end", "months"])
