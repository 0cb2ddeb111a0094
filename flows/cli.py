"""The `multipolar` command: the one front door to refreshes, the warehouse and its reports."""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(
    help="Measure how multipolar the open-model ecosystem is, from dated Hugging Face Hub snapshots.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

WarehouseOpt = Annotated[
    str | None,
    typer.Option("--warehouse", help="Warehouse root (default: $MULTIPOLAR_WAREHOUSE or ./data)."),
]
DateOpt = Annotated[str | None, typer.Option("--date", help="Snapshot date, YYYY-MM-DD (default: today, UTC).")]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one clear line and return the exit to raise."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def parse_day(text: str | None) -> dt.date:
    """A `--date` value, defaulting to today in UTC."""
    if text is None:
        return dt.datetime.now(dt.UTC).date()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise fail(f"--date {text!r} is not a date of the form YYYY-MM-DD", 2) from None


class _StderrHandler(logging.StreamHandler):
    """Log lines to whatever `sys.stderr` is at the time of each line."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def quiet_prefect(verbose: bool = False) -> None:
    """Keep Prefect's console logs and telemetry out of the command's output (set before prefect is imported)."""
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "INFO" if verbose else "CRITICAL")
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    own = logging.getLogger("multipolar")
    if not own.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
        own.addHandler(handler)
        own.setLevel(logging.INFO)
        own.propagate = False
    for name in ("huggingface_hub", "httpx", "httpx2"):
        logging.getLogger(name).setLevel(logging.WARNING if verbose else logging.ERROR)


@app.command()
def refresh(
    date: DateOpt = None,
    scope: Annotated[str, typer.Option(help="full | top:N | orgs:NAME,NAME | orgs:@FILE")] = "full",
    endpoint: Annotated[
        str | None, typer.Option(help="Hub endpoint (default: $HF_ENDPOINT or https://huggingface.co).")
    ] = None,
    warehouse: WarehouseOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the date's published snapshot.")] = False,
    wait: Annotated[float, typer.Option(help="Seconds to wait for another writer's lock.")] = 0.0,
    no_dashboard: Annotated[bool, typer.Option("--no-dashboard", help="Skip writing the dashboard.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's and the client's logs.")] = False,
) -> None:
    """Crawl the Hub and publish one dated snapshot with its attributions, metrics and dashboard."""
    day = parse_day(date)
    quiet_prefect(verbose)
    from flows import hub
    from flows.progress import crawl_progress
    from flows.scope import ScopeError, parse_scope
    from warehouse.contract import SchemaViolation
    from warehouse.lock import WarehouseLocked

    try:
        parsed = parse_scope(scope)
        chosen = hub.resolve_endpoint(endpoint)
    except (ScopeError, hub.HubError) as error:
        raise fail(str(error), 2) from None
    if not force and _nothing_to_do(warehouse, day, dashboard=not no_dashboard):
        out.print(f"{day} is already published in {_root(warehouse)}; nothing to do (use --force to replace it).")
        return
    try:
        hub.check_reachable(chosen)
    except hub.HubError as error:
        raise fail(str(error)) from None
    expected = parsed.listings[0].limit if len(parsed.listings) == 1 else None
    from flows.refresh import refresh as refresh_flow

    err.print(f"refresh {day} · scope {parsed.text} · {chosen}", highlight=False)
    try:
        with crawl_progress(expected):
            summary = refresh_flow(
                day=day,
                scope=parsed.text,
                endpoint=chosen,
                warehouse=warehouse,
                force=force,
                wait_seconds=wait,
                dashboard=not no_dashboard,
            )
    except WarehouseLocked as error:
        raise fail(str(error), 3) from None
    except (hub.HubError, SchemaViolation, OSError) as error:
        raise fail(str(error)) from None
    from flows.refresh import describe

    out.print(
        f"published {day}: {summary.get('rows')} models, {summary.get('requests')} requests, "
        f"{summary.get('seconds')} s → {summary['warehouse']}",
        highlight=False,
    )
    for step, outcome in summary.get("steps", {}).items():
        out.print(f"  {step}: {describe(outcome)}", highlight=False)


def _root(warehouse: str | None) -> Path:
    from warehouse.layout import Layout

    return Layout.at(warehouse).root


def _nothing_to_do(warehouse: str | None, day: dt.date, *, dashboard: bool) -> bool:
    """Whether every table of `day` is published already, so a refresh would change nothing."""
    from flows.steps import pending_steps
    from warehouse.layout import Layout
    from warehouse.publish import is_published
    from warehouse.tables import MODELS

    layout = Layout.at(warehouse)
    return is_published(layout, MODELS, day) and not pending_steps(layout, day, dashboard=dashboard)


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="A read-only SQL query over the warehouse's views.")],
    warehouse: WarehouseOpt = None,
    format: Annotated[str, typer.Option("--format", help="table | csv | json")] = "table",
    limit: Annotated[int, typer.Option(help="Rows shown in table format.")] = 50,
) -> None:
    """Run read-only DuckDB SQL over every published date (views: models, attributions, shares, …)."""
    import duckdb

    from warehouse.layout import Layout
    from warehouse.query import QueryRefused, run_sql

    if format not in ("table", "csv", "json"):
        raise fail(f"--format {format!r}: use table, csv or json", 2)
    try:
        frame = run_sql(Layout.at(warehouse), query)
    except QueryRefused as error:
        raise fail(str(error), 2) from None
    except duckdb.Error as error:
        raise fail(str(error).splitlines()[0]) from None
    if format == "csv":
        sys.stdout.write(frame.write_csv())
    elif format == "json":
        sys.stdout.write(frame.write_json() + "\n")
    else:
        from rich.table import Table as RichTable

        table = RichTable(show_edge=False, header_style="bold")
        for name in frame.columns:
            table.add_column(name, overflow="fold")
        for row in frame.head(limit).iter_rows():
            table.add_row(*["" if v is None else str(v) for v in row])
        out.print(table)
        if frame.height > limit:
            out.print(f"… {frame.height - limit} more rows (use --limit or --format csv)")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
