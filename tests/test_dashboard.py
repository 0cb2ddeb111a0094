"""The dashboard: every chart builds from fixture metrics, the page is self-contained, honest and safe."""

from __future__ import annotations

import json
import math
import re
from datetime import date
from pathlib import Path

import altair as alt
import polars as pl
import pytest
import vl_convert as vlc

from dashboards import charts, frames
from dashboards.page import (
    VL_CONVERT_VERSION,
    DashboardResult,
    dashboard_chart,
    dashboard_spec,
    data_label,
    headline,
    page_header,
    provenance_footer,
    view_charts,
    write_dashboard,
)

HOSTILE = "<script>alert(1)</script>"
LONG_NAME = "deep-lab-" + "x" * 10_000

# lab → (country, region, developer type, downloads on day 0, daily growth)
LABS = {
    "Qwen": ("CN", "China", "industry", 9.0e6, 1.004),
    "DeepSeek": ("CN", "China", "industry", 5.0e6, 1.003),
    "Moonshot": ("CN", "China", "industry", 1.0e6, 1.004),
    "Zhipu": ("CN", "China", "industry", 1.2e6, 1.002),
    "BAAI": ("CN", "China", "non-profit", 2.0e6, 1.001),
    "Meta": ("US", "United States", "industry", 16.0e6, 0.999),
    "Google": ("US", "United States", "industry", 9.0e6, 1.0),
    "Microsoft": ("US", "United States", "industry", 4.0e6, 1.0),
    "OpenAI": ("US", "United States", "industry", 2.0e6, 1.002),
    "AllenAI": ("US", "United States", "non-profit", 1.0e6, 1.0),
    "Mistral": ("FR", "Europe", "industry", 3.0e6, 1.001),
    "HuggingFace": ("FR", "Europe", "industry", 1.5e6, 1.0),
    "Stability": ("GB", "Europe", "industry", 1.0e6, 0.998),
    "DFKI": ("DE", "Europe", "academia", 0.3e6, 1.0),
    "Cohere": ("CA", "Rest of world", "industry", 0.8e6, 1.0),
    "LG": ("KR", "Rest of world", "industry", 0.5e6, 1.001),
    "Sakana": ("JP", "Rest of world", "industry", 0.3e6, 1.001),
    "TII": ("AE", "Rest of world", "government", 0.6e6, 0.999),
    "AI21": ("IL", "Rest of world", "industry", 0.2e6, 1.0),
    "TheBloke": ("Unknown", "Unknown", "intermediary", 2.5e6, 0.998),
}
POPULATION_FACTOR = {
    "all": 1.0,
    "llm": 0.7,
    "size:<1B": 0.15,
    "size:1-9B": 0.45,
    "size:10-99B": 0.2,
    "size:100B+": 0.1,
    "size:unknown": 0.1,
}
RULE_FACTOR = {"uploader": 0.0, "official": 0.1, "lineage": 0.2}  # how much each rule tilts towards China


