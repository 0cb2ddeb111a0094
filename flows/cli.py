"""The `multipolar` command: the one front door to refreshes, the warehouse and its reports."""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import logging
import math
import os
import re
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    import polars as pl
    from rich.table import Table as RichTable

    from warehouse.layout import Layout

app = typer.Typer(
    help="Measure how multipolar the open-model ecosystem is, from dated Hugging Face Hub snapshots.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class _Stream:
    """`sys.stdout` or `sys.stderr`, as it is at each write. Once the reader of a pipe has gone (`| head -1`), what
    follows is dropped: the command finishes its work whole, rather than stopping part way at its next line."""

    def __init__(self, name: str) -> None:
        self.name, self.gone = name, False

    @property
    def stream(self) -> TextIO:
        return getattr(sys, self.name)

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                self.stream.write(text)
            except BrokenPipeError:
                self._reader_gone()
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._reader_gone()

    def _reader_gone(self) -> None:
        self.gone = True
        # What the stream still buffers goes nowhere, rather than failing again as the interpreter exits.
        with contextlib.suppress(AttributeError, OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)

    def isatty(self) -> bool:
        return not self.gone and self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self.stream, "encoding", None) or "utf-8"


out = Console(file=_Stream("stdout"))
err = Console(file=_Stream("stderr"))
# Into a pipe or a file, a line stays one line (rich would fold it at 80 columns, or `$COLUMNS`), so that grep
# and logs see it whole; on a terminal, rich folds it between words.
for _console in (out, err):
    _console.soft_wrap = not _console.is_terminal
# Set by `main()`: this process is the `multipolar` command itself, whose refresh then runs against a Prefect
# server of its own that dies with it, even by SIGKILL (`flows.schedule.prefect_api`). Prefect's temporary
# server, which a caller of `app` in a longer-lived process shares between refreshes, outlives a SIGKILL.
COMMAND_PROCESS = False

WarehouseOpt = Annotated[
    str | None,
    typer.Option("--warehouse", help="Warehouse root (default: $MULTIPOLAR_WAREHOUSE or ./data)."),
]


def _seconds(value: float) -> float:
    if not math.isfinite(value) or value < 0:  # NaN would wait for ever
        raise typer.BadParameter("give a number of seconds, 0 or more")
    return value


WaitOpt = Annotated[float, typer.Option("--wait", help="Seconds to wait for another writer's lock.", callback=_seconds)]
DateOpt = Annotated[str | None, typer.Option("--date", help="Snapshot date, YYYY-MM-DD (default: today, UTC).")]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one clear line and return the exit to raise."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def print_table(table: RichTable) -> None:
    """`table` on stdout: folded to the terminal's width, or whole on one line a row when stdout is a pipe or
    a file, where rich would otherwise fold every cell at 80 columns (or `$COLUMNS`)."""
    if out.is_terminal:
        out.print(table)
    else:
        # Not expanded, the table is drawn at its natural width, however wide the console.
        Console(file=out.file, width=1_000_000, no_color=True).print(table)


def parse_day(text: str | None) -> dt.date:
    """A `--date` value, defaulting to today in UTC."""
    if text is None:
        return dt.datetime.now(dt.UTC).date()
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):  # fromisoformat takes 20260501 and 2026-W18-5 too
            raise ValueError(text)
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
    console_level = "INFO" if verbose else "CRITICAL"
    os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = console_level
    if "prefect.logging" in sys.modules:  # configured already (an earlier command in this process)
        for name in ("", "prefect"):
            for handler in logging.getLogger(name).handlers:
                if type(handler).__name__ == "PrefectConsoleHandler":
                    handler.setLevel(console_level)
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
    # huggingface_hub sets its loggers' level from HF_HUB_VERBOSITY when imported, and logs each retry of a
    # request (two lines, with the page's URL) as a warning: told only with --verbose; the error that ends
    # the retries is told in one line either way.
    os.environ["HF_HUB_VERBOSITY"] = "warning" if verbose else "error"
    for name in ("huggingface_hub", "httpx", "httpx2"):
        logging.getLogger(name).setLevel(logging.WARNING if verbose else logging.ERROR)
    # huggingface_hub prints through a handler of its own: passed on to the root logger (Prefect's console
    # handler with --verbose), each line would be printed twice.
    logging.getLogger("huggingface_hub").propagate = False


