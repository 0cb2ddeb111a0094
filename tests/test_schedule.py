"""Scheduled refreshes and scale-out: the served schedule, a process work pool, recompute on threads and Dask."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import psutil
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from flows import schedule
from flows.cli import app
from flows.refresh import refresh
from flows.rows import model_rows
from flows.standin_hub import StandinHub
from flows.synthetic.world import worlds
from tests.worlds import world
from warehouse.layout import Layout
from warehouse.lock import WarehouseLocked, writer_at_work, writer_lock
from warehouse.publish import publish_frame, sha256_of
from warehouse.tables import CONCENTRATION, CROSSOVERS, MODELS, SHARES

REPO = Path(__file__).resolve().parents[1]
# The command modules register on `flows.cli.app`, so start the CLI through it.
CLI = [sys.executable, "-c", "from flows.cli import main; main()"]
runner = CliRunner()

needs_working_scheduler = pytest.mark.skipif(
    schedule.scheduler_problem() is not None, reason=str(schedule.scheduler_problem())
)


def child_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "0", **extra}
    env.pop("HF_TOKEN", None)
    return env


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def wait_for(path_of, timeout: float) -> Path | None:
    """The first existing path among `path_of()`'s answers within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [p for p in path_of() if p.is_file()]
        if found:
            return found[0]
        time.sleep(0.2)
    return None


def test_a_scheduled_run_crawls_the_day_it_runs_on(tmp_path) -> None:
    deployment = schedule.refresh_deployment(interval=5, scope="top:10", warehouse=str(tmp_path), endpoint="http://x")
    assert "day" not in deployment.parameters
    assert deployment.parameters == {
        "scope": "top:10",
        "warehouse": str(tmp_path.resolve()),
        "endpoint": "http://x",
        "wait_seconds": 3600.0,  # another writer at work is waited for, not failed on and retried 10 min later
    }
    assert deployment.entrypoint == "flows.schedule.scheduled_refresh"
    assert deployment.schedules[0].schedule.interval == dt.timedelta(seconds=5)


def test_the_default_schedule_is_daily_at_six_utc(tmp_path) -> None:
    deployment = schedule.refresh_deployment(warehouse=str(tmp_path))
    cron = deployment.schedules[0].schedule
    assert (cron.cron, cron.timezone) == ("0 6 * * *", "UTC")
    assert deployment.parameters == {"scope": "full", "warehouse": str(tmp_path.resolve()), "wait_seconds": 3600.0}


def test_scheduled_refreshes_retry_the_whole_flow_but_interactive_ones_do_not() -> None:
    assert (schedule.scheduled_refresh.retries, schedule.scheduled_refresh.retry_delay_seconds) == (2, 600)
    assert schedule.scheduled_refresh.name == refresh.name == "refresh"
    assert not refresh.retries


def test_a_scheduled_run_that_finds_the_lock_held_logs_its_failure_in_one_line(tmp_path) -> None:
    logged = io.StringIO()
    handler = logging.StreamHandler(logged)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    runs = logging.getLogger("prefect.flow_runs")
    runs.addHandler(handler)
    try:
        with writer_lock(Layout.at(str(tmp_path)), "an analyst's recompute"):
            with pytest.raises(WarehouseLocked):
                schedule.scheduled_refresh.with_options(retries=0)(
                    endpoint="http://127.0.0.1:9", warehouse=str(tmp_path), wait_seconds=0
                )
    finally:
        runs.removeHandler(handler)
    failed = [line for line in logged.getvalue().splitlines() if line.startswith("ERROR")]
    assert len(failed) == 1, logged.getvalue()
    assert failed[0].startswith("ERROR run failed: WarehouseLocked: ") and "an analyst's recompute" in failed[0]
    assert "Traceback" not in logged.getvalue()


def test_prefect_yaml_deploys_the_retrying_refresh_to_the_process_pool() -> None:
    import yaml

    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    (daily,) = config["deployments"]
    assert daily["entrypoint"] == "flows/schedule.py:scheduled_refresh"
    assert daily["work_pool"]["name"] == "multipolar" and daily["parameters"]["wait_seconds"] == schedule.SCHEDULED_WAIT
    assert set(daily["parameters"]) == {"scope", "warehouse", "wait_seconds"}
    assert daily["schedules"][0] == {"cron": "0 6 * * *", "timezone": "UTC", "active": True}


