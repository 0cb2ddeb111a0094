"""`multipolar check` and every command's error name a published file that no longer holds what its record
vouches for, and say how to mend it; a derived partition cut short is made again by the next run."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from flows import steps
from flows.cli import app
from tests.test_warehouse import models_frame
from warehouse.integrity import check_warehouse
from warehouse.layout import Layout
from warehouse.publish import publish_frame, read_meta, write_json_atomic
from warehouse.tables import ATTRIBUTIONS, MODEL_METADATA, MODELS, SHARES, TABLES

DAYS = (dt.date(2026, 5, 11), dt.date(2026, 5, 12))
runner = CliRunner()


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    """A warehouse of two dates with every table published."""
    root = tmp_path_factory.mktemp("published")
    layout = Layout.at(root)
    ids = [f"{org}/m{i}" for org in ("Qwen", "meta-llama", "someone") for i in range(40)]
    for offset, day in enumerate(DAYS):
        frame = models_frame(ids, [100 * (i + offset) for i in range(len(ids))])
        frame = frame.with_columns((pl.col("downloads_30d") * 10).alias("downloads_all_time"))
        publish_frame(layout, MODELS, day, frame, {})
        steps.attribute_date(layout, day)
        steps.metrics_date(layout, day)
        steps.crossovers_date(layout, day)
    return root


@pytest.fixture
def warehouse(published: Path, tmp_path: Path) -> Layout:
    copy = tmp_path / "wh"
    shutil.copytree(published, copy)
    return Layout.at(copy)


def cut_short(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def one_byte_changed(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x01
    path.write_bytes(bytes(data))


def other_rows(path: Path) -> None:
    pl.read_parquet(path).head(3).write_parquet(path)


def removed(path: Path) -> None:
    path.unlink()


def check(layout: Layout, *more: str):
    return runner.invoke(app, ["check", "--warehouse", str(layout.root), *more], env={"COLUMNS": "20000"})


@pytest.mark.parametrize(
    ("made", "said"), [(None, "no such folder"), ("a file", "a file"), ("a folder", "nothing published there")]
)
def test_check_says_why_a_path_is_no_warehouse_as_the_readers_do(tmp_path: Path, made: str | None, said: str) -> None:
    path = tmp_path / "wh"
    if made == "a file":
        path.write_text("not a warehouse\n")
    elif made == "a folder":
        path.mkdir()
    result = check(Layout(path))
    assert result.exit_code == 2, result.output
    assert f"no warehouse at {path} ({said}); give --warehouse or MULTIPOLAR_WAREHOUSE" in result.output


def test_an_intact_warehouse_checks_clean(warehouse: Layout) -> None:
    result = check(warehouse)
    assert result.exit_code == 0, result.output
    # 2 dates of 6 dated tables, and the first day's metadata
    assert "checked 13 published files" in result.output and "all as published" in result.output


@pytest.mark.parametrize(
    ("damage", "said", "quick_finds"),
    [
        (cut_short, "is not a whole Parquet file", True),
        (one_byte_changed, "has changed since it was published", False),
        (other_rows, "holds 3 rows where its record says 360", True),
        (removed, "is missing", True),
    ],
)
def test_check_names_each_damaged_file_what_is_wrong_and_how_to_mend_it(
    warehouse: Layout, damage: Callable[[Path], None], said: str, quick_finds: bool
) -> None:
    day = DAYS[1]
    damaged = warehouse.partition_file(ATTRIBUTIONS, day)
    damage(damaged)
    result = check(warehouse)
    assert result.exit_code == 1, result.output
    lines = [line.strip() for line in result.output.splitlines()]
    assert "1 damaged" in lines[0]
    assert lines[1].startswith(f"attributions {day}: {damaged} {said}"), result.output
    assert lines[1].endswith(f"make it again: multipolar attribute --date {day} --force")
    quick = check(warehouse, "--quick")
    assert quick.exit_code == (1 if quick_finds else 0), quick.output
    # the mend it names mends it
    assert runner.invoke(app, ["attribute", "--date", day.isoformat(), "--force", "--warehouse", str(warehouse.root)])
    assert check(warehouse).exit_code == 0


def test_what_the_hub_served_is_to_be_restored_not_remade(warehouse: Layout) -> None:
    one_byte_changed(warehouse.version_file(MODEL_METADATA, 1))
    cut_short(warehouse.partition_file(MODELS, DAYS[0]))
    report = check_warehouse(warehouse)
    assert [(p.table, p.partition) for p in report.problems] == [
        ("models", "2026-05-11"),
        ("model_metadata", "version-000001"),
    ]
    assert all("restore it from a backup" in p.mend for p in report.problems)


def test_a_damaged_record_is_named_as_such(warehouse: Layout) -> None:
    record = warehouse.meta_file(SHARES, DAYS[0])
    record.write_text('{"table": "shares", ')
    (problem,) = check_warehouse(warehouse).problems
    assert problem.file == str(record) and problem.what.startswith("is damaged (not JSON")
    assert str(problem) == f"shares {DAYS[0]}: {record} {problem.what}; {problem.mend}"  # the path once
    assert problem.mend.startswith("restore it, or remove it")


@pytest.mark.parametrize("table", ["shares", "concentration", "crossovers"])
def test_the_reports_and_the_dashboard_refuse_a_metric_partition_whose_record_is_damaged(
    warehouse: Layout, tmp_path: Path, table: str
) -> None:
    """Drawn into a folder of the caller's as into the warehouse: the data a damaged record vouched for is not
    taken on trust by one reader and refused by another."""
    from warehouse.publish import DamagedRecord

    record = warehouse.meta_file(TABLES[table], DAYS[0])
    record.write_text('{"table": "' + table + '", ')
    for command in ("reproduce", "dashboard"):
        out = tmp_path / command
        result = runner.invoke(app, [command, "--out", str(out), "--warehouse", str(warehouse.root)])
        assert isinstance(result.exception, DamagedRecord), (command, result.output)
        assert str(record) in str(result.exception) and "is damaged (not JSON" in str(result.exception)
        assert not any(out.glob("*.*")), command  # nothing drawn from it


def another_tables_file(path: Path) -> None:
    shutil.copyfile(path.parent.parent.parent / "attributions" / path.parent.name / path.name, path)


@pytest.mark.parametrize(
    ("damage", "said"),
    [(cut_short, "is not a whole Parquet file"), (another_tables_file, "holds 360 rows where its record says 120")],
)
def test_a_command_reading_a_damaged_file_fails_in_one_line_naming_it(
    warehouse: Layout, damage: Callable[[Path], None], said: str
) -> None:
    """Through the installed `multipolar` command: polars says only that some file is not Parquet, or that a
    column is missing (in brackets, which the error line prints as they are)."""
    day = DAYS[1]
    damaged = warehouse.partition_file(MODELS, day)
    damage(damaged)
    command = Path(sys.executable).parent / "multipolar"
    done = subprocess.run(
        [str(command), "metrics", "--date", day.isoformat(), "--force", "--warehouse", str(warehouse.root)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "20000", "HOME": str(warehouse.root.parent)},
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert f"models {day}: {damaged} {said}" in errors[0]
    assert "restore it from a backup" in errors[0]


def test_a_derived_partition_cut_short_is_made_again_by_the_next_run(warehouse: Layout) -> None:
    day = DAYS[1]
    cut_short(warehouse.partition_file(ATTRIBUTIONS, day))
    assert steps.pending_steps(warehouse, day, dashboard=False)[0] == "attribute"
    assert steps.attribute_date(warehouse, day)["status"] == "published"
    assert not check_warehouse(warehouse).problems  # the same bytes again: the metrics follow them still
    assert steps.pending_steps(warehouse, day, dashboard=False) == []


def test_remove_takes_a_date_out_of_every_table_and_brings_the_later_dates_up_to_date(warehouse: Layout) -> None:
    from warehouse.query import run_sql

    root = str(warehouse.root)
    first, last = DAYS
    assert "between" in run_sql(warehouse, "SELECT DISTINCT time_window FROM shares")["time_window"].to_list()
    asked = runner.invoke(app, ["remove", "--date", first.isoformat(), "--warehouse", root], input="n\n")
    assert asked.exit_code == 1 and warehouse.published_dates(MODELS) == list(DAYS)  # nothing without a yes
    result = runner.invoke(app, ["remove", "--date", first.isoformat(), "--warehouse", root, "--yes"])
    assert result.exit_code == 0, result.output
    assert f"removed {first}: crossovers, concentration, shares, attributions, registry, models" in result.output
    assert f"metrics of later dates: {last}" in result.output
    for table in (MODELS, ATTRIBUTIONS, SHARES):
        assert warehouse.published_dates(table) == [last]
        assert not warehouse.partition_dir(table, first).exists()
    # the later date has no date before it now: no between window
    windows = run_sql(warehouse, "SELECT DISTINCT time_window FROM shares")["time_window"].to_list()
    assert "between" not in windows and "30d" in windows
    assert check(warehouse).exit_code == 0
    again = runner.invoke(app, ["remove", "--date", first.isoformat(), "--warehouse", root, "--yes"])
    assert again.exit_code == 2 and f"nothing is published for {first}" in again.output


def test_check_names_derived_partitions_of_a_date_whose_models_are_gone(warehouse: Layout) -> None:
    from warehouse.publish import unpublish

    day = DAYS[1]
    unpublish(warehouse, MODELS, day)  # as a replacement stopped between removing and writing the record
    problems = check_warehouse(warehouse, full=False).problems
    assert {p.table for p in problems} == {"registry", "attributions", "shares", "concentration", "crossovers"}
    assert all(p.mend.endswith(f"multipolar remove --date {day}") for p in problems)
    assert runner.invoke(app, ["remove", "--date", day.isoformat(), "--warehouse", str(warehouse.root), "--yes"])
    assert check(warehouse).exit_code == 0


def test_a_recompute_of_a_warehouse_up_to_date_says_it_recomputed_nothing(warehouse: Layout) -> None:
    result = runner.invoke(app, ["recompute", "--warehouse", str(warehouse.root)], env={"COLUMNS": "20000"})
    assert result.exit_code == 0, result.output
    assert "2 dates up to date; nothing recomputed" in result.output
    assert not any(line.startswith(tuple(str(d) for d in DAYS)) for line in result.output.splitlines())


def test_metrics_and_crossovers_made_by_other_code_are_told_and_made_again(warehouse: Layout) -> None:
    """As after an upgrade that changes how the metrics or crossovers are computed: their partitions are pending,
    and `check` says why rather than blaming a removal stopped part way."""
    from warehouse.publish import read_meta, write_json_atomic
    from warehouse.tables import CROSSOVERS

    day = DAYS[1]
    for table in (SHARES, CROSSOVERS):
        meta = read_meta(warehouse, table, day)
        write_json_atomic(warehouse.meta_file(table, day), meta | {"inputs": meta["inputs"] | {"code": "sha256:0/x"}})
    told = check(warehouse)
    assert told.exit_code == 1
    assert f"{day}: metrics, crossovers to be made again, computed by other code than this version" in told.output
    assert "stopped part way" not in told.output
    result = runner.invoke(app, ["recompute", "--warehouse", str(warehouse.root)], env={"COLUMNS": "20000"})
    assert result.exit_code == 0, result.output
    assert "recomputed 1 of 2 dates" in result.output
    assert check(warehouse).exit_code == 0


def test_attributions_made_by_other_rules_are_told_and_made_again_with_what_follows(warehouse: Layout) -> None:
    """As after an upgrade that changes the attribution rules' code: the date's attributions, and the metrics and
    crossovers made from them, are pending, and `recompute` makes them again."""
    from warehouse.publish import read_meta, write_json_atomic

    day = DAYS[1]
    meta = read_meta(warehouse, ATTRIBUTIONS, day)
    other_rules = meta | {"inputs": meta["inputs"] | {"code": "sha256:0/x"}}
    write_json_atomic(warehouse.meta_file(ATTRIBUTIONS, day), other_rules)
    told = check(warehouse)
    assert told.exit_code == 1
    expected = f"{day}: attribute, metrics, crossovers to be made again, computed by other code than this version"
    assert expected in told.output
    result = runner.invoke(app, ["recompute", "--warehouse", str(warehouse.root)], env={"COLUMNS": "20000"})
    assert result.exit_code == 0, result.output
    assert "recomputed 1 of 2 dates" in result.output
    assert read_meta(warehouse, ATTRIBUTIONS, day)["inputs"]["code"].startswith("sha256:")
    assert check(warehouse).exit_code == 0


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How many times each record is read from the warehouse (a request each on an object store)."""
    from warehouse import publish

    counted: Counter[str] = Counter()
    read_record = publish.read_record
    monkeypatch.setattr(publish, "read_record", lambda path: counted.update([str(path)]) or read_record(path))
    return counted