@app.command()
def refresh(
    date: DateOpt = None,
    scope: Annotated[str, typer.Option(help="full | top:N | orgs:NAME,NAME | orgs:@FILE")] = "full",
    endpoint: Annotated[
        str | None, typer.Option(help="Hub endpoint (default: $HF_ENDPOINT or https://huggingface.co).")
    ] = None,
    warehouse: WarehouseOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the date's published snapshot.")] = False,
    wait: WaitOpt = 0.0,
    no_dashboard: Annotated[bool, typer.Option("--no-dashboard", help="Skip writing the dashboard.")] = False,
    backdate: Annotated[
        bool, typer.Option("--backdate", help="Record the Hub as it is now under a past --date.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's and the client's logs.")] = False,
) -> None:
    """Crawl the Hub and publish one dated snapshot with its attributions, metrics and dashboard."""
    day = parse_day(date)
    quiet_prefect(verbose)
    from analytics.registry import RegistryError, load_registry
    from flows import hub
    from flows.crawl import StagedPageUnreadable
    from flows.progress import crawl_progress
    from flows.scope import ScopeError, parse_scope
    from flows.snapshot import NothingListed
    from warehouse.contract import SchemaViolation
    from warehouse.lock import WarehouseLocked

    try:
        parsed = parse_scope(scope)
        chosen = hub.resolve_endpoint(endpoint)
    except (ScopeError, hub.HubError) as error:
        raise fail(str(error), 2) from None
    if day > dt.datetime.now(dt.UTC).date():
        raise fail(f"--date {day} is in the future: a refresh records the Hub as it is now", 2)
    refuse_a_file_warehouse(warehouse)
    if _backdated(day, chosen, warehouse) and not backdate:
        raise fail(
            f"--date {day} is past: a refresh records the Hub as it is now, so that snapshot would hold today's "
            "counts under an earlier date; give --backdate to do so all the same",
            2,
        )
    try:
        load_registry()  # a broken registry fails now, in one line, not after the crawl
    except RegistryError as error:
        raise fail(str(error)) from None
    if not force and _nothing_to_do(warehouse, day, dashboard=not no_dashboard):
        out.print(f"{day} is already published in {_root(warehouse)}; nothing to do (use --force to replace it).")
        return
    try:
        hub.check_reachable(chosen)
    except hub.HubError as error:
        raise fail(str(error)) from None
    expected = parsed.listings[0].limit if len(parsed.listings) == 1 else None
    from flows.refresh import refresh as refresh_flow
    from flows.schedule import ServerFailed, exit_on_sigterm, prefect_api

    err.print(f"refresh {day} · scope {parsed.text} · {chosen}", highlight=False)
    try:
        # A SIGTERM (a scheduler's timeout, `kill`) exits through `finally` and exit hooks, which stop the
        # Prefect server rather than leave it running.
        server = prefect_api() if COMMAND_PROCESS else contextlib.nullcontext()
        with exit_on_sigterm(), server, crawl_progress(expected):
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
    except RegistryError as error:  # valid before the crawl, edited since: the snapshot is published
        told = f"{day}'s snapshot is published; mend the registry, then run the same refresh again (no crawl)"
        raise fail(f"{error}\n{told}" if len(error.problems) > 1 else f"{error}; {told}") from None
    except (
        hub.HubError,
        SchemaViolation,
        ServerFailed,
        NothingListed,
        StagedPageUnreadable,
        OSError,
    ) as error:
        raise fail(said_of(error)) from None
    from flows.refresh import describe

    waited = f" (after {summary['waited']} s waiting for another writer)" if summary.get("waited") else ""
    if summary.get("models") == "already published":  # not crawled again: only what it was missing was made
        out.print(
            f"{day}'s models were published already (not crawled again); made what it lacked in "
            f"{summary.get('seconds')} s{waited} → {summary['warehouse']}",
            highlight=False,
        )
    else:
        out.print(
            f"published {day}: {summary.get('rows')} models, {summary.get('requests')} requests, "
            f"{summary.get('seconds')} s{waited} → {summary['warehouse']}",
            highlight=False,
        )
    if summary.get("empty_listings"):
        # Published from the listings that returned models; one that returned none is most often a misspelling.
        err.print(
            f"[bold yellow]warning:[/] no models listed for {', '.join(summary['empty_listings'])} "
            "(is each namespace spelled as on the Hub?)",
            highlight=False,
            soft_wrap=True,
        )
    if summary.get("models_of_date_before"):
        # A Hub that ended its listing early: what it listed is kept, flagged as an import's partial date is.
        err.print(
            f"[bold yellow]warning:[/] {day} lists {summary.get('rows')} models, under half the "
            f"{summary['models_of_date_before']} of the date before: kept as a partial snapshot, left out of the "
            "crossovers, the dashboard's views and the next date's between window (refresh it again with --force "
            "once the Hub lists them all)",
            highlight=False,
            soft_wrap=True,
        )
    for step, outcome in summary.get("steps", {}).items():
        out.print(f"  {step}: {describe(outcome)}", highlight=False)
    from warehouse.layout import Layout

    warn_registry_behind(Layout.at(warehouse))


