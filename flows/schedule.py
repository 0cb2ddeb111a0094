"""Scheduled refreshes: a Prefect server to schedule on, and the served daily deployment of `refresh`.

Prefect's temporary (ephemeral) server runs no scheduler, and Dask or Ray workers in other processes
cannot reach it, so when no `PREFECT_API_URL` is configured the commands here start a local
`prefect server start` for as long as they run and stop it when they exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect.settings import PREFECT_API_URL, PREFECT_HOME, get_current_settings, temporary_settings

from analytics.registry import RegistryError
from flows import progress
from flows.hub import HubError
from flows.refresh import refresh
from flows.scope import ScopeError
from flows.snapshot import NothingListed
from warehouse.contract import SchemaViolation
from warehouse.lock import WarehouseLocked
from warehouse.publish import DamagedRecord

DEPLOYMENT = "daily"
DEFAULT_CRON = "0 6 * * *"  # 06:00 UTC, after the Hub's daily download counters have settled
STARTUP_TIMEOUT = 120.0
STOP_GRACE = 20.0  # seconds a stopped server is given to exit before what is left of it is killed
SERVER_LOG = "multipolar-server.log"  # under PREFECT_HOME

# A scheduled run has nobody to re-run it by hand: retry the whole flow after transient failures
# (the Hub down for longer than the client's own retries, a manual refresh holding the writer lock).
# A retried crawl resumes from its checkpoint, and publishing a date twice is a no-op.
scheduled_refresh = refresh.with_options(retries=2, retry_delay_seconds=600)
# How long a scheduled run waits for another writer's lock before it fails (and is retried).
SCHEDULED_WAIT = 3600.0
# Failures whose message says all there is to say (what, where, what to do), as the commands print them.
ONE_LINE_FAILURES = (
    WarehouseLocked,
    DamagedRecord,
    HubError,
    NothingListed,
    SchemaViolation,
    RegistryError,
    ScopeError,
)


class OneLineFailures(logging.Filter):
    """Log a run's failure of `ONE_LINE_FAILURES` as its message alone: in a served schedule's log, a lock still
    held after the wait or the Hub down is one line an operator greps for, not a page of Prefect's traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        failure = record.exc_info[1] if record.exc_info else None
        if isinstance(failure, ONE_LINE_FAILURES):
            record.msg, record.args = "run failed: %s: %s", (type(failure).__name__, failure)
            record.exc_info, record.exc_text = None, None
        return True


# Prefect's run engine logs a failed run's exception on this logger; the flow's module is imported wherever
# a scheduled run executes (`serve`'s runner, a process work pool's subprocess).
logging.getLogger("prefect.flow_runs").addFilter(OneLineFailures())


class TaskFailureToldByItsRun(logging.Filter):
    """Leave out a task run's failure of `ONE_LINE_FAILURES` (its traceback): the flow run's one line tells it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ONE_LINE_FAILURES))


logging.getLogger("prefect.task_runs").addFilter(TaskFailureToldByItsRun())

# Set by `serve` for the runs it starts, each a process of its own (`python -m prefect.engine`): serve's pid.
SERVE_PID = "MULTIPOLAR_SERVE_PID"
# Set while a local server of this command's own runs (`prefect server start --no-ui`): its API's URL.
NO_UI = "MULTIPOLAR_SERVER_WITHOUT_UI"


class NoPageToView(logging.Filter):
    """Leave out Prefect's "View at <url>" line when the server it names serves no UI (a link to a 404)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("View at ")