def test_a_pass_over_every_date_reads_each_record_once_and_a_later_read_sees_what_was_written_since(
    warehouse: Layout, reads: Counter[str]
) -> None:
    """Each date's crossovers depend on the records of every date before it: a pass over a year of dates read
    them 66,000 times (a request each on an object store)."""
    assert steps.out_of_date(warehouse) == {}
    assert reads and max(reads.values()) == 1, reads.most_common(3)

    meta = read_meta(warehouse, SHARES, DAYS[0])
    write_json_atomic(warehouse.meta_file(SHARES, DAYS[0]), meta | {"inputs": {}})
    assert steps.out_of_date(warehouse) == {DAYS[0]: ["metrics", "crossovers"]}


def test_the_dashboard_and_the_reports_read_each_record_once(warehouse: Layout, reads: Counter[str]) -> None:
    """What they are drawn from and what they record as drawn from are the same records, read once (a request
    each on an object store)."""
    for step in (steps.reproduction_step, lambda layout: steps.dashboard_step(layout, force=True)):
        reads.clear()
        assert step(warehouse)["status"] == "published"
        assert reads and max(reads.values()) == 1, reads.most_common(3)
    for command in ("reproduce", "dashboard"):
        for out in ([], ["--out", str(warehouse.root.parent / command)]):
            reads.clear()
            result = runner.invoke(app, [command, "--warehouse", str(warehouse.root), *out])
            assert result.exit_code == 0, result.output
            assert reads and max(reads.values()) == 1, (command, out, reads.most_common(3))