def warn_registry_behind(layout: Layout) -> None:
    """Warn when published dates were attributed with another registry than the one in use: their shares and
    this date's are then not measured alike."""
    from flows.steps import registries_behind

    behind = registries_behind(layout)
    if behind:
        err.print(
            f"[bold yellow]warning:[/] {len(behind)} published {'date was' if len(behind) == 1 else 'dates were'} "
            f"attributed with another registry ({behind[0]}{f' … {behind[-1]}' if len(behind) > 1 else ''}); "
            "`multipolar recompute` attributes them with this one",
            highlight=False,
            soft_wrap=True,
        )


def _backdated(day: dt.date, endpoint: str, warehouse: str | None) -> bool:
    """Whether a refresh would record a remote Hub under a past date it did not start crawling on that date.

    A Hub on this machine (the stand-in, a demo) serves a world of any date; a crawl of `day` left in staging
    was started then, and resumes."""
    from flows.crawl import CHECKPOINT
    from flows.snapshot import source_kind_of
    from warehouse.layout import Layout

    if day >= dt.datetime.now(dt.UTC).date() or source_kind_of(endpoint) != "hub":
        return False
    return not Layout.at(warehouse).crawl_staging(day).joinpath(CHECKPOINT).exists()


@contextlib.contextmanager
def warehouse_writer(layout: Layout, what: str):
    """The warehouse's writer lock for the block, or exit 3 naming its holder."""
    from warehouse.lock import WarehouseLocked, writer_lock

    try:
        with writer_lock(layout, what):
            yield
    except WarehouseLocked as error:
        raise fail(str(error), 3) from None


def refuse_a_file_warehouse(warehouse: str | None) -> None:
    """Exit 2 naming the warehouse given (or set by MULTIPOLAR_WAREHOUSE) when it is a local file, not a folder."""
    from warehouse.layout import Layout

    layout = Layout.at(warehouse)
    if not layout.remote and layout.root.exists() and not layout.root.is_dir():
        raise fail(f"--warehouse {layout.root} is a file, not a folder", 2)


def make_folder(folder: Path) -> None:
    """Make the output folder `folder` (and its parents), or exit 2 saying in one line why it cannot be."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise fail(f"--out {folder}: a file of that name is there, not a folder", 2) from None
    except OSError as error:
        raise fail(f"--out {folder}: cannot make that folder ({error.strerror or error})", 2) from None


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
    limit: Annotated[int, typer.Option(help="Rows shown in table format.", min=0)] = 50,
) -> None:
    """Run read-only DuckDB SQL over every published date (views: models, attributions, shares, …)."""
    import duckdb
    import polars as pl

    from warehouse.query import KeptReplacing, QueryRefused, check_read_only, run_sql

    if format not in ("table", "csv", "json"):
        raise fail(f"--format {format!r}: use table, csv or json", 2)
    try:
        check_read_only(query)
    except QueryRefused as error:
        raise fail(str(error), 2) from None
    layout = published_warehouse(warehouse)  # else every query would answer from empty views
    try:
        frame = run_sql(layout, query, waiting=lambda said: err.print(said, highlight=False, soft_wrap=True))
    except QueryRefused as error:
        raise fail(str(error), 2) from None
    except KeptReplacing as error:  # another writer at work, as a writer finding the lock held exits 3
        raise fail(str(error), 3) from None
    except duckdb.Error as error:
        found = damage_found(error, layout)
        if found is not None:
            raise fail(found) from None
        # The first line says what is wrong; DuckDB's "Did you mean …" or "Candidate bindings: …" after it
        # names what was likely meant.
        lines = str(error).splitlines()
        hints = [line for line in lines[1:] if line.startswith(("Did you mean", "Candidate bindings"))]
        raise fail(" ".join([lines[0], *hints])) from None
    frame = iso_times(frame)
    if format == "csv":
        sys.stdout.write(csv_ready(frame).write_csv())
    elif format == "json":
        # Decimals as JSON numbers rather than polars' text of them; NaN and infinities, which JSON cannot
        # hold, as null.
        sys.stdout.write(frame.with_columns(pl.col(pl.Decimal).cast(pl.Float64)).write_json() + "\n")
    else:
        from rich.table import Table as RichTable

        table = RichTable(show_edge=False, header_style="bold")
        for name in frame.columns:
            table.add_column(escape(name), overflow="fold")
        for row in frame.head(limit).iter_rows():
            table.add_row(*["" if v is None else escape(str(v)) for v in row])  # `[…]` is text, not markup
        print_table(table)
        if frame.height > limit:
            out.print(f"… {frame.height - limit} more rows (use --limit or --format csv)")
        elif frame.height == 0:
            out.print("(0 rows)")


def iso_times(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with each timestamp as its ISO 8601 text (`2021-04-02T07:19:58.957+00:00`), the same in every
    format: the fraction of a second only as long as it needs, the offset only when the column has a zone."""
    import polars as pl

    return frame.with_columns(
        pl.col(name).dt.to_string("%Y-%m-%dT%H:%M:%S%.f" + ("%:z" if dtype.time_zone else ""))
        for name, dtype in frame.schema.items()
        if isinstance(dtype, pl.Datetime)
    )