def test_serve_refuses_cron_and_interval_together() -> None:
    result = runner.invoke(app, ["serve", "--cron", "0 6 * * *", "--interval", "60"])
    assert result.exit_code == 2 and "not both" in result.output


def test_serve_without_cron_serves_on_the_schedule_the_deployment_defaults_to(tmp_path, monkeypatch) -> None:
    """One default schedule: the one `serve` validates, deploys and tells is the deployment's own."""
    made = {}

    def deployment(**given):
        made.update(given)
        return SimpleNamespace(parameters={"warehouse": given["warehouse"]})

    monkeypatch.setattr(schedule, "DEFAULT_CRON", "5 4 * * *")
    monkeypatch.setattr(schedule, "prefect_api", lambda on_start: contextlib.nullcontext("a stand-in API"))
    monkeypatch.setattr(schedule, "refresh_deployment", deployment)
    monkeypatch.setattr(schedule, "clear_leftovers", lambda _: SimpleNamespace(removed=0, crashed=0))
    monkeypatch.setattr(schedule, "serve", lambda _: None)
    monkeypatch.setattr(os, "environ", os.environ.copy())  # what serve sets is gone after the test
    result = runner.invoke(app, ["serve", "--warehouse", str(tmp_path), "--endpoint", "http://127.0.0.1:9"])
    assert result.exit_code == 0, result.output
    assert made["cron"] == "5 4 * * *" and "cron '5 4 * * *' UTC" in result.output


def test_recompute_refuses_an_unknown_runner() -> None:
    result = runner.invoke(app, ["recompute", "--runner", "spark"])
    assert result.exit_code == 2 and "use threads, dask, ray" in result.output


def test_the_ray_runner_says_how_to_install_it_when_missing(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "prefect_ray", None)  # as if not installed
    result = runner.invoke(app, ["recompute", "--runner", "ray"])
    assert result.exit_code == 2 and "pip install 'prefect-ray==0.6.0'" in result.output


@pytest.mark.slow
@needs_working_scheduler
def test_a_served_schedule_publishes_todays_snapshot_then_stops_its_server(tmp_path) -> None:
    warehouse, logs = tmp_path / "wh", tmp_path / "serve.log"
    env = child_env(PREFECT_HOME=str(tmp_path / "prefect"))
    env.pop("PREFECT_API_URL", None)
    layout = Layout.at(warehouse)
    with StandinHub(world(500), page_size=100) as hub, logs.open("w") as log:
        began = time.monotonic()
        args = ["serve", "--interval", "5", "--endpoint", hub.url, "--warehouse", str(warehouse), "--no-dashboard"]
        proc = subprocess.Popen(
            [*CLI, *args], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True
        )
        try:
            days = lambda: {today() - dt.timedelta(days=1), today()}  # noqa: E731 - a run may straddle midnight
            published = wait_for(lambda: [layout.meta_file(MODELS, d) for d in days()], 240)
            first_snapshot = time.monotonic() - began
            assert published is not None, logs.read_text()[-3000:]
            day = dt.date.fromisoformat(published.stem)
            assert wait_for(lambda: [layout.meta_file(CROSSOVERS, day)], 120), logs.read_text()[-3000:]
            family = psutil.Process(proc.pid).children(recursive=True)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    output = logs.read_text()
    # stopped by SIGTERM, and says so: exit 143 (a supervisor sees it stopped), no shutdown tracebacks
    assert proc.returncode == 143 and "stopped serving" in output, output[-3000:]
    assert "Traceback" not in output and "never awaited" not in output, output[-3000:]
    server_pid = int(re.search(r"started a Prefect server at \S+ \(pid (\d+)", output).group(1))
    assert server_pid in {p.pid for p in family}
    _, alive = psutil.wait_procs(family, timeout=30)
    assert alive == [], f"left running: {alive}"
    meta = json.loads(layout.meta_file(MODELS, day).read_text())
    assert meta["rows"] == 500 and meta["endpoint"] == hub.url
    print(f"\nserve: first scheduled snapshot published {first_snapshot:.1f} s after start")


