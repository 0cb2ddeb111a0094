"""`multipolar refresh` end to end: the Prefect flow, publish, re-runs, the lock, kill and resume, secrets."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from flows import standin_faults as faults
from flows.cli import app
from flows.standin_hub import StandinHub
from tests.worlds import world
from warehouse.layout import Layout
from warehouse.lock import writer_lock
from warehouse.publish import sha256_of
from warehouse.tables import MODELS

pytestmark = pytest.mark.usefixtures("hub_online")
DATE = "2026-05-12"
DAY = dt.date(2026, 5, 12)
runner = CliRunner()


def refresh(hub: StandinHub, warehouse: Path, *extra: str):
    args = ["refresh", "--date", DATE, "--endpoint", hub.url, "--warehouse", str(warehouse), "--no-dashboard", *extra]
    return runner.invoke(app, args)


def published(warehouse: Path) -> pl.DataFrame:
    layout = Layout.at(warehouse)
    return layout.scan(MODELS, layout.published_dates(MODELS)[0]).collect()


def test_refresh_publishes_a_dated_snapshot_with_provenance(tmp_path) -> None:
    with StandinHub(world(1_500), page_size=400) as hub:
        result = refresh(hub, tmp_path)
    assert result.exit_code == 0, result.output
    assert "published 2026-05-12: 1500 models, 4 requests" in result.output
    layout = Layout.at(tmp_path)
    meta = json.loads(layout.meta_file(MODELS, DAY).read_text())
    assert meta["rows"] == 1500 and meta["requests"] == 4 and meta["endpoint"] == hub.url and meta["scope"] == "full"
    assert meta["sha256"] == sha256_of(layout.partition_file(MODELS, DAY))
    assert meta["libraries"]["huggingface_hub"] == "2.4.0" and meta["code_version"]
    assert not any(layout.staging.joinpath("crawl").iterdir())


def test_a_second_refresh_of_a_published_date_is_a_no_op_unless_forced(tmp_path) -> None:
    with StandinHub(world(300)) as hub:
        assert refresh(hub, tmp_path).exit_code == 0
        first = sha256_of(Layout.at(tmp_path).partition_file(MODELS, DAY))
        hub.reset_log()
        again = refresh(hub, tmp_path)
        assert again.exit_code == 0 and "already published" in again.output and "nothing to do" in again.output
        assert hub.listing_requests() == []
        hub.replace_world(world(350))
        forced = refresh(hub, tmp_path, "--force")
        assert forced.exit_code == 0 and "350 models" in forced.output
    assert published(tmp_path).height == 350
    assert sha256_of(Layout.at(tmp_path).partition_file(MODELS, DAY)) != first


def test_a_second_refresh_on_a_locked_warehouse_exits_clearly(tmp_path) -> None:
    with StandinHub(world(10)) as hub, writer_lock(Layout.at(tmp_path), "refresh 2026-05-12"):
        result = refresh(hub, tmp_path)
    assert result.exit_code == 3
    assert "another Multipolar process is writing" in result.output and "refresh 2026-05-12" in result.output


def test_a_failing_hub_publishes_nothing_and_says_why_in_one_line(tmp_path, monkeypatch) -> None:
    from flows import hub as hub_module

    monkeypatch.setitem(hub_module.BACKOFF, "base_wait_time", 0.05)
    with StandinHub(world(10), faults=[faults.server_error(503, times=None)]) as hub:
        result = refresh(hub, tmp_path)
    assert result.exit_code == 1
    assert f"error: {hub.url} answered HTTP 503 after retries" in result.output
    assert "Traceback" not in result.output
    assert Layout.at(tmp_path).published_dates(MODELS) == []


def cli(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "flows.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, so a kill takes its Prefect server with it
    )


def wait_for_pages(checkpoint: Path, pages: int, timeout: float = 120) -> None:
    """Wait until a running crawl's checkpoint records `pages` pages."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if json.loads(checkpoint.read_text())["pages"] >= pages:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.05)


