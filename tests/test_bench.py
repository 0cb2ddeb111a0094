"""`multipolar bench` at toy sizes: every section runs and the report says what it measured."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from dashboards.browser import chromium_path
from flows.cli import app

pytestmark = pytest.mark.slow


def test_a_toy_benchmark_writes_every_section_of_its_report(tmp_path) -> None:
    out = tmp_path / "BENCHMARKS.md"
    out.write_text(
        "# Benchmarks\n\nNotes kept between runs.\n\n<!-- bench:full:begin -->\nold figures\n<!-- bench:full:end -->\n"
    )
    args = ["bench", "--models", "3000", "--days", "2", "--latency", "0.02", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = out.read_text()
    assert "Notes kept between runs." in report
    for heading in ("### Crawl", "### Attribution and metrics", "### A history of daily snapshots"):
        assert heading in report
    assert "| requests / minimum ceil(" in report and "= 1.00× | 1× | met |" in report
    assert "All three give the same series" in report and "| from the raw tables through the `credited` view" in report
    assert "| these steps together |" in report and "Before any lineage walk, evidence, sum or share" in report
    assert re.search(r"\| `attribute_date` of the day before, .* \| [0-9.]+ s \| [0-9.]+ GB \|", report)
    assert re.search(r"\| `attribute_date` of the crawled day: .* \(it said: updated from 2026-04-29\) \|", report)
    assert re.search(r"the same rows as `attribute`: yes\) \| [0-9.]+ \|", report)
    assert re.search(r"\| a day after another: updated attribution \+ metrics / its bare read \| [0-9.]+ \|", report)
    assert re.search(r"\| `metrics_date`: .* \| [0-9.]+ s \| [0-9.]+ GB \|", report)
    assert re.search(r"\| registry \| [0-9.]+ kB \|", report)
    assert re.search(r"\| DuckDB view, second run \| [0-9.]+ s \| 10 \|", report)  # 5 models on 2 days
    assert re.search(r"\| polars `scan_parquet\(…\).filter\(…\)` \| [0-9.]+ s \| the same rows \|", report)
    assert re.search(r"\| with `pipeline_tag` and `tags`: DuckDB view, second run \| [0-9.]+ s \| 10 \|", report)
    assert re.search(r"of every day, concatenated and filtered \| [0-9.]+ s \| the same rows \|", report)
    assert re.search(r"The refresh's last steps over the 2 days: crossovers [0-9.]+ s; the dashboard", report)
    if chromium_path() is None:
        assert "(no Chromium here: the page was not opened)" in report
    else:
        drawn = r"headless Chromium drew marks in (\d+) of \1 views in [0-9]+ ms, with 0 console errors"
        assert re.search(drawn, report)
    assert "old figures" not in report and report.count("## Run: full") == 1
    # The report's command line reruns the same benchmark: every option that differs from its default.
    assert "`uv run multipolar bench --models 3000 --days 2 --latency 0.02`" in report


def test_the_quick_plan_is_the_documented_size() -> None:
    from pathlib import Path

    from flows.bench import BenchPlan

    plan = BenchPlan.of(models=None, days=None, quick=True, latency=None, out=Path("B.md"))
    assert (plan.models, plan.days, plan.latency) == (300_000, 5, 0.2)


def test_the_bench_help_states_the_plans_defaults() -> None:
    from flows.bench import FULL_DAYS, FULL_MODELS, LATENCY, QUICK_DAYS, QUICK_MODELS

    result = CliRunner().invoke(app, ["bench", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for stated in (
        f"(default {FULL_MODELS:,})",
        f"(default {FULL_DAYS})",
        f"(default {LATENCY})",
        f"{QUICK_MODELS:,} models and {QUICK_DAYS} days",
    ):
        assert stated in result.output


def test_a_benchmark_that_would_not_fit_on_its_disk_is_refused_before_it_writes_anything(tmp_path, monkeypatch) -> None:
    import shutil
    from collections import namedtuple

    from flows.bench import BenchPlan, space_needed

    work, out = tmp_path / "work", tmp_path / "BENCHMARKS.md"
    plan = BenchPlan.of(models=3000, days=2, quick=False, latency=0.02, out=out, work=work)
    usage = namedtuple("usage", "total used free")
    free = space_needed(plan) - 1
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: usage(10 * free, 9 * free, free))
    args = ["bench", "--models", "3000", "--days", "2", "--latency", "0.02", "--out", str(out), "--work", str(work)]
    result = CliRunner().invoke(app, args, terminal_width=400)
    assert result.exit_code == 2, result.output
    assert "3,000 models over 2 days" in result.output and "GB free" in result.output and "--work" in result.output
    assert list(work.iterdir()) == [] and not out.exists()


def test_the_space_a_benchmark_needs_grows_with_its_models_and_days() -> None:
    from pathlib import Path

    from flows.bench import BenchPlan, space_needed

    def needed(models: int, days: int) -> int:
        return space_needed(BenchPlan.of(models=models, days=days, quick=False, latency=None, out=Path("B.md")))

    assert needed(300_000, 5) < needed(300_000, 90) < needed(3_000_000, 90)