def csv_ready(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with each nested column (a list such as `tags`, a struct) as its JSON text, as CSV holds only
    flat values; a null stays an empty cell."""
    import polars as pl

    return frame.with_columns(
        pl.when(pl.col(name).is_not_null())
        # JSON of the struct {"v": value}, less its first 5 and last characters: the value's own JSON.
        .then(pl.struct(pl.col(name).alias("v")).struct.json_encode().str.slice(5).str.strip_suffix("}"))
        .alias(name)
        for name, dtype in frame.schema.items()
        if dtype.is_nested()
    )


def absent_warehouse(layout) -> str | None:
    """Why there is no warehouse at `layout`'s root, in one line, or None when there is one: no such folder, a
    file, or nothing published there (every publish records its partition under `_meta`, so a folder without
    it, such as the folder above a warehouse, holds no published date)."""
    if not layout.remote and not layout.root.is_dir():
        what = "a file" if layout.root.exists() else "no such folder"
    elif not (layout.root / "_meta").exists():
        what = "nothing published there"
    else:
        return None
    return f"no warehouse at {layout.root} ({what}); give --warehouse or MULTIPOLAR_WAREHOUSE"


def published_warehouse(warehouse: str | None) -> Layout:
    """The warehouse given (or set by MULTIPOLAR_WAREHOUSE), or exit 2 saying in one line why there is none, as
    for any argument naming what is not there."""
    from warehouse.layout import Layout

    layout = Layout.at(warehouse)
    if (absent := absent_warehouse(layout)) is not None:
        raise fail(absent, 2)
    return layout


def _published_day(warehouse: str | None, date: str | None):
    """The `--date` to work on: the given one, else the latest published snapshot; with its layout."""
    from warehouse.tables import MODELS

    layout = published_warehouse(warehouse)
    dates = layout.published_dates(MODELS)
    if date is None:
        if not dates:
            raise fail(f"no snapshot is published in {layout.root}; run `multipolar refresh` first")
        return layout, dates[-1]
    day = parse_day(date)
    if day not in dates:
        raise fail(unpublished_date(day, layout, dates), 2)
    return layout, day


def unpublished_date(day: dt.date, layout: Layout, dates: list[dt.date], then: str = "") -> str:
    """The line of every command given a `--date` its warehouse does not hold: what is wrong and what to give."""
    if not dates:
        choose = "no date is published there yet"
    elif len(dates) == 1:
        choose = f"give --date {dates[0]}, the one published"
    else:
        choose = f'give a published --date ({dates[0]} … {dates[-1]}; multipolar sql "FROM snapshots" lists them)'
    return f"nothing is published for {day} in {layout.root}; {choose}{then}"


def _print_outcomes(outcomes: dict) -> None:
    from flows.refresh import describe

    for step, outcome in outcomes.items():
        out.print(f"{step}: {describe(outcome)}", highlight=False)


@app.command()
def attribute(
    date: Annotated[str | None, typer.Option("--date", help="Snapshot date (default: the latest published).")] = None,
    warehouse: WarehouseOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Recompute even if up to date.")] = False,
) -> None:
    """Credit every model of a snapshot to a lab, country, region and developer type under each rule."""
    from analytics.registry import RegistryError
    from flows.steps import attribute_date, pending_steps

    layout, day = _published_day(warehouse, date)
    try:
        with warehouse_writer(layout, f"attribute {day}"):
            _print_outcomes({f"attribute {day}": attribute_date(layout, day, force=force)})
            stale = "metrics" in pending_steps(layout, day, dashboard=False)
    except RegistryError as error:
        raise fail(str(error)) from None
    if stale:
        # The shares, the dashboard and `multipolar sql` still say what the attributions before said.
        out.print(
            f"the metrics of {day} are not made from these attributions: run `multipolar metrics --date {day}`",
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def metrics(
    date: Annotated[str | None, typer.Option("--date", help="Snapshot date (default: every published date).")] = None,
    warehouse: WarehouseOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Recompute even if up to date.")] = False,
    no_dashboard: Annotated[bool, typer.Option("--no-dashboard", help="Skip redrawing the dashboard.")] = False,
) -> None:
    """Recompute shares, concentration and crossovers (attributing first where needed), then the reports."""
    from analytics.registry import RegistryError
    from flows.steps import attribute_date, crossovers_date, dashboard_step, metrics_date, reproduction_step
    from warehouse.tables import MODELS

    layout, day = _published_day(warehouse, date)
    days = [day] if date else layout.published_dates(MODELS)
    try:
        with warehouse_writer(layout, "metrics"):
            for d in days:
                attribute_date(layout, d)
                _print_outcomes({f"metrics {d}": metrics_date(layout, d, force=force)})
            for d in days:
                _print_outcomes({f"crossovers {d}": crossovers_date(layout, d, force=force)})
            # The report and the page say what the metrics say now (the page is redrawn only when they changed).
            _print_outcomes({"reproduce": reproduction_step(layout)})
            if not no_dashboard:
                _print_outcomes({"dashboard": dashboard_step(layout)})
    except RegistryError as error:
        raise fail(str(error)) from None


@app.command()
def dashboard(
    out_dir: Annotated[Path | None, typer.Option("--out", help="Folder (default: <warehouse>/dashboard).")] = None,
    warehouse: WarehouseOpt = None,
    check: Annotated[bool, typer.Option("--check", help="Open it in headless Chromium and screenshot it.")] = False,
) -> None:
    """Write the dashboard (index.html and one PNG per view) from every published metric."""
    from flows.steps import dashboard_inputs, dashboard_step, draw_dashboard, made_by
    from warehouse.publish import records_kept, write_json_atomic
    from warehouse.tables import SHARES

    layout = published_warehouse(warehouse)
    if not layout.published_dates(SHARES):
        raise fail(f"no metrics are published in {layout.root}; run `multipolar refresh` or `multipolar metrics`")
    if layout.remote and out_dir is None:
        if check:
            raise fail("--check opens a local page: add --out DIR to draw the dashboard on this machine", 2)
        with warehouse_writer(layout, "dashboard"):
            outcome = dashboard_step(layout, force=True)
        out.print(f"dashboard: {outcome['html']} ({outcome['bytes']:,} bytes)", highlight=False)
        return
    folder = out_dir or layout.dashboard_dir
    # Into the warehouse, as one of its writers: a refresh drawing it at the same time would overwrite it.
    with warehouse_writer(layout, "dashboard") if out_dir is None else contextlib.nullcontext(), records_kept():
        make_folder(folder)
        inputs = dashboard_inputs(layout) if out_dir is None else None
        result = draw_dashboard(layout, folder)
        if inputs is not None:  # the warehouse's own: recorded as drawn from these metrics, as a refresh records it
            made = {"inputs": inputs, "html": str(result.html)} | made_by()
            write_json_atomic(layout.dashboard_dir / "dashboard.json", made)
    out.print(f"dashboard: {result.html} ({result.page_bytes:,} bytes, {len(result.pngs)} PNGs)", highlight=False)
    if check:
        from dashboards.browser import check_in_browser

        report = check_in_browser(result.html, result.html.with_name("screenshot.png"))
        # A page whose drawing failed records no render time.
        drawn = "" if report.render_ms is None else f" in {report.render_ms:.0f} ms"
        out.print(
            f"browser: {len(report.rendered)}/{report.views} views drew marks{drawn}, "
            f"{len(report.console_errors)} console errors, {len(report.console_warnings)} console warnings, "
            f"{len(report.external_requests)} network requests, "
            f"{report.page_width} px wide in a {report.width} px window, screenshot {report.screenshot}",
            highlight=False,
        )
        if report.empty:
            out.print(f"views without marks (no data for them yet): {', '.join(report.empty)}", highlight=False)
        for switches, texts in report.clipped_by_switch.items():
            if texts:
                out.print(f"cut off at the page's edge with {switches}: {', '.join(texts)}", highlight=False)
        logs = ("page error", report.page_errors), ("console error", report.console_errors)
        for kind, messages in (*logs, ("console warning", report.console_warnings)):
            for message, times in Counter(messages).items():
                out.print(f"{kind}{f' ({times} times)' if times > 1 else ''}: {escape(message)}", highlight=False)
        logged = report.console_errors or report.console_warnings or report.page_errors
        if logged or report.external_requests or any(report.clipped_by_switch.values()):
            raise fail("the dashboard did not render cleanly in headless Chromium")


registry_app = typer.Typer(help="Check the attribution registry and list what it is missing.", no_args_is_help=True)
app.add_typer(registry_app, name="registry")


@registry_app.command("check")
def registry_check(
    path: Annotated[Path | None, typer.Argument(help="Registry CSV (default: the packaged one).")] = None,
) -> None:
    """Validate the registry: duplicates, country codes, regions, developer types, evidence."""
    from analytics.registry import REGISTRY_PATH, check_registry, registry_version

    target = path or REGISTRY_PATH
    if not target.exists():
        raise fail(f"no registry file at {target}", 2)
    problems = check_registry(target)
    for problem in problems:
        where = f"{target}:{problem.line}" if problem.line is not None else str(target)
        err.print(f"{where}: {problem.reason}", highlight=False, markup=False, soft_wrap=True)
    if problems:
        raise fail(f"{len(problems)} problem(s) in {target}")
    out.print(f"{target}: valid ({registry_version(target)})", highlight=False)


@registry_app.command("gaps")
def registry_gaps_cmd(
    date: Annotated[str | None, typer.Option("--date", help="Snapshot date (default: the latest published).")] = None,
    top: Annotated[int, typer.Option(help="How many namespaces to list.", min=1)] = 30,
    rule: Annotated[str, typer.Option(help="uploader | official | lineage")] = "uploader",
    warehouse: WarehouseOpt = None,
) -> None:
    """Unreviewed namespaces ranked by the 30-day downloads they hold: the curator's to-do list."""
    from rich.table import Table as RichTable

    from analytics.attribution import RULES, registry_gaps
    from warehouse.tables import ATTRIBUTIONS, MODELS

    if rule not in RULES:
        raise fail(f"--rule {rule!r}: use {', '.join(RULES)}", 2)
    layout, day = _published_day(warehouse, date)
    if day not in layout.published_dates(ATTRIBUTIONS):
        raise fail(f"{day} is not attributed yet; run `multipolar attribute --date {day}`")
    listed, again = _listed_since(layout, day)
    gaps = registry_gaps(
        layout.scan(MODELS, day),
        layout.scan(ATTRIBUTIONS, day),
        rule=rule,
        top=top + len(listed),
    )
    reviewed = gaps["credited_namespace"].str.to_lowercase().is_in(sorted(listed))
    if again is not None:
        n = int(reviewed.sum())
        left_out = f"; {n:,} namespace{'s it lists now are' if n > 1 else ' it lists now is'} left out" if n else ""
        told = f"{day} was attributed with another registry than the one in use{left_out}: {again}"
        err.print(f"[bold yellow]warning:[/] {escape(told)}", highlight=False, soft_wrap=True)
    gaps = gaps.filter(~reviewed).head(top)
    table = RichTable(title=f"Unreviewed namespaces on {day} ({rule})", show_edge=False, header_style="bold")
    for name in ("namespace", "models", "downloads_30d", "share"):
        table.add_column(name, justify="left" if name == "namespace" else "right")
    for row in gaps.iter_rows(named=True):
        share = "" if row["share"] is None else percent_shown(row["share"])
        table.add_row(row["credited_namespace"], f"{row['models']:,}", f"{row['downloads_30d']:,.0f}", share)
    print_table(table)


def _listed_since(layout: Layout, day: dt.date) -> tuple[set[str], str | None]:
    """When `day` was attributed with another registry than the one in use: the namespaces (lower-cased) the one
    in use lists, which `registry gaps` leaves out (the curator has reviewed them since), and what to do."""
    from analytics.registry import RegistryError, load_registry, registry_version
    from warehouse.publish import read_meta
    from warehouse.tables import ATTRIBUTIONS

    made_with = (read_meta(layout, ATTRIBUTIONS, day) or {}).get("registry_version")
    again = f"`multipolar recompute` attributes {day} with the registry in use"
    try:
        if made_with in (None, registry_version()):
            return set(), None
        return set(load_registry()["namespace"].str.to_lowercase()), again
    except RegistryError as error:
        return set(), f"the registry in use is broken ({error.problems[0]}): mend it, then {again}"


def percent_shown(share: float) -> str:
    """A share as a percentage with the decimals that show it: 12.34%, 0.0123%, and 0% only for none at all."""
    if share <= 0:
        return "0%"
    decimals = max(2, 1 - math.floor(math.log10(share * 100)))  # two significant digits below 0.01%
    return f"{share * 100:.{decimals}f}%"


# Commands kept in modules of their own register themselves on `app` when imported.
from flows import cli_backfill, cli_scale, cli_serve, cli_warehouse  # noqa: E402, F401, I001


def exit_on_stop_signals() -> None:
    """Make a SIGTERM (`kill`, a scheduler's timeout, a pod stopped) or a SIGHUP (a closed terminal) exit the command
    as Ctrl-C does, through `finally` clauses and exit hooks, with code 143 or 129: what it started stops with it
    (Prefect's temporary server, a stand-in Hub, a browser) rather than run on under pid 1, and the writer lock is
    let go. A signal the command was started ignoring (`nohup`) stays ignored; a second one while it stops is
    ignored, so that it is not cut short stopping what it started."""

    def _exit(signum: int, _frame: object) -> None:
        STOPPED.append(signum)
        for stop in stops:
            signal.signal(stop, signal.SIG_IGN)
        raise SystemExit(128 + signum)

    def _interrupt(signum: int, _frame: object) -> None:
        STOPPED.append(signum)
        raise KeyboardInterrupt

    stops = [s for s in (signal.SIGTERM, signal.SIGHUP) if signal.getsignal(s) == signal.SIG_DFL]
    for stop in stops:
        signal.signal(stop, _exit)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _interrupt)