def synthetic_metrics(days: int, labs: dict = LABS, start: date = date(2025, 6, 1)) -> dict[str, pl.DataFrame]:
    """Shares, concentration and crossovers for `days` daily snapshots of a small synthetic world."""
    lab_rows = pl.DataFrame(
        [
            {"lab": k, "country": v[0], "region": v[1], "developer_type": v[2], "base": v[3], "growth": v[4]}
            for k, v in labs.items()
        ]
    )
    grid = (
        pl.DataFrame({"day": list(range(days))})
        .join(lab_rows, how="cross")
        .join(pl.DataFrame({"time_window": ["30d", "all_time"], "scale": [1.0, 12.0]}), how="cross")
        .join(
            pl.DataFrame({"population": list(POPULATION_FACTOR), "pf": list(POPULATION_FACTOR.values())}), how="cross"
        )
        .join(pl.DataFrame({"rule": list(RULE_FACTOR), "tilt": list(RULE_FACTOR.values())}), how="cross")
        .with_columns(
            (pl.lit(start) + pl.duration(days=pl.col("day"))).alias("snapshot_date"),
            (
                pl.col("base")
                * pl.col("growth").pow(pl.col("day") * 365 / days)
                * pl.col("scale")
                * pl.col("pf")
                * pl.when(pl.col("region") == "China").then(1 + pl.col("tilt")).otherwise(1 - pl.col("tilt") / 2)
                * (1 + 0.05 * (pl.col("day") * 0.7 + pl.col("base") / 1e6).sin())
            ).alias("downloads"),
        )
    )
    keys = ["snapshot_date", "time_window", "population", "rule"]
    shares = pl.concat(
        grid.group_by(*keys, dimension)
        .agg(pl.col("downloads").sum())
        .rename({dimension: "actor"})
        .with_columns(pl.lit(dimension).alias("dimension"))
        for dimension in ("lab", "country", "region", "developer_type")
    ).with_columns((pl.col("downloads") / pl.col("downloads").sum().over(*keys, "dimension")).alias("share"))
    shares = shares.select(
        "snapshot_date", "time_window", "population", "rule", "dimension", "actor", "downloads", "share"
    )
    known = shares.filter(pl.col("actor") != "Unknown").with_columns(
        (pl.col("downloads") / pl.col("downloads").sum().over(*keys, "dimension")).alias("s")
    )
    concentration = (
        known.sort("s", descending=True)
        .group_by(*keys, "dimension")
        .agg(
            pl.col("downloads").sum(),
            (pl.col("s") ** 2).sum().alias("hhi"),
            (-(pl.col("s") * pl.col("s").log())).sum().alias("entropy"),
            pl.col("s").first().alias("cr1"),
            pl.col("s").head(3).sum().alias("cr3"),
            pl.col("s").head(5).sum().alias("cr5"),
            pl.len().cast(pl.Int64).alias("actors"),
        )
        .with_columns(
            (1 / pl.col("hhi")).alias("effective_poles"),
            pl.col("entropy").exp().alias("exp_entropy"),
            pl.lit(0.5).alias("gini"),
        )
    )
    region = shares.filter(pl.col("dimension") == "region").pivot(
        on="actor", index=[*keys, "dimension"], values="share"
    )
    crossovers = (
        region.sort("snapshot_date")
        .with_columns((pl.col("China") > pl.col("United States")).alias("ahead"))
        .with_columns(
            (pl.col("ahead") != pl.col("ahead").shift(1))
            .fill_null(True)
            .cum_sum()
            .over("time_window", "population", "rule")
            .alias("run")
        )
        .with_columns(
            pl.col("snapshot_date").min().over("time_window", "population", "rule", "run").alias("run_start"),
            pl.col("snapshot_date").min().over("time_window", "population", "rule").alias("first_date"),
            pl.int_range(1, pl.len() + 1).over("time_window", "population", "rule").alias("dates"),
        )
        .select(
            *keys,
            "dimension",
            pl.lit("China").alias("challenger"),
            pl.lit("United States").alias("incumbent"),
            pl.when(pl.col("ahead") & (pl.col("run_start") > pl.col("first_date")))
            .then(pl.lit("crossed"))
            .otherwise(pl.lit("none"))
            .alias("status"),
            pl.when(pl.col("ahead") & (pl.col("run_start") > pl.col("first_date")))
            .then(pl.col("run_start"))
            .alias("crossover_date"),
            (pl.col("China") - pl.col("United States")).alias("margin"),
            "first_date",
            pl.col("dates").cast(pl.Int64),
        )
    )
    return {"shares": shares, "concentration": concentration, "crossovers": crossovers}


def provenance(metrics: dict[str, pl.DataFrame], **overrides: object) -> dict:
    dates = sorted({d.isoformat() for d in metrics["shares"]["snapshot_date"].to_list()})
    return {
        "source": "synthetic world (tests)",
        "source_kind": "synthetic",
        "dates": dates,
        "rows": metrics["shares"].height,
        "registry_version": "registry-test-1",
        "generated_at": "2026-05-02T06:00:00+00:00",
    } | overrides


@pytest.fixture(scope="module")
def small() -> dict[str, pl.DataFrame]:
    return synthetic_metrics(days=6 * 7)


@pytest.fixture(scope="module")
def small_dashboard(small: dict[str, pl.DataFrame], tmp_path_factory: pytest.TempPathFactory) -> DashboardResult:
    out = tmp_path_factory.mktemp("dashboard")
    return write_dashboard(**small, provenance=provenance(small), out_dir=out)


def _walk(spec: object):
    """Every dict inside a Vega-Lite spec."""
    if isinstance(spec, dict):
        yield spec
        for value in spec.values():
            yield from _walk(value)
    elif isinstance(spec, list):
        for value in spec:
            yield from _walk(value)


def _outside_spec(page: str) -> str:
    """The page with its inline JavaScript (bundle and spec) cut out: the HTML a reader sees."""
    return re.sub(r"<script\b.*?</script>", "", page, flags=re.S)


def test_every_chart_builds_from_fixture_metrics(small: dict[str, pl.DataFrame]) -> None:
    drawn = frames.view_frames(**small)
    assert list(view_charts(drawn)) == list(charts.VIEWS)
    spec = dashboard_chart(drawn).to_dict()
    names = {d.get("name") for d in _walk(spec)}
    assert set(charts.VIEWS) <= names
    params = {p["name"]: p for p in spec["params"]}
    assert params["population"]["bind"]["input"] == "radio"
    assert params["population"]["bind"]["options"] == ["all", "llm"]
    assert params["window"]["bind"]["options"] == ["30d", "all_time"]
    filters = [t["filter"] for d in _walk(spec) for t in d.get("transform", []) if "filter" in t]
    assert any("population" in str(f) and "window" in str(f) for f in filters)
    for name in charts.VIEWS:
        view = next(d for d in _walk(spec) if d.get("name") == name)
        assert any("tooltip" in d.get("encoding", {}) for d in _walk(view)), name


