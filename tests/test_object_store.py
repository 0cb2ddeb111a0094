"""A warehouse on an object store: refresh, publish, SQL, lock and dashboard against S3 on loopback."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator

import polars as pl
import psutil
import pytest
from typer.testing import CliRunner

from flows import schedule as flows_schedule
from flows.cli import app
from flows.standin_hub import StandinHub
from tests.worlds import world
from warehouse.layout import Layout
from warehouse.lock import WarehouseLocked, let_go_of_gone_runs, writer_lock
from warehouse.query import QueryRefused, run_sql
from warehouse.tables import ATTRIBUTIONS, MODELS, SHARES

DAY = dt.date(2026, 5, 12)
runner = CliRunner()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1, for the whole module."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture
def bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path, request) -> str:
    """A fresh bucket, with the usual AWS variables pointing at the loopback S3."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ALLOW_HTTP": "true",
        "MULTIPOLAR_STAGING": str(tmp_path / "staging"),
    }.items():
        monkeypatch.setenv(name, value)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    # one bucket per test, each parametrized case its own
    tag = hashlib.sha256(request.node.name.encode()).hexdigest()[:8]
    name = f"wh-{request.node.originalname.replace('_', '-')[:40].lower()}-{tag}"
    s3fs.S3FileSystem().mkdir(name)
    return f"s3://{name}/multipolar"


def refresh(hub: StandinHub, warehouse: str, *extra: str):
    args = ["refresh", "--date", DAY.isoformat(), "--endpoint", hub.url, "--warehouse", warehouse, *extra]
    return runner.invoke(app, args)


