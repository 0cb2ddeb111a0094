"""A full disk or a refused write stops the refresh with one clear line; nothing is half-published."""

from __future__ import annotations

import datetime as dt
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows import crawl
from flows.cli import app
from flows.standin_hub import StandinHub
from tests.worlds import world
from warehouse import publish
from warehouse.layout import Layout
from warehouse.publish import read_meta, sha256_of
from warehouse.query import run_sql
from warehouse.tables import ATTRIBUTIONS, CONCENTRATION, CROSSOVERS, MODELS, REGISTRY, SHARES

pytestmark = pytest.mark.usefixtures("hub_online")
DAY1, DAY2 = dt.date(2026, 5, 11), dt.date(2026, 5, 12)
TABLES = (MODELS, REGISTRY, ATTRIBUTIONS, SHARES, CONCENTRATION, CROSSOVERS)
runner = CliRunner()


def refresh(hub: StandinHub, warehouse: Path, day: dt.date):
    args = ["refresh", "--date", day.isoformat(), "--endpoint", hub.url, "--warehouse", str(warehouse)]
    return runner.invoke(app, [*args, "--no-dashboard"], env={"COLUMNS": "20000"})


def fingerprint(layout: Layout, day: dt.date) -> dict[str, str]:
    files = [layout.partition_file(t, day) for t in TABLES] + [layout.meta_file(t, day) for t in TABLES]
    return {str(f.relative_to(layout.root)): sha256_of(f) for f in files}


def whole_or_absent(layout: Layout, day: dt.date) -> None:
    """Each partition of `day` is published with the data its `_meta` describes, or not published at all."""
    for table in TABLES:
        meta = read_meta(layout, table, day)
        if meta is not None:
            assert sha256_of(layout.partition_file(table, day)) == meta["sha256"], table.name
    run_sql(layout, "SELECT count(*) FROM models")  # and readers still read


@pytest.fixture(scope="module")
def day1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from huggingface_hub import constants

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(constants, "HF_HUB_OFFLINE", False)
        template = tmp_path_factory.mktemp("day1") / "wh"
        with StandinHub(world(500), page_size=100) as hub:
            assert refresh(hub, template, DAY1).exit_code == 0
    return template


def no_space(path: object) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def refused(path: object) -> OSError:
    return PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))


def failing_page_write(monkeypatch: pytest.MonkeyPatch) -> str:
    real = crawl.write_parquet

    def write(frame, path: Path, **options) -> None:
        if path.name.endswith("0000002.parquet"):
            raise no_space(path)
        real(frame, path, **options)

    monkeypatch.setattr(crawl, "write_parquet", write)
    return "No space left on device"


def failing_rename_into(table: str, make=refused):
    def patch(monkeypatch: pytest.MonkeyPatch) -> str:
        real = os.replace

        def replace(src, dst) -> None:
            if f"/{table}/snapshot_date=2026-05-12/" in str(dst):
                raise make(dst)
            real(src, dst)

        monkeypatch.setattr(publish.os, "replace", replace)
        return os.strerror(make("x").errno)

    return patch


def failing_meta(table: str):
    def patch(monkeypatch: pytest.MonkeyPatch) -> str:
        real = publish.write_json_atomic

        def write(path: Path, payload: dict) -> None:
            if path.parent.name == table and path.name == "2026-05-12.json":
                raise no_space(path)
            real(path, payload)

        monkeypatch.setattr(publish, "write_json_atomic", write)
        return "No space left on device"

    return patch


def failing_attribution_sink(monkeypatch: pytest.MonkeyPatch) -> str:
    real = publish.sink_parquet

    def sink(plan, path: Path, **options) -> None:
        if path.name.startswith("attributions-2026-05-12"):
            raise no_space(path)
        real(plan, path, **options)

    monkeypatch.setattr(publish, "sink_parquet", sink)
    return "No space left on device"


def failing_metric_write(monkeypatch: pytest.MonkeyPatch) -> str:
    real = publish.write_parquet

    def write(frame, path: Path, **options) -> None:
        if path.name.startswith("shares-2026-05-12"):
            raise no_space(path)
        real(frame, path, **options)

    monkeypatch.setattr(publish, "write_parquet", write)
    return "No space left on device"