# The stop signals the command received. A library running native code (DuckDB) turns the exception the signal
# raised into one of its own ("Query interrupted"): the command still exits as stopped by the signal.
STOPPED: list[int] = []


# The codes a command stopped by a signal exits with, and the signal's name.
STOPPED_BY = {128 + signal.SIGINT: "interrupted", 128 + signal.SIGTERM: "SIGTERM", 128 + signal.SIGHUP: "SIGHUP"}


def _say_stopped(code: int) -> None:
    said = "interrupted" if code == 128 + signal.SIGINT else f"stopped by {STOPPED_BY[code]}"
    resumes = " (it resumes its crawl from the last page it kept)" if sys.argv[1:2] == ["refresh"] else ""
    err.print(
        f"{said}: what was published stays whole; run the command again to finish{resumes}",
        highlight=False,
        soft_wrap=True,
    )


def main() -> None:
    global COMMAND_PROCESS
    from analytics.registry import RegistryError
    from warehouse.layout import WarehouseRefused
    from warehouse.lock import WarehouseLocked
    from warehouse.publish import DamagedRecord

    COMMAND_PROCESS = True
    exit_on_stop_signals()
    try:
        app()
    except SystemExit as done:
        if done.code in STOPPED_BY and sys.argv[1:2] != ["serve"]:  # serve says it stopped
            _say_stopped(done.code)
        raise
    except (DamagedRecord, RegistryError) as error:  # from any command: one line, not a traceback
        sys.exit(fail(str(error)).exit_code)
    except WarehouseRefused as error:  # a --warehouse that cannot be used as given: a mistaken argument
        sys.exit(fail(str(error), 2).exit_code)
    except WarehouseLocked as error:  # another writer, or a removal stopped part way
        sys.exit(fail(str(error), 3).exit_code)
    except Exception as error:
        if STOPPED:  # a signal's exception turned into another by the code it stopped
            _say_stopped(128 + STOPPED[0])
            sys.exit(128 + STOPPED[0])
        from warehouse.layout import Layout
        from warehouse.publish import WriteFailed

        if (said := store_error(error)) is not None and Layout.at(warehouse_argument(sys.argv[1:])).remote:
            sys.exit(fail(said).exit_code)
        if isinstance(error, WriteFailed) or (isinstance(error, OSError) and error.errno in WRITE_ERRORS):
            # A disk full or read-only, a write refused: one line naming the file, whatever command wrote.
            sys.exit(fail(said_of(error)).exit_code)
        if not read_error(error):
            raise
        # A reader's error seldom names the file it could not read: the check finds which, or it was
        # something else, whose traceback is kept.
        found = damage_found(error, Layout.at(warehouse_argument(sys.argv[1:])))
        if found is None:
            raise
        sys.exit(fail(found).exit_code)


