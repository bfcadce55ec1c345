"""Dates of a time stack's raster bands: from band descriptions or from a dates file.

A time stack (one file per band or index, one raster band per date) says when
each raster band was observed in one of three ways:

* its band descriptions, each holding a date somewhere: ISO 8601
  (``2023-04-12``, ``2023-04-12T10:46:29Z``), Sentinel-2-like
  ``20230412T104629``, Earth Engine MODIS-like ``2023_04_12``, ``20230412``
  or MODIS day of year ``2023102`` (``A2023102``), e.g. Earth Engine's
  ``20230412T104629_20230412T104625_T31UFQ`` or ``LC09_199026_20230412``;
* a list file without header, one date per line in band order (``dates.txt``,
  or a CSV whose first line is already a date; a second column holding the
  1-based band number orders the lines);
* a CSV with a header: a column whose name contains ``time`` or ``date`` and
  optionally a 1-based ``band`` column.

:func:`band_dates` picks the source and checks that there is one date per
raster band; errors name the files and both counts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pandas as pd

from regenmap.errors import InputError

#: Years a date token may have (guards against reading other numbers as dates).
YEARS = range(1950, 2101)

_ISO = re.compile(r"(?<!\d)\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?"
                  r"(?:Z|[+-]\d{2}:?\d{2})?(?!\d)")
_COMPACT = re.compile(r"(?<!\d)\d{8}T\d{6}(?!\d)")
_UNDERSCORED = re.compile(r"(?<!\d)\d{4}_\d{2}_\d{2}(?!\d)")
_YMD = re.compile(r"(?<!\d)\d{8}(?!\d)")
_YDOY = re.compile(r"(?<!\d)\d{7}(?!\d)")
_SPLIT = re.compile(r"[,;\t]")


def parse_date_token(text: str | None) -> datetime | None:
    """Find a date (and time) in a text, or return None.

    Tried in order, first match wins: ISO 8601 (a time zone is converted to UTC),
    ``YYYYMMDDTHHMMSS``, ``YYYY_MM_DD``, ``YYYYMMDD``, ``YYYYDDD`` (day of year). A
    token must not touch other digits and its year must be in :data:`YEARS`.

    Returns
    -------
    datetime or None
        Naive UTC time.
    """
    if not text:
        return None
    readers: list[tuple[re.Pattern[str], Callable[[str], datetime]]] = [
        (_ISO, _iso), (_COMPACT, lambda t: datetime.strptime(t, "%Y%m%dT%H%M%S")),
        (_UNDERSCORED, lambda t: datetime.strptime(t, "%Y_%m_%d")),
        (_YMD, lambda t: datetime.strptime(t, "%Y%m%d")), (_YDOY, _day_of_year)]
    for pattern, read in readers:
        for m in pattern.finditer(text):
            try:
                when = read(m.group(0))
            except ValueError:
                continue
            if when.year in YEARS:
                return when
    return None


def _iso(text: str) -> datetime:
    ts = pd.Timestamp(text)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.to_pydatetime()


def _day_of_year(text: str) -> datetime:
    when = datetime.strptime(text, "%Y%j")
    if when.year != int(text[:4]):  # strptime turns day 366 of a common year into 1 January
        raise ValueError(f"day {text[4:]} is not in {text[:4]}")
    return when


def band_dates(path: Path, count: int, descriptions: tuple[str | None, ...],
               dates_file: str | Path | None = None) -> list[datetime]:
    """Return the date of each raster band of a time stack.

    Parameters
    ----------
    path
        The time stack (for messages and to find a sidecar file beside it).
    count
        Its number of raster bands.
    descriptions
        Its raster band descriptions.
    dates_file
        A dates file given explicitly; it wins over the descriptions. Without it the
        descriptions are used when each holds a date, else the first sidecar found
        among ``<stem>.csv``, ``<stem>.txt``, ``dates.csv``, ``dates.txt``,
        ``timestamps.csv``, ``timestamps.txt`` beside the stack.

    Returns
    -------
    list of datetime
        ``count`` naive UTC times, in raster band order.

    Raises
    ------
    InputError
        If no source gives dates, a date cannot be read, or the number of dates is not
        the number of raster bands (the message names the files and both counts).
    """
    if dates_file is None:
        parsed = [parse_date_token(d) for d in descriptions]
        if len(parsed) == count and all(p is not None for p in parsed):
            return [p for p in parsed if p is not None]
        names = [path.with_suffix(".csv"), path.with_suffix(".txt")] + [
            path.parent / n for n in ("dates.csv", "dates.txt", "timestamps.csv",
                                      "timestamps.txt")]
        sidecar = next((c for c in names if c.is_file()), None)
        if sidecar is None:
            first = next((i for i, p in enumerate(parsed, start=1) if p is None), 1)
            raise InputError(
                f"its {count} raster bands do not all hold a date in their descriptions "
                f"(band {first}: {_describe(descriptions, first)}) and no dates file was found "
                "beside it (dates.txt with one date per line, or dates.csv); give one with "
                "the scenes' dates option", path=path)
    else:
        sidecar = Path(dates_file)
        if not sidecar.is_file():
            raise InputError(f"dates file not found (given for the time stack {path.name})",
                             path=sidecar)
    dates = read_dates_file(sidecar)
    if len(dates) != count:
        raise InputError(f"{len(dates)} dates for the {count} raster bands of {path}; give one "
                         "date per raster band, in band order", path=sidecar)
    return dates


def _describe(descriptions: tuple[str | None, ...], band: int) -> str:
    text = descriptions[band - 1] if band <= len(descriptions) else None
    return repr(text) if text else "no description"


def read_dates_file(path: Path) -> list[datetime]:
    """Read a dates file: a header-less list (one date per line) or a CSV with a header.

    A file whose first line holds a date has no header: each non-empty line holds one
    date, optionally beside a 1-based band number (``3,2023-04-12``) that orders the
    lines; lines starting with ``#`` are comments. Otherwise the file is a CSV whose
    time column's name contains ``time`` or ``date``, with an optional ``band`` column.

    Returns
    -------
    list of datetime
        Naive UTC times, in band order.

    Raises
    ------
    InputError
        Naming the file (and line or column) when a date cannot be read.
    """
    text = path.read_text(encoding="utf-8-sig")
    lines = [(n, ln.strip()) for n, ln in enumerate(text.splitlines(), start=1)
             if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise InputError("the dates file is empty", path=path)
    if any(_value(f) is not None for f in _SPLIT.split(lines[0][1])):
        return _list_dates(path, lines)
    return _table_dates(path)


def _value(text: str) -> datetime | None:
    """Return the date in one cell: a date token, else a date pandas reads (``1 Mar 2023``)."""
    text = text.strip().strip('"').strip("'")
    when = parse_date_token(text)
    if when is not None or not re.search(r"\d", text) or re.fullmatch(r"\d{1,6}", text):
        return when
    try:
        return _iso(text)
    except (ValueError, TypeError):
        return None


def _list_dates(path: Path, lines: list[tuple[int, str]]) -> list[datetime]:
    dates: list[datetime] = []
    bands: list[int] = []
    for n, line in lines:
        fields = [f.strip() for f in _SPLIT.split(line) if f.strip()]
        when = next((w for w in (_value(f) for f in fields if not f.isdigit() or len(f) > 6)
                     if w is not None), None)
        if when is None:
            raise InputError(f"line {n} ({line!r}) holds no date that can be read (e.g. "
                             "2023-04-12, 20230412, 2023_04_12 or 2023102)", path=path)
        dates.append(when)
        bands += [int(f) for f in fields if f.isdigit() and len(f) <= 6][:1]
    if bands and len(bands) == len(dates):
        if sorted(bands) != list(range(1, len(bands) + 1)):
            raise InputError(f"band numbers {sorted(bands)} are not 1..{len(bands)}", path=path)
        return [d for _, d in sorted(zip(bands, dates, strict=True))]
    if bands:
        raise InputError("some lines give a band number and others do not; give it on every "
                         "line or on none", path=path)
    return dates


def _table_dates(path: Path) -> list[datetime]:
    try:
        table = pd.read_csv(path, dtype=str)
    except (ValueError, pd.errors.ParserError) as err:
        raise InputError(f"cannot read the dates file as CSV: {err}", path=path) from None
    time_col = next((c for c in table.columns if "time" in c.lower() or "date" in c.lower()), None)
    if time_col is None:
        raise InputError("no column whose name contains 'time' or 'date', and the first line "
                         f"is no date (columns: {list(table.columns)})", path=path)
    band_col = next((c for c in table.columns if c.lower().startswith("band")), None)
    if band_col is not None:
        table = table.assign(_band=pd.to_numeric(table[band_col], errors="coerce"))
        table = table.sort_values("_band")
    dates = []
    for row, text in zip(table.index, table[time_col], strict=True):
        when = _value(str(text)) if isinstance(text, str) else None
        if when is None:
            raise InputError(f"row {row + 2}, column {time_col!r}: {text!r} is not a date",
                             path=path)
        dates.append(when)
    return dates