def child_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "0", **extra}
    env.pop("HF_TOKEN", None)
    return {**env, **extra}


def test_an_unreachable_endpoint_fails_within_a_minute_with_one_line(tmp_path) -> None:
    began = time.monotonic()
    proc = cli(
        "refresh", "--endpoint", "http://127.0.0.1:9", "--warehouse", str(tmp_path), "--no-dashboard", env=child_env()
    )
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert time.monotonic() - began < 60
    errors = [line for line in (stdout + stderr).splitlines() if line.startswith("error:")]
    assert errors == [errors[0]] and "cannot reach http://127.0.0.1:9" in errors[0]
    assert "Traceback" not in stdout + stderr


@pytest.mark.slow
def test_a_killed_refresh_resumes_and_equals_an_uninterrupted_one(tmp_path) -> None:
    models = world(6_000)
    with StandinHub(models, page_size=200, faults=[faults.latency(0.15)]) as hub:
        env = child_env()
        interrupted, clean = tmp_path / "interrupted", tmp_path / "clean"
        proc = cli(
            "refresh", "--date", DATE, "--endpoint", hub.url, "--warehouse", str(interrupted), "--no-dashboard", env=env
        )
        checkpoint = Layout.at(interrupted).crawl_staging(DAY) / "checkpoint.json"
        wait_for_pages(checkpoint, 8)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        pages_before = json.loads(checkpoint.read_text())["pages"]
        assert 8 <= pages_before < 30 and Layout.at(interrupted).published_dates(MODELS) == []
        hub.set_faults()
        hub.reset_log()
        resumed = cli(
            "refresh", "--date", DATE, "--endpoint", hub.url, "--warehouse", str(interrupted), "--no-dashboard", env=env
        )
        out, err = resumed.communicate(timeout=300)
        assert resumed.returncode == 0, err
        assert min(r.page for r in hub.listing_requests()) == pages_before + 1
        assert refresh(hub, clean).exit_code == 0
    a, b = published(interrupted), published(clean)
    assert a.height == 6_000 and a.equals(b)
    meta = json.loads(Layout.at(interrupted).meta_file(MODELS, DAY).read_text())
    assert meta["resumed"] == 1


def test_a_canary_token_is_sent_but_appears_in_no_file_log_or_artifact(tmp_path) -> None:
    canary = "hf_CANARY_d0n0tl34k_7f3a9c"
    prefect_home = tmp_path / "prefect"
    env = child_env(HF_TOKEN=canary, PREFECT_HOME=str(prefect_home))
    with StandinHub(world(500), page_size=100, faults=[faults.rate_limit(times=1), faults.server_error(500)]) as hub:
        proc = cli(
            "refresh",
            "--date",
            DATE,
            "--endpoint",
            hub.url,
            "--warehouse",
            str(tmp_path / "wh"),
            "--no-dashboard",
            "--verbose",
            env=env,
        )
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
        assert hub.received_token(canary)
    assert canary not in stdout + stderr
    leaks = [p for p in tmp_path.rglob("*") if p.is_file() and canary.encode() in p.read_bytes()]
    assert leaks == []


def test_a_refresh_leaves_a_markdown_summary_artifact(tmp_path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with StandinHub(world(120)) as hub:
        assert refresh(hub, tmp_path).exit_code == 0
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["refresh-summary"]))
        )
    latest = max(artifacts, key=lambda a: a.created)
    assert latest.type == "markdown"
    assert "# Multipolar refresh 2026-05-12" in latest.data and "| rows | 120 |" in latest.data
    assert "Top authors by 30-day downloads" in latest.data and "| Qwen |" in latest.data


