"""Scheduling and scale-out commands: `serve` and `recompute`."""

from __future__ import annotations

import contextlib
import os
import time
from typing import Annotated

import typer

from flows import cli
from flows.cli import WarehouseOpt, app, err, fail, out, quiet_prefect, refuse_a_file_warehouse


def _announce(server) -> None:
    err.print(f"started a Prefect server at {server.url} (pid {server.pid}, log {server.log})", highlight=False)


def _announce_scheduler(server) -> None:
    from flows.schedule import scheduler_problem

    _announce(server)
    problem = scheduler_problem()
    if problem:
        err.print(f"[bold yellow]warning:[/] {problem}", highlight=False, soft_wrap=True)


@app.command()
def serve(
    cron: Annotated[str | None, typer.Option(help="Cron schedule in UTC (default: daily at 06:00).")] = None,
    interval: Annotated[
        float | None, typer.Option(help="Run every SECONDS instead of on a cron schedule.", min=1)
    ] = None,
    scope: Annotated[str, typer.Option(help="full | top:N | orgs:NAME,NAME | orgs:@FILE")] = "full",
    warehouse: WarehouseOpt = None,
    endpoint: Annotated[
        str | None, typer.Option(help="Hub endpoint (default: $HF_ENDPOINT or https://huggingface.co).")
    ] = None,
    name: Annotated[str, typer.Option(help="Deployment name (runs appear as refresh/NAME).")] = "daily",
    wait: Annotated[
        float | None,
        typer.Option("--wait", help="Seconds a run waits for another writer's lock (default: an hour).", min=0),
    ] = None,
    no_dashboard: Annotated[bool, typer.Option("--no-dashboard", help="Skip writing the dashboard.")] = False,
) -> None:
    """Refresh on a schedule until stopped (starts a local Prefect server unless PREFECT_API_URL is set)."""
    if cron and interval:
        raise fail("give --cron or --interval, not both", 2)
    from flows import hub
    from flows.scope import ScopeError, parse_scope

    try:
        parse_scope(scope)
        chosen = hub.resolve_endpoint(endpoint)  # refused as a refresh refuses it, before anything is stored
    except (ScopeError, hub.HubError) as error:
        raise fail(str(error), 2) from None
    # A long-running service should show its runs; `--verbose`-style logs by default, but for the client's
    # retries (told at the end, in one line).
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "INFO")
    quiet_prefect(verbose=True)
    os.environ["HF_HUB_VERBOSITY"] = "error"
    # The runs serve starts know it by its pid, and stop when it is gone (`flows.schedule.served_run`).
    from flows.schedule import SERVE_PID

    os.environ[SERVE_PID] = str(os.getpid())
    from prefect.client.schemas.schedules import CronSchedule

    from flows import schedule

    try:
        if cron is not None and len(cron.split()) != 5:
            raise ValueError(cron)
        cron = cron or schedule.DEFAULT_CRON
        CronSchedule(cron=cron, timezone="UTC")
    except ValueError:
        raise fail(f"--cron {cron!r} is not a cron schedule (five fields: minute hour day month weekday)", 2) from None
    refuse_a_file_warehouse(warehouse)

    began = time.monotonic()
    try:
        with schedule.prefect_api(on_start=_announce_scheduler) as api:
            deployment = schedule.refresh_deployment(
                cron=cron,
                interval=interval,
                scope=scope,
                warehouse=warehouse,
                endpoint=endpoint,
                name=name,
                dashboard=not no_dashboard,
                wait_seconds=schedule.SCHEDULED_WAIT if wait is None else wait,
            )
            left = schedule.clear_leftovers(deployment)
            cleared = []
            if left.removed:
                cleared.append(f"removed {left.removed} run(s) an earlier serve scheduled with its own parameters")
            if left.crashed:
                cleared.append(f"marked {left.crashed} run(s) it left running as crashed")
            if cleared:
                err.print("; ".join(cleared), highlight=False)
            when = f"every {interval:g} s" if interval else f"cron {cron!r} UTC"
            err.print(
                f"serving refresh/{name} · {when} · scope {scope} · {chosen} → {deployment.parameters['warehouse']} "
                f"· {api} "
                f"(ready after {time.monotonic() - began:.1f} s; Ctrl-C to stop)",
                highlight=False,
            )
            try:
                schedule.serve(deployment)
            finally:
                _let_go_of_a_stopped_run(deployment.parameters["warehouse"])
                err.print("stopped serving", highlight=False)
    except schedule.ServerFailed as error:
        raise fail(str(error)) from None


