"""The small frames each dashboard view draws, aggregated in polars from the metric tables.

Every input frame is a metric table (`warehouse.tables`) plus a `snapshot_date` column: the series over
all dates. The outputs keep only the rows the views need, so a year of daily snapshots stays small
once embedded in one HTML page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

import polars as pl

from analytics.attribution import RULES
from analytics.concentration import UNKNOWN
from analytics.crossover import MATCHUPS

REGIONS = ("China", "United States", "Europe", "Rest of world", "Unknown")
POPULATIONS = ("all", "llm")  # the population switch
WINDOWS = ("30d", "all_time")  # the window switch
SIZE_CLASSES = ("<1B", "1-9B", "10-99B", "100B+", "unknown")
TOP_COUNTRIES = 10
TOP_LABS = 15
LABEL_CHARS = 40
UNRECORDED = {"30d": "downloads of the last 30 days", "all_time": "all-time downloads"}

# Column-key prefix per dimension in the wide `series` frame (short keys keep the page small).
SERIES_PREFIX = {"region": "r", "country": "c", "developer_type": "k"}
# Concentration columns in `series`: (column, view, dimension, metric).
CONCENTRATION_COLUMNS = (
    ("pc", "effective_poles", "country", "effective_poles"),
    ("pl", "effective_poles", "lab", "effective_poles"),
    ("hc", "hhi", "country", "hhi"),
    ("hl", "hhi", "lab", "hhi"),
)


@dataclass(frozen=True)
class ViewFrames:
    """What the dashboard draws: one wide time series and small latest-date frames."""

    rule: str
    series: pl.DataFrame  # date × population (p) × window (w): downloads per actor key, totals, concentration
    keys: pl.DataFrame  # key → dimension, actor: the legend of the wide columns of `series`
    crossovers: pl.DataFrame  # crossovers to mark on the share lines
    rules: pl.DataFrame  # China and United States under each rule, latest date
    labs: pl.DataFrame  # top labs on the latest date and their change since the previous snapshot
    sizes: pl.DataFrame  # region shares per model size class, latest date
    dates: tuple[date, ...]
    countries: pl.DataFrame  # population × time_window: the top countries drawn, on the last date of that setting

    @property
    def latest(self) -> date:
        return self.dates[-1]

    @property
    def windows(self) -> tuple[str, ...]:
        """The windows of the switch that some snapshot records: an import of 30-day counts alone has no
        all-time shares, and its switch offers the last 30 days alone."""
        present = set(self.series.get_column("w").unique().to_list())
        return tuple(window for window in WINDOWS if window in present)

    @property
    def populations(self) -> tuple[str, ...]:
        """The populations of the switch that some snapshot has downloads of: a warehouse without LLMs (an import
        of ids and counts alone, a scope of encoders' namespaces) offers all models alone, and draws no view
        without rows (whose axes Vega warns of as of an infinite extent)."""
        downloaded = self.series.filter(pl.col("tr").fill_null(0) > 0)  # region totals: every model's downloads
        present = set(downloaded.get_column("p").unique().to_list())
        return tuple(population for population in POPULATIONS if population in present) or POPULATIONS[:1]

    @property
    def gaps(self) -> pl.DataFrame:
        """The switch settings under which the latest date records no downloads while earlier dates do (an import of
        30-day counts after crawls that had all-time ones): the views of the latest date say so in place of bars."""
        shown = pl.DataFrame(
            [{"population": p, "time_window": w} for p in self.populations for w in self.windows],
            schema={"population": pl.String, "time_window": pl.String},
        )
        last = (
            self.series.filter(pl.col("tr").is_not_null())
            .group_by(pl.col("p").alias("population"), pl.col("w").alias("time_window"))
            .agg(pl.col("date").max().alias("last"))
        )
        return (
            shown.join(
                self.rules.select("population", "time_window").unique(), on=["population", "time_window"], how="anti"
            )
            .join(last, on=["population", "time_window"], how="left")
            .with_columns(
                pl.format(
                    "{} records no {}: the views over time show them up to {}",
                    pl.lit(self.latest.isoformat()),
                    pl.col("time_window").replace_strict(UNRECORDED),
                    pl.col("last").fill_null("no date"),
                ).alias("text")
            )
            .select("population", "time_window", "text")
            .sort("population", "time_window")
        )

    @property
    def previous(self) -> date | None:
        return self.dates[-2] if len(self.dates) > 1 else None

    def series_keys(self, dimension: str) -> list[str]:
        """The wide columns of `series` that hold one dimension's actors, in legend order."""
        return self.keys.filter(pl.col("dimension") == dimension)["key"].to_list()

    def actors(self, dimension: str) -> list[str]:
        """The actors of one dimension in legend order."""
        return self.keys.filter(pl.col("dimension") == dimension)["actor"].to_list()


def switched(population: str = "population", window: str = "time_window") -> pl.Expr:
    """Rows the population and window switches can select."""
    return pl.col(population).is_in(POPULATIONS) & pl.col(window).is_in(WINDOWS)


def display_label(column: str, limit: int = LABEL_CHARS) -> pl.Expr:
    """A one-line label cut to `limit` characters (the full text goes in the tooltip)."""
    flat = pl.col(column).str.replace_all(r"\s+", " ")
    return pl.when(flat.str.len_chars() > limit).then(flat.str.slice(0, limit - 1) + pl.lit("…")).otherwise(flat)


def iso(column: str) -> pl.Expr:
    """A date column as `YYYY-MM-DD` text."""
    return pl.col(column).dt.strftime("%Y-%m-%d")


def snapshot_dates(shares: pl.DataFrame) -> tuple[date, ...]:
    """The snapshot dates of the shares series, in order."""
    return tuple(shares["snapshot_date"].unique().sort().to_list())


def view_frames(
    shares: pl.DataFrame,
    concentration: pl.DataFrame,
    crossovers: pl.DataFrame,
    rule: str = "uploader",
    models: Mapping[str, str] | None = None,
) -> ViewFrames:
    """Everything the dashboard draws, under `rule` for the time series and the lab view; `models`: what the
    tooltips say of each date's models (`models_told`), by ISO date."""
    dates = snapshot_dates(shares)
    if not dates:
        raise ValueError("the shares table has no snapshot dates: nothing to draw")
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; known rules: {', '.join(RULES)}")
    countries = top_countries(shares, rule)
    keys = actor_keys(shares, rule, dates[-1], countries)
    return ViewFrames(
        rule=rule,
        series=share_series(shares, concentration, keys, rule).with_columns(
            pl.col("date").replace_strict(dict(models or {}), default="not recorded", return_dtype=pl.String).alias("m")
        ),
        keys=keys,
        crossovers=crossover_marks(crossovers, rule, dates),
        rules=rule_comparison(shares, crossovers, dates[-1]),
        labs=lab_changes(shares, rule, dates),
        sizes=size_class_shares(shares, rule, dates[-1]),
        dates=dates,
        countries=countries,
    )


def models_told(rows_by_date: Mapping[str, object], counted_by_date: Mapping[str, object]) -> dict[str, str]:
    """Each date's models as a tooltip gives them: `94`, or `94 (34 with a 30-day count)` when its record says
    how many have one (an import's), so that a thin date explains its jump."""
    told = {}
    for day, rows in rows_by_date.items():
        if not isinstance(rows, int) or isinstance(rows, bool):
            continue
        counted = counted_by_date.get(day)
        whole = isinstance(counted, int) and not isinstance(counted, bool) and counted != rows
        told[day] = f"{rows:,}" + (f" ({counted:,} with a 30-day count)" if whole else "")
    return told


def top_countries(shares: pl.DataFrame, rule: str) -> pl.DataFrame:
    """Per population and window, the countries (`Unknown` among them) with the most downloads on the last date
    that has any of that population and window, ranked: what the country view draws under each switch setting."""
    combo = ["population", "time_window"]
    known = shares.filter(
        (pl.col("rule") == rule) & (pl.col("dimension") == "country") & switched() & (pl.col("share") > 0)
    )
    return (
        known.filter(pl.col("snapshot_date") == pl.col("snapshot_date").max().over(combo))
        .sort(["share", "actor"], descending=[True, False])
        .with_columns(pl.int_range(1, pl.len() + 1).over(combo).alias("rank"))
        .filter(pl.col("rank") <= TOP_COUNTRIES)
        .select(*combo, iso("snapshot_date").alias("date"), "actor", "rank")
        .sort(*combo, "rank")
    )


def actor_keys(shares: pl.DataFrame, rule: str, latest: date, countries: pl.DataFrame) -> pl.DataFrame:
    """Short column keys for the actors drawn over time: all regions, every setting's top countries (the best
    ranked first), all developer types."""
    latest_rows = shares.filter((pl.col("snapshot_date") == latest) & (pl.col("rule") == rule) & switched())
    rows: list[dict[str, str]] = []
    for dimension, prefix in SERIES_PREFIX.items():
        ranked = (
            latest_rows.filter(pl.col("dimension") == dimension)
            .group_by("actor")
            .agg(pl.col("share").fill_null(0).sum().alias("weight"))
            .sort(["weight", "actor"], descending=[True, False])
        )["actor"].to_list()
        if dimension == "region":
            others = sorted(set(shares.filter(pl.col("dimension") == "region")["actor"].to_list()) - set(REGIONS))
            actors = list(REGIONS) + others
        elif dimension == "country":
            best = countries.group_by("actor").agg(pl.col("rank").min()).sort(["rank", "actor"])
            actors = best["actor"].to_list()
        else:
            actors = ranked
        rows += [{"key": f"{prefix}{i}", "dimension": dimension, "actor": a} for i, a in enumerate(actors)]
    rows += [{"key": key, "dimension": view, "actor": dimension} for key, view, dimension, _ in CONCENTRATION_COLUMNS]
    return pl.DataFrame(rows, schema={"key": pl.String, "dimension": pl.String, "actor": pl.String})


def share_totals(shares: pl.DataFrame) -> pl.DataFrame:
    """The denominator of every share: downloads / share summed over the dimension's actors."""
    group = ["snapshot_date", "time_window", "population", "rule", "dimension"]
    return shares.group_by(group).agg(
        pl.when(pl.col("share").sum() > 0)
        .then(pl.col("downloads").sum() / pl.col("share").sum())
        .round(0)
        .cast(pl.Int64)
        .alias("total")
    )


UNKNOWN_SHARE = -1  # downloads are never negative


def share_series(shares: pl.DataFrame, concentration: pl.DataFrame, keys: pl.DataFrame, rule: str) -> pl.DataFrame:
    """One row per date × population × window: downloads per actor key, the share totals, HHI and poles.

    The views fold the actor columns back into rows and divide by the total, so each share costs one
    integer in the page instead of a full row.
    """
    index = ["snapshot_date", "population", "time_window"]
    actor_columns = keys.filter(pl.col("dimension").is_in(SERIES_PREFIX))["key"].to_list()
    picked = shares.filter((pl.col("rule") == rule) & switched() & pl.col("dimension").is_in(SERIES_PREFIX))
    # A developer type absent from a date has no model that day, and its 0 keeps the stacked mix whole; other actors
    # absent have no point on it.
    types = keys.filter(pl.col("dimension") == "developer_type")["key"].to_list()
    downloads = (
        picked.join(keys, on=["dimension", "actor"], how="inner")
        # An actor whose share is not known has no point on that date, rather than one at 0: -1 through the pivot,
        # which gives an actor absent from the date a null.
        .with_columns(
            pl.when(pl.col("share").is_not_null())
            .then(pl.col("downloads").round(0).cast(pl.Int64))
            .otherwise(pl.lit(UNKNOWN_SHARE, pl.Int64))
        )
        .pivot(on="key", index=index, values="downloads", on_columns=actor_columns)
        .with_columns(pl.col(types).fill_null(0))
        .with_columns(pl.when(pl.col(actor_columns) != UNKNOWN_SHARE).then(pl.col(actor_columns)).name.keep())
    )
    totals = (
        share_totals(picked)
        .with_columns(("t" + pl.col("dimension").replace_strict(SERIES_PREFIX)).alias("key"))
        .pivot(on="key", index=index, values="total", on_columns=[f"t{p}" for p in SERIES_PREFIX.values()])
    )
    metrics = concentration.filter((pl.col("rule") == rule) & switched())
    measures = [
        metrics.filter(pl.col("dimension") == dimension).select(*index, pl.col(metric).round(4).alias(column))
        for column, _, dimension, metric in CONCENTRATION_COLUMNS
    ]
    series = totals.join(downloads, on=index, how="full", coalesce=True)
    for measure in measures:
        series = series.join(measure, on=index, how="full", coalesce=True)
    return (
        series.sort(index)
        .with_columns(iso("snapshot_date").alias("date"))
        .rename({"population": "p", "time_window": "w"})
        .select("date", "p", "w", pl.exclude("date", "p", "w", "snapshot_date"))
    )


def crossed_within() -> pl.Expr:
    """Whether a crossover falls between two dates of its series: one on the series' first date (the challenger
    led from it on) happened before the series began, on a date it does not show."""
    return (pl.col("crossover_date") > pl.col("first_date")).fill_null(True)


def crossover_marks(crossovers: pl.DataFrame, rule: str, dates: tuple[date, ...]) -> pl.DataFrame:
    """China/US crossovers as of the latest snapshot, with their label, placed left or right of the rule."""
    matchups = pl.concat_str("challenger", "incumbent", "dimension", separator="\x00").is_in(
        ["\x00".join(matchup) for matchup in MATCHUPS]
    )
    midpoint = dates[0] + (dates[-1] - dates[0]) / 2
    return (
        crossovers.filter(
            (pl.col("rule") == rule)
            & switched()
            & matchups
            & (pl.col("snapshot_date") == pl.col("snapshot_date").max().over("time_window", "population"))
            & (pl.col("status") == "crossed")
            & pl.col("crossover_date").is_not_null()
        )
        .with_columns(
            iso("crossover_date").alias("date"),
            pl.when(crossed_within())
            .then(pl.format("{} ahead of {} from {}", "challenger", "incumbent", iso("crossover_date")))
            .otherwise(
                pl.format("{} ahead of {} since the first date, {}", "challenger", "incumbent", iso("crossover_date"))
            )
            .alias("label"),
            # What the view writes beside its rule, short enough to fit on the side of it with more room (the
            # incumbent is in the view's subtitle and the full label in the tooltip).
            pl.when(crossed_within())
            .then(pl.format("{} ahead from {}", "challenger", iso("crossover_date")))
            .otherwise(pl.format("{} ahead since the first date, {}", "challenger", iso("crossover_date")))
            .alias("text"),
            crossed_within().alias("observed"),
            (pl.col("crossover_date") > midpoint).alias("late"),
        )
        .with_columns((pl.col("margin") * 100).round(2).alias("margin_pp"))
        .select("dimension", "population", "time_window", "date", "label", "text", "margin_pp", "observed", "late")
        .sort("dimension", "population", "time_window")
    )


def crossover_status(crossovers: pl.DataFrame, latest: date) -> pl.DataFrame:
    """Per window, population and rule: whether China is ahead of the United States by region, and since when."""
    return crossovers.filter(
        (pl.col("snapshot_date") == latest)
        & (pl.col("dimension") == "region")
        & (pl.col("challenger") == "China")
        & (pl.col("incumbent") == "United States")
    ).select(
        "time_window",
        "population",
        "rule",
        pl.when((pl.col("status") == "crossed") & crossed_within())
        .then(pl.format("China ahead since {}", iso("crossover_date")))
        .when(pl.col("status") == "crossed")
        .then(pl.format("China ahead since the first date, {} (the crossing is before it)", iso("crossover_date")))
        .otherwise(pl.lit("China not ahead"))
        .alias("crossover"),
    )


def rule_comparison(shares: pl.DataFrame, crossovers: pl.DataFrame, latest: date) -> pl.DataFrame:
    """China and the United States under each attribution rule on the latest date, with the downloads each
    rule credits (their shares' denominator: the official rule credits labs' own repos only)."""
    group = ["time_window", "population", "rule"]
    regions = shares.filter((pl.col("snapshot_date") == latest) & (pl.col("dimension") == "region") & switched())
    credited = regions.group_by(group).agg(pl.col("downloads").sum().round(0).cast(pl.Int64).alias("credited"))
    return (
        regions.filter(pl.col("actor").is_in(["China", "United States"]))
        .join(credited, on=group, how="left")
        .join(crossover_status(crossovers, latest), on=group, how="left")
        .select(
            "population",
            "time_window",
            "rule",
            pl.col("rule").replace_strict({r: i for i, r in enumerate(RULES)}, default=len(RULES)).alias("order"),
            "actor",
            pl.col("share").round(6),
            pl.col("downloads").round(0).cast(pl.Int64),
            "credited",
            pl.col("crossover").fill_null("no crossover data"),
        )
        .sort("population", "time_window", "order", "actor")
    )


def lab_changes(shares: pl.DataFrame, rule: str, dates: tuple[date, ...]) -> pl.DataFrame:
    """The top labs on the latest date, with their share change in percentage points since the previous snapshot.

    `Unknown`, the downloads of namespaces no registry row explains, is no lab and is not ranked among them."""
    combo = ["population", "time_window"]
    labs = shares.filter(
        (pl.col("rule") == rule) & (pl.col("dimension") == "lab") & (pl.col("actor") != UNKNOWN) & switched()
    )
    latest = (
        labs.filter((pl.col("snapshot_date") == dates[-1]) & pl.col("share").is_not_null())  # ranked: known shares
        .sort(["share", "actor"], descending=[True, False])
        .with_columns(pl.int_range(1, pl.len() + 1).over(combo).alias("rank"))
        .filter(pl.col("rank") <= TOP_LABS)
    )
    if len(dates) > 1:
        previous = labs.filter(pl.col("snapshot_date") == dates[-2]).select(
            *combo, "actor", pl.col("share").alias("previous_share"), pl.lit(True).alias("listed_before")
        )
        # The settings the date before records downloads under: all-time counts crawled after an import of
        # 30-day ones have no share the date before, nor a change.
        recorded = (
            shares.filter((pl.col("snapshot_date") == dates[-2]) & (pl.col("rule") == rule) & switched())
            .select(*combo)
            .unique()
            .with_columns(pl.lit(True).alias("recorded_before"))
        )
        # A lab absent the date before had no share then; one listed with a share not known has no change.
        latest = (
            latest.join(previous, on=[*combo, "actor"], how="left")
            .join(recorded, on=combo, how="left")
            .with_columns(
                pl.when(pl.col("listed_before").is_null() & pl.col("recorded_before").fill_null(False))
                .then(0.0)
                .otherwise("previous_share")
                .alias("previous_share")
            )
        )
    else:
        latest = latest.with_columns(pl.lit(None, pl.Float64).alias("previous_share"))
    return (
        latest.with_columns(display_label("actor").alias("label"))
        .with_columns(
            pl.when(pl.len().over(*combo, "label") > 1)
            .then(pl.format("{} ({})", "label", "rank"))
            .otherwise("label")
            .alias("label")
        )
        .select(
            *combo,
            "rank",
            pl.col("actor").alias("lab"),
            "label",
            pl.col("share").round(6),
            pl.col("downloads").round(0).cast(pl.Int64),
            pl.col("previous_share").round(6),
            ((pl.col("share") - pl.col("previous_share")) * 100).round(3).alias("change_pp"),
        )
        .sort(*combo, "rank")
    )


def size_class_shares(shares: pl.DataFrame, rule: str, latest: date) -> pl.DataFrame:
    """Region shares within each model size class (populations `size:*`) on the latest date."""
    order = {s: i for i, s in enumerate(SIZE_CLASSES)}
    return (
        shares.filter(
            (pl.col("snapshot_date") == latest)
            & (pl.col("rule") == rule)
            & (pl.col("dimension") == "region")
            & pl.col("population").str.starts_with("size:")
            & pl.col("time_window").is_in(WINDOWS)
        )
        .with_columns(pl.col("population").str.strip_prefix("size:").alias("size"))
        .select(
            "time_window",
            "size",
            pl.col("size").replace_strict(order, default=len(order)).alias("size_order"),
            "actor",
            pl.col("share").round(6),
            pl.col("downloads").round(0).cast(pl.Int64),
        )
        .sort("time_window", "size_order", "actor")
    )