def test_the_registry_used_is_published_beside_the_attributions_and_joins_their_evidence(tmp_path) -> None:
    from analytics.registry import load_registry
    from warehouse.query import run_sql
    from warehouse.tables import ATTRIBUTIONS, REGISTRY

    with StandinHub(world(1_500), page_size=400) as hub:
        assert refresh(hub, tmp_path).exit_code == 0
    layout = Layout.at(tmp_path)
    registry = load_registry()
    published_registry = pl.read_parquet(layout.partition_file(REGISTRY, DAY))
    columns = [c for c in REGISTRY.columns if c != "entry"]
    assert published_registry.select(columns).equals(registry.select(columns).sort("namespace"))
    assert published_registry["entry"].to_list() == list(range(registry.height))
    registry_meta, attributions_meta = (
        json.loads(layout.meta_file(t, DAY).read_text()) for t in (REGISTRY, ATTRIBUTIONS)
    )
    assert registry_meta["registry_version"] == attributions_meta["registry_version"]
    assert registry_meta["inputs"] == attributions_meta["inputs"]
    joined = run_sql(
        layout,
        "SELECT a.rule, a.reviewed, a.evidence, r.evidence AS registry_evidence, a.credited_namespace, "
        "e.namespace AS entry_namespace FROM attributions a "
        "LEFT JOIN registry r ON r.namespace = a.credited_namespace AND r.snapshot_date = a.snapshot_date "
        "LEFT JOIN registry e ON e.entry = a.entry AND e.snapshot_date = a.snapshot_date",
    )
    assert joined.height == 3 * 1_500
    # A row's `entry` names the registry row of the namespace it credits.
    assert joined["entry_namespace"].equals(
        joined.select(pl.when("reviewed").then("credited_namespace")).to_series(), check_names=False
    )
    # Every reviewed row finds its registry evidence, and no row repeats it in its own evidence.
    reviewed, unreviewed = joined.filter("reviewed"), joined.filter(~pl.col("reviewed"))
    assert reviewed.height and unreviewed.height
    assert reviewed["registry_evidence"].null_count() == 0
    assert unreviewed["registry_evidence"].null_count() == unreviewed.height
    assert not joined.filter(pl.col("evidence").str.contains(pl.col("registry_evidence"), literal=True)).height
    # A date attributed without its registry partition (an older warehouse) is attributed again.
    from flows.steps import attribute_date, pending_steps

    assert pending_steps(layout, DAY, dashboard=False) == []
    layout.meta_file(REGISTRY, DAY).unlink()
    assert pending_steps(layout, DAY, dashboard=False) == ["attribute", "metrics", "crossovers"]
    assert attribute_date(layout, DAY)["status"] == "published"
    assert pl.read_parquet(layout.partition_file(REGISTRY, DAY)).height == registry.height
    # The metrics group on `entry` only with the very registry file the attributions were made with.
    from flows.steps import metrics_date, registry_used
    from warehouse.publish import publish_frame
    from warehouse.tables import SHARES

    assert metrics_date(layout, DAY, force=True)["status"] == "published"
    assert registry_used(layout, DAY) is not None
    shares = pl.read_parquet(layout.partition_file(SHARES, DAY))
    renumbered = pl.read_parquet(layout.partition_file(REGISTRY, DAY)).with_columns(pl.col("entry").reverse())
    publish_frame(layout, REGISTRY, DAY, renumbered, {"source_kind": "test"}, force=True)
    assert registry_used(layout, DAY) is None
    assert metrics_date(layout, DAY, force=True)["status"] == "published"
    assert pl.read_parquet(layout.partition_file(SHARES, DAY)).equals(shares)
    # A date attributed before `entry` was kept counts as pending: `multipolar recompute` attributes it again.
    assert attribute_date(layout, DAY, force=True)["status"] == "published"
    assert "attribute" not in pending_steps(layout, DAY, dashboard=False)
    file = layout.partition_file(ATTRIBUTIONS, DAY)
    pl.read_parquet(file).drop("entry").write_parquet(file)
    assert pending_steps(layout, DAY, dashboard=False) == ["attribute", "metrics", "crossovers"]
    # So does one attributed before `model_row` was kept; until then its metrics and `credited` join it on the ids.
    from polars.testing import assert_frame_equal

    from warehouse.query import run_sql

    assert attribute_date(layout, DAY, force=True)["status"] == "published"
    pl.read_parquet(file).drop("model_row").write_parquet(file)
    assert pending_steps(layout, DAY, dashboard=False) == ["attribute", "metrics", "crossovers"]
    assert metrics_date(layout, DAY, force=True)["status"] == "published"
    assert_frame_equal(pl.read_parquet(layout.partition_file(SHARES, DAY)), shares, rel_tol=1e-9, abs_tol=1e-9)
    credited = run_sql(layout, "SELECT count(*) AS n, count(DISTINCT model_id) AS ids FROM credited").row(0)
    assert credited == (pl.read_parquet(file).height, pl.read_parquet(layout.partition_file(MODELS, DAY)).height)


