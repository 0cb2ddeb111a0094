"""The offline demo: a synthetic Hub served on 127.0.0.1, crawled day by day by the real refresh flow.

Each day's synthetic world (`flows.synthetic`) is served by the stand-in Hub; `flows.refresh.refresh`
crawls it through `huggingface_hub`, publishes the snapshot labelled `source_kind = "synthetic"`, and
attributes, measures and charts it as it would a crawl of the real Hub. The dashboard of the last day
carries the synthetic label, because the label is read from the snapshots' `_meta` records.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from warehouse.layout import Layout
from warehouse.publish import read_json_object, read_meta, write_json_atomic

DEFAULT_WAREHOUSE = "./demo-data"  # synthetic data never lands in ./data unless --warehouse says so
START = dt.date(2026, 4, 1)
SOURCE_KIND = "synthetic"
# The settings of the worlds a demo warehouse holds: other settings make other worlds (the crossover sits
# mid-series, so even the number of days changes every day's world), whose dates would not continue these.
SETTINGS_FILE = "demo.json"
MATCHUP = ("China", "United States")
SUMMARY_RULES = ("uploader", "official", "lineage")


class DemoRefused(RuntimeError):
    """The demo would mix synthetic snapshots into a warehouse holding other data."""


@dataclass
class DemoDay:
    """One refresh of the demo."""

    day: dt.date
    models: int | None
    requests: int | None
    seconds: float
    kept: bool = False  # already published with these settings, and not replaced


@dataclass
class DemoResult:
    """What the demo published and what it found."""

    warehouse: Path
    dashboard: Path | None
    days: list[DemoDay]
    llm_shares: dict[str, dict[str, float]] = field(default_factory=dict)  # rule -> actor -> share, last day
    # rule -> the date China passes the US, and whether that crossing was seen (not before the first date)
    crossovers: dict[str, tuple[dt.date, bool] | None] = field(default_factory=dict)


def demo_layout(warehouse: str | Path | None) -> Layout:
    """The demo's warehouse: the one given, else ./demo-data (never $MULTIPOLAR_WAREHOUSE)."""
    return Layout.at(warehouse or DEFAULT_WAREHOUSE)


def foreign_dates(layout: Layout) -> list[dt.date]:
    """Published snapshot dates of `layout` whose data is not synthetic."""
    from warehouse.tables import MODELS

    return [
        d
        for d in layout.published_dates(MODELS)
        if (read_meta(layout, MODELS, d) or {}).get("source_kind") != SOURCE_KIND
    ]


def check_settings(layout: Layout, settings: dict[str, Any]) -> None:
    """Refuse to add the worlds of `settings` to a demo warehouse made with other settings."""
    path = layout.root / SETTINGS_FILE
    before = read_json_object(
        path, lambda why: DemoRefused(f"{path} is damaged ({why}); remove it, or give the demo another --warehouse")
    )
    if before is not None and before != settings:
        said = ", ".join(f"--{key} {before.get(key)}" for key in ("days", "models", "seed") if key in before)
        raise DemoRefused(
            f"{layout.root} holds a demo made with {said} (from {before.get('start')}); other settings make "
            "other synthetic worlds, whose dates would not continue these: give the demo another --warehouse"
        )


@contextlib.contextmanager
def local_requests_allowed() -> Iterator[None]:
    """Let huggingface_hub send requests while the demo runs: they only go to the stand-in on 127.0.0.1."""
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = False
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


