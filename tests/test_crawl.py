"""The crawl drives the real huggingface_hub client against the stand-in Hub."""

from __future__ import annotations

import datetime as dt
import random
import time

import polars as pl
import pytest
from huggingface_hub import HfApi

from flows import standin_faults as faults
from flows.crawl import assemble, crawl_to_staging
from flows.hub import HubError, pages, request_headers
from flows.rows import model_rows
from flows.scope import parse_scope
from flows.standin_hub import StandinHub
from tests.worlds import model, world
from warehouse.layout import Layout

DAY = dt.date(2026, 5, 12)
pytestmark = pytest.mark.usefixtures("hub_online")


def crawled(tmp_path, hub: StandinHub, scope: str = "full") -> pl.DataFrame:
    layout = Layout.at(tmp_path / "wh")
    result = crawl_to_staging(layout, DAY, parse_scope(scope), hub.url)
    staged, rows = assemble(layout, DAY, result)
    frame = pl.read_parquet(staged)
    assert frame.height == rows
    return frame


def test_a_full_crawl_pages_through_every_model_once_per_page(tmp_path) -> None:
    with StandinHub(world(2_345), page_size=500) as hub:
        frame = crawled(tmp_path, hub)
        assert frame.height == 2_345 and frame["model_id"].n_unique() == 2_345
        assert len(hub.listing_requests()) == 5  # ceil(2345 / 500): one request per page, none per model
        assert hub.listing_requests()[0].param("sort") == ["createdAt"]


def test_the_crawl_asks_exactly_what_list_models_asks(tmp_path) -> None:
    with StandinHub(world(10), page_size=500) as hub:
        from flows.scope import EXPAND

        list(HfApi(endpoint=hub.url, token=False).list_models(sort="created_at", expand=list(EXPAND)))
        crawled(tmp_path, hub)
        theirs, ours = hub.listing_requests()
        assert sorted(ours.query) == sorted(theirs.query)


def test_top_n_sorts_by_downloads_and_stops_at_n(tmp_path) -> None:
    models = world(1_000)
    with StandinHub(models, page_size=100) as hub:
        frame = crawled(tmp_path, hub, "top:250")
        top = sorted(models, key=lambda m: m["downloads"], reverse=True)[:250]
        assert sorted(frame["model_id"]) == sorted(m["id"] for m in top)
        assert frame["model_id"].is_sorted()  # published in id order, whatever order the Hub listed them in
        assert len(hub.listing_requests()) == 3


def test_orgs_lists_each_author(tmp_path) -> None:
    with StandinHub(world(600), page_size=40) as hub:
        frame = crawled(tmp_path, hub, "orgs:Qwen,mistralai")
        assert set(frame["author"]) == {"Qwen", "mistralai"} and frame.height == 200
        assert {r.param("author")[0] for r in hub.listing_requests()} == {"Qwen", "mistralai"}


def test_models_repeated_across_pages_are_kept_once(tmp_path) -> None:
    with StandinHub(world(900), page_size=300, faults=[faults.duplicate_ids(count=7, times=2)]) as hub:
        frame = crawled(tmp_path, hub)
        assert frame.height == 900 and frame["model_id"].n_unique() == 900


@pytest.mark.parametrize("collide", [False, True], ids=["hashes", "hashes colliding"])
def test_pages_are_assembled_in_id_order_each_id_as_first_seen(collide, tmp_path, monkeypatch) -> None:
    import flows.crawl as crawl

    if collide:  # hashes shared by many different ids: only the ids themselves may decide what repeats
        hashed_ids = crawl._hashed_ids
        monkeypatch.setattr(crawl, "_hashed_ids", lambda pages: ((h := hashed_ids(pages))[0] % 5, h[1]))
    # Ranges of 40 rows and pages spread 3 at a time: many ranges, each fed by several reads of pages.
    monkeypatch.setattr(crawl, "BUCKET_ROWS", 40)
    monkeypatch.setattr(crawl, "SPREAD_PAGES", 3)
    layout = Layout.at(tmp_path / "wh")
    staging = tmp_path / "staging"
    staging.mkdir()
    rng = random.Random(7)
    ids = [f"{rng.choice(['Qwen', 'meta-llama', 'a', 'zz-top'])}/m-{rng.randrange(10**6):06d}" for _ in range(300)]
    listed = [(model_id, 1_000 + n) for n, model_id in enumerate(ids)]
    # A shifting listing shows some ids again on later pages, with newer counts that must not win.
    listed += [(model_id, 5) for model_id in rng.sample(ids, 60)]
    rng.shuffle(listed[300:])
    frames = [model_rows([model(i, downloads=d) for i, d in listed[start : start + 25]]) for start in range(0, 360, 25)]
    for number, frame in enumerate(frames):
        frame.write_parquet(staging / f"page-00000-{number:07d}.parquet")
    result = crawl.CrawlResult(staging, crawl.CrawlState("http://127.0.0.1:1", "full", ""))
    staged, rows = assemble(layout, DAY, result)
    expected = pl.concat(frames).unique("model_id", keep="first", maintain_order=True).sort("model_id")
    assembled = pl.read_parquet(staged)
    assert rows == expected.height == len(set(ids)) and assembled.equals(expected)
    assert (assembled["downloads_30d"] >= 1_000).all()
    assert not (staging / "buckets").exists()


