"""One chart per function, each named after what it draws, all driven by the population and window switches.

The switches are Vega-Lite parameters bound to radio inputs; every view filters its own data with them,
so one spec serves every combination. Charts never see raw metric tables, only `frames.ViewFrames`.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json

import altair as alt
import polars as pl

from analytics.concentration import UNKNOWN
from dashboards.frames import POPULATIONS, REGIONS, RULES, SERIES_PREFIX, SIZE_CLASSES, WINDOWS, ViewFrames

POPULATION = "population"  # parameter names, referenced by every view's filter
WINDOW = "window"
POPULATION_LABELS = {"all": "All models", "llm": "LLMs"}
WINDOW_LABELS = {"30d": "Last 30 days", "all_time": "All time"}
VIEWS = (
    "region_share_lines",
    "country_share_lines",
    "effective_poles_lines",
    "hhi_lines",
    "rule_comparison_bars",
    "lab_share_bars",
    "lab_change_bars",
    "developer_type_areas",
    "size_class_bars",
)
WIDTH, HEIGHT = 380, 230
REGION_COLORS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#b0b0b0")
# China, the United States and Unknown take their regions' colours among countries; the other countries these,
# in legend order (none red, blue or grey).
COUNTRY_COLORS = {"CN": REGION_COLORS[0], "US": REGION_COLORS[1], UNKNOWN: REGION_COLORS[4]}
OTHER_COUNTRY_COLORS = (
    "#f58518",
    "#54a24b",
    "#b279a2",
    "#eeca3b",
    "#72b7b2",
    "#9d755d",
    "#ff9da6",
    "#17becf",
    "#bcbd22",
    "#8c564b",
)
# ColorBrewer's Set2 without its grey, which Unknown takes among developer types as it does among regions.
DEVELOPER_TYPE_COLORS = ("#66c2a5", "#fc8d62", "#8da0cb", "#e78ac3", "#a6d854", "#ffd92f", "#e5c494")
SHARE = alt.Tooltip("share:Q", title="Share", format=".2%")
DOWNLOADS = alt.Tooltip("downloads:Q", title="Downloads", format=",.0f")
MODELS = alt.Tooltip("m:N", title="Models in the snapshot")
# Every count is of the window the switch shows; a tooltip names it, as it is read apart from the switches.
WINDOW_NAME = alt.Tooltip("window_name:N", title="Window")
# The x axis parses `date` into a time in place, so the tooltip formats it back as the snapshot's UTC day.
DATE = alt.Tooltip("utcyearmonthdate(date):T", title="Date", format="%Y-%m-%d")


def switches(windows: tuple[str, ...] = WINDOWS, populations: tuple[str, ...] = POPULATIONS) -> list[alt.Parameter]:
    """The population and window switches, bound to radio buttons; they offer `populations` and `windows`."""
    return [
        alt.param(
            name=POPULATION,
            value=populations[0],
            bind=alt.binding_radio(
                options=list(populations), labels=[POPULATION_LABELS[p] for p in populations], name="Population "
            ),
        ),
        alt.param(
            name=WINDOW,
            value=WINDOWS[0],
            bind=alt.binding_radio(options=list(windows), labels=[WINDOW_LABELS[w] for w in windows], name="Window "),
        ),
    ]


def fixed_switches() -> list[alt.Parameter]:
    """The switches at their defaults, unbound: for static images."""
    return [alt.param(name=POPULATION, value=POPULATIONS[0]), alt.param(name=WINDOW, value=WINDOWS[0])]


def window_named(window: str = "time_window") -> dict[str, str]:
    """A calculation naming each row's window (in its field `window`) as the switch does, for `WINDOW_NAME`."""
    return {"window_name": f"{json.dumps(WINDOW_LABELS)}[datum[{window!r}]]"}


def switch_filter(population: str | None = "population", window: str = "time_window") -> str:
    """A filter expression that keeps the rows selected by the switches."""
    window_test = f"datum[{window!r}] === {WINDOW}"
    return window_test if population is None else f"datum[{population!r}] === {POPULATION} && {window_test}"


def records(frame: pl.DataFrame) -> list[dict]:
    """Rows as JSON-ready records without null fields (the views treat a missing field as no value)."""
    return [{k: v for k, v in row.items() if v is not None} for row in frame.to_dicts()]