def test_attributing_again_with_an_edited_registry_says_the_metrics_are_stale(tmp_path, monkeypatch) -> None:
    from analytics import registry as registry_module

    with StandinHub(world(1_500), page_size=400) as hub:
        assert refresh(hub, tmp_path).exit_code == 0
    args = ["attribute", "--date", DATE, "--warehouse", str(tmp_path), "--force"]
    result = runner.invoke(app, args, env={"COLUMNS": "20000"})
    assert result.exit_code == 0 and "attribute 2026-05-12" in result.output, result.output
    assert "metrics of" not in result.output  # the same rows again: the metrics still hold
    edited = tmp_path / "registry.csv"
    edited.write_bytes(registry_module.REGISTRY_PATH.read_bytes() + b"someone,A New Lab,FR,Europe,industry,test\n")
    monkeypatch.setattr(registry_module, "REGISTRY_PATH", edited)
    result = runner.invoke(app, args[:-1], env={"COLUMNS": "20000"})
    assert result.exit_code == 0, result.output
    assert (
        "the metrics of 2026-05-12 are not made from these attributions: run `multipolar metrics --date 2026-05-12`"
        in (result.output)
    )
    result = runner.invoke(app, ["metrics", "--date", DATE, "--warehouse", str(tmp_path)], env={"COLUMNS": "20000"})
    assert result.exit_code == 0, result.output
    from flows.steps import pending_steps

    assert pending_steps(Layout.at(tmp_path), DAY, dashboard=False) == []


def test_refreshing_an_earlier_date_brings_the_later_dates_up_to_date(tmp_path) -> None:
    from flows.steps import pending_steps
    from warehouse.tables import SHARES

    layout = Layout.at(tmp_path)
    with StandinHub(world(1_500), page_size=400) as hub:
        for date in ("2026-05-11", "2026-05-12"):
            args = ["refresh", "--date", date, "--endpoint", hub.url, "--warehouse", str(tmp_path), "--no-dashboard"]
            assert runner.invoke(app, args).exit_code == 0
        later = dt.date(2026, 5, 11)
        assert "between" not in pl.read_parquet(layout.partition_file(SHARES, later))["time_window"].to_list()
        args = [
            "refresh",
            "--date",
            "2026-05-10",
            "--endpoint",
            hub.url,
            "--warehouse",
            str(tmp_path),
            "--no-dashboard",
        ]
        result = runner.invoke(app, args, env={"COLUMNS": "20000"})
    assert result.exit_code == 0, result.output
    assert "later dates: updated (metrics 2026-05-11, crossovers 2026-05-11, 2026-05-12)" in result.output
    for day in (later, DAY):
        assert pending_steps(layout, day, dashboard=False) == [], day
    # The date after the new one now measures what came between them.
    assert "between" in pl.read_parquet(layout.partition_file(SHARES, later))["time_window"].to_list()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_refresh_stopped_by_a_signal_takes_its_prefect_server_with_it(tmp_path, signum: int) -> None:
    import psutil

    home = tmp_path / "prefect-home"
    with StandinHub(world(3_000), page_size=100, faults=[faults.latency(0.3)]) as hub:
        env = child_env(PREFECT_HOME=str(home))
        proc = cli("refresh", "--date", DATE, "--endpoint", hub.url, "--warehouse", str(tmp_path / "wh"), env=env)
        checkpoint = Layout.at(tmp_path / "wh").crawl_staging(DAY) / "checkpoint.json"
        deadline = time.monotonic() + 120
        while not checkpoint.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert any("prefect" in " ".join(child.cmdline()) for child in children)  # its temporary server
        proc.send_signal(signum)  # to the refresh alone: `kill PID`, a scheduler's timeout, the OOM killer
        proc.communicate(timeout=60)
    assert proc.returncode == (128 + signum if signum == signal.SIGTERM else -signum)
    gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, [child.cmdline() for child in alive]
    assert Layout.at(tmp_path / "wh").published_dates(MODELS) == []
    # its server's log, in the one file every server started under this home appends to
    assert sorted(p.name for p in home.glob("multipolar-server*")) == ["multipolar-server.log"]
    assert (home / "multipolar-server.log").read_text().startswith("--- ")