@pytest.mark.usefixtures("hub_online")
def test_a_refresh_publishes_every_table_and_the_dashboard_to_the_object_store(bucket: str) -> None:
    with StandinHub(world(800), page_size=300) as hub:
        result = refresh(hub, bucket)
        assert result.exit_code == 0, result.output
        assert "published 2026-05-12: 800 models" in result.output
        again = refresh(hub, bucket)
        assert "nothing to do" in again.output
        # A forced refresh replaces the date in the bucket: each old record removed, its new file put, a new record.
        replaced = refresh(hub, bucket, "--force")
    assert replaced.exit_code == 0, replaced.output
    assert "published 2026-05-12: 800 models" in replaced.output
    layout = Layout.at(bucket)
    assert layout.remote and layout.published_dates(MODELS) == [DAY]
    for table in (MODELS, ATTRIBUTIONS, SHARES):
        meta = json.loads(layout.meta_file(table, DAY).read_text())
        assert meta["file"] == f"{table.location}/snapshot_date=2026-05-12/part-00000.parquet"
    assert layout.scan(MODELS, DAY).select(pl.len()).collect().item() == 800
    assert (layout.dashboard_dir / "index.html").is_file() and (layout.dashboard_dir / "dashboard.json").is_file()
    frame = run_sql(layout, "SELECT rule, count(*) AS n FROM attributions GROUP BY rule ORDER BY rule")
    assert frame["n"].to_list() == [800, 800, 800]
    # `credited` joins the date on `model_row` there too: each attribution row meets its own model.
    from warehouse.query import rows_point_at_models

    assert rows_point_at_models(layout, DAY)
    credited = run_sql(layout, "SELECT count(*) AS n, count(DISTINCT model_id) AS ids FROM credited")
    assert credited.row(0) == (2400, 800)
    # The id comes from `models` and the namespace from `attributions`: a row met by another model's would differ.
    paired = run_sql(
        layout,
        "SELECT count(*) FILTER (WHERE contains(model_id, '/')) AS n, count(*) FILTER (WHERE contains(model_id, '/') "
        "AND credited_namespace <> split_part(model_id, '/', 1)) AS wrong FROM credited WHERE rule = 'uploader'",
    )
    assert paired.row(0)[0] > 700 and paired.row(0)[1] == 0
    assert not layout.staging.joinpath("crawl", DAY.isoformat()).exists()  # local work in progress cleared
    # `multipolar check` reads the objects as it reads files, and names one cut short.
    from warehouse.integrity import check_warehouse

    report = check_warehouse(layout)
    assert report.partitions >= 7 and report.problems == []  # every dated table, and the metadata's versions
    shares = layout.partition_file(SHARES, DAY)
    data = shares.read_bytes()
    shares.write_bytes(data[: len(data) // 2])
    (problem,) = check_warehouse(layout).problems
    assert (problem.table, problem.file) == ("shares", str(shares)) and "not a whole Parquet file" in problem.what


def test_readers_trust_only_partitions_with_their_meta(bucket: str) -> None:
    layout = Layout.at(bucket)
    orphan = layout.partition_file(MODELS, DAY)
    with orphan.open("wb") as handle:
        MODELS.empty().write_parquet(handle)
    assert layout.published_dates(MODELS) == []
    assert run_sql(layout, "SELECT count(*) AS n FROM models")["n"].item() == 0


def test_sql_on_an_object_store_stays_confined_to_the_warehouse(bucket: str) -> None:
    other = bucket.replace("/multipolar", "/elsewhere.parquet")
    with pytest.raises(QueryRefused):
        run_sql(Layout.at(bucket), f"SELECT * FROM read_parquet('{other}')")


def test_the_object_lock_refuses_a_second_writer_and_recovers_from_a_dead_one(bucket: str) -> None:
    layout = Layout.at(bucket)
    with writer_lock(layout, "first"):
        with pytest.raises(WarehouseLocked, match="first"):
            with writer_lock(layout, "second"):
                pass
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    holder = {
        "pid": int(dead.stdout),
        "host": socket.gethostname(),
        "purpose": "crashed",
        "since": "2026-05-12T00:00:00+00:00",
    }
    holder["since"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    layout.lock_file.write_text(json.dumps(holder))
    with writer_lock(layout, "after a crash"):
        assert json.loads(layout.lock_file.read_text())["purpose"] == "after a crash"
    assert not layout.lock_file.exists()


def test_a_served_run_whose_serve_is_gone_lets_the_object_lock_go_as_it_stops(bucket: str) -> None:
    # serve stopped (SIGTERM: a pod replaced) or killed: its run stops as if killed, and a lock it left would
    # refuse the writers of every other host, the next pod's serve among them, until its TTL.
    run = (
        "import os, sys, time\n"
        "import flows.schedule  # a run serve started, set up as one\n"
        "from warehouse.layout import Layout\n"
        "from warehouse.lock import writer_lock\n"
        "with writer_lock(Layout.at(sys.argv[1]), 'refresh'):\n"
        "    print(os.getpid(), flush=True)\n"
        "    time.sleep(120)\n"
    )
    serve = f'{flows_schedule.SERVE_PID}=$$ "$0" -c "$1" "$2" & sleep 8'
    shell = subprocess.Popen(["sh", "-c", serve, sys.executable, run, bucket], stdout=subprocess.PIPE, text=True)
    assert shell.stdout is not None
    pid = int(shell.stdout.readline())
    layout = Layout.at(bucket)
    assert layout.lock_file.exists()
    shell.wait(timeout=30)
    deadline = time.monotonic() + 30
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the run went on without serve"
        time.sleep(0.2)
    layout.lock_file.fs.invalidate_cache()
    assert not layout.lock_file.exists()


def test_serve_lets_go_of_the_lock_of_the_run_prefect_killed_as_serve_stopped(bucket: str) -> None:
    # serve stopped by SIGTERM (a pod replaced): Prefect kills its running refresh outright, which cannot let its
    # object-store lock go; serve removes it, once the run is gone, and leaves a live one's alone.
    run = (
        "import os, sys, time\n"
        "from warehouse.layout import Layout\n"
        "from warehouse.lock import writer_lock\n"
        "with writer_lock(Layout.at(sys.argv[1]), 'refresh'):\n"
        "    print(os.getpid(), flush=True)\n"
        "    time.sleep(120)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", run, bucket], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and int(child.stdout.readline()) == child.pid
        layout = Layout.at(bucket)
        assert not let_go_of_gone_runs(layout, within=0.5)  # a run still at work is waited for, then left
        assert layout.lock_file.exists()
        threading.Timer(1.0, child.kill).start()
        assert let_go_of_gone_runs(layout)  # killed while waited for: not yet reaped, gone all the same
        layout.lock_file.fs.invalidate_cache()
        assert not layout.lock_file.exists()
    finally:
        child.kill()
        child.wait(timeout=30)
    with writer_lock(layout, "a writer of another host, at once"):
        pass


def test_a_lock_whose_pid_another_process_took_since_is_taken_over(bucket: str) -> None:
    # A container started anew under the same host name (a pod's container restarted once its writer was killed
    # for memory) gives its processes the pids of the last: the dead writer's pid is a live process again.
    layout = Layout.at(bucket)
    dead_writer = {
        "pid": os.getpid(),
        "started_after_boot": psutil.Process().create_time() - psutil.boot_time() - 600,
        "host": socket.gethostname(),
        "purpose": "import panel",
        "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    layout.lock_file.write_text(json.dumps(dead_writer))
    with writer_lock(layout, "after a restart"):
        assert json.loads(layout.lock_file.read_text())["purpose"] == "after a restart"
        with pytest.raises(WarehouseLocked, match="after a restart"):  # a live holder is still told apart
            with writer_lock(layout, "second"):
                pass
    assert not layout.lock_file.exists()


def test_two_writers_that_find_the_same_stale_lock_never_hold_it_at_once(bucket: str, monkeypatch) -> None:
    """Both read the dead writer's lock as stale before either removes it; the one that does not take it over
    waits for the one that did, rather than removing its new lock; each release removes only its own lock."""
    from warehouse import lock as lock_module

    layout = Layout.at(bucket)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    since = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    layout.lock_file.write_text(
        json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(), "purpose": "crashed", "since": since})
    )
    both_read = threading.Barrier(2, timeout=10)
    stale = lock_module._stale

    def stale_once_both_read(holder: dict) -> bool:
        found = stale(holder)
        if holder.get("purpose") == "crashed":
            with contextlib.suppress(threading.BrokenBarrierError):
                both_read.wait()
            if threading.current_thread().name == "B":
                time.sleep(0.3)  # B goes on once A has taken the stale lock over
        return found

    monkeypatch.setattr(lock_module, "_stale", stale_once_both_read)
    layout.lock_file.fs.invalidate_cache()
    inside: list[str] = []
    overlaps: list[tuple[str, ...]] = []

    def write(name: str) -> None:
        with lock_module._object_lock(layout, name, wait_seconds=20):
            inside.append(name)
            if len(inside) > 1:
                overlaps.append(tuple(inside))
            time.sleep(0.5)
            inside.remove(name)

    writers = [threading.Thread(target=write, args=(name,), name=name) for name in ("A", "B")]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=60)
    assert not overlaps
    assert not layout.lock_file.exists()


def test_a_takeover_left_half_done_by_a_dead_writer_waits_as_long_as_asked_then_is_cleared(
    bucket: str, monkeypatch
) -> None:
    from warehouse import lock as lock_module

    layout = Layout.at(bucket)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    since = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    raw = json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(), "purpose": "crashed", "since": since})
    layout.lock_file.write_text(raw)
    marker = f"{layout.lock_file.path}.taken-{hashlib.sha256(raw.encode()).hexdigest()[:32]}"
    layout.lock_file.fs.pipe(marker, b"{}")  # as a writer leaves it that died taking the lock over
    began = time.monotonic()
    with pytest.raises(WarehouseLocked, match="crashed"):
        with writer_lock(layout, "waits a second", wait_seconds=1):
            pass
    assert time.monotonic() - began < 10
    monkeypatch.setattr(lock_module, "MARKER_GRACE", dt.timedelta(0))  # the marker has aged
    with writer_lock(layout, "after the grace"):
        assert json.loads(layout.lock_file.read_text())["purpose"] == "after the grace"
    layout.lock_file.fs.invalidate_cache()
    assert not layout.lock_file.fs.glob(f"{layout.root.path}/_lock.taken-*")


