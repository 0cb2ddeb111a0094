"""A refresh killed with SIGKILL at any moment (crawl, publish, attribute, metrics, wrap-up) recovers.

Each round restores a warehouse holding day 1, starts `python -m flows.cli refresh` for day 2 in its own
process group, kills the group at a seeded random moment inside one phase, then runs the refresh again.
After every round the published tables of both days equal an uninterrupted run's, and a reader polling
`run_sql` throughout never sees a day-2 partition with a row count other than 0 or the full count.

The refresh subprocesses share one Prefect API server started once by the test: an ephemeral server
costs about 13 s per process here (4 s with a shared one), and twenty rounds must fit in a few minutes.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from flows import hub as hub_module
from flows import standin_faults as faults
from flows.cli import app
from flows.crawl import CHECKPOINT, assemble, crawl_to_staging
from flows.hub import HubError
from flows.scope import parse_scope
from flows.standin_hub import StandinHub
from tests.worlds import world
from warehouse.layout import Layout
from warehouse.query import run_sql
from warehouse.tables import ATTRIBUTIONS, CONCENTRATION, CROSSOVERS, MODELS, REGISTRY, SHARES

pytestmark = pytest.mark.usefixtures("hub_online")
DAY1, DAY2 = dt.date(2026, 5, 11), dt.date(2026, 5, 12)
TABLES = (MODELS, REGISTRY, ATTRIBUTIONS, SHARES, CONCENTRATION, CROSSOVERS)
MODELS_COUNT = 40_000
KILLS = {"crawl": 6, "publish": 4, "attribute": 3, "metrics": 4, "wrap-up": 3}  # 20 kills
SEED = 20260512
PHASES = ("crawl", "publish", "attribute", "metrics", "wrap-up")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class PrefectServer:
    """A Prefect API server started for the tests: its URL and its home (settings, database, logs)."""

    url: str
    home: Path


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """One Prefect API server for every refresh subprocess of the module."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    log = (home / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the Prefect server did not start: {(home / 'server.log').read_text()[-500:]}")
                time.sleep(0.3)
        yield PrefectServer(url, home)
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
        log.close()


def refresh_process(
    hub: StandinHub, warehouse: Path, day: dt.date, api: str, *extra: str, token: str | None = None
) -> subprocess.Popen:
    """`python -m flows.cli refresh` for `day` as a subprocess talking to the Prefect server at `api`."""
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "PREFECT_API_URL": api}
    env.pop("HF_TOKEN", None)
    if token is not None:
        env["HF_TOKEN"] = token
    args = ["refresh", "--date", day.isoformat(), "--endpoint", hub.url, "--warehouse", str(warehouse)]
    return subprocess.Popen(
        [sys.executable, "-m", "flows.cli", *args, "--no-dashboard", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the kill takes every child with it
    )


def reached(layout: Layout, day: dt.date) -> str | None:
    """The last phase boundary a refresh of `day` has passed, read from the warehouse (None: not started)."""
    if layout.meta_file(CROSSOVERS, day).is_file():
        return "wrap-up"
    if layout.meta_file(ATTRIBUTIONS, day).is_file():
        return "metrics"
    if layout.meta_file(MODELS, day).is_file():
        return "attribute"
    checkpoint = layout.crawl_staging(day) / "checkpoint.json"
    try:
        return "publish" if json.loads(checkpoint.read_text())["done"] else "crawl"
    except (OSError, ValueError, KeyError):
        return "crawl" if checkpoint.is_file() else None


def timed_run(hub: StandinHub, warehouse: Path, api: str) -> dict[str, float]:
    """An uninterrupted refresh of day 2, with the moment each phase began (seconds after the crawl began)."""
    layout = Layout.at(warehouse)
    proc = refresh_process(hub, warehouse, DAY2, api)
    seen: dict[str, float] = {}
    while proc.poll() is None:
        phase = reached(layout, DAY2)
        if phase is not None and phase not in seen:
            seen[phase] = time.monotonic()
        time.sleep(0.005)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    seen["exit"] = time.monotonic()
    began = seen["crawl"]
    return {phase: seen[phase] - began for phase in (*PHASES, "exit")}


def killed_run(hub: StandinHub, warehouse: Path, api: str, phase: str, offset: float) -> str:
    """Start a refresh, SIGKILL its process group `offset` s after it enters `phase`; where it was killed."""
    layout = Layout.at(warehouse)
    proc = refresh_process(hub, warehouse, DAY2, api)
    entered = None
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        now = reached(layout, DAY2)
        if entered is None and now is not None and PHASES.index(now) >= PHASES.index(phase):
            entered = time.monotonic()
        if entered is not None and time.monotonic() - entered >= offset:
            landed = reached(layout, DAY2)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=30)
            return f"killed in {landed}"
        time.sleep(0.005)
    proc.communicate(timeout=30)
    return "finished before the kill"