@pytest.mark.parametrize(
    "fault",
    [
        faults.rate_limit(times=2, reset=0),
        faults.server_error(500),
        faults.server_error(502),
        faults.server_error(503),
        faults.server_error(504),
        faults.dropped_connection(),
        faults.malformed_json(),
        faults.truncated_body(),
        faults.html_page(),
    ],
    ids=lambda f: f"{f.kind}-{f.status}" if f.kind == "server_error" else f.kind,
)
def test_a_transient_fault_is_retried_and_the_crawl_completes(tmp_path, fault) -> None:
    with StandinHub(world(1_200), page_size=500, faults=[fault]) as hub:
        assert crawled(tmp_path, hub).height == 1_200


@pytest.mark.parametrize("overlap", [True, False], ids=["ahead", "one after another"])
def test_each_page_is_requested_as_soon_as_the_page_before_names_it(tmp_path, overlap) -> None:
    layout = Layout.at(tmp_path / "wh")
    # Page 2's body is cut off twice; its headers, the next link among them, arrive whole.
    with StandinHub(world(1_000), page_size=250, faults=[faults.truncated_body(2, pages={2})]) as hub:
        result = crawl_to_staging(layout, DAY, parse_scope("full"), hub.url, overlap=overlap)
        requested = [r.page for r in hub.listing_requests()]
        staged, _rows = assemble(layout, DAY, result)
    if overlap:  # page 3 is asked for before page 2's body is read; its answer is dropped while 2 is asked again
        assert requested == [1, 2, 3, 2, 3, 2, 3, 4]
    else:
        assert requested == [1, 2, 2, 2, 3, 4]
    assert result.state.requests == len(requested) and result.state.pages == 4
    with StandinHub(world(1_000), page_size=250) as clean:
        assert pl.read_parquet(staged).equals(crawled(tmp_path / "clean", clean))


def test_a_lasting_server_error_fails_with_the_endpoint_and_last_status(tmp_path) -> None:
    with StandinHub(world(10), faults=[faults.server_error(502, times=None)]) as hub:
        with pytest.raises(HubError, match=rf"{hub.url} answered HTTP 502"):
            crawled(tmp_path, hub)


def test_a_body_that_stays_malformed_fails_clearly(tmp_path) -> None:
    with StandinHub(world(10), faults=[faults.malformed_json(times=None)]) as hub:
        with pytest.raises(HubError, match="unreadable body.*4 times"):
            crawled(tmp_path, hub)


def test_a_next_link_to_another_host_or_back_to_itself_is_refused(tmp_path) -> None:
    with StandinHub(world(30), page_size=10, faults=[faults.foreign_link(times=None)]) as hub:
        with pytest.raises(HubError, match="another host"):
            crawled(tmp_path, hub)
    for loop in (faults.looping_link(times=None), faults.looping_link(times=1, pages={1})):
        with StandinHub(world(30), page_size=10, faults=[loop]) as hub:
            with pytest.raises(HubError, match="loops back"):
                crawled(tmp_path / f"loop-{loop.times}", hub)


@pytest.mark.parametrize("scope", ["full", "top:25"])
def test_a_mirror_handing_on_the_hubs_own_next_links_is_crawled_through_the_mirror(tmp_path, scope) -> None:
    """The Hub names itself (https://huggingface.co) in its next-page links whatever host the request reached, and a
    mirror of it (hf-mirror.com) hands them on unchanged: each next page is asked of the endpoint, never of the Hub."""
    models = world(30)
    with StandinHub(models, page_size=10, public_url="https://huggingface.co") as hub:
        frame = crawled(tmp_path, hub, scope)
        asked = [r.page for r in hub.listing_requests()]
    assert frame.height == (30 if scope == "full" else 25) and asked == [1, 2, 3]


@pytest.mark.parametrize(
    ("endpoint", "link", "asked"),
    [
        ("http://127.0.0.1:8777", "https://huggingface.co/api/models?c=x", "http://127.0.0.1:8777/api/models?c=x"),
        ("https://proxy.test/hf", "https://HuggingFace.co:443/api/models?c=x", "https://proxy.test/hf/api/models?c=x"),
        ("https://huggingface.co", "https://huggingface.co/api/models?c=x", None),
        ("http://127.0.0.1:8777", "https://huggingface.co/api/spaces?c=x", None),  # not the listing: refused later
        ("http://127.0.0.1:8777", "http://hub.invalid/api/models?c=x", None),  # not the Hub: refused later
        ("http://127.0.0.1:8777", "http://huggingface.co/api/models?c=x", None),  # not the Hub's own origin either
    ],
)
def test_only_the_hubs_own_listing_link_is_asked_of_the_endpoint(endpoint, link, asked) -> None:
    from flows.hub import _on_endpoint

    assert _on_endpoint(endpoint, link) == (asked or link)


@pytest.mark.parametrize(
    ("endpoint", "link", "same"),
    [
        ("https://HuggingFace.co", "https://huggingface.co/api/models?cursor=x", True),
        ("https://huggingface.co:443", "https://huggingface.co/api/models?cursor=x", True),
        ("http://127.0.0.1:80", "http://127.0.0.1/api/models?cursor=x", True),
        ("HTTPS://huggingface.co", "https://huggingface.co:443/api/models?cursor=x", True),
        ("https://huggingface.co", "http://huggingface.co/api/models?cursor=x", False),
        ("https://huggingface.co", "https://huggingface.co:8443/api/models?cursor=x", False),
        ("https://huggingface.co", "https://huggingface.co.evil.example/api/models", False),
        ("http://127.0.0.1:8777", "http://127.0.0.1:99999/api/models?cursor=x", False),  # no port at all
        ("http://127.0.0.1:8777", "http://127.0.0.1:port/api/models?cursor=x", False),
    ],
)
def test_a_next_link_is_of_the_same_origin_however_the_endpoint_spells_it(endpoint, link, same) -> None:
    """Host names are compared in lower case, and a scheme's default port is no port at all (as the client
    writes a page's URL: a page of `http://host:80` is at `http://host/…`, which is no redirect)."""
    from flows.hub import _check_same_origin, _origin

    assert (_origin(endpoint) == _origin(link)) == same

    if same:
        _check_same_origin(endpoint, link)
    else:
        with pytest.raises(HubError, match="another host"):
            _check_same_origin(endpoint, link)


