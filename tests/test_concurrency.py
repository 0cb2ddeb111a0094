"""One writer per warehouse, readers never see a mix: two refreshes at once, a dead holder, a forced publish."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import polars as pl
import psutil
import pytest

from flows import standin_faults as faults
from flows.standin_hub import StandinHub
from tests import test_crash_anywhere as crash
from tests.worlds import world
from warehouse.layout import Layout
from warehouse.publish import publish_frame, read_meta
from warehouse.query import run_sql
from warehouse.tables import MODELS

pytestmark = pytest.mark.usefixtures("hub_online")
prefect_api = crash.prefect_api  # one Prefect server for this module's refresh subprocesses
refresh_process = crash.refresh_process
DAY = dt.date(2026, 5, 12)


def wait_for_crawl(warehouse: Path, pages: int = 1, timeout: float = 120) -> None:
    """Until the refresh writing to `warehouse` has checkpointed `pages` pages (it holds the lock by then)."""
    checkpoint = Layout.at(warehouse).crawl_staging(DAY) / "checkpoint.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if json.loads(checkpoint.read_text())["pages"] >= pages:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.02)
    pytest.fail(f"no crawl checkpoint with {pages} pages in {warehouse}")


def wait_for_lock_asked(process: subprocess.Popen, lock_file: Path, timeout: float = 120) -> None:
    """Until `process` has the lock file open: it is then asking for the lock, and goes on asking until it has it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if any(Path(f.path) == lock_file.resolve() for f in psutil.Process(process.pid).open_files()):
                return
        except psutil.Error:
            pass
        time.sleep(0.05)
    pytest.fail(f"process {process.pid} did not ask for the lock {lock_file} (exit code {process.poll()})")


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


def models_of(warehouse: Path) -> pl.DataFrame:
    return Layout.at(warehouse).scan(MODELS, DAY).collect()


def test_a_second_refresh_at_the_same_time_exits_3_naming_the_holder_or_waits_with_wait(tmp_path, prefect_api) -> None:
    warehouse = tmp_path / "wh"
    # A page a second: the first refresh crawls for a minute unless the test lets it go on at full speed, which it
    # does only once the second has been turned away and the third is waiting, however slowly each of them starts.
    with StandinHub(world(6_000), page_size=100, faults=[faults.latency(1.0)]) as hub:
        first = refresh_process(hub, warehouse, DAY, prefect_api.url)
        wait_for_crawl(warehouse)
        second = refresh_process(hub, warehouse, DAY, prefect_api.url)
        waiting = refresh_process(hub, warehouse, DAY, prefect_api.url, "--wait", "300")
        out, err = second.communicate(timeout=120)
        wait_for_lock_asked(waiting, Layout.at(warehouse).lock_file)
        assert first.poll() is None, "the first refresh ended before the others asked for the lock"
        hub.set_faults()
        first_out, first_err = first.communicate(timeout=300)
        waited_out, waited_err = waiting.communicate(timeout=300)
    assert second.returncode == 3, out + err
    lines = error_lines(out + err)
    assert len(lines) == 1 and "Traceback" not in out + err, err
    assert f"another Multipolar process is writing to {warehouse} (pid {first.pid} " in lines[0]
    assert "refresh 2026-05-12" in lines[0] and "--wait SECONDS" in lines[0]
    assert first.returncode == 0, first_err
    assert waiting.returncode == 0, waited_err
    # it found the date published by the first: nothing crawled again, nothing made again
    assert "2026-05-12's models were published already (not crawled again)" in waited_out
    waited = re.search(r"made what it lacked in ([\d.]+) s \(after ([\d.]+) s waiting for another writer\)", waited_out)
    assert waited and float(waited.group(1)) < float(waited.group(2)), waited_out  # its own time, not the wait
    assert "attribute: already published" in waited_out
    assert models_of(warehouse).height == 6_000 and read_meta(Layout.at(warehouse), MODELS, DAY)["resumed"] == 0


def test_a_killed_refresh_leaves_a_stale_lock_that_the_next_refresh_takes_over(tmp_path, prefect_api) -> None:
    warehouse = tmp_path / "wh"
    layout = Layout.at(warehouse)
    with StandinHub(world(2_000), page_size=100, faults=[faults.latency(0.2)]) as hub:
        killed = refresh_process(hub, warehouse, DAY, prefect_api.url)
        wait_for_crawl(warehouse, pages=3)
        os.killpg(killed.pid, signal.SIGKILL)
        killed.communicate(timeout=30)
        holder = json.loads(layout.lock_file.read_text())
        assert holder["pid"] == killed.pid and holder["purpose"] == "refresh 2026-05-12"  # the record outlives it
        hub.set_faults()
        began = time.monotonic()
        after = refresh_process(hub, warehouse, DAY, prefect_api.url)  # no --wait: the lock is free
        out, err = after.communicate(timeout=300)
    assert after.returncode == 0, err
    assert time.monotonic() - began < 60
    meta = read_meta(layout, MODELS, DAY)
    assert meta["rows"] == 2_000 and meta["resumed"] == 1
    assert models_of(warehouse)["model_id"].n_unique() == 2_000
    assert layout.lock_file.read_text() == ""  # released cleanly this time