@pytest.mark.parametrize(
    "fault",
    [
        failing_page_write,
        failing_rename_into("models"),
        failing_rename_into("models", no_space),
        failing_meta("models"),
        failing_attribution_sink,
        failing_rename_into("attributions"),
        failing_meta("attributions"),
        failing_metric_write,
    ],
    ids=[
        "no-space-writing-a-crawl-page",
        "permission-denied-renaming-models",
        "no-space-renaming-models",
        "no-space-writing-models-meta",
        "no-space-writing-attributions",
        "permission-denied-renaming-attributions",
        "no-space-writing-attributions-meta",
        "no-space-writing-shares",
    ],
)
def test_a_write_that_fails_stops_with_one_line_and_the_next_run_completes(
    fault, day1: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse = tmp_path / "wh"
    shutil.copytree(day1, warehouse)
    layout = Layout.at(warehouse)
    before = fingerprint(layout, DAY1)
    with StandinHub(world(600), page_size=100) as hub:
        with monkeypatch.context() as patched:
            reason = fault(patched)
            result = refresh(hub, warehouse, DAY2)
        assert result.exit_code == 1, result.output
        lines = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and reason in lines[0] and str(warehouse) in lines[0], result.output
        assert "Traceback" not in result.output
        assert fingerprint(layout, DAY1) == before
        whole_or_absent(layout, DAY2)
        again = refresh(hub, warehouse, DAY2)
    assert again.exit_code == 0, again.output
    assert all(layout.published_dates(t) == [DAY1, DAY2] for t in TABLES)
    assert read_meta(layout, MODELS, DAY2)["rows"] == 600
    assert fingerprint(layout, DAY1) == before


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs (skipped where mounting is not allowed), unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    tried = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if tried.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {tried.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_real_full_disk_stops_the_refresh_clearly_and_keeps_day_1(day1: Path, tiny_disk: Path) -> None:
    warehouse = tiny_disk / "wh"
    shutil.copytree(day1, warehouse)
    layout = Layout.at(warehouse)
    before = fingerprint(layout, DAY1)
    used = shutil.disk_usage(tiny_disk).used
    remount = ["mount", "-o", f"remount,size={used + 96 * 1024}", str(tiny_disk)]
    subprocess.run(remount, check=True)
    with StandinHub(world(40_000)) as hub:
        result = refresh(hub, warehouse, DAY2)
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "No space left on device" in lines[0], result.output
    assert lines[0].endswith("free some space there and run the command again: what was published stays whole")
    assert "Traceback" not in result.output
    assert fingerprint(layout, DAY1) == before
    whole_or_absent(layout, DAY2)
    assert layout.published_dates(MODELS) == [DAY1]


def test_a_failed_write_the_writer_does_not_explain_is_told_as_a_write_and_as_a_full_disk_when_it_is_nearly(
    tmp_path, monkeypatch
) -> None:
    """polars may say of a page cut short by a full disk only "Invalid thrift: transport error", which read as a
    reader's word would send the user to check published files: it is told as the write that failed."""
    import errno

    import polars as pl

    from warehouse import publish

    target = tmp_path / "page.parquet"

    def failed() -> None:
        with publish.polars_writing(target):
            raise pl.exceptions.ComputeError("parquet: File out of specification: Invalid thrift: transport error")

    monkeypatch.setattr(publish, "_free_bytes", lambda _folder: 100_000)
    with pytest.raises(OSError) as full:
        failed()
    assert (full.value.errno, full.value.filename) == (errno.ENOSPC, str(target))
    monkeypatch.setattr(publish, "_free_bytes", lambda _folder: 10 * 2**30)
    # With room on the disk, words of damaged bytes are a streamed plan's input's: the reader's error stays.
    with pytest.raises(pl.exceptions.ComputeError, match="Invalid thrift"):
        failed()

    def other() -> None:
        with publish.polars_writing(target):
            raise pl.exceptions.ComputeError("parquet: the sink stopped")

    with pytest.raises(publish.WriteFailed, match=r"writing failed \(parquet: the sink stopped\)") as said:
        other()
    assert said.value.filename == str(target)


def test_a_small_file_written_whole_or_not_at_all_names_itself_when_the_disk_is_full(tmp_path, monkeypatch) -> None:
    import errno
    import os

    from warehouse import publish

    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(publish.os, "fsync", full)
    target = tmp_path / "_meta" / "models" / "2026-05-12.json"
    with pytest.raises(OSError) as told:
        publish.write_json_atomic(target, {"rows": 1})
    assert (told.value.errno, told.value.filename) == (errno.ENOSPC, str(target))
    assert not target.exists() and not list(target.parent.iterdir())