def served_run() -> None:
    """Set up a run that `serve` started, in the run's own process: its crawl's progress lines and the
    pipeline's own lines go to the log serve shows, the client's retries are not told one by one, and the run
    stops as if killed when serve is gone (killed with `kill -9`, its Prefect server with it), rather than go on
    holding the writer lock and then wait on a server that is no more. A run stopped so resumes on the next."""
    own = logging.getLogger("multipolar")
    if not own.handlers:  # as Prefect's console handler writes its lines, on stderr, which serve shows
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s.%(msecs)03d | %(levelname)-7s | %(name)s - %(message)s", datefmt="%H:%M:%S")
        )
        own.addHandler(handler)
        own.setLevel(logging.INFO)
        own.propagate = False
    for name in ("huggingface_hub", "httpx", "httpx2"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if os.environ.get(NO_UI):
        logging.getLogger("prefect.flow_runs").addFilter(NoPageToView())
    progress.report_in_lines()  # the crawl's pages, models and rate every few seconds
    watched = int(os.environ[SERVE_PID])
    from warehouse.lock import let_go_before_dying

    def watch() -> None:
        while os.getppid() == watched:
            time.sleep(1.0)
        logging.getLogger("multipolar").error(
            "serve (pid %d) is gone: this run stops as if killed; the next run resumes its crawl", watched
        )
        let_go_before_dying()  # an object-store lock would outlive the run, refusing other hosts' writers
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="watch-serve", daemon=True).start()


class ServerFailed(RuntimeError):
    """The local Prefect server exited or did not answer its health check in time."""


@dataclass(frozen=True)
class LocalServer:
    """A `prefect server start` child process and where it answers."""

    url: str
    pid: int
    log: Path


def configured_api_url() -> str | None:
    """The Prefect API set by `PREFECT_API_URL` or the active profile, if any."""
    return os.environ.get("PREFECT_API_URL") or get_current_settings().api.url


def check_api(url: str, *, timeout: float = 10.0) -> None:
    """ServerFailed, in one line, when nothing answers at the configured Prefect API, or what answers is no
    Prefect API (its health check is not found, as when the URL lacks `/api`). Prefect Cloud's workspaces
    answer their health check differently and are left to say what they want."""
    import httpx

    shown = without_credentials(url)
    try:
        answer = httpx.get(f"{url.rstrip('/')}/health", timeout=timeout)
    except httpx.HTTPError as error:
        raise ServerFailed(
            f"no Prefect server answers at PREFECT_API_URL {shown} ({type(error).__name__}); start it, or unset "
            "PREFECT_API_URL to run with a server of this command's own"
        ) from None
    if "api.prefect.cloud" in url:
        return
    if answer.status_code != 200 or answer.text.strip() != "true":
        raise ServerFailed(
            f"PREFECT_API_URL {shown} is no Prefect API (its health check answered HTTP {answer.status_code}); "
            "does it end in /api?"
        )