def test_the_drawing_is_narrow_enough_that_a_1024_px_window_shrinks_its_text_by_under_a_tenth(small: dict) -> None:
    svg = vlc.vegalite_to_svg(dashboard_spec(frames.view_frames(**small)), vl_version=VL_CONVERT_VERSION)
    width = float(re.search(r'<svg[^>]*\bwidth="([\d.]+)"', svg).group(1))
    # Every row's plot starts where the widest axis left of a first view ends: the region view's percentages, not the
    # labs' names, which sit in the last row's second view.
    available = 1024 - 2 * 16  # the page's margins
    assert available / width > 0.9, width


def test_views_are_not_duplicated_per_switch_combination(small: dict[str, pl.DataFrame]) -> None:
    spec = dashboard_chart(frames.view_frames(**small)).to_dict()
    units = [d for d in _walk(spec) if "mark" in d]
    assert len(units) < 3 * len(charts.VIEWS)


def test_tooltips_format_shares_as_percent_and_downloads_with_separators(small: dict[str, pl.DataFrame]) -> None:
    spec = dashboard_chart(frames.view_frames(**small)).to_dict()
    tooltips = [t for d in _walk(spec) for t in d.get("encoding", {}).get("tooltip", []) if isinstance(t, dict)]
    assert {t.get("format") for t in tooltips if t.get("field") == "share"} == {".2%"}
    assert {t.get("format") for t in tooltips if t.get("field") == "downloads"} == {",.0f"}
    # Every line over time tells the models of its date: five views draw from the series.
    assert sum(t.get("field") == "m" for t in tooltips) == 5
    first, *rest = sorted(set(frames.view_frames(**small).series["date"]))
    told = frames.view_frames(**small, models={first: "12"}).series
    assert set(told.filter(pl.col("date") == first)["m"]) == {"12"}
    assert set(told.filter(pl.col("date").is_in(rest))["m"]) == {"not recorded"}


def drawn_descriptions(views: frames.ViewFrames) -> list[str]:
    """The text Vega gives each drawn mark of the whole page (its tooltip fields among it), default switches."""
    spec = dashboard_spec(views)
    scene = json.dumps(vlc.vegalite_to_scenegraph(spec, vl_version=VL_CONVERT_VERSION))
    return re.findall(r'"description": "([^"]*)"', scene)


def test_a_hovered_date_reads_as_the_snapshot_day() -> None:
    views = frames.view_frames(**synthetic_metrics(days=3))
    told = {match for text in drawn_descriptions(views) for match in re.findall(r"Date: ([^;]*)", text)}
    # Lines and areas tell their date, as the day of the snapshot rather than a count of milliseconds.
    assert told == {day.isoformat() for day in views.dates}


def test_every_hovered_count_names_the_window_it_counts() -> None:
    views = frames.view_frames(**synthetic_metrics(days=3))
    told = [text for text in drawn_descriptions(views) if re.search(r"(Downloads|Share|HHI|poles)[^:]*: ", text)]
    # Lines, areas and bars alike: a tooltip read apart from the switch bar says whose counts it gives.
    assert len(told) > 100
    assert [text for text in told if "Window: Last 30 days;" not in text] == []


def drawn_items(views: frames.ViewFrames, mark: str) -> list[dict]:
    """The items Vega draws for one mark of the page (default switches)."""
    scene = vlc.vegalite_to_scenegraph(dashboard_spec(views), vl_version=VL_CONVERT_VERSION)
    return [item for node in _walk(scene) if node.get("name") == mark for item in node["items"]]


def test_a_developer_type_whose_share_is_not_known_has_no_area_on_that_date() -> None:
    metrics = synthetic_metrics(days=3)
    gap = (
        (pl.col("snapshot_date") == date(2025, 6, 2))
        & (pl.col("dimension") == "developer_type")
        & (pl.col("actor") == "academia")
    )
    metrics["shares"] = metrics["shares"].with_columns(
        pl.when(gap).then(None).otherwise(pl.col("share")).alias("share"),
        pl.when(gap).then(0.0).otherwise(pl.col("downloads")).alias("downloads"),
    )
    items = drawn_items(frames.view_frames(**metrics), "developer_type_areas_marks")
    academia = [item for item in items if "Developer type: academia;" in item["description"]]
    drawn = [item["description"] for item in academia if item["defined"]]
    # Drawn on the two dates its share is known, and not as a 0 on the one between.
    assert len(drawn) == 2, drawn
    assert not any("Share: 0.00%" in text for text in drawn), drawn
    assert all(item["defined"] or item.get("y") is None for item in items)


def test_a_developer_type_with_no_model_on_a_date_is_drawn_at_0_there_keeping_the_mix_whole() -> None:
    metrics = synthetic_metrics(days=3)
    absent = (
        (pl.col("snapshot_date") == date(2025, 6, 2))
        & (pl.col("dimension") == "developer_type")
        & (pl.col("actor") == "academia")
    )
    metrics["shares"] = metrics["shares"].filter(~absent)  # no academic model listed that day: no row
    views = frames.view_frames(**metrics)
    items = drawn_items(views, "developer_type_areas_marks")
    academia = [item for item in items if "Developer type: academia;" in item["description"]]
    # Its band thins to nothing on that date rather than leave a hole in the stack between its neighbours.
    assert [item["defined"] for item in academia] == [True, True, True], academia
    assert "Date: 2025-06-02;" in academia[1]["description"] and "Share: 0.00%;" in academia[1]["description"]


