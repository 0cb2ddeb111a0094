"""Warehouse upkeep: `check` (are the published files what their records say) and `remove` (a date)."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.cli import (
    WarehouseOpt,
    absent_warehouse,
    app,
    err,
    fail,
    out,
    parse_day,
    published_warehouse,
    unpublished_date,
    warehouse_writer,
)


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
    from warehouse.lock import unfinished_removal, writer_at_work

    layout = Layout.at(warehouse)
    if not layout.remote and (absent := absent_warehouse(layout)) is not None:
        raise fail(absent, 2)
    began = time.monotonic()
    report = check_warehouse(layout, full=not quick)
    seconds = time.monotonic() - began
    if layout.remote and report.partitions == 0:
        raise fail(
            f"no warehouse at {layout.root} (nothing published there); give --warehouse or MULTIPOLAR_WAREHOUSE", 2
        )
    # Out of date is told only of an undamaged warehouse: a damaged file reads as out of date too. A removal
    # stopped part way is finished by running it again, not by making its date's tables again.
    # While a writer is at work, what it has yet to do would be told as stopped part way or out of date.
    removing, working = unfinished_removal(layout), writer_at_work(layout)
    if working is not None:
        behind, counted = [], 0
    elif removing is not None:
        behind = [f"a removal of {removing} stopped part way; finish it: multipolar remove --date {removing}"]
        counted = 1
    else:
        imports, importing = unfinished_import_lines(layout)
        dated, told = out_of_date_lines(layout, importing) if not report.problems else ([], 0)
        leftovers = leftover_lines(layout) if not report.problems else []
        behind = imports + dated + leftovers
        counted = len(imports) + told + len(leftovers)  # a line may tell a run of dates: each date counts
    how = "sizes, markers and row counts" if quick else "every byte against its sha256"
    found = [f"{len(report.problems)} damaged"] if report.problems else ["all as published"]
    if behind:
        found.append(f"{counted} to be brought up to date")
    if working is not None:
        found.append(
            f"a writer is at work (pid {working.get('pid', '?')} on {working.get('host', '?')}, "
            f"{working.get('purpose', 'a write')}, since {working.get('since', '?')}): what it has yet to finish is "
            "not told; check again once it has"
        )
    out.print(
        f"checked {report.partitions:,} published files ({report.bytes / 1e6:,.1f} MB, {how}) in "
        f"{seconds:.1f} s: " + "; ".join(found),
        highlight=False,
        soft_wrap=True,
    )
    for problem in report.problems:
        out.print(f"  {problem}", highlight=False, soft_wrap=True, markup=False)
    for line in behind:
        out.print(f"  {line}", highlight=False, soft_wrap=True, markup=False)
    if report.problems or behind:
        raise typer.Exit(1)


def _report_options(name: str, window: str) -> str:
    """The options of `reproduce` that write report `name` in `window` again."""
    suffix = name.rsplit(".", 1)[-1]
    return (f" --format {suffix}" if suffix != "md" else "") + (f" --window {window}" if window != "30d" else "")


def leftover_lines(layout) -> list[str]:
    """Lines for a dashboard or a report made from other partitions than those published now, and for metadata
    versions no published date points at (each left by a run that stopped part way)."""
    from flows.steps import dashboard_current, stale_reports
    from warehouse.metadata import referenced_versions
    from warehouse.tables import MODEL_METADATA, SHARES

    lines = []
    drawn = (layout.dashboard_dir / "dashboard.json").exists()  # never drawn (`--no-dashboard`): nothing to tell
    if drawn and layout.published_dates(SHARES) and not dashboard_current(layout):
        lines.append("dashboard: not drawn from the metrics published now; draw it again: multipolar dashboard")
    for name, window in stale_reports(layout).items():
        remake = "multipolar reproduce" + _report_options(name, window)
        lines.append(f"reports/{name}: not made from the data published now; make it again: {remake}")
    lines.extend(crawl_leftover_lines(layout))
    referenced = referenced_versions(layout)
    for version in [v for v in layout.published_versions(MODEL_METADATA) if v not in referenced]:
        lines.append(
            f"model_metadata version {version}: no published date points at it; the next refresh or removal removes it"
        )
    return lines


def crawl_leftover_lines(layout) -> list[str]:
    """A line for each crawl left in staging by a refresh killed or failed part way and not run again for its date
    (its pages stay there, to resume, until that date is refreshed: never refreshed again, they would stay for
    good), and for the pages of a crawl published already that a refresh killed before removing them left."""
    import datetime as dt
    import json
    import shlex

    from flows.crawl import CHECKPOINT
    from warehouse.publish import DamagedRecord, read_meta
    from warehouse.tables import MODELS

    folder = layout.staging / "crawl"
    lines = []
    for staged in sorted(folder.iterdir()) if folder.is_dir() else []:
        try:
            day = dt.date.fromisoformat(staged.name)
        except ValueError:
            continue
        files = [f for f in staged.rglob("*") if f.is_file()]
        if not files:
            continue
        size = f"{len(files)} files, {sum(f.stat().st_size for f in files) / 1e6:,.1f} MB"
        try:
            state = json.loads((staged / CHECKPOINT).read_text())
        except (OSError, ValueError):
            state = {}
        state = state if isinstance(state, dict) else {}
        try:
            meta = read_meta(layout, MODELS, day)
        except DamagedRecord:
            meta = None  # told as damaged
        crawl = ("started_at", "endpoint", "scope")
        if meta is not None and state and all(meta.get(key) == state.get(key) for key in crawl):
            lines.append(
                f"{staged}: the pages of the crawl published for {day}, left behind ({size}); remove the folder"
            )
            continue
        options = "".join(
            f" --{name} {shlex.quote(str(state[name]))}" for name in ("scope", "endpoint") if state.get(name)
        )
        again = f"multipolar refresh --date {day}{options} --warehouse {shlex.quote(str(layout.root))}"
        if meta is not None:
            again += " --force"  # a replacement of the date, stopped before it was published
        lines.append(
            f"{staged}: a crawl of {day} stopped part way ({size}); resume it: {again}, or remove the folder to give "
            "it up"
        )
    return lines


def out_of_date_lines(layout, importing: set[str] = frozenset()) -> tuple[list[str], int]:
    """Lines telling the published dates whose derived tables are to be made again, why and how, and how many
    dates they tell; none for the dates of an import stopped part way (`importing`), which running it again makes.
    A run of consecutive dates with the same steps and reason is told on one line (after an upgrade, every date)."""
    from analytics.registry import check_registry
    from flows.steps import made_by_other_code, out_of_date, registries_behind
    from warehouse.publish import is_published
    from warehouse.tables import ATTRIBUTIONS, MODELS

    dates = {day: pending for day, pending in out_of_date(layout).items() if day.isoformat() not in importing}
    if not dates:
        return [], 0
    earlier_registry = set(registries_behind(layout))
    broken = check_registry()  # `recompute` refuses a broken registry: mend it first
    place = {day: index for index, day in enumerate(layout.published_dates(MODELS))}
    runs: list[tuple[list, str]] = []  # consecutive published dates, and what is said of each of them
    for day, pending in dates.items():
        if day in earlier_registry:
            why = "attributed with another registry than the one in use now"
        elif not is_published(layout, ATTRIBUTIONS, day):
            why = "never made (a refresh stopped before them?)"
        elif made_by_other_code(layout, day):
            why = "computed by other code than this version of Multipolar's"
        else:
            why = "computed from inputs that changed since (a removal or replacement stopped part way?)"
        again = "" if why.startswith("never") else " again"
        told = f"mend the registry first ({broken[0]}), then" if broken else f"make them{again}:"
        said = f"{', '.join(pending)} to be made{again}, {why}; {told} multipolar recompute"
        if runs and runs[-1][1] == said and place.get(runs[-1][0][-1], -2) + 1 == place.get(day):
            runs[-1][0].append(day)
        else:
            runs.append(([day], said))
    lines = [f"{_dates_told(days)}: {said}" for days, said in runs]
    return lines, len(dates)


def _dates_told(days: list) -> str:
    """One date, or the first and last of a run of them and how many."""
    return str(days[0]) if len(days) == 1 else f"{days[0]} … {days[-1]} ({len(days)} dates)"


def unfinished_import_lines(layout) -> tuple[list[str], set[str]]:
    """A line for each import that stopped part way (what it had published, and the command that finishes it),
    and the dates of those imports."""
    import shlex

    from flows.backfill import unfinished_imports
    from warehouse.tables import MODELS

    published = {d.isoformat() for d in layout.published_dates(MODELS)}
    lines, importing = [], set()
    for marker, record in unfinished_imports(layout):
        dropped = f"(or, to give it up, remove {marker})"
        if "damaged" in record:
            lines.append(f"an import stopped part way, and its record is damaged; run it again {dropped}")
            continue
        dates = sorted(str(d) for d in record["dates"])
        importing.update(dates)
        done = len(set(dates) & published)
        again = " ".join(shlex.quote(str(p)) for p in record["paths"])
        span = f"{dates[0]} … {dates[-1]}" if len(dates) > 1 else dates[0] if dates else "no date"
        lines.append(
            f"an import of {len(dates)} date{'s' if len(dates) != 1 else ''} ({span}) stopped part way, with {done} "
            f"of them published and their tables not all made; run it again: multipolar import {again} "
            f"--warehouse {shlex.quote(str(layout.root))}{' --force' if record.get('force') is True else ''} {dropped}"
        )
    return lines, importing


@app.command()
def remove(
    date: Annotated[str, typer.Option("--date", help="The snapshot date to remove, YYYY-MM-DD.")],
    warehouse: WarehouseOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="Remove without asking.")] = False,
) -> None:
    """Remove one snapshot date from every table, then bring the later dates up to date."""
    import datetime as dt

    from flows.steps import dashboard_step, out_of_date, remove_date, reproduction_step
    from warehouse.integrity import check_records
    from warehouse.lock import REMOVAL, removal_unfinished_said, unfinished_removal
    from warehouse.publish import write_json_atomic
    from warehouse.tables import MODELS, TABLES

    day = parse_day(date)
    layout = published_warehouse(warehouse)
    check_records(layout)  # before asking: a damaged record would stop the removal part way
    removing = unfinished_removal(layout)
    if removing is not None and removing != day.isoformat():
        raise fail(removal_unfinished_said(layout, removing), 3)  # as every other writer is refused
    if removing is not None:
        err.print(f"finishing the removal of {day} that stopped part way", highlight=False)
    elif not any(layout.meta_file(t, day).exists() or layout.partition_dir(t, day).exists() for t in TABLES.values()):
        # Never published, or removed: a removal that stopped part way would have left its mark.
        pending = out_of_date(layout, after=day)
        behind = f"; dates after it are to be made again: multipolar recompute ({', '.join(map(str, pending))})"
        raise fail(unpublished_date(day, layout, layout.published_dates(MODELS), behind if pending else ""), 2)
    elif not yes:
        # What the Hub served that day cannot be fetched again: keep a copy of the warehouse if in doubt.
        typer.confirm(f"remove {day} from every table of {layout.root}?", abort=True, err=True)
    with warehouse_writer(layout, f"remove {day}"):
        # Read again under the lock: a removal of another date may have stopped part way since (while this one
        # asked, say), and its mark, written over, would be lost with the half of that date it has yet to remove.
        removing = unfinished_removal(layout)
        if removing is not None and removing != day.isoformat():
            raise fail(removal_unfinished_said(layout, removing), 3)
        # Marked while it runs: a removal stopped part way is told by `check`, and finished by running it again.
        marker = layout.root / REMOVAL
        write_json_atomic(marker, {"date": day.isoformat(), "started_at": dt.datetime.now(dt.UTC).isoformat()})
        done = remove_date(layout, day)
        report = reproduction_step(layout)
        page = dashboard_step(layout)
        marker.unlink(missing_ok=True)
    if done["removed"]:
        out.print(f"removed {day}: {', '.join(done['removed'])}", highlight=False, soft_wrap=True)
    if done["metadata_versions_dropped"]:
        versions = ", ".join(str(v) for v in done["metadata_versions_dropped"])
        out.print(f"  model_metadata versions no date points at any more: {versions}", highlight=False)
    for said in done["updated"].pop("compared again", []):
        out.print(f"  compared again with the date now before it: {said}", highlight=False)
    for step, days in done["updated"].items():
        out.print(f"  {step} of later dates: {', '.join(days)}", highlight=False, soft_wrap=True)
    out.print(f"  reproduce: {report['status']}; dashboard: {page['status']}", highlight=False)