def test_a_writer_taken_over_past_the_ttl_leaves_the_new_holders_lock_in_place(bucket: str) -> None:
    layout = Layout.at(bucket)
    newer = {"pid": 1, "host": "elsewhere", "purpose": "took over", "since": "2026-05-12T00:00:00+00:00", "token": "x"}
    with writer_lock(layout, "a long backfill"):
        layout.lock_file.write_text(json.dumps(newer))  # as another writer does once the TTL has passed
    assert json.loads(layout.lock_file.read_text()) == newer


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP], ids=["sigterm", "sighup"])
def test_a_writer_stopped_by_sigterm_or_sighup_lets_the_object_lock_go(bucket: str, stop: signal.Signals) -> None:
    # An import, a recompute or a removal stopped by `kill`, a timeout, a pod's end or a closed terminal: on another
    # host the lock it left would be taken for a live writer's until its TTL, and every writer there refused for
    # 12 hours.
    holding = (
        "import sys, time\n"
        "from warehouse.layout import Layout\n"
        "from warehouse.lock import writer_lock\n"
        "with writer_lock(Layout.at(sys.argv[1]), 'import panel'):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(60)\n"
    )
    writer = subprocess.Popen([sys.executable, "-c", holding, bucket], stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None and writer.stdout.readline().strip() == "held"
    writer.send_signal(stop)
    assert writer.wait(timeout=30) == 128 + stop
    layout = Layout.at(bucket)
    layout.lock_file.fs.invalidate_cache()
    assert not layout.lock_file.exists()


def replaced_after_reading(monkeypatch, layout: Layout, purpose: str, reads: int, newer: dict) -> None:
    """Another writer makes its lock in the instant after this process's `reads`-th read of the lock held for
    `purpose`: between the check that it is unchanged and the request that removes it."""
    from warehouse import lock as lock_module

    read_lock, seen = lock_module._read_lock, []

    def read_then_replaced(lock):
        raw, holder = read_lock(lock)
        if holder.get("purpose") == purpose:
            seen.append(raw)
            if len(seen) == reads:
                lock.fs.rm(lock.path)
                lock.fs.pipe(lock.path, json.dumps(newer).encode())
        return raw, holder

    monkeypatch.setattr(lock_module, "_read_lock", read_then_replaced)


def test_a_lock_made_between_a_takeovers_check_and_its_removal_is_kept(bucket: str, monkeypatch) -> None:
    """The stale lock is released, and a third writer takes the lock, after the taker found it unchanged: the
    taker's conditional DELETE (If-Match the stale lock's ETag) leaves the third writer's lock in place."""
    layout = Layout.at(bucket)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    since = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    layout.lock_file.write_text(
        json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(), "purpose": "crashed", "since": since})
    )
    third = {"pid": os.getpid(), "host": socket.gethostname(), "purpose": "third", "since": since, "token": "t"}
    replaced_after_reading(monkeypatch, layout, "crashed", reads=2, newer=third)  # found stale, then checked
    with pytest.raises(WarehouseLocked, match="third"):
        with writer_lock(layout, "taker", wait_seconds=1):
            pass
    layout.lock_file.fs.invalidate_cache()
    assert json.loads(layout.lock_file.read_text()) == third
    assert not layout.lock_file.fs.glob(f"{layout.root.path}/_lock.taken-*")