def seen_marks(node: dict) -> int:
    """How many marks inside a scenegraph node a reader sees: points and bars that are not transparent, and lines
    and areas through two points or more (one point draws nothing)."""
    seen = 0
    for mark in _walk(node):
        if mark.get("role") != "mark":
            continue
        items = [item for item in mark["items"] if item.get("defined", True) and item.get("opacity", 1) > 0]
        if mark["marktype"] in ("line", "area"):
            seen += len(items) if len(items) > 1 else 0
        elif mark["marktype"] in ("symbol", "rect"):
            seen += len(items)
    return seen


OVER_TIME = ("region_share_lines", "country_share_lines", "effective_poles_lines", "hhi_lines", "developer_type_areas")


def test_a_single_snapshot_is_seen_in_every_view_over_time() -> None:
    views = frames.view_frames(**synthetic_metrics(days=1))
    scene = vlc.vegalite_to_scenegraph(dashboard_spec(views), vl_version=VL_CONVERT_VERSION)
    groups = {node.get("name"): node for node in _walk(scene)}
    assert {name: seen_marks(groups[f"{name}_group"]) > 0 for name in OVER_TIME} == dict.fromkeys(OVER_TIME, True)
    # Its points sit mid-axis, under the one tick, which names the date.
    region = groups["region_share_lines_group"]
    symbols = [mark for mark in _walk(region) if mark.get("role") == "mark" and mark.get("marktype") == "symbol"]
    points = [item for mark in symbols for item in mark["items"]]
    assert points and all(math.isclose(item["x"], charts.WIDTH / 2, abs_tol=1) for item in points)
    labels = [item.get("text") for mark in _walk(region) if mark.get("role") == "axis-label" for item in mark["items"]]
    assert "Jun 01" in labels


def test_a_single_snapshot_is_counted_as_one_in_the_header_and_the_footer() -> None:
    metrics = synthetic_metrics(days=1)
    views = frames.view_frames(**metrics)
    top, bottom = page_header(views, provenance(metrics)), provenance_footer(views, provenance(metrics))
    assert "over 1 dated snapshot." in top and "<dd>2025-06-01 (1 snapshot)</dd>" in bottom
    metrics = synthetic_metrics(days=2)
    views = frames.view_frames(**metrics)
    top, bottom = page_header(views, provenance(metrics)), provenance_footer(views, provenance(metrics))
    assert "over 2 dated snapshots." in top and "<dd>2025-06-01 – 2025-06-02 (2 snapshots)</dd>" in bottom


def test_a_line_shows_the_dates_it_joins() -> None:
    metrics = synthetic_metrics(days=3)
    # The middle date removed: the line joins the first and the last, and shows a point on those alone.
    gapped = {name: table.filter(pl.col("snapshot_date") != date(2025, 6, 2)) for name, table in metrics.items()}
    scene = vlc.vegalite_to_scenegraph(dashboard_spec(frames.view_frames(**gapped)), vl_version=VL_CONVERT_VERSION)
    region = next(node for node in _walk(scene) if node.get("name") == "region_share_lines_group")
    points = [mark for mark in _walk(region) if mark.get("role") == "mark" and mark.get("marktype") == "symbol"]
    china = [item for mark in points for item in mark["items"] if "Region: China;" in item.get("description", "")]
    assert len(china) == 2 and all(item["opacity"] > 0 for item in china)


def test_series_shares_rebuild_from_downloads_and_totals(small: dict[str, pl.DataFrame]) -> None:
    views = frames.view_frames(**small)
    latest = views.series.filter((pl.col("p") == "all") & (pl.col("w") == "30d")).tail(1).row(0, named=True)
    china_key = views.keys.filter((pl.col("dimension") == "region") & (pl.col("actor") == "China"))["key"][0]
    expected = small["shares"].filter(
        (pl.col("snapshot_date") == views.latest)
        & (pl.col("population") == "all")
        & (pl.col("time_window") == "30d")
        & (pl.col("rule") == "uploader")
        & (pl.col("dimension") == "region")
        & (pl.col("actor") == "China")
    )["share"][0]
    assert math.isclose(latest[china_key] / latest["tr"], expected, rel_tol=1e-6)


def test_crossover_is_marked_with_its_date(small_dashboard: DashboardResult, small: dict) -> None:
    views = frames.view_frames(**small)
    region = views.crossovers.filter(
        (pl.col("dimension") == "region") & (pl.col("population") == "all") & (pl.col("time_window") == "30d")
    )
    assert region.height == 1
    label = region["label"][0]
    assert re.fullmatch(r"China ahead of United States from \d{4}-\d{2}-\d{2}", label)
    assert label in small_dashboard.html.read_text()


def view_items(scene: dict, view: str, marktype: str) -> list[dict]:
    """The items of every data mark of one type in one view of a scenegraph."""
    group = next(node for node in _walk(scene) if node.get("name") == f"{view}_group")
    return [
        item
        for node in _walk(group)
        if node.get("marktype") == marktype and node.get("role") == "mark"
        for item in node["items"]
    ]