def test_a_warehouse_path_with_glob_characters_is_read_as_a_path(tmp_path) -> None:
    from warehouse.query import run_sql

    warehouse = tmp_path / "wh-[2026]*?"
    with StandinHub(world(1_500), page_size=400) as hub:
        for date in ("2026-05-11", "2026-05-12"):
            args = ["refresh", "--date", date, "--endpoint", hub.url, "--warehouse", str(warehouse), "--no-dashboard"]
            result = runner.invoke(app, args)
            assert result.exit_code == 0, result.output
    assert published(warehouse).height == 1_500
    assert run_sql(Layout.at(warehouse), "SELECT count(*) AS n FROM credited")["n"].item() == 2 * 3 * 1_500


def test_a_scope_that_lists_no_model_publishes_nothing_and_says_so_in_one_line(tmp_path) -> None:
    with StandinHub(world(60)) as hub:
        args = ["refresh", "--date", DATE, "--endpoint", hub.url, "--warehouse", str(tmp_path), "--no-dashboard"]
        result = runner.invoke(app, [*args, "--scope", "orgs:nobody-here"], env={"COLUMNS": "20000"})
        assert result.exit_code == 1, result.output
        assert "listed no models for --scope orgs:nobody-here: nothing published" in result.output
        assert "Traceback" not in result.output
        layout = Layout.at(tmp_path)
        assert layout.published_dates(MODELS) == [] and not layout.crawl_staging(DAY).exists()
        # One misspelt namespace of several: the others are published, and the run says which listed nothing.
        result = runner.invoke(app, [*args, "--scope", "orgs:Qwen,nobody-here"], env={"COLUMNS": "20000"})
    assert result.exit_code == 0, result.output
    assert "warning: no models listed for nobody-here" in result.output
    meta = json.loads(layout.meta_file(MODELS, DAY).read_text())
    assert meta["empty_listings"] == ["nobody-here"] and meta["rows"] == 10


def test_no_between_window_spans_a_change_of_scope_and_the_page_and_report_name_the_scopes(tmp_path) -> None:
    """A model missing from a `top:N` day is not new the day after a full crawl: its all-time downloads are
    no day's gain."""
    from flows.steps import dashboard_provenance, reproduction_of
    from warehouse.query import run_sql

    with StandinHub(world(120)) as hub:
        for date, scope in (("2026-05-10", "full"), ("2026-05-11", "top:20"), ("2026-05-12", "full")):
            args = ["refresh", "--date", date, "--scope", scope, "--endpoint", hub.url, "--warehouse", str(tmp_path)]
            result = runner.invoke(app, args)
            assert result.exit_code == 0, result.output
    layout = Layout.at(tmp_path)
    windows = run_sql(layout, "SELECT DISTINCT snapshot_date, time_window FROM shares ORDER BY 1, 2")
    between = windows.filter(pl.col("time_window") == "between")["snapshot_date"].to_list()
    assert between == [], between  # 05-11 follows a full day, 05-12 a top:20 day
    assert set(windows["snapshot_date"].to_list()) == {dt.date(2026, 5, d) for d in (10, 11, 12)}
    assert dashboard_provenance(layout)["scopes"] == {"full": 2, "top:20": 1}
    page = (layout.dashboard_dir / "index.html").read_text()
    assert "full on 2 dates, top:20 on 1 date" in page
    notes = " ".join(reproduction_of(layout).notes)
    assert "Crawled with --scope full, top:20" in notes


