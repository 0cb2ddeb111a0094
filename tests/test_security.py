"""Secrets stay secret, SQL stays read-only and confined, hostile files and names stay inert text."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import traceback
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analytics import registry
from flows import hub as hub_module
from flows import standin_faults as faults
from flows.cli import app
from flows.crawl import crawl_to_staging
from flows.hub import HubError
from flows.scope import parse_scope
from flows.standin_hub import StandinHub
from tests.worlds import model, world
from warehouse.layout import Layout
from warehouse.tables import MODELS

DAY = dt.date(2026, 5, 12)
CANARY = "hf_CANARY_s3cur1ty_f41led_run_9c2e"
HOSTILE = "<script>alert(1)</script>"
runner = CliRunner()


def files_holding(secret: str, *roots: Path) -> list[Path]:
    return [p for root in roots for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


# -- the token ---------------------------------------------------------------------------------------


@pytest.mark.usefixtures("hub_online")
def test_a_canary_token_appears_nowhere_when_the_refresh_fails_with_an_http_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_TOKEN", CANARY)
    monkeypatch.setitem(hub_module.BACKOFF, "base_wait_time", 0.01)
    monkeypatch.setitem(hub_module.BACKOFF, "max_wait_time", 0.02)
    warehouse = tmp_path / "wh"
    lasting = [faults.rate_limit(times=1, pages={1}), faults.server_error(503, times=None, pages={2})]
    with StandinHub(world(300), page_size=100, faults=lasting) as hub:
        args = ["refresh", "--date", DAY.isoformat(), "--endpoint", hub.url, "--warehouse", str(warehouse)]
        result = runner.invoke(app, [*args, "--no-dashboard", "--verbose"])
        assert hub.received_token(CANARY)
        with pytest.raises(HubError) as raised:
            crawl_to_staging(Layout.at(tmp_path / "direct"), DAY, parse_scope("full"), hub.url, token=CANARY)
    assert result.exit_code == 1
    lines = error_lines(result.output)
    assert len(lines) == 1 and lines[0].startswith(f"error: {hub.url} answered HTTP 503 after retries: ")
    texts = [result.output, str(result.exception), str(raised.value), repr(raised.value)]
    texts.append("".join(traceback.format_exception(raised.value)))
    assert not [t for t in texts if CANARY in t]
    prefect_home = Path(os.environ["PREFECT_HOME"])  # the Prefect database and logs of in-process runs
    assert files_holding(CANARY, tmp_path, prefect_home) == []
    assert Layout.at(warehouse).published_dates(MODELS) == []


def token_pieces(text: str, token: str = CANARY, least: int = 6) -> list[str]:
    low = text.lower()
    return [token[i : i + least] for i in range(len(token) - least + 1) if token[i : i + least].lower() in low]


@pytest.mark.usefixtures("hub_online")
@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize(
    "echo",
    [
        lambda token: {"error": f"Invalid credentials in Authorization header: Bearer {token}"},
        lambda token: {"error": f"Token {token[:12]}... is not valid"},
        lambda token: {"error": f"the token ending {token[-8:]} may not list models"},
        lambda token: {"error": f"bad token {token.lower()}"},
        lambda token: {"error": f"bad token {token.upper()}"},
    ],
    ids=["whole", "prefix", "suffix", "lower", "upper"],
)
def test_no_part_of_the_token_a_hub_echoes_in_a_refusal_reaches_the_error(tmp_path, status: int, echo) -> None:
    import http.server
    import threading

    class Refusing(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
            body = json.dumps(echo(self.headers["Authorization"].partition(" ")[2])).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    refusing = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=refusing.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{refusing.server_address[1]}"
    try:
        with pytest.raises(HubError) as raised:
            crawl_to_staging(Layout.at(tmp_path), DAY, parse_scope("full"), endpoint, token=CANARY)
    finally:
        refusing.shutdown()
    said = str(raised.value)
    assert f"answered HTTP {status}: " in said and "(token)" in said, said
    assert token_pieces(said) == [], said


# -- multipolar sql ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "refused"),
    [
        ("COPY (SELECT 1) TO '{out}/copied.csv'", "COPY statements are refused"),
        # EXPLAIN ANALYZE runs what it explains: into the warehouse itself, whose files DuckDB may open
        ("EXPLAIN ANALYZE COPY (SELECT 1 AS x) TO '{wh}/copied.parquet'", "EXPLAIN of a COPY statement is refused"),
        ("EXPLAIN (ANALYZE, FORMAT json) COPY (SELECT 1) TO '{wh}/c.csv'", "EXPLAIN of a COPY statement is refused"),
        ("explain analyse create table t as select 1", "EXPLAIN of a CREATE statement is refused"),
        ("ATTACH '{out}/other.db'", "ATTACH statements are refused"),
        ("INSTALL httpfs", "statements are refused"),
        ("LOAD httpfs", "LOAD statements are refused"),
        ("CREATE TABLE t AS SELECT 1", "CREATE statements are refused"),
        ("SELECT 1; DROP VIEW models", "DROP statements are refused"),
        ("SET enable_external_access = true", "SET statements are refused"),
        ("SELECT * FROM read_csv('{out}/outside.csv')", "only the warehouse's own files can be read"),
        ("SELECT * FROM read_csv('{wh}/../outside.csv')", "only the warehouse's own files can be read"),
        ("SELECT * FROM read_text('/etc/hostname')", "only the warehouse's own files can be read"),
        ("SELECT * FROM glob('/*')", "only the warehouse's own files can be read"),
    ],
)
def test_sql_refuses_writes_extensions_and_outside_files_in_one_line_with_exit_2(
    tmp_path, query: str, refused: str
) -> None:
    warehouse = tmp_path / "wh"
    (warehouse / "_meta").mkdir(parents=True)  # a warehouse with nothing published yet
    (tmp_path / "outside.csv").write_text("secret\n42\n")
    sql = query.format(out=tmp_path, wh=warehouse)
    result = runner.invoke(app, ["sql", sql, "--warehouse", str(warehouse)])
    assert result.exit_code == 2, result.output
    lines = error_lines(result.output)
    assert len(lines) == 1 and refused in lines[0] and "refused" in lines[0]
    assert "Traceback" not in result.output and "42" not in result.output.replace(lines[0], "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside.csv", "wh"]  # nothing was written
    assert not [p for p in warehouse.rglob("*") if p.is_file()]  # nor into the warehouse


# -- the registry ------------------------------------------------------------------------------------

HEADER = "namespace,lab,country,region,developer_type,evidence\n"
GOOD = "Qwen,Qwen,CN,China,industry,https://qwen.ai\n"
HOSTILE_REGISTRIES = {
    "markup": (HEADER + GOOD + f"{HOSTILE},Lab,US,United States,industry,x\n", [(3, "malformed namespace")]),
    "control characters": (
        HEADER + GOOD + "evil,Lab\x1b[31mRed\x07,US,United States,industry,x\n",
        [(3, "control character in lab")],
    ),
    "10k-character cell": (
        HEADER + "evil,Lab,US,United States,industry," + "e" * 10_000 + "\n" + GOOD,
        [(2, "evidence is 10000 characters")],
    ),
    "formula": (HEADER + GOOD + "evil,=HYPERLINK(1),US,United States,industry,x\n", [(3, "formula character")]),
    "wrong header": ("name,lab,country\n" + GOOD, [(1, "header")]),
    "wrong column count": (
        HEADER + GOOD + "evil,Lab,US\n" + "also,Lab,US,United States,industry,x,extra\n",
        [
            (3, "3 columns, expected 6"),
            (4, "7 columns, expected 6"),
        ],
    ),
    "binary garbage": (bytes(range(256)) * 8, [(2, "not UTF-8")]),  # byte 0x0a ends line 1
    "NUL bytes": (HEADER + GOOD + "ev\x00il,Lab,US,United States,industry,x\n", [(3, "control character in")]),
}


@pytest.mark.parametrize("name", list(HOSTILE_REGISTRIES))
def test_a_hostile_registry_file_is_rejected_line_by_line_without_a_traceback(tmp_path, name: str) -> None:
    content, expected = HOSTILE_REGISTRIES[name]
    path = tmp_path / "registry.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    # Wide: Rich wraps stderr at 80 columns when it is not a terminal, splitting a problem over two lines.
    result = runner.invoke(app, ["registry", "check", str(path)], env={"COLUMNS": "20000"})
    assert result.exit_code == 1, result.output
    problems = [line for line in result.output.splitlines() if line.startswith(f"{path}:")]
    for line_number, reason in expected:
        assert any(p.startswith(f"{path}:{line_number}: ") and reason in p for p in problems), result.output
    assert error_lines(result.output) == [f"error: {len(problems)} problem(s) in {path}"]
    assert "Traceback" not in result.output
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", result.output)  # no raw control character reaches the terminal


# -- the dashboard -----------------------------------------------------------------------------------


@pytest.mark.usefixtures("hub_online")
def test_a_hostile_lab_and_hostile_ids_reach_the_dashboard_only_as_text(tmp_path, monkeypatch) -> None:
    hostile_registry = tmp_path / "registry.csv"
    hostile_registry.write_text(
        registry.REGISTRY_PATH.read_text() + f"evil-lab,{HOSTILE},US,United States,industry,a hostile test row\n"
    )
    assert registry.check_registry(hostile_registry) == []  # markup in a lab name is valid: it must be escaped
    monkeypatch.setattr(registry, "REGISTRY_PATH", hostile_registry)
    models = world(300) + [
        model(f"evil-lab/m-{i}", downloads=5_000_000, tags=[f"base_model:finetune:{HOSTILE}/x"]) for i in range(3)
    ]
    models += [model(f"{HOSTILE}/model", downloads=4_000_000), model("evil/<img src=x onerror=alert(2)>")]
    with StandinHub(models) as hub:
        args = ["refresh", "--date", DAY.isoformat(), "--endpoint", hub.url, "--warehouse", str(tmp_path / "wh")]
        result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    page = (tmp_path / "wh" / "dashboard" / "index.html").read_text()
    assert "<script>alert" not in page and "<img src=x" not in page and "onerror=alert(2)>" not in page
    spec = json.loads(re.search(r"const spec = (\{.*?\});\n", page, flags=re.S).group(1))
    assert HOSTILE in json.dumps(spec, ensure_ascii=False)  # the name is there, as data


@pytest.mark.parametrize(
    ("query", "hint"),
    [
        ("SELECT * FROM share", 'Did you mean "shares"?'),
        ("WITH s AS (SELECT * FROM shares) SELECT * FROM s JOIN registri USING (entry)", 'Did you mean "registry"?'),
        ("SELECT actr FROM shares", 'Candidate bindings: "actor"'),
    ],
)
def test_sql_with_a_misspelt_name_fails_in_one_line_naming_what_was_meant(tmp_path, query: str, hint: str) -> None:
    (tmp_path / "_meta").mkdir()
    result = runner.invoke(app, ["sql", query, "--warehouse", str(tmp_path)])
    assert result.exit_code == 1, result.output
    lines = error_lines(result.output)
    assert len(lines) == 1 and hint in lines[0], lines


@pytest.mark.parametrize(
    ("made", "said"),
    [(None, "no such folder"), ("a file", "a file"), ("a folder", "nothing published there")],
    ids=["no folder", "a file", "a folder of something else"],
)
@pytest.mark.parametrize(
    "command", [["sql", "SELECT count(*) FROM models"], ["dashboard"], ["reproduce"], ["metrics"], ["attribute"]]
)
def test_a_reader_on_a_path_that_is_no_warehouse_fails_in_one_line_and_creates_nothing(
    tmp_path, made: str | None, said: str, command: list[str]
) -> None:
    path = tmp_path / "wh"
    if made == "a file":
        path.write_text("not a warehouse\n")
    elif made == "a folder":  # such as the folder above a warehouse
        (path / "data" / "_meta").mkdir(parents=True)
    result = runner.invoke(app, [*command, "--warehouse", str(path)])
    assert result.exit_code == 2, result.output
    lines = error_lines(result.output)
    assert len(lines) == 1 and f"no warehouse at {path} ({said})" in lines[0], result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == (["wh"] if made else [])
    if made == "a folder":
        assert sorted(p.name for p in path.iterdir()) == ["data"]  # no staging folder made in it


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["registry", "gaps", "--rule", "Lineage"], "--rule 'Lineage': use uploader, official, lineage"),
        (["registry", "gaps", "--top", "0"], "--top"),
        (["reproduce", "--window", "30days"], "--window '30days': use 30d, all_time, between"),
    ],
)
def test_a_report_option_out_of_range_is_refused_rather_than_answered_empty(tmp_path, args, said: str) -> None:
    result = runner.invoke(app, [*args, "--warehouse", str(tmp_path)], env={"COLUMNS": "20000"})
    assert result.exit_code == 2, result.output
    assert said in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "said", "code"),
    [
        (["--endpoint", "http://crawler:pa55word@127.0.0.1:9"], "the endpoint carries credentials", 2),
        (["--date", "2999-01-01"], "--date 2999-01-01 is in the future", 2),
        (["--wait", "nan"], "give a number of seconds", 2),
        (["--wait", "-1"], "give a number of seconds", 2),
        (["--endpoint", "https://hub.example.org", "--date", "2026-01-05"], "--date 2026-01-05 is past", 2),
    ],
    ids=["credentials in the endpoint", "a future date", "a wait of NaN", "a negative wait", "a past date"],
)
def test_refresh_refuses_bad_options_in_one_line_before_touching_anything(tmp_path, args, said: str, code: int) -> None:
    warehouse = tmp_path / "wh"
    result = runner.invoke(
        app,
        ["refresh", "--endpoint", "http://127.0.0.1:9", *args, "--warehouse", str(warehouse)],
        env={"COLUMNS": "20000"},
    )
    assert result.exit_code == code, result.output
    assert said in result.output and "Traceback" not in result.output
    assert "pa55word" not in result.output  # a credential is never repeated back
    assert not warehouse.exists()


def test_refresh_with_a_broken_registry_fails_in_one_line_before_crawling(tmp_path, monkeypatch) -> None:
    broken = tmp_path / "registry.csv"
    broken.write_bytes(registry.REGISTRY_PATH.read_bytes() + b"badns,Bad Lab,XX,Europe,industry,a test row\n\xff\n")
    monkeypatch.setattr(registry, "REGISTRY_PATH", broken)
    with StandinHub(world(50)) as hub:
        result = runner.invoke(
            app, ["refresh", "--endpoint", hub.url, "--warehouse", str(tmp_path / "wh"), "--date", "2026-05-12"]
        )
        assert hub.request_count == 0
    assert result.exit_code == 1, result.output
    lines = error_lines(result.output)
    assert len(lines) == 1 and lines[0].startswith(f"error: registry {broken}, line "), result.output
    assert "unparsable: not UTF-8" in lines[0]  # one problem: told in the one line
    assert "Traceback" not in result.output


def test_every_writing_command_exits_3_on_a_locked_warehouse(tmp_path) -> None:
    from tests.test_warehouse import models_frame
    from warehouse.lock import writer_lock
    from warehouse.publish import publish_frame

    layout = Layout.at(tmp_path)
    publish_frame(layout, MODELS, DAY, models_frame(["org/a"]), {})
    with writer_lock(layout, "a test"):
        for command in (["attribute"], ["metrics"]):
            result = runner.invoke(app, [*command, "--warehouse", str(tmp_path)], env={"COLUMNS": "20000"})
            assert result.exit_code == 3, (command, result.output)
            assert "another Multipolar process is writing" in result.output and "--wait SECONDS" in result.output


@pytest.mark.usefixtures("hub_online")
@pytest.mark.parametrize("command", ["metrics", "refresh"])
def test_a_damaged_record_fails_any_command_in_one_line_naming_it(tmp_path, monkeypatch, capsys, command: str) -> None:
    import sys

    from flows.cli import main
    from tests.test_warehouse import models_frame
    from warehouse.publish import publish_frame

    layout = Layout.at(tmp_path)
    publish_frame(layout, MODELS, DAY - dt.timedelta(days=1), models_frame(["org/a", "org/b"]), {})
    damaged = layout.meta_file(MODELS, DAY - dt.timedelta(days=1))
    damaged.write_text('{"table": "models", "sha256": ')  # cut short, as by a full disk or a bad copy
    args = {
        "metrics": ["metrics"],
        "refresh": ["refresh", "--date", DAY.isoformat(), "--no-dashboard"],
    }[command]
    with StandinHub(world(30)) as hub:
        monkeypatch.setattr(sys, "argv", ["multipolar", *args, "--warehouse", str(tmp_path)])
        if command == "refresh":
            monkeypatch.setattr(sys, "argv", [*sys.argv, "--endpoint", hub.url])
        with pytest.raises(SystemExit) as exited:
            main()
        crawled = hub.listing_requests()
    assert exited.value.code == 1
    output = capsys.readouterr().err
    lines = error_lines(output)
    assert len(lines) == 1 and f"the record {damaged} is damaged" in " ".join(output.split()), output
    assert "Traceback" not in output
    # found before anything is done: nothing crawled, nothing published
    assert crawled == [] and not layout.meta_file(MODELS, DAY).exists()


@pytest.mark.usefixtures("hub_online")
def test_a_listing_redirected_to_another_host_is_refused_not_published(tmp_path) -> None:
    import http.server
    import threading

    with StandinHub(world(40)) as hub:

        class Redirect(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
                self.send_response(302)
                self.send_header("Location", hub.url + self.path)
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        redirector = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
        threading.Thread(target=redirector.serve_forever, daemon=True).start()
        endpoint = f"http://127.0.0.1:{redirector.server_address[1]}"
        try:
            result = runner.invoke(
                app,
                ["refresh", "--endpoint", endpoint, "--warehouse", str(tmp_path), "--date", "2026-05-12"],
                env={"COLUMNS": "20000"},
            )
        finally:
            redirector.shutdown()
    assert result.exit_code == 1, result.output
    lines = error_lines(result.output)
    assert len(lines) == 1 and "a page was redirected to another host" in lines[0], result.output
    assert Layout.at(tmp_path).published_dates(MODELS) == []


def test_a_past_date_is_refused_only_for_a_remote_hub_with_no_crawl_of_it_to_resume(tmp_path) -> None:
    from flows.cli import _backdated

    today = dt.datetime.now(dt.UTC).date()
    past, remote, here = today - dt.timedelta(days=3), "https://huggingface.co", "http://127.0.0.1:8777"
    assert _backdated(past, remote, str(tmp_path))
    assert not _backdated(today, remote, str(tmp_path))
    assert not _backdated(past, here, str(tmp_path))  # the stand-in serves a world of any date
    staging = Layout.at(tmp_path).crawl_staging(past)
    staging.mkdir(parents=True)
    (staging / "checkpoint.json").write_text("{}")
    assert not _backdated(past, remote, str(tmp_path))  # a crawl started that day resumes


def test_the_dashboard_and_the_report_are_drawn_into_a_warehouse_only_by_its_one_writer(tmp_path) -> None:
    from flows import steps
    from tests.test_warehouse import models_frame
    from warehouse.lock import writer_lock
    from warehouse.publish import publish_frame

    layout = Layout.at(tmp_path / "wh")
    publish_frame(layout, MODELS, DAY, models_frame(["Qwen/a", "meta-llama/b"], [5, 7]), {})
    steps.attribute_date(layout, DAY)
    steps.metrics_date(layout, DAY)
    with writer_lock(layout, "a test"):
        for command in (["dashboard"], ["reproduce"]):
            result = runner.invoke(app, [*command, "--warehouse", str(layout.root)], env={"COLUMNS": "20000"})
            assert result.exit_code == 3, (command, result.output)
            assert "another Multipolar process is writing" in result.output
        assert not layout.dashboard_dir.exists() and not (layout.root / "reports").exists()
        # drawn into a folder of the caller's, they need no lock
        result = runner.invoke(app, ["reproduce", "--warehouse", str(layout.root), "--out", str(tmp_path / "mine")])
        assert result.exit_code == 0, result.output
    # `metrics` leaves the report and the page saying what the metrics say
    result = runner.invoke(app, ["metrics", "--warehouse", str(layout.root)], env={"COLUMNS": "20000"})
    assert result.exit_code == 0, result.output
    assert "reproduce: published" in result.output and "dashboard: published" in result.output
    assert (layout.root / "reports" / "reproduction.md").is_file() and (layout.dashboard_dir / "index.html").is_file()
    again = runner.invoke(app, ["metrics", "--warehouse", str(layout.root), "--no-dashboard"])
    assert "dashboard:" not in again.output
