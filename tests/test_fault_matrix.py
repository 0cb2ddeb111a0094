"""The refresh under every fault the stand-in Hub injects and every hostile record a world can hold.

Each case publishes a good day 1, then refreshes day 2 under one fault. The refresh either completes with
the expected rows or stops with one clear `error:` line; either way day 1 stays byte-identical. The
outcomes are recorded and rendered into `docs/reliability.md` when the whole matrix has run.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from flows import hub as hub_module
from flows import standin_faults as faults
from flows.cli import app
from flows.standin_faults import Fault
from flows.standin_hub import StandinHub
from tests.reliability_report import write_reliability_report
from tests.worlds import model, world
from warehouse.layout import Layout
from warehouse.publish import read_meta, sha256_of
from warehouse.tables import ATTRIBUTIONS, CONCENTRATION, CROSSOVERS, MODELS, REGISTRY, SHARES

DAY1, DAY2 = dt.date(2026, 5, 11), dt.date(2026, 5, 12)
TABLES = (MODELS, REGISTRY, ATTRIBUTIONS, SHARES, CONCENTRATION, CROSSOVERS)
PAGE_SIZE = 200  # 640 models: four pages, so a fault on page 2 strikes mid-crawl
runner = CliRunner()


def day1_world() -> list[dict]:
    return world(600)


def day2_world() -> list[dict]:
    """Day 1's models with more downloads, and 40 new ones."""
    models = world(640)
    for i, item in enumerate(models):
        item["downloads"] += 100 + i % 13
        item["downloadsAllTime"] += 1_000
    return models


# -- hostile worlds: day 2 plus records a careless or malicious Hub could serve ------------------------


def with_extra(*items: Any) -> Callable[[], list]:
    return lambda: day2_world() + list(items)


def numbered(model_id: str, value: Any) -> dict:
    item = model(model_id, created="2025-06-01T00:00:00.000Z")
    for name in ("downloads", "downloadsAllTime", "likes", "trendingScore"):
        item[name] = value
    item["safetensors"] = {"total": value}
    return item


NUMBERS = {  # value served → (downloads_30d, trending_score) expected
    "null": (None, (None, None)),
    "negative": (-5, (None, -5.0)),
    "huge": (10**30, (None, 1e30)),
    "string": ("1234", (1234, 1234.0)),
    "junk-string": ("12abc", (None, None)),
    "whole-float": (12.0, (12, 12.0)),
    "fraction": (1.5, (None, 1.5)),
    "infinite": (float("inf"), (None, None)),
    "boolean": (True, (None, None)),
}
KEPT_IDS = ("Qwen/模型-ü-🚀", "<script>alert(1)</script>/model", "evil/<img src=x onerror=alert(1)>", "solo-name")
DROPPED_IDS = (
    "../../etc/passwd",
    "x" * 10_000,
    "ns/" + "y" * 10_000,
    "/absolute/model",
    "back\\slash/model",
    "nul/\x00byte",
    "newline/model\n",
    "",
    ".hidden/model",
)
HOSTILE_TAGS = [
    "../../etc/passwd",
    "t" * 10_000,
    "模型",
    "<b>bold</b>",
    123,
    None,
    {"a": 1},
    "base_model:../../etc/passwd",
    "base_model:" + "z" * 10_000,
    "base_model:finetune:<script>x</script>/m",
    "",
]
KEPT_TAGS = [
    "../../etc/passwd",
    "模型",
    "<b>bold</b>",
    "base_model:../../etc/passwd",
    "base_model:finetune:<script>x</script>/m",
]


def tagged(model_id: str, tags: Any) -> dict:
    item = model(model_id, downloads=5)
    item["tags"] = tags
    return item


# -- the matrix --------------------------------------------------------------------------------------


@dataclass
class Case:
    """One fault: what it is, what should happen, and how to check it."""

    name: str
    fault: str
    expected: str
    faults: list[Fault] = field(default_factory=list)
    world: Callable[[], list] = day2_world
    stops: str | None = None  # the error line must match this; None: the refresh completes
    rows: Callable[[pl.DataFrame, pl.DataFrame], None] | None = None  # published vs reference; None: equal
    dropped: int = 0
    client_timeout: float | None = None
    log: Callable[[StandinHub], None] | None = None  # a check on the requests the stand-in saw