def scene_crossed_in_both_views(small: dict) -> dict:
    """The drawn dashboard of `small`, its crossovers marked in the region view and, as CN over US, the country's."""
    region = small["crossovers"]
    country = region.with_columns(
        pl.lit("country").alias("dimension"), pl.lit("CN").alias("challenger"), pl.lit("US").alias("incumbent")
    )
    views = frames.view_frames(small["shares"], small["concentration"], pl.concat([region, country]))
    return vlc.vegalite_to_scenegraph(dashboard_spec(views), vl_version=VL_CONVERT_VERSION)


def test_no_line_runs_through_the_crossover_label(small: dict) -> None:
    scene = scene_crossed_in_both_views(small)
    for view, label in (("region_share_lines", "China ahead"), ("country_share_lines", "CN ahead")):
        (text,) = view_items(scene, view, "text")
        assert text["text"].startswith(label) and text["baseline"] == "top", text
        below = text["y"] + text["fontSize"] + 2  # the label's bottom, and a point's radius
        highest = min(point["y"] for point in view_items(scene, view, "symbol"))
        # China's line peaks near the top of its axis: the axis reaches above it, leaving the label a band of its own.
        assert highest > below, (view, highest, below)


def test_the_crossover_label_stays_inside_its_plot_clear_of_the_legend(small: dict) -> None:
    scene = scene_crossed_in_both_views(small)
    for view, sentence in (
        ("region_share_lines", "China ahead of United States"),
        ("country_share_lines", "CN ahead of US"),
    ):
        (text,) = view_items(scene, view, "text")
        # The crossing falls mid-series: the label begins at its rule and runs right, towards the legend.
        assert 0.3 * charts.WIDTH < text["x"] < 0.7 * charts.WIDTH, text
        wide = len(text["text"]) * 6.5  # an 11 px sans-serif letter is under 6.5 px wide
        start = text["x"] + text["dx"] - (wide if text["align"] == "right" else 0)
        assert start >= 0 and start + wide <= charts.WIDTH, (view, text["text"], start, start + wide)
        # The whole sentence is the tooltip's.
        assert f"Crossover: {sentence} from " in text["description"], text["description"]


def test_a_lead_held_from_the_first_date_is_not_marked_as_a_crossing_on_it(small: dict) -> None:
    crossed = pl.col("status") == "crossed"
    led = small["crossovers"].with_columns(
        pl.when(crossed).then(pl.col("first_date")).otherwise(pl.col("crossover_date")).alias("crossover_date")
    )
    views = frames.view_frames(small["shares"], small["concentration"], led)
    first = views.dates[0].isoformat()
    labels = set(views.crossovers["label"])
    assert labels == {f"China ahead of United States since the first date, {first}"}
    assert f"China ahead since the first date, {first} (the crossing is before it)." in headline(views)
    # No dashed rule: it would mark the first date as the crossing.
    marks = [d.get("mark") for d in _walk(charts.region_share_lines(views).to_dict())]
    assert not any(m == "rule" or (isinstance(m, dict) and m.get("type") == "rule") for m in marks), marks


def test_each_rules_bars_carry_the_downloads_the_rule_credits_and_the_margin_is_in_points(small: dict) -> None:
    views = frames.view_frames(**small)
    regions = small["shares"].filter(
        (pl.col("snapshot_date") == views.latest) & (pl.col("dimension") == "region") & (pl.col("population") == "all")
    )
    for row in views.rules.filter((pl.col("population") == "all") & (pl.col("time_window") == "30d")).iter_rows(
        named=True
    ):
        group = regions.filter((pl.col("rule") == row["rule"]) & (pl.col("time_window") == "30d"))
        assert row["credited"] == round(group["downloads"].sum())
        assert math.isclose(row["share"], row["downloads"] / row["credited"], rel_tol=1e-3)
    margins = small["crossovers"].filter(pl.col("snapshot_date") == views.latest)
    assert set(views.crossovers["margin_pp"].round(1)) <= set((margins["margin"] * 100).round(1))


def test_lab_change_is_in_percentage_points_since_the_previous_snapshot(small: dict) -> None:
    views = frames.view_frames(**small)
    qwen = views.labs.filter(
        (pl.col("lab") == "Qwen") & (pl.col("population") == "all") & (pl.col("time_window") == "30d")
    ).row(0, named=True)
    assert math.isclose(qwen["change_pp"], (qwen["share"] - qwen["previous_share"]) * 100, abs_tol=1e-3)
    assert views.labs.group_by("population", "time_window").len()["len"].max() <= frames.TOP_LABS


def test_page_is_self_contained_with_one_png_per_view(small_dashboard: DashboardResult) -> None:
    page = small_dashboard.html.read_text()
    assert small_dashboard.html.name == "index.html"
    assert not re.search(r"<script[^>]+src=", page)
    assert "cdn.jsdelivr.net" not in _outside_spec(page)
    assert small_dashboard.charts == charts.VIEWS
    assert set(small_dashboard.pngs) == set(charts.VIEWS)
    for png in small_dashboard.pngs.values():
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert small_dashboard.page_bytes == small_dashboard.html.stat().st_size


