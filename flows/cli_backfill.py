"""Backfill and reproduction commands: `import` and `reproduce`."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated

import typer

from flows.cli import (
    WaitOpt,
    WarehouseOpt,
    app,
    err,
    fail,
    make_folder,
    out,
    published_warehouse,
    refuse_a_file_warehouse,
    warehouse_writer,
)

REPORT_FORMATS = ("md", "html", "json")


@app.command("import")
def import_(
    paths: Annotated[
        list[Path],
        typer.Argument(help="Snapshot files (CSV, Parquet, JSONL, or the llmfit panel CSV) or folders of them."),
    ],
    warehouse: WarehouseOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Replace dates that are already published.")] = False,
    wait: WaitOpt = 0.0,
    no_dashboard: Annotated[bool, typer.Option("--no-dashboard", help="Skip writing the dashboard.")] = False,
) -> None:
    """Backfill dated snapshot files as `models` snapshots, then attribute and measure them."""
    from analytics.registry import RegistryError
    from flows.backfill import ImportRejected, import_snapshots
    from warehouse.layout import Layout
    from warehouse.lock import WarehouseLocked

    refuse_a_file_warehouse(warehouse)
    if missing := [str(path) for path in paths if not path.exists()]:
        raise fail(f"no such file or folder: {', '.join(missing)}; nothing was imported", 2)
    layout = Layout.at(warehouse)

    def say(message: str) -> None:
        err.print(message, highlight=False, markup=False)

    try:
        report = import_snapshots(layout, paths, force=force, dashboard=not no_dashboard, wait_seconds=wait, log=say)
    except ImportRejected as rejected:
        for problem in rejected.problems:
            err.print(str(problem), highlight=False, markup=False, soft_wrap=True)
        given = ", ".join(str(p) for p in paths)
        raise fail(f"{len(rejected.problems)} problem(s) in {given}; nothing was published") from None
    except WarehouseLocked as error:
        raise fail(str(error), 3) from None
    except (RegistryError, OSError) as error:
        raise fail(str(error)) from None
    for source in report.files:
        out.print(
            f"read {source['source_file']}: {source['source_format']}, {_rows_read(source)}, {source['dates']} dates",
            highlight=False,
            soft_wrap=True,
        )
    if report.published:
        span = f"{report.published[0]} … {report.published[-1]}"
        out.print(
            f"imported {len(report.published)} dates ({span}), {report.rows:,} rows → {layout.root}",
            highlight=False,
            soft_wrap=True,
        )
    if report.skipped:
        span = f"{report.skipped[0]} … {report.skipped[-1]}" if len(report.skipped) > 1 else str(report.skipped[0])
        count = f"{len(report.skipped)} already published date{'s' if len(report.skipped) != 1 else ''}"
        out.print(f"skipped {count} ({span}; use --force to replace them)", highlight=False)
    timings = ", ".join(f"{step} {seconds:.2f} s" for step, seconds in report.seconds.items())
    out.print(f"time: {timings}", highlight=False, soft_wrap=True)


@app.command()
def reproduce(
    out_dir: Annotated[Path | None, typer.Option("--out", help="Folder (default: <warehouse>/reports).")] = None,
    format: Annotated[str, typer.Option("--format", help="md | html | json")] = "md",
    warehouse: WarehouseOpt = None,
    window: Annotated[str, typer.Option(help="Window of the per-date table: 30d | all_time | between.")] = "30d",
) -> None:
    """Set Multipolar's numbers beside each published claim, under the matching rule, window and population."""
    from analytics import reproduction
    from analytics.metrics import WINDOWS
    from flows.steps import reproduction_of, write_report
    from warehouse.publish import records_kept
    from warehouse.tables import SHARES

    if format not in REPORT_FORMATS:
        raise fail(f"--format {format!r}: use md, html or json", 2)
    if window not in WINDOWS:
        raise fail(f"--window {window!r}: use {', '.join(WINDOWS)}", 2)
    layout = published_warehouse(warehouse)
    if not layout.published_dates(SHARES):
        raise fail(f"no metrics are published in {layout.root}; run `multipolar import` or `multipolar refresh`")
    target = (out_dir or layout.root / "reports") / f"reproduction.{format}"
    render = reproduction.RENDERERS[format]
    # Into the warehouse, as one of its writers; into a folder of the caller's, without the lock.
    with warehouse_writer(layout, "reproduce") if out_dir is None else contextlib.nullcontext(), records_kept():
        report = reproduction_of(layout, window=window)
        if report.timeline.is_empty():
            raise fail(
                f"no date has LLM shares in the {window} window (an import of 30-day counts alone records neither "
                "all_time nor between; between needs the date before, crawled with the same scope): give --window 30d",
                2,
            )
        if out_dir is None:
            write_report(layout, target.name, render(report), window=window)
        else:
            make_folder(target.parent)
            target.write_text(render(report), encoding="utf-8")
    _artifact(reproduction.to_markdown(report))
    if format == "md":
        sys.stdout.write(reproduction.to_markdown(report) + "\n")
        err.print(f"reproduction report: {target}", highlight=False, soft_wrap=True)
    else:
        out.print(f"reproduction report: {target}", highlight=False, soft_wrap=True)


def _rows_read(source: dict) -> str:
    """The rows taken from a file; for an llmfit panel, of how many (one per model and date is kept)."""
    panel = (source.get("llmfit") or {}).get("panel_rows")
    kept = f"{source['source_rows']:,} rows"
    return f"{kept} (the last of each model's day, of {panel:,})" if panel is not None else kept


def _artifact(markdown: str) -> None:
    """Attach the report to the Prefect flow run, when there is one."""
    if "prefect" not in sys.modules:  # never imported: certainly not inside a flow run
        return
    from prefect.artifacts import create_markdown_artifact
    from prefect.context import FlowRunContext

    if FlowRunContext.get() is not None:
        create_markdown_artifact(key="reproduction", markdown=markdown)
