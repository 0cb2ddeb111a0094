"""Hub listing items (the Hub's JSON) to rows of the `models` table, tolerating hostile values."""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from warehouse.tables import MODELS

RELATIONS = ("finetune", "adapter", "quantized", "merge")
MAX_ID_LENGTH = 256  # Hub repo ids are at most 96 characters per part
MAX_TAGS = 512
MAX_TAG_LENGTH = 512
INT64_MAX = 2**63 - 1
# The Hub stamps every repo created before it stored creation dates with this instant (stack notes 1.1).
UNKNOWN_CREATED_AT = dt.datetime(2022, 3, 2, 23, 29, 4, tzinfo=dt.UTC)


@dataclass
class RowReport:
    """What was dropped or blanked while reading items, by reason."""

    dropped: Counter[str] = field(default_factory=Counter)
    blanked: Counter[str] = field(default_factory=Counter)

    def merge(self, other: RowReport) -> None:
        self.dropped.update(other.dropped)
        self.blanked.update(other.blanked)

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {"dropped": dict(self.dropped), "blanked": dict(self.blanked)}


def lineage(tags: list[str]) -> tuple[list[str], str | None]:
    """Base models named by `base_model:` tags (plain and `base_model:<relation>:<id>`) and the relation."""
    bases: list[str] = []
    relation = None
    for tag in tags:
        if not tag.startswith("base_model:"):
            continue
        rest = tag[len("base_model:") :]
        head, _, tail = rest.partition(":")
        if head in RELATIONS and tail:
            relation = relation or head
            rest = tail
        if rest and rest not in bases:
            bases.append(rest)
    return bases, relation


def dropped_because(item: Any) -> str | None:
    """Why `model_rows` leaves a listing item out (no object, no usable id, a private repo), or None."""
    if not isinstance(item, dict):
        return "not an object"
    if not _valid_id(item.get("id", item.get("modelId"))):
        return "missing or invalid id"
    if item.get("private") is True:  # listed to a token that may read it: not a public model
        return "private"
    return None


def kept_head(items: list[Any], wanted: int, taken: set[str] | frozenset[str] = frozenset()) -> list[Any]:
    """The shortest head of `items` holding `wanted` models `model_rows` keeps that are not among the ids `taken`
    already, each counted once (all of them when fewer are): what a listing with a limit takes of a page, so that
    the items it leaves out are those past the limit only, and a model a shifting order lists again is no new one."""
    kept, seen = 0, set(taken)
    for index, item in enumerate(items):
        if kept >= wanted:
            return items[:index]
        if dropped_because(item) is None and (model_id := item.get("id", item.get("modelId"))) not in seen:
            seen.add(model_id)
            kept += 1
    return items


def model_rows(items: list[Any], report: RowReport | None = None) -> pl.DataFrame:
    """A `models` frame from listing items; items without a usable id, and private repos (which the Hub lists
    to a token allowed to read them), are dropped and counted.

    Built column by column (one pass per field, list columns from flat values and offsets): a page of a
    thousand items costs milliseconds, where one dict per row cost tens.
    """
    report = report if report is not None else RowReport()
    kept: list[dict] = []
    ids: list[str] = []
    for item in items:
        if (reason := dropped_because(item)) is not None:
            report.dropped[reason] += 1
            continue
        kept.append(item)
        ids.append(item.get("id", item.get("modelId")))
    if not kept:
        return MODELS.empty()
    tags = [_tags(item.get("tags"), report) for item in kept]
    lineages = [lineage(t) if _names_a_base(t) else _NO_LINEAGE for t in tags]
    columns = {
        "model_id": ids,
        "author": [
            _text(item.get("author"), report, "author") or i.split("/", 1)[0] for item, i in zip(kept, ids, strict=True)
        ],
        "created_at": _times(kept, "createdAt", report),
        "last_modified": _times(kept, "lastModified", report),
        "downloads_30d": _counts(kept, "downloads", report),
        "downloads_all_time": _counts(kept, "downloadsAllTime", report),
        "likes": _counts(kept, "likes", report),
        "trending_score": _numbers(kept, "trendingScore", report),
        "pipeline_tag": [_text(item.get("pipeline_tag"), report, "pipeline_tag") for item in kept],
        "library_name": [_text(item.get("library_name"), report, "library_name") for item in kept],
        "tags": _string_lists(tags),
        "base_models": _string_lists([bases for bases, _ in lineages]),
        "base_relation": [relation for _, relation in lineages],
        "params_total": [_params(item.get("safetensors"), report) for item in kept],
        "gated": [_gated(item.get("gated")) for item in kept],
    }
    return pl.DataFrame([_series(name, values) for name, values in columns.items()])