@pytest.mark.usefixtures("hub_online")
def test_a_served_run_tells_its_crawl_and_stops_when_serve_is_killed(tmp_path) -> None:
    """A run serve started tells its crawl's progress in its log, links to no page its server does not serve, and,
    serve killed with `kill -9` (its Prefect server with it), stops as if killed too: the writer lock is free
    at once, and the next refresh resumes the crawl."""
    from flows import standin_faults as faults

    warehouse, logs = tmp_path / "wh", tmp_path / "serve.log"
    env = child_env(PREFECT_HOME=str(tmp_path / "prefect"))
    env.pop("PREFECT_API_URL", None)
    with StandinHub(world(800), page_size=50, faults=[faults.latency(0.5)]) as hub, logs.open("w") as log:
        args = ["serve", "--interval", "5", "--endpoint", hub.url, "--warehouse", str(warehouse), "--no-dashboard"]
        proc = subprocess.Popen(
            [*CLI, *args], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 240
            while "crawl: " not in logs.read_text() and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.2)
            assert "crawl: " in logs.read_text(), logs.read_text()[-3000:]
            runs = [p for p in psutil.Process(proc.pid).children(recursive=True) if "prefect.engine" in p.cmdline()]
            assert len(runs) == 1, logs.read_text()[-3000:]
        finally:
            proc.kill()  # serve alone, as the OOM killer would
            proc.wait(timeout=30)
        _, alive = psutil.wait_procs(runs, timeout=15)
        assert alive == [], "the run went on without serve"
        with writer_lock(Layout.at(warehouse), "after serve was killed"):
            pass
        served = len(hub.listing_requests())
        assert 0 < served < 16
        (staged,) = (warehouse / "_staging" / "crawl").iterdir()
        kept = json.loads((staged / "checkpoint.json").read_text())["pages"]
        assert served - 1 <= kept <= served  # no more than the one page in flight when serve was killed is lost
        hub.reset_log()
        resumed = runner.invoke(
            app,
            ["refresh", "--endpoint", hub.url, "--warehouse", str(warehouse), "--date", staged.name, "--no-dashboard"],
        )
        assert resumed.exit_code == 0, resumed.output
        assert len(hub.listing_requests()) == 16 - kept  # from the page after the last it kept
    output = logs.read_text()
    assert "View at http" not in output and "Traceback" not in output, output[-3000:]
    server = int(re.search(r"started a Prefect server at \S+ \(pid (\d+)", output).group(1))
    deadline = time.monotonic() + 30
    while psutil.pid_exists(server) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not psutil.pid_exists(server)  # serve's Prefect server died with it


@pytest.mark.slow
@needs_working_scheduler
def test_a_process_work_pool_runs_the_prefect_yaml_deployment(tmp_path) -> None:
    warehouse = tmp_path / "wh"
    with schedule.local_server() as server, StandinHub(world(300), page_size=100) as hub:
        env = child_env(PREFECT_API_URL=server.url, PREFECT_WORKER_QUERY_SECONDS="2")

        def prefect(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
            return subprocess.run(
                [sys.executable, "-m", "prefect", *args], env=env, cwd=REPO, capture_output=True, text=True,
                timeout=timeout,
            )  # fmt: skip

        created = prefect("work-pool", "create", "multipolar", "--type", "process")
        assert created.returncode == 0, created.stdout + created.stderr
        deployed = prefect("--no-prompt", "deploy", "--all")
        assert deployed.returncode == 0 and "refresh/daily" in deployed.stdout, deployed.stdout + deployed.stderr
        with (tmp_path / "worker.log").open("w") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "prefect", "worker", "start", "--pool", "multipolar"],
                env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
            try:
                params = [f"endpoint={hub.url}", f"warehouse={warehouse}", "scope=top:100", "dashboard=false"]
                ran = prefect(
                    "deployment", "run", "refresh/daily", *[a for p in params for a in ("-p", p)],
                    "--watch", "--watch-timeout", "240", timeout=300,
                )  # fmt: skip
            finally:
                family = psutil.Process(worker.pid).children(recursive=True)
                worker.terminate()
                worker.wait(timeout=60)
                psutil.wait_procs(family, timeout=30)
        assert ran.returncode == 0 and "Completed" in ran.stdout, ran.stdout + (tmp_path / "worker.log").read_text()
        run = _last_run(server.url, "refresh")
    assert run["retries"] == 2 and run["retry_delay"] == 600
    assert "day" not in run["parameters"]
    layout = Layout.at(warehouse)
    (day,) = layout.published_dates(MODELS)
    assert day in {today() - dt.timedelta(days=1), today()}
    assert json.loads(layout.meta_file(MODELS, day).read_text())["rows"] == 100
    assert layout.published_dates(CROSSOVERS) == [day]


