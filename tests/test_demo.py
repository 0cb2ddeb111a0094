"""`multipolar demo`: a synthetic Hub refreshed day by day through the real flow, offline, labelled synthetic."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from flows.cli import app
from warehouse.layout import Layout
from warehouse.publish import read_meta
from warehouse.tables import CROSSOVERS, MODELS, SHARES

runner = CliRunner()


def test_a_tiny_demo_publishes_a_synthetic_dashboard_and_its_crossover(tmp_path) -> None:
    result = runner.invoke(app, ["demo", "--days", "3", "--models", "2000", "--warehouse", str(tmp_path)])
    assert result.exit_code == 0, result.output
    layout = Layout.at(tmp_path)
    days = layout.published_dates(MODELS)
    assert len(days) == 3
    assert {read_meta(layout, MODELS, d)["source_kind"] for d in days} == {"synthetic"}
    assert layout.published_dates(SHARES) == days and layout.published_dates(CROSSOVERS) == days
    page = (layout.dashboard_dir / "index.html").read_text()
    assert "Synthetic data — not the real Hub" in page
    assert f"dashboard: {layout.dashboard_dir / 'index.html'}" in result.output
    assert "China passed the US on 2026-04-02" in result.output  # the series' crossover day
    assert [line.split(" rule:")[0].strip() for line in result.output.splitlines() if " rule: China " in line] == [
        "uploader",
        "official",
        "lineage",
    ]
    assert "the dashboard opens on all models: set its Population switch to LLMs" in result.output
    assert not (tmp_path / "_staging" / "crawl").exists() or not any((tmp_path / "_staging" / "crawl").iterdir())
    # More days make other worlds (the crossover sits mid-series): they are refused, not joined to these.
    files = {d: layout.partition_file(MODELS, d).read_bytes() for d in days}
    longer = runner.invoke(app, ["demo", "--days", "4", "--models", "2000", "--warehouse", str(tmp_path)])
    assert longer.exit_code == 2, longer.output
    assert "holds a demo made with --days 3, --models 2000, --seed 0" in " ".join(longer.output.split())
    assert layout.published_dates(MODELS) == days
    assert {d: layout.partition_file(MODELS, d).read_bytes() for d in days} == files
    # The same settings again keep what is published, and say so.
    again = runner.invoke(app, ["demo", "--days", "3", "--models", "2000", "--warehouse", str(tmp_path)])
    assert again.exit_code == 0, again.output
    assert again.output.count("already published") == 3 and "refreshed" not in again.output


def test_the_demo_never_writes_into_a_warehouse_of_real_snapshots(tmp_path) -> None:
    layout = Layout.at(tmp_path)
    layout.partition_file(MODELS, __import__("datetime").date(2026, 5, 1)).parent.mkdir(parents=True)
    layout.partition_file(MODELS, __import__("datetime").date(2026, 5, 1)).write_bytes(b"")
    layout.meta_dir(MODELS).mkdir(parents=True)
    record = {
        "source_kind": "hub",
        "table": "models",
        "snapshot_date": "2026-05-01",
        "rows": 0,
        "file": "models/snapshot_date=2026-05-01/part-0.parquet",
        "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",  # of no bytes
        "published_at": "2026-05-01T06:00:00+00:00",
    }
    layout.meta_file(MODELS, __import__("datetime").date(2026, 5, 1)).write_text(json.dumps(record))
    result = runner.invoke(app, ["demo", "--days", "1", "--models", "100", "--warehouse", str(tmp_path)])
    assert result.exit_code == 2 and "not synthetic" in result.output


@pytest.mark.parametrize("args", [["--days", "0"], ["--models", "0"]])
def test_the_demo_refuses_an_empty_series(args, tmp_path) -> None:
    assert runner.invoke(app, ["demo", *args, "--warehouse", str(tmp_path)]).exit_code == 2


def test_the_summary_tells_a_lead_held_from_the_first_date_apart_from_a_crossing_seen() -> None:
    import datetime as dt
    from pathlib import Path

    from flows.demo import DemoDay, DemoResult, summary_lines

    day = dt.date(2026, 4, 2)
    result = DemoResult(
        Path("w"),
        None,
        [DemoDay(day, 10, 1, 0.1)],
        crossovers={"uploader": (day, True), "official": (dt.date(2026, 4, 1), False), "lineage": None},
    )
    lines = summary_lines(result)
    assert "China passed the US on 2026-04-02" in lines[1]
    assert "China ahead since the first date, 2026-04-01 (the crossing is before it)" in lines[2]
    assert "passed" not in lines[2]
    assert "no crossover yet" in lines[3]