def test_a_crawl_interrupted_mid_way_resumes_from_its_checkpoint(tmp_path, monkeypatch) -> None:
    from flows import hub as hub_module

    monkeypatch.setitem(hub_module.BACKOFF, "base_wait_time", 0.05)
    monkeypatch.setitem(hub_module.BACKOFF, "max_wait_time", 0.1)
    from flows import crawl

    layout = Layout.at(tmp_path / "wh")
    first, then = "a" * 40, "b" * 40 + "+dirty"
    with StandinHub(world(1_000), page_size=100, faults=[faults.server_error(500, times=None, pages={6})]) as hub:
        monkeypatch.setattr(crawl, "code_version", lambda: first)
        with pytest.raises(HubError):
            crawl_to_staging(layout, DAY, parse_scope("full"), hub.url)
        served_before = len(hub.listing_requests())
        hub.set_faults()
        hub.reset_log()
        monkeypatch.setattr(crawl, "code_version", lambda: then)  # resumed by other code: both made its pages
        result = crawl_to_staging(layout, DAY, parse_scope("full"), hub.url)
        assert result.state.resumed == 1 and served_before > 5
        assert result.state.code_versions == [first, then]
        assert [r.page for r in hub.listing_requests()] == [6, 7, 8, 9, 10]
        staged, rows = assemble(layout, DAY, result)
    with StandinHub(world(1_000), page_size=100) as clean:
        expected = crawled(tmp_path / "clean", clean)
    assert pl.read_parquet(staged).equals(expected)


class Killed(BaseException):
    """A kill -9 at that instant: nothing after it runs."""


@pytest.mark.parametrize("killed_after", ["the first listing's last page", "the last listing's last page"])
def test_a_crawl_killed_after_a_listings_last_page_never_asks_for_it_again(tmp_path, killed_after) -> None:
    """The checkpoint of a listing's last page moves on to the next listing (or says the crawl is done) in one
    write: killed just after it, a resumed crawl starts the next listing rather than this one again."""
    layout, scope = Layout.at(tmp_path / "wh"), parse_scope("orgs:Qwen,mistralai")
    stop_at = 3 if killed_after.startswith("the first") else 6  # each namespace has 100 models: 3 pages of 40

    def killed(state, listings: int) -> None:
        if state.pages == stop_at:
            raise Killed

    with StandinHub(world(600), page_size=40) as hub:
        with pytest.raises(Killed):
            crawl_to_staging(layout, DAY, scope, hub.url, progress=killed)
        asked = [(r.param("author")[0], r.page) for r in hub.listing_requests()]
        hub.reset_log()
        result = crawl_to_staging(layout, DAY, scope, hub.url)
        again = [(r.param("author")[0], r.page) for r in hub.listing_requests()]
        staged, rows = assemble(layout, DAY, result)
    assert not set(again) & set(asked), again
    assert result.state.done and result.state.items == rows == 200
    with StandinHub(world(600), page_size=40) as clean:
        assert pl.read_parquet(staged).equals(crawled(tmp_path / "clean", clean, "orgs:Qwen,mistralai"))