def test_provenance_footer_and_synthetic_label_are_shown(small_dashboard: DashboardResult, small: dict) -> None:
    visible = _outside_spec(small_dashboard.html.read_text())
    dates = sorted(small["shares"]["snapshot_date"].unique().to_list())
    assert "Synthetic data — not the real Hub" in visible
    footer = visible[visible.index("<footer") :]
    for text in (
        dates[0].isoformat(),
        dates[-1].isoformat(),
        f"{len(dates)} snapshots",
        f"{small['shares'].height:,}",
        "registry-test-1",
        "synthetic world (tests)",
        "2026-05-02T06:00:00+00:00",
    ):
        assert text in footer, text


@pytest.mark.parametrize(
    ("kind", "label"),
    [
        ("standin", "Stand-in Hub data — not the real Hub"),
        ("synthetic", "Synthetic data — not the real Hub"),
        ("import", "Imported data — not crawled from the Hub by this project"),
        (None, "Data source not recorded — treat these numbers as unverified"),
        ("hub", None),
    ],
)
def test_data_label_says_where_the_numbers_come_from(kind: str | None, label: str | None) -> None:
    assert data_label({"source_kind": kind}) == label


def test_hostile_names_are_shown_as_text(small: dict, tmp_path: Path) -> None:
    labs = {
        HOSTILE: ("CN", "China", "industry", 60e6, 1.0),
        'He said "hi" & left': LABS["Meta"],
        LONG_NAME: LABS["Qwen"],
    } | LABS
    metrics = synthetic_metrics(days=5, labs=labs)
    result = write_dashboard(**metrics, provenance=provenance(metrics, source=f"file:{HOSTILE}"), out_dir=tmp_path)
    page = result.html.read_text()
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in _outside_spec(page)
    spec = json.loads(re.search(r"const spec = (\{.*?\});\n", page, flags=re.S).group(1))
    labels = {d["label"] for d in _walk(spec) if "lab" in d and "label" in d}
    assert HOSTILE in labels
    assert max(len(label) for label in labels) <= frames.LABEL_CHARS + 6
    assert any(d.get("lab") == LONG_NAME for d in _walk(spec))


def test_a_year_of_daily_snapshots_stays_under_two_megabytes(tmp_path: Path) -> None:
    metrics = synthetic_metrics(days=365)
    result = write_dashboard(**metrics, provenance=provenance(metrics), out_dir=tmp_path)
    assert result.page_bytes < 2_000_000
    assert metrics["shares"]["snapshot_date"].n_unique() == 365


def test_an_empty_series_fails_loudly(small: dict, tmp_path: Path) -> None:
    empty = {name: frame.clear() for name, frame in small.items()}
    with pytest.raises(ValueError, match="no snapshot dates"):
        write_dashboard(**empty, provenance={}, out_dir=tmp_path)


def test_charts_are_altair_charts(small: dict) -> None:
    for chart in view_charts(frames.view_frames(**small)).values():
        assert isinstance(chart, alt.TopLevelMixin)


def test_metrics_without_crossovers_draw_a_dashboard_without_a_warning(tmp_path: Path) -> None:
    import warnings

    from flows.steps import attribute_date, dashboard_step, metrics_date
    from tests.test_metadata import DAY, world
    from warehouse.layout import Layout
    from warehouse.publish import publish_frame, read_meta, write_json_atomic
    from warehouse.tables import CROSSOVERS, MODELS, SHARES

    layout = Layout.at(tmp_path / "wh")
    publish_frame(layout, MODELS, DAY, world(), {"source_kind": "synthetic"})
    attribute_date(layout, DAY)
    metrics_date(layout, DAY)
    assert not layout.published_dates(CROSSOVERS)
    for table, made_by in ((MODELS, "1" * 40), (SHARES, "0" * 40)):  # as if crawled and measured by other code
        write_json_atomic(layout.meta_file(table, DAY), read_meta(layout, table, DAY) | {"code_version": made_by})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = dashboard_step(layout)
    assert result["status"] == "published"
    page = Path(result["html"]).read_text(encoding="utf-8")
    assert "Multipolar: whose open models" in page
    # The code that drew the page, and that which made the metrics drawn, not that which crawled the models.
    from warehouse.provenance import code_version

    assert f"<dt>Drawn by code</dt><dd>{code_version()}</dd>" in page
    assert f"<dt>Metrics made by code</dt><dd>{'0' * 40}</dd>" in page and "1" * 40 not in page