def without_credentials(url: str) -> str:
    """`url` without the user and password it may carry, to be shown."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an URL that cannot be read)"
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="…@" + parts.netloc.rsplit("@", 1)[1]))


def scheduler_problem() -> str | None:
    """Why a server started from this environment would create no scheduled runs, if it would not."""
    from importlib.metadata import version

    installed = version("sqlalchemy")
    if tuple(int(part) for part in installed.split(".")[:2]) >= (2, 1):
        return (
            f"SQLAlchemy {installed} is installed, and Prefect 3.8.8's scheduler cannot insert scheduled runs "
            "with SQLAlchemy 2.1 ('Can't evaluate bulk DML statement'): no scheduled run will fire. "
            "Install sqlalchemy<2.1 (e.g. 2.0.58)."
        )
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def healthy(api_url: str, timeout: float = 2.0) -> bool:
    """Whether `GET <api>/health` answers `true`."""
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout) as response:
            return response.status == 200 and response.read().strip() == b"true"
    except (OSError, urllib.error.URLError, ValueError):
        return False


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the parent dies, even by SIGKILL (Linux only), so no server is orphaned."""
    if sys.platform == "linux":
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def local_server(port: int | None = None, *, timeout: float = STARTUP_TIMEOUT) -> Iterator[LocalServer]:
    """Run `prefect server start` on 127.0.0.1 (SQLite under PREFECT_HOME) for the block, then stop it."""
    port = port or free_port()
    home = Path(PREFECT_HOME.value()).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    # One log for every server started under this home, each start headed by a line: a daily refresh does
    # not leave a file a day behind.
    log = home / SERVER_LOG
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)
    env.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with open(log, "ab") as sink:
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        sink.write(f"--- {started} prefect server start on 127.0.0.1:{port} (multipolar pid {os.getpid()})\n".encode())
        sink.flush()
        process = subprocess.Popen(
            [*command, "--no-ui"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a Ctrl-C reaches us first, and we stop it in order
            preexec_fn=_die_with_parent,
        )
    server = LocalServer(url=f"http://127.0.0.1:{port}/api", pid=process.pid, log=log)
    try:
        _wait_until_healthy(process, server, timeout)
        yield server
    finally:
        _stop(process)


def _wait_until_healthy(process: subprocess.Popen, server: LocalServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not healthy(server.url, timeout=1.0):
        if process.poll() is not None:
            tail = " | ".join(server.log.read_text(errors="replace").strip().splitlines()[-3:])
            raise ServerFailed(f"prefect server exited with code {process.returncode}: {tail} (log: {server.log})")
        if time.monotonic() > deadline:
            raise ServerFailed(f"prefect server did not answer {server.url}/health within {timeout:.0f} s")
        time.sleep(0.25)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group, then SIGKILL whatever is left after `STOP_GRACE` seconds."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_GRACE)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # stragglers in its group, if any
    process.wait()


@contextlib.contextmanager
def exit_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into SystemExit for the block, so `finally` clauses (stopping the server) run."""

    def _exit(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _exit)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)
    else:
        yield


@contextlib.contextmanager
def prefect_api(*, on_start: Any = None) -> Iterator[str]:
    """The API to run against: the configured `PREFECT_API_URL`, else a local server started for the block.

    The URL is exported to this process's settings and environment, so that subprocesses it starts
    (served flow runs, Dask or Ray workers) report to the same server.
    """
    configured = configured_api_url()
    if configured:
        check_api(configured)
        yield configured
        return
    with exit_on_sigterm(), local_server() as server:
        if on_start is not None:
            on_start(server)
        previous = os.environ.get("PREFECT_API_URL")
        os.environ["PREFECT_API_URL"] = server.url
        os.environ[NO_UI] = server.url  # runs started here link to no page: this server serves no UI
        try:
            with temporary_settings(updates={PREFECT_API_URL: server.url}):
                try:
                    yield server.url
                finally:
                    drain_prefect_clients()
        finally:
            os.environ.pop(NO_UI, None)
            if previous is None:
                os.environ.pop("PREFECT_API_URL", None)
            else:
                os.environ["PREFECT_API_URL"] = previous


def drain_prefect_clients(timeout: float = 10.0) -> None:
    """Send the logs and events still queued in this process before their server goes away.

    Otherwise Prefect's exit hooks try to reach the stopped server and retry for a minute or more.
    """
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        with contextlib.suppress(Exception):
            worker.drain_all(timeout=timeout)


def deployment_parameters(
    scope: str, warehouse: str | None, endpoint: str | None, wait_seconds: float = SCHEDULED_WAIT
) -> dict[str, Any]:
    """What every scheduled run is called with. No `day`: each run crawls the date it began on (UTC), retries
    included. A run that finds another writer at work (an analyst's recompute, a removal) waits for it, up to
    `wait_seconds`."""
    from warehouse.layout import resolve_root

    parameters: dict[str, Any] = {
        "scope": scope,
        "warehouse": str(resolve_root(warehouse)),
        "wait_seconds": wait_seconds,
    }
    if endpoint:
        parameters["endpoint"] = endpoint
    return parameters


def refresh_deployment(
    *,
    cron: str | None = DEFAULT_CRON,
    interval: float | None = None,
    scope: str = "full",
    warehouse: str | None = None,
    endpoint: str | None = None,
    name: str = DEPLOYMENT,
    dashboard: bool = True,
    wait_seconds: float = SCHEDULED_WAIT,
):
    """The `refresh/<name>` deployment: the retrying refresh on a UTC cron or an interval in seconds."""
    from prefect.deployments.runner import EntrypointType
    from prefect.schedules import Cron, Interval

    schedule = Interval(interval, timezone="UTC") if interval else Cron(cron or DEFAULT_CRON, timezone="UTC")
    parameters = deployment_parameters(scope, warehouse, endpoint, wait_seconds)
    if not dashboard:
        parameters["dashboard"] = False
    deployment = scheduled_refresh.to_deployment(
        name=name,
        schedules=[schedule],
        parameters=parameters,
        description="Crawl the Hub and publish the day's snapshot, attributions, metrics and dashboard.",
        tags=["multipolar"],
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    # Run this module's retrying variant, not the interactive `flows.refresh.refresh` it was derived from.
    deployment.entrypoint = f"{__name__}.scheduled_refresh"
    return deployment


@dataclass(frozen=True)
class Leftovers:
    """What an earlier serve of the deployment left in the Prefect database, and what was done with it."""

    removed: int  # runs scheduled (or waiting to retry) with that serve's parameters, deleted
    crashed: int  # runs it left running or pending when it stopped, marked crashed


def clear_leftovers(deployment: Any) -> Leftovers:
    """Delete the runs an earlier serve of `deployment` scheduled and never started (they carry its parameters:
    another endpoint or warehouse), and mark the runs it left running when it stopped as crashed (they would
    show as running for ever). The schedule makes its runs afresh with the parameters given now."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.exceptions import ObjectNotFound
    from prefect.states import Crashed

    waiting, started = [StateType.SCHEDULED], [StateType.RUNNING, StateType.PENDING]
    with get_client(sync_client=True) as client:
        try:
            known = client.read_deployment_by_name(f"{scheduled_refresh.name}/{deployment.name}")
        except ObjectNotFound:
            return Leftovers(0, 0)
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[known.id])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=waiting + started))
            ),
        )
        unstarted = [run for run in runs if run.state_type in waiting]
        for run in unstarted:
            client.delete_flow_run(run.id)
        for run in runs:
            if run.state_type not in waiting:
                client.set_flow_run_state(run.id, Crashed(message="its serve process stopped"), force=True)
    return Leftovers(len(unstarted), len(runs) - len(unstarted))