def test_a_token_is_sent_when_set(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_canary_crawl_token")
    with StandinHub([model("a/x")]) as hub:
        crawled(tmp_path, hub)
        assert hub.received_token("hf_canary_crawl_token")
    monkeypatch.delenv("HF_TOKEN")
    with StandinHub([model("a/x")]) as hub:
        crawled(tmp_path / "anon", hub)
        assert not hub.listing_requests()[0].authorized


def test_every_request_has_a_timeout(tmp_path, monkeypatch) -> None:
    from flows import hub as hub_module

    hub_module._configured = None
    monkeypatch.setattr(hub_module, "REQUEST_TIMEOUT", 0.5)
    hub_module.configure_client(0.5)
    try:
        with StandinHub(world(20), faults=[faults.read_timeout(3.0, times=1)]) as hub:
            items = [p for p in pages(hub.url, parse_scope("full").listings[0], request_headers(None))]
            assert sum(len(p.items) for p in items) == 20
            assert hub.listing_requests()[0].page == hub.listing_requests()[1].page == 1  # timed out, retried
    finally:
        hub_module._configured = None
        hub_module.configure_client()


def test_a_resumed_cursor_the_hub_refuses_fails_saying_how_to_start_over(tmp_path) -> None:
    from flows.crawl import CHECKPOINT, CrawlState, _save, listing_queries

    layout = Layout.at(tmp_path / "wh")
    with StandinHub(world(300), page_size=100) as hub:
        folder = layout.crawl_staging(DAY)
        folder.mkdir(parents=True)
        # A crawl stopped before its first page, whose next-page link the Hub no longer takes.
        expired = f"{hub.url}/api/models?cursor=expired-cursor&limit=100"
        started, queries = "2026-05-12T00:00:00+00:00", listing_queries(parse_scope("full"))
        _save(folder, CrawlState(hub.url, "full", started, next_url=expired, queries=queries))
        with pytest.raises(HubError, match=f"remove that folder to crawl {DAY} from the start") as failed:
            crawl_to_staging(layout, DAY, parse_scope("full"), hub.url)
        assert str(folder) in str(failed.value) and "answered HTTP 400" in str(failed.value)
        assert (folder / CHECKPOINT).exists()  # kept as it was: removing it is the operator's call


@pytest.mark.parametrize(
    ("kind", "said"), [("server_error", "answered HTTP 503"), ("dropped_connection", "cannot reach")]
)
def test_a_resumed_crawl_the_hub_fails_for_another_reason_keeps_its_checkpoint_without_advice_to_remove_it(
    tmp_path, monkeypatch: pytest.MonkeyPatch, kind: str, said: str
) -> None:
    """A server error or a missing page on the first request after resuming says nothing of the cursor: the
    error is the Hub's, in one line without the page's long URL, and the next run resumes."""
    from flows import hub as hub_module
    from flows.crawl import CHECKPOINT, CrawlState, _save, listing_queries

    monkeypatch.setitem(hub_module.BACKOFF, "max_retries", 1)
    monkeypatch.setitem(hub_module.BACKOFF, "base_wait_time", 0.01)
    layout = Layout.at(tmp_path / "wh")
    with StandinHub(world(300), page_size=100, faults=[faults.Fault(kind, pages=frozenset({2}))]) as hub:
        first = next(pages(hub.url, parse_scope("full").listings[0], request_headers(None)))
        folder = layout.crawl_staging(DAY)
        folder.mkdir(parents=True)
        _save(
            folder,
            CrawlState(
                hub.url,
                "full",
                "2026-05-12T00:00:00+00:00",
                next_url=first.next_url,
                queries=listing_queries(parse_scope("full")),
            ),
        )
        with pytest.raises(HubError) as failed:
            crawl_to_staging(layout, DAY, parse_scope("full"), hub.url)
    told = str(failed.value)
    assert said in told and "remove that folder" not in told, told
    assert "expand=" not in told and "cursor=" not in told and "\n" not in told, told
    assert (folder / CHECKPOINT).exists()


def test_an_https_endpoint_that_speaks_no_tls_fails_at_once_in_one_line() -> None:
    """A mistake no retry mends is told before the crawl, not after retried handshakes."""
    from flows.hub import check_reachable

    with StandinHub(world(5)) as hub:
        endpoint = hub.url.replace("http://", "https://")
        with pytest.raises(HubError, match=r"no TLS handshake \(WRONG_VERSION_NUMBER\); is it an http:// endpoint"):
            check_reachable(endpoint, attempts=1)
        assert hub.listing_requests() == []


class ForwardProxy:
    """An HTTP forward proxy on 127.0.0.1 in front of the stand-in, which is known to the client as `public` only,
    a name no resolver knows (as a Hub behind a corporate proxy): the proxy alone reaches it."""

    def __init__(self, hub: StandinHub, public: str) -> None:
        import http.client
        import http.server
        import threading
        from urllib.parse import urlsplit

        back = urlsplit(hub.url).netloc
        self.forwarded = 0

        class Forward(http.server.BaseHTTPRequestHandler):
            def do_GET(handler) -> None:  # noqa: N805 - the handler of this proxy
                target = urlsplit(handler.path)
                assert target.netloc == public, handler.path
                connection = http.client.HTTPConnection(back, timeout=30)
                connection.request("GET", f"{target.path}?{target.query}", headers={"Host": back})
                answer = connection.getresponse()
                body = answer.read()
                handler.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        handler.send_header(name, value.replace(back, public))
                handler.send_header("Content-Length", str(len(body)))
                handler.end_headers()
                handler.wfile.write(body)
                self.forwarded += 1

            def log_message(handler, *args) -> None:  # noqa: N805
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Forward)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_hub_reached_through_a_proxy_of_the_environment_is_crawled(tmp_path, monkeypatch) -> None:
    """The check that the endpoint answers goes as the client goes: through `HTTP_PROXY`, unless `NO_PROXY`
    names the host, in which case the host must answer itself."""
    from flows.hub import check_reachable

    public = "hub.invalid:8871"  # `.invalid` never resolves (RFC 2606)
    with StandinHub(world(50), page_size=20) as hub:
        proxy = ForwardProxy(hub, public)
        try:
            for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
                monkeypatch.delenv(name, raising=False)
            monkeypatch.setenv("HTTP_PROXY", proxy.url)
            check_reachable(f"http://{public}", attempts=1)
            result = crawl_to_staging(Layout.at(tmp_path / "wh"), DAY, parse_scope("full"), f"http://{public}")
            assert result.state.items == 50 and proxy.forwarded == len(hub.listing_requests()) == 3
            monkeypatch.setenv("NO_PROXY", "hub.invalid")
            with pytest.raises(HubError, match="cannot reach http://hub.invalid:8871"):
                check_reachable(f"http://{public}", attempts=1)
        finally:
            proxy.close()