def test_unknown_is_not_ranked_as_a_lab_nor_counted_as_a_country() -> None:
    from dashboards.page import headline

    # Namespaces no registry row explains hold more downloads than any lab.
    metrics = synthetic_metrics(days=3, labs={**LABS, "Unknown": ("Unknown", "Unknown", "intermediary", 9.0e7, 1.0)})
    views = frames.view_frames(**metrics)
    assert views.labs.height and "Unknown" not in views.labs["lab"].to_list()
    latest = metrics["shares"].filter(
        (pl.col("snapshot_date") == views.latest)
        & (pl.col("rule") == views.rule)
        & (pl.col("dimension") == "lab")
        & (pl.col("population") == "all")
        & (pl.col("time_window") == "30d")
    )
    assert latest.sort("share", descending=True)["actor"][0] == "Unknown"
    top = latest.filter(pl.col("actor") != "Unknown").sort("share", descending=True).row(0, named=True)
    assert f"Top lab: {top['actor']} ({top['share']:.1%})" in re.sub(r"<[^>]+>", "", headline(views))
    countries = views.actors("country")
    assert "Unknown" in countries
    named = len(charts.countries_drawn(views.countries)["all|30d"]) - 1
    assert charts.countries_heading(views.countries)["all|30d"] == (
        f"Share of downloads: top {named} countries and Unknown on {views.latest}"
    )


def test_a_latest_date_without_30_day_counts_says_so_in_the_headline() -> None:
    # All-time counts alone on the latest date: the headline's setting (all models, last 30 days) has no share there.
    metrics = synthetic_metrics(days=3)
    latest = date(2025, 6, 3)
    for name in ("shares", "concentration", "crossovers"):
        lacking = (pl.col("snapshot_date") == latest) & (pl.col("time_window") == "30d")
        metrics[name] = metrics[name].filter(~lacking)
    views = frames.view_frames(**metrics)
    assert views.latest == latest
    assert headline(views) == (
        "2025-06-03 records no downloads of the last 30 days: the views over time show them up to 2025-06-02"
        " (all models, uploader rule)."
    )


def test_a_setting_one_date_alone_records_draws_its_developer_types_as_a_bar() -> None:
    # 30-day counts on the latest date alone (all-time counts imported, then a crawl): an area of one date is
    # drawn as nothing, so that setting's mix is a stacked bar, the other settings' still areas.
    metrics = synthetic_metrics(days=4)
    latest = date(2025, 6, 4)
    for name in ("shares", "concentration", "crossovers"):
        metrics[name] = metrics[name].filter((pl.col("snapshot_date") == latest) | (pl.col("time_window") != "30d"))
    views = frames.view_frames(**metrics)
    spec = charts.developer_type_areas(views).to_dict()
    marks = {
        (node["mark"]["type"] if isinstance(node["mark"], dict) else node["mark"]): json.dumps(
            [step for step in node.get("transform", []) if "filter" in step]
        )
        for node in _walk(spec)
        if "mark" in node
    }
    assert set(marks) == {"area", "bar"}, marks
    assert "all|30d" in marks["bar"] and "llm|30d" in marks["bar"] and "all_time" not in marks["bar"]


def test_a_setting_the_date_before_records_no_downloads_of_shows_no_change_for_its_labs() -> None:
    # All-time counts on the latest date alone (a crawl after an import of 30-day counts): the labs had no share
    # then, so no change, rather than a gain of their whole share.
    metrics = synthetic_metrics(days=3)
    latest = date(2025, 6, 3)
    for name in ("shares", "concentration", "crossovers"):
        metrics[name] = metrics[name].filter(
            (pl.col("snapshot_date") == latest) | (pl.col("time_window") != "all_time")
        )
    views = frames.view_frames(**metrics)
    all_time = views.labs.filter(pl.col("time_window") == "all_time")
    assert all_time.height and all_time["previous_share"].is_null().all() and all_time["change_pp"].is_null().all()
    assert views.labs.filter(pl.col("time_window") == "30d")["change_pp"].is_not_null().all()
    spec = json.dumps(charts.lab_change_bars(views).to_dict())
    assert "none recorded" in spec and "all|all_time" in spec and "llm|all_time" in spec


def test_a_labs_tooltip_names_the_dates_of_its_share_and_of_the_share_before(small: dict) -> None:
    views = frames.view_frames(**small)
    for chart in (charts.lab_share_bars(views), charts.lab_change_bars(views)):
        tooltips = [node["tooltip"] for node in _walk(chart.to_dict()) if isinstance(node.get("tooltip"), list)]
        titles = {tip["title"]: tip["field"] for tips in tooltips for tip in tips}
        assert titles[f"Share on {views.latest}"] == "share"
        assert titles[f"Share on {views.previous}"] == "previous_share"