def _let_go_of_a_stopped_run(warehouse: str) -> None:
    """Prefect kills the run serve started as serve stops, before the run lets an object-store lock go: serve
    removes it, as other hosts' writers would otherwise be refused until the lock's TTL."""
    from warehouse.layout import Layout
    from warehouse.lock import let_go_of_gone_runs

    try:
        if let_go_of_gone_runs(Layout.at(warehouse)):
            err.print("let go of the writer lock of the run it stopped; the next run resumes it", highlight=False)
    except Exception as error:  # the store may not answer: serve stops all the same, the lock goes at its TTL
        err.print(f"could not let go of the writer lock of the run it stopped: {error}", highlight=False)


@app.command()
def recompute(
    runner: Annotated[str, typer.Option(help="Task runner: threads | dask | ray.")] = "threads",
    workers: Annotated[int, typer.Option(help="Threads, or Dask/Ray worker processes.", min=1)] = 4,
    address: Annotated[
        str | None, typer.Option(help="Address of a running Dask scheduler or Ray cluster (default: start one).")
    ] = None,
    warehouse: WarehouseOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Recompute dates that are up to date too.")] = False,
    no_dashboard: Annotated[bool, typer.Option("--no-dashboard", help="Skip writing the dashboard.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's logs.")] = False,
) -> None:
    """Recompute attributions and metrics of every published date in parallel (a backfill), then crossovers."""
    quiet_prefect(verbose)
    from flows.recompute import RUNNERS

    if runner not in RUNNERS:
        raise fail(f"--runner {runner!r}: use {', '.join(RUNNERS)}", 2)
    if address and runner == "threads":
        raise fail("--address names a Dask scheduler or Ray cluster: give --runner dask or --runner ray with it", 2)
    from analytics.registry import RegistryError, load_registry
    from flows import schedule
    from flows.recompute import RunnerUnavailable, runner_needs_server, task_runner
    from flows.recompute import recompute as recompute_flow
    from flows.refresh import describe
    from warehouse.lock import WarehouseLocked
    from warehouse.tables import MODELS

    try:
        chosen = task_runner(runner, workers, address)
    except RunnerUnavailable as error:
        raise fail(str(error), 2) from None
    layout = cli.published_warehouse(warehouse)
    days = layout.published_dates(MODELS)
    if not days:
        raise fail(f"no snapshot is published in {layout.root}; run `multipolar refresh` first")
    try:  # refused before a server or a worker starts, as a refresh refuses it before its crawl
        load_registry()
    except RegistryError as error:
        raise fail(str(error)) from None
    # Dask and Ray workers are other processes: they need a real server, not Prefect's temporary one.
    if runner_needs_server(runner):
        api = schedule.prefect_api(on_start=_announce)
    elif cli.COMMAND_PROCESS:
        # The command's own server, which dies with it even by SIGKILL (Prefect's temporary one outlives it).
        api = schedule.prefect_api()
    else:
        api = contextlib.nullcontext()
        if configured := schedule.configured_api_url():
            try:
                schedule.check_api(configured)
            except schedule.ServerFailed as error:
                raise fail(str(error)) from None
    span = f"{days[0]} … {days[-1]}"
    err.print(f"recompute {_dates(len(days))} ({span}) on {runner} ({workers} workers)", highlight=False)
    began = time.monotonic()
    try:
        with api:
            summary = recompute_flow.with_options(task_runner=chosen)(
                warehouse=str(layout.root), force=force, dashboard=not no_dashboard
            )
    except WarehouseLocked as error:
        raise fail(str(error), 3) from None
    except RegistryError as error:
        raise fail(str(error)) from None
    except schedule.ServerFailed as error:
        raise fail(str(error)) from None
    # A date whose every step was current already is counted, not listed.
    made = {
        day: outcomes
        for day, outcomes in summary["dates"].items()
        if any(outcome.get("status") != "already published" for outcome in outcomes.values())
    }
    for day, outcomes in made.items():
        line = "; ".join(f"{k} {describe(v)}" for k, v in outcomes.items())
        out.print(f"{day}: {line}", highlight=False, soft_wrap=True)
    if "dashboard" in summary:
        out.print(f"dashboard: {describe(summary['dashboard'])}", highlight=False)
    dates, took = len(summary["dates"]), f"{time.monotonic() - began:.1f} s with startup"
    if made:
        out.print(
            f"recomputed {len(made)} of {_dates(dates)} on {runner} in {summary['seconds']} s "
            f"(per-date steps {summary['seconds_per_date_steps']} s; {took})",
            highlight=False,
        )
    else:
        out.print(f"{_dates(dates)} up to date; nothing recomputed ({took})", highlight=False)


def _dates(count: int) -> str:
    return f"{count} date{'s' if count != 1 else ''}"