def test_a_refresh_after_a_registry_edit_warns_of_the_dates_attributed_with_the_earlier_one(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from analytics import registry

    with StandinHub(world(300)) as hub:
        args = ["refresh", "--endpoint", hub.url, "--warehouse", str(tmp_path), "--no-dashboard"]
        first = runner.invoke(app, [*args, "--date", "2026-05-11"], env={"COLUMNS": "20000"})
        assert first.exit_code == 0 and "warning" not in first.output, first.output
        edited = tmp_path / "registry.csv"
        edited.write_text(registry.REGISTRY_PATH.read_text().replace("Vintern Vietnamese", "Vintern (Vietnamese)"))
        monkeypatch.setattr(registry, "REGISTRY_PATH", edited)
        result = runner.invoke(app, [*args, "--date", DATE], env={"COLUMNS": "20000"})
    assert result.exit_code == 0, result.output
    assert (
        "warning: 1 published date was attributed with another registry (2026-05-11); `multipolar recompute` "
        "attributes them with this one" in result.output
    )


def test_a_registry_broken_during_the_crawl_fails_saying_the_snapshot_is_kept_and_a_refresh_again_ends_it(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from analytics import registry

    path = tmp_path / "registry.csv"
    path.write_bytes(registry.REGISTRY_PATH.read_bytes())
    monkeypatch.setattr(registry, "REGISTRY_PATH", path)
    load = registry.load_registry

    def broken_once_checked(*args):  # valid when the refresh starts, saved broken while it crawls
        found = load(*args)
        path.write_bytes(registry.REGISTRY_PATH.read_bytes().replace(b"\nQwen,", b"\nQwen,,"))
        return found

    monkeypatch.setattr(registry, "load_registry", broken_once_checked)
    with StandinHub(world(300)) as hub:
        args = ["refresh", "--endpoint", hub.url, "--warehouse", str(tmp_path / "wh"), "--date", DATE, "--no-dashboard"]
        result = runner.invoke(app, args, env={"COLUMNS": "20000"})
        assert result.exit_code == 1, result.output
        told = f"error: registry {path}, line "
        assert told in result.output and "7 columns, expected 6" in result.output, result.output
        then = f"; {DATE}'s snapshot is published; mend the registry, then run the same refresh again (no crawl)"
        assert then in result.output, result.output
        path.write_bytes(path.read_bytes().replace(b"\nQwen,,", b"\nQwen,"))
        monkeypatch.setattr(registry, "load_registry", load)
        again = runner.invoke(app, args, env={"COLUMNS": "20000"})
    assert again.exit_code == 0 and "published already (not crawled again)" in again.output, again.output


def test_the_dashboard_names_the_dates_attributed_with_another_registry_than_the_latest(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refresh after a registry edit attributes its own date alone: the page drawn then says which of the dates
    it shows were attributed with the registry before, not only the latest date's registry version."""
    from analytics import registry
    from dashboards.page import caveats
    from flows.steps import dashboard_provenance

    with StandinHub(world(300)) as hub:
        args = ["refresh", "--endpoint", hub.url, "--warehouse", str(tmp_path), "--no-dashboard"]
        assert runner.invoke(app, [*args, "--date", "2026-05-11"]).exit_code == 0
        edited = tmp_path / "registry.csv"
        edited.write_bytes(registry.REGISTRY_PATH.read_bytes() + b"someone,A New Lab,FR,Europe,industry,test\n")
        monkeypatch.setattr(registry, "REGISTRY_PATH", edited)
        assert runner.invoke(app, [*args, "--date", DATE]).exit_code == 0
    layout = Layout.at(tmp_path)
    provenance = dashboard_provenance(layout)
    assert provenance["registry_version"] == registry.registry_version()
    assert provenance["other_registry_dates"] == ["2026-05-11"]
    told = caveats(provenance)["Other registries"]
    assert told.startswith("2026-05-11: attributed with another registry than the latest date's")
    assert runner.invoke(app, ["recompute", "--warehouse", str(tmp_path), "--no-dashboard"]).exit_code == 0
    assert dashboard_provenance(layout)["other_registry_dates"] == []
    assert "Other registries" not in caveats(dashboard_provenance(layout))


def test_the_clients_retries_are_told_only_with_verbose(tmp_path) -> None:
    """huggingface_hub logs each retried request in two lines with the page's URL; a retry that then succeeds
    is the crawl working as it should, and says nothing unless asked."""
    told = {}
    for verbose in ((), ("--verbose",)):
        with StandinHub(world(300), page_size=100, faults=[faults.server_error(503, times=1, pages=2)]) as hub:
            warehouse = tmp_path / f"wh{len(verbose)}"
            args = ["refresh", "--date", DATE, "--endpoint", hub.url, "--warehouse", str(warehouse), "--no-dashboard"]
            proc = cli(*args, *verbose, env=child_env())
            stdout, stderr = proc.communicate(timeout=300)
            assert proc.returncode == 0, stderr
            told[bool(verbose)] = stdout + stderr
    assert "Retrying in" not in told[False] and "HTTP Error 503" not in told[False], told[False]
    assert told[True].count("Retrying in 1.0s [Retry 1/5]") == 1  # once, not by two handlers


def test_ctrl_c_stops_a_refresh_saying_so_and_the_next_run_resumes(tmp_path) -> None:
    with StandinHub(world(3_000), page_size=100, faults=[faults.latency(0.15)]) as hub:
        args = ["refresh", "--date", DATE, "--endpoint", hub.url, "--warehouse", str(tmp_path), "--no-dashboard"]
        proc = cli(*args, env=child_env())
        checkpoint = Layout.at(tmp_path).crawl_staging(DAY) / "checkpoint.json"
        wait_for_pages(checkpoint, 3)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 130, stderr
        assert "Traceback" not in stderr
        assert stderr.splitlines()[-1] == (
            "interrupted: what was published stays whole; run the command again to finish (it resumes its crawl from "
            "the last page it kept)"
        ), stderr
        assert Layout.at(tmp_path).published_dates(MODELS) == []
        hub.set_faults()
        again = cli(*args, env=child_env())
        _, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stderr
    meta = json.loads(Layout.at(tmp_path).meta_file(MODELS, DAY).read_text())
    assert meta["resumed"] == 1 and meta["crawl_code_versions"] == [meta["code_version"]]


def test_a_crawl_listing_under_half_the_models_of_the_date_before_is_flagged_partial(tmp_path) -> None:
    """A Hub that ends its listing early: the day is kept, but flagged as an import's partial day is, so the
    crossovers, the dashboard and the next day's `between` window do not take it as the whole Hub."""
    from flows.steps import between_basis, dashboard_provenance
    from warehouse.publish import read_meta

    layout = Layout.at(tmp_path)
    with StandinHub(world(400)) as hub:
        for date, models in (("2026-05-10", 400), ("2026-05-11", 150), ("2026-05-12", 400)):
            hub.replace_world(world(400)[:models])
            args = ["refresh", "--date", date, "--endpoint", hub.url, "--warehouse", str(tmp_path), "--no-dashboard"]
            result = runner.invoke(app, args, env={"COLUMNS": "20000"})
            assert result.exit_code == 0, result.output
            if date == "2026-05-11":
                assert "2026-05-11 lists 150 models, under half the 400 of the date before" in result.output
    assert read_meta(layout, MODELS, dt.date(2026, 5, 11))["models_of_date_before"] == 400
    assert "models_of_date_before" not in read_meta(layout, MODELS, DAY)
    assert between_basis(layout, DAY) == dt.date(2026, 5, 10)
    assert dashboard_provenance(layout)["partial_dates"] == ["2026-05-11"]


def test_a_date_backdated_after_the_next_one_was_crawled_is_no_start_of_its_between_window(
    tmp_path, monkeypatch
) -> None:
    """A missed day refreshed late with `--backdate` holds counts the Hub gave after the next day's crawl: the next
    day's `between` window starts at the last date crawled before it, not at that one, where every gain would fall
    below zero."""
    import flows.snapshot
    from flows.steps import between_basis
    from warehouse.publish import read_meta
    from warehouse.tables import SHARES

    monkeypatch.setattr(flows.snapshot, "source_kind_of", lambda endpoint: "hub")  # a Hub not on this machine
    today = dt.datetime.now(dt.UTC).date()
    layout = Layout.at(tmp_path)

    def grown(by: int) -> list[dict]:
        return [m | {"downloadsAllTime": m["downloadsAllTime"] + by * (i + 1)} for i, m in enumerate(world(60))]

    with StandinHub(grown(0)) as hub:
        for day, by in ((today - dt.timedelta(days=2), 0), (today, 1), (today - dt.timedelta(days=1), 2)):
            hub.replace_world(grown(by))
            args = ["refresh", "--date", day.isoformat(), "--endpoint", hub.url, "--warehouse", str(tmp_path)]
            result = runner.invoke(app, [*args, "--no-dashboard", *(["--backdate"] if day < today else [])])
            assert result.exit_code == 0, result.output
    assert read_meta(layout, MODELS, today - dt.timedelta(days=1))["backdated_from"] == today.isoformat()
    assert between_basis(layout, today) == today - dt.timedelta(days=2)
    assert between_basis(layout, today - dt.timedelta(days=1)) == today - dt.timedelta(days=2)
    shares = pl.read_parquet(layout.partition_file(SHARES, today)).filter(pl.col("time_window") == "between")
    assert shares["downloads"].sum() > 0
    assert read_meta(layout, SHARES, today)["negative_all_time_deltas"]["models"] == 0


def test_a_run_retried_after_midnight_resumes_the_date_it_began_crawling(tmp_path, monkeypatch) -> None:
    """A scheduled run (no `--date`) that fails just before midnight and is retried just after crawls the date it
    began on, from its checkpoint, rather than starting the next date's and leaving that one unpublished."""
    import types

    import flows.refresh as refresh_module

    attempts: list[dt.datetime] = []

    class Clock(dt.datetime):
        @classmethod
        def now(cls, tz=None):  # the first attempt's clock, then one ten minutes on, the next day
            now = dt.datetime.now(dt.UTC) + dt.timedelta(days=1 if attempts else 0)
            attempts.append(now)
            return now

    clock = types.SimpleNamespace(date=dt.date, datetime=Clock, timedelta=dt.timedelta, UTC=dt.UTC)
    monkeypatch.setattr(refresh_module, "dt", clock)
    layout = Layout.at(tmp_path)
    with StandinHub(world(300), page_size=100) as hub:
        hub.set_faults(faults.Fault("foreign_link", faults._when([2]), 1, 1.0))  # the first attempt fails on page 2
        once_more = refresh_module.refresh.with_options(retries=1, retry_delay_seconds=0)
        summary = once_more(endpoint=hub.url, warehouse=str(tmp_path), dashboard=False)
    today = dt.datetime.now(dt.UTC).date()  # the day the run began
    assert summary["date"] == today.isoformat()
    assert layout.published_dates(MODELS) == [today]
    assert not any(layout.staging.joinpath("crawl").iterdir())  # no crawl of the date it began left behind
