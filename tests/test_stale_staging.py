"""A crawl's staging outliving its publish (a refresh killed between the two) is never published again.

Each test kills a real `multipolar refresh` subprocess with `os._exit` at one step of `flows.snapshot`, then
runs `refresh --force` in this process against a Hub now serving another world.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.standin_hub import StandinHub
from tests.worlds import world
from warehouse.layout import Layout
from warehouse.publish import read_meta
from warehouse.tables import MODELS

pytestmark = pytest.mark.usefixtures("hub_online")
DATE = "2026-05-12"
DAY = dt.date(2026, 5, 12)
ROOT = Path(__file__).resolve().parents[1]
KILLED = 9  # the exit status of a refresh killed at the chosen step
# `multipolar` with one function of `flows.snapshot` replaced by an immediate exit of the whole process.
KILL_AT = f"""
import os
import sys

import flows.snapshot
from flows.cli import main

setattr(flows.snapshot, sys.argv.pop(1), lambda *args, **kwargs: os._exit({KILLED}))
main()
"""
runner = CliRunner()


def refresh_killed_at(step: str, hub: StandinHub, warehouse: Path, log: Path) -> None:
    """Run `multipolar refresh` in a subprocess that exits at once when it reaches `flows.snapshot.<step>`."""
    env = {**os.environ, "HF_HUB_OFFLINE": "0"}
    env.pop("HF_TOKEN", None)
    args = ["refresh", "--date", DATE, "--endpoint", hub.url, "--warehouse", str(warehouse), "--no-dashboard"]
    # Output goes to a file, not a pipe: the Prefect server the refresh started outlives it and holds its output.
    with log.open("w") as output:
        proc = subprocess.Popen(
            [sys.executable, "-c", KILL_AT, step, *args, "--force"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so its Prefect server goes with it below
        )
        try:
            proc.wait(timeout=300)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == KILLED, log.read_text()[-3000:]


def refresh(hub: StandinHub, warehouse: Path, *extra: str):
    args = ["refresh", "--date", DATE, "--endpoint", hub.url, "--warehouse", str(warehouse), "--no-dashboard", *extra]
    return runner.invoke(app, args)


def published_ids(layout: Layout) -> list[str]:
    return layout.scan(MODELS, DAY).select("model_id").collect().get_column("model_id").sort().to_list()


def ids_of(models: list[dict]) -> list[str]:
    return sorted(m["id"] for m in models)


def checkpoint(layout: Layout) -> dict:
    return json.loads((layout.crawl_staging(DAY) / "checkpoint.json").read_text())


def test_a_forced_refresh_after_a_kill_between_publish_and_discard_crawls_afresh(tmp_path) -> None:
    warehouse = tmp_path / "warehouse"
    layout = Layout.at(warehouse)
    old_world, new_world = world(300), world(350)[30:]
    with StandinHub(old_world, page_size=100) as hub:
        refresh_killed_at("discard", hub, warehouse, tmp_path / "killed.log")
        old = read_meta(layout, MODELS, DAY)
        left = checkpoint(layout)
        assert old["rows"] == 300 and left["done"] and left["started_at"] == old["started_at"]
        hub.replace_world(new_world)
        hub.reset_log()
        forced = refresh(hub, warehouse, "--force")
        assert forced.exit_code == 0, forced.output
        sent = len(hub.listing_requests())
    assert sent == 4  # 320 models in pages of 100
    meta = read_meta(layout, MODELS, DAY)
    assert meta["rows"] == 320 and meta["requests"] == sent and meta["resumed"] == 0
    assert published_ids(layout) == ids_of(new_world)
    assert not any((layout.staging / "crawl").iterdir())


def test_a_finished_crawl_killed_before_its_publish_is_still_published_without_a_request(tmp_path) -> None:
    """The staged crawl differs from the published one (an earlier crawl of the date): it is resumed, not redone."""
    warehouse = tmp_path / "warehouse"
    layout = Layout.at(warehouse)
    with StandinHub(world(300), page_size=100) as hub:
        assert refresh(hub, warehouse).exit_code == 0
        hub.replace_world(world(350))
        refresh_killed_at("assemble", hub, warehouse, tmp_path / "killed.log")
        assert read_meta(layout, MODELS, DAY)["rows"] == 300
        assert checkpoint(layout)["done"]
        hub.replace_world(world(400))
        hub.reset_log()
        forced = refresh(hub, warehouse, "--force")
        assert forced.exit_code == 0, forced.output
        assert hub.listing_requests() == []
    meta = read_meta(layout, MODELS, DAY)
    assert meta["rows"] == 350 and meta["resumed"] == 0
    assert published_ids(layout) == ids_of(world(350))


def test_check_tells_a_crawl_left_in_staging_and_the_refresh_that_resumes_it(tmp_path) -> None:
    """A refresh replacing a date killed once its crawl is staged, and not run again, leaves the pages there for
    good: `check` names the folder, its size and the refresh that resumes it; once that has run, nothing is left to
    tell. The pages of a crawl published, left by a refresh killed before removing them, are a folder to remove."""
    warehouse = tmp_path / "warehouse"
    layout = Layout.at(warehouse)
    check = ["check", "--warehouse", str(warehouse)]
    with StandinHub(world(300), page_size=100) as hub:
        assert refresh(hub, warehouse).exit_code == 0
        hub.replace_world(world(350))
        refresh_killed_at("publish_models", hub, warehouse, tmp_path / "killed.log")
        told = runner.invoke(app, check, env={"COLUMNS": "20000"})
        assert told.exit_code == 1, told.output
        staged = layout.crawl_staging(DAY)
        resume = f"multipolar refresh --date {DATE} --scope full --endpoint {hub.url} --warehouse {warehouse} --force"
        assert f"{staged}: a crawl of {DATE} stopped part way (" in told.output
        assert f"resume it: {resume}, or remove the folder to give it up" in told.output
        assert refresh(hub, warehouse, "--force").exit_code == 0
        assert read_meta(layout, MODELS, DAY)["rows"] == 350
        assert runner.invoke(app, check).exit_code == 0
        refresh_killed_at("discard", hub, warehouse, tmp_path / "killed-again.log")
        told = runner.invoke(app, check, env={"COLUMNS": "20000"})
        assert told.exit_code == 1, told.output
        assert f"{staged}: the pages of the crawl published for {DATE}, left behind (" in told.output
        shutil.rmtree(staged)
        assert str(staged) not in runner.invoke(app, check, env={"COLUMNS": "20000"}).output