def version(n: int) -> pl.DataFrame:
    """Version `n` of a partition: 1000 + n rows, every one with downloads_30d == n."""
    rows = 1_000 + n
    frame = pl.DataFrame({"model_id": [f"ns/m-{i}" for i in range(rows)], "author": "ns", "downloads_30d": n})
    return pl.concat([MODELS.empty(), frame], how="diagonal_relaxed")


def test_sql_during_forced_publishes_sees_the_old_or_the_new_partition_never_a_mix(tmp_path) -> None:
    layout = Layout.at(tmp_path)
    publish_frame(layout, MODELS, DAY, version(0), {"version": 0})
    stop, seen, bad = threading.Event(), [], []
    sql = "SELECT count(*) AS n, min(downloads_30d) AS lo, max(downloads_30d) AS hi FROM models"

    def read() -> None:
        while not stop.is_set():
            try:
                n, lo, hi = run_sql(layout, sql).row(0)
            except Exception as error:  # noqa: BLE001 - any error a reader sees is the finding
                bad.append(f"{type(error).__name__}: {error}")
                continue
            seen.append(lo)
            if lo != hi or n != 1_000 + lo:
                bad.append(f"{n} rows with versions {lo}..{hi}")

    readers = [threading.Thread(target=read, daemon=True) for _ in range(3)]
    for reader in readers:
        reader.start()
    try:
        for n in range(1, 21):
            publish_frame(layout, MODELS, DAY, version(n), {"version": n}, force=True)
            time.sleep(0.25)  # a forced publish every quarter second: far more often than any schedule
    finally:
        stop.set()
        for reader in readers:
            reader.join(timeout=10)
    assert bad == []
    assert len(seen) > 20 and len(set(seen)) > 5  # the readers really ran across many replacements
    assert read_meta(layout, MODELS, DAY)["version"] == 20
    assert run_sql(layout, sql).row(0) == (1_020, 20, 20)


def replaced_on_every_read(monkeypatch: pytest.MonkeyPatch, reads: int | None) -> None:
    """As if a writer replaced a partition during each of the first `reads` reads of a query (every read: None)."""
    from warehouse import query

    listed, listings = query._files_now, iter(range(2 * reads if reads is not None else 10**9))
    monkeypatch.setattr(query, "_files_now", lambda *a: [(str(next(listings, "settled")), 0, 0), *listed(*a)])
    monkeypatch.setattr(query, "READ_AGAIN_PAUSE", 0.001)


def test_sql_reads_a_query_again_as_long_as_a_long_replacement_lasts_then_names_the_writer(
    tmp_path, monkeypatch
) -> None:
    """A long `import --force` replaces partition after partition: a query is read again for a while, not for a
    count of reads that a replacement outlasts; then it says which writer kept replacing what it read."""
    from typer.testing import CliRunner

    from flows.cli import app
    from warehouse import query
    from warehouse.lock import writer_lock

    layout = Layout.at(tmp_path)
    publish_frame(layout, MODELS, DAY, version(3), {})
    told: list[str] = []
    with writer_lock(layout, "import panel.csv"):
        replaced_on_every_read(monkeypatch, 40)
        assert run_sql(layout, "SELECT count(*) FROM models", waiting=told.append).item() == 1_003
        assert len(told) == 1 and told[0].startswith(f"import panel.csv (pid {os.getpid()}) is replacing partitions")

        monkeypatch.setattr(query, "READ_AGAIN_SECONDS", 0.0)  # as for a query that takes longer than that
        replaced_on_every_read(monkeypatch, query.READ_AGAIN_AT_LEAST - 1)
        assert run_sql(layout, "SELECT count(*) FROM models").item() == 1_003

        replaced_on_every_read(monkeypatch, None)
        monkeypatch.setattr(query, "READ_AGAIN_SECONDS", 0.5)
        result = CliRunner().invoke(app, ["sql", "SELECT count(*) FROM models", "--warehouse", str(tmp_path)])
    assert result.exit_code == 3, result.output
    said = " ".join(result.output.split())
    assert f"error: import panel.csv (pid {os.getpid()}) replaced partitions of models while the query read" in said
    assert said.endswith("run it again once that writer has finished")


