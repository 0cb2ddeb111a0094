"""`multipolar sql` over a warehouse it cannot write: DuckDB spills into a private temporary folder instead.

The warehouse is made read-only with its mode bits and, when the tests run as root (whom mode bits do not
stop), with the immutable attribute on each of its folders (`chattr +i`), which stops root too.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from tests.test_warehouse import DAY, models_frame
from warehouse.layout import Layout
from warehouse.publish import publish_frame
from warehouse.query import MEMORY_ENV, QueryRefused, connect, run_sql
from warehouse.tables import MODELS

runner = CliRunner()


@contextmanager
def read_only(root: Path) -> Iterator[None]:
    """`root` and everything in it read-only while the block runs, for root as for any user."""
    folders = [root, *(path for path in root.rglob("*") if path.is_dir())]
    files = [path for path in root.rglob("*") if path.is_file()]
    immutable: list[Path] = []
    try:
        for path in files:
            path.chmod(0o444)
        for path in folders:
            path.chmod(0o555)
        if os.geteuid() == 0:
            if shutil.which("chattr") is None:
                pytest.skip("running as root, whom mode bits do not stop, without chattr to make folders immutable")
            for path in folders:
                made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
                if made.returncode:
                    pytest.skip(f"running as root, and chattr +i is refused here: {made.stderr.strip()}")
                immutable.append(path)
        with pytest.raises(OSError):
            (root / "_staging" / "probe").mkdir(parents=True)
        yield
    finally:
        for path in immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        for path in folders:
            path.chmod(0o755)
        for path in files:
            path.chmod(0o644)


def warehouse_with_a_day(root: Path, *, staging: bool) -> Layout:
    """A warehouse holding one published `models` day; with its spill folder made by a first query, or with
    no `_staging` at all (a copy of the published files only)."""
    layout = Layout.at(root)
    publish_frame(layout, MODELS, DAY, models_frame(["a/x", "b/y", "c/z"], [3, 4, 5]), {"source_kind": "test"})
    if staging:
        assert run_sql(layout, "SELECT count(*) AS n FROM models").item() == 3
        assert (layout.staging / "duckdb").is_dir()
    else:
        shutil.rmtree(layout.staging)
    return layout


@pytest.mark.parametrize("staging", [False, True], ids=["no staging", "spill folder made before"])
def test_sql_answers_on_a_read_only_warehouse_and_reads_nothing_else(tmp_path, staging) -> None:
    root = tmp_path / "warehouse"
    layout = warehouse_with_a_day(root, staging=staging)
    outside = tmp_path / "outside.csv"
    outside.write_text("a\n1\n")
    with read_only(root):
        assert run_sql(layout, "SELECT sum(downloads_30d) AS n FROM models").item() == 12
        result = runner.invoke(app, ["sql", "SELECT model_id FROM models ORDER BY 1", "--warehouse", str(root)])
        assert result.exit_code == 0, result.output
        assert "a/x" in result.output and "c/z" in result.output
        # The spill folder: the process's own under the temporary directory, readable by its owner only.
        with connect(layout) as con:
            spill = Path(con.execute("SELECT current_setting('temp_directory')").fetchone()[0])
        assert spill.parent == Path(tempfile.gettempdir()) and spill.name.startswith("multipolar-duckdb-")
        assert stat.S_IMODE(spill.stat().st_mode) == 0o700
        # A file beside it in the temporary directory stays out of reach.
        with pytest.raises(QueryRefused):
            run_sql(layout, f"SELECT * FROM read_csv('{outside}')")
    assert not (root / "_staging" / "probe").exists()


@pytest.mark.parametrize("staging", [False, True], ids=["no staging", "spill folder made before"])
def test_work_beyond_the_memory_limit_spills_on_a_read_only_warehouse(tmp_path, monkeypatch, staging) -> None:
    root = tmp_path / "warehouse"
    warehouse_with_a_day(root, staging=staging)
    monkeypatch.setenv(MEMORY_ENV, "300MB")
    with read_only(root):
        rows = run_sql(
            Layout.at(root),
            "SELECT count(DISTINCT md5(i::VARCHAR) || md5((-i)::VARCHAR)) AS n FROM range(5000000) t(i)",
        )
    assert rows.item() == 5_000_000


@pytest.mark.parametrize(
    "command",
    [
        ["dashboard"],
        ["metrics"],
        ["attribute", "--date", DAY.isoformat(), "--force"],
        ["remove", "--date", DAY.isoformat(), "--yes"],
    ],
    ids=["dashboard", "metrics", "attribute", "remove"],
)
def test_a_writer_on_a_read_only_warehouse_stops_in_one_line(tmp_path, monkeypatch, capsys, command) -> None:
    import sys

    from flows import cli, steps

    layout = warehouse_with_a_day(tmp_path / "wh", staging=True)
    steps.attribute_date(layout, DAY)
    steps.metrics_date(layout, DAY)
    monkeypatch.setattr(sys, "argv", ["multipolar", *command, "--warehouse", str(layout.root)])
    with read_only(layout.root), pytest.raises(SystemExit) as done:
        cli.main()
    told = capsys.readouterr()
    lines = [line for line in told.err.splitlines() if line.strip()]
    assert done.value.code != 0 and "Traceback" not in told.err, told.err
    assert len(lines) == 1 and lines[0].startswith("error: [Errno") and str(layout.root) in lines[0], told.err
    assert lines[0].endswith(
        "this user cannot write there: run as one who can, or give a --warehouse it can write to "
        "(sql and check only read)"
    ), told.err
    assert layout.published_dates(MODELS) == [DAY]
