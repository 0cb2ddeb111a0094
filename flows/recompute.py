"""The recompute flow: attributions and metrics of many dates at once (a backfill) on a chosen task runner.

Each date's attributions and metrics depend only on that date's and the previous date's `models`, so
dates fan out as one task each; crossovers read the shares of every earlier date, so they follow in
date order in the flow itself, and the dashboard is drawn once at the end.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import datetime as dt
import time
from typing import Any

from prefect import flow, task, unmapped
from prefect.cache_policies import NONE
from prefect.task_runners import ThreadPoolTaskRunner

from flows import steps
from flows.refresh import crossovers, dashboard_task, reproduce
from warehouse.layout import Layout
from warehouse.lock import writer_lock
from warehouse.publish import records_kept
from warehouse.tables import MODELS

RUNNERS = ("threads", "dask", "ray")


class RunnerUnavailable(RuntimeError):
    """The task runner asked for is not installed."""


@task(name="recompute-date", cache_policy=NONE)
def recompute_date(warehouse: str, day: dt.date, force: bool) -> dict[str, Any]:
    """Attribute and measure one date's snapshot; return what each step did."""
    layout = Layout.at(warehouse)
    return {
        "attribute": steps.attribute_date(layout, day, force=force),
        "metrics": steps.metrics_date(layout, day, force=force),
    }


@flow(name="recompute", task_runner=ThreadPoolTaskRunner(max_workers=4), validate_parameters=True)
def recompute(
    warehouse: str | None = None,
    dates: list[dt.date] | None = None,
    force: bool = False,
    dashboard: bool = True,
) -> dict[str, Any]:
    """Recompute attributions, metrics and crossovers of every published date (or `dates`), then the reproduction
    report and the dashboard."""
    began = time.monotonic()
    layout = Layout.at(warehouse)
    root = str(layout.root)
    with writer_lock(layout, "recompute"):
        # The dates as published once no other writer can change them.
        published = layout.published_dates(MODELS)
        days = sorted(dates) if dates else published
        missing = [d.isoformat() for d in days if d not in published]
        if missing:
            raise ValueError(f"no snapshot is published for {', '.join(missing)} in {layout.root}")
        # The code's hashes, which every date's steps compare, are made here once: CPython 3.11 cannot parse code
        # in several threads at once ("AST constructor recursion depth mismatch").
        code_versions()
        futures = recompute_date.map(root, days, unmapped(force))
        try:
            done: dict[str, Any] = {d.isoformat(): future.result() for d, future in zip(days, futures, strict=True)}
        finally:
            settle(futures)
        computed = round(time.monotonic() - began, 2)
        # Each date's crossovers read the records and shares of every date before: each is read once, and read
        # again only once written again.
        kept: dict = {}
        with records_kept():
            for d in days:
                done[d.isoformat()]["crossovers"] = crossovers(root, d, force, kept)
        report = reproduce(root)
        outcome = dashboard_task(root, force) if dashboard else None
    summary: dict[str, Any] = {"warehouse": root, "dates": done, "seconds_per_date_steps": computed}
    summary["reproduce"] = report
    if outcome is not None:
        summary["dashboard"] = outcome
    summary["seconds"] = round(time.monotonic() - began, 2)
    return summary


def settle(futures: list[Any]) -> None:
    """Return once no date's task still runs: those not begun are cancelled, the others waited for. A run stopped
    (SIGTERM, a failed date) lets the writer lock go only then, not while its threads or workers still publish
    partitions that another writer, taking the lock, would clear from staging or write over. A second SIGTERM or
    Ctrl-C while it waits (Prefect's handler of SIGTERM, and Python's of SIGINT, raise at each one) is raised
    only once they are done."""
    from prefect.exceptions import ExternalSignal

    stopped: BaseException | None = None
    while True:
        try:
            _settle(futures)
            break
        except (KeyboardInterrupt, SystemExit, ExternalSignal) as signalled:  # waited for all the same, then raised
            stopped = stopped or signalled
    if stopped is not None:
        raise stopped


def _settle(futures: list[Any]) -> None:
    threads = [f.wrapped_future for f in futures if isinstance(getattr(f, "wrapped_future", None), cf.Future)]
    for future in threads:
        future.cancel()  # a task not begun; one running goes on to its end
    cf.wait(threads)
    for future in futures:
        if not isinstance(getattr(future, "wrapped_future", None), cf.Future):  # a Dask or Ray task
            with contextlib.suppress(Exception):
                future.wait()


def code_versions() -> tuple[str, ...]:
    """The hashes of the code that makes attributions, metrics and crossovers, each made once per process."""
    from analytics.attribution import code_hash, rules_version

    return rules_version(), code_hash(steps.METRICS_CODE), code_hash(steps.CROSSOVERS_CODE)


def task_runner(kind: str, workers: int = 4, address: str | None = None):
    """A Prefect task runner: threads in this process, or a Dask or Ray cluster (local unless `address`)."""
    if kind == "threads":
        return ThreadPoolTaskRunner(max_workers=workers)
    if kind == "dask":
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError:
            raise RunnerUnavailable(
                "--runner dask needs prefect-dask: pip install 'prefect-dask==0.3.7' (or uv sync --extra scale)"
            ) from None
        if address:
            check_address(address, "Dask scheduler", 8786)
            return DaskTaskRunner(address=address)
        return DaskTaskRunner(
            cluster_class="distributed.LocalCluster",
            # Processes, not threads: each date's polars work runs in its own worker process.
            cluster_kwargs={
                "n_workers": workers,
                "processes": True,
                "threads_per_worker": 1,
                "dashboard_address": None,
            },
        )
    if kind == "ray":
        try:
            from prefect_ray import RayTaskRunner
        except ImportError:
            raise RunnerUnavailable(
                "--runner ray needs prefect-ray and Ray: pip install 'prefect-ray==0.6.0' "
                "(it brings ray; a large install, not part of the default environment)"
            ) from None
        if address:
            check_address(address, "Ray cluster", 10001)
            return RayTaskRunner(address=address)
        return RayTaskRunner(init_kwargs={"num_cpus": workers})
    raise ValueError(f"unknown task runner {kind!r}: use {', '.join(RUNNERS)}")


def check_address(address: str, what: str, default_port: int, *, timeout: float = 5.0) -> None:
    """RunnerUnavailable, in one line, when nothing answers at a cluster's `address` (`tcp://host:port`,
    `ray://host:port` or `host:port`); the runner would otherwise wait for it, then fail in a long traceback."""
    import socket
    from urllib.parse import urlsplit

    from flows.schedule import without_credentials

    shown = without_credentials(address)
    try:
        parts = urlsplit(address if "://" in address else f"tcp://{address}")
        port = parts.port or default_port
        with socket.create_connection((parts.hostname or "", port), timeout=timeout):
            return
    except (OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        raise RunnerUnavailable(f"cannot reach the {what} at --address {shown}: {reason}") from None


def runner_needs_server(kind: str) -> bool:
    """Whether the runner's workers live in other processes, which cannot reach Prefect's temporary server."""
    return kind in ("dask", "ray")