def test_a_lock_taken_over_in_the_instant_of_its_release_is_kept(bucket: str, monkeypatch) -> None:
    layout = Layout.at(bucket)
    newer = {"pid": 1, "host": "elsewhere", "purpose": "took over", "since": "2026-05-12T00:00:00+00:00", "token": "x"}
    replaced_after_reading(monkeypatch, layout, "a long backfill", reads=1, newer=newer)  # the release's check
    with writer_lock(layout, "a long backfill"):
        pass
    layout.lock_file.fs.invalidate_cache()
    assert json.loads(layout.lock_file.read_text()) == newer


def test_an_import_backfills_into_the_object_store(bucket: str, tmp_path) -> None:
    source = tmp_path / "snapshots.csv"
    source.write_text(
        "snapshot_date,model_id,downloads_30d\n"
        "2026-05-11,Qwen/Qwen3-8B,100\n2026-05-11,meta-llama/Llama-3.1-8B,80\n"
        "2026-05-12,Qwen/Qwen3-8B,120\n2026-05-12,meta-llama/Llama-3.1-8B,70\n"
    )
    result = runner.invoke(app, ["import", str(source), "--warehouse", bucket])
    assert result.exit_code == 0, result.output
    china = run_sql(
        Layout.at(bucket),
        "SELECT snapshot_date, share FROM shares WHERE rule = 'uploader' AND population = 'all' "
        "AND time_window = '30d' AND dimension = 'region' AND actor = 'China' ORDER BY 1",
    )
    assert [round(s, 4) for s in china["share"]] == [round(100 / 180, 4), round(120 / 190, 4)]
    assert os.environ["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1")