def datasets(frames: ViewFrames) -> dict[str, list[dict]]:
    """The named datasets every view draws from, to be placed once at the top of the spec.

    Views refer to them by name (`alt.NamedData`), so the rows are embedded once however many views
    use them, and Altair never copies or validates thousands of rows while composing the charts.
    """
    return {
        "series": records(frames.series),
        "keys": records(frames.keys),
        "crossovers": records(frames.crossovers),
        "rules": records(frames.rules),
        "labs": records(frames.labs),
        "sizes": records(frames.sizes),
        "gaps": records(frames.gaps),
    }


def data(name: str) -> alt.NamedData:
    return alt.NamedData(name=name)


def region_scale(frames: ViewFrames) -> alt.Scale:
    """Fixed colours per region, so China and the United States look the same in every view."""
    actors = frames.actors("region")
    colors = [REGION_COLORS[REGIONS.index(a)] if a in REGIONS else "#8c564b" for a in actors]
    return alt.Scale(domain=actors, range=colors)


def country_scale(frames: ViewFrames) -> alt.Scale:
    """Fixed colours per country, the same under every switch (a country without downloads under one keeps its
    colour for the next), with China, the United States and Unknown coloured as their regions are.

    More countries than colours may be drawn over all settings: each takes the first colour no country drawn beside
    it under some setting has, so that no two lines of one view share a colour (a view draws at most ten)."""
    actors = frames.actors("country")
    settings = list(countries_drawn(frames.countries).values())
    colours: dict[str, str] = {}
    spare = itertools.cycle(OTHER_COUNTRY_COLORS)  # only when every colour is taken beside a country
    for actor in actors:
        beside = {colours.get(other) for drawn in settings if actor in drawn for other in drawn}
        free = [colour for colour in OTHER_COUNTRY_COLORS if colour not in beside]
        colours[actor] = COUNTRY_COLORS.get(actor) or (free[0] if free else next(spare))
    return alt.Scale(domain=actors, range=[colours[actor] for actor in actors])


def developer_type_scale(frames: ViewFrames) -> alt.Scale:
    """Fixed colours per developer type, every type in the domain (so that a switch under which one has no
    downloads recolours none of the rest), with Unknown grey as in the region and country views."""
    actors = frames.actors("developer_type")
    others = itertools.cycle(DEVELOPER_TYPE_COLORS)
    return alt.Scale(domain=actors, range=[REGION_COLORS[4] if actor == UNKNOWN else next(others) for actor in actors])


def setting_domain(
    frame: pl.DataFrame,
    column: str,
    by: tuple[str, ...] = ("population", "time_window"),
    *,
    headroom: float = 1.0,
    ceiling: float | None = None,
) -> alt.Scale:
    """A zero-based scale whose domain, per switch setting, spans `column` in `frame`: fixed rather than taken
    from the rows a setting leaves, so that a setting with none (the latest date records no such window) draws
    its note on empty axes rather than warn of an infinite extent. `headroom` stretches the top above the highest
    value, up to `ceiling` (never below the highest value itself)."""
    ends = (
        frame.filter(pl.col(column).is_not_null() & pl.col(column).is_finite())
        .group_by(by)
        .agg(pl.col(column).min().alias("low"), pl.col(column).max().alias("high"))
    )
    table = {}
    for row in ends.iter_rows(named=True):
        top = row["high"] * headroom if ceiling is None else max(min(row["high"] * headroom, ceiling), row["high"])
        low, high = min(row["low"], 0.0), max(top, 0.0)
        table["|".join(row[key] for key in by)] = [low, high] if high > low else [0.0, 1.0]
    setting = " + '|' + ".join({"population": POPULATION, "time_window": WINDOW}[key] for key in by)
    return alt.Scale(domain=alt.ExprRef(f"{json.dumps(table)}[{setting}] || [0, 1]"), nice=True)


def gap_note(width: int, *, population: str | None = None, text: str | None = None) -> alt.Chart:
    """Why a view of the latest date is empty under a setting the latest date has no downloads of; `population`
    fixes the one whose gaps count (for a view the population switch does not apply to), `text` shortens the note
    (for a narrow view)."""
    test = switch_filter() if population is None else f"datum.population === {population!r} && " + switch_filter(None)
    return (
        alt.Chart(data("gaps"))
        .transform_filter(test)
        .mark_text(fontSize=11, color="#555", lineBreak=": ", align="center", baseline="middle")
        .encode(x=alt.value(width / 2), y=alt.value(HEIGHT / 2), text=alt.value(text) if text else "text:N")
    )