def test_a_token_goes_to_another_machine_only_over_tls(tmp_path, monkeypatch, caplog) -> None:
    """A plain http:// endpoint that is not this machine (here a name only a proxy resolves) is crawled without
    the token, saying so; to 127.0.0.1 it is sent (as to the stand-in in every other test)."""
    import logging

    from flows.hub import token_safe_to

    monkeypatch.setenv("HF_TOKEN", "hf_canary_cleartext_token")
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    logger = logging.getLogger("multipolar.crawl")
    logger.addHandler(caplog.handler)  # should the CLI's own handler keep it from the root logger
    with StandinHub(world(30), page_size=20) as hub:
        proxy = ForwardProxy(hub, "hub.invalid:8871")
        try:
            monkeypatch.setenv("HTTP_PROXY", proxy.url)
            result = crawl_to_staging(Layout.at(tmp_path / "wh"), DAY, parse_scope("full"), "http://hub.invalid:8871")
        finally:
            proxy.close()
            logger.removeHandler(caplog.handler)
        assert result.state.items == 30 and not hub.received_token("hf_canary_cleartext_token")
        assert not any(r.authorized for r in hub.listing_requests())
    assert "HF_TOKEN is not sent to http://hub.invalid:8871" in caplog.text
    assert "hf_canary_cleartext_token" not in caplog.text
    monkeypatch.delenv("HTTP_PROXY")
    safe = ["https://huggingface.co", "http://127.0.0.1:8777", "http://[::1]:80", "http://localhost:8000"]
    assert all(token_safe_to(url) for url in safe)
    assert not any(token_safe_to(url) for url in ["http://huggingface.co", "http://10.0.0.5", "http://127.evil.com"])
    # Through a proxy of the environment, even a loopback endpoint is reached by way of another machine.
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    assert not token_safe_to("http://localhost:8000") and token_safe_to("https://huggingface.co")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:3128")  # one on this machine carries it no further
    assert token_safe_to("http://localhost:8000") and not token_safe_to("http://10.0.0.5")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "localhost")
    assert token_safe_to("http://localhost:8000")
    # `.localhost` covers the names below it, not `localhost` itself, which the client sends through the proxy.
    monkeypatch.setenv("NO_PROXY", ".localhost")
    assert not token_safe_to("http://localhost:8000") and token_safe_to("http://hub.localhost:8000")


def test_an_unfinished_crawl_of_another_scope_is_discarded_saying_so(tmp_path, caplog) -> None:
    import logging

    from flows.crawl import CrawlState, _save

    layout = Layout.at(tmp_path / "wh")
    logger = logging.getLogger("multipolar.crawl")
    logger.addHandler(caplog.handler)  # should the CLI's own handler keep it from the root logger
    try:
        with StandinHub(world(30), page_size=10) as hub:
            folder = layout.crawl_staging(DAY)
            folder.mkdir(parents=True)
            state = CrawlState(endpoint=hub.url, scope="top:20", started_at="2026-05-12T00:00:00+00:00", pages=1)
            _save(folder, state)
            result = crawl_to_staging(layout, DAY, parse_scope("full"), hub.url)
    finally:
        logger.removeHandler(caplog.handler)
    assert result.state.scope == "full" and result.state.done
    (said,) = {r.getMessage() for r in caplog.records if r.getMessage().startswith("discarded")}
    assert said.startswith(f"discarded the unfinished crawl of {DAY} left in {folder} (1 pages of scope top:20")
    assert said.endswith(f"this one is of scope full from {hub.url}, and starts afresh")


@pytest.mark.parametrize(("source_kind", "backdated"), [("hub", True), (None, False)])
def test_a_hub_crawl_published_under_an_earlier_date_records_the_day_it_was_crawled(
    tmp_path, source_kind: str | None, backdated: bool
) -> None:
    """`--backdate` records the Hub of today under a past date: the record says so. The stand-in serves the
    world of any date, so a past date from it is no backdating."""
    from flows.snapshot import publish_models

    layout = Layout.at(tmp_path / "wh")
    with StandinHub(world(30), page_size=10) as hub:
        result = crawl_to_staging(layout, DAY, parse_scope("full"), hub.url)
    meta = publish_models(layout, DAY, parse_scope("full"), result, source_kind=source_kind)
    today = dt.datetime.now(dt.UTC).date()
    assert today > DAY
    assert meta.get("backdated_from") == (today.isoformat() if backdated else None)


def test_progress_tells_the_crawls_rate_over_its_own_seconds(caplog, monkeypatch) -> None:
    """A resumed crawl, or one started by a process that had been running a while: the rate is its models over
    the seconds it has spent crawling, not over the time since this process began reporting."""
    import logging

    from flows import progress
    from flows.crawl import CrawlState

    monkeypatch.setattr(progress, "_reporter", None)
    progress.report_in_lines()
    state = CrawlState(endpoint="http://127.0.0.1:1", scope="all", started_at="", pages=40, items=40_000)
    state.seconds, state.listing, state.done = 20.0, 1, True
    with caplog.at_level(logging.INFO, logger="multipolar.crawl"):
        progress.report_crawl(state, 1)
    assert caplog.messages == ["crawl: 40 pages, 40000 models, 2000 models/s, listing 1/1"]


@pytest.mark.parametrize(
    ("endpoint", "kind"),
    [
        ("http://127.0.0.1:8000", "standin"),
        ("http://127.0.0.2:8000", "standin"),
        ("http://[::1]:8000", "standin"),
        ("http://LocalHost:8000", "standin"),
        ("http://hub.localhost:8000", "standin"),
        ("https://huggingface.co", "hub"),
        ("http://127.evil.com", "hub"),
    ],
)
def test_a_source_on_this_machine_is_labelled_a_standin_by_the_same_test_as_the_tokens(endpoint, kind) -> None:
    from flows.hub import loopback
    from flows.snapshot import source_kind_of

    assert source_kind_of(endpoint) == kind
    assert loopback(endpoint.split("//")[1].rsplit(":", 1)[0].strip("[]")) == (kind == "standin")