def test_any_writer_removes_the_staged_files_a_killed_writer_left(tmp_path) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    layout = Layout.at(tmp_path)
    publish_frame(layout, MODELS, DAY, version(0), {"version": 0})
    # What a `metrics` or `import` killed mid-publish leaves: a staged file no run will publish.
    left = layout.staging / "publish" / "shares-2026-05-12-0123456789abcdef.parquet"
    left.parent.mkdir(parents=True, exist_ok=True)
    left.write_bytes(b"PAR1 cut short")
    result = CliRunner().invoke(app, ["attribute", "--date", DAY.isoformat(), "--warehouse", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert not left.exists()


def test_any_writer_removes_the_temporary_files_writers_killed_mid_write_left(tmp_path) -> None:
    """A writer killed between writing a whole file's temporary sibling and renaming it into place (a record, the
    dashboard's page, a crawl's checkpoint) leaves that sibling; the next writer to take the lock removes it, so
    they do not pile up, one per writer killed so, and every file renamed into place stays."""
    import sys

    from warehouse.lock import writer_lock

    layout = Layout.at(tmp_path)
    publish_frame(layout, MODELS, DAY, version(0), {"version": 0})
    targets = [
        layout.meta_file(MODELS, DAY),
        layout.root / "_meta" / "removing.json",
        layout.dashboard_dir / "index.html",
        layout.root / "reports" / "reports.json",
        layout.crawl_staging(DAY) / "checkpoint.json",
    ]
    killed = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from warehouse.layout import Layout\n"
        "from warehouse.lock import writer_lock\n"
        "from warehouse.publish import write_text_atomic\n"
        "os.replace = lambda *args, **kwargs: os._exit(137)\n"
        "with writer_lock(Layout.at(sys.argv[1]), 'test'):\n"
        "    write_text_atomic(Path(sys.argv[2]), 'x' * 100_000)\n"
    )
    for target in targets:
        done = subprocess.run(
            [sys.executable, "-c", killed, str(tmp_path), str(target)], capture_output=True, text=True
        )
        assert done.returncode == 137, done.stderr
        # Each killed writer took the lock, so removed what the one before it left: only its own is there.
        assert [p.parent for p in tmp_path.rglob(".*.tmp")] == [target.parent]
    record = layout.meta_file(MODELS, DAY).read_bytes()
    with writer_lock(layout, "test"):
        pass
    assert not list(tmp_path.rglob(".*.tmp"))
    assert layout.meta_file(MODELS, DAY).read_bytes() == record and read_meta(layout, MODELS, DAY)["version"] == 0


def test_scan_models_during_forced_publishes_reads_the_old_or_the_new_day_never_a_mix(tmp_path) -> None:
    from warehouse.metadata import scan_models

    layout = Layout.at(tmp_path)
    publish_frame(layout, MODELS, DAY, version(0).with_columns(author=pl.lit("ns-0")), {"version": 0})
    stop, seen, bad = threading.Event(), [], []

    def read() -> None:
        while not stop.is_set():
            try:
                day = scan_models(layout, DAY).select("downloads_30d", "author").collect()
            except Exception as error:  # noqa: BLE001 - any error a reader sees is the finding
                bad.append(f"{type(error).__name__}: {error}")
                continue
            n = day.item(0, "downloads_30d")
            seen.append(n)
            if day.height != 1_000 + n or day.get_column("author").unique().to_list() != [f"ns-{n}"]:
                bad.append(f"{day.height} rows of version {n}, authors {day.get_column('author').unique().to_list()}")

    readers = [threading.Thread(target=read, daemon=True) for _ in range(2)]
    for reader in readers:
        reader.start()
    try:
        for n in range(1, 31):  # each version's metadata differs (its author), so each writes a metadata version
            frame = version(n).with_columns(author=pl.lit(f"ns-{n}"))
            publish_frame(layout, MODELS, DAY, frame, {"version": n}, force=True)
            time.sleep(0.05)
    finally:
        stop.set()
        for reader in readers:
            reader.join(timeout=10)
    assert bad == []
    assert len(seen) > 30 and len(set(seen)) > 5


def test_check_during_a_write_tells_a_writer_at_work_not_an_import_stopped_part_way(tmp_path) -> None:
    import socket
    import subprocess

    import psutil
    from typer.testing import CliRunner

    from flows import backfill
    from flows.cli import app
    from warehouse.lock import writer_lock

    layout = Layout.at(tmp_path)
    publish_frame(layout, MODELS, DAY, version(0), {"version": 0})
    # What an import writes as it starts publishing, and removes once it has made every table.
    marker = backfill.import_marker(layout, [str(tmp_path / "s.csv")])
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"paths": [str(tmp_path / "s.csv")], "dates": [DAY.isoformat()]}))
    check = ["check", "--warehouse", str(tmp_path)]
    with writer_lock(layout, "import s.csv"):
        told = CliRunner().invoke(app, check)
    assert told.exit_code == 0, told.output
    assert "a writer is at work" in told.output and "import s.csv" in told.output
    assert "stopped part way" not in told.output and "to be brought up to date" not in told.output
    # A writer killed holding the lock leaves its name in `_lock`, and a zombie until it is reaped: its import did
    # stop part way.
    killed = subprocess.Popen(["true"])
    while psutil.Process(killed.pid).status() != psutil.STATUS_ZOMBIE:
        time.sleep(0.01)
    layout.lock_file.write_text(json.dumps({"pid": killed.pid, "host": socket.gethostname(), "purpose": "import"}))
    told = CliRunner().invoke(app, check)
    assert told.exit_code == 1 and "stopped part way" in told.output and "at work" not in told.output
    killed.wait()
    told = CliRunner().invoke(app, check)
    assert told.exit_code == 1 and "stopped part way" in told.output and "at work" not in told.output