def title(text: str, *subtitle: str) -> alt.Title:
    return alt.Title(text, subtitle=list(subtitle), anchor="start")


def folded_series(frames: ViewFrames, dimension: str, value: str) -> alt.Chart:
    """The wide series, switched, then folded back to one row per date and actor of `dimension`."""
    return (
        alt.Chart(data("series"))
        .transform_filter(switch_filter("p", "w"))
        .transform_calculate(**window_named("w"))
        .transform_fold(frames.series_keys(dimension), as_=["key", value])
        .transform_filter(f"isValid(datum[{value!r}])")
        .transform_lookup(lookup="key", from_=alt.LookupData(data=data("keys"), key="key", fields=["actor"]))
    )


def date_axis(frames: ViewFrames) -> alt.X:
    """Dates on a UTC scale, ticked by week or month depending on the span of the series."""
    days = (frames.latest - frames.dates[0]).days
    if days > 180:
        ticks, fmt = {"interval": "month", "step": 2}, "%b %Y"
    elif days > 60:
        ticks, fmt = {"interval": "month", "step": 1}, "%b %Y"
    elif days > 14:
        ticks, fmt = {"interval": "week", "step": 1}, "%b %d"
    else:
        ticks, fmt = {"interval": "day", "step": 1}, "%b %d"
    return alt.X(
        "date:T",
        title=None,
        scale=alt.Scale(type="utc", domain=date_domain(frames)),
        axis=alt.Axis(format=fmt, tickCount=ticks, labelOverlap=True),
    )


def date_domain(frames: ViewFrames) -> list[alt.DateTime]:
    """The span of the snapshots, fixed rather than taken from the rows a switch leaves: a layer left without rows
    (the crossover rule under a population that has none) would give the shared scale an infinite extent. A single
    date gets half a day either side, so that its marks sit mid-axis under its tick."""
    pad = dt.timedelta(hours=12 if len(frames.dates) == 1 else 0)
    ends = (dt.datetime.combine(frames.dates[0], dt.time()) - pad, dt.datetime.combine(frames.latest, dt.time()) + pad)
    return [alt.DateTime(year=t.year, month=t.month, date=t.day, hours=t.hour, utc=True) for t in ends]


# Up to this many dates, each line shows a dot on every date observed; beyond, the dots would merge into the line
# and are drawn transparent, kept for their tooltips.
DOTTED_DATES = 60


def observed_points(frames: ViewFrames) -> alt.OverlayMarkDef:
    """The points of a line, one per date observed: seen when the dates are few, so that a single date (which
    draws no line) shows, and a line joining two dates across a gap shows no point in it."""
    size = 40 if len(frames.dates) == 1 else 14
    return alt.OverlayMarkDef(size=size, filled=True, opacity=1 if len(frames.dates) <= DOTTED_DATES else 0)


# A crossover's label runs along the top of its view: the share axis reaches this far above the highest line
# (a label 11 px tall, 4 px below the top of a plot 230 px tall, needs 1 / (1 - 20 / 230) = 1.095), so no line
# runs through the label.
LABEL_HEADROOM = 1.12


def share_scale(frames: ViewFrames, dimension: str) -> alt.Scale:
    """The share axis of a view over time: in a view that marks a crossover, reaching above every line under each
    setting, to leave its label room (but not past 100 % for it)."""
    keys = frames.series_keys(dimension)
    if not keys or frames.crossovers.filter(pl.col("dimension") == dimension).is_empty():
        return alt.Scale()
    total = pl.col("t" + SERIES_PREFIX[dimension])
    highest = frames.series.select(
        pl.col("p").alias("population"),
        pl.col("w").alias("time_window"),
        pl.max_horizontal([pl.col(key) / total for key in keys]).alias("share"),
    )
    return setting_domain(highest, "share", headroom=LABEL_HEADROOM, ceiling=1.0)


def share_lines(frames: ViewFrames, dimension: str, color: alt.Color) -> alt.Chart:
    """Shares over time, one line per actor of `dimension`."""
    total = "t" + SERIES_PREFIX[dimension]
    return (
        folded_series(frames, dimension, "downloads")
        .transform_calculate(share=f"datum.downloads / datum.{total}")
        .mark_line(point=observed_points(frames), strokeWidth=2)
        .encode(
            x=date_axis(frames),
            y=alt.Y(
                "share:Q", title="Share of downloads", axis=alt.Axis(format="%"), scale=share_scale(frames, dimension)
            ),
            color=color,
            tooltip=[
                DATE,
                WINDOW_NAME,
                alt.Tooltip("actor:N", title=dimension.title()),
                SHARE,
                DOWNLOADS,
                MODELS,
            ],
        )
    )