def test_a_staged_page_that_cannot_be_read_is_fetched_again_with_every_other(tmp_path, monkeypatch, caplog) -> None:
    """A page the checkpoint counts, cut short since: the crawl starts afresh rather than fail at every run;
    damage found only when the pages are assembled removes the checkpoint, so the next run does the same."""
    import logging

    from flows import crawl
    from flows import hub as hub_module
    from flows.crawl import StagedPageUnreadable

    monkeypatch.setitem(hub_module.BACKOFF, "base_wait_time", 0.05)
    monkeypatch.setitem(hub_module.BACKOFF, "max_wait_time", 0.1)
    layout = Layout.at(tmp_path / "wh")
    logger = logging.getLogger("multipolar.crawl")
    logger.addHandler(caplog.handler)
    try:
        with StandinHub(world(1_000), page_size=100, faults=[faults.server_error(500, times=None, pages={6})]) as hub:
            with pytest.raises(HubError):
                crawl_to_staging(layout, DAY, parse_scope("full"), hub.url)
            page = sorted(layout.crawl_staging(DAY).glob("page-*.parquet"))[2]
            page.write_bytes(page.read_bytes()[:200])
            hub.set_faults()
            hub.reset_log()
            result = crawl_to_staging(layout, DAY, parse_scope("full"), hub.url)
            assert [r.page for r in hub.listing_requests()] == list(range(1, 11))  # every page again
            assert result.state.resumed == 0 and result.state.items == 1_000
            staged, _rows = assemble(layout, DAY, result)
            assert pl.read_parquet(staged).height == 1_000

            # Damage the footer check cannot see, found when the pages are assembled: in the ids, or in another
            # column of a page (the footer whole).
            def damaged(*_args):
                raise pl.exceptions.ComputeError("parquet: File out of specification: Invalid thrift")

            for step in ("_hashed_ids", "_spread"):
                with monkeypatch.context() as patched:
                    patched.setattr(crawl, step, damaged)
                    with pytest.raises(StagedPageUnreadable, match="run again, which crawls 2026-05-12 afresh"):
                        assemble(layout, DAY, result)
                assert not (layout.crawl_staging(DAY) / "checkpoint.json").exists(), step
                crawl._save(layout.crawl_staging(DAY), result.state)
    finally:
        logger.removeHandler(caplog.handler)
    assert f"its page {page.name} cannot be read" in caplog.text


def test_a_rate_limit_asking_for_a_long_wait_is_told_and_one_past_the_limit_stops_the_crawl(
    tmp_path, monkeypatch, caplog
) -> None:
    import logging

    from flows import hub as hub_module

    layout = Layout.at(tmp_path / "wh")
    logger = logging.getLogger("multipolar.crawl")
    logger.addHandler(caplog.handler)
    try:
        with StandinHub(
            world(500), page_size=100, faults=[faults.rate_limit(times=1, reset=100_000, pages={3})]
        ) as hub:
            began = time.monotonic()
            with pytest.raises(HubError, match="asks to wait 100,000 s, more than the 900 s a crawl waits"):
                crawl_to_staging(layout, DAY, parse_scope("full"), hub.url)
            assert time.monotonic() - began < 30
            hub.set_faults(faults.rate_limit(times=1, reset=0, pages={3}))
            monkeypatch.setattr(hub_module, "TOLD_RATE_LIMIT_WAIT", 0.0)
            result = crawl_to_staging(layout, DAY, parse_scope("full"), hub.url)  # resumed: page 3 onwards
            assert result.state.items == 500 and result.state.resumed == 1
    finally:
        logger.removeHandler(caplog.handler)
    assert "answered HTTP 429: waiting 0 s as it asks" in caplog.text


@pytest.mark.parametrize("overlap", [True, False])
def test_a_crawl_past_the_hubs_quota_waits_each_window_out_once(tmp_path, overlap) -> None:
    """The Hub counts requests in fixed windows and refuses those past its quota until the window ends: the crawl
    waits as `RateLimit` says, one refusal a window spent, and no page is asked twice but the one refused."""
    with StandinHub(world(70), page_size=10, quota=(3, 1)) as hub:
        layout = Layout.at(tmp_path / "wh")
        result = crawl_to_staging(layout, DAY, parse_scope("full"), hub.url, overlap=overlap)
        _, rows = assemble(layout, DAY, result)
        answered = [(r.page, r.status) for r in hub.listing_requests()]
    refused = [page for page, status in answered if status == 429]
    assert rows == 70 and [page for page, status in answered if status == 200] == list(range(1, 8))
    # Seven pages, three a window: one or two refusals (as the windows fall), none asked into the same window again.
    assert 1 <= len(refused) <= 2 and len(set(refused)) == len(refused) and result.state.requests == 7 + len(refused)


@pytest.mark.parametrize("status", [503, 429, 408])
def test_a_long_retry_after_on_any_status_the_client_retries_stops_the_crawl(status: int) -> None:
    """The client sleeps as `Retry-After` says on every status it retries, not only on a 429."""
    from huggingface_hub.utils import httpx as hx

    from flows.hub import rate_limit_wait

    request = hx.Request("GET", "http://127.0.0.1:1/api/models")
    with pytest.raises(HubError, match=f"answered HTTP {status} and asks to wait 3,600 s"):
        rate_limit_wait(hx.Response(status, headers={"retry-after": "3600"}, request=request))
    rate_limit_wait(hx.Response(404, headers={"retry-after": "3600"}, request=request))  # not retried: no wait


