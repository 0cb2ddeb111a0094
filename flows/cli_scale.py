"""Scale commands: `demo` and `bench`."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from flows import cli
from flows.cli import app, fail, out, quiet_prefect


@app.command()
def demo(
    days: Annotated[int, typer.Option(help="Daily refreshes to run.", min=1)] = 7,
    models: Annotated[int, typer.Option(help="Models in the synthetic Hub (about).", min=1)] = 20_000,
    warehouse: Annotated[
        str | None, typer.Option("--warehouse", help="Warehouse root (default: ./demo-data, never ./data).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic worlds.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Replace dates the demo warehouse already holds.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's and the client's logs.")] = False,
) -> None:
    """Offline demo: refresh a synthetic Hub day by day through the real flow, then show the dashboard."""
    quiet_prefect(verbose)
    from flows.demo import DemoDay, DemoRefused, demo_layout, run_demo, summary_lines

    def progress(day: DemoDay) -> None:
        done = (
            f"kept {day.day}: already published, {day.models} models (--force replaces it)"
            if day.kept
            else f"refreshed {day.day}: {day.models} models, {day.requests} requests, {day.seconds:.1f} s"
        )
        out.print(
            done,
            highlight=False,
            soft_wrap=True,
        )

    out.print(
        f"demo: {days} days of a synthetic Hub of about {models:,} models → {demo_layout(warehouse).root}",
        highlight=False,
        soft_wrap=True,
    )
    from flows.schedule import ServerFailed, prefect_api

    # The command's own Prefect server, which dies with it even by SIGKILL (Prefect's temporary one outlives it).
    server = prefect_api() if cli.COMMAND_PROCESS else contextlib.nullcontext()
    try:
        with server:
            result = run_demo(days, models, warehouse, seed, force=force, on_day=progress)
    except DemoRefused as error:
        raise fail(str(error), 2) from None
    except ServerFailed as error:
        raise fail(str(error)) from None
    for line in summary_lines(result):
        out.print(line, highlight=False, soft_wrap=True)
    out.print(f"dashboard: {result.dashboard}", highlight=False, soft_wrap=True)


@app.command()
def bench(
    models: Annotated[int | None, typer.Option(help="Models in the benchmark world (default 3,000,000).")] = None,
    days: Annotated[int | None, typer.Option(help="Daily snapshots in the query history (default 90).")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="300,000 models and 5 days: a few minutes.")] = False,
    out_file: Annotated[Path, typer.Option("--out", help="Report to write.")] = Path("BENCHMARKS.md"),
    latency: Annotated[
        float | None,
        typer.Option(help="Seconds the stand-in Hub adds to every page (default 0.2)."),
    ] = None,
    work: Annotated[
        Path | None, typer.Option(help="Scratch folder (default: a temporary one, removed afterwards).")
    ] = None,
) -> None:
    """Measure crawl, analytics and warehouse queries against the design's limits; write BENCHMARKS.md."""
    quiet_prefect(False)
    from flows.bench import BenchError, BenchPlan, run_bench

    plan = BenchPlan.of(models=models, days=days, quick=quick, latency=latency, out=out_file, work=work)
    if plan.models < 1000 or plan.days < 2:
        raise fail("the benchmark needs at least 1000 models and 2 days", 2)
    if not plan.latency > 0 or plan.latency == float("inf"):  # NaN too
        raise fail("--latency: give seconds above 0; the crawl's time is measured against the latency injected", 2)
    try:
        report = run_bench(plan, say=lambda line: out.print(line, highlight=False, soft_wrap=True))
    except BenchError as error:
        raise fail(str(error), 2) from None
    out.print(f"wrote {report}", highlight=False, soft_wrap=True)