def crossover_layers(frames: ViewFrames, dimension: str) -> list[alt.Chart]:
    """A dashed rule at each crossover date and its label, left or right of the rule to stay in view."""
    marks = frames.crossovers.filter(pl.col("dimension") == dimension)
    base = (
        alt.Chart(data("crossovers"))
        .transform_filter(f"datum.dimension === {dimension!r}")
        .transform_filter(switch_filter())
    )
    tooltip = [
        alt.Tooltip("label:N", title="Crossover"),
        alt.Tooltip("margin_pp:Q", title="Margin on the latest date observed (percentage points)", format="+.1f"),
    ]
    # A crossing before the first date has no date to mark: its label alone says so.
    rule = (
        base.transform_filter("datum.observed")
        .mark_rule(strokeDash=[5, 3], color="#333")
        .encode(x=date_axis(frames), tooltip=tooltip)
    )
    labels = [
        base.transform_filter(f"{'' if late else '!'}datum.late")
        .mark_text(align="right" if late else "left", dx=-4 if late else 4, baseline="top", fontSize=11)
        .encode(x=date_axis(frames), y=alt.value(4), text="text:N", tooltip=tooltip)
        for late in (False, True)
        if late in marks["late"].to_list()
    ]
    return [rule, *labels] if marks["observed"].any() else labels


def region_share_lines(frames: ViewFrames) -> alt.LayerChart:
    """Region shares of downloads over time, with the China/United States crossover marked."""
    color = alt.Color("actor:N", title="Region", scale=region_scale(frames))
    return alt.layer(share_lines(frames, "region", color), *crossover_layers(frames, "region")).properties(
        name="region_share_lines",
        width=WIDTH,
        height=HEIGHT,
        title=title(
            "Share of downloads by region",
            f"Each line is a region's share of the window's downloads ({frames.rule} rule).",
            "The dashed rule marks the date from which China stays ahead of the United States.",
        ),
    )


def countries_drawn(countries: pl.DataFrame) -> dict[str, list[str]]:
    """The countries each switch setting draws (by "population|window"), in rank order."""
    return {
        f"{population}|{window}": group["actor"].to_list()
        for (population, window), group in countries.sort("rank").group_by(
            "population", "time_window", maintain_order=True
        )
    }


def countries_heading(countries: pl.DataFrame) -> dict[str, str]:
    """The country view's title under each switch setting: how many countries it draws, of which date."""
    headings = {}
    for (population, window), group in countries.group_by("population", "time_window"):
        named = group.filter(pl.col("actor") != UNKNOWN).height
        unknown = " and Unknown" if group.height > named else ""
        headings[f"{population}|{window}"] = f"Share of downloads: top {named} countries{unknown} on {group['date'][0]}"
    return headings


def switched_value(table: dict, default: object) -> alt.ExprRef:
    """An expression taking the entry of `table` for the switches' setting ("population|window")."""
    return alt.ExprRef(f"{json.dumps(table, sort_keys=True)}[{POPULATION} + '|' + {WINDOW}] || {json.dumps(default)}")


def country_share_lines(frames: ViewFrames) -> alt.LayerChart:
    """Country shares over time for the top countries on the latest date."""
    drawn = countries_drawn(frames.countries)
    color = alt.Color(
        "actor:N", title="Country", scale=country_scale(frames), legend=alt.Legend(values=switched_value(drawn, []))
    )
    # Each setting draws its own top countries: a country that ranks under one setting has no line under another.
    lines = share_lines(frames, "country", color).transform_filter(
        f"indexof({json.dumps(drawn, sort_keys=True)}[datum.p + '|' + datum.w] || [], datum.actor) >= 0"
    )
    return alt.layer(lines, *crossover_layers(frames, "country")).properties(
        name="country_share_lines",
        width=WIDTH,
        height=HEIGHT,
        title=alt.Title(
            switched_value(countries_heading(frames.countries), "Share of downloads by country"),
            subtitle=[
                "The countries with the most downloads on that date, under the population and window shown.",
                "Countries are ISO 3166 codes; Unknown is downloads credited to no country:",
                "namespaces the registry does not list, and listed ones without a country (mostly intermediaries).",
            ],
            anchor="start",
        ),
    )