def test_the_country_view_draws_the_top_countries_of_the_setting_shown() -> None:
    # Among LLMs alone, Israel's labs lead Canada's: the two settings' top ten differ.
    metrics = synthetic_metrics(days=3)
    israel_llm = (pl.col("population") == "llm") & (pl.col("dimension") == "country") & (pl.col("actor") == "IL")
    metrics["shares"] = metrics["shares"].with_columns(
        pl.when(israel_llm).then(pl.col("share") * 50).otherwise(pl.col("share")).alias("share")
    )
    views = frames.view_frames(**metrics)
    latest = metrics["shares"].filter(
        (pl.col("snapshot_date") == views.latest) & (pl.col("rule") == views.rule) & (pl.col("dimension") == "country")
    )

    def top(population: str, window: str) -> list[str]:
        chosen = latest.filter((pl.col("population") == population) & (pl.col("time_window") == window))
        return chosen.sort(["share", "actor"], descending=[True, False])["actor"].head(frames.TOP_COUNTRIES).to_list()

    drawn = charts.countries_drawn(views.countries)
    assert drawn == {f"{p}|{w}": top(p, w) for p in frames.POPULATIONS for w in frames.WINDOWS}
    assert "IL" in drawn["llm|30d"] and "IL" not in drawn["all|30d"]
    # Every country some setting draws has its column and colour; the view's filter and legend follow the switches.
    assert set(views.actors("country")) == {actor for actors in drawn.values() for actor in actors}
    spec = json.dumps(charts.country_share_lines(views).to_dict())
    assert json.dumps(json.dumps(drawn, sort_keys=True))[1:-1] in spec


def test_a_window_no_snapshot_records_is_not_offered_and_the_page_says_so(small: dict) -> None:
    from dashboards.page import dashboard_html

    def window_options(spec: dict) -> list[str]:
        bound = [p for p in _walk(spec) if p.get("name") == charts.WINDOW and "bind" in p]
        assert len(bound) == 1
        return bound[0]["bind"]["options"]

    both = frames.view_frames(**small)
    assert both.windows == ("30d", "all_time") and window_options(dashboard_spec(both)) == ["30d", "all_time"]
    assert "No snapshot here records" not in dashboard_html(both, provenance(small))
    # Imported 30-day counts alone: the metrics have no all-time rows.
    recent = {
        name: table.filter(pl.col("time_window") != "all_time") if "time_window" in table.columns else table
        for name, table in small.items()
    }
    views = frames.view_frames(**recent)
    assert views.windows == ("30d",) and window_options(dashboard_spec(views)) == ["30d"]
    page = dashboard_html(views, provenance(recent))
    assert "No snapshot here records all-time downloads, so the window switch does not offer them." in page
    assert '"window": ["30d"]' in page  # the browser check tries only the windows offered


def test_no_two_countries_of_one_setting_share_a_colour_however_many_all_settings_draw() -> None:
    codes = ["CN", "US", "FR", "DE", "GB", "CA", "KR", "JP", "AE", "IL", "IN", "SG", "BR", "RU", "ES", "IT", "NL", "SE"]
    region = {"CN": "China", "US": "United States"}
    labs = {
        f"lab-{code}": (code, region.get(code, "Rest of world"), "industry", (len(codes) - i) * 1e6, 1.0)
        for i, code in enumerate(codes)
    }
    metrics = synthetic_metrics(days=2, labs=labs)
    # Among LLMs the ranking of countries is reversed: the two populations draw eighteen countries between them.
    reversed_llms = (pl.col("population") == "llm") & (pl.col("dimension") == "country")
    metrics["shares"] = metrics["shares"].with_columns(
        pl.when(reversed_llms).then(1 / pl.col("share")).otherwise(pl.col("share")).alias("share")
    )
    views = frames.view_frames(**metrics)
    drawn = charts.countries_drawn(views.countries)
    assert len({actor for actors in drawn.values() for actor in actors}) == len(codes)
    scale = charts.country_scale(views)
    colours = dict(zip(scale.domain, scale.range, strict=True))
    for setting, actors in drawn.items():
        assert len(actors) == frames.TOP_COUNTRIES
        assert len({colours[actor] for actor in actors}) == len(actors), (setting, [colours[a] for a in actors])


def test_countries_and_developer_types_keep_their_colours_under_every_switch(small: dict) -> None:
    views = frames.view_frames(**small)

    def colour_scale(chart: alt.TopLevelMixin) -> dict:
        spec = chart.to_dict()
        return next(node["color"]["scale"] for node in _walk(spec) if "scale" in node.get("color", {}))

    # Every country drawn over time is in the domain, whichever the switches show, so none takes another's colour.
    countries = colour_scale(charts.country_share_lines(views))
    assert countries["domain"] == views.actors("country")
    colours = dict(zip(countries["domain"], countries["range"], strict=True))
    # China and the United States look as their regions do in the view beside it.
    regions = colour_scale(charts.region_share_lines(views))
    region_colours = dict(zip(regions["domain"], regions["range"], strict=True))
    assert (colours["CN"], colours["US"]) == (region_colours["China"], region_colours["United States"])
    assert len(set(colours.values())) == len(colours)
    assert colour_scale(charts.developer_type_areas(views))["domain"] == views.actors("developer_type")
    # Unknown is grey wherever it is drawn, the types each a colour of their own.
    unlisted = LABS | {"someone": ("Unknown", "Unknown", "Unknown", 3.0e6, 1.0)}
    types = colour_scale(charts.developer_type_areas(frames.view_frames(**synthetic_metrics(days=2, labs=unlisted))))
    type_colours = dict(zip(types["domain"], types["range"], strict=True))
    assert "Unknown" in type_colours and len(type_colours) >= 6
    assert type_colours["Unknown"] == colours["Unknown"] == region_colours["Unknown"]
    assert len(set(type_colours.values())) == len(type_colours)
