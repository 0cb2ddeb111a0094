"""Warehouse upkeep: `check` (are the published files what their records say) and `remove` (a date)."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.cli import WarehouseOpt, app, fail, out, parse_day, warehouse_writer


@app.command()
def check(
    warehouse: WarehouseOpt = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="Sizes, Parquet markers and row counts only, not every byte.")
    ] = False,
) -> None:
    """Check every published file against its record (sha256, rows); name what is damaged and how to mend it."""
    import time

    from warehouse.integrity import check_warehouse
    from warehouse.layout import Layout

    layout = Layout.at(warehouse)
    if not layout.remote and not (layout.root / "_meta").is_dir():
        raise fail(
            f"no warehouse at {layout.root} (nothing published there); give --warehouse or MULTIPOLAR_WAREHOUSE", 2
        )
    began = time.monotonic()
    report = check_warehouse(layout, full=not quick)
    how = "sizes, markers and row counts" if quick else "every byte against its sha256"
    out.print(
        f"checked {report.partitions:,} published files ({report.bytes / 1e6:,.1f} MB, {how}) in "
        f"{time.monotonic() - began:.1f} s: "
        + (f"{len(report.problems)} damaged" if report.problems else "all as published"),
        highlight=False,
        soft_wrap=True,
    )
    for problem in report.problems:
        out.print(f"  {problem}", highlight=False, soft_wrap=True)
    if report.problems:
        raise typer.Exit(1)


@app.command()
def remove(
    date: Annotated[str, typer.Option("--date", help="The snapshot date to remove, YYYY-MM-DD.")],
    warehouse: WarehouseOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="Remove without asking.")] = False,
) -> None:
    """Remove one snapshot date from every table, then bring the later dates up to date."""
    from flows.steps import dashboard_step, remove_date, reproduction_step
    from warehouse.layout import Layout
    from warehouse.tables import TABLES

    day = parse_day(date)
    layout = Layout.at(warehouse)
    if not any(layout.meta_file(t, day).exists() or layout.partition_dir(t, day).exists() for t in TABLES.values()):
        raise fail(f"nothing is published for {day} in {layout.root}", 2)
    if not yes:
        # What the Hub served that day cannot be fetched again: keep a copy of the warehouse if in doubt.
        typer.confirm(f"remove {day} from every table of {layout.root}?", abort=True, err=True)
    with warehouse_writer(layout, f"remove {day}"):
        done = remove_date(layout, day)
        report = reproduction_step(layout)
        page = dashboard_step(layout)
    out.print(f"removed {day}: {', '.join(done['removed'])}", highlight=False, soft_wrap=True)
    if done["metadata_versions_dropped"]:
        versions = ", ".join(str(v) for v in done["metadata_versions_dropped"])
        out.print(f"  model_metadata versions no date points at any more: {versions}", highlight=False)
    for step, days in done["updated"].items():
        out.print(f"  {step} of later dates: {', '.join(days)}", highlight=False, soft_wrap=True)
    out.print(f"  reproduce: {report['status']}; dashboard: {page['status']}", highlight=False)