# What the system says of a write it refused.
WRITE_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG})

# What to do about a write the system refused, by its errno.
WRITE_HINTS = {
    **dict.fromkeys(
        (errno.ENOSPC, errno.EDQUOT),
        "free some space there and run the command again: what was published stays whole",
    ),
    **dict.fromkeys(
        (errno.EROFS, errno.EACCES, errno.EPERM),
        "this user cannot write there: run as one who can, or give a --warehouse it can write to "
        "(sql and check only read)",
    ),
}


def said_of(error: BaseException) -> str:
    """`error` in one line, followed by what to do when it is a write the system refused (a disk full, a folder
    read-only or not this user's)."""
    hint = WRITE_HINTS.get(getattr(error, "errno", None))
    return f"{error}; {hint}" if hint else str(error)


# What pyarrow and DuckDB say of bytes that are not (whole) Parquet, or of a file not where it was, besides what
# polars says (`warehouse.publish.READ_DAMAGE`).
DAMAGE_WORDS = (
    "par1",
    "too small to be a parquet file",
    "don't know what type",
    "no files found that match",
)


def store_error(error: BaseException) -> str | None:
    """One line saying what an object store refused or why it could not be reached (no credentials, no such
    bucket, no answer at its endpoint, access denied), from `error` or what it was raised from; else None."""
    seen: BaseException | None = error
    while seen is not None:
        kind = type(seen).__name__
        if kind in ("NoCredentialsError", "PartialCredentialsError"):
            return (
                "the object store asks for credentials and none were found: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
            )
        if kind in ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError"):
            endpoint = str(getattr(seen, "kwargs", {}).get("endpoint_url", "")).split("?")[0]
            host = "/".join(endpoint.split("/")[:3]) or "its endpoint"
            return f"cannot reach the object store at {host} (AWS_ENDPOINT_URL?)"
        if isinstance(seen, FileNotFoundError) and "bucket does not exist" in str(seen).lower():
            return "the warehouse's bucket does not exist on this object store (is --warehouse spelled right?)"
        if isinstance(seen, PermissionError) or kind == "AccessDenied":
            return f"the object store refused access: {_one_line(seen)}"
        seen = seen.__cause__ or seen.__context__
    return None