def imported(bucket: str, tmp_path, days: list[dt.date]) -> Layout:
    """A warehouse on S3 holding `days` imported from a snapshot file, each date attributed and measured."""
    source = tmp_path / "snapshots.csv"
    source.write_text(
        "snapshot_date,model_id,downloads_30d\n"
        + "".join(f"{d},Qwen/Qwen3-8B,{100 + n}\n{d},meta-llama/Llama-3.1-8B,{80 - n}\n" for n, d in enumerate(days))
    )
    assert runner.invoke(app, ["import", str(source), "--warehouse", bucket]).exit_code == 0
    return Layout.at(bucket)


def counted_requests(layout: Layout, monkeypatch) -> list[tuple[str, dict]]:
    """Every request s3fs makes for `layout` from now on: its method and arguments."""
    fs = layout.root.fs
    asked: list[tuple[str, dict]] = []
    call = fs._call_s3

    async def counted(method, *args, **kwargs):
        asked.append((method, kwargs))
        return await call(method, *args, **kwargs)

    monkeypatch.setattr(fs, "_call_s3", counted)
    return asked


def test_a_writer_fetches_only_the_records_changed_since_they_were_last_found_whole(
    bucket: str, tmp_path, monkeypatch
) -> None:
    from warehouse.publish import DamagedRecord

    layout = imported(bucket, tmp_path, [dt.date(2026, 5, d) for d in range(8, 12)])
    requests = counted_requests(layout, monkeypatch)

    def records_fetched() -> list[str]:
        requests.clear()
        with writer_lock(layout, "a writer"):
            pass
        return [a["Key"] for method, a in requests if method == "get_object" and "/_meta/" in a["Key"]]

    records_fetched()  # the import's writer lock found them all whole already
    assert records_fetched() == []
    # Another machine's writer republishes a record: only it is fetched again, and a damaged one is found.
    record = layout.meta_file(SHARES, dt.date(2026, 5, 9))
    text = record.read_text()
    record.write_text(text.replace('"rows"', '"rows" ', 1))
    assert [key.rsplit("/", 2)[-2:] for key in records_fetched()] == [["shares", "2026-05-09.json"]]
    record.write_text(text.replace('"rows"', '"row_count"', 1))
    with pytest.raises(DamagedRecord, match="rows is missing"):
        records_fetched()
    with pytest.raises(DamagedRecord):  # found again by the next writer: a damaged record is never remembered
        records_fetched()


def test_sql_lists_each_table_afresh_rather_than_asking_for_each_file(bucket: str, tmp_path, monkeypatch) -> None:
    import s3fs

    days = [dt.date(2026, 5, d) for d in range(8, 12)]
    layout = imported(bucket, tmp_path, days)
    requests = counted_requests(layout, monkeypatch)
    query = "SELECT snapshot_date, count(*) AS n FROM credited GROUP BY 1 ORDER BY 1"
    assert run_sql(layout, query)["snapshot_date"].to_list() == days
    first = Counter(method for method, _ in requests)
    # Another writer adds a date: the next query lists again and sees it.
    other = s3fs.S3FileSystem(skip_instance_cache=True)
    for found in other.find(layout.root.path):
        if days[-1].isoformat() in found and "/dashboard/" not in found:
            other.copy(found, found.replace(days[-1].isoformat(), DAY.isoformat()))
    requests.clear()
    assert run_sql(layout, query)["snapshot_date"].to_list() == [*days, DAY]
    asked = Counter(method for method, _ in requests)
    # Every file's size, date and ETag come from listings: no file is looked up alone, and a date more
    # costs no listing more.
    assert first["head_object"] == asked["head_object"] == 0, (first, asked)
    assert 0 < first["list_objects_v2"] == asked["list_objects_v2"], (first, asked)