class Reader(threading.Thread):
    """Polls the warehouse through `run_sql`, recording every count that is neither 0 nor the full one."""

    def __init__(self, full: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.full = full
        self.layout: Layout | None = None
        self.stop = threading.Event()
        self.reads = 0
        self.bad: list[str] = []
        self.sql = " UNION ALL ".join(
            f"SELECT '{t.name}' AS name, snapshot_date, count(*) AS n FROM {t.name} GROUP BY snapshot_date"
            for t in TABLES
        )

    def run(self) -> None:
        while not self.stop.is_set():
            layout = self.layout
            if layout is not None:
                try:
                    counts = run_sql(layout, self.sql)
                except Exception as error:  # noqa: BLE001 - any failure a reader sees is the finding
                    self.bad.append(f"{type(error).__name__}: {error}")
                else:
                    for name, day, n in counts.iter_rows():
                        if n != self.full[f"{name} {day}"]:
                            self.bad.append(f"{name} {day}: {n} rows, not {self.full[f'{name} {day}']}")
                    self.reads += 1
            time.sleep(0.05)


def published(layout: Layout) -> dict[str, pl.DataFrame]:
    return {
        f"{t.name} {d}": pl.read_parquet(layout.partition_file(t, d)) for t in TABLES for d in layout.published_dates(t)
    }


def same_tables(got: dict[str, pl.DataFrame], expected: dict[str, pl.DataFrame]) -> bool:
    if got.keys() != expected.keys():
        return False
    try:
        for key, frame in expected.items():  # aggregated floats may differ in the last bit between runs
            assert_frame_equal(got[key], frame, rel_tol=1e-12, abs_tol=1e-15)
    except AssertionError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_refresh_killed_at_twenty_random_moments_always_recovers_to_the_uninterrupted_result(
    tmp_path: Path, prefect_api: PrefectServer
) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    api = prefect_api.url
    began = time.monotonic()
    template, clean = tmp_path / "day1", tmp_path / "clean"
    with StandinHub(world(MODELS_COUNT), page_size=1000, faults=[faults.latency(0.05)]) as hub:
        first = refresh_process(hub, template, DAY1, api)
        assert first.wait(timeout=180) == 0, first.stderr.read()
        shutil.copytree(template, clean)
        phases = timed_run(hub, clean, api)
        expected = published(Layout.at(clean))
        full = {key: frame.height for key, frame in expected.items()}
        windows = {p: phases[n] - phases[p] for p, n in zip(PHASES, (*PHASES[1:], "exit"), strict=True)}

        rng = random.Random(SEED)
        plan = [(p, rng.uniform(0, windows[p])) for p, n in KILLS.items() for _ in range(n)]
        reader = Reader(full)
        reader.start()
        outcomes, landed = [], Counter()
        try:
            for round_number, (phase, offset) in enumerate(plan):
                warehouse = tmp_path / f"round-{round_number:02d}"
                shutil.copytree(template, warehouse)
                reader.layout = Layout.at(warehouse)
                landed[killed_run(hub, warehouse, api, phase, offset)] += 1
                with temporary_settings({PREFECT_API_URL: api}):
                    again = CliRunner().invoke(
                        app,
                        ["refresh", "--date", DAY2.isoformat(), "--endpoint", hub.url, "--warehouse", str(warehouse)]
                        + ["--no-dashboard"],
                    )
                assert again.exit_code == 0, f"round {round_number} ({phase} +{offset:.2f} s): {again.output}"
                outcomes.append(same_tables(published(Layout.at(warehouse)), expected))
                print(f"round {round_number}: {phase} +{offset:.2f} s, {time.monotonic() - began:.0f} s", flush=True)
        finally:
            reader.stop.set()
            reader.join(timeout=10)

    report = {
        "phases (s after the crawl began)": {p: round(t, 2) for p, t in phases.items()},
        "kills": dict(landed),
        "identical": f"{sum(outcomes)}/{len(outcomes)}",
        "reads": reader.reads,
        "seconds": round(time.monotonic() - began, 1),
    }
    print(json.dumps(report, indent=2))
    assert reader.bad == [] and reader.reads > 0
    assert len(outcomes) == sum(KILLS.values()) and all(outcomes), report
    assert sum(n for k, n in landed.items() if k not in ("killed in crawl", "finished before the kill")) >= 8, report


@pytest.mark.parametrize("orphan", ["whole", "cut off"])
def test_a_page_written_after_the_last_checkpoint_is_fetched_again_not_counted(tmp_path, monkeypatch, orphan) -> None:
    """A kill between writing a page file and checkpointing it leaves that file behind; resuming ignores it."""
    monkeypatch.setitem(hub_module.BACKOFF, "base_wait_time", 0.01)
    monkeypatch.setitem(hub_module.BACKOFF, "max_wait_time", 0.02)
    layout, scope = Layout.at(tmp_path / "wh"), parse_scope("top:250")
    with StandinHub(world(1_000), page_size=100, faults=[faults.server_error(503, times=None, pages={3})]) as hub:
        with pytest.raises(HubError):
            crawl_to_staging(layout, DAY2, scope, hub.url)
        folder = layout.crawl_staging(DAY2)
        assert json.loads((folder / CHECKPOINT).read_text())["pages"] == 2
        written = (folder / "page-00000-0000001.parquet").read_bytes()
        orphan_bytes = written if orphan == "whole" else written[: len(written) // 2]
        (folder / "page-00000-0000002.parquet").write_bytes(orphan_bytes)  # page 3, never checkpointed
        hub.set_faults()
        resumed = assemble(layout, DAY2, crawl_to_staging(layout, DAY2, scope, hub.url))
        clean_layout = Layout.at(tmp_path / "clean")
        clean = assemble(clean_layout, DAY2, crawl_to_staging(clean_layout, DAY2, scope, hub.url))
    assert resumed[1] == clean[1] == 250
    assert pl.read_parquet(resumed[0]).equals(pl.read_parquet(clean[0]))
