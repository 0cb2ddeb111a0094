"""A mistaken argument or setting fails in one line saying what is wrong, before anything is started or
stored: no traceback, through the installed command."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flows import steps
from tests.test_warehouse import models_frame
from warehouse.layout import Layout
from warehouse.publish import publish_frame
from warehouse.tables import MODELS

DAY = dt.date(2026, 5, 12)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    """A warehouse of one date with its metrics, and a file where a folder might be asked for."""
    root = tmp_path_factory.mktemp("errors")
    layout = Layout.at(root / "wh")
    frame = models_frame([f"Qwen/m{i}" for i in range(20)], [100 * i for i in range(20)])
    publish_frame(layout, MODELS, DAY, frame, {})
    steps.attribute_date(layout, DAY)
    steps.metrics_date(layout, DAY)
    (root / "a-file").write_text("not a folder")
    (root / "snapshots.csv").write_text("snapshot_date,model_id,downloads_30d\n2026-05-12,Qwen/m0,5\n")
    return root


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    command = Path(sys.executable).parent / "multipolar"
    environment = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | {"COLUMNS": "20000", **env}
    return subprocess.run([str(command), *args], capture_output=True, text=True, env=environment, timeout=120)


CASES = [
    (["serve", "--cron", "61 * * * *"], 2, "--cron '61 * * * *' is not a cron schedule"),
    (["serve", "--cron", "bad"], 2, "--cron 'bad' is not a cron schedule"),
    (["serve", "--cron", "0 6 * * * *"], 2, "--cron '0 6 * * * *' is not a cron schedule (five fields"),
    (["serve", "--cron", ""], 2, "--cron '' is not a cron schedule"),
    (["serve", "--endpoint", "http://user:secret@hub.example"], 2, "the endpoint carries credentials"),
    (["serve", "--endpoint", "ftp://hub.example"], 2, "endpoint 'ftp://hub.example' is not an http(s) URL"),
    (["refresh", "--endpoint", "http://hub.example/?token=secret"], 2, "the endpoint carries a query or fragment"),
    (["serve", "--endpoint", "http://hub.example/?token=secret"], 2, "the endpoint carries a query or fragment"),
    (["dashboard", "--out", "{root}/a-file"], 2, "--out {root}/a-file: a file of that name is there, not a folder"),
    (["reproduce", "--out", "{root}/a-file/x"], 2, "--out {root}/a-file/x: cannot make that folder (Not a directory)"),
    (["recompute", "--address", "tcp://127.0.0.1:9"], 2, "--address names a Dask scheduler or Ray cluster"),
    (["reproduce", "--window", "between", "--out", "{root}/rep"], 2, "no date has LLM shares in the between window"),
    (["refresh", "--endpoint", "http://[::1"], 2, "endpoint 'http://[::1' is not a URL that can be read"),
    (["serve", "--endpoint", "http://127.0.0.1:99999"], 2, "is not a URL that can be read (Port out of range"),
    (["refresh", "--endpoint", "http://127.0.0.1:8801 "], 2, "holds spaces or control characters"),
    (["refresh", "--endpoint", "http://user:secret@[::1"], 2, "endpoint (not shown: it carries credentials"),
    (["refresh", "--endpoint", "https:/me:hf_secret@huggingface.co"], 2, "the endpoint carries credentials"),
    (["recompute", "--runner", "dask", "--address", "tcp://[::1"], 2, "cannot reach the Dask scheduler at --address"),
    (["recompute", "--runner", "dask", "--address", "tcp://u:secret@127.0.0.1:9"], 2, "at --address tcp://…@127"),
    (["refresh", "--date", "20260501"], 2, "--date '20260501' is not a date of the form YYYY-MM-DD"),
    (["metrics", "--date", "2026-W18-5"], 2, "--date '2026-W18-5' is not a date of the form YYYY-MM-DD"),
    (["import", "{root}/no-such.csv"], 2, "no such file or folder: {root}/no-such.csv; nothing was imported"),
]


@pytest.mark.parametrize(("args", "code", "said"), CASES, ids=[" ".join(c[0][:3]) for c in CASES])
def test_a_mistaken_argument_fails_in_one_line(warehouse: Path, args: list[str], code: int, said: str) -> None:
    root = str(warehouse)
    done = run(*[a.format(root=root) for a in args], "--warehouse", f"{root}/wh")
    assert done.returncode == code, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "secret" not in done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and said.format(root=root) in errors[0], done.stderr


@pytest.mark.parametrize("latency", ["0", "-1", "nan"])
def test_a_benchmark_without_latency_to_measure_against_fails_in_one_line(latency: str) -> None:
    done = run("bench", "--models", "1000", "--days", "2", "--latency", latency)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(errors) == 1 and "--latency: give seconds above 0" in errors[0], done.stderr


@pytest.mark.parametrize("command", [["recompute"], ["serve", "--interval", "60"]])
def test_a_prefect_api_that_does_not_answer_fails_in_one_line(warehouse: Path, command: list[str]) -> None:
    done = run(*command, "--warehouse", f"{warehouse}/wh", PREFECT_API_URL="http://127.0.0.1:9/api")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    (error,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert "no Prefect server answers at PREFECT_API_URL http://127.0.0.1:9/api" in error


def test_a_prefect_api_url_that_is_no_prefect_api_fails_in_one_line_without_its_credentials(warehouse: Path) -> None:
    """A server that answers, but not as Prefect's API (its URL without `/api`, say), and a URL with a password."""
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://user:s3cret@127.0.0.1:{server.server_port}"
        done = run("recompute", "--warehouse", f"{warehouse}/wh", PREFECT_API_URL=url)
    finally:
        server.shutdown()
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "s3cret" not in done.stdout + done.stderr
    (error,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert f"PREFECT_API_URL http://…@127.0.0.1:{server.server_port} is no Prefect API" in error
    assert "(its health check answered HTTP 404); does it end in /api?" in error


@pytest.mark.parametrize("command", [["refresh"], ["serve"], ["import", "{root}/snapshots.csv"]])
def test_a_warehouse_that_is_a_file_fails_at_once_in_one_line(warehouse: Path, command: list[str]) -> None:
    done = run(*[word.format(root=warehouse) for word in command], "--warehouse", f"{warehouse}/a-file")
    assert done.returncode == 2, done.stdout + done.stderr
    (error,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert f"--warehouse {warehouse}/a-file is a file, not a folder" in error


@pytest.mark.parametrize("command", [["refresh"], ["serve"], ["import", "{root}/snapshots.csv"]])
def test_a_warehouse_set_by_the_environment_that_is_a_file_is_named(warehouse: Path, command: list[str]) -> None:
    done = run(*[word.format(root=warehouse) for word in command], MULTIPOLAR_WAREHOUSE=f"{warehouse}/a-file")
    assert done.returncode == 2, done.stdout + done.stderr
    (error,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert f"--warehouse {warehouse}/a-file is a file, not a folder" in error


def warehouse_commands(group=None, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command of the CLI, sub-commands included, that takes --warehouse."""
    import typer

    from flows.cli import app

    group = typer.main.get_command(app) if group is None else group
    found = []
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a group of commands
            found += warehouse_commands(command, (*prefix, name))
        elif any("--warehouse" in param.opts for param in command.params):
            found.append((*prefix, name))
    return found


# Commands that make the warehouse they are given when it is not there yet.
MAKE_A_WAREHOUSE = {("refresh",), ("import",), ("serve",), ("demo",)}
# What a command needs besides --warehouse to get as far as reading it.
NEEDS = {("sql",): ["SELECT 1"], ("remove",): ["--date", "2026-05-12", "--yes"]}


@pytest.mark.parametrize("command", [c for c in warehouse_commands() if c not in MAKE_A_WAREHOUSE], ids=" ".join)
def test_a_warehouse_that_is_not_there_fails_with_exit_code_2_in_the_same_line(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    done = run(*command, *NEEDS.get(command, []), "--warehouse", f"{tmp_path}/nope")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    (error,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert error == f"error: no warehouse at {tmp_path}/nope (no such folder); give --warehouse or MULTIPOLAR_WAREHOUSE"
    assert not (tmp_path / "nope").exists()


def date_commands() -> list[tuple[str, ...]]:
    """Every command that takes --warehouse and --date."""
    import typer

    from flows.cli import app

    def of(path: tuple[str, ...]):
        command = typer.main.get_command(app)
        for name in path:
            command = command.commands[name]
        return command

    return [c for c in warehouse_commands() if any("--date" in param.opts for param in of(c).params)]


# Commands that publish the --date they are given.
MAKE_A_DATE = {("refresh",)}


@pytest.mark.parametrize("command", [c for c in date_commands() if c not in MAKE_A_DATE], ids=" ".join)
def test_a_date_not_in_the_warehouse_fails_with_exit_code_2_in_the_same_line(
    warehouse: Path, command: tuple[str, ...]
) -> None:
    asks = ["--yes"] if command == ("remove",) else []  # without it, remove asks first
    done = run(*command, "--date", "2026-05-01", "--warehouse", f"{warehouse}/wh", *asks)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    (error,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    said = f"error: nothing is published for 2026-05-01 in {warehouse}/wh; give --date {DAY}, the one published"
    assert error.startswith(said), error
    assert Layout.at(warehouse / "wh").published_dates(MODELS) == [DAY]


@pytest.mark.parametrize("command", [["sql", "SELECT 1"], ["check"], ["refresh"], ["metrics"]], ids=" ".join)
def test_an_object_store_warehouse_that_cannot_be_used_as_given_fails_with_exit_code_2(command: list[str]) -> None:
    done = run(*command, "--warehouse", "s3://bucket/wh[1]")
    assert done.returncode == 2, done.stdout + done.stderr
    (error,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert "an object-store warehouse cannot be at s3://bucket/wh[1]" in error and "choose a prefix" in error


@pytest.mark.parametrize(
    ("root", "said"),
    [
        ("s3://AKIAEXAMPLE:wJalrSecretKey@bucket/wh", "the warehouse URL carries credentials (user:secret@bucket)"),
        # An AWS secret key often holds a slash, which ends the bucket's part of the URL before the @.
        ("s3://AKIAEXAMPLE:wJalr/SecretKey@bucket/wh", "the warehouse URL carries credentials (user:secret@bucket)"),
        ("gs://AKIAEXAMPLE:wJalr/SecretKey@bucket/wh", "the warehouse URL carries credentials (user:secret@bucket)"),
        ("s3://bad_bucket!/wh", "an object-store warehouse cannot be at s3://bad_bucket!/wh: an S3 bucket is named"),
        ("s3://AKIAEXAMPLE@bucket/wh", "an object-store warehouse cannot be at s3://(not shown): an S3 bucket"),
    ],
)
@pytest.mark.parametrize("command", [["sql", "SELECT 1"], ["refresh"]], ids=" ".join)
def test_an_object_store_warehouse_with_credentials_or_no_bucket_name_fails_in_one_line_not_repeating_them(
    command: list[str], root: str, said: str
) -> None:
    done = run(*command, "--warehouse", root)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    (error,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert error.startswith(f"error: {said}"), error
    told = done.stdout + done.stderr
    assert "wJalr" not in told and "SecretKey" not in told and "AKIAEXAMPLE" not in told


@pytest.mark.parametrize(
    ("stop", "code", "said"), [("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "stopped by SIGTERM")]
)
def test_a_query_stopped_by_a_signal_exits_with_its_code_in_one_line(
    warehouse: Path, stop: str, code: int, said: str
) -> None:
    """DuckDB turns the signal's exception into its own `Query interrupted`: the command exits as stopped anyway."""
    import signal
    import time

    import psutil

    command = Path(sys.executable).parent / "multipolar"
    query = "SELECT sum(i * i % 7) FROM range(100000000000) t(i)"
    running = subprocess.Popen(
        [str(command), "sql", query, "--warehouse", f"{warehouse}/wh"], stderr=subprocess.PIPE, text=True
    )
    # Into the query, however slowly the command starts: starting takes under a second of CPU, the query all it gets.
    spent, deadline = psutil.Process(running.pid), time.monotonic() + 120
    while sum(spent.cpu_times()[:2]) < 3 and time.monotonic() < deadline and running.poll() is None:
        time.sleep(0.1)
    running.send_signal(getattr(signal, stop))
    _, stderr = running.communicate(timeout=60)
    assert running.returncode == code, stderr
    assert "Traceback" not in stderr, stderr
    assert stderr.strip() == f"{said}: what was published stays whole; run the command again to finish", stderr