def waits_after_429(hub: StandinHub) -> list[float]:
    served = hub.listing_requests()
    return [b.at - a.at for a, b in zip(served, served[1:], strict=False) if a.status == 429]


def rate_limit_header_honoured(hub: StandinHub) -> None:
    assert waits_after_429(hub) and min(waits_after_429(hub)) >= 0.9  # RateLimit t=0: the client waits t + 1 s


def backoff_without_header(hub: StandinHub) -> None:
    assert waits_after_429(hub) and max(waits_after_429(hub)) < 0.9  # the (shortened) exponential backoff


def numbers_rows(published: pl.DataFrame, reference: pl.DataFrame) -> None:
    extra = published.filter(pl.col("model_id").str.starts_with("numbers/"))
    got = {r["model_id"]: r for r in extra.iter_rows(named=True)}
    assert set(got) == {f"numbers/{n}" for n in NUMBERS}
    for name, (_served, (count, score)) in NUMBERS.items():
        row = got[f"numbers/{name}"]
        assert (row["downloads_30d"], row["downloads_all_time"], row["likes"], row["params_total"]) == (count,) * 4
        assert row["trending_score"] == score, name


def ids_rows(published: pl.DataFrame, reference: pl.DataFrame) -> None:
    extra = set(published["model_id"]) - set(reference["model_id"])
    assert extra == set(KEPT_IDS)
    authors = dict(published.filter(pl.col("model_id").is_in(KEPT_IDS)).select("model_id", "author").iter_rows())
    assert authors["evil/<img src=x onerror=alert(1)>"] == "evil" and authors["solo-name"] == "solo-name"


def tags_rows(published: pl.DataFrame, reference: pl.DataFrame) -> None:
    rows = {r["model_id"]: r for r in published.filter(pl.col("model_id").str.starts_with("tags/")).to_dicts()}
    assert rows["tags/hostile"]["tags"] == KEPT_TAGS
    assert rows["tags/hostile"]["base_models"] == ["../../etc/passwd", "<script>x</script>/m"]
    assert rows["tags/hostile"]["base_relation"] == "finetune"
    assert rows["tags/many"]["tags"] == [f"t{i}" for i in range(512)]
    assert rows["tags/not-a-list"]["tags"] == []


def transient(name: str, fault: str, fault_obj: Fault, **kw: Any) -> Case:
    return Case(name, fault, "retried; completes with the same rows as a clean run", [fault_obj], **kw)


def lasting(name: str, fault: str, fault_obj: Fault, stops: str, says: str | None = None, **kw: Any) -> Case:
    expected = f"stops with one line naming the endpoint: {says or stops}"
    return Case(name, fault, expected, [fault_obj], stops=stops, **kw)