_NO_LINEAGE: tuple[list[str], str | None] = ([], None)


def _names_a_base(tags: list[str]) -> bool:
    return any(t.startswith("base_model:") for t in tags)


def _series(name: str, values: list | pl.Series) -> pl.Series:
    if isinstance(values, pl.Series):
        return values.alias(name)
    return pl.Series(name, values, dtype=MODELS.schema[name])


def _string_lists(lists: list[list[str]]) -> pl.Series:
    """A List(String) series from Python lists of strings, built from flat values and offsets."""
    offsets = np.zeros(len(lists) + 1, dtype=np.int64)
    np.cumsum([len(v) for v in lists], out=offsets[1:])
    values = pl.Series([t for v in lists for t in v], dtype=pl.String).to_arrow()
    # From the buffer itself: `pa.array` of a numpy array imports pandas when it is installed (1 s unless cached).
    offsets = pa.Array.from_buffers(pa.int64(), len(offsets), [None, pa.py_buffer(offsets)])
    return pl.Series(pl.from_arrow(pa.LargeListArray.from_arrays(offsets, values)))


def _counts(items: list[dict], name: str, report: RowReport) -> list[int | None]:
    values = [item.get(name) for item in items]
    return [v if (type(v) is int and 0 <= v <= INT64_MAX) or v is None else _count(v, report, name) for v in values]


def _numbers(items: list[dict], name: str, report: RowReport) -> list[float | None]:
    values = [item.get(name) for item in items]
    return [v if type(v) is float and v - v == 0 else _number(v, report, name) for v in values]


def _times(items: list[dict], name: str, report: RowReport) -> list[dt.datetime | None]:
    return [_time(item.get(name), report, name) for item in items]


def _valid_id(value: Any) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_ID_LENGTH
        and value.isprintable()
        and ".." not in value
        and not value.startswith(("/", "."))
        and "\\" not in value
    )


def _text(value: Any, report: RowReport, name: str) -> str | None:
    if isinstance(value, str) and value and len(value) <= MAX_TAG_LENGTH:
        if utf8_text(value):
            return value
        report.blanked[name] += 1  # counted: a value that was there, not one the Hub left out
    return None


def utf8_text(text: str) -> bool:
    """Whether `text` has a UTF-8 form: JSON's `"\\ud800"` reads as a lone surrogate, which has none (and which
    no Parquet string may hold)."""
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _tags(value: Any, report: RowReport) -> list[str]:
    if not isinstance(value, list):
        if value is not None:
            report.blanked["tags"] += 1
        return []
    tags = [t for t in value[:MAX_TAGS] if isinstance(t, str) and 0 < len(t) <= MAX_TAG_LENGTH and utf8_text(t)]
    if len(tags) != len(value):
        report.blanked["tags"] += 1
    return tags


def _count(value: Any, report: RowReport, name: str) -> int | None:
    """A non-negative integer count, or None for absent, negative, huge or non-numeric values."""
    if value is None:
        return None
    if isinstance(value, bool):
        report.blanked[name] += 1
        return None
    if isinstance(value, str):
        value = value.strip()
        # ASCII digits only ("²" is a digit to `isdigit`, not to `int`), and no more than an int64 holds.
        if not (value.isascii() and value.isdigit()) or len(value) > len(str(INT64_MAX)):
            report.blanked[name] += 1
            return None
        value = int(value)
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            report.blanked[name] += 1
            return None
        value = int(value)
    if not isinstance(value, int) or value < 0 or value > INT64_MAX:
        report.blanked[name] += 1
        return None
    return value


def _number(value: Any, report: RowReport, name: str) -> float | None:
    if value is None:
        return None
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer past a float's range
        number = math.nan
    if not math.isfinite(number):
        report.blanked[name] += 1
        return None
    return number


def _time(value: Any, report: RowReport, name: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        # A time at either end of the calendar may have no UTC time (year 1 at +01:00, 9999 at −01:00).
        parsed = parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        report.blanked[name] += 1
        return None
    if name == "createdAt" and parsed == UNKNOWN_CREATED_AT:
        return None
    return parsed


def _params(value: Any, report: RowReport) -> int | None:
    if not isinstance(value, dict):
        return None
    return _count(value.get("total"), report, "safetensors.total")


def _gated(value: Any) -> str | None:
    if value is False or value == "false":
        return "false"
    if value in ("auto", "manual"):
        return value
    if value is True:
        return "true"
    return None