def serve(deployment: Any) -> None:
    """Serve the deployment until interrupted: one run at a time, its schedule paused on shutdown.

    Prefect's runner answers SIGTERM with `sys.exit(0)`: that is turned into the exit a process stopped by
    SIGTERM makes (143), so a supervisor sees the service was stopped rather than finished. The connections
    its shutdown cancels are not logged as errors."""
    from prefect import serve as prefect_serve

    shutdown_noise = _CancelledOnShutdown()
    logging.getLogger("asyncio").addFilter(shutdown_noise)
    try:
        with warnings.catch_warnings():
            # Prefect's SIGTERM handler calls the runner's async `stop` without awaiting it; `serve` stops the
            # runner itself as it unwinds.
            warnings.filterwarnings("ignore", "coroutine 'Runner.astop' was never awaited", RuntimeWarning)
            prefect_serve(deployment, limit=1, pause_on_shutdown=True, print_starting_message=False)
        # It returns only once interrupted (Ctrl-C): the exit a process stopped by SIGINT makes.
        raise SystemExit(128 + signal.SIGINT)
    except SystemExit as stop:
        if stop.code in (0, None):  # Prefect's handler of SIGTERM
            raise SystemExit(128 + signal.SIGTERM) from None
        raise
    finally:
        logging.getLogger("asyncio").removeFilter(shutdown_noise)


class _CancelledOnShutdown(logging.Filter):
    """Drops asyncio's report of a callback whose task was cancelled (the runner's control channel, cancelled
    as it shuts down): nothing failed."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, asyncio.CancelledError)


if os.environ.get(SERVE_PID, "").isdigit() and int(os.environ[SERVE_PID]) == os.getppid():
    served_run()