def test_a_query_reads_files_of_the_views_it_names_and_of_no_other(bucket: str, tmp_path, monkeypatch) -> None:
    layout = imported(bucket, tmp_path, [dt.date(2026, 5, d) for d in range(8, 12)])
    requests = counted_requests(layout, monkeypatch)

    def folders_read(query: str) -> set[str]:
        requests.clear()
        assert run_sql(layout, query).height
        keys = [arguments["Key"] for method, arguments in requests if method == "get_object"]
        return {key.split("/snapshot_date=")[0].split("/version=")[0].rsplit("/", 1)[-1] for key in keys}

    assert folders_read("SELECT snapshot_date, max(share) AS top FROM shares GROUP BY 1") == {"shares"}
    assert folders_read("WITH c AS (SELECT * FROM concentration) SELECT count(*) FROM c") == {"concentration"}
    # `credited` joins each date's models and attributions (and reads their records): never a metric table.
    credited = folders_read("SELECT count(*) FROM credited")
    assert {"models", "attributions"} <= credited
    assert not credited & {"registry", "shares", "concentration", "crossovers"}, credited


@pytest.mark.parametrize(
    ("setting", "said", "codes"),
    [
        ({"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}, "the object store asks for credentials", (1, 1)),
        ({"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}, "cannot reach the object store at http://127.0.0.1:9", (1, 1)),
        ({"WAREHOUSE": "s3://no-such-bucket/multipolar"}, "no warehouse at s3://no-such-bucket/multipolar", (2, 2)),
        ({"WAREHOUSE": "s3://{bucket}/nothing-here"}, "no warehouse at s3://{bucket}/nothing-here", (2, 2)),
        ({"WAREHOUSE": "s3://{bucket}/wh[1]"}, "where [ would be read as patterns", (2, 2)),
    ],
    ids=["no credentials", "no answer", "no bucket", "empty prefix", "a pattern in the prefix"],
)
@pytest.mark.parametrize("command", [["check"], ["sql", "SELECT count(*) FROM shares"]], ids=["check", "sql"])
def test_an_object_store_that_cannot_be_read_fails_in_one_line(
    bucket: str, tmp_path, setting: dict[str, str], said: str, codes: tuple[int, int], command: list[str]
) -> None:
    """An object store without credentials, not answering, without the bucket, or with nothing under the
    prefix: one line saying which, never `all as published`, an empty answer or a traceback."""
    name = bucket.split("/")[2]
    setting = {k: v.format(bucket=name) for k, v in setting.items()}
    warehouse = setting.pop("WAREHOUSE", bucket)
    env = {**os.environ, "COLUMNS": "20000", "AWS_EC2_METADATA_DISABLED": "true", **setting}
    env |= {"AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    env = {k: v for k, v in env.items() if v != ""}
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", *command, "--warehouse", warehouse],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == codes[command[0] == "sql"], done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "all as published" not in done.stdout and not done.stdout.strip()
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and said.format(bucket=name) in errors[0], done.stderr


def test_a_live_writer_keeps_its_lock_when_the_clock_is_set_since_it_took_it(bucket: str, monkeypatch) -> None:
    """A step of the host's clock (NTP setting it, a VM moved) moves the start of every process as a date: a writer
    of this host still at work is no other process for it, and its lock is not taken over."""
    layout = Layout.at(bucket)
    with writer_lock(layout, "refresh 2026-05-12"):
        booted, started = psutil.boot_time(), psutil.Process.create_time
        monkeypatch.setattr(psutil, "boot_time", lambda: booted + 5)  # the clock set 5 s ahead since
        monkeypatch.setattr(psutil.Process, "create_time", lambda self: started(self) + 5)
        with pytest.raises(WarehouseLocked, match="refresh 2026-05-12"):
            with writer_lock(layout, "import panel"):
                pass