CASES = [
    transient(
        "429 burst with RateLimit",
        "2× HTTP 429, RateLimit t=0, page 2",
        faults.rate_limit(times=2, reset=0, pages={2}),
        log=rate_limit_header_honoured,
    ),
    transient(
        "429 burst without headers",
        "3× HTTP 429, no RateLimit headers, page 2",
        faults.rate_limit(times=3, headers=False, pages={2}),
        log=backoff_without_header,
    ),
    lasting(
        "429 for good with RateLimit",
        "HTTP 429 on every try, RateLimit t=0, page 2",
        faults.rate_limit(times=None, reset=0, pages={2}),
        "answered HTTP 429 after retries",
    ),
    lasting(
        "429 for good without headers",
        "HTTP 429 on every try, no headers, page 2",
        faults.rate_limit(times=None, headers=False, pages={2}),
        "answered HTTP 429 after retries",
    ),
    *[
        transient(f"{s} burst", f"2× HTTP {s}, page 2", faults.server_error(s, times=2, pages={2}))
        for s in (500, 502, 503, 504)
    ],
    *[
        lasting(
            f"{s} for good",
            f"HTTP {s} on every try, page 2",
            faults.server_error(s, times=None, pages={2}),
            f"answered HTTP {s} after retries",
        )
        for s in (500, 502, 503, 504)
    ],
    transient(
        "connection reset", "2× connection closed without a response, page 2", faults.dropped_connection(2, pages={2})
    ),
    lasting(
        "connection reset for good",
        "connection closed on every try, page 2",
        faults.dropped_connection(None, pages={2}),
        "cannot reach .*(RemoteProtocolError|ReadError|ConnectError)",
        "cannot reach <endpoint>: <transport error>",
    ),
    transient(
        "read timeout",
        "1× 2 s stall, client timeout 0.5 s, page 2",
        faults.read_timeout(2.0, times=1, pages={2}),
        client_timeout=0.5,
    ),
    lasting(
        "read timeout for good",
        "1 s stall on every try, client timeout 0.5 s, page 2",
        faults.read_timeout(1.0, times=None, pages={2}),
        "cannot reach .*ReadTimeout",
        "cannot reach <endpoint>: ReadTimeout",
        client_timeout=0.5,
    ),
    transient(
        "slow body",
        "1× body in 6 pieces 0.2 s apart (each read quick, the whole 1 s), client timeout 0.5 s, page 2",
        faults.slow_body(6, 0.2, times=1, pages={2}),
        client_timeout=0.5,
    ),
    lasting(
        "slow body for good",
        "body in 6 pieces 0.2 s apart on every try, client timeout 0.5 s, page 2",
        faults.slow_body(6, 0.2, times=None, pages={2}),
        "cannot reach .*ReadTimeout: no whole answer within 0.5 s",
        "cannot reach <endpoint>: ReadTimeout: no whole answer within 0.5 s",
        client_timeout=0.5,
    ),
    transient("truncated JSON", "2× HTTP 200 with half the body, page 2", faults.truncated_body(2, pages={2})),
    lasting(
        "truncated JSON for good",
        "HTTP 200 with half the body on every try, page 2",
        faults.truncated_body(None, pages={2}),
        r"HTTP 200 with an unreadable body .*4 times in a row",
        "HTTP 200 with an unreadable body (…), 4 times in a row",
    ),
    transient("invalid JSON", "2× HTTP 200 with a body that is not JSON, page 2", faults.malformed_json(2, pages={2})),
    lasting(
        "invalid JSON for good",
        "HTTP 200 not JSON on every try, page 2",
        faults.malformed_json(None, pages={2}),
        r"HTTP 200 with an unreadable body .*4 times in a row",
        "HTTP 200 with an unreadable body (…), 4 times in a row",
    ),
    transient("HTML error page", "2× HTTP 200 text/html error page, page 2", faults.html_page(2, pages={2})),
    lasting(
        "HTML error page for good",
        "HTTP 200 text/html on every try, page 2",
        faults.html_page(None, pages={2}),
        r"unreadable body \(text/html",
        "HTTP 200 with an unreadable body (text/html…), 4 times in a row",
    ),
    transient(
        "duplicate ids across pages",
        "pages 2-4 repeat the last 7 models of the page before",
        faults.duplicate_ids(count=7, times=None),
    ),
    lasting(
        "Link to another host",
        'page 1\'s Link rel="next" points to http://hub.invalid',
        faults.foreign_link(times=None, pages={1}),
        r"next-page link points to another host \(http://hub.invalid\); refused",
        "the next-page link points to another host (http://hub.invalid); refused",
    ),
    lasting(
        "Link that loops",
        'page 1\'s Link rel="next" points back to page 1',
        faults.looping_link(times=None, pages={1}),
        "next-page link loops back",
    ),
    Case(
        "model without id",
        "3 items: no `id`, `id: null`, `id: 123`",
        "the 3 items dropped and counted; the rest as a clean run",
        world=with_extra(
            {k: v for k, v in model("ghost/no-id").items() if k != "id"},
            {**model("ghost/null-id"), "id": None},
            {**model("ghost/int-id"), "id": 123},
        ),
        dropped=3,
    ),
    Case(
        "items that are not objects",
        'items "text", 42, null, [1, 2]',
        "the 4 items dropped and counted; the rest as a clean run",
        world=with_extra("text", 42, None, [1, 2]),
        dropped=4,
    ),
    Case(
        "hostile numbers",
        "downloads/likes/trendingScore/params: null, -5, 1e30, '1234', '12abc', 12.0, 1.5, Infinity, true",
        "counts kept only when whole, non-negative and within int64 ('1234' → 1234); the rest blank",
        world=with_extra(*[numbered(f"numbers/{n}", v) for n, (v, _) in NUMBERS.items()]),
        rows=numbers_rows,
    ),
    Case(
        "hostile ids",
        "ids: ../../etc/passwd, 10k chars, /absolute, backslash, NUL, newline, empty, .hidden; "
        "unicode, <script> and <img onerror> namespaces",
        "path-like, oversized and control-character ids dropped; unicode and markup kept as text",
        world=with_extra(*[model(i, downloads=3) for i in KEPT_IDS], *[model(i, downloads=3) for i in DROPPED_IDS]),
        rows=ids_rows,
        dropped=len(DROPPED_IDS),
    ),
    Case(
        "hostile tags",
        "tags: path traversal, 10k chars, unicode, markup, non-strings, empty; 10,000 tags; tags not a list",
        "oversized, empty and non-string tags removed; at most 512 tags; lineage read from what is left",
        world=with_extra(
            tagged("tags/hostile", HOSTILE_TAGS),
            tagged("tags/many", [f"t{i}" for i in range(10_000)]),
            tagged("tags/not-a-list", "base_model:x/y"),
        ),
        rows=tags_rows,
    ),
    Case(
        "empty world",
        "the listing has no models at all",
        "stops: nothing published (a day of no models would read as every share gone)",
        world=lambda: [],
        stops=r"listed no models for --scope full: nothing published",
    ),
]