def test_private_models_a_token_may_read_are_left_out_and_counted(tmp_path, monkeypatch) -> None:
    """With a token, the Hub lists the private repos it may read among the public ones: a snapshot keeps only
    public models, and says how many private ones it left out."""
    secret = model("Qwen/unreleased-72b", downloads=5_000, params=72_000_000_000)
    secret["private"] = True
    monkeypatch.setenv("HF_TOKEN", "hf_canary_crawl_token")
    with StandinHub([*world(30), secret], page_size=10) as hub:
        layout = Layout.at(tmp_path / "wh")
        result = crawl_to_staging(layout, DAY, parse_scope("full"), hub.url)
        assert hub.listing_requests()[0].param("expand")[-1] == "private"
        assert result.state.items == 31 and result.state.report["dropped"] == {"private": 1}
        staged, rows = assemble(layout, DAY, result)
    frame = pl.read_parquet(staged)
    assert rows == frame.height == 30 and "Qwen/unreleased-72b" not in frame["model_id"]
    monkeypatch.delenv("HF_TOKEN")
    with StandinHub([*world(30), secret], page_size=10) as hub:  # listed to no request without a token
        assert crawled(tmp_path / "anon", hub).height == 30
        assert sum(len(p.items) for p in pages(hub.url, parse_scope("full").listings[0], request_headers(None))) == 30


def test_a_request_the_hub_refuses_fails_with_the_hubs_own_words() -> None:
    """The Hub's message (its JSON `error`) is what tells a refused request's cause; the client puts it on a
    later line of its error, after the request's id when the Hub sends one."""
    from huggingface_hub.utils import hf_raise_for_status
    from huggingface_hub.utils import httpx as hx

    from flows.hub import _reason
    from flows.scope import Listing

    with StandinHub(world(5)) as hub:
        with pytest.raises(HubError) as failed:
            list(pages(hub.url, Listing(expand=("author", "trendingScor")), request_headers(None)))
    told = str(failed.value)
    assert f"{hub.url} answered HTTP 400: " in told and "not 'trendingScor'" in told, told
    assert "after retries" not in told and "\n" not in told  # a 400 is not retried

    request = hx.Request("GET", "https://huggingface.co/api/models?expand=author")
    body = b'{"error":"Invalid credentials in Authorization header"}'
    response = hx.Response(401, content=body, headers={"X-Request-Id": "Root=1-abc"}, request=request)
    with pytest.raises(Exception) as raised:
        hf_raise_for_status(response)
    assert _reason(raised.value) == "Invalid credentials in Authorization header (request id Root=1-abc)"

    sent = hx.Request("GET", "https://huggingface.co/api/models", headers={"authorization": "Bearer hf_canary"})
    echoed = hx.Response(401, content=b'{"error":"Invalid token hf_canary"}', request=sent)
    with pytest.raises(Exception) as raised:
        hf_raise_for_status(echoed)
    assert _reason(raised.value) == "Invalid token (token)"