def concentration_lines(frames: ViewFrames, view: str, measure: str, fmt: str) -> alt.Chart:
    """One concentration measure over time, by country and by lab."""
    return (
        folded_series(frames, view, "value")
        .mark_line(point=observed_points(frames), strokeWidth=2)
        .encode(
            x=date_axis(frames),
            y=alt.Y("value:Q", title=measure),
            strokeDash=alt.StrokeDash("actor:N", title="Over"),
            color=alt.Color("actor:N", title="Over", scale=alt.Scale(range=["#264653", "#e76f51"])),
            tooltip=[
                DATE,
                WINDOW_NAME,
                alt.Tooltip("actor:N", title="Over"),
                alt.Tooltip("value:Q", title=measure, format=fmt),
                MODELS,
            ],
        )
    )


def effective_poles_lines(frames: ViewFrames) -> alt.LayerChart:
    """The effective number of poles (1 / HHI) over time."""
    lines = concentration_lines(frames, "effective_poles", "Effective number of poles", ".2f")
    return alt.layer(lines).properties(
        name="effective_poles_lines",
        width=WIDTH,
        height=HEIGHT,
        title=title(
            "Effective number of poles",
            "1 / HHI over known countries and labs: how many equal poles would give the same concentration.",
            "Higher is more multipolar.",
        ),
    )


def hhi_lines(frames: ViewFrames) -> alt.LayerChart:
    """The Herfindahl-Hirschman index of downloads over time."""
    return alt.layer(concentration_lines(frames, "hhi", "HHI (0 to 1)", ".4f")).properties(
        name="hhi_lines",
        width=WIDTH,
        height=HEIGHT,
        title=title(
            "Concentration (HHI)",
            "Sum of squared shares over known countries and labs; 1 means one actor has every download.",
        ),
    )


def rule_comparison_bars(frames: ViewFrames) -> alt.LayerChart:
    """China and the United States under each attribution rule on the latest date."""
    base = (
        alt.Chart(data("rules"))
        .transform_filter(switch_filter())
        .transform_filter("isValid(datum.share)")
        .transform_calculate(**window_named())  # a share not known has no bar, rather than one of 0
        .encode(
            x=alt.X("rule:N", title="Attribution rule", sort=list(RULES), axis=alt.Axis(labelAngle=0)),
            xOffset=alt.XOffset("actor:N", sort=["China", "United States"]),
            y=alt.Y(
                "share:Q",
                title="Share of downloads",
                axis=alt.Axis(format="%"),
                scale=setting_domain(frames.rules, "share"),
            ),
            tooltip=[
                alt.Tooltip("rule:N", title="Rule"),
                WINDOW_NAME,
                alt.Tooltip("actor:N", title="Region"),
                SHARE,
                DOWNLOADS,
                alt.Tooltip("credited:Q", title="Downloads the rule credits (the share's base)", format=",.0f"),
                alt.Tooltip("crossover:N", title="Crossover"),
            ],
        )
    )
    bars = base.mark_bar().encode(color=alt.Color("actor:N", title="Region", scale=region_scale(frames)))
    labels = base.mark_text(baseline="bottom", dy=-2, fontSize=10).encode(text=alt.Text("share:Q", format=".1%"))
    return alt.layer(bars, labels, gap_note(WIDTH)).properties(
        name="rule_comparison_bars",
        width=WIDTH,
        height=HEIGHT,
        title=title(
            f"Three attribution rules on {frames.latest}",
            "uploader: the account hosting the repo; official: labs' own repos only;",
            "lineage: follow base_model tags to the root model's lab. Each bar is a share of the downloads",
            "its rule credits: official's are of fewer downloads (hover a bar for how many).",
        ),
    )


# The lab names' axis is this wide whatever the names, so that switching the population, which changes them,
# does not move the charts beside it (and push the last legend of the row past the page's edge).
LAB_AXIS_WIDTH = 170


def lab_y() -> alt.Y:
    return alt.Y(
        "label:N",
        title=None,
        sort=alt.EncodingSortField("rank", op="min", order="ascending"),
        axis=alt.Axis(labelLimit=LAB_AXIS_WIDTH - 10, minExtent=LAB_AXIS_WIDTH, maxExtent=LAB_AXIS_WIDTH),
    )