# -- running a case -----------------------------------------------------------------------------------


def refresh(hub: StandinHub, warehouse: Path, day: dt.date):
    args = ["refresh", "--date", day.isoformat(), "--endpoint", hub.url, "--warehouse", str(warehouse)]
    return runner.invoke(app, [*args, "--no-dashboard"])


def fingerprint(layout: Layout, day: dt.date) -> dict[str, str]:
    """sha256 of every partition file and `_meta` record of `day`."""
    files = [layout.partition_file(t, day) for t in TABLES] + [layout.meta_file(t, day) for t in TABLES]
    return {str(f.relative_to(layout.root)): sha256_of(f) for f in files}


def same_table(published: pl.DataFrame, expected: pl.DataFrame) -> None:
    """Equal rows; floats to 1e-12 (aggregated floats may differ in the last bit between runs)."""
    assert_frame_equal(published, expected, rel_tol=1e-12, abs_tol=1e-15)


def contents(layout: Layout, day: dt.date) -> dict[str, pl.DataFrame]:
    return {t.name: layout.scan(t, day).collect() for t in TABLES}


@contextmanager
def client_timeout(seconds: float | None) -> Iterator[None]:
    """Every request times out after `seconds` (the client's factory is reinstalled afterwards)."""
    if seconds is None:
        yield
        return
    default = hub_module.configure_client.__defaults__
    hub_module.configure_client.__defaults__ = (seconds,)
    hub_module._configured = None
    try:
        yield
    finally:
        hub_module.configure_client.__defaults__ = default
        hub_module._configured = None
        hub_module.configure_client()


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(hub_module.BACKOFF, "base_wait_time", 0.01)
    monkeypatch.setitem(hub_module.BACKOFF, "max_wait_time", 0.02)


@pytest.fixture(scope="module")
def day1(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, pl.DataFrame]]:
    """A warehouse with day 1 published, and day 2's tables from a clean refresh of the day-2 world."""
    from huggingface_hub import constants

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(constants, "HF_HUB_OFFLINE", False)
        template = tmp_path_factory.mktemp("day1") / "wh"
        with StandinHub(day1_world(), page_size=PAGE_SIZE) as hub:
            first = refresh(hub, template, DAY1)
        assert first.exit_code == 0, first.output
        clean = tmp_path_factory.mktemp("clean") / "wh"
        shutil.copytree(template, clean)
        with StandinHub(day2_world(), page_size=PAGE_SIZE) as hub:
            second = refresh(hub, clean, DAY2)
        assert second.exit_code == 0, second.output
    return template, contents(Layout.at(clean), DAY2)