def _one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return " ".join(lines[0].split()) if lines else type(error).__name__


def read_error(error: BaseException) -> bool:
    """Whether `error` is a reader's (polars, pyarrow, DuckDB) or the file system's."""
    import duckdb
    import polars as pl
    import pyarrow as pa

    return isinstance(error, (pl.exceptions.PolarsError, pa.ArrowException, duckdb.Error, OSError))


def damage_found(error: BaseException, layout: Layout) -> str | None:
    """One line naming the published files of `layout` that are not what their records say, with what the
    reader said; None when none is and the error does not speak of damaged bytes. The quick check first;
    every byte against its sha256 only when the error speaks of damage and the quick check finds none."""
    from warehouse.integrity import check_warehouse
    from warehouse.publish import READ_DAMAGE

    said = _one_line(error)
    damage = any(word in said.lower() for word in (*READ_DAMAGE, *DAMAGE_WORDS))
    if layout.remote or (layout.root / "_meta").is_dir():
        report = check_warehouse(layout, full=False)
        if not report.problems and damage:
            err.print(f"a file could not be read ({said}); checking {layout.root} …", highlight=False, soft_wrap=True)
            report = check_warehouse(layout, full=True)
        if report.problems:
            found = "; ".join(str(problem) for problem in report.problems[:3])
            more = f" (and {len(report.problems) - 3} more: multipolar check)" if len(report.problems) > 3 else ""
            return f"a published file is damaged: {found}{more} (the reader said: {said})"
    if damage:
        return f"a file could not be read ({said}), though every published file is as its record says"
    return None


def warehouse_argument(argv: list[str]) -> str | None:
    """The `--warehouse` given on the command line (the demo's own default for `demo`), else None."""
    for at, word in enumerate(argv):
        if word == "--warehouse" and at + 1 < len(argv):
            return argv[at + 1]
        if word.startswith("--warehouse="):
            return word.split("=", 1)[1]
    if argv[:1] == ["demo"]:
        from flows.demo import DEFAULT_WAREHOUSE

        return DEFAULT_WAREHOUSE
    return None


if __name__ == "__main__":
    # `python -m flows.cli` runs this file as `__main__`; the command modules registered on `flows.cli`.
    from flows.cli import main as _main

    _main()
