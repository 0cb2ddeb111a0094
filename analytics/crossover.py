"""Crossover detection: the first snapshot from which a challenger's share stays ahead of an incumbent's.

The rule, on each (time_window, population, rule) series of one dimension, over its ordered available
dates (gaps are fine; an actor missing on a date has share 0; "ahead" means a strictly larger share). A
date on which the group has no known share, or either actor's share is not known (listed, but none of its
models counted), is no observation and is left out of the series:
- the challenger is ahead on the latest date (a dip on the latest date reads `none` until a later
  snapshot shows it was isolated, which restores the original crossover date);
- from the crossover date onward the challenger is never behind (or tied) on two consecutive dates:
  an isolated one-snapshot dip does not undo a crossover, two in a row do;
- the crossover date starts a run of at least `persistence` consecutive dates ahead, or, when fewer
  dates remain, is ahead on all of them;
- the crossover date is the earliest date meeting all three. It equals `first_date` when the
  challenger has led since the series began: the crossing itself is then not observed (`observed` is
  false; true when the crossing falls between two snapshots of the series, null for `none`).
`margin` is the challenger's share minus the incumbent's on the series' latest date, `last_date`, for either
status: the partition's own date, unless that date is left out of the series.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

import polars as pl

# The head-to-head comparisons recorded in `crossovers` (challenger, incumbent, dimension), which the dashboard
# marks on its lines.
MATCHUPS = (("China", "United States", "region"), ("CN", "US", "country"))

SERIES = ["time_window", "population", "rule", "dimension"]
OUTPUT = [
    *SERIES,
    *("challenger", "incumbent", "status", "crossover_date", "observed", "margin", "first_date", "dates", "last_date"),
]


def actor_share(actor: str) -> pl.Expr:
    """The summed share of one actor among a group's rows: 0 when absent, null when its share is not known."""
    share = pl.col("share").filter(pl.col("actor") == actor)
    return pl.when(share.len() == 0).then(0.0).when(share.null_count() < share.len()).then(share.sum())


def observations(shares_series: pl.DataFrame, challenger: str, incumbent: str, dimension: str) -> pl.DataFrame:
    """Per series and date observed: both actors' shares. A date's rows come from its own shares alone, so those
    of a series are those of its dates, each found once, put together (`crossovers_of`)."""
    both = [pl.col("challenger_share").is_not_null(), pl.col("incumbent_share").is_not_null()]
    return (
        shares_series.lazy()
        .filter(pl.col("dimension") == dimension)
        .with_columns(pl.col("snapshot_date").cast(pl.Date))
        .group_by(*SERIES, "snapshot_date")
        .agg(
            actor_share(challenger).alias("challenger_share"),
            actor_share(incumbent).alias("incumbent_share"),
            pl.col("share").is_not_null().any().alias("measured"),
        )
        .filter(pl.all_horizontal("measured", *both))
        .collect()
    )


def series_of(shares_series: pl.DataFrame, dimension: str) -> pl.DataFrame:
    """The (time_window, population, rule) series of `dimension` that `shares_series` holds rows of."""
    return shares_series.lazy().filter(pl.col("dimension") == dimension).select(SERIES).unique().collect()


def head_to_head(observed: pl.DataFrame) -> pl.LazyFrame:
    """The `observations` of each series in date order: whether the challenger is ahead, and the date's
    position."""
    return (
        observed.lazy()
        .sort(*SERIES, "snapshot_date")
        .with_columns(
            (pl.col("challenger_share") > pl.col("incumbent_share")).alias("ahead"),
            pl.int_range(pl.len()).over(SERIES).alias("position"),
            pl.len().over(SERIES).alias("dates"),
        )
    )


def run_ahead_from_here(ahead: pl.Expr, position: pl.Expr) -> pl.Expr:
    """How many consecutive dates, from this one on, the challenger is ahead (0 when it is not)."""
    starts_run = (ahead != ahead.shift(1)).fill_null(True).over(SERIES)
    run = starts_run.cum_sum().over(SERIES)
    return pl.when(ahead).then(position.max().over([*SERIES, run]) - position + 1).otherwise(0)


def last_double_dip(ahead: pl.Expr, position: pl.Expr) -> pl.Expr:
    """Position of the latest date that is the second of two consecutive dates not ahead (−1 if none)."""
    double = ~ahead & ~ahead.shift(1).over(SERIES).fill_null(True)
    return position.filter(double).max().over(SERIES).fill_null(-1)


def crossover_candidates(frame: pl.LazyFrame, persistence: int) -> pl.LazyFrame:
    """The series' dates, each flagged when the challenger's lead from it on counts as a crossover."""
    ahead, position, dates = pl.col("ahead"), pl.col("position"), pl.col("dates")
    remaining = dates - position
    return frame.with_columns(
        (
            ahead
            & (position > last_double_dip(ahead, position))
            & (run_ahead_from_here(ahead, position) >= pl.min_horizontal(pl.lit(persistence), remaining))
            & ahead.sort_by(position).last().over(SERIES)
        ).alias("crossing")
    )


def crossovers(
    shares_series: pl.DataFrame,
    *,
    challenger: str = "China",
    incumbent: str = "United States",
    dimension: str = "region",
    persistence: int = 2,
    left_out: Collection[dt.date] = (),
) -> pl.DataFrame:
    """One CROSSOVERS row per (time_window, population, rule) of `dimension`: crossed or none, and when. The
    dates `left_out` (stale copies, partial snapshots) are no observation; a series without one date observed
    is `none` over 0 dates."""
    kept = shares_series.filter(~pl.col("snapshot_date").cast(pl.Date).is_in(list(left_out)))
    return crossovers_of(
        observations(kept, challenger, incumbent, dimension),
        series_of(shares_series, dimension),
        challenger=challenger,
        incumbent=incumbent,
        persistence=persistence,
    )


def crossovers_of(
    observed: pl.DataFrame, every: pl.DataFrame, *, challenger: str, incumbent: str, persistence: int = 2
) -> pl.DataFrame:
    """`crossovers` from the `observations` of the dates kept and the series of every date (`series_of`), which
    may hold a series more than once."""
    if persistence < 1:
        raise ValueError(f"persistence must be at least 1 snapshot, got {persistence}")
    margin = pl.col("challenger_share") - pl.col("incumbent_share")
    crossing_date = pl.col("snapshot_date").filter(pl.col("crossing")).min()
    found = (
        crossover_candidates(head_to_head(observed), persistence)
        .group_by(SERIES)
        .agg(
            crossing_date.alias("crossover_date"),
            margin.sort_by("snapshot_date").last().alias("margin"),
            pl.col("snapshot_date").min().alias("first_date"),
            pl.len().cast(pl.Int64).alias("dates"),
            pl.col("snapshot_date").max().alias("last_date"),
        )
    )
    return (
        every.lazy()
        .unique()
        .join(found, on=SERIES, how="left")
        .with_columns(pl.col("dates").fill_null(0))
        .with_columns(
            pl.lit(challenger).alias("challenger"),
            pl.lit(incumbent).alias("incumbent"),
            pl.when(pl.col("crossover_date").is_null())
            .then(pl.lit("none"))
            .otherwise(pl.lit("crossed"))
            .alias("status"),
            (pl.col("crossover_date") > pl.col("first_date")).alias("observed"),
        )
        .select(OUTPUT)
        .sort(SERIES)
        .collect()
    )
