"""The steps after the crawl, each publishing its own tables for one date unless already published."""

from __future__ import annotations

import datetime as dt
from typing import Any

from warehouse.layout import Layout


def downstream_steps(layout: Layout, day: dt.date, *, force: bool = False, dashboard: bool = True) -> dict[str, Any]:
    """Attribute, measure and chart the `day` snapshot; return what each step did."""
    return {}


def pending_steps(layout: Layout, day: dt.date, *, dashboard: bool = True) -> list[str]:
    """The steps whose output for `day` is not published yet."""
    return []