def lab_tooltip(frames: ViewFrames) -> list[alt.Tooltip]:
    """A lab's tooltip, naming the dates its share and change are of (the previous snapshot need not be the day
    before: dates the views leave out, or a panel's gaps, lie between)."""
    then = f"on {frames.previous}" if frames.previous else "before (no previous snapshot)"
    return [
        alt.Tooltip("lab:N", title="Lab"),
        WINDOW_NAME,
        alt.Tooltip("rank:Q", title=f"Rank on {frames.latest}"),
        alt.Tooltip("share:Q", title=f"Share on {frames.latest}", format=".2%"),
        alt.Tooltip("downloads:Q", title=f"Downloads on {frames.latest}", format=",.0f"),
        alt.Tooltip("previous_share:Q", title=f"Share {then}", format=".2%"),
        alt.Tooltip("change_pp:Q", title="Change (percentage points)", format="+.2f"),
    ]


def lab_share_bars(frames: ViewFrames) -> alt.LayerChart:
    """The top labs' shares on the latest date."""
    bars = (
        alt.Chart(data("labs"))
        .transform_filter(switch_filter())
        .transform_calculate(**window_named())
        .mark_bar(color="#4c78a8")
        .encode(
            x=alt.X(
                "share:Q",
                title="Share of downloads",
                axis=alt.Axis(format="%"),
                scale=setting_domain(frames.labs, "share"),
            ),
            y=lab_y(),
            tooltip=lab_tooltip(frames),
        )
    )
    return alt.layer(bars, gap_note(WIDTH - 170)).properties(
        name="lab_share_bars",
        width=WIDTH - 170,
        height=HEIGHT,
        title=title(
            f"Top credited labs and accounts on {frames.latest}",
            f"Share of downloads ({frames.rule} rule). Intermediaries (re-uploaders,",
            "quantizers) count for what they host; Unknown (no registry row) is left out.",
        ),
    )


def lab_change_bars(frames: ViewFrames, labelled: bool = False) -> alt.LayerChart:
    """The top labs' share change since the previous snapshot, in percentage points.

    Beside `lab_share_bars` the lab names are not repeated; `labelled` shows them (for a standalone image).
    """
    since = f"since {frames.previous}" if frames.previous else "(no previous snapshot)"
    # With no previous snapshot there is no change to draw, and no rows to take the axis's extent from.
    scale = alt.Scale(domain=[-1, 1]) if frames.previous is None else setting_domain(frames.labs, "change_pp")
    width = WIDTH - 170 if labelled else WIDTH - 290
    bars = (
        alt.Chart(data("labs"))
        .transform_filter(switch_filter())
        .transform_filter("isValid(datum.change_pp)")
        .transform_calculate(**window_named())
        .mark_bar()
        .encode(
            x=alt.X("change_pp:Q", title="Change (percentage points)", scale=scale),
            y=lab_y() if labelled else lab_y().axis(labels=False, ticks=False, title=None),
            color=alt.when(alt.datum.change_pp >= 0).then(alt.value("#2a9d8f")).otherwise(alt.value("#e76f51")),
            tooltip=lab_tooltip(frames),
        )
    )
    # A setting the date before records no downloads of (all-time counts crawled after an import of 30-day ones)
    # has no change to draw: it says so.
    combo = ["population", "time_window"]
    before = frames.labs.group_by(combo).agg(pl.col("previous_share").is_not_null().any().alias("any"))
    unmeasured = sorted(f"{p}|{w}" for p, w, any_before in before.iter_rows() if not any_before)
    layers = [bars, gap_note(width, text="none")]
    if frames.previous is not None and unmeasured:
        layers.append(
            alt.Chart(data("labs"))
            .transform_filter(switch_filter())
            .transform_filter(
                f"datum.rank === 1 && indexof({unmeasured!r}, datum.population + '|' + datum.time_window) >= 0"
            )
            .mark_text(fontSize=11, color="#555", align="center", baseline="middle")
            .encode(
                x=alt.value(width / 2), y=alt.value(HEIGHT / 2), text=alt.value(["none recorded", "the date before"])
            )
        )
    return alt.layer(*layers).properties(
        name="lab_change_bars",
        width=width,
        height=HEIGHT,
        title=title("Change", since),
    )


def lone_settings(frames: ViewFrames) -> list[str]:
    """The switch settings (`population|time_window`) whose downloads one date alone records."""
    dated = frames.series.filter(pl.col("tk").is_not_null()).group_by("p", "w").agg(pl.col("date").n_unique())
    return sorted(f"{p}|{w}" for p, w, dates in dated.iter_rows() if dates == 1)


