"""Hub listing items (the Hub's JSON) to rows of the `models` table, tolerating hostile values."""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import polars as pl

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


def model_rows(items: list[Any], report: RowReport | None = None) -> pl.DataFrame:
    """A `models` frame from listing items; items without a usable id are dropped and counted."""
    report = report if report is not None else RowReport()
    rows = []
    for item in items:
        if not isinstance(item, dict):
            report.dropped["not an object"] += 1
            continue
        model_id = item.get("id", item.get("modelId"))
        if not _valid_id(model_id):
            report.dropped["missing or invalid id"] += 1
            continue
        tags = _tags(item.get("tags"), report)
        bases, relation = lineage(tags)
        rows.append(
            {
                "model_id": model_id,
                "author": _text(item.get("author")) or model_id.split("/", 1)[0],
                "created_at": _time(item.get("createdAt"), report, "createdAt"),
                "last_modified": _time(item.get("lastModified"), report, "lastModified"),
                "downloads_30d": _count(item.get("downloads"), report, "downloads"),
                "downloads_all_time": _count(item.get("downloadsAllTime"), report, "downloadsAllTime"),
                "likes": _count(item.get("likes"), report, "likes"),
                "trending_score": _number(item.get("trendingScore"), report, "trendingScore"),
                "pipeline_tag": _text(item.get("pipeline_tag")),
                "library_name": _text(item.get("library_name")),
                "tags": tags,
                "base_models": bases,
                "base_relation": relation,
                "params_total": _params(item.get("safetensors"), report),
                "gated": _gated(item.get("gated")),
            }
        )
    return pl.DataFrame(rows, schema=MODELS.schema, orient="row") if rows else MODELS.empty()


def _valid_id(value: Any) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_ID_LENGTH
        and value.isprintable()
        and ".." not in value
        and not value.startswith(("/", "."))
        and "\\" not in value
    )


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value and len(value) <= MAX_TAG_LENGTH:
        return value
    return None


def _tags(value: Any, report: RowReport) -> list[str]:
    if not isinstance(value, list):
        if value is not None:
            report.blanked["tags"] += 1
        return []
    tags = [t for t in value[:MAX_TAGS] if isinstance(t, str) and 0 < len(t) <= MAX_TAG_LENGTH]
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
        if not value.isdigit():
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
    except (TypeError, ValueError):
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
    except ValueError:
        report.blanked[name] += 1
        return None
    parsed = parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)
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