@pytest.fixture(scope="session")
def reliability_results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[dict[str, Any]]]:
    """The cases' outcomes; rendered into docs/reliability.md once every case of the matrix has run."""
    from warehouse.provenance import short_code_version

    began = time.monotonic()
    cases: list[dict[str, Any]] = []
    yield cases
    results = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "code_version": short_code_version(),
        "seconds": round(time.monotonic() - began, 1),
        "cases": sorted(cases, key=lambda c: [k.name for k in CASES].index(c["case"])),
    }
    complete = {c["case"] for c in cases} == {k.name for k in CASES}
    target = None if complete else tmp_path_factory.getbasetemp() / "reliability.md"
    write_reliability_report(results, target) if target else write_reliability_report(results)


def shortened(line: str, limit: int = 160) -> str:
    return line if len(line) <= limit else line[:limit] + "…"


def error_lines(output: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if line.strip().startswith("error:")]


def published_summary(layout: Layout, day: dt.date) -> str:
    meta = read_meta(layout, MODELS, day) or {}
    dropped = sum(meta.get("dropped_items", {}).values())
    text = f"completed: {meta.get('rows')} rows, {dropped} dropped"
    return text + (f", {meta['duplicates_removed']} duplicates removed" if meta.get("duplicates_removed") else "")


@pytest.mark.usefixtures("hub_online")
@pytest.mark.parametrize("case", CASES, ids=[c.name.replace(" ", "-") for c in CASES])
def test_a_faulty_day_2_completes_correctly_or_stops_clearly_and_day_1_is_untouched(
    case: Case, day1: tuple[Path, dict[str, pl.DataFrame]], reliability_results: list, tmp_path: Path
) -> None:
    template, reference = day1
    entry = {"case": case.name, "fault": case.fault, "expected": case.expected, "observed": "", "passed": False}
    reliability_results.append(entry)
    warehouse = tmp_path / "wh"
    shutil.copytree(template, warehouse)
    layout = Layout.at(warehouse)
    before = fingerprint(layout, DAY1)
    with client_timeout(case.client_timeout), StandinHub(case.world(), page_size=PAGE_SIZE, faults=case.faults) as hub:
        result = refresh(hub, warehouse, DAY2)
        assert "Traceback" not in result.output
        if case.stops is None:
            entry["observed"] = published_summary(layout, DAY2) if result.exit_code == 0 else result.output[-300:]
            assert result.exit_code == 0, result.output
        else:
            lines = error_lines(result.output)
            entry["observed"] = (
                f"stopped: {shortened(lines[0])}" if lines else f"exit {result.exit_code}: {result.output[-300:]}"
            )
            assert result.exit_code == 1 and len(lines) == 1, result.output
            assert re.search(case.stops, lines[0]) and hub.url in lines[0], lines[0]
            assert all(layout.partition_dates(t) == [DAY1] for t in TABLES)  # nothing of day 2, not even a part
            assert fingerprint(layout, DAY1) == before
            hub.set_faults()
            if case.world is not day2_world:  # the day's own world, for a case that served another
                hub.replace_world(day2_world())
            result = refresh(hub, warehouse, DAY2)  # the next run, once the Hub behaves, resumes and completes
            assert result.exit_code == 0, result.output
            entry["observed"] += f"; next run {published_summary(layout, DAY2)}"
        if case.log is not None:
            case.log(hub)
    assert fingerprint(layout, DAY1) == before
    assert all(layout.published_dates(t) == [DAY1, DAY2] for t in TABLES)
    published = contents(layout, DAY2)
    meta = read_meta(layout, MODELS, DAY2)
    assert sum(meta["dropped_items"].values()) == case.dropped
    if case.rows is None:
        for name, frame in reference.items():
            same_table(published[name], frame)
    else:
        case.rows(published["models"], reference["models"])
        kept = published["models"].filter(pl.col("model_id").is_in(reference["models"]["model_id"].implode()))
        assert kept.equals(reference["models"].filter(pl.col("model_id").is_in(kept["model_id"].implode())))
    strays = [p for p in tmp_path.rglob("*") if "passwd" in p.name or "<" in p.name or not p.is_relative_to(warehouse)]
    assert strays == []
    entry["passed"] = True