def developer_type_areas(frames: ViewFrames) -> alt.Chart | alt.LayerChart:
    """The mix of developer types over time, as stacked shares.

    Stacked here rather than by Vega-Lite, which would fill a date a type has no known share on with a 0: such a
    date has no area of that type, as it has no point on a line."""
    keys = frames.series_keys("developer_type")
    known = "isValid(datum.downloads) && isValid(datum.tk)"
    stacked = (
        alt.Chart(data("series"))
        .transform_filter(switch_filter("p", "w"))
        .transform_calculate(**window_named("w"))
        .transform_fold(keys, as_=["key", "downloads"])
        .transform_lookup(lookup="key", from_=alt.LookupData(data=data("keys"), key="key", fields=["actor"]))
        .transform_calculate(
            share=f"{known} ? datum.downloads / datum.tk : null",
            order=f"indexof({keys!r}, datum.key)",
        )
        .transform_calculate(height="isValid(datum.share) ? datum.share : 0")
        .transform_stack(stack="height", groupby=["date"], as_=["low", "high"], sort=[alt.SortField("order")])
        .transform_calculate(
            low="isValid(datum.share) ? datum.low : null", high="isValid(datum.share) ? datum.high : null"
        )
    )
    encoded = stacked.encode(
        x=date_axis(frames),
        # Shares stacked to 100 %, on an axis of its own whichever layer draws them.
        y=alt.Y("high:Q", title="Share of downloads", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
        y2="low:Q",
        color=alt.Color(
            "actor:N",
            title="Developer type",
            scale=developer_type_scale(frames),
        ),
        tooltip=[
            DATE,
            WINDOW_NAME,
            alt.Tooltip("actor:N", title="Developer type"),
            SHARE,
            DOWNLOADS,
            MODELS,
        ],
    )
    # A single date draws no area: its mix is one stacked bar, under every setting when the page has one date,
    # else under the settings that record one date alone (30-day counts imported, then all-time ones crawled).
    if len(frames.dates) == 1:
        marked: alt.Chart | alt.LayerChart = encoded.mark_bar(opacity=0.85, size=40)
    else:
        area = encoded.mark_area(opacity=0.85, invalid="break-paths-show-domains")
        lone = lone_settings(frames)
        alone = f"indexof({lone!r}, datum.p + '|' + datum.w) >= 0"
        # Narrow: the date may sit at the plot's edge, beside the legend.
        bar = encoded.mark_bar(opacity=0.85, size=12).transform_filter(alone)
        marked = alt.layer(area.transform_filter(f"!({alone})"), bar) if lone else area
    return marked.properties(
        name="developer_type_areas",
        width=WIDTH,
        height=HEIGHT,
        title=title(
            "Who develops what is downloaded",
            "Share of downloads by developer type; intermediaries re-upload and quantize others' models",
            "or host libraries' test fixtures.",
        ),
    )


def size_class_bars(frames: ViewFrames) -> alt.LayerChart:
    """Region shares within each model size class on the latest date."""
    stacks = frames.sizes.group_by("time_window", "size").agg(pl.col("share").sum())
    bars = (
        alt.Chart(data("sizes"))
        .transform_filter(switch_filter(None))
        .transform_calculate(**window_named())
        .mark_bar()
        .encode(
            x=alt.X("size:N", title="Parameters", sort=list(SIZE_CLASSES), axis=alt.Axis(labelAngle=0)),
            y=alt.Y(
                "share:Q",
                title="Share of downloads",
                stack="zero",
                axis=alt.Axis(format="%"),
                scale=setting_domain(stacks, "share", by=("time_window",)),
            ),
            color=alt.Color("actor:N", title="Region", scale=region_scale(frames)),
            tooltip=[
                alt.Tooltip("size:N", title="Size class"),
                WINDOW_NAME,
                alt.Tooltip("actor:N", title="Region"),
                SHARE,
                DOWNLOADS,
            ],
        )
    )
    return alt.layer(bars, gap_note(WIDTH, population=POPULATIONS[0])).properties(
        name="size_class_bars",
        width=WIDTH,
        height=HEIGHT,
        title=title(
            f"By model size on {frames.latest}",
            "Region shares within each size class; the window switch applies, the population switch",
            "does not (each bar is its own population).",
        ),
    )