def _last_run(api_url: str, flow_name: str) -> dict:
    """The latest finished run of `flow_name` on the server at `api_url`, through the REST API."""
    import urllib.request

    body = json.dumps({"flows": {"name": {"any_": [flow_name]}}, "sort": "START_TIME_DESC", "limit": 5}).encode()
    request = urllib.request.Request(
        f"{api_url}/flow_runs/filter", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        runs = [r for r in json.load(response) if r["state_type"] == "COMPLETED"]
    policy = runs[0]["empirical_policy"]
    return {"parameters": runs[0]["parameters"], "retries": policy["retries"], "retry_delay": policy["retry_delay"]}


def synthetic_warehouse(root: Path, n_models: int, days: int) -> list[dt.date]:
    """A warehouse of `days` daily synthetic `models` snapshots (China passes the US half way)."""
    layout = Layout.at(root)
    for day, frame in worlds(n_models, days, dt.date(2026, 3, 2)):
        publish_frame(layout, MODELS, day, model_rows(frame.to_dicts()), {"source_kind": "synthetic"})
    return layout.published_dates(MODELS)


def recompute(warehouse: Path, runner_name: str, env: dict[str, str]) -> float:
    """Run `multipolar recompute` in a subprocess; return the seconds the flow reports."""
    args = ["recompute", "--runner", runner_name, "--workers", "2", "--warehouse", str(warehouse), "--force"]
    done = subprocess.run([*CLI, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stdout + done.stderr
    return float(re.search(rf"on {runner_name} in ([\d.]+) s", done.stdout).group(1))


def prefect_servers(pid: int) -> list[psutil.Process]:
    """The Prefect servers under `pid`: a `prefect server start` of the command's own, or Prefect's temporary server
    (`uvicorn … prefect.server.api.server:create_app`)."""
    found = []
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                command = " ".join(child.cmdline())
                if "prefect server start" in command or "prefect.server.api.server:create_app" in command:
                    found.append(child)
    return found


@pytest.mark.parametrize(
    ("command", "signum"),
    [
        ("recompute", signal.SIGTERM),
        ("recompute", signal.SIGHUP),
        ("recompute", signal.SIGKILL),
        ("demo", signal.SIGTERM),
        ("demo", signal.SIGKILL),
    ],
    ids=["recompute-SIGTERM", "recompute-SIGHUP", "recompute-SIGKILL", "demo-SIGTERM", "demo-SIGKILL"],
)
def test_a_command_stopped_by_a_signal_stops_its_prefect_server_with_it(tmp_path, command, signum) -> None:
    """`kill PID` (a scheduler's timeout, a pod stopped), a closed terminal, or a SIGKILL (the OOM killer, a
    supervisor's last resort): the Prefect server the command started stops with it, rather than run on under
    pid 1, one more for every run a scheduler stops."""
    warehouse = tmp_path / "wh"
    if command == "recompute":
        synthetic_warehouse(warehouse, 500, 2)
        args = ["recompute", "--warehouse", str(warehouse), "--force"]
    else:
        args = ["demo", "--days", "2", "--models", "500", "--warehouse", str(warehouse)]
    env = child_env()
    env.pop("PREFECT_API_URL", None)
    # Into a file, not a pipe: a server left running would hold a pipe open, and reading it would wait on it.
    log = tmp_path / "stderr.txt"
    with open(log, "w") as sink:
        proc = subprocess.Popen(
            [*CLI, *args],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=sink,
            start_new_session=True,  # its own process group: whatever it leaves is killed once the test is done
        )
    try:
        deadline, servers = time.monotonic() + 240, []
        while not servers and proc.poll() is None and time.monotonic() < deadline:
            servers = prefect_servers(proc.pid)
            time.sleep(0.1)
        assert servers, f"no Prefect server was started: {proc.poll()=}"
        proc.send_signal(signum)  # to the command alone, as `kill PID` sends it
        proc.wait(timeout=120)
        stderr = log.read_text()
        _, alive = psutil.wait_procs(servers, timeout=60)
        assert not alive, [p.cmdline() for p in alive]
        if signum == signal.SIGKILL:  # nothing of the command runs once killed: it says nothing
            assert proc.returncode == -signal.SIGKILL
            return
        assert proc.returncode == 128 + signum, stderr
        said = [line for line in stderr.splitlines() if line.startswith("stopped by")]
        assert said and said[0].startswith(f"stopped by {signal.Signals(signum).name}: what was published"), stderr
        assert "Traceback" not in stderr, stderr
        assert writer_at_work(Layout.at(warehouse)) is None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def test_a_second_signal_while_a_stopped_recompute_waits_for_its_dates_is_raised_once_they_are_done() -> None:
    """`kill PID` twice, or Ctrl-C twice: Prefect's handler of SIGTERM (and Python's of SIGINT) raises at each
    signal, and a second one must not cut short the wait for the dates still running, or the writer lock is let
    go while their threads still publish."""
    import concurrent.futures as cf

    from prefect.exceptions import TerminationSignal

    from flows.recompute import settle

    def terminate(signum: int, _frame: object) -> None:
        raise TerminationSignal(signal.SIGTERM)

    with cf.ThreadPoolExecutor(1) as pool:
        running = pool.submit(time.sleep, 1.0)
        previous = signal.signal(signal.SIGALRM, terminate)
        try:
            signal.setitimer(signal.ITIMER_REAL, 0.2)  # the second SIGTERM, as the stopped run waits
            with pytest.raises(TerminationSignal):
                settle([SimpleNamespace(wrapped_future=running)])
            assert running.done()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


@pytest.mark.slow
def test_recompute_on_a_local_dask_cluster_equals_threads(tmp_path) -> None:
    pytest.importorskip("prefect_dask", reason="prefect-dask is not installed (the `scale` extra)")
    threads, dask = tmp_path / "threads", tmp_path / "dask"
    days = synthetic_warehouse(threads, 10_000, 6)
    shutil.copytree(threads, dask)
    with schedule.local_server() as server:
        env = child_env(PREFECT_API_URL=server.url)
        seconds = {"threads": recompute(threads, "threads", env), "dask": recompute(dask, "dask", env)}
    a, b = Layout.at(threads), Layout.at(dask)
    identical_bytes = 0
    for table in (SHARES, CONCENTRATION, CROSSOVERS):
        assert a.published_dates(table) == b.published_dates(table) == days
        for day in days:
            left, right = a.partition_file(table, day), b.partition_file(table, day)
            # Concentration sums squared shares in group order, which polars does not fix from run to run
            # (even on one thread): its floats agree to the last bits only, under any runner.
            exact = table is not CONCENTRATION
            frames = pl.read_parquet(left), pl.read_parquet(right)
            assert_frame_equal(*frames, check_exact=exact, rel_tol=1e-12, abs_tol=1e-12)
            identical_bytes += sha256_of(left) == sha256_of(right)
    assert (b.dashboard_dir / "index.html").is_file()
    print(
        f"\nrecompute {len(days)} dates: threads {seconds['threads']} s, dask (2 processes) {seconds['dask']} s; "
        f"{identical_bytes}/{3 * len(days)} partitions byte-identical"
    )


@pytest.mark.slow
def test_a_new_serve_clears_the_runs_an_earlier_serve_left_with_its_parameters(tmp_path, monkeypatch) -> None:
    """A run scheduled (or waiting to retry) by an earlier serve carries its endpoint and warehouse: it is
    removed, and one left running when that serve stopped is marked crashed."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.states import Running

    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    name = f"test-{tmp_path.name}"  # a deployment of its own, should the server's database be shared
    with schedule.local_server() as server, temporary_settings(updates={PREFECT_API_URL: server.url}):
        unknown = schedule.refresh_deployment(interval=60, name=name)
        assert schedule.clear_leftovers(unknown) == schedule.Leftovers(0, 0)
        earlier = schedule.refresh_deployment(
            interval=60, endpoint="http://127.0.0.1:9", warehouse=str(tmp_path), name=name
        )
        deployment_id = earlier.apply()
        with get_client(sync_client=True) as client:
            waiting = client.create_flow_run_from_deployment(deployment_id)
            stopped = client.create_flow_run_from_deployment(deployment_id)
            client.set_flow_run_state(stopped.id, Running(), force=True)
            later = schedule.refresh_deployment(interval=60, endpoint="http://127.0.0.1:8777", name=name)
            assert schedule.clear_leftovers(later) == schedule.Leftovers(removed=1, crashed=1)
            runs = {run.id: run.state_type.value for run in client.read_flow_runs()}
            assert schedule.clear_leftovers(later) == schedule.Leftovers(0, 0)  # nothing left the second time
    assert waiting.id not in runs and runs[stopped.id] == "CRASHED"