def test_a_token_the_hub_refuses_fails_in_one_line_naming_hf_token_and_what_to_do() -> None:
    """The Hub lists public models to anyone, and answers 401 only to a token it does not take: a stale or mistyped
    HF_TOKEN. Its own words ("Invalid credentials in Authorization header") do not say where the header came from."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from flows.scope import Listing

    class Refusing(BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            token = self.headers.get("authorization")
            body = b'{"error":"Invalid credentials in Authorization header"}' if token else b"[]"
            self.send_response(401 if token else 200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(HubError) as failed:
            list(pages(endpoint, Listing(expand=("author",)), request_headers("hf_garbage", endpoint)))
        list(pages(endpoint, Listing(expand=("author",)), request_headers(None, endpoint)))  # no token: listed
    finally:
        server.shutdown()
    told = str(failed.value)
    assert told.startswith(f"{endpoint} answered HTTP 401: Invalid credentials in Authorization header"), told
    assert "HF_TOKEN sent was refused" in told and "unset HF_TOKEN" in told and "\n" not in told
    assert "hf_garbage" not in told


def test_an_orgs_listing_loses_no_model_whose_trending_score_moves_while_it_is_paged(tmp_path) -> None:
    """The Hub pages a listing by a keyset cursor on its sort key, trending score when none is asked for. A score
    that rises past the cursor while the listing is paged would hide its model from it: an organisation is listed
    by creation date, which does not move."""
    import base64
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import parse_qsl, urlencode, urlsplit

    models = [
        {
            "_id": f"{i:024x}",
            "id": f"Qwen/m-{i:02d}",
            "createdAt": f"2025-01-01T00:{i:02d}:00.000Z",
            "trendingScore": 99 - i,
        }
        for i in range(30)
    ]

    class Keyset(BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            query = parse_qsl(urlsplit(self.path).query)
            asked = dict(query)
            sort = asked.get("sort", "trendingScore")
            listed = sorted(models, key=lambda m: m["_id"])
            listed.sort(key=lambda m: m[sort], reverse=True)
            if "cursor" in asked:
                value, last = json.loads(base64.urlsafe_b64decode(asked["cursor"]))
                listed = [m for m in listed if m[sort] < value or (m[sort] == value and m["_id"] > last)]
            page, more = listed[:10], len(listed) > 10
            body = json.dumps(page).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            if more:
                cursor = base64.urlsafe_b64encode(json.dumps([page[-1][sort], page[-1]["_id"]]).encode()).decode()
                rest = urlencode([(k, v) for k, v in query if k not in ("cursor", "sort")] + [("sort", sort)])
                self.send_header("Link", f'<{endpoint}/api/models?{rest}&cursor={cursor}>; rel="next"')
            self.end_headers()
            self.wfile.write(body)
            models[25]["trendingScore"] = 95  # recomputed: a model of the last page now trends past the first

    server = ThreadingHTTPServer(("127.0.0.1", 0), Keyset)
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        layout = Layout.at(tmp_path / "wh")
        result = crawl_to_staging(layout, DAY, parse_scope("orgs:Qwen"), endpoint)
        staged, rows = assemble(layout, DAY, result)
    finally:
        server.shutdown()
    assert rows == 30 and "Qwen/m-25" in pl.read_parquet(staged)["model_id"]


def test_top_n_takes_the_n_first_public_models_when_the_page_that_ends_it_holds_private_ones(
    tmp_path, monkeypatch
) -> None:
    """The items a crawl drops (private repos a token lists, items without an id) are no models of the N: the page
    that ends a top:N listing is taken up to its N-th kept model, and no model ranked above it is skipped."""
    models = sorted(world(40), key=lambda m: m["downloads"], reverse=True)
    for rank in (1, 3, 5):  # the 2nd, 4th and 6th most downloaded
        models[rank]["private"] = True
    del models[2]["id"]
    monkeypatch.setenv("HF_TOKEN", "hf_canary_crawl_token")
    with StandinHub(models, page_size=10) as hub:
        frame = crawled(tmp_path, hub, "top:5")
    public = [m["id"] for m in models if not m.get("private") and "id" in m]
    assert sorted(frame["model_id"]) == sorted(public[:5])  # the 1st, 5th, 7th, 8th and 9th
    assert len(hub.listing_requests()) == 2  # pages of 5: the second ends the listing at its 4th item


@pytest.mark.parametrize("killed", ["mid-way", "once done"])
def test_a_crawl_begun_asking_other_fields_is_crawled_afresh_rather_than_resumed(tmp_path, monkeypatch, caplog, killed):
    """A crawl begun by code that did not ask for `private` has pages that cannot tell a private repo, and a
    next-page link that goes on not asking for it: resumed, it would publish the private repos a token lists."""
    import contextlib
    import json
    import logging

    from flows import hub as hub_module
    from flows.crawl import CHECKPOINT
    from flows.scope import EXPAND, Listing, Scope

    models = world(60)
    for secret in models[::10]:
        secret["private"] = True
    monkeypatch.setenv("HF_TOKEN", "hf_canary_crawl_token")
    layout = Layout.at(tmp_path / "wh")
    earlier = Scope("full", (Listing(sort="created_at", expand=tuple(e for e in EXPAND if e != "private")),))
    stopped = [faults.server_error(500, times=None, pages={4})] if killed == "mid-way" else []
    monkeypatch.setitem(hub_module.BACKOFF, "max_retries", 1)
    monkeypatch.setitem(hub_module.BACKOFF, "base_wait_time", 0.01)
    logger = logging.getLogger("multipolar.crawl")
    logger.addHandler(caplog.handler)
    try:
        with StandinHub(models, page_size=10, faults=stopped) as hub:
            with contextlib.suppress(HubError):
                crawl_to_staging(layout, DAY, earlier, hub.url)
            checkpoint = json.loads((layout.crawl_staging(DAY) / CHECKPOINT).read_text())
            checkpoint.pop("queries", None)  # as a checkpoint written before they were kept
            (layout.crawl_staging(DAY) / CHECKPOINT).write_text(json.dumps(checkpoint))
            hub.set_faults()
            hub.reset_log()
            result = crawl_to_staging(layout, DAY, parse_scope("full"), hub.url)
            assert all(r.param("expand")[-1] == "private" for r in hub.listing_requests())
            staged, rows = assemble(layout, DAY, result)
    finally:
        logger.removeHandler(caplog.handler)
    assert rows == 54 and not {m["id"] for m in models[::10]} & set(pl.read_parquet(staged)["model_id"])
    assert result.state.resumed == 0 and result.state.report["dropped"] == {"private": 6}
    (said,) = {r.getMessage() for r in caplog.records if r.getMessage().startswith("discarded")}
    assert "a query that was not recorded" in said and said.endswith(f"{DAY} is crawled afresh")


def test_top_n_takes_n_distinct_models_when_the_shifting_order_lists_some_again(tmp_path) -> None:
    """Sorted by downloads, which change while a listing is paged, the Hub may list a model again on a later page:
    it is no new model of the N, and the listing goes on until it holds N distinct ones."""
    models = world(1_000)
    top = sorted(m["id"] for m in sorted(models, key=lambda m: m["downloads"], reverse=True)[:250])
    with StandinHub(models, page_size=100, faults=[faults.duplicate_ids(5, pages={2, 3})]) as hub:
        assert sorted(crawled(tmp_path, hub, "top:250")["model_id"]) == top

    def killed(state, listings: int) -> None:
        if state.pages == 2:
            raise Killed

    layout = Layout.at(tmp_path / "resumed")
    with StandinHub(models, page_size=100, faults=[faults.duplicate_ids(5, pages={2, 3})]) as hub:
        with pytest.raises(Killed):
            crawl_to_staging(layout, DAY, parse_scope("top:250"), hub.url, progress=killed)
        result = crawl_to_staging(layout, DAY, parse_scope("top:250"), hub.url)  # resumed at page 3
        staged, rows = assemble(layout, DAY, result)
    assert result.state.resumed == 1 and sorted(pl.read_parquet(staged)["model_id"]) == top