def run_demo(
    days: int = 7,
    models: int = 20_000,
    warehouse: str | Path | None = None,
    seed: int = 0,
    *,
    start: dt.date = START,
    force: bool = False,
    on_day: Callable[[DemoDay], None] | None = None,
) -> DemoResult:
    """Serve `days` daily synthetic worlds of about `models` models and refresh each through the real flow."""
    from flows.refresh import refresh
    from flows.standin_hub import StandinHub, load_world
    from flows.synthetic import evolve, series_spec, world_name, write_world

    if days < 1 or models < 1:
        raise ValueError("the demo needs at least one day and one model")
    layout = demo_layout(warehouse)
    foreign = foreign_dates(layout)
    if foreign:
        raise DemoRefused(
            f"{layout.root} holds snapshots that are not synthetic ({foreign[0]}…); "
            "give the demo a warehouse of its own with --warehouse"
        )
    settings = {"models": models, "days": days, "start": start.isoformat(), "seed": seed}
    check_settings(layout, settings)
    write_json_atomic(layout.root / SETTINGS_FILE, settings)
    spec = series_spec(models, days, start, seed)
    done: list[DemoDay] = []
    with tempfile.TemporaryDirectory(prefix="multipolar-demo-") as tmp, local_requests_allowed():
        with StandinHub([]) as hub:
            for index, eco in enumerate(evolve(spec, days)):
                began = time.monotonic()
                path = write_world(eco, Path(tmp) / world_name(eco.day))
                hub.replace_world(load_world(path))
                path.unlink()
                summary = refresh(
                    day=eco.day,
                    scope="full",
                    endpoint=hub.url,
                    warehouse=str(layout.root),
                    force=force,
                    dashboard=index == days - 1,
                    source_kind=SOURCE_KIND,
                )
                kept = summary.get("models") == "already published"
                record = DemoDay(
                    eco.day, summary.get("rows"), summary.get("requests"), time.monotonic() - began, kept=kept
                )
                done.append(record)
                if on_day:
                    on_day(record)
    html = layout.dashboard_dir / "index.html"
    last = done[-1].day
    return DemoResult(
        warehouse=layout.root,
        dashboard=html if html.is_file() else None,
        days=done,
        llm_shares=llm_region_shares(layout, last),
        crossovers=china_us_crossovers(layout, last),
    )


def _llm_region(frame: pl.LazyFrame) -> pl.LazyFrame:
    return frame.filter(
        (pl.col("time_window") == "30d") & (pl.col("population") == "llm") & (pl.col("dimension") == "region")
    )


def llm_region_shares(layout: Layout, day: dt.date) -> dict[str, dict[str, float]]:
    """China's and the US's share of 30-day LLM downloads on `day`, per rule."""
    from warehouse.tables import SHARES

    rows = (
        _llm_region(layout.scan(SHARES, day))
        .filter(pl.col("rule").is_in(SUMMARY_RULES) & pl.col("actor").is_in(MATCHUP))
        .select("rule", "actor", "share")
        .collect()
    )
    shares: dict[str, dict[str, float]] = {rule: {} for rule in SUMMARY_RULES}
    for rule, actor, share in rows.iter_rows():
        shares[rule][actor] = share
    return shares


def china_us_crossovers(layout: Layout, day: dt.date) -> dict[str, tuple[dt.date, bool] | None]:
    """Per rule, the date from which China's 30-day LLM share stays ahead of the US's, as of `day`, and whether
    the crossing was seen: not when China led from the series' first date."""
    from warehouse.tables import CROSSOVERS

    rows = (
        _llm_region(layout.scan(CROSSOVERS, day))
        .filter(
            pl.col("rule").is_in(SUMMARY_RULES)
            & (pl.col("challenger") == MATCHUP[0])
            & (pl.col("incumbent") == MATCHUP[1])
        )
        .select("rule", "status", "crossover_date", "observed")
        .collect()
    )
    found: dict[str, tuple[dt.date, bool] | None] = {rule: None for rule in SUMMARY_RULES}
    for rule, status, date, observed in rows.iter_rows():
        found[rule] = (date, observed is not False) if status == "crossed" else None
    return found


def summary_lines(result: DemoResult) -> list[str]:
    """The demo's findings in a few lines."""
    last = result.days[-1].day
    lines = [f"synthetic data, {len(result.days)} days to {last}, warehouse {result.warehouse}"]
    for rule in SUMMARY_RULES:
        shares = result.llm_shares.get(rule, {})
        china, us = shares.get("China"), shares.get("United States")
        lines.append(
            f"{rule:>8} rule: China {_pct(china)} vs US {_pct(us)} of 30-day LLM downloads on {last}; "
            + _crossing(result.crossovers.get(rule))
        )
    lines.append("the dashboard opens on all models: set its Population switch to LLMs for these figures")
    return lines


def _crossing(found: tuple[dt.date, bool] | None) -> str:
    if found is None:
        return "no crossover yet"
    day, seen = found
    return (
        f"China passed the US on {day}"
        if seen
        else f"China ahead since the first date, {day} (the crossing is before it)"
    )


def _pct(share: Any) -> str:
    return "n/a" if share is None else f"{share:.1%}"
