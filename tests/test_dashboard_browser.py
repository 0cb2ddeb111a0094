"""The dashboard opened in headless Chromium from file://, with networking cut."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest
from test_dashboard import HOSTILE, LABS, provenance, synthetic_metrics
from typer.testing import CliRunner

from dashboards import browser, charts
from dashboards.browser import BrowserReport, check_in_browser, chromium_path
from dashboards.page import write_dashboard
from flows import steps
from flows.cli import app
from tests.test_warehouse import models_frame
from warehouse.layout import Layout
from warehouse.publish import publish_frame
from warehouse.tables import MODELS

DAY = dt.date(2026, 5, 12)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        chromium_path() is None, reason="needs Chromium at /usr/bin/chromium (apt-get install -y chromium)"
    ),
]


def rendered(days: int, out: Path, labs: dict = LABS) -> BrowserReport:
    metrics = synthetic_metrics(days=days, labs=labs)
    result = write_dashboard(**metrics, provenance=provenance(metrics), out_dir=out)
    return check_in_browser(result.html, out / "screenshot.png", timeout=90)


def test_every_view_renders_offline_without_console_errors(tmp_path: Path) -> None:
    report = rendered(days=21, out=tmp_path)
    assert report.console_errors == ()
    assert report.page_errors == ()
    assert report.console_warnings == ()
    assert report.external_requests == ()
    assert report.views == len(charts.VIEWS)
    assert set(report.rendered) == set(charts.VIEWS)
    assert all(report.marks[name] > 0 for name in charts.VIEWS)
    assert report.ok
    # The whole page fits a 1280 px laptop window: no sideways scroll, no legend cut off at the edge.
    assert report.width == 1280 and 0 < report.page_width <= report.width, report.page_width


def test_every_switch_setting_draws_every_view(tmp_path: Path) -> None:
    report = rendered(days=10, out=tmp_path)
    assert set(report.empty_by_switch) == {"all / 30d", "all / all_time", "llm / 30d", "llm / all_time"}
    assert not any(report.empty_by_switch.values()), report.empty_by_switch
    # Switching the population changes the labs' names: no legend beside them is pushed past the edge.
    assert set(report.clipped_by_switch) == set(report.empty_by_switch)
    assert not any(report.clipped_by_switch.values()), report.clipped_by_switch


def test_a_switch_that_makes_a_row_taller_cuts_nothing_off_below(tmp_path: Path) -> None:
    metrics = synthetic_metrics(days=5)
    # Under LLMs alone, China's bar under the official rule reaches the top of its axis, and its label above it
    # makes the row taller, moving every row below it down.
    tall = (
        (pl.col("population") == "llm")
        & (pl.col("rule") == "official")
        & (pl.col("dimension") == "region")
        & (pl.col("actor") == "China")
    )
    metrics["shares"] = metrics["shares"].with_columns(
        pl.when(tall).then(0.699).otherwise(pl.col("share")).alias("share")
    )
    result = write_dashboard(**metrics, provenance=provenance(metrics), out_dir=tmp_path)
    report = check_in_browser(result.html, tmp_path / "screenshot.png", timeout=90)
    assert not any(report.clipped_by_switch.values()), report.clipped_by_switch


def test_a_window_narrower_than_the_drawing_shrinks_it_rather_than_scroll_sideways(tmp_path: Path) -> None:
    metrics = synthetic_metrics(days=5)
    result = write_dashboard(**metrics, provenance=provenance(metrics), out_dir=tmp_path)
    for width in (1024, 1366):
        report = check_in_browser(result.html, tmp_path / f"screenshot-{width}.png", timeout=90, width=width)
        assert 0 < report.page_width <= width, (width, report.page_width)
        assert report.ok, report


def test_screenshot_is_written(tmp_path: Path) -> None:
    report = rendered(days=7, out=tmp_path)
    assert report.screenshot is not None
    assert report.screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report.screenshot.stat().st_size > 20_000
    assert report.render_ms is not None and report.render_ms > 0


def test_hostile_names_do_not_run_as_script(tmp_path: Path) -> None:
    labs = {HOSTILE: ("CN", "China", "industry", 60e6, 1.0), "x" * 10_000: LABS["Meta"]} | LABS
    report = rendered(days=5, out=tmp_path, labs=labs)
    assert report.ok, report
    assert not any("alert" in message for message in report.console_errors)


def test_a_year_of_daily_snapshots_renders(tmp_path: Path) -> None:
    report = rendered(days=365, out=tmp_path)
    assert report.ok, report
    assert report.marks["region_share_lines"] >= 365


def test_a_switch_that_empties_a_layer_logs_no_warning(tmp_path: Path) -> None:
    # China passes the United States among LLMs alone: under all models the crossover's rule and label draw nothing,
    # and an x scale computed from their rows would log "Infinite extent for field date" on every switch to them.
    metrics = synthetic_metrics(days=10)
    metrics["crossovers"] = metrics["crossovers"].filter(pl.col("population") == "llm")
    result = write_dashboard(**metrics, provenance=provenance(metrics), out_dir=tmp_path)
    report = check_in_browser(result.html, tmp_path / "screenshot.png", timeout=90)
    assert report.console_warnings == (), report.console_warnings
    assert report.ok


def test_a_latest_date_without_a_window_says_so_in_its_views_and_logs_no_warning(tmp_path: Path) -> None:
    # An import of 30-day counts after crawls that had all-time ones: the latest date has no all-time shares, and the
    # views of that date would be blank under the All time switch, their axes warning of an infinite extent.
    metrics = synthetic_metrics(days=5)
    latest = metrics["shares"]["snapshot_date"].max()
    for name in ("shares", "concentration", "crossovers"):
        lacking = (pl.col("snapshot_date") == latest) & (pl.col("time_window") == "all_time")
        metrics[name] = metrics[name].filter(~lacking)
    result = write_dashboard(**metrics, provenance=provenance(metrics), out_dir=tmp_path)
    report = check_in_browser(result.html, tmp_path / "screenshot.png", timeout=90)
    assert report.console_warnings == (), report.console_warnings
    assert not any(report.empty_by_switch.values()), report.empty_by_switch
    assert report.ok
    before = latest - dt.timedelta(days=1)
    note = f"{latest} records no all-time downloads: the views over time show them up to {before}"
    assert note in result.html.read_text()


def test_a_single_snapshot_logs_no_warning(tmp_path: Path) -> None:
    # One date has no change since a previous one: that view draws nothing, and says so, without a warning.
    report = rendered(days=1, out=tmp_path)
    assert report.console_warnings == (), report.console_warnings
    assert report.empty == ("lab_change_bars",)
    assert report.console_errors == () and report.page_errors == ()


def test_a_warehouse_without_llms_offers_all_models_alone_and_logs_no_warning(tmp_path: Path) -> None:
    # An import of ids and counts alone, or a scope of encoders' namespaces, has no LLM: no share to draw under
    # that population, whose views' axes would log "Infinite extent for field share" on every switch to it.
    metrics = synthetic_metrics(days=3)
    for name in ("shares", "crossovers"):
        metrics[name] = metrics[name].filter(pl.col("population") != "llm")
    result = write_dashboard(**metrics, provenance=provenance(metrics), out_dir=tmp_path)
    report = check_in_browser(result.html, tmp_path / "screenshot.png", timeout=90)
    assert report.console_warnings == (), report.console_warnings
    assert report.ok
    assert list(report.empty_by_switch) == ["all / 30d", "all / all_time"]


WARNING = 'WARN Infinite extent for field "date": [Infinity, -Infinity]'


def warning_page(path: Path, log: str = f"console.warn({json.dumps(WARNING)})", **told: object) -> Path:
    """A page that draws its one view and logs a Vega warning (or runs `log` and tells the status `told`)."""
    status = {
        "views": 1,
        "rendered": ["view"],
        "empty": [],
        "marks": {"view": 1},
        "switches": {"all / 30d": []},
        "clipped": {"all / 30d": []},
        "errors": [],
        "ms": 5,
    } | told
    path.write_text(
        "<!doctype html><html><body><pre id='render-status' hidden></pre><script>\n"
        f"{log};\n"
        "const element = document.getElementById('render-status');\n"
        f"element.textContent = {json.dumps(json.dumps(status))};\n"
        "element.dataset.done = '1';\n"
        "</script></body></html>\n"
    )
    return path


def test_a_console_warning_fails_the_check(tmp_path: Path) -> None:
    report = check_in_browser(warning_page(tmp_path / "warns.html"), tmp_path / "screenshot.png")
    assert report.console_warnings == (WARNING,)
    assert report.console_errors == () and report.rendered == ("view",)
    assert not report.ok


def test_the_dashboard_check_tells_each_console_warning_and_fails_on_it(tmp_path: Path, monkeypatch) -> None:
    layout = Layout.at(tmp_path / "wh")
    publish_frame(
        layout, MODELS, DAY, models_frame([f"Qwen/m{i}" for i in range(20)], [100 * i for i in range(20)]), {}
    )
    steps.attribute_date(layout, DAY)
    steps.metrics_date(layout, DAY)
    page = warning_page(tmp_path / "warns.html")
    monkeypatch.setattr(browser, "check_in_browser", lambda html, screenshot: check_in_browser(page, screenshot))
    result = CliRunner().invoke(
        app, ["dashboard", "--warehouse", str(layout.root), "--check"], env={"COLUMNS": "20000"}
    )
    assert result.exit_code == 1, result.output
    assert "1 console warnings" in result.output
    assert f"console warning: {WARNING}" in result.output
    assert "did not render cleanly" in result.output


def test_the_dashboard_check_tells_a_page_that_failed_to_draw(tmp_path: Path, monkeypatch) -> None:
    layout = Layout.at(tmp_path / "wh")
    frame = models_frame([f"Qwen/m{i}" for i in range(20)], [100 * i for i in range(20)])
    publish_frame(layout, MODELS, DAY, frame, {})
    steps.attribute_date(layout, DAY)
    steps.metrics_date(layout, DAY)
    # The page's drawing failed: nothing rendered, so no render time, and the error its status tells.
    failed = {"rendered": [], "empty": ["view"], "marks": {"view": 0}, "errors": ["Error: broken spec"], "ms": None}
    page = warning_page(tmp_path / "fails.html", log="console.error('Error: broken spec')", **failed)
    monkeypatch.setattr(browser, "check_in_browser", lambda html, screenshot: check_in_browser(page, screenshot))
    args = ["dashboard", "--warehouse", str(tmp_path / "wh"), "--check"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "20000"})
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "browser: 0/1 views drew marks, 1 console errors" in result.output
    assert "page error: Error: broken spec" in result.output
    assert "did not render cleanly" in result.output