def test_a_pass_over_every_date_lists_each_table_once_and_a_later_listing_sees_what_was_published_since(
    warehouse: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each date asks for the dates of `models` (twice) and `shares`: a pass over a year of dates listed their
    folders 2,190 times (a request each on an object store)."""
    from warehouse import layout as listing
    from warehouse.publish import unpublish

    listed: Counter[str] = Counter()
    names = listing._names
    monkeypatch.setattr(listing, "_names", lambda folder, **kw: listed.update([str(folder)]) or names(folder, **kw))
    assert steps.out_of_date(warehouse) == {}
    assert listed and max(listed.values()) == 1, listed.most_common(3)

    with listing.listings_kept():
        assert warehouse.published_dates(SHARES) == list(DAYS)
        later = publish_a_later_date(warehouse)
        assert warehouse.published_dates(SHARES) == [*DAYS, later]
        assert unpublish(warehouse, SHARES, later)
        assert warehouse.published_dates(SHARES) == list(DAYS)


def test_metrics_with_nothing_to_do_leave_the_reports_as_they_were(warehouse: Layout) -> None:
    root = str(warehouse.root)
    for options in ([], ["--format", "json"]):
        assert runner.invoke(app, ["reproduce", "--warehouse", root, *options]).exit_code == 0
    reports = warehouse.root / "reports"
    written = {p.name: p.stat().st_mtime_ns for p in reports.iterdir()}
    for p in reports.iterdir():
        os.utime(p, ns=(1, 1))  # as if written long ago
    result = runner.invoke(app, ["metrics", "--warehouse", root, "--no-dashboard"])
    assert result.exit_code == 0, result.output
    assert {p.name: p.stat().st_mtime_ns for p in reports.iterdir()} == dict.fromkeys(written, 1)
    later = publish_a_later_date(warehouse)
    assert runner.invoke(app, ["metrics", "--warehouse", root, "--no-dashboard"]).exit_code == 0
    assert all(p.stat().st_mtime_ns > 1 for p in reports.iterdir()), later
    assert check(warehouse).exit_code == 0


def test_a_recompute_takes_the_dates_published_once_it_holds_the_lock(warehouse: Layout, monkeypatch) -> None:
    """A date removed by another writer just before the recompute takes the lock is not recomputed."""
    import flows.recompute

    root, taken = str(warehouse.root), flows.recompute.writer_lock

    def removed_first(layout: Layout, purpose: str, **kwargs):
        gone = runner.invoke(app, ["remove", "--date", DAYS[0].isoformat(), "--warehouse", root, "--yes"])
        assert gone.exit_code == 0, gone.output
        return taken(layout, purpose, **kwargs)

    monkeypatch.setattr(flows.recompute, "writer_lock", removed_first)
    result = runner.invoke(app, ["recompute", "--force", "--warehouse", root], env={"COLUMNS": "20000"})
    assert result.exit_code == 0, result.output
    assert "recomputed 1 of 1 date" in result.output and not result.output.count(f"{DAYS[0]}:")
    assert check(warehouse).exit_code == 0


def publish_a_later_date(warehouse: Layout) -> dt.date:
    """Publish, attribute and measure a date after DAYS, as a refresh does before its dashboard and reports."""
    later = DAYS[1] + dt.timedelta(days=1)
    ids = [f"{org}/m{i}" for org in ("Qwen", "meta-llama", "someone") for i in range(40)]
    frame = models_frame(ids, [100 * (i + 2) for i in range(len(ids))])
    frame = frame.with_columns((pl.col("downloads_30d") * 10).alias("downloads_all_time"))
    publish_frame(warehouse, MODELS, later, frame, {})
    for step in (steps.attribute_date, steps.metrics_date, steps.crossovers_date):
        step(warehouse, later)
    return later


def test_check_tells_of_reports_made_from_other_data_and_the_next_writer_makes_every_one_again(
    warehouse: Layout,
) -> None:
    """As after a run stopped before its reports: a new date's metrics are published, the reports not."""
    root = str(warehouse.root)
    for options in ([], ["--format", "html"], ["--format", "json", "--window", "all_time"]):
        made = runner.invoke(app, ["reproduce", "--warehouse", root, *options])
        assert made.exit_code == 0, made.output
    assert check(warehouse).exit_code == 0
    later = publish_a_later_date(warehouse)
    told = check(warehouse)
    assert told.exit_code == 1
    for line in (
        "reports/reproduction.md: not made from the data published now; make it again: multipolar reproduce",
        "reports/reproduction.html: not made from the data published now; make it again: multipolar reproduce "
        "--format html",
        "reports/reproduction.json: not made from the data published now; make it again: multipolar reproduce "
        "--format json --window all_time",
    ):
        assert line in told.output.splitlines() or f"  {line}" in told.output.splitlines(), told.output
    reports = warehouse.root / "reports"
    assert str(later) not in (reports / "reproduction.html").read_text()
    outcome = steps.reproduction_step(warehouse)
    assert outcome["also"] == "reproduction.html, reproduction.json"
    assert all(str(later) in (reports / name).read_text() for name in ("reproduction.md", "reproduction.html"))
    assert json.loads((reports / "reproduction.json").read_text())["window"] == "all_time"
    assert check(warehouse).exit_code == 0
    # What reports.json holds besides the reproduction reports in a window the metrics have is ignored.
    record = json.loads((reports / "reports.json").read_text())
    record["../../outside.txt"] = {"window": "30d"}
    record["reproduction.html"]["window"] = "30d; rm -rf ~"
    (reports / "reports.json").write_text(json.dumps(record))
    told = check(warehouse)
    assert told.exit_code == 0 and "outside" not in told.output and "rm -rf" not in told.output, told.output
    # A Markdown report written in another window is made again in it.
    assert runner.invoke(app, ["reproduce", "--warehouse", root, "--window", "all_time"]).exit_code == 0
    steps.reproduction_step(warehouse)
    assert json.loads((reports / "reports.json").read_text())["reproduction.md"]["window"] == "all_time"


def test_the_reports_and_the_dashboard_record_when_and_by_what_code_they_were_made(warehouse: Layout) -> None:
    from warehouse.provenance import code_version, library_versions

    assert runner.invoke(app, ["reproduce", "--warehouse", str(warehouse.root)]).exit_code == 0
    steps.dashboard_step(warehouse, force=True)
    report = json.loads((warehouse.root / "reports" / "reports.json").read_text())["reproduction.md"]
    dashboard = json.loads((warehouse.dashboard_dir / "dashboard.json").read_text())
    for record in (report, dashboard):
        assert record["code_version"] == code_version() and record["libraries"] == library_versions()
        assert dt.datetime.fromisoformat(record["made_at"]) <= dt.datetime.now(dt.UTC)
    made_at = report["made_at"]
    steps.reproduction_step(warehouse)  # nothing changed: the report and its record stay as they were
    again = json.loads((warehouse.root / "reports" / "reports.json").read_text())["reproduction.md"]
    assert again["made_at"] == made_at
    assert check(warehouse).exit_code == 0


def test_name_value_folders_above_the_warehouse_are_no_columns_of_its_series(published: Path, tmp_path: Path) -> None:
    """Only each file's own `snapshot_date=` folder dates it: `/data/rule=official/snapshot_date=1999-01-01/wh`
    is an ordinary place for a warehouse."""
    copy = tmp_path / "rule=official" / "snapshot_date=1999-01-01" / "wh"
    shutil.copytree(published, copy)
    for table in (SHARES, steps.CONCENTRATION, steps.CROSSOVERS):
        moved = steps.series(Layout.at(copy), table)
        assert moved.equals(steps.series(Layout.at(published), table)), table.name
        assert sorted(set(moved["snapshot_date"])) == list(DAYS)
        assert moved.columns == [*table.columns, "snapshot_date"]
    assert steps.reproduction_step(Layout.at(copy))["status"] == "published"
    # So in `sql`: a view over the copy reads what it reads over the original, and no column of the path.
    from warehouse.query import MODEL_VIEWS, run_sql

    for view in (*MODEL_VIEWS, *TABLES):
        query = f"SELECT * FROM {view} ORDER BY ALL"
        moved, kept = run_sql(Layout.at(copy), query), run_sql(Layout.at(published), query)
        assert moved.height > 0 and moved.equals(kept), view
        dated = view != "model_metadata"  # kept by version, not by date
        assert moved.columns == kept.columns and ("snapshot_date" in moved.columns) == dated, view
        assert not dated or sorted(set(moved["snapshot_date"])) == list(DAYS), view


def test_partitions_written_before_a_column_was_added_read_with_it_null(warehouse: Layout) -> None:
    """A warehouse published by an earlier version: `crossovers` had no `observed`. The dashboard, the report
    and `sql` read old and new partitions together until the old are made again."""
    from warehouse.query import run_sql
    from warehouse.tables import CROSSOVERS

    old = warehouse.partition_file(CROSSOVERS, DAYS[0])
    pl.read_parquet(old).drop("observed").write_parquet(old)
    both = steps.series(warehouse, CROSSOVERS)
    first = both.filter(pl.col("snapshot_date") == DAYS[0])
    assert first.height > 0 and first["observed"].null_count() == first.height
    assert steps.dashboard_step(warehouse, force=True)["status"] == "published"
    assert steps.reproduction_step(warehouse)["status"] == "published"
    assert run_sql(warehouse, "SELECT count(*) AS n FROM crossovers WHERE observed IS NULL")["n"].item() > 0
    assert "crossovers" in steps.pending_steps(warehouse, DAYS[0], dashboard=False)  # made again by the next run


def test_a_long_line_into_a_pipe_stays_one_line(warehouse: Layout) -> None:
    """Not folded at 80 columns (or `$COLUMNS`): grep and logs see each line whole."""
    result = runner.invoke(app, ["metrics", "--warehouse", str(warehouse.root)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    report = warehouse.root / "reports" / "reproduction.md"
    assert f"reproduce: published (report {report})" in result.output.splitlines(), result.output


@pytest.mark.parametrize(
    ("record", "said"),
    [
        ({}, "table is missing"),
        ({"sha256": None}, "sha256 is not a sha256"),
        ({"rows": "x"}, "rows is not a count"),
        ({"rows": True}, "rows is not a count"),
        ({"metadata": {"versions": "1"}}, "metadata.versions is not a list of version numbers"),
    ],
)
def test_a_record_without_what_records_hold_is_damaged_and_remove_touches_nothing(
    warehouse: Layout, record: dict, said: str
) -> None:
    """A record that is JSON, but lacks its sha256 or row count or has them of the wrong kind, vouches for
    nothing: check names it, and a removal refuses to start rather than stop part way."""
    import json

    target = warehouse.meta_file(MODELS, DAYS[1])
    kept = json.loads(target.read_text())
    target.write_text(json.dumps({} if not record else kept | record))
    result = check(warehouse)
    assert result.exit_code == 1, result.output
    assert f"models {DAYS[1]}: {target} is damaged ({said}); restore it" in result.output, result.output
    removal = runner.invoke(
        app,
        ["remove", "--date", DAYS[0].isoformat(), "--warehouse", str(warehouse.root), "--yes"],
        env={"COLUMNS": "20000"},
    )
    assert removal.exit_code == 1 and said in str(removal.exception), removal.output
    for table in (MODELS, ATTRIBUTIONS, SHARES):  # nothing removed
        assert warehouse.published_dates(table) == list(DAYS)


def test_a_date_taken_out_without_its_later_dates_updated_is_told_by_check_and_mended_by_recompute(
    warehouse: Layout,
) -> None:
    """A date taken out by other means than `remove` (which marks itself while it runs), before the later dates
    were updated: check says which dates are out of date and how to mend them; a removal of that date, or of a
    mistyped one, says nothing is published for it, exits 2 and names the mend, rather than telling of a removal."""
    from warehouse.publish import unpublish

    first, last = DAYS
    for table in (steps.CROSSOVERS, steps.CONCENTRATION, SHARES, ATTRIBUTIONS, steps.REGISTRY, MODELS):
        unpublish(warehouse, table, first)
    result = check(warehouse)
    assert result.exit_code == 1, result.output
    assert "all as published; 1 to be brought up to date" in result.output
    assert f"{last}: metrics, crossovers to be made again, computed from inputs that changed since" in result.output
    root = str(warehouse.root)
    for day in (first, dt.date(2020, 1, 1)):
        again = runner.invoke(app, ["remove", "--date", day.isoformat(), "--warehouse", root, "--yes"])
        assert again.exit_code == 2, again.output
        assert f"nothing is published for {day}" in again.output
        assert f"dates after it are to be made again: multipolar recompute ({last})" in again.output
    assert runner.invoke(app, ["recompute", "--warehouse", root]).exit_code == 0
    assert check(warehouse).exit_code == 0
    done = runner.invoke(app, ["remove", "--date", first.isoformat(), "--warehouse", root, "--yes"])
    said = f"nothing is published for {first} in {root}; give --date {last}, the one published\n"
    assert done.exit_code == 2 and said in done.output, done.output


def test_check_tells_of_dates_attributed_with_an_earlier_registry(
    warehouse: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from analytics import registry

    edited = tmp_path / "registry.csv"
    edited.write_text(registry.REGISTRY_PATH.read_text().replace("Vintern Vietnamese", "Vintern (Vietnamese)"))
    monkeypatch.setattr(registry, "REGISTRY_PATH", edited)
    result = check(warehouse)
    assert result.exit_code == 1, result.output
    assert "2 to be brought up to date" in result.output
    # Consecutive dates with the same steps and reason are told on one line (after an upgrade, every date).
    run = f"{DAYS[0]} … {DAYS[1]} (2 dates): attribute, metrics, crossovers to be made again, attributed with another"
    assert run in result.output
    assert len([line for line in result.output.splitlines() if "to be made again" in line]) == 1


def test_registry_gaps_leaves_out_the_namespaces_reviewed_since_the_date_was_attributed(
    warehouse: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A curator who has just added a namespace to the registry is not shown it again as a gap, and is told that
    the date was attributed with the registry before."""
    from analytics import registry

    gaps = ["registry", "gaps", "--warehouse", str(warehouse.root)]
    before = runner.invoke(app, gaps, env={"COLUMNS": "20000"})
    assert before.exit_code == 0 and "someone" in before.stdout and "warning" not in before.output, before.output
    edited = tmp_path / "registry.csv"
    edited.write_bytes(registry.REGISTRY_PATH.read_bytes() + b"Someone,Some Lab,FR,Europe,industry,a test row\n")
    monkeypatch.setattr(registry, "REGISTRY_PATH", edited)
    after = runner.invoke(app, gaps, env={"COLUMNS": "20000"})
    assert after.exit_code == 0, after.output
    assert "someone" not in after.stdout
    told = (
        f"warning: {DAYS[-1]} was attributed with another registry than the one in use; 1 namespace it lists now is "
        f"left out: `multipolar recompute` attributes {DAYS[-1]} with the registry in use"
    )
    assert told in after.stderr
    edited.write_bytes(registry.REGISTRY_PATH.read_bytes() + b"Someone,Some Lab,XX,Europe,industry,a test row\n")
    broken = runner.invoke(app, gaps, env={"COLUMNS": "20000"})
    assert broken.exit_code == 0 and "someone" in broken.stdout, broken.output
    assert "the registry in use is broken (line " in broken.stderr and "unknown country code 'XX'" in broken.stderr


@pytest.mark.parametrize("save", ["lands between the reads", "is under way"])
def test_a_registry_saved_while_a_date_is_attributed_is_published_under_its_own_version(
    warehouse: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, save: str
) -> None:
    """An editor saving the registry while `attribute` reads it: the rows published are those of the version their
    `_meta` records, so that going back to the registry before (an undo) leaves the date to be made again."""
    from analytics import registry

    path = tmp_path / "registry.csv"
    before = registry.REGISTRY_PATH.read_bytes()
    saved = before + b"someone,Some Lab,FR,Europe,industry,saved while the registry was read\n"
    path.write_bytes(before)
    monkeypatch.setattr(registry, "REGISTRY_PATH", path)
    load = registry.load_registry
    reads = []

    def read_while_saved(*args):
        reads.append(path.read_bytes())
        if len(reads) > 1:
            return load(*args)
        if save == "lands between the reads":
            path.write_bytes(saved)
            return load(*args)
        path.write_bytes(b"")  # the editor has cut the file and not yet written it again
        try:
            return load(*args)
        finally:
            path.write_bytes(saved)

    monkeypatch.setattr(registry, "load_registry", read_while_saved)
    day = DAYS[-1]
    assert steps.attribute_date(warehouse, day, force=True)["status"] == "published"
    published = warehouse.scan(TABLES["registry"], day).collect()
    version = read_meta(warehouse, ATTRIBUTIONS, day)["registry_version"]
    assert "someone" in published["namespace"].to_list()
    assert version == registry.registry_version(path) and version.endswith(f"/{published.height} rows")
    path.write_bytes(before)  # the edit undone
    assert steps.pending_steps(warehouse, day, dashboard=False)[0] == "attribute"


def kill_removal_after(monkeypatch: pytest.MonkeyPatch, step: str) -> None:
    """Make a removal stop, as if killed, once `step` of `flows.steps` is done."""
    from flows import steps as step_module

    done = getattr(step_module, step)

    def stopped(*args, **kwargs):
        done(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(step_module, step, stopped)


@pytest.mark.parametrize("step", ["remove_date", "reproduction_step"])
def test_a_removal_stopped_part_way_is_told_by_check_blocks_other_writers_and_is_finished_by_removing_again(
    warehouse: Layout, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """Wherever it stops, check says to finish the removal (not to make the date's tables again), no other
    writer starts meanwhile, and the same removal finishes it: the dashboard too."""
    root = str(warehouse.root)
    first, last = DAYS
    assert runner.invoke(app, ["dashboard", "--warehouse", root]).exit_code == 0
    kill_removal_after(monkeypatch, step)
    stopped = runner.invoke(app, ["remove", "--date", first.isoformat(), "--warehouse", root, "--yes"])
    assert stopped.exit_code != 0
    monkeypatch.undo()
    told = check(warehouse)
    assert told.exit_code == 1, told.output
    assert f"a removal of {first} stopped part way; finish it: multipolar remove --date {first}" in told.output
    blocked = runner.invoke(app, ["recompute", "--warehouse", root], env={"COLUMNS": "20000"})
    assert blocked.exit_code == 3 and f"finish it first: multipolar remove --date {first}" in blocked.output
    other = runner.invoke(app, ["remove", "--date", last.isoformat(), "--warehouse", root, "--yes"])
    assert other.exit_code == 3 and blocked.output.splitlines()[-1] in other.output, other.output
    finished = runner.invoke(app, ["remove", "--date", first.isoformat(), "--warehouse", root])
    assert finished.exit_code == 0, finished.output
    assert f"finishing the removal of {first}" in finished.output
    assert warehouse.published_dates(MODELS) == [last]
    assert check(warehouse).exit_code == 0 and str(first) not in (warehouse.dashboard_dir / "index.html").read_text()


def test_a_removal_that_finds_another_stopped_part_way_once_it_holds_the_lock_leaves_it_to_be_finished(
    warehouse: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A removal of the first date stops part way while one of the last waits for the lock (or at its question):
    the second refuses, rather than write over the first's mark and leave its date half removed, untold."""
    from flows import cli_warehouse
    from warehouse.lock import REMOVAL

    root = str(warehouse.root)
    first, last = DAYS
    take_lock = cli_warehouse.warehouse_writer

    def another_removal_stops_first(layout, what):
        (layout.root / REMOVAL).write_text(json.dumps({"date": first.isoformat()}))
        layout.meta_file(SHARES, first).unlink()
        return take_lock(layout, what)

    monkeypatch.setattr(cli_warehouse, "warehouse_writer", another_removal_stops_first)
    refused = runner.invoke(app, ["remove", "--date", last.isoformat(), "--warehouse", root, "--yes"])
    assert refused.exit_code == 3, refused.output  # as every other writer is refused
    said = f"a removal of {first} from {root} stopped part way; finish it first: multipolar remove --date {first}"
    assert said in refused.output
    assert warehouse.published_dates(MODELS) == list(DAYS)
    monkeypatch.undo()
    told = check(warehouse)
    assert f"a removal of {first} stopped part way; finish it: multipolar remove --date {first}" in told.output


def test_check_tells_of_a_dashboard_drawn_from_other_metrics(warehouse: Layout) -> None:
    """As after a refresh stopped before its dashboard: the metrics of a new date are published, the page not."""
    root = str(warehouse.root)
    assert runner.invoke(app, ["dashboard", "--warehouse", root]).exit_code == 0
    assert check(warehouse).exit_code == 0
    publish_a_later_date(warehouse)
    result = check(warehouse)
    assert result.exit_code == 1 and "dashboard: not drawn from the metrics published now" in result.output
    assert runner.invoke(app, ["dashboard", "--warehouse", root]).exit_code == 0
    assert check(warehouse).exit_code == 0
